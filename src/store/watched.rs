//! The watched folder's memory: which files were classified or refused, so
//! a restart classifies nothing twice and a bad file is not retried forever.

use super::error::{to_i64, Context, StoreError};
use super::types::WatchedState;
use super::Store;
use crate::poster::{now_ms, PosterId, WatchedFile};
use rusqlite::{params, Connection, OptionalExtension};

/// Write `file`'s row: done (with its poster) when `error` is `None`,
/// failed otherwise. A later decision replaces an earlier one: a file that
/// failed for a passing reason and then succeeded ends up done.
pub(super) fn mark(
    conn: &Connection,
    file: &WatchedFile,
    poster: Option<&PosterId>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let size = to_i64("watched file size", file.size_bytes)?;
    let status = if error.is_some() { "failed" } else { "done" };
    conn.prepare_cached(
        "INSERT INTO watched_files
           (path, size_bytes, mtime_ms, status, poster_id, error, decided_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (path, size_bytes, mtime_ms) DO UPDATE SET
           status = excluded.status, poster_id = excluded.poster_id,
           error = excluded.error, decided_at = excluded.decided_at",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            file.path,
            size,
            file.mtime_ms,
            status,
            poster.map(PosterId::as_str),
            error,
            now_ms(),
        ])
    })
    .ctx("marking a watched file")?;
    Ok(())
}

impl Store {
    /// What was decided about `file` before, if anything.
    pub fn watched_state(&self, file: &WatchedFile) -> Result<Option<WatchedState>, StoreError> {
        let size = to_i64("watched file size", file.size_bytes)?;
        let row: Option<(String, Option<String>, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT status, poster_id, error FROM watched_files
                 WHERE path = ?1 AND size_bytes = ?2 AND mtime_ms = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![file.path, size, file.mtime_ms], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
            })
            .ctx("looking up a watched file")?;
        let Some((status, poster, error)) = row else {
            return Ok(None);
        };
        if status == "failed" {
            return Ok(Some(WatchedState::Failed(error.unwrap_or_default())));
        }
        // An id this build cannot parse is still a file that was done.
        let poster = poster.and_then(|id| PosterId::parse(&id).ok());
        Ok(Some(WatchedState::Done(poster)))
    }

    /// Remember that `file` can never be classified (`reason` says why), so
    /// the watcher does not try it again, now or after a restart.
    pub fn mark_watched_failed(&self, file: &WatchedFile, reason: &str) -> Result<(), StoreError> {
        mark(&self.conn, file, None, Some(reason))
    }
}
