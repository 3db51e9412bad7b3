//! From a `[[camera]]` table to a camera ready to start: its frame source
//! and the handle that wakes it for a capture.

use super::source::{http, synthetic, FrameSource};
use crate::config::{CameraSettings, SourceSpec};
use std::sync::Arc;
use tokio::sync::Notify;

/// Why a camera cannot be set up; says which camera and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A camera ready to start.
pub struct CameraSetup {
    pub settings: CameraSettings,
    pub source: Box<dyn FrameSource>,
    pub wake: Arc<Notify>,
}

impl CameraSetup {
    /// The source named by `settings.source`; the error says what to fix.
    pub fn from_settings(settings: CameraSettings) -> Result<Self, SetupError> {
        let wake = Arc::new(Notify::new());
        let source = build_source(&settings, &wake).map_err(SetupError)?;
        Ok(Self {
            settings,
            source,
            wake,
        })
    }

    /// A camera on a source made elsewhere (tests, the synthetic source).
    pub fn with_source(settings: CameraSettings, source: Box<dyn FrameSource>) -> Self {
        Self {
            settings,
            source,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// Every `[[camera]]` of the configuration, ready to start; the error names
/// the camera and what to fix.
pub fn setups_from_config(config: &crate::config::Config) -> Result<Vec<CameraSetup>, SetupError> {
    config
        .cameras
        .iter()
        .enumerate()
        .map(|(i, camera)| {
            CameraSetup::from_settings(camera.resolve(&config.camera_defaults))
                .map_err(|err| SetupError(format!("camera[{i}] (`{}`): {err}", camera.name)))
        })
        .collect()
}

/// Build the frame source for a camera's `source` string.
pub fn build_source(
    settings: &CameraSettings,
    wake: &Arc<Notify>,
) -> Result<Box<dyn FrameSource>, String> {
    match SourceSpec::parse(&settings.source)? {
        SourceSpec::Http { url, stream } => Ok(Box::new(http::HttpSource::new(
            &url,
            stream,
            settings,
            Arc::clone(wake),
        )?)),
        SourceSpec::Synthetic { .. } => Ok(Box::new(synthetic::SyntheticSource::live(
            synthetic::demo_script(),
            settings.fps,
            settings.width,
            settings.height,
        ))),
        SourceSpec::V4l2 { device } => v4l2_source(&device, settings),
    }
}

#[cfg(feature = "camera")]
fn v4l2_source(device: &str, settings: &CameraSettings) -> Result<Box<dyn FrameSource>, String> {
    Ok(Box::new(super::source::v4l2::V4l2Source::new(
        device, settings,
    )))
}

#[cfg(not(feature = "camera"))]
fn v4l2_source(device: &str, _settings: &CameraSettings) -> Result<Box<dyn FrameSource>, String> {
    Err(format!(
        "`{device}` is a V4L2 camera, and this build has no V4L2 support: rebuild with \
         `cargo build --release --features camera` (needs libclang-dev), or use an http:// \
         camera"
    ))
}
