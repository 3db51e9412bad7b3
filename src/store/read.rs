//! Reads for the dashboard, the metrics and the Home Assistant sensors.

use super::error::{to_i64, Context, StoreError};
use super::types::{ClassificationRecord, Feedback, HistoryFilter, PosterDetail, PosterInfo};
use super::Store;
use crate::poster::PosterId;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use std::collections::BTreeMap;

pub(super) const CLASSIFICATION_COLUMNS: &str =
    "c.id, c.poster_id, c.source, c.model, c.scores, c.tags, c.top3, c.latency_ms, c.created_at";

/// A JSON column, with the row it came from named if it is unreadable.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        what,
        key: key.to_owned(),
        detail: err.to_string(),
    })
}

/// The `WHERE` clause for `filter`, built from fixed fragments only: every
/// value is a bound parameter.
fn filter_clause(filter: &HistoryFilter) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(source) = &filter.source {
        clauses.push("c.source = ?");
        values.push(Value::Text(source.clone()));
    }
    if let Some(tag) = &filter.tag {
        clauses.push("EXISTS (SELECT 1 FROM json_each(c.tags) WHERE json_each.value = ?)");
        values.push(Value::Text(tag.clone()));
    }
    if let Some(model) = &filter.model {
        clauses.push("c.model = ?");
        values.push(Value::Text(model.clone()));
    }
    if let Some(id) = &filter.poster_id {
        clauses.push("c.poster_id = ?");
        values.push(Value::Text(id.to_string()));
    }
    if let Some(since) = filter.since_ms {
        clauses.push("c.created_at >= ?");
        values.push(Value::Integer(since));
    }
    if let Some(until) = filter.until_ms {
        clauses.push("c.created_at < ?");
        values.push(Value::Integer(until));
    }
    // Confidence is the best genre's score: the first of `scores`.
    if let Some(min) = filter.min_confidence {
        clauses.push("json_extract(c.scores, '$[0].score') >= ?");
        values.push(Value::Real(f64::from(min)));
    }
    if let Some(max) = filter.max_confidence {
        clauses.push("json_extract(c.scores, '$[0].score') < ?");
        values.push(Value::Real(f64::from(max)));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

pub(super) fn stored_id(text: String) -> Result<PosterId, StoreError> {
    PosterId::parse(&text).map_err(|_| StoreError::Corrupt {
        what: "poster id",
        key: text,
        detail: "not 64 hex digits".into(),
    })
}

/// The raw columns of a classification; JSON is decoded outside rusqlite's
/// row callback so a bad row gives a `StoreError` naming it.
pub(super) struct RawClassification {
    id: i64,
    poster_id: String,
    source: String,
    model: String,
    scores: String,
    tags: String,
    top3: String,
    latency_ms: f64,
    created_at_ms: i64,
}

impl RawClassification {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Self::from_row_at(row, 0)
    }

    /// The columns of [`CLASSIFICATION_COLUMNS`] starting at column `at`.
    pub(super) fn from_row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(at)?,
            poster_id: row.get(at + 1)?,
            source: row.get(at + 2)?,
            model: row.get(at + 3)?,
            scores: row.get(at + 4)?,
            tags: row.get(at + 5)?,
            top3: row.get(at + 6)?,
            latency_ms: row.get(at + 7)?,
            created_at_ms: row.get(at + 8)?,
        })
    }

    pub(super) fn decode(self) -> Result<ClassificationRecord, StoreError> {
        let key = format!("classification {}", self.id);
        Ok(ClassificationRecord {
            genres: parse_json("scores", &key, &self.scores)?,
            tags: parse_json("tags", &key, &self.tags)?,
            top3: parse_json("top3", &key, &self.top3)?,
            id: self.id,
            poster_id: stored_id(self.poster_id)?,
            source: self.source,
            model: self.model,
            latency_ms: self.latency_ms,
            created_at_ms: self.created_at_ms,
        })
    }
}

impl Store {
    /// A poster with its latest classification, or `None` if unknown.
    pub fn poster(&self, id: &PosterId) -> Result<Option<PosterDetail>, StoreError> {
        let info = self
            .conn
            .prepare_cached(
                "SELECT id, first_seen, last_seen, source, size_bytes, width, height
                 FROM posters WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([id.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, u32>(5)?,
                        row.get::<_, u32>(6)?,
                    ))
                })
                .optional()
            })
            .ctx("reading a poster")?;
        let Some((pid, first_seen_ms, last_seen_ms, source, size, width, height)) = info else {
            return Ok(None);
        };
        let latest = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CLASSIFICATION_COLUMNS} FROM classifications c
                 WHERE c.poster_id = ?1 ORDER BY c.id DESC LIMIT 1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([id.as_str()], RawClassification::from_row)
                    .optional()
            })
            .ctx("reading a poster's latest classification")?
            .map(RawClassification::decode)
            .transpose()?;
        let sightings: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM classifications WHERE poster_id = ?1")
            .and_then(|mut stmt| stmt.query_row([id.as_str()], |row| row.get(0)))
            .ctx("counting a poster's classifications")?;
        Ok(Some(PosterDetail {
            poster: PosterInfo {
                id: stored_id(pid)?,
                first_seen_ms,
                last_seen_ms,
                source,
                size_bytes: u64::try_from(size).unwrap_or(0),
                width,
                height,
            },
            latest,
            sightings: u64::try_from(sightings).unwrap_or(0),
        }))
    }

    /// A poster's thumbnail JPEG, if the poster is known and has one.
    pub fn thumbnail(&self, id: &PosterId) -> Result<Option<Vec<u8>>, StoreError> {
        let thumb: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT thumbnail FROM posters WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([id.as_str()], |row| row.get(0)).optional())
            .ctx("reading a thumbnail")?;
        Ok(thumb.flatten())
    }

    /// Classifications matching `filter`, newest first, for the history page.
    pub fn recent(
        &self,
        limit: usize,
        offset: usize,
        filter: &HistoryFilter,
    ) -> Result<Vec<ClassificationRecord>, StoreError> {
        let (filter_sql, mut values) = filter_clause(filter);
        values.push(Value::Integer(to_i64("limit", limit as u64)?));
        values.push(Value::Integer(to_i64("offset", offset as u64)?));
        let sql = format!(
            "SELECT {CLASSIFICATION_COLUMNS} FROM classifications c {filter_sql}
             ORDER BY c.created_at DESC, c.id DESC LIMIT ? OFFSET ?"
        );
        let raw: Vec<RawClassification> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(values), RawClassification::from_row)?
                    .collect()
            })
            .ctx("reading the history")?;
        raw.into_iter().map(RawClassification::decode).collect()
    }

    /// How many classifications match `filter` (the history's page count).
    pub fn count_recent(&self, filter: &HistoryFilter) -> Result<u64, StoreError> {
        let (filter_sql, values) = filter_clause(filter);
        let sql = format!("SELECT count(*) FROM classifications c {filter_sql}");
        let n: i64 = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row(params_from_iter(values), |row| row.get(0)))
            .ctx("counting the history")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The tags of a poster's latest classification (`None`: no such
    /// poster, or nothing classified for it is kept).
    pub fn latest_tags(&self, id: &PosterId) -> Result<Option<Vec<String>>, StoreError> {
        let tags: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT tags FROM classifications WHERE poster_id = ?1 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut stmt| stmt.query_row([id.as_str()], |row| row.get(0)).optional())
            .ctx("reading a poster's latest tags")?;
        tags.map(|t| parse_json("tags", &format!("poster {id}"), &t))
            .transpose()
    }

    /// Feedback on one poster, oldest first.
    pub fn feedback_for(&self, id: &PosterId) -> Result<Vec<Feedback>, StoreError> {
        self.feedback_query(
            "SELECT id, poster_id, genres, author, created_at, via, kept FROM feedback
             WHERE poster_id = ?1 ORDER BY id",
            params![id.as_str()],
        )
    }

    /// All feedback, newest first (for the dashboard and for retraining).
    pub fn list_feedback(&self, limit: usize, offset: usize) -> Result<Vec<Feedback>, StoreError> {
        self.feedback_query(
            "SELECT id, poster_id, genres, author, created_at, via, kept FROM feedback
             ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            params![
                to_i64("limit", limit as u64)?,
                to_i64("offset", offset as u64)?
            ],
        )
    }

    fn feedback_query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Feedback>, StoreError> {
        type RawFeedback = (i64, String, String, Option<String>, i64, String, bool);
        let raw: Vec<RawFeedback> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.query_map(params, |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                })?
                .collect()
            })
            .ctx("reading feedback")?;
        raw.into_iter()
            .map(|(id, poster_id, genres, by, created_at_ms, via, kept)| {
                Ok(Feedback {
                    id,
                    poster_id: stored_id(poster_id)?,
                    genres: parse_json("feedback genres", &format!("feedback {id}"), &genres)?,
                    by,
                    created_at_ms,
                    via,
                    kept,
                })
            })
            .collect()
    }

    /// Classifications kept, by the source of each sighting (`http`, `mqtt`, ...).
    pub fn counts_by_source(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .conn
            .prepare_cached("SELECT source, count(*) FROM classifications GROUP BY source")
            .and_then(|mut stmt| {
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .ctx("counting posters by source")?;
        Ok(rows
            .into_iter()
            .map(|(source, count)| (source, u64::try_from(count).unwrap_or(0)))
            .collect())
    }

    /// Distinct posters classified since local midnight (the device's time
    /// zone, as SQLite reads it from the C library), for the HA sensor.
    pub fn posters_today(&self) -> Result<u64, StoreError> {
        self.posters_since(self.local_midnight_ms()?)
    }

    /// Distinct posters classified at or after `since_ms`.
    pub fn posters_since(&self, since_ms: i64) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(DISTINCT poster_id) FROM classifications WHERE created_at >= ?1",
            )
            .and_then(|mut stmt| stmt.query_row([since_ms], |row| row.get(0)))
            .ctx("counting recent posters")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
