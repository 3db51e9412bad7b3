//! USB (UVC) cameras through V4L2, with nokhwa. Built only with the
//! `camera` cargo feature: nokhwa's V4L2 bindings need libclang to build.
//!
//! nokhwa's camera blocks on every frame and is not `Send`, so each open
//! starts a thread that owns it and hands frames over a small channel;
//! closing drops the channel and the thread ends after its current frame.
//! MJPEG is asked for (cheap over USB, kept compressed until needed); other
//! layouts are converted by [`super::convert`].

use super::convert::{to_frame_data, Layout};
use super::{Frame, FrameSource, SourceError, SourceFuture};
use crate::config::CameraSettings;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use nokhwa::Camera;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A camera that delivers nothing for this long is treated as gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Frames waiting for the runner; old frames are worth nothing.
const FRAME_QUEUE: usize = 2;

pub struct V4l2Source {
    device: String,
    width: u32,
    height: u32,
    fps: u32,
    frames: Option<mpsc::Receiver<Result<Frame, SourceError>>>,
}

impl V4l2Source {
    pub fn new(device: &str, settings: &CameraSettings) -> Self {
        Self {
            device: device.to_owned(),
            width: settings.width,
            height: settings.height,
            fps: settings.fps,
            frames: None,
        }
    }
}

/// `/dev/video3` (or a `/dev/v4l/by-id/...` link to it) → 3.
fn device_index(device: &str) -> Result<u32, SourceError> {
    let path = Path::new(device);
    let real = path.canonicalize().map_err(|err| {
        SourceError::Gone(format!(
            "{device} is not there ({err}): is the camera plugged in?"
        ))
    })?;
    real.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("video"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            SourceError::Unsupported(format!(
                "{device} ({}) is not a /dev/videoN device",
                real.display()
            ))
        })
}

fn layout(format: FrameFormat) -> Layout {
    match format {
        FrameFormat::MJPEG => Layout::Mjpeg,
        FrameFormat::YUYV => Layout::Yuyv,
        FrameFormat::NV12 => Layout::Nv12,
        FrameFormat::GRAY => Layout::Gray,
        FrameFormat::RAWRGB => Layout::Rgb,
        FrameFormat::RAWBGR => Layout::Bgr,
    }
}

/// The capture thread: open, then frames until the runner hangs up.
fn capture(
    index: u32,
    device: String,
    format: CameraFormat,
    opened: oneshot::Sender<Result<(), SourceError>>,
    frames: mpsc::Sender<Result<Frame, SourceError>>,
) {
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(format));
    let camera = Camera::new(CameraIndex::Index(index), requested).and_then(|mut camera| {
        camera.open_stream()?;
        Ok(camera)
    });
    let mut camera = match camera {
        Ok(camera) => {
            let _ = opened.send(Ok(()));
            camera
        }
        Err(err) => {
            let _ = opened.send(Err(SourceError::Gone(format!(
                "cannot open {device}: {err}"
            ))));
            return;
        }
    };
    loop {
        let frame = camera
            .frame()
            .map_err(|err| SourceError::Gone(format!("{device} stopped delivering frames: {err}")));
        let gone = frame.is_err();
        let frame = frame.and_then(|buffer| {
            let resolution = buffer.resolution();
            to_frame_data(
                layout(buffer.source_frame_format()),
                resolution.width(),
                resolution.height(),
                buffer.buffer(),
            )
            .map(|data| Frame {
                at: Instant::now(),
                data,
            })
        });
        if frames.blocking_send(frame).is_err() || gone {
            break;
        }
    }
    let _ = camera.stop_stream();
}

impl FrameSource for V4l2Source {
    fn open(&mut self) -> SourceFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            self.frames = None;
            let index = device_index(&self.device)?;
            let format = CameraFormat::new(
                Resolution::new(self.width, self.height),
                FrameFormat::MJPEG,
                self.fps,
            );
            let (opened_tx, opened) = oneshot::channel();
            let (frames_tx, frames) = mpsc::channel(FRAME_QUEUE);
            let device = self.device.clone();
            std::thread::Builder::new()
                .name(format!("marquee-v4l2-{index}"))
                .spawn(move || capture(index, device, format, opened_tx, frames_tx))
                .map_err(|err| {
                    SourceError::Gone(format!("cannot start a capture thread: {err}"))
                })?;
            match tokio::time::timeout(FRAME_TIMEOUT, opened).await {
                Ok(Ok(Ok(()))) => {
                    self.frames = Some(frames);
                    Ok(())
                }
                Ok(Ok(Err(err))) => Err(err),
                Ok(Err(_)) => Err(SourceError::Gone(format!(
                    "the capture thread for {} ended while opening it",
                    self.device
                ))),
                Err(_) => Err(SourceError::Gone(format!(
                    "{} did not open within {}s",
                    self.device,
                    FRAME_TIMEOUT.as_secs()
                ))),
            }
        })
    }

    fn next_frame(&mut self) -> SourceFuture<'_, Result<Frame, SourceError>> {
        Box::pin(async move {
            let device = self.device.clone();
            let Some(frames) = self.frames.as_mut() else {
                return Err(SourceError::Gone(format!("{device} is not open")));
            };
            match tokio::time::timeout(FRAME_TIMEOUT, frames.recv()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => Err(SourceError::Gone(format!("{device} closed"))),
                Err(_) => Err(SourceError::Gone(format!(
                    "{device} delivered no frame for {}s",
                    FRAME_TIMEOUT.as_secs()
                ))),
            }
        })
    }

    fn close(&mut self) {
        // The capture thread sees the closed channel and releases the device.
        self.frames = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_gone_not_a_crash() {
        assert!(matches!(
            device_index("/dev/video-marquee-absent"),
            Err(SourceError::Gone(_))
        ));
        assert!(matches!(
            device_index("/dev/null"),
            Err(SourceError::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn opening_an_absent_camera_fails_cleanly() {
        let settings = crate::config::CameraConfig {
            name: "absent".into(),
            source: "/dev/video9".into(),
            ..Default::default()
        }
        .resolve(&Default::default());
        let mut source = V4l2Source::new("/dev/video9", &settings);
        assert!(matches!(source.open().await, Err(SourceError::Gone(_))));
        assert!(matches!(
            source.next_frame().await,
            Err(SourceError::Gone(_))
        ));
        source.close();
    }
}
