//! The JSON payloads Marquee publishes besides the [`PosterEvent`] itself
//! (`crate::poster`). Their JSON Schemas are in `schemas/` and the
//! integration tests check what is really published against them.

use super::error::PublishError;
use crate::poster::PosterEvent;
use serde::{Deserialize, Serialize};

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
    use crate::poster::test_event as event;

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
}
