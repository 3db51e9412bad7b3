//! Telemetry: the daemon's counters and the Prometheus text exposition
//! for `/metrics`.
//!
//! Hand-written rather than a metrics crate: a dozen series, written by the
//! classify workers and read by one endpoint, need no registry. Counters
//! are atomics or a mutex-guarded map per label set (labels are few and
//! bounded: the sources and the error kinds).

use crate::camera::CameraStatus;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the inference latency buckets, in seconds: from a fast
/// x86 core (~10 ms) to an old Pi (~2 s).
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters written by the pipeline.
#[derive(Debug, Default)]
pub struct Metrics {
    posters_by_source: Mutex<BTreeMap<String, u64>>,
    errors_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Corrections by where they came from and whether they were stored.
    feedback: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Histogram,
}

/// What the pipeline knows at scrape time, besides the counters.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// `None` when the store did not answer in time.
    pub outbox_backlog: Option<u64>,
    pub broker_connected: bool,
    /// The MQTT inputs' subscriptions (ingest, capture) are confirmed.
    pub inputs_subscribed: bool,
    pub published: u64,
    pub inbound_dropped: u64,
    pub model_loaded: bool,
    /// Each camera's counters, read at scrape time.
    pub cameras: Vec<CameraStatus>,
}

#[derive(Debug)]
struct Histogram {
    /// One count per bucket (not cumulative; summed at render time).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds, so the sum is an integer atomic.
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned counter map is still a valid map: keep counting.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// A poster classified and stored.
    pub fn poster_done(&self, source: &str, inference: Duration) {
        *lock(&self.posters_by_source)
            .entry(source.to_owned())
            .or_insert(0) += 1;
        let secs = inference.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            self.latency.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(inference.as_micros()).unwrap_or(u64::MAX);
        self.latency.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// A poster refused or failed (bad image, full queue, store error...).
    pub fn error(&self, kind: &'static str) {
        *lock(&self.errors_by_kind).entry(kind).or_insert(0) += 1;
    }

    /// A correction from `via`, stored or refused.
    pub fn feedback(&self, via: &'static str, stored: bool) {
        let outcome = if stored { "stored" } else { "refused" };
        *lock(&self.feedback).entry((via, outcome)).or_insert(0) += 1;
    }

    /// Many corrections from `via` at once (an import).
    pub fn feedback_many(&self, via: &'static str, stored: usize, refused: usize) {
        let mut counts = lock(&self.feedback);
        *counts.entry((via, "stored")).or_insert(0) += stored as u64;
        *counts.entry((via, "refused")).or_insert(0) += refused as u64;
    }

    /// Posters classified so far from `source`.
    pub fn posters(&self, source: &str) -> u64 {
        lock(&self.posters_by_source)
            .get(source)
            .copied()
            .unwrap_or(0)
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: &str) -> u64 {
        lock(&self.errors_by_kind).get(kind).copied().unwrap_or(0)
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "marquee_queue_depth",
            "Posters waiting for a classify worker.",
            g.queue_depth,
        );
        gauge(
            &mut out,
            "marquee_queue_capacity",
            "Size of the classify queue (inference.queue_size).",
            g.queue_capacity,
        );
        if let Some(backlog) = g.outbox_backlog {
            gauge(
                &mut out,
                "marquee_outbox_backlog",
                "Results stored but not yet acknowledged by the broker.",
                backlog,
            );
        }
        gauge(
            &mut out,
            "marquee_mqtt_inputs_subscribed",
            "1 while the broker has confirmed the MQTT inputs' subscriptions (ingest, capture).",
            u64::from(g.inputs_subscribed),
        );
        gauge(
            &mut out,
            "marquee_broker_connected",
            "1 while an MQTT session is up.",
            u64::from(g.broker_connected),
        );
        gauge(
            &mut out,
            "marquee_model_loaded",
            "1 once the model is loaded.",
            u64::from(g.model_loaded),
        );
        counter_header(
            &mut out,
            "marquee_mqtt_published_total",
            "Outbox rows acknowledged by the broker since start.",
        );
        let _ = writeln!(out, "marquee_mqtt_published_total {}", g.published);
        counter_header(
            &mut out,
            "marquee_mqtt_ingest_dropped_total",
            "Images on the ingest topic dropped because the queue was full.",
        );
        let _ = writeln!(
            out,
            "marquee_mqtt_ingest_dropped_total {}",
            g.inbound_dropped
        );

        counter_header(
            &mut out,
            "marquee_posters_total",
            "Posters classified and stored since start, by source.",
        );
        for (source, n) in lock(&self.posters_by_source).iter() {
            let _ = writeln!(
                out,
                "marquee_posters_total{{source=\"{}\"}} {n}",
                escape(source)
            );
        }
        counter_header(
            &mut out,
            "marquee_classify_errors_total",
            "Posters refused or failed since start, by kind.",
        );
        for (kind, n) in lock(&self.errors_by_kind).iter() {
            let _ = writeln!(out, "marquee_classify_errors_total{{kind=\"{kind}\"}} {n}");
        }
        counter_header(
            &mut out,
            "marquee_feedback_total",
            "Corrections since start, by where they came from and whether they were stored.",
        );
        for ((via, outcome), n) in lock(&self.feedback).iter() {
            let _ = writeln!(
                out,
                "marquee_feedback_total{{via=\"{via}\",outcome=\"{outcome}\"}} {n}"
            );
        }

        let name = "marquee_inference_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Decode, preprocess and model time per poster."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (le, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
        render_cameras(&mut out, &g.cameras);
        out
    }
}

fn render_cameras(out: &mut String, cameras: &[CameraStatus]) {
    if cameras.is_empty() {
        return;
    }
    type Field = fn(&crate::camera::CameraStatus) -> u64;
    let series: [(&str, &str, &str, Field); 6] = [
        (
            "marquee_camera_online",
            "gauge",
            "1 while the camera delivers frames.",
            |c| u64::from(c.online),
        ),
        (
            "marquee_camera_frames_total",
            "counter",
            "Frames received.",
            |c| c.frames,
        ),
        (
            "marquee_camera_bad_frames_total",
            "counter",
            "Frames that could not be decoded.",
            |c| c.bad_frames,
        ),
        (
            "marquee_camera_captures_total",
            "counter",
            "Posters captured and queued.",
            |c| c.captures,
        ),
        (
            "marquee_camera_dropped_total",
            "counter",
            "Captures replaced while the queue was full.",
            |c| c.dropped,
        ),
        (
            "marquee_camera_reconnects_total",
            "counter",
            "Times the camera came back after going away.",
            |c| c.reconnects,
        ),
    ];
    for (name, kind, help, field) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for camera in cameras {
            let _ = writeln!(
                out,
                "{name}{{camera=\"{}\"}} {}",
                escape(&camera.name),
                field(camera)
            );
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

fn counter_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
}

/// Label values escape `\`, `"` and newlines (camera names come from config).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.poster_done("http", Duration::from_millis(30));
        m.poster_done("http", Duration::from_millis(300));
        m.poster_done("camera:\"front\"", Duration::from_secs(100));
        m.error("bad_image");
        let text = m.render(&Gauges {
            queue_depth: 2,
            queue_capacity: 16,
            outbox_backlog: Some(5),
            broker_connected: true,
            ..Gauges::default()
        });
        assert!(text.contains("marquee_posters_total{source=\"http\"} 2\n"));
        assert!(text.contains("marquee_posters_total{source=\"camera:\\\"front\\\"\"} 1\n"));
        assert!(text.contains("marquee_classify_errors_total{kind=\"bad_image\"} 1\n"));
        assert!(text.contains("marquee_inference_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("marquee_inference_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("marquee_inference_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("marquee_inference_seconds_count 3\n"));
        assert!(text.contains("marquee_queue_depth 2\n"));
        assert!(text.contains("marquee_outbox_backlog 5\n"));
        assert!(text.contains("marquee_broker_connected 1\n"));
        assert_eq!(m.posters("http"), 2);
        assert_eq!(m.errors("bad_image"), 1);
    }
}
