//! The MQTT inputs, on a connection of their own: images published on
//! `<prefix>/<device_id>/ingest` become posters (source `mqtt`), requests on
//! `.../capture` go to the cameras, corrections on `.../feedback` are
//! stored like the dashboard's (`crate::feedback`), and Home Assistant's
//! `online` on
//! `<discovery_prefix>/status` makes the publisher announce the device
//! again. Results go out on the publisher's connection like any other.
//!
//! Why a connection of its own, in MQTT 5: what anyone publishes on these
//! topics reaches this connection, never the one that delivers results.
//! It tells the broker the largest packet it takes (the upload limit), so
//! the broker drops a larger image instead of sending it (MQTT 3.1.1 has
//! no way to say so: the client can only close the connection, and a
//! retained oversize image then closed it again on every reconnect). A
//! retained image is refused and counted (it would be classified again on
//! every new subscription otherwise); retained messages are sent only when
//! the subscription is new.
//!
//! Nothing is lost: an ingest message is acknowledged (PUBACK) only once
//! its poster is committed to the store, or refused for good (not an
//! image). The session is kept by the broker across restarts (clean start
//! off, a session expiry), so a message in flight at a shutdown, a crash or
//! a SIGKILL is delivered again. At most [`IN_FLIGHT`] images are on their
//! way at once (MQTT 5 receive maximum): the broker holds the rest.

use crate::camera::CameraRegistry;
use crate::feedback::{self, Correction, Via};
use crate::poster::{Poster, PosterError};
use crate::publish::{PublishHandle, PublishOptions, TlsOptions, Topics};
use crate::queue::{PosterQueue, WhenFull};
use crate::store::StoreHandle;
use crate::telemetry::Metrics;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The `source` of posters from the ingest topic.
pub const SOURCE: &str = "mqtt";

/// Images received and not yet acknowledged, at most (MQTT 5 receive
/// maximum). With the upload limit, this is what the memory plan counts as
/// "in transit".
pub const IN_FLIGHT: u16 = 2;

/// How long the broker keeps our session (subscriptions, unacknowledged
/// messages) while the daemon is away: a day of reboots and upgrades.
const SESSION_EXPIRY_S: u32 = 24 * 60 * 60;

/// What the MQTT inputs need; made from the publisher's options (same
/// broker, credentials and TLS).
#[derive(Debug, Clone)]
pub struct MqttInputs {
    pub publish: PublishOptions,
    /// Home Assistant's status topic, when discovery is on.
    pub ha_status: Option<String>,
    /// Where corrections go, and the genres they may name.
    pub store: StoreHandle,
    pub labels: crate::model::live::GenreList,
}

/// Connect, subscribe and forward until `stop`.
pub async fn run(
    inputs: MqttInputs,
    queue: PosterQueue,
    cameras: CameraRegistry,
    publish: PublishHandle,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let topics = Topics::new(&inputs.publish.topic_prefix, &inputs.publish.device_id);
    let options = match mqtt_options(&inputs.publish) {
        Ok(options) => options,
        Err(err) => {
            warn!(error = %err, "MQTT inputs disabled: cannot set up their connection");
            return;
        }
    };
    let (client, eventloop) = AsyncClient::new(options, 16);
    let link = Link {
        client,
        topics,
        ha_status: inputs.ha_status,
        store: inputs.store,
        labels: inputs.labels,
        queue,
        cameras,
        publish,
        metrics,
        stop,
        generation: Arc::new(AtomicU64::new(0)),
        handlers: TaskTracker::new(),
        reconnect_min: inputs.publish.reconnect_min,
        reconnect_max: inputs
            .publish
            .reconnect_max
            .max(inputs.publish.reconnect_min),
    };
    link.run(eventloop).await;
}

struct Link {
    client: AsyncClient,
    topics: Topics,
    ha_status: Option<String>,
    store: StoreHandle,
    labels: crate::model::live::GenreList,
    queue: PosterQueue,
    cameras: CameraRegistry,
    publish: PublishHandle,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    /// Bumped on every CONNACK: an acknowledgement for a message of an
    /// earlier connection is not sent on this one (the broker delivers the
    /// message again, and that delivery is acknowledged instead).
    generation: Arc<AtomicU64>,
    handlers: TaskTracker,
    reconnect_min: Duration,
    reconnect_max: Duration,
}

impl Link {
    async fn run(self, mut eventloop: EventLoop) {
        let mut delay = self.reconnect_min;
        let mut outage = false;
        loop {
            let polled = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    if std::mem::take(&mut outage) {
                        info!("MQTT inputs reconnected");
                    }
                    delay = self.reconnect_min;
                    debug!(
                        session_present = ack.session_present,
                        "MQTT inputs connected"
                    );
                    self.subscribe();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.publish.shared_status().set_subscribed(true);
                }
                Ok(Event::Incoming(Packet::Publish(message))) => self.received(message),
                Ok(_) => {}
                Err(err) => {
                    self.publish.shared_status().set_subscribed(false);
                    if is_oversize(&err) {
                        // Only a broker that ignores our maximum packet size
                        // gets here; the message costs this connection only.
                        self.metrics.error("mqtt_oversize");
                        self.publish.shared_status().inbound_dropped();
                    }
                    if !std::mem::replace(&mut outage, true) {
                        warn!(
                            error = %err,
                            "MQTT inputs disconnected (ingest, capture); retrying with backoff"
                        );
                    } else {
                        debug!(error = %err, "MQTT inputs: reconnect failed");
                    }
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = delay.saturating_mul(2).min(self.reconnect_max);
                }
            }
        }
        // Messages still being classified are acknowledged when they are
        // committed; the queue closes behind them. Those not committed are
        // not acknowledged, and the broker delivers them again next start.
        self.handlers.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.handlers.wait()).await;
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
    }

    fn subscribe(&self) {
        let filter = |topic: &str| {
            let mut filter = Filter::new(topic, QoS::AtLeastOnce);
            // A retained message comes once, with the first subscription,
            // not again on every reconnect.
            filter.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
            filter
        };
        let mut filters = vec![
            filter(&self.topics.ingest),
            filter(&self.topics.capture),
            filter(&self.topics.feedback),
        ];
        if let Some(ha) = &self.ha_status {
            filters.push(filter(ha));
        }
        if let Err(err) = self.client.try_subscribe_many(filters) {
            warn!(error = %err, "cannot subscribe to the MQTT input topics");
        }
    }

    fn received(&self, message: Publish) {
        let topic = String::from_utf8_lossy(&message.topic).into_owned();
        if self.ha_status.as_deref() == Some(topic.as_str()) {
            // A retained `online` arrives with the subscription; only a live
            // one means Home Assistant restarted.
            if !message.retain && message.payload.as_ref() == b"online" {
                self.publish.announce_again();
            }
            self.ack(&message, self.generation.load(Ordering::Acquire));
        } else if topic == self.topics.ingest {
            if message.retain {
                self.metrics.error("mqtt_retained");
                self.publish.shared_status().inbound_dropped();
                warn!(
                    topic,
                    bytes = message.payload.len(),
                    "a retained image on the ingest topic was refused (it would be classified \
                     again for every new subscriber); publish images without retain, and clear \
                     it with `mosquitto_pub -r -n -t {topic}`"
                );
                self.ack(&message, self.generation.load(Ordering::Acquire));
                return;
            }
            self.ingest(message);
        } else if topic == self.topics.capture {
            self.capture(&message);
            self.ack(&message, self.generation.load(Ordering::Acquire));
        } else if topic == self.topics.feedback {
            self.feedback(message);
        } else {
            debug!(
                topic,
                "ignoring a message on a topic we did not subscribe to"
            );
            self.ack(&message, self.generation.load(Ordering::Acquire));
        }
    }

    /// Queue the image (waiting for room: the broker holds the rest) and
    /// acknowledge it once it is committed or refused for good.
    fn ingest(&self, message: Publish) {
        let ack = self.late_ack();
        let queue = self.queue.clone();
        let metrics = Arc::clone(&self.metrics);
        let stop = self.stop.clone();
        self.handlers.spawn(async move {
            let bytes = message.payload.clone();
            let reserved = tokio::select! {
                biased;
                () = stop.cancelled() => return, // not acknowledged: delivered again
                reserved = queue.reserve(bytes.len() as u64, WhenFull::Wait) => reserved,
            };
            let outcome = match reserved {
                Ok(reserved) => {
                    let (poster, answer) = Poster::awaited(bytes, SOURCE);
                    reserved.send(poster);
                    answer.outcome().await
                }
                Err(err) => {
                    metrics.error(err.kind());
                    Err(err)
                }
            };
            let settled = match &outcome {
                Ok(event) => {
                    debug!(poster.id = %event.id, "MQTT image stored");
                    true
                }
                // The same bytes would fail the same way: do not have the
                // broker send them again and again.
                Err(err) if err.is_permanent() => {
                    info!(error = %err, "MQTT image refused");
                    true
                }
                Err(PosterError::ShuttingDown) => false,
                Err(err) => {
                    warn!(error = %err, "MQTT image not stored; the broker delivers it again after the next reconnect");
                    false
                }
            };
            if settled {
                ack.send(&message, "an MQTT image").await;
            }
        });
    }

    fn capture(&self, message: &Publish) {
        let cameras = self.cameras.clone();
        let payload = message.payload.clone();
        // Its own task: waiting for a frame must not hold up the link.
        self.handlers.spawn(async move {
            let name = match capture_target(&payload) {
                Ok(name) => name,
                Err(reason) => return warn!(%reason, "MQTT capture request refused"),
            };
            match cameras.queue_capture(name.as_deref()).await {
                Ok(_) => debug!(camera = ?name, "MQTT capture queued"),
                Err(err) => warn!(error = %err, "MQTT capture request refused"),
            }
        });
    }

    /// Store a correction, and acknowledge it once stored or refused for
    /// good (a store that cannot write now gets it again after the next
    /// reconnect). A bad payload is counted and logged, never fatal.
    fn feedback(&self, message: Publish) {
        let ack = self.late_ack();
        let store = self.store.clone();
        let labels = self.labels.get();
        let metrics = Arc::clone(&self.metrics);
        self.handlers.spawn(async move {
            let settled = match feedback_payload(&message.payload) {
                Err(reason) => {
                    metrics.feedback(Via::Mqtt.as_str(), false);
                    warn!(%reason, "MQTT correction refused");
                    true
                }
                Ok(correction) => {
                    match feedback::record(&store, &labels, correction, Via::Mqtt).await {
                        Ok(stored) => {
                            metrics.feedback(Via::Mqtt.as_str(), true);
                            debug!(poster.id = %stored.poster_id, "MQTT correction stored");
                            true
                        }
                        Err(err) if err.is_client_error() => {
                            metrics.feedback(Via::Mqtt.as_str(), false);
                            warn!(error = %err, "MQTT correction refused");
                            true
                        }
                        Err(err) => {
                            warn!(error = %err, "MQTT correction not stored; the broker delivers it again after the next reconnect");
                            false
                        }
                    }
                }
            };
            if settled {
                ack.send(&message, "an MQTT correction").await;
            }
        });
    }

    /// An acknowledgement to send later, from a handler, for a message
    /// received on the connection current now.
    fn late_ack(&self) -> LateAck {
        LateAck {
            client: self.client.clone(),
            current: Arc::clone(&self.generation),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    fn ack(&self, message: &Publish, generation: u64) {
        if message.qos == QoS::AtMostOnce || self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if let Err(err) = self.client.try_ack(message) {
            debug!(error = %err, "cannot acknowledge an MQTT message");
        }
    }
}

/// See [`Link::late_ack`].
struct LateAck {
    client: AsyncClient,
    current: Arc<AtomicU64>,
    generation: u64,
}

impl LateAck {
    /// Acknowledge `message` (`what` names it in the log), unless it came at
    /// QoS 0 or on an earlier connection: the broker delivers that one again,
    /// and the new delivery is acknowledged instead.
    async fn send(self, message: &Publish, what: &str) {
        if message.qos == QoS::AtMostOnce || self.current.load(Ordering::Acquire) != self.generation
        {
            return;
        }
        if let Err(err) = self.client.ack(message).await {
            debug!(error = %err, "cannot acknowledge {what}");
        }
    }
}

fn is_oversize(err: &ConnectionError) -> bool {
    // rumqttc reports a packet over our maximum as a state error whose text
    // names the payload size limit.
    let text = err.to_string().to_ascii_lowercase();
    text.contains("size limit") || text.contains("payload size")
}

fn mqtt_options(opts: &PublishOptions) -> Result<MqttOptions, crate::publish::PublishError> {
    let mut mqtt = MqttOptions::new(format!("{}-in", opts.device_id), &opts.host, opts.port);
    let keep_alive = if opts.keep_alive.is_zero() {
        Duration::ZERO
    } else {
        opts.keep_alive.max(Duration::from_secs(1))
    };
    mqtt.set_keep_alive(keep_alive);
    // The broker keeps the session (subscriptions and unacknowledged
    // messages) while the daemon restarts.
    mqtt.set_clean_start(false);
    mqtt.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
    mqtt.set_manual_acks(true);
    mqtt.set_receive_maximum(Some(IN_FLIGHT));
    // The largest packet we take: the upload limit plus the topic and
    // headers. The broker must not send anything larger (MQTT 5, 3.1.2.11.4).
    let max = u32::try_from(opts.max_inbound_bytes.saturating_add(64 * 1024)).unwrap_or(u32::MAX);
    mqtt.set_max_packet_size(Some(max));
    if let Some(user) = &opts.username {
        mqtt.set_credentials(user, opts.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &opts.tls {
        mqtt.set_transport(transport(tls)?);
    }
    Ok(mqtt)
}

fn transport(tls: &TlsOptions) -> Result<Transport, crate::publish::PublishError> {
    let config = crate::publish::tls_client_config(tls)?;
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(config)))
}

/// A correction from the `feedback` topic: JSON
/// `{"id": "...", "genres": [...], "by": "..."}` or `{"id": "...", "kept": true}`.
pub fn feedback_payload(payload: &[u8]) -> Result<Correction, String> {
    if payload.len() > feedback::MAX_MESSAGE_BYTES {
        return Err(format!(
            "the correction is {} bytes, over {}: send one poster's correction per message",
            payload.len(),
            feedback::MAX_MESSAGE_BYTES
        ));
    }
    serde_json::from_slice(payload).map_err(|err| {
        format!(
            "the correction is not {{\"id\": \"<sha256>\", \"genres\": [\"Drama\"], \"by\": \"...\"}} \
             or {{\"id\": \"<sha256>\", \"kept\": true}}: {err}"
        )
    })
}

/// The camera a `capture` MQTT message names: empty is the first camera,
/// `{"camera": "desk"}` or plain `desk` names one.
pub fn capture_target(payload: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| "the capture payload is not UTF-8 text: send nothing, a camera name or {\"camera\": \"NAME\"}".to_owned())?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.starts_with('{') {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Which {
            camera: Option<String>,
        }
        return serde_json::from_str::<Which>(text)
            .map(|w| w.camera)
            .map_err(|err| format!("the capture payload is not {{\"camera\": \"NAME\"}}: {err}"));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_payloads() {
        assert_eq!(capture_target(b""), Ok(None));
        assert_eq!(capture_target(b" desk\n"), Ok(Some("desk".into())));
        assert_eq!(
            capture_target(br#"{"camera":"door"}"#),
            Ok(Some("door".into()))
        );
        assert_eq!(capture_target(b"{}"), Ok(None));
        assert!(capture_target(br#"{"cam":"x"}"#).is_err());
        assert!(capture_target(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn feedback_payloads() {
        let id = "ab".repeat(32);
        let ok = feedback_payload(format!(r#"{{"id":"{id}","kept":true}}"#).as_bytes()).unwrap();
        assert!(ok.kept);
        for bad in [&b"not json"[..], b"{}", &[0xff, 0xfe]] {
            assert!(feedback_payload(bad).is_err());
        }
        let huge = vec![b' '; feedback::MAX_MESSAGE_BYTES + 1];
        assert!(feedback_payload(&huge).unwrap_err().contains("over"));
    }
}
