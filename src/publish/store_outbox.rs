//! [`Outbox`] for the SQLite store, through its writer thread.

use super::outbox::{Outbox, OutboxRow, PosterCounts};
use crate::store::{self, StoreError, StoreHandle};
use rumqttc::QoS;

impl Outbox for StoreHandle {
    type Error = StoreError;

    async fn pending_outbox_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self
            .call(move |s| s.pending_outbox_after(after, limit))
            .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        // One job for the whole batch: acks arrive in bursts and each job
        // waits its turn behind the pipeline's writes.
        self.call(move |s| {
            for seq in seqs {
                s.mark_published(seq)?;
            }
            Ok(())
        })
        .await
    }

    async fn outbox_backlog(&self) -> Result<u64, StoreError> {
        self.call(|s| s.outbox_backlog()).await
    }

    async fn poster_counts(&self) -> Result<PosterCounts, StoreError> {
        self.call(|s| {
            Ok(PosterCounts {
                total: s.posters_since(0)?,
                today: s.posters_today()?,
            })
        })
        .await
    }
}

fn row(r: store::OutboxRow) -> OutboxRow {
    OutboxRow {
        seq: r.seq,
        topic: r.topic,
        payload: r.payload,
        qos: match r.qos {
            store::Qos::AtMostOnce => QoS::AtMostOnce,
            store::Qos::AtLeastOnce => QoS::AtLeastOnce,
            store::Qos::ExactlyOnce => QoS::ExactlyOnce,
        },
        retain: r.retain,
        created_at_ms: r.created_at_ms,
    }
}
