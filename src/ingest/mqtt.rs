//! The MQTT inputs: images published on `<prefix>/<device_id>/ingest`
//! become posters (source `mqtt`); requests on `<prefix>/<device_id>/capture`
//! go to the cameras. Both arrive through the publisher's connection as
//! [`Inbound`] messages; results go out on `.../poster` like any other.
//!
//! Full queue: the forwarder waits ([`WhenFull::Wait`]); the publisher's
//! inbound queue then fills and it drops (and counts) further images,
//! rather than this task growing memory.

use crate::camera::CameraRegistry;
use crate::poster::{Poster, PosterError};
use crate::publish::Inbound;
use crate::queue::{PosterQueue, WhenFull};
use crate::telemetry::Metrics;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The `source` of posters from the ingest topic.
pub const SOURCE: &str = "mqtt";

/// Forward inbound messages until `stop` or the publisher goes.
pub async fn forward(
    mut inbound: mpsc::Receiver<Inbound>,
    queue: PosterQueue,
    cameras: CameraRegistry,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    let mut input = queue.input(WhenFull::Wait);
    drop(queue);
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            message = inbound.recv() => message,
        };
        match message {
            None => return,
            Some(Inbound::Ingest(bytes)) => {
                let poster = Poster::new(bytes, SOURCE);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => {
                        // Not stored: the broker already has our ack for it.
                        metrics.error(PosterError::ShuttingDown.kind());
                        warn!("an MQTT ingest image was dropped at shutdown");
                        return;
                    }
                    offered = input.offer(poster) => if offered.is_err() { return },
                }
            }
            Some(Inbound::Capture(payload)) => {
                let cameras = cameras.clone();
                // Its own task: waiting for a frame must not hold up ingest.
                tokio::spawn(async move {
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
        }
    }
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
}
