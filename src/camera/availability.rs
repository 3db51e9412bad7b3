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
