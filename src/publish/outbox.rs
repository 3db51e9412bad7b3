//! What the publisher needs from the durable outbox, as a trait so the
//! delivery logic does not depend on the store's concrete type.
//!
//! The contract that makes delivery lossless: a row is written (committed)
//! before anyone calls [`PublishHandle::outbox_written`](super::PublishHandle::outbox_written),
//! `seq` only grows, and a row stays pending until
//! [`Outbox::mark_published`] names it, which the publisher does only
//! after the broker acknowledged it.

use rumqttc::QoS;
use std::future::Future;

/// An outbox row not yet acknowledged by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Strictly increasing, never reused: rows are published in this order.
    pub seq: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    /// When the row was committed, Unix milliseconds; decides `replayed`.
    pub created_at_ms: i64,
}

/// Counts for the stats message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PosterCounts {
    pub total: u64,
    pub today: u64,
}

/// The durable queue of messages to publish.
///
/// Implementations run their I/O off the async runtime (the store does it
/// on its writer thread). Errors are logged and retried by the publisher;
/// they never drop a row.
pub trait Outbox: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Pending rows with `seq > after`, in `seq` order, at most `limit`.
    fn pending_outbox_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, Self::Error>> + Send;

    /// The broker acknowledged these rows. Marking one that is already
    /// marked (a duplicate ack) must succeed.
    fn mark_published(
        &self,
        seqs: Vec<i64>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// How many rows are pending.
    fn outbox_backlog(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Posters in the history, for the stats message.
    fn poster_counts(&self) -> impl Future<Output = Result<PosterCounts, Self::Error>> + Send;
}
