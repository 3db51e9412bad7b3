//! The cameras as the rest of the daemon sees them: a cheap, cloneable
//! handle for status and capture requests, shared by the HTTP API, the MQTT
//! `capture` topic, `/metrics` and the availability publisher.

use super::runner::RunnerOptions;
use super::status::{CameraStatus, SharedStatus};
use crate::poster::{Answer, PosterError, PosterEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Why a capture request was not answered with a classification.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no camera is configured: add a [[camera]] table to the configuration")]
    NoCameras,

    #[error("no camera named `{name}`; the cameras are: {}", .known.join(", "))]
    Unknown { name: String, known: Vec<String> },

    #[error("camera `{name}` is offline ({reason}); check its cable or network and retry")]
    Offline { name: String, reason: String },

    #[error("camera `{name}` gave no frame within {secs} s; check it and retry")]
    Timeout { name: String, secs: u64 },

    #[error("camera `{name}` sent a bad frame ({reason}); retry")]
    BadFrame { name: String, reason: String },

    #[error(transparent)]
    Poster(#[from] PosterError),
}

/// The answer to a capture request: the poster is queued, its result comes
/// on the receiver.
pub(super) type Queued = Answer;

pub(super) struct CaptureRequest {
    pub(super) reply: oneshot::Sender<Result<Queued, CaptureError>>,
}

/// One camera as the registry sees it.
pub(super) struct Shared {
    pub(super) name: String,
    pub(super) status: SharedStatus,
    pub(super) requests: mpsc::Sender<CaptureRequest>,
    /// Wakes a source that polls slowly while idle (an on-demand snapshot
    /// camera) so a capture does not wait for its next poll.
    pub(super) wake: Arc<Notify>,
}

/// A cheap, cloneable handle on the running cameras.
#[derive(Clone)]
pub struct CameraRegistry {
    pub(super) cameras: Arc<Vec<Arc<Shared>>>,
    pub(super) capture_timeout: Duration,
}

impl std::fmt::Debug for CameraRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraRegistry")
            .field("cameras", &self.names())
            .finish()
    }
}

impl CameraRegistry {
    /// No cameras (captures answer [`CaptureError::NoCameras`]).
    pub fn empty() -> Self {
        Self {
            cameras: Arc::new(Vec::new()),
            capture_timeout: RunnerOptions::default().capture_timeout,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// Every camera's status, in configuration order.
    pub fn snapshot(&self) -> Vec<CameraStatus> {
        self.cameras.iter().map(|c| c.status.snapshot()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.name.clone()).collect()
    }

    /// Each camera's name and its `online` flag, to follow.
    pub fn watch_online(&self) -> Vec<(String, watch::Receiver<bool>)> {
        self.cameras
            .iter()
            .map(|c| (c.name.clone(), c.status.watch_online()))
            .collect()
    }

    fn find(&self, name: Option<&str>) -> Result<&Arc<Shared>, CaptureError> {
        let first = self.cameras.first().ok_or(CaptureError::NoCameras)?;
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            None => Ok(first),
            Some(name) => {
                self.cameras
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| CaptureError::Unknown {
                        name: name.to_owned(),
                        known: self.names(),
                    })
            }
        }
    }

    /// Capture a frame from camera `name` (default: the first camera) and
    /// wait for its classification.
    pub async fn capture(&self, name: Option<&str>) -> Result<PosterEvent, CaptureError> {
        let queued = self.queue_capture(name).await?;
        Ok(queued.outcome().await?)
    }

    /// Capture a frame and queue it without waiting for the result (which
    /// goes to MQTT and the store as usual).
    pub async fn queue_capture(&self, name: Option<&str>) -> Result<Queued, CaptureError> {
        let camera = self.find(name)?;
        let offline = || CaptureError::Offline {
            name: camera.name.clone(),
            reason: camera
                .status
                .snapshot()
                .last_error
                .unwrap_or_else(|| "no frame yet".to_owned()),
        };
        if !camera.status.is_online() {
            return Err(offline());
        }
        let timeout = CaptureError::Timeout {
            name: camera.name.clone(),
            secs: self.capture_timeout.as_secs().max(1),
        };
        let (reply, answer) = oneshot::channel();
        camera
            .requests
            .try_send(CaptureRequest { reply })
            .map_err(|_| PosterError::QueueFull)?;
        camera.wake.notify_one();
        match tokio::time::timeout(self.capture_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(offline()),
            Err(_) => Err(timeout),
        }
    }
}
