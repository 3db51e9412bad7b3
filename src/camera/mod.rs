//! Cameras: each `[[camera]]` runs on a thread of its own, turns frames into
//! [`Poster`]s (source `camera:<name>`) on the pipeline's queue, and keeps a
//! status the dashboard, `/metrics` and MQTT read.
//!
//! - `on_demand`: a frame is captured when asked ([`CameraRegistry::capture`]:
//!   `POST /api/v1/capture`, the MQTT `capture` topic). Frames still arrive
//!   (that is how the camera is known to be online) but are not decoded.
//! - `continuous`: every frame goes through the [`change::Detector`]; a
//!   poster is captured once it has settled (see `change.rs` for the rules).
//!   Continuous cameras can be captured on demand too.
//!
//! When the device or stream goes away the camera goes offline and is
//! reopened with exponential backoff (0.5 s doubling to 30 s, reset by the
//! first frame); each change is logged once, not each attempt.
//!
//! Full queue: an on-demand capture is answered 503 at once (like an upload,
//! [`WhenFull::Reject`](crate::queue::WhenFull)); a continuous capture is held
//! and retried with the following frames, a newer capture replacing it (and
//! counted as dropped, `KeepNewest`): the camera never blocks on the workers
//! and the newest poster is the one that goes.
//!
//! Work per frame (decode, signature, JPEG encoding of a capture) runs on
//! the camera's thread, never on the async runtime that serves HTTP and MQTT.

//! | module | owns |
//! | --- | --- |
//! | [`registry`] | the cheap handle the HTTP API, MQTT, `/metrics` and availability share; capture requests |
//! | [`setup`] | a `[[camera]]` table to a ready [`source::FrameSource`] |
//! | [`runner`] | each camera's thread: open, read, detect, capture, reopen with backoff |
//! | [`change`] | change detection: judge each settled scene once |
//! | [`status`] | what the registry reports about each camera |
//! | [`availability`] | retained `online`/`offline` per camera on MQTT |
//! | [`source`] | the frame sources: HTTP, V4L2, synthetic |

pub mod availability;
pub mod change;
pub mod registry;
pub mod runner;
pub mod setup;
pub mod source;
pub mod status;

pub use registry::{CameraRegistry, CaptureError};
pub use runner::{Cameras, RunnerOptions};
pub use setup::{setups_from_config, CameraSetup, SetupError};
pub use source::{Frame, FrameData, FrameSource, SourceError, SourceFuture};
pub use status::CameraStatus;
