//! Each camera's `online`/`offline` on `<prefix>/<device_id>/camera/<name>/available`
//! (retained; the publisher sends them all again after a reconnect), and
//! `offline` for every camera once they have stopped at shutdown.

use super::Cameras;
use crate::publish::{PublishHandle, Topics};
use tokio_util::sync::CancellationToken;

fn payload(online: bool) -> &'static str {
    if online {
        "online"
    } else {
        "offline"
    }
}

/// Follow the cameras until `stop`, then wait for their threads to end and
/// say `offline` for each (the publisher stops after the inputs, so these
/// go out before the device's own `offline`).
pub async fn run(
    cameras: Cameras,
    publish: PublishHandle,
    topics: Topics,
    stop: CancellationToken,
) {
    let registry = cameras.registry();
    let mut followers = tokio::task::JoinSet::new();
    for (name, mut online) in registry.watch_online() {
        let publish = publish.clone();
        let topic = topics.camera_available(&name);
        let stop = stop.clone();
        followers.spawn(async move {
            loop {
                let now = *online.borrow_and_update();
                publish.set_retained(topic.clone(), payload(now));
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    changed = online.changed() => if changed.is_err() { return },
                }
            }
        });
    }
    stop.cancelled().await;
    followers.shutdown().await;
    cameras.wait().await;
    for name in registry.names() {
        publish.set_retained(topics.camera_available(&name), payload(false));
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
