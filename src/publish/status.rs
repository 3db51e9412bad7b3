//! The publisher's live state for `/metrics`, `/readyz` and the dashboard:
//! lock-free counters written by the session, read by anyone.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// Shared between the session (writer) and the handles (readers).
#[derive(Debug)]
pub struct PublishStatus {
    connected: watch::Sender<bool>,
    /// Whether the broker has confirmed the MQTT inputs' subscriptions
    /// (ingest, capture; on their own connection): images published before
    /// that are not delivered to us.
    subscribed: watch::Sender<bool>,
    in_flight: AtomicU64,
    published: AtomicU64,
    replayed: AtomicU64,
    connects: AtomicU64,
    inbound_dropped: AtomicU64,
    dropped_rows: AtomicU64,
    /// Only the latest error is kept; a Mutex because it is a String.
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`PublishStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// A broker session is up (CONNACK received, not yet lost).
    pub connected: bool,
    /// The latest connection or outbox error, kept after recovery.
    pub last_error: Option<String>,
    /// Outbox rows sent and waiting for the broker's acknowledgement.
    pub in_flight: u64,
    /// Outbox rows acknowledged by the broker since start.
    pub published: u64,
    /// Of those, rows sent with `replayed: true`.
    pub replayed: u64,
    /// Successful broker connections since start.
    pub connects: u64,
    /// MQTT input messages refused: a retained image on the ingest topic,
    /// or a packet over the size the broker was told (`mqtt_retained`,
    /// `mqtt_oversize` in `classify_errors_total`).
    pub inbound_dropped: u64,
    /// Outbox rows that could never be sent (invalid topic, oversize) and
    /// were taken out of the queue; each is logged at ERROR.
    pub dropped_rows: u64,
}

impl Default for PublishStatus {
    fn default() -> Self {
        Self {
            connected: watch::Sender::new(false),
            subscribed: watch::Sender::new(false),
            in_flight: AtomicU64::new(0),
            published: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            inbound_dropped: AtomicU64::new(0),
            dropped_rows: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl PublishStatus {
    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            connected: *self.connected.borrow(),
            last_error: self.last_error(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            inbound_dropped: self.inbound_dropped.load(Ordering::Relaxed),
            dropped_rows: self.dropped_rows.load(Ordering::Relaxed),
        }
    }

    /// Follows `connected`; for readiness checks and tests.
    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Follows whether the ingest/capture subscriptions are confirmed.
    pub fn watch_subscribed(&self) -> watch::Receiver<bool> {
        self.subscribed.subscribe()
    }

    pub(crate) fn set_subscribed(&self, up: bool) {
        self.subscribed.send_replace(up);
    }

    pub fn last_error(&self) -> Option<String> {
        // A poisoned lock only means a writer panicked mid-assignment of an
        // Option<String>; the value is still whole.
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn set_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.send_replace(up);
        if up {
            self.connects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_in_flight(&self, rows: usize) {
        self.in_flight
            .store(u64::try_from(rows).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn add_published(&self, rows: u64, replayed: u64) {
        self.published.fetch_add(rows, Ordering::Relaxed);
        self.replayed.fetch_add(replayed, Ordering::Relaxed);
    }

    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub(crate) fn add_dropped_row(&self) {
        self.dropped_rows.fetch_add(1, Ordering::Relaxed);
    }

    /// Count an MQTT input refused (retained, oversize).
    pub(crate) fn inbound_dropped(&self) {
        self.inbound_dropped.fetch_add(1, Ordering::Relaxed);
    }
}
