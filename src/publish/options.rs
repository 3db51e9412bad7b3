//! What the publisher needs to know, kept apart from the config file's
//! types so tests (and other callers) can build it directly.

use super::error::PublishError;
use crate::config::{parse_broker_url, Config};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the broker and what to announce there.
#[derive(Clone)]
pub struct PublishOptions {
    /// The MQTT client id and the second topic level.
    pub device_id: String,
    /// The first topic level.
    pub topic_prefix: String,
    pub host: String,
    pub port: u16,
    /// `Some` for `mqtts://`.
    pub tls: Option<TlsOptions>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Zero disables pings; otherwise at least one second (MQTT counts seconds).
    pub keep_alive: Duration,
    /// How often stats are published while connected.
    pub stats_interval: Duration,
    /// Home Assistant discovery prefix; `None` turns discovery off.
    pub discovery_prefix: Option<String>,
    /// The model name and variant, for stats and the HA device.
    pub model: String,
    /// Camera names: each gets an availability entity in discovery.
    pub cameras: Vec<String>,
    /// Outbox rows published but not yet acknowledged, at most. Bounds what a
    /// reconnect has to resend and keeps well under the broker's own limit.
    pub window: usize,
    /// Largest image the MQTT inputs' connection accepts (the upload
    /// limit); the broker is told not to send larger packets.
    pub max_inbound_bytes: usize,
    /// Largest outgoing payload; an outbox row over it can never be sent.
    pub max_outbound_bytes: usize,
    /// First wait before reconnecting; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Fallback outbox poll, in case a wake-up was missed.
    pub poll_interval: Duration,
    /// On shutdown, how long to keep delivering the backlog and wait for
    /// acknowledgements before saying `offline` and disconnecting.
    pub shutdown_grace: Duration,
}

/// TLS settings for `mqtts://`. Without a CA file the system roots are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl PublishOptions {
    /// Defaults for everything but where the broker is and who we are.
    pub fn new(
        device_id: impl Into<String>,
        topic_prefix: impl Into<String>,
        host: impl Into<String>,
        port: u16,
    ) -> Self {
        Self {
            device_id: device_id.into(),
            topic_prefix: topic_prefix.into(),
            host: host.into(),
            port,
            tls: None,
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            stats_interval: Duration::from_secs(60),
            discovery_prefix: Some("homeassistant".to_owned()),
            model: String::new(),
            cameras: Vec::new(),
            window: 32,
            max_inbound_bytes: 20 * 1024 * 1024,
            max_outbound_bytes: 1024 * 1024,
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(3),
        }
    }

    /// From the daemon's config; `model` is the loaded model's name/variant.
    pub fn from_config(config: &Config, model: impl Into<String>) -> Result<Self, PublishError> {
        let mqtt = &config.mqtt;
        let broker = parse_broker_url(&mqtt.url).map_err(|reason| PublishError::BadUrl {
            url: mqtt.url.clone(),
            reason,
        })?;
        let mut opts = Self::new(
            config.device_id.clone(),
            mqtt.topic_prefix.clone(),
            broker.host,
            broker.port,
        );
        opts.tls = broker.tls.then(|| TlsOptions {
            ca_file: mqtt.ca_file.clone(),
            client_cert: mqtt.client_cert.clone(),
            client_key: mqtt.client_key.clone(),
        });
        opts.username = mqtt.username.clone();
        opts.password = mqtt.password.clone();
        opts.keep_alive = Duration::from_secs(u64::from(mqtt.keep_alive_s));
        opts.stats_interval = Duration::from_secs(u64::from(mqtt.stats_interval_s.max(1)));
        opts.discovery_prefix = mqtt.discovery.then(|| mqtt.discovery_prefix.clone());
        opts.model = model.into();
        opts.cameras = config.cameras.iter().map(|c| c.name.clone()).collect();
        opts.max_inbound_bytes =
            usize::try_from(config.http.max_upload_bytes).unwrap_or(usize::MAX);
        Ok(opts)
    }
}

/// Hand-written so the password never reaches a log line.
impl fmt::Debug for PublishOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishOptions")
            .field("device_id", &self.device_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("stats_interval", &self.stats_interval)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("model", &self.model)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_maps_the_mqtt_section() {
        let mut config = Config {
            device_id: "lobby".into(),
            ..Config::default()
        };
        config.mqtt.url = "mqtts://broker.example:8883".into();
        config.mqtt.password = Some("hunter2".into());
        config.mqtt.discovery = false;
        let opts = PublishOptions::from_config(&config, "m/int8").unwrap();
        assert_eq!(opts.host, "broker.example");
        assert_eq!(opts.port, 8883);
        assert!(opts.tls.is_some());
        assert_eq!(opts.discovery_prefix, None);
        assert_eq!(opts.device_id, "lobby");
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert_eq!(opts.max_inbound_bytes, 20 * 1024 * 1024, "the upload limit");
    }

    #[test]
    fn a_bad_url_says_which_and_why() {
        let mut config = Config::default();
        config.mqtt.url = "tcp://broker".into();
        let err = PublishOptions::from_config(&config, "m").unwrap_err();
        assert!(err.to_string().contains("tcp://broker"), "{err}");
    }
}
