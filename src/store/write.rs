//! Writes: a poster's sighting with its outbox messages, the outbox's
//! progress, feedback.

use super::error::{to_i64, Context, StoreError};
use super::types::{
    NewClassification, NewFeedback, NewPoster, OutboxMessage, OutboxRow, Qos, RecordOutcome,
};
use super::Store;
use crate::poster::{now_ms, WatchedFile};
use rusqlite::{params, OptionalExtension, Row};

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

impl Store {
    /// Store one sighting in ONE transaction: the poster (inserted, or its
    /// `last_seen` moved on if already known), the classification, and the
    /// outbox messages to publish about it. Either all of it is durable when
    /// this returns, or none of it is.
    pub fn record(
        &self,
        poster: &NewPoster,
        classification: &NewClassification,
        outbox: &[OutboxMessage],
    ) -> Result<RecordOutcome, StoreError> {
        self.record_sighting(poster, classification, outbox, None)
    }

    /// [`record`](Self::record) for a file from the watched folder: the file
    /// is marked done in the same transaction, so a crash can neither lose
    /// its result nor have it classified again after a restart.
    pub fn record_watched(
        &self,
        poster: &NewPoster,
        classification: &NewClassification,
        outbox: &[OutboxMessage],
        file: &WatchedFile,
    ) -> Result<RecordOutcome, StoreError> {
        self.record_sighting(poster, classification, outbox, Some(file))
    }

    fn record_sighting(
        &self,
        poster: &NewPoster,
        classification: &NewClassification,
        outbox: &[OutboxMessage],
        file: Option<&WatchedFile>,
    ) -> Result<RecordOutcome, StoreError> {
        let prediction = &classification.prediction;
        let scores = json("scores", &prediction.genres)?;
        let tags = json("tags", &prediction.tags)?;
        let top3 = json("top3", &prediction.top3)?;
        let size = to_i64("size_bytes", poster.size_bytes)?;

        // The store's only transactions are these, never nested.
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting to record a poster")?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO posters
                   (id, first_seen, last_seen, source, size_bytes, width, height, thumbnail)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    poster.id.as_str(),
                    poster.seen_at_ms,
                    poster.source,
                    size,
                    poster.width,
                    poster.height,
                    poster.thumbnail,
                ])
            })
            .ctx("inserting a poster")?;
        let new_poster = inserted == 1;
        if !new_poster {
            tx.prepare_cached(
                "UPDATE posters SET last_seen = max(last_seen, ?2),
                        thumbnail = coalesce(thumbnail, ?3)
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    poster.id.as_str(),
                    poster.seen_at_ms,
                    poster.thumbnail
                ])
            })
            .ctx("updating a known poster")?;
        }

        let classification_id = tx
            .prepare_cached(
                "INSERT INTO classifications
                   (poster_id, source, model, scores, tags, top3, latency_ms, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        poster.id.as_str(),
                        poster.source,
                        classification.model,
                        scores,
                        tags,
                        top3,
                        classification.latency_ms,
                        classification.created_at_ms,
                    ],
                    |row| row.get(0),
                )
            })
            .ctx("inserting a classification")?;

        if let Some(features) = &poster.features {
            let dim = to_i64("feature dim", features.len() as u64)?;
            tx.prepare_cached(
                "INSERT INTO features (poster_id, model, dim, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (poster_id) DO UPDATE
                 SET model = excluded.model, dim = excluded.dim, data = excluded.data",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    poster.id.as_str(),
                    // Features belong to the backbone, not to the head.
                    backbone_of(&classification.model),
                    dim,
                    super::features::encode(features),
                ])
            })
            .ctx("storing a poster's features")?;
        }

        if let Some(shadow) = &classification.shadow {
            let scores = json("shadow scores", &shadow.prediction.genres)?;
            let shadow_tags = json("shadow tags", &shadow.prediction.tags)?;
            tx.prepare_cached(
                "INSERT INTO shadow
                   (poster_id, head_id, active_id, scores, tags, active_tags, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (head_id, poster_id) DO UPDATE
                 SET active_id = excluded.active_id, scores = excluded.scores,
                     tags = excluded.tags, active_tags = excluded.active_tags,
                     created_at = excluded.created_at",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    poster.id.as_str(),
                    shadow.head_id,
                    shadow.active_id,
                    scores,
                    shadow_tags,
                    tags,
                    classification.created_at_ms,
                ])
            })
            .ctx("storing a candidate head's shadow scores")?;
        }

        let mut outbox_seqs = Vec::with_capacity(outbox.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO outbox (topic, payload, qos, retain, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     RETURNING seq",
                )
                .ctx("queueing an outbox message")?;
            let created_at = now_ms();
            for message in outbox {
                let seq = stmt
                    .query_row(
                        params![
                            message.topic,
                            message.payload,
                            message.qos.as_u8(),
                            message.retain,
                            created_at,
                        ],
                        |row| row.get(0),
                    )
                    .ctx("queueing an outbox message")?;
                outbox_seqs.push(seq);
            }
        }
        if let Some(file) = file {
            super::watched::mark(&tx, file, Some(&poster.id), None)?;
        }
        tx.commit().ctx("committing a poster")?;
        Ok(RecordOutcome {
            new_poster,
            classification_id,
            outbox_seqs,
        })
    }

    /// The oldest unpublished outbox rows, in `seq` order (publish order).
    pub fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.pending_outbox_after(0, limit)
    }

    /// Unpublished rows with `seq > after`, in order: lets a publisher keep
    /// several messages in flight and fetch the next ones behind them.
    pub fn pending_outbox_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = to_i64("limit", limit as u64)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, topic, payload, qos, retain, created_at, attempts
                 FROM outbox
                 WHERE published_at IS NULL AND seq > ?1
                 ORDER BY seq
                 LIMIT ?2",
            )
            .ctx("reading the outbox")?;
        let rows = stmt
            .query_map(params![after, limit], outbox_row)
            .ctx("reading the outbox")?;
        rows.collect::<Result<Vec<_>, _>>()
            .ctx("reading the outbox")
    }

    /// The broker acknowledged `seq`. Returns false if it was not pending
    /// (already marked, or unknown): a duplicate ack is harmless.
    pub fn mark_published(&self, seq: i64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET published_at = ?2
                 WHERE seq = ?1 AND published_at IS NULL",
            )
            .and_then(|mut stmt| stmt.execute(params![seq, now_ms()]))
            .ctx("marking an outbox message published")?;
        Ok(changed == 1)
    }

    /// Count one more publish attempt of `seq` (for the stats and for spotting
    /// a message the broker keeps refusing).
    pub fn bump_attempts(&self, seq: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1")
            .and_then(|mut stmt| stmt.execute([seq]))
            .ctx("counting a publish attempt")?;
        Ok(())
    }

    /// How many outbox rows wait for the broker.
    pub fn outbox_backlog(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .ctx("counting the outbox backlog")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Store a person's genres for a known poster; returns the feedback id.
    pub fn add_feedback(&self, feedback: &NewFeedback) -> Result<i64, StoreError> {
        let genres = json("feedback genres", &feedback.genres)?;
        let known = self
            .conn
            .prepare_cached("SELECT 1 FROM posters WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([feedback.poster_id.as_str()], |_| Ok(()))
                    .optional()
            })
            .ctx("looking up a poster for feedback")?;
        if known.is_none() {
            return Err(StoreError::UnknownPoster(feedback.poster_id.to_string()));
        }
        self.conn
            .prepare_cached(
                "INSERT INTO feedback (poster_id, genres, author, created_at, via, kept)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        feedback.poster_id.as_str(),
                        genres,
                        feedback.by,
                        feedback.created_at_ms,
                        feedback.via,
                        feedback.kept
                    ],
                    |row| row.get(0),
                )
            })
            .ctx("storing feedback")
    }
}

fn outbox_row(row: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    let qos: u8 = row.get(3)?;
    Ok(OutboxRow {
        seq: row.get(0)?,
        topic: row.get(1)?,
        payload: row.get(2)?,
        // The CHECK constraint keeps qos in 0..=2.
        qos: Qos::from_u8(qos).unwrap_or(Qos::AtLeastOnce),
        retain: row.get(4)?,
        created_at_ms: row.get(5)?,
        attempts: row.get(6)?,
    })
}

/// `efficientnet-lite0-int8` of `efficientnet-lite0-int8+head-7`, and
/// `efficientnet-lite0-int8-full` of `efficientnet-lite0-int8-full@onnxruntime`:
/// features belong to the variant's file, whichever runtime ran it (tract
/// and onnxruntime agree on a file to a cosine of 0.9998 or better).
pub(crate) fn backbone_of(model: &str) -> &str {
    let backbone = model.split('+').next().unwrap_or(model);
    backbone.split('@').next().unwrap_or(backbone)
}
