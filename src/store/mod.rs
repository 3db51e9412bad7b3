//! The one SQLite writer: poster history, classifications, human feedback and
//! the MQTT outbox.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL`: every commit
//! fsyncs the WAL before [`Store::record`] returns. A result is committed
//! before anything else happens to it (the HTTP answer, the MQTT publish,
//! the watched file counted as done), so once a producer is told "stored",
//! a power cut cannot take the outbox row back. `NORMAL` would be cheaper
//! (no fsync until a checkpoint) and still never corrupt the file, but the
//! last commits before a power cut could roll back, which is exactly the
//! loss the outbox exists to prevent. The cost is one fsync per commit, a
//! few milliseconds on eMMC or an SD card, far below one inference.
//!
//! # Threads
//!
//! [`Store`] is a synchronous connection (`Send`, not `Sync`). The daemon
//! runs it on one dedicated thread through [`StoreHandle`]: a bounded queue of
//! jobs, so there is exactly one writer, writes never block the async
//! runtime, and a full queue slows the producers instead of growing memory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), marquee::store::StoreError> {
//! use marquee::store::{Store, StoreHandle};
//! let (store, writer) = StoreHandle::spawn(Store::open("marquee.db")?, 64)?;
//! let backlog = store.call(|s| s.outbox_backlog()).await?;
//! drop(store); // every handle gone: the writer drains its queue and stops
//! writer.join()?;
//! # let _ = backlog; Ok(()) }
//! ```

mod aggregates;
mod error;
mod features;
mod handle;
mod heads;
mod read;
mod reader;
mod retention;
mod schema;
mod types;
mod watched;
mod write;

#[cfg(test)]
mod tests;

pub use aggregates::{Correction, DayCounts, LatencySummary, Totals};
pub use error::StoreError;
pub use features::PosterFeatures;
pub use handle::{StoreHandle, StoreWriter};
pub use heads::{HeadRow, HeadState, NewHead, ShadowDisagreement, ShadowSummary, KEEP_RETIRED};
pub use reader::StoreReader;
pub use types::{
    ClassificationRecord, Feedback, HistoryFilter, NewClassification, NewFeedback, NewPoster,
    NewShadow, OutboxMessage, OutboxRow, PosterDetail, PosterInfo, Qos, RecordOutcome,
    RetentionReport, WatchedState,
};

use error::Context;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for a lock held by another connection (an
/// operator's `sqlite3` shell, a backup) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on the WAL file kept between checkpoints, for small SD cards.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// A connection to the store. See the module docs for durability and threads.
pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl Store {
    /// Open (or create) the database at `path` and bring its schema up to
    /// date. The folder must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        Self::setup(conn)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        })?;
        Self::setup(conn)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        // See the module docs: FULL so a commit survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("setting synchronous=FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .ctx("enabling foreign keys")?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .ctx("setting journal_size_limit")?;

        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .ctx("reading the schema version")?;
        if usize::try_from(found).map_or(true, |v| v > schema::LATEST) {
            return Err(StoreError::SchemaTooNew {
                found,
                known: schema::LATEST,
            });
        }
        schema::MIGRATIONS.to_latest(&mut conn)?;
        Ok(Self { conn })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .ctx("reading the schema version")
    }
}
