//! What can go wrong in the store, each saying what failed and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database {path}: {source} \
         (check that its folder exists and is writable, or set store.path)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// WAL needs shared memory next to the file; network filesystems refuse it.
    #[error(
        "the database {path} is in `{mode}` journal mode, not WAL: \
         put store.path on a local filesystem"
    )]
    NotWal { path: PathBuf, mode: String },

    #[error(
        "the database schema is version {found}, newer than this marquee knows \
         ({known}): run a newer marquee or restore a backup"
    )]
    SchemaTooNew { found: i64, known: usize },

    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] rusqlite_migration::Error),

    /// Any other SQLite failure; `action` says what the store was doing.
    #[error("database error while {action}: {source}")]
    Sql {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error("poster {0} is not in the store")]
    UnknownPoster(String),

    #[error("{0} is not in the store")]
    NotFound(String),

    #[error(transparent)]
    InvalidPosterId(#[from] crate::poster::InvalidPosterId),

    /// A row holds data this code cannot read: a bug or a damaged file.
    #[error("stored {what} of {key} is unreadable: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },

    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what} = {value} is too large for the database")]
    OutOfRange { what: &'static str, value: u64 },

    /// The writer thread is gone (it panicked, or the store was shut down):
    /// nothing more can be stored, so the daemon should stop and be restarted.
    #[error("the store writer thread has stopped; restart the daemon")]
    WriterGone,

    #[error("a dashboard read panicked; this is a bug, please report it with the log")]
    ReaderPanicked,

    #[error("cannot start the store writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Attach what the store was doing to a SQLite error.
pub(crate) trait Context<T> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql { action, source })
    }
}

/// A count or size as SQLite's signed 64-bit integer.
pub(crate) fn to_i64(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}
