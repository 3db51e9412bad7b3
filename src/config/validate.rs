//! Rules the types alone cannot express: ranges, MQTT topic syntax, settings
//! that only make sense together. Every rule reports a [`Problem`] rather
//! than stopping, so one `marquee config check` lists everything to fix.

use super::camera_source::SourceSpec;
use super::error::Problem;
use super::schema::{CameraConfig, Config, DashboardConfig, MqttConfig};
use std::collections::BTreeSet;
use std::path::Path;

/// Where the MQTT broker is, from `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: connect with TLS.
    pub tls: bool,
}

/// Parse `mqtt://host[:port]` / `mqtts://host[:port]` (IPv6 as `[::1]`).
/// Credentials, paths and queries are refused: credentials belong in
/// `mqtt.username`/`mqtt.password`, where they are redacted when printed.
pub fn parse_broker_url(url: &str) -> Result<Broker, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected mqtt://host[:port] or mqtts://host[:port]")?;
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" => (false, 1883),
        "mqtts" => (true, 8883),
        _ => {
            return Err(format!(
                "scheme `{scheme}` is not supported: use mqtt:// or mqtts://"
            ))
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("put credentials in mqtt.username and mqtt.password, not in the URL".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err("the URL takes no path or query: mqtt://host[:port]".into());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed `[` in IPv6 host")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected `{after}` after the IPv6 host")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("port `{text}` is not a number from 1 to 65535")),
        },
    };
    Ok(Broker {
        host: host.to_owned(),
        port,
        tls,
    })
}

impl MqttConfig {
    /// The broker address from `url` (validated by `Config::load`).
    pub fn broker(&self) -> Result<Broker, super::ConfigError> {
        parse_broker_url(&self.url).map_err(|reason| {
            super::ConfigError::Invalid(vec![Problem {
                key: "mqtt.url".into(),
                origin: None,
                reason,
            }])
        })
    }
}

/// Why `segment` cannot be one level of an MQTT topic, if it cannot.
fn topic_segment_problem(segment: &str) -> Option<String> {
    if segment.is_empty() {
        Some("must not be empty".into())
    } else if segment.contains(['+', '#', '/']) {
        Some("must not contain `+`, `#` or `/` (it is one MQTT topic level)".into())
    } else if segment.starts_with('$') {
        Some("must not start with `$` (brokers reserve those topics)".into())
    } else if segment.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else if segment.len() > 128 {
        Some("must be at most 128 bytes".into())
    } else {
        None
    }
}

struct Report(Vec<Problem>);

impl Report {
    fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            origin: None,
            reason: reason.into(),
        });
    }

    fn range<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.add(key, format!("{value} is out of range: use {min} to {max}"));
        }
    }

    fn file(&mut self, key: &str, path: Option<&Path>) {
        if let Some(path) = path {
            if !path.is_file() {
                self.add(key, format!("{} is not a readable file", path.display()));
            }
        }
    }
}

/// Every rule the configuration breaks; empty when it is valid.
pub(crate) fn problems(config: &Config) -> Vec<Problem> {
    let mut report = Report(Vec::new());
    device_id(&mut report, config);
    mqtt(&mut report, &config.mqtt);

    http(&mut report, config);

    if config.store.path.as_os_str().is_empty() {
        report.add("store.path", "must not be empty");
    }
    if config.store.retention_days == Some(0) {
        report.add(
            "store.retention_days",
            "must be at least 1 (omit it to keep everything)",
        );
    }
    if config.store.retention_rows == Some(0) {
        report.add(
            "store.retention_rows",
            "must be at least 1 (omit it to keep everything)",
        );
    }

    if config
        .watch
        .dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        report.add(
            "watch.dir",
            "must not be empty (omit it to disable the watcher)",
        );
    }
    // Below ~100 ms a file still being copied can look settled.
    report.range("watch.settle_ms", config.watch.settle_ms, 100, 600_000);
    report.range(
        "learning.retrain_after",
        u64::from(config.learning.retrain_after),
        0,
        1_000_000,
    );
    report.range(
        "learning.threads",
        u64::from(config.learning.threads),
        0,
        64,
    );
    for (i, genre) in config.learning.extra_genres.iter().enumerate() {
        if let Err(why) = check_genre_name(genre) {
            report.add(format!("learning.extra_genres[{i}]"), why);
        }
    }

    report.range("inference.threads", config.inference.threads, 0, 256);
    report.range(
        "inference.queue_size",
        config.inference.queue_size,
        1,
        10_000,
    );

    inference_runtime(&mut report, &config.inference);
    inference_memory(&mut report, config);
    dashboard(&mut report, &config.dashboard);

    let defaults = &config.camera_defaults;
    report.range("camera_defaults.width", defaults.width, 16, 8192);
    report.range("camera_defaults.height", defaults.height, 16, 8192);
    report.range("camera_defaults.fps", defaults.fps, 1, 120);
    detection(
        &mut report,
        "camera_defaults.",
        Some(defaults.settle_ms),
        Some(defaults.motion_threshold),
        Some(defaults.change_threshold),
        Some(defaults.min_structure),
    );
    cameras(&mut report, &config.cameras);

    report.0
}

fn http(report: &mut Report, config: &Config) {
    let http = &config.http;
    report.range(
        "http.max_upload_bytes",
        http.max_upload_bytes,
        1024,
        1 << 30,
    );
    report.range("http.upload_memory_mb", http.upload_memory_mb, 1, 65_536);
    if u64::from(http.upload_memory_mb) * MIB < http.max_upload_bytes {
        report.add(
            "http.upload_memory_mb",
            format!(
                "{} MiB cannot hold one upload of http.max_upload_bytes ({} bytes): raise it \
                 or lower the upload limit",
                http.upload_memory_mb, http.max_upload_bytes
            ),
        );
    }
    report.range("http.max_connections", http.max_connections, 8, 65_536);
    report.range("http.header_timeout_s", http.header_timeout_s, 1, 600);
    report.range("http.request_timeout_s", http.request_timeout_s, 1, 3600);
    for (i, host) in http.allowed_hosts.iter().enumerate() {
        let name = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            report.add(
                format!("http.allowed_hosts[{i}]"),
                format!(
                    "`{host}` is not a host name (letters, digits, `-`, `.`, optional `:port`)"
                ),
            );
        }
    }
    if let Some(token) = &http.metrics_token {
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            report.add(
                "http.metrics_token",
                "use at least 16 characters without spaces (`marquee dashboard new-token` \
                 prints a good one)",
            );
        }
    }
}

const MIB: u64 = 1024 * 1024;

fn inference_runtime(report: &mut Report, inference: &super::schema::InferenceConfig) {
    use crate::model::backbone::RuntimeChoice;
    let providers = &inference.onnxruntime_providers;
    if providers.is_empty() {
        report.add(
            "inference.onnxruntime_providers",
            "must name at least one provider (\"cpu\" runs everywhere)",
        );
    }
    for (i, p) in providers.iter().enumerate() {
        if providers[..i].contains(p) {
            report.add(
                format!("inference.onnxruntime_providers[{i}]"),
                "named twice",
            );
        }
    }
    if inference.backend == RuntimeChoice::Onnxruntime && !cfg!(feature = "onnxruntime") {
        report.add(
            "inference.backend",
            "\"onnxruntime\" needs a marquee built with the `onnxruntime` feature; this one \
             has tract only (use \"tract\", or \"auto\" to use onnxruntime where it is built in)",
        );
    }
}

fn inference_memory(report: &mut Report, config: &Config) {
    let inference = &config.inference;
    report.range(
        "inference.max_pixels",
        inference.max_pixels,
        65_536,
        400_000_000,
    );
    report.range(
        "inference.decode_memory_mb",
        inference.decode_memory_mb,
        16,
        65_536,
    );
    // A JPEG at the pixel cap must fit the decode memory on its own.
    let largest = inference.max_pixels.saturating_mul(3);
    if u64::from(inference.decode_memory_mb) * MIB < largest {
        report.add(
            "inference.decode_memory_mb",
            format!(
                "{} MiB cannot hold one image of inference.max_pixels ({} px needs {} MiB): \
                 raise it or lower max_pixels",
                inference.decode_memory_mb,
                inference.max_pixels,
                largest.div_ceil(MIB)
            ),
        );
    }
    let plan = config.memory_plan();
    if !plan.fits() {
        report.add(
            "inference.memory_budget_mb",
            format!("the settings do not fit the budget: {plan}; raise the budget or lower them"),
        );
    }
}

fn dashboard(report: &mut Report, dashboard: &DashboardConfig) {
    if let Some(hash) = &dashboard.password_hash {
        if let Err(err) = argon2::PasswordHash::new(hash) {
            report.add(
                "dashboard.password_hash",
                format!(
                    "not an Argon2 PHC string ({err}): make one with \
                     `marquee dashboard hash-password`, never put the password itself here"
                ),
            );
        }
    }
    for (i, token) in dashboard.api_token_sha256.iter().enumerate() {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            report.add(
                format!("dashboard.api_token_sha256[{i}]"),
                "must be the 64-hex-digit SHA-256 of a token (`marquee dashboard new-token` \
                 prints both), never the token itself",
            );
        }
    }
    if dashboard.open && dashboard.auth_required() {
        report.add(
            "dashboard.open",
            "conflicts with dashboard.password_hash / api_token_sha256: remove one of them",
        );
    }
    if dashboard.read_only_without_login && dashboard.password_hash.is_none() {
        report.add(
            "dashboard.read_only_without_login",
            "needs dashboard.password_hash: without a password nobody could log in to change anything",
        );
    }
    report.range(
        "dashboard.session_hours",
        dashboard.session_hours,
        1,
        24 * 90,
    );
    report.range("dashboard.auto_accept", dashboard.auto_accept, 0.0, 1.0);
    report.range("dashboard.manual_cost", dashboard.manual_cost, 0.0, 1e6);
    report.range(
        "dashboard.correction_cost",
        dashboard.correction_cost,
        0.0,
        1e6,
    );
    if let Some(n) = dashboard.posters_per_year {
        report.range("dashboard.posters_per_year", n, 0.0, 1e12);
    }
    if dashboard.currency.chars().count() > 8 {
        report.add(
            "dashboard.currency",
            "at most 8 characters, e.g. `$` or `EUR `",
        );
    }
}

fn device_id(report: &mut Report, config: &Config) {
    if let Some(reason) = topic_segment_problem(&config.device_id) {
        report.add("device_id", reason);
    } else if config.mqtt.discovery
        && !config
            .device_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        // Home Assistant drops discovery topics whose ids have other characters.
        report.add(
            "device_id",
            "with mqtt.discovery on, use only letters, digits, `-` and `_` \
             (Home Assistant's rule), or set mqtt.discovery = false",
        );
    }
}

fn mqtt(report: &mut Report, mqtt: &MqttConfig) {
    let broker = match parse_broker_url(&mqtt.url) {
        Ok(broker) => Some(broker),
        Err(reason) => {
            report.add("mqtt.url", reason);
            None
        }
    };
    if let Some(reason) = topic_segment_problem(&mqtt.topic_prefix) {
        report.add("mqtt.topic_prefix", reason);
    }
    if mqtt.discovery {
        for level in mqtt.discovery_prefix.split('/') {
            if let Some(reason) = topic_segment_problem(level) {
                report.add("mqtt.discovery_prefix", format!("level `{level}` {reason}"));
            }
        }
    }
    if mqtt.username.as_deref() == Some("") {
        report.add(
            "mqtt.username",
            "must not be empty (omit it to connect anonymously)",
        );
    }
    if mqtt.password.is_some() && mqtt.username.is_none() {
        report.add("mqtt.password", "needs mqtt.username");
    }
    let tls_files = [
        ("mqtt.ca_file", &mqtt.ca_file),
        ("mqtt.client_cert", &mqtt.client_cert),
        ("mqtt.client_key", &mqtt.client_key),
    ];
    for (key, path) in tls_files {
        if broker.as_ref().is_some_and(|b| !b.tls) && path.is_some() {
            report.add(key, "is only used with an mqtts:// URL");
        }
        report.file(key, path.as_deref());
    }
    if mqtt.client_cert.is_some() != mqtt.client_key.is_some() {
        report.add("mqtt.client_cert", "client_cert and client_key go together");
    }
    // rumqttc refuses keep-alives under 5 s.
    report.range("mqtt.keep_alive_s", mqtt.keep_alive_s, 5, u16::MAX);
    report.range("mqtt.stats_interval_s", mqtt.stats_interval_s, 1, 86_400);
}

fn cameras(report: &mut Report, cameras: &[CameraConfig]) {
    let mut names = BTreeSet::new();
    for (i, camera) in cameras.iter().enumerate() {
        let key = |field: &str| format!("camera[{i}].{field}");
        if let Some(reason) = topic_segment_problem(&camera.name) {
            report.add(key("name"), reason);
        } else if !names.insert(camera.name.as_str()) {
            report.add(
                key("name"),
                format!("`{}` is used by another camera", camera.name),
            );
        }
        if let Err(reason) = SourceSpec::parse(&camera.source) {
            report.add(key("source"), reason);
        }
        if let Some(width) = camera.width {
            report.range(&key("width"), width, 16, 8192);
        }
        if let Some(height) = camera.height {
            report.range(&key("height"), height, 16, 8192);
        }
        if let Some(fps) = camera.fps {
            report.range(&key("fps"), fps, 1, 120);
        }
        if let Some(roi) = camera.roi {
            if let Some(reason) = roi_problem(roi) {
                report.add(key("roi"), reason);
            }
        }
        detection(
            report,
            &format!("camera[{i}]."),
            camera.settle_ms,
            camera.motion_threshold,
            camera.change_threshold,
            camera.min_structure,
        );
    }
}

/// Why `[x, y, width, height]` is not a region inside the frame, if it is not.
fn roi_problem([x, y, w, h]: [f64; 4]) -> Option<String> {
    let fractions = [x, y, w, h]
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v));
    if !fractions {
        Some(format!(
            "[{x}, {y}, {w}, {h}]: use fractions of the frame from 0.0 to 1.0, \
             as [x, y, width, height]"
        ))
    } else if w < 0.05 || h < 0.05 {
        Some(format!(
            "[{x}, {y}, {w}, {h}]: width and height must be at least 0.05 of the frame"
        ))
    } else if x + w > 1.0 + 1e-9 || y + h > 1.0 + 1e-9 {
        Some(format!(
            "[{x}, {y}, {w}, {h}]: the region runs past the frame (x + width and \
             y + height must be at most 1.0)"
        ))
    } else {
        None
    }
}

/// The change-detection settings, where they are set.
fn detection(
    report: &mut Report,
    prefix: &str,
    settle_ms: Option<u64>,
    motion: Option<f32>,
    change: Option<f32>,
    structure: Option<f32>,
) {
    if let Some(settle_ms) = settle_ms {
        report.range(&format!("{prefix}settle_ms"), settle_ms, 100, 60_000);
    }
    let floats = [
        ("motion_threshold", motion, 0.001, 2.0),
        ("change_threshold", change, 0.01, 2.0),
        ("min_structure", structure, 0.0, 100.0),
    ];
    for (name, value, min, max) in floats {
        let Some(value) = value else { continue };
        let key = format!("{prefix}{name}");
        if value.is_nan() {
            report.add(key, format!("must be a number from {min} to {max}"));
        } else {
            report.range(&key, value, min, max);
        }
    }
}

/// A genre name: what a CSV row, a form and a topic can carry unambiguously.
pub fn check_genre_name(label: &str) -> Result<(), String> {
    let ok_chars = label
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '/' | '&' | '\''));
    if label.trim().is_empty() || label.trim() != label {
        Err("a genre name is not empty and has no spaces around it".into())
    } else if label.chars().count() > 40 {
        Err("a genre name has at most 40 characters".into())
    } else if !ok_chars {
        Err(format!(
            "`{label}`: a genre name has letters, digits, spaces and - / & ' only"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let ok = |url: &str, host: &str, port: u16, tls: bool| {
            assert_eq!(
                parse_broker_url(url),
                Ok(Broker {
                    host: host.into(),
                    port,
                    tls
                }),
                "{url}"
            );
        };
        ok("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, false);
        ok("mqtt://broker", "broker", 1883, false);
        ok("mqtts://broker.example/", "broker.example", 8883, true);
        ok("MQTTS://[::1]:9000", "::1", 9000, true);
        for bad in [
            "tcp://broker:1883",
            "broker:1883",
            "mqtt://",
            "mqtt://user:pw@broker",
            "mqtt://broker:0",
            "mqtt://broker:70000",
            "mqtt://broker/topic",
            "mqtt://[::1",
        ] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(problems(&Config::default()), vec![]);
    }

    #[test]
    fn topic_levels_reject_wildcards_and_separators() {
        for bad in ["", "a/b", "a+", "#", "$SYS", "a\nb"] {
            let config = Config {
                device_id: bad.into(),
                mqtt: MqttConfig {
                    topic_prefix: bad.into(),
                    ..MqttConfig::default()
                },
                ..Config::default()
            };
            let keys: Vec<String> = problems(&config).into_iter().map(|p| p.key).collect();
            assert_eq!(keys, ["device_id", "mqtt.topic_prefix"], "{bad:?}");
        }
    }

    #[test]
    fn rules_that_span_keys() {
        let mut config = Config::default();
        config.mqtt.password = Some("pw".into());
        config.mqtt.client_cert = Some("/nonexistent/cert.pem".into());
        config.device_id = "lobby.tv".into();
        config.cameras = vec![
            CameraConfig {
                name: "door".into(),
                source: "/dev/video0".into(),
                fps: Some(0),
                ..CameraConfig::default()
            },
            CameraConfig {
                name: "door".into(),
                ..CameraConfig::default()
            },
        ];
        let keys: Vec<String> = problems(&config).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "device_id",
                "mqtt.password",
                "mqtt.client_cert",
                "mqtt.client_cert",
                "mqtt.client_cert",
                "camera[0].fps",
                "camera[1].name",
                "camera[1].source",
            ]
        );
    }
}
