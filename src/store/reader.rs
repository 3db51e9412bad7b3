//! Read-only connections for the dashboard, beside the one writer.
//!
//! In WAL mode readers never block the writer and see only committed
//! transactions, so the dashboard's heavier reads (a page of history, the
//! insights over every poster) run here instead of queueing behind the
//! pipeline's writes on the writer thread.

use super::error::{Context, StoreError};
use super::Store;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// A small pool of read-only connections; cheap to clone.
#[derive(Clone, Debug)]
pub struct StoreReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
    /// At most this many reads at once: each holds a blocking thread.
    permits: Semaphore,
}

impl StoreReader {
    /// Readers of the database at `path`, which the writer has already
    /// opened and migrated; at most `connections` reads run at once.
    pub fn new(path: impl AsRef<Path>, connections: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.as_ref().to_path_buf(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(connections.max(1)),
            }),
        }
    }

    /// Run `f` on a read-only connection on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let store = inner.take()?;
            let result = f(&store);
            inner.give_back(store);
            result
        })
        .await
        .map_err(|_| StoreError::ReaderPanicked)?
    }
}

impl Inner {
    fn take(&self) -> Result<Store, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(store) => Ok(store),
            None => Store::open_read_only(&self.path),
        }
    }

    fn give_back(&self, store: Store) {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(store);
    }
}

impl Store {
    /// A read-only connection to a database the writer keeps up to date.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(super::BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "query_only", true)
            .ctx("making a reader query-only")?;
        Ok(Self { conn })
    }
}
