//! Aggregate reads for the dashboard's insights, accuracy and model card.
//! Each is one query (or two) over indexed columns, so a page stays fast
//! with tens of thousands of sightings.

use super::error::{Context, StoreError};
use super::read::{parse_json, stored_id, RawClassification, CLASSIFICATION_COLUMNS};
use super::types::ClassificationRecord;
use super::Store;
use crate::poster::PosterId;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use utoipa::ToSchema;

/// A person's latest correction of a poster beside what the model said.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Correction {
    pub poster_id: PosterId,
    /// The genres the person chose (the truth, for accuracy).
    pub truth: Vec<String>,
    /// The model's latest classification of that poster.
    pub predicted: ClassificationRecord,
    pub corrected_at_ms: i64,
}

/// Counts behind the status line and the model card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    pub posters: u64,
    pub classifications: u64,
    /// Posters with at least one correction.
    pub corrected_posters: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

/// Inference latency as stored with each classification (decode, resize,
/// backbone and head on this board).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Classifications on one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCounts {
    /// `YYYY-MM-DD`, the device's local time.
    pub day: String,
    pub classifications: u64,
    /// `(genre, sightings tagged with it)`, by genre name.
    pub tags: Vec<(String, u64)>,
}

/// The local days from `?1` (Unix ms) to the newest sighting, each with its
/// start and end in Unix ms. Sightings are then matched to a day by range
/// on the `created_at` index: converting every row to local time in SQLite
/// cost tens of milliseconds per page with 10,000 posters. Each day's bounds
/// come from its own conversion, so days around a DST change stay right.
/// A clock far in the future cannot make the list longer than a year.
const LOCAL_DAYS: &str = "WITH RECURSIVE d(day) AS (
        SELECT date(?1 / 1000, 'unixepoch', 'localtime')
        UNION ALL
        SELECT date(day, '+1 day') FROM d
        WHERE day < (SELECT date(max(created_at) / 1000, 'unixepoch', 'localtime')
                     FROM classifications)
          AND day < date(?1 / 1000, 'unixepoch', 'localtime', '+366 days')
    ),
    days AS (
        SELECT day,
               max(?1, CAST(strftime('%s', day, 'utc') AS INTEGER) * 1000) AS start,
               CAST(strftime('%s', day, '+1 day', 'utc') AS INTEGER) * 1000 AS stop
        FROM d
    )";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Sightings per local day and genre since `since_ms`, oldest day first.
    pub fn counts_by_day(&self, since_ms: i64) -> Result<Vec<DayCounts>, StoreError> {
        let totals: Vec<(String, i64)> = self
            .conn
            .prepare_cached(&format!(
                "{LOCAL_DAYS}
                 SELECT days.day, count(*)
                 FROM days CROSS JOIN classifications c
                 WHERE c.created_at >= days.start AND c.created_at < days.stop
                 GROUP BY days.day ORDER BY days.day"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([since_ms], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .ctx("counting sightings per day")?;
        let tags: Vec<(String, String, i64)> = self
            .conn
            .prepare_cached(&format!(
                "{LOCAL_DAYS}
                 SELECT days.day, j.value, count(*)
                 FROM days CROSS JOIN classifications c CROSS JOIN json_each(c.tags) j
                 WHERE c.created_at >= days.start AND c.created_at < days.stop
                 GROUP BY days.day, j.value ORDER BY days.day, j.value"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([since_ms], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .ctx("counting genres per day")?;
        let mut days: Vec<DayCounts> = totals
            .into_iter()
            .map(|(day, n)| DayCounts {
                day,
                classifications: count(n),
                tags: Vec::new(),
            })
            .collect();
        for (day, tag, n) in tags {
            if let Some(entry) = days.iter_mut().find(|d| d.day == day) {
                entry.tags.push((tag, count(n)));
            }
        }
        Ok(days)
    }

    /// Every corrected poster: its latest correction and the model's latest
    /// classification of it. Posters whose history retention removed have
    /// no classification left and are skipped.
    pub fn corrections(&self) -> Result<Vec<Correction>, StoreError> {
        let sql = format!(
            "SELECT f.poster_id, f.genres, f.created_at, {CLASSIFICATION_COLUMNS}
             FROM feedback f
             JOIN classifications c ON c.id =
                  (SELECT max(id) FROM classifications WHERE poster_id = f.poster_id)
             WHERE f.id IN (SELECT max(id) FROM feedback GROUP BY poster_id)
             ORDER BY f.id"
        );
        type Raw = (String, String, i64, RawClassification);
        let raw: Vec<Raw> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([], |row| {
                    let classification = RawClassification::from_row_at(row, 3)?;
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, classification))
                })?
                .collect()
            })
            .ctx("reading corrections")?;
        raw.into_iter()
            .map(|(poster_id, genres, at, classification)| {
                let key = format!("feedback on {poster_id}");
                Ok(Correction {
                    truth: parse_json("feedback genres", &key, &genres)?,
                    poster_id: stored_id(poster_id)?,
                    predicted: classification.decode()?,
                    corrected_at_ms: at,
                })
            })
            .collect()
    }

    /// Posters, sightings and corrections kept.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        let (posters, classifications, first, last, corrected) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM posters),
                        (SELECT count(*) FROM classifications),
                        (SELECT min(created_at) FROM classifications),
                        (SELECT max(created_at) FROM classifications),
                        (SELECT count(DISTINCT poster_id) FROM feedback)",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                },
            )
            .ctx("counting the history")?;
        Ok(Totals {
            posters: count(posters),
            classifications: count(classifications),
            corrected_posters: count(corrected),
            first_ms: first,
            last_ms: last,
        })
    }

    /// Latency of the newest `limit` classifications by `model`.
    pub fn latency_summary(&self, model: &str, limit: usize) -> Result<LatencySummary, StoreError> {
        let mut values: Vec<f64> = self
            .conn
            .prepare_cached(
                "SELECT latency_ms FROM classifications WHERE model = ?1
                 ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![model, limit as i64], |row| row.get(0))?
                    .collect()
            })
            .ctx("reading latencies")?;
        if values.is_empty() {
            return Ok(LatencySummary::default());
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((values.len() - 1) as f64 * q).round() as usize;
            values[i.min(values.len() - 1)]
        };
        Ok(LatencySummary {
            samples: values.len() as u64,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            mean_ms: values.iter().sum::<f64>() / values.len() as f64,
        })
    }

    /// The distinct sources and models in the history, for the filters.
    pub fn history_facets(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let list = |sql: &str| -> Result<Vec<String>, StoreError> {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
                .ctx("listing history facets")
        };
        Ok((
            list("SELECT DISTINCT source FROM classifications ORDER BY source")?,
            list("SELECT DISTINCT model FROM classifications ORDER BY model")?,
        ))
    }
}

impl Store {
    /// Unix milliseconds of local midnight today (the device's time zone).
    pub fn local_midnight_ms(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT CAST(strftime('%s', 'now', 'localtime', 'start of day', 'utc')
                        AS INTEGER) * 1000",
                [],
                |row| row.get(0),
            )
            .ctx("computing local midnight")
    }

    /// Unix milliseconds of the start of a local date `YYYY-MM-DD`, or
    /// `None` when the text is not such a date.
    pub fn local_date_ms(&self, date: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT CAST(strftime('%s', ?1, 'utc') AS INTEGER) * 1000
                 WHERE date(?1) = ?1",
                [date],
                |row| row.get(0),
            )
            .optional()
            .ctx("reading a date")
    }
}

impl Store {
    /// Classifications with an id over `after_id`, oldest first (the
    /// dashboard's cache of each poster's latest one catches up with these).
    pub fn classifications_after(
        &self,
        after_id: i64,
    ) -> Result<Vec<ClassificationRecord>, StoreError> {
        let sql = format!(
            "SELECT {CLASSIFICATION_COLUMNS} FROM classifications c WHERE c.id > ?1 ORDER BY c.id"
        );
        let raw: Vec<RawClassification> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([after_id], RawClassification::from_row)?
                    .collect()
            })
            .ctx("reading new classifications")?;
        raw.into_iter().map(RawClassification::decode).collect()
    }

    /// `(count, smallest id, largest id)` of the classifications: a change
    /// other than appended rows (retention) shows in the count or the minimum.
    pub fn classification_bounds(&self) -> Result<(u64, i64, i64), StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM classifications",
                [],
                |row| Ok((count(row.get(0)?), row.get(1)?, row.get(2)?)),
            )
            .ctx("reading the history's bounds")
    }
}
