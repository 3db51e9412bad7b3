//! The JSON payloads Marquee publishes. Their JSON Schemas are in `schemas/`
//! and the integration tests check what is really published against them.

use super::error::PublishError;
use crate::model::{GenreScore, Prediction};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One classification, as published on `<prefix>/<device_id>/poster` (and
/// retained on `.../last`) and as answered by the HTTP API.
///
/// The pipeline stores it with `replayed: false`; the publisher flips that
/// to `true` when it delivers the row after a wait (see
/// [`mark_replayed`]), so subscribers can tell a live event from a backlog.
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

    /// The payload to store in the outbox.
    pub fn to_json(&self) -> Result<Vec<u8>, PublishError> {
        serde_json::to_vec(self).map_err(|source| PublishError::Encode {
            what: "a poster event",
            source,
        })
    }
}

/// The payload of a stored event, as it should go out after a wait: the
/// same event with `replayed: true`. `None` when the payload is not a live
/// poster event (another kind of message, or already marked), in which case
/// it is published exactly as stored.
///
/// Parsed and re-encoded through [`PosterEvent`] so the field order (and so
/// the bytes) match what a live event looks like.
pub fn mark_replayed(payload: &[u8]) -> Option<Vec<u8>> {
    let mut event: PosterEvent = serde_json::from_slice(payload).ok()?;
    if event.replayed {
        return None;
    }
    event.replayed = true;
    serde_json::to_vec(&event).ok()
}

/// Published on `<prefix>/<device_id>/stats` every `stats_interval`,
/// retained; Home Assistant's "posters today" sensor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Distinct posters in the store's history.
    pub posters_total: u64,
    /// Distinct posters classified since local midnight.
    pub posters_today: u64,
    /// Results waiting for the broker.
    pub outbox_backlog: u64,
    /// Outbox rows the broker acknowledged since this process started.
    pub published: u64,
    /// Seconds since the publisher started.
    pub uptime_s: u64,
    pub model: String,
    /// Unix milliseconds, UTC.
    pub ts: i64,
}

impl Stats {
    pub fn to_json(&self) -> Result<Vec<u8>, PublishError> {
        serde_json::to_vec(self).map_err(|source| PublishError::Encode {
            what: "the stats message",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> PosterEvent {
        let prediction = Prediction {
            genres: vec![
                GenreScore {
                    label: "horror".into(),
                    score: 0.9,
                },
                GenreScore {
                    label: "drama".into(),
                    score: 0.2,
                },
            ],
            tags: vec!["horror".into()],
            top3: vec![GenreScore {
                label: "horror".into(),
                score: 0.9,
            }],
        };
        PosterEvent::new(
            "ab".repeat(32),
            "http",
            &prediction,
            "m/int8",
            1_700_000_000_000,
        )
    }

    #[test]
    fn replay_flips_only_the_flag_and_keeps_field_order() {
        let live = event().to_json().unwrap();
        let replayed = mark_replayed(&live).unwrap();
        let expected = String::from_utf8(live)
            .unwrap()
            .replace("\"replayed\":false", "\"replayed\":true");
        assert_eq!(String::from_utf8(replayed.clone()).unwrap(), expected);
        assert_eq!(mark_replayed(&replayed), None, "already marked");
    }

    #[test]
    fn other_payloads_are_left_alone() {
        assert_eq!(mark_replayed(b"online"), None);
        assert_eq!(mark_replayed(br#"{"replayed":false}"#), None);
    }

    #[test]
    fn the_event_has_the_documented_fields() {
        let value: serde_json::Value = serde_json::from_slice(&event().to_json().unwrap()).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["genres", "id", "model", "replayed", "source", "tags", "top3", "ts"]
        );
    }
}
