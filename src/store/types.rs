//! The values that go into the store and come out of it.
//!
//! Times are Unix milliseconds (`*_ms`, UTC): one integer type for SQL
//! comparisons, JSON and Prometheus alike.

use crate::model::{GenreScore, Prediction};
use crate::poster::PosterId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A poster as it arrived, for [`Store::record`](super::Store::record).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPoster {
    pub id: PosterId,
    /// Where it came from: `http`, `mqtt`, `watch`, `camera:<name>`.
    pub source: String,
    pub seen_at_ms: i64,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
    /// A small JPEG for the dashboard; kept from the first sighting.
    pub thumbnail: Option<Vec<u8>>,
    /// The backbone's pooled features (poster map, retraining); replaced by
    /// each new sighting. `None` keeps what is stored.
    pub features: Option<Vec<f32>>,
}

/// What the model said about one sighting of a poster.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClassification {
    /// Model name and variant, as published in events (`efficientnet-lite0/int8`).
    pub model: String,
    pub prediction: Prediction,
    pub latency_ms: f64,
    pub created_at_ms: i64,
    /// What a candidate head said about the same poster (never published).
    pub shadow: Option<NewShadow>,
}

/// A candidate head's verdict on a poster, kept beside the active head's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewShadow {
    pub head_id: i64,
    pub active_id: Option<i64>,
    pub prediction: Prediction,
}

/// MQTT delivery guarantee for an outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl Qos {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(level: u8) -> Option<Self> {
        match level {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// An MQTT message to publish once the transaction that creates it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
}

/// An outbox row not yet acknowledged by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Strictly increasing, never reused: publish in this order.
    pub seq: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    pub created_at_ms: i64,
    /// Publish attempts so far ([`Store::bump_attempts`](super::Store::bump_attempts)).
    pub attempts: u32,
}

/// What [`Store::record`](super::Store::record) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// False when the poster was already known (only `last_seen` changed).
    pub new_poster: bool,
    pub classification_id: i64,
    /// The outbox rows created, in the order given.
    pub outbox_seqs: Vec<i64>,
}

/// A stored poster, without its thumbnail ([`Store::thumbnail`](super::Store::thumbnail)).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PosterInfo {
    pub id: PosterId,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The source of the first sighting.
    pub source: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// One stored classification (one sighting of a poster).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClassificationRecord {
    pub id: i64,
    pub poster_id: PosterId,
    /// The source of this sighting.
    pub source: String,
    pub model: String,
    /// Every genre, best first.
    pub genres: Vec<GenreScore>,
    pub tags: Vec<String>,
    pub top3: Vec<GenreScore>,
    pub latency_ms: f64,
    pub created_at_ms: i64,
}

/// A poster with its latest classification and feedback count.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PosterDetail {
    pub poster: PosterInfo,
    pub latest: Option<ClassificationRecord>,
    /// Classifications kept for this poster.
    pub sightings: u64,
}

/// Which classifications [`Store::recent`](super::Store::recent) returns;
/// every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    pub source: Option<String>,
    /// A genre among the classification's tags.
    pub tag: Option<String>,
    pub model: Option<String>,
    pub poster_id: Option<PosterId>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The best genre's score at least this.
    pub min_confidence: Option<f32>,
    /// The best genre's score below this.
    pub max_confidence: Option<f32>,
}

/// A person's correction of a poster's genres, from the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeedback {
    pub poster_id: PosterId,
    pub genres: Vec<String>,
    /// Who said so, if known.
    pub by: Option<String>,
    pub created_at_ms: i64,
    /// Where it came from: `dashboard`, `api`, `mqtt` or `import`.
    pub via: &'static str,
    /// It confirms the tags the poster has (`genres` are those tags).
    pub kept: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Feedback {
    pub id: i64,
    pub poster_id: PosterId,
    pub genres: Vec<String>,
    pub by: Option<String>,
    pub created_at_ms: i64,
    /// Where it came from: `dashboard`, `api`, `mqtt` or `import`.
    pub via: String,
    /// It confirmed the tags as they were.
    pub kept: bool,
}

/// What [`Store::apply_retention`](super::Store::apply_retention) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub classifications: u64,
    pub posters: u64,
    /// Published outbox rows only; unpublished rows are never deleted.
    pub outbox: u64,
}

/// What the store already decided about a [`WatchedFile`] (from the
/// watched folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchedState {
    /// Classified and recorded (as this poster).
    Done(Option<PosterId>),
    /// Refused for good (not an image, unreadable); the reason is kept.
    Failed(String),
}
