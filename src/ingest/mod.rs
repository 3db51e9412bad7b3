//! Inputs: each one turns one kind of input into [`Poster`]s on the
//! pipeline's bounded channel, and decides what to do when it is full.
//!
//! | input | module | when the queue is full |
//! | --- | --- | --- |
//! | `POST /api/v1/posters` | [`http`] | 503 with `Retry-After` (the client retries) |
//! | `<prefix>/<device_id>/ingest` | `app.rs` (forwarder) | waits; the publisher's inbound queue then drops and counts |
//! | `[watch] dir` | [`watch`] | waits (`send().await`): the file stays on disk until there is room |
//! | `[[camera]]` | [`crate::camera`] | on demand: 503; continuous: the newest capture waits, older ones are dropped and counted |

pub mod http;
pub mod watch;

use crate::publish::PosterEvent;
use crate::store::{StoreError, WatchedFile};
use crate::vision::VisionError;
use tokio::sync::oneshot;

/// One image on its way to the classify workers.
#[derive(Debug)]
pub struct Poster {
    /// The image exactly as received: its sha256 is the poster's id.
    pub bytes: bytes::Bytes,
    /// `http`, `mqtt`, `watch`, `camera:<name>`.
    pub source: String,
    /// Unix milliseconds (UTC), when the input got it.
    pub received_at: i64,
    /// Where the result goes when someone waits for it (an HTTP upload).
    /// `None`: fire and forget (MQTT ingest); the result still reaches
    /// the store and the outbox.
    pub reply: Option<oneshot::Sender<Result<PosterEvent, IngestError>>>,
    /// The watched-folder file this came from: the worker marks it done in
    /// the same transaction as the result, so it is never classified twice.
    pub watched: Option<WatchedFile>,
}

/// Why a poster was not classified. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the body is empty: send the image bytes, or a multipart form with a `file` field")]
    Empty,

    #[error(
        "the image is {size} bytes, over the {limit}-byte limit (http.max_upload_bytes); \
         send a smaller image"
    )]
    TooLarge { size: u64, limit: u64 },

    #[error("not a recognised image format: send a JPEG, PNG, WebP, BMP or GIF")]
    NotAnImage,

    #[error("the image cannot be decoded ({0}); send the complete, uncorrupted file")]
    BadImage(String),

    #[error(
        "the image is {width}x{height} pixels, over the {max_width}x{max_height} limit; \
         scale it down before sending"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },

    #[error("bad multipart form: {0} (send the image in a field named `file`)")]
    Multipart(String),

    #[error("the classify queue is full; retry after a few seconds")]
    QueueFull,

    #[error("the daemon is shutting down; retry against the restarted service")]
    ShuttingDown,

    #[error("the model failed on this image: {0}")]
    Model(String),

    #[error("the result could not be stored: {0} (check the disk and the store path)")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Whether the same bytes would fail the same way again (a bad image),
    /// rather than failing for a passing reason (a full queue, the store).
    /// A watched file that failed for good is not retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Empty
            | Self::TooLarge { .. }
            | Self::NotAnImage
            | Self::BadImage(_)
            | Self::TooManyPixels { .. }
            | Self::Multipart(_)
            | Self::Model(_) => true,
            Self::QueueFull | Self::ShuttingDown | Self::Store(_) => false,
        }
    }

    /// A short, stable label for the `classify_errors_total{kind}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::NotAnImage => "not_an_image",
            Self::BadImage(_) => "bad_image",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::Multipart(_) => "multipart",
            Self::QueueFull => "queue_full",
            Self::ShuttingDown => "shutting_down",
            Self::Model(_) => "model",
            Self::Store(_) => "store",
        }
    }
}

impl From<VisionError> for IngestError {
    fn from(err: VisionError) -> Self {
        match err {
            VisionError::Empty => Self::Empty,
            VisionError::TooLarge { size, limit } => Self::TooLarge {
                size: u64::try_from(size).unwrap_or(u64::MAX),
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
            },
            VisionError::UnknownFormat => Self::NotAnImage,
            VisionError::Dimensions {
                width,
                height,
                max_width,
                max_height,
            } => Self::TooManyPixels {
                width,
                height,
                max_width,
                max_height,
            },
            VisionError::Decode(reason) => Self::BadImage(reason),
        }
    }
}
