//! The frame-source trait every camera kind implements, the frame it
//! yields, and the sources: [`http`] (JPEG snapshots, MJPEG streams),
//! [`v4l2`] (USB cameras, feature `camera`), [`synthetic`] (drawn scenes
//! for tests and `synthetic:demo`).

pub mod convert;
pub mod http;
pub mod mjpeg;
pub mod synthetic;
#[cfg(feature = "camera")]
pub mod v4l2;

use bytes::Bytes;
use image::RgbImage;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed future, so the trait stays object-safe (`Box<dyn FrameSource>`).
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Frames bigger than this are refused as bad frames: 8192x8192 is already
/// the largest camera resolution the config accepts.
pub const MAX_FRAME_PIXELS: u64 = 8192 * 8192;

/// Why a source gave no frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The device or stream is not there (unplugged, refused, closed, timed
    /// out): the camera goes offline and is reopened with backoff.
    #[error("{0}")]
    Gone(String),
    /// One frame was unusable (truncated, not an image): it is skipped and
    /// counted; the camera stays online.
    #[error("{0}")]
    BadFrame(String),
    /// This source can never work as configured (a V4L2 device in a build
    /// without the `camera` feature): the camera stays offline.
    #[error("{0}")]
    Unsupported(String),
}

/// A frame's pixels as the source delivered them; decoded only when
/// needed, so an idle on-demand camera does not pay for decoding.
#[derive(Debug, Clone)]
pub enum FrameData {
    /// A JPEG (HTTP cameras, MJPEG USB cameras).
    Jpeg(Bytes),
    /// Already RGB (synthetic scenes, converted V4L2 formats).
    Rgb(Arc<RgbImage>),
}

/// One frame and when it was taken.
#[derive(Debug, Clone)]
pub struct Frame {
    /// When the frame was taken (the synthetic source uses a virtual clock,
    /// so tests do not depend on the machine's speed).
    pub at: Instant,
    pub data: FrameData,
}

impl Frame {
    pub fn rgb(at: Instant, image: RgbImage) -> Self {
        Self {
            at,
            data: FrameData::Rgb(Arc::new(image)),
        }
    }

    /// The pixels; a frame that cannot be decoded is a [`SourceError::BadFrame`].
    pub fn decode(&self) -> Result<Arc<RgbImage>, SourceError> {
        match &self.data {
            FrameData::Rgb(image) => Ok(Arc::clone(image)),
            FrameData::Jpeg(bytes) => decode_jpeg(bytes).map(Arc::new),
        }
    }
}

/// Decode a JPEG frame, refusing absurd sizes before allocating them.
pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, SourceError> {
    if bytes.len() < 4 || bytes[..2] != [0xFF, 0xD8] {
        return Err(SourceError::BadFrame(format!(
            "the camera sent {} bytes that are not a JPEG (no FF D8 start marker)",
            bytes.len()
        )));
    }
    // A frame cut short (a dropped connection mid-part) still decodes into
    // a half-grey picture: the end-of-image marker is what proves it whole.
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(SourceError::BadFrame(format!(
            "the camera's JPEG frame is truncated ({} bytes, no FF D9 end marker)",
            bytes.len()
        )));
    }
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_FRAME_PIXELS * 4);
    reader.limits(limits);
    reader
        .decode()
        .map(|image| image.into_rgb8())
        .map_err(|err| SourceError::BadFrame(format!("the camera's JPEG frame is broken: {err}")))
}

/// A camera: opened, read frame by frame, closed; reopened after
/// [`SourceError::Gone`].
///
/// `next_frame` paces itself (a device delivers at its frame rate, a
/// snapshot source polls at `fps`). Futures from these methods may be
/// dropped only between frames: the runner never cancels one half-way.
pub trait FrameSource: Send {
    /// Connect to the device or stream.
    fn open(&mut self) -> SourceFuture<'_, Result<(), SourceError>>;

    /// The next frame.
    fn next_frame(&mut self) -> SourceFuture<'_, Result<Frame, SourceError>>;

    /// Release the device or connection; `open` may be called again.
    fn close(&mut self);

    /// Someone wants a frame now (on-demand capture): a source that polls
    /// slowly while idle fetches one at once. Default: nothing to do.
    fn hurry(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_jpegs_are_bad_frames_not_panics() {
        let jpeg = crate::drawing::drawn_poster_jpeg(1, 64, 48);
        assert_eq!(decode_jpeg(&jpeg).unwrap().dimensions(), (64, 48));
        for bad in [&b"<html>nope</html>"[..], &jpeg[..jpeg.len() / 2], &[][..]] {
            assert!(matches!(decode_jpeg(bad), Err(SourceError::BadFrame(_))));
        }
    }
}
