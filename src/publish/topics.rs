//! The MQTT topics of one device, built once from the prefix and device id.

/// Every topic the publisher uses, all under `<prefix>/<device_id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `online` / `offline`, retained; `offline` is also the last will.
    pub available: String,
    /// One JSON [`PosterEvent`](crate::poster::PosterEvent) per classification, QoS 1.
    pub poster: String,
    /// The latest poster event, retained, for dashboards that join late.
    pub last: String,
    /// Periodic [`Stats`](super::Stats), retained.
    pub stats: String,
    /// Images published here are classified (consumed by the ingest module).
    pub ingest: String,
    /// Capture requests for the camera (consumed by the ingest module).
    pub capture: String,
    /// Corrections from pipelines that know the true genres (consumed by
    /// the ingest module).
    pub feedback: String,
    /// `<prefix>/<device_id>/camera`: `<camera>/available` lives under it.
    pub camera_base: String,
    /// The genre head in use (and the candidate being judged), retained.
    pub model: String,
}

impl Topics {
    /// Both parts are single topic levels; the config checks that they hold
    /// no `/`, `+` or `#`.
    pub fn new(prefix: &str, device_id: &str) -> Self {
        let base = format!("{prefix}/{device_id}");
        Self {
            available: format!("{base}/available"),
            poster: format!("{base}/poster"),
            last: format!("{base}/last"),
            stats: format!("{base}/stats"),
            ingest: format!("{base}/ingest"),
            capture: format!("{base}/capture"),
            feedback: format!("{base}/feedback"),
            camera_base: format!("{base}/camera"),
            model: format!("{base}/model"),
        }
    }

    /// `online` / `offline` of one camera, retained.
    pub fn camera_available(&self, camera: &str) -> String {
        format!("{}/{camera}/available", self.camera_base)
    }
}

/// Where Home Assistant says `online` when it (re)starts: the cue to
/// announce the device again, since HA may have lost non-retained state.
pub fn ha_status_topic(discovery_prefix: &str) -> String {
    format!("{discovery_prefix}/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_live_under_prefix_and_device() {
        let t = Topics::new("marquee", "lobby");
        assert_eq!(t.available, "marquee/lobby/available");
        assert_eq!(t.poster, "marquee/lobby/poster");
        assert_eq!(t.last, "marquee/lobby/last");
        assert_eq!(t.stats, "marquee/lobby/stats");
        assert_eq!(t.ingest, "marquee/lobby/ingest");
        assert_eq!(t.capture, "marquee/lobby/capture");
        assert_eq!(
            t.camera_available("desk"),
            "marquee/lobby/camera/desk/available"
        );
        assert_eq!(ha_status_topic("homeassistant"), "homeassistant/status");
    }
}
