//! Forgetting old history, never undelivered messages.

use super::error::{to_i64, Context, StoreError};
use super::types::RetentionReport;
use super::Store;
use rusqlite::params;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Store {
    /// Delete classifications older than `days` and beyond the newest `rows`,
    /// then posters left with no classification and no feedback (a person's
    /// labels are kept: they are what retraining needs), then published
    /// outbox rows by the same two limits. Unpublished outbox rows are never
    /// deleted, however old: they are results the broker has not had yet.
    /// `None` disables a limit. One transaction.
    pub fn apply_retention(
        &self,
        days: Option<u32>,
        rows: Option<u64>,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        let cutoff = days.map(|d| now_ms.saturating_sub(i64::from(d).saturating_mul(DAY_MS)));
        let keep = rows.map(|r| to_i64("retention_rows", r)).transpose()?;

        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting retention")?;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if let Some(cutoff) = cutoff {
            report.classifications += count(
                tx.execute(
                    "DELETE FROM classifications WHERE created_at < ?1",
                    [cutoff],
                )
                .ctx("deleting old classifications")?,
            );
            report.outbox += count(
                tx.execute(
                    "DELETE FROM outbox
                     WHERE published_at IS NOT NULL AND published_at < ?1",
                    [cutoff],
                )
                .ctx("deleting old published outbox rows")?,
            );
        }
        if let Some(keep) = keep {
            // Ids grow with insertion, so "newest N" is "the N highest ids".
            report.classifications += count(
                tx.execute(
                    "DELETE FROM classifications WHERE id <=
                       (SELECT id FROM classifications ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                    params![keep],
                )
                .ctx("deleting classifications over the row limit")?,
            );
            report.outbox += count(
                tx.execute(
                    "DELETE FROM outbox WHERE published_at IS NOT NULL AND seq <=
                       (SELECT seq FROM outbox WHERE published_at IS NOT NULL
                        ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                    params![keep],
                )
                .ctx("deleting published outbox rows over the row limit")?,
            );
        }
        if cutoff.is_some() || keep.is_some() {
            report.posters = count(
                tx.execute(
                    "DELETE FROM posters
                     WHERE NOT EXISTS (SELECT 1 FROM classifications c WHERE c.poster_id = posters.id)
                       AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.poster_id = posters.id)",
                    [],
                )
                .ctx("deleting posters without history")?,
            );
        }
        tx.commit().ctx("committing retention")?;
        Ok(report)
    }
}
