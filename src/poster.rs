//! What flows through the pipeline: a [`Poster`] from any input, its
//! [`PosterId`], the [`PosterEvent`] every input is answered with (and
//! that goes out on MQTT), the [`PosterError`] when it is refused, and the
//! clock. Every stage uses these; this module uses no other stage.

use crate::model::{GenreScore, Prediction};
use crate::vision::VisionError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use tokio::sync::oneshot;
use utoipa::ToSchema;

/// Now, as Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A poster's id: the lowercase hex sha256 of its image bytes, so the same
/// poster from two sources, or replayed, is one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PosterId(String);

/// A string that is not a [`PosterId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a poster id (64 lowercase hex digits: the sha256 of the image)")]
pub struct InvalidPosterId(pub String);

impl PosterId {
    /// The id of an image: hash its bytes exactly as received.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Check an id given from outside (a URL, a stored row).
    pub fn parse(text: &str) -> Result<Self, InvalidPosterId> {
        let ok = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidPosterId(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PosterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PosterId {
    type Err = InvalidPosterId;
    fn from_str(text: &str) -> Result<Self, InvalidPosterId> {
        Self::parse(text)
    }
}

impl utoipa::PartialSchema for PosterId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .description(Some("lowercase hex sha256 of the poster's image bytes"))
            .into()
    }
}

impl utoipa::ToSchema for PosterId {}

impl TryFrom<String> for PosterId {
    type Error = InvalidPosterId;
    fn try_from(text: String) -> Result<Self, InvalidPosterId> {
        Self::parse(&text)
    }
}

impl From<PosterId> for String {
    fn from(id: PosterId) -> String {
        id.0
    }
}

/// One classification, as published on `<prefix>/<device_id>/poster` (and
/// retained on `.../last`) and as answered by the HTTP API.
///
/// The pipeline stores it with `replayed: false`; the publisher flips that
/// to `true` when it delivers the row after a wait
/// ([`crate::publish::mark_replayed`]), so subscribers can tell a live event
/// from a backlog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PosterEvent {
    /// The poster's id: lowercase hex sha256 of its image bytes.
    pub id: String,
    /// Where it came from: `http`, `mqtt`, `watch`, `camera:<name>`.
    pub source: String,
    /// Every genre with its score, best first.
    pub genres: Vec<GenreScore>,
    /// The genres over their tuned thresholds, best first (may be empty).
    pub tags: Vec<String>,
    /// The three best genres, always present.
    pub top3: Vec<GenreScore>,
    /// Model name and variant (`efficientnet-lite0/int8`).
    pub model: String,
    /// When it was classified: Unix milliseconds, UTC, like the store.
    pub ts: i64,
    /// True when delivered from the outbox after an outage or a restart.
    pub replayed: bool,
}

impl PosterEvent {
    /// A live event (`replayed: false`) from a prediction.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        prediction: &Prediction,
        model: impl Into<String>,
        ts_ms: i64,
    ) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            genres: prediction.genres.clone(),
            tags: prediction.tags.clone(),
            top3: prediction.top3.clone(),
            model: model.into(),
            ts: ts_ms,
            replayed: false,
        }
    }

    /// The JSON payload stored in the outbox and published.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// A file in the watched folder, as the watcher saw it once it had settled.
/// The three fields are its key in the store: new content (a new size or
/// mtime) is a new file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedFile {
    /// The path's raw bytes (Unix paths need not be UTF-8).
    pub path: Vec<u8>,
    pub size_bytes: u64,
    /// Modification time, Unix milliseconds.
    pub mtime_ms: i64,
}

/// Where a poster's outcome goes when someone waits for it.
pub type Reply = oneshot::Sender<Result<PosterEvent, PosterError>>;

/// The outcome of a queued poster, for the input that waits for it.
#[derive(Debug)]
pub struct Answer(oneshot::Receiver<Result<PosterEvent, PosterError>>);

impl Answer {
    /// Wait for the outcome. The workers always answer; a reply dropped
    /// unanswered means the pipeline stopped mid-way.
    pub async fn outcome(self) -> Result<PosterEvent, PosterError> {
        self.0.await.unwrap_or(Err(PosterError::ShuttingDown))
    }

    /// The outcome if it has come: `Err(self)` while it has not, `Ok(None)`
    /// when the pipeline stopped without answering.
    pub fn try_outcome(&mut self) -> Option<Option<Result<PosterEvent, PosterError>>> {
        match self.0.try_recv() {
            Ok(outcome) => Some(Some(outcome)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
        }
    }
}

/// One image on its way to the classify workers.
#[derive(Debug)]
pub struct Poster {
    /// The image exactly as received: its sha256 is the poster's id.
    pub bytes: bytes::Bytes,
    /// `http`, `mqtt`, `watch`, `camera:<name>`.
    pub source: String,
    /// Unix milliseconds (UTC), when the input got it.
    pub received_at: i64,
    /// Where the outcome goes when the input waits for it. `None`: fire
    /// and forget; the result still reaches the store and the outbox.
    pub reply: Option<Reply>,
    /// The watched-folder file it was read from: recorded as decided in the
    /// same transaction as the result (or as refused, when the bytes
    /// themselves are bad), so it is classified exactly once.
    pub file: Option<WatchedFile>,
    /// The share of the inputs' memory budget its bytes hold; given back
    /// when the poster is dropped (see `crate::queue`).
    pub memory: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Poster {
    /// A poster nobody waits for.
    pub fn new(bytes: bytes::Bytes, source: impl Into<String>) -> Self {
        Self {
            bytes,
            source: source.into(),
            received_at: now_ms(),
            reply: None,
            file: None,
            memory: None,
        }
    }

    /// A poster whose input waits for its outcome.
    pub fn awaited(bytes: bytes::Bytes, source: impl Into<String>) -> (Self, Answer) {
        let (reply, answer) = oneshot::channel();
        let mut poster = Self::new(bytes, source);
        poster.reply = Some(reply);
        (poster, Answer(answer))
    }

    /// Answer whoever waits for this poster (nobody may be left: the
    /// client can have gone; the result is stored either way).
    pub fn answer(&mut self, outcome: Result<PosterEvent, PosterError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
    }
}

/// Why a poster was not classified. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PosterError {
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

    #[error("the {0}; scale it down before sending")]
    TooManyPixels(String),

    #[error("bad multipart form: {0} (send the image in a field named `file`)")]
    Multipart(String),

    #[error("the classify queue is full; retry after a few seconds")]
    QueueFull,

    #[error("the daemon is shutting down; retry against the restarted service")]
    ShuttingDown,

    #[error("the model failed on this image: {0}")]
    Model(String),

    #[error("the result could not be stored: {0} (check the disk and the store path)")]
    Store(String),
}

impl PosterError {
    /// Whether the same bytes would fail the same way again (a bad image),
    /// rather than failing for a passing reason (a full queue, the store).
    /// A watched file that failed for good is not retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Empty
            | Self::TooLarge { .. }
            | Self::NotAnImage
            | Self::BadImage(_)
            | Self::TooManyPixels(_)
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
            Self::TooManyPixels(_) => "too_many_pixels",
            Self::Multipart(_) => "multipart",
            Self::QueueFull => "queue_full",
            Self::ShuttingDown => "shutting_down",
            Self::Model(_) => "model",
            Self::Store(_) => "store",
        }
    }
}

impl From<VisionError> for PosterError {
    fn from(err: VisionError) -> Self {
        match err {
            VisionError::Empty => Self::Empty,
            VisionError::TooLarge { size, limit } => Self::TooLarge {
                size: u64::try_from(size).unwrap_or(u64::MAX),
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
            },
            VisionError::UnknownFormat => Self::NotAnImage,
            err @ (VisionError::Dimensions { .. } | VisionError::Pixels { .. }) => {
                Self::TooManyPixels(err.to_string())
            }
            VisionError::Decode(reason) => Self::BadImage(reason),
        }
    }
}

/// A small event for unit tests.
#[cfg(test)]
pub(crate) fn test_event() -> PosterEvent {
    let horror = GenreScore {
        label: "horror".into(),
        score: 0.9,
    };
    let prediction = Prediction {
        genres: vec![
            horror.clone(),
            GenreScore {
                label: "drama".into(),
                score: 0.2,
            },
        ],
        tags: vec!["horror".into()],
        top3: vec![horror],
    };
    PosterEvent::new(
        "ab".repeat(32),
        "http",
        &prediction,
        "m/int8",
        1_700_000_000_000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_bytes_themselves_are_permanent() {
        assert!(PosterError::NotAnImage.is_permanent());
        assert!(PosterError::BadImage("truncated".into()).is_permanent());
        assert!(!PosterError::ShuttingDown.is_permanent());
        assert!(!PosterError::QueueFull.is_permanent());
    }

    #[test]
    fn ids_are_checked() {
        let id = PosterId::of_bytes(b"poster");
        assert_eq!(PosterId::parse(id.as_str()), Ok(id.clone()));
        assert!(PosterId::parse("ABC").is_err());
        assert!(PosterId::parse(&id.as_str().to_uppercase()).is_err());
    }

    #[test]
    fn the_event_has_the_documented_fields() {
        let value: serde_json::Value =
            serde_json::from_slice(&test_event().to_json().unwrap()).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["genres", "id", "model", "replayed", "source", "tags", "top3", "ts"]
        );
    }

    #[tokio::test]
    async fn an_answer_dropped_unanswered_is_a_shutdown() {
        let (poster, answer) = Poster::awaited(bytes::Bytes::from_static(b"x"), "http");
        drop(poster);
        assert!(matches!(
            answer.outcome().await,
            Err(PosterError::ShuttingDown)
        ));
    }
}
