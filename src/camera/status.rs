//! What each camera is doing, for `GET /api/v1/cameras`, `/metrics`, the
//! dashboard and the MQTT availability topics. Written by the camera's
//! thread, read by anyone.

use crate::config::CameraMode;
use serde::Serialize;
use std::sync::Mutex;
use tokio::sync::watch;

/// A point-in-time copy of one camera's state.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CameraStatus {
    pub name: String,
    /// The configured source, with any password in the URL hidden.
    pub source: String,
    /// `v4l2`, `http` or `synthetic`.
    pub kind: &'static str,
    pub mode: CameraMode,
    /// Frames are arriving.
    pub online: bool,
    /// Why the camera is (or last was) offline, or its last bad frame.
    pub last_error: Option<String>,
    /// Unix milliseconds of the newest frame.
    pub last_frame_ms: Option<i64>,
    pub frames: u64,
    /// Frames that could not be decoded (skipped).
    pub bad_frames: u64,
    /// Posters sent to the classify queue.
    pub captures: u64,
    /// Captures the full queue refused (a newer one replaced them).
    pub dropped: u64,
    /// Times the camera came back after going away.
    pub reconnects: u64,
    /// The id (sha256) of the newest captured poster.
    pub last_capture_id: Option<String>,
    pub last_capture_ms: Option<i64>,
}

/// The shared, mutable status of one camera.
#[derive(Debug)]
pub struct SharedStatus {
    status: Mutex<CameraStatus>,
    online: watch::Sender<bool>,
}

impl SharedStatus {
    pub fn new(name: &str, source: &str, kind: &'static str, mode: CameraMode) -> Self {
        Self {
            status: Mutex::new(CameraStatus {
                name: name.to_owned(),
                source: crate::config::redact_url(source),
                kind,
                mode,
                online: false,
                last_error: None,
                last_frame_ms: None,
                frames: 0,
                bad_frames: 0,
                captures: 0,
                dropped: 0,
                reconnects: 0,
                last_capture_id: None,
                last_capture_ms: None,
            }),
            online: watch::Sender::new(false),
        }
    }

    pub fn snapshot(&self) -> CameraStatus {
        self.lock().clone()
    }

    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    /// Follows `online`, for the MQTT availability topic.
    pub fn watch_online(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }

    /// Record a state change; true when it is one (so the caller logs once).
    pub fn set_online(&self, online: bool, error: Option<String>) -> bool {
        let mut status = self.lock();
        let changed = status.online != online;
        if online && changed && status.frames > 0 {
            status.reconnects += 1;
        }
        status.online = online;
        if error.is_some() {
            status.last_error = error;
        }
        drop(status);
        self.online.send_if_modified(|current| {
            let changed = *current != online;
            *current = online;
            changed
        });
        changed
    }

    pub fn frame(&self, at_ms: i64) {
        let mut status = self.lock();
        status.frames += 1;
        status.last_frame_ms = Some(at_ms);
    }

    pub fn bad_frame(&self, error: String) {
        let mut status = self.lock();
        status.bad_frames += 1;
        status.last_error = Some(error);
    }

    pub fn captured(&self, id: String, at_ms: i64) {
        let mut status = self.lock();
        status.captures += 1;
        status.last_capture_id = Some(id);
        status.last_capture_ms = Some(at_ms);
    }

    pub fn dropped(&self) {
        self.lock().dropped += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CameraStatus> {
        // A poisoned status is still a whole struct of counters.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_count_returns_not_the_first_start() {
        let s = SharedStatus::new("desk", "/dev/video0", "v4l2", CameraMode::OnDemand);
        assert!(s.set_online(true, None));
        s.frame(1);
        assert!(!s.set_online(true, None));
        assert!(s.set_online(false, Some("unplugged".into())));
        assert!(s.set_online(true, None));
        let snap = s.snapshot();
        assert_eq!((snap.online, snap.reconnects), (true, 1));
        assert_eq!(snap.last_error.as_deref(), Some("unplugged"));
    }
}
