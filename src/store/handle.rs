//! The store's writer thread: the one owner of the connection.
//!
//! Why a thread and not `spawn_blocking` per call: SQLite allows one writer
//! at a time anyway, a single owner needs no connection pool or locks, and
//! the bounded job queue makes back-pressure explicit (a full queue makes
//! `call` wait, it never grows without bound). Reads go through the same
//! queue; they are indexed and small, and keeping them there means a read
//! never sees a half-applied write.

use super::error::StoreError;
use super::Store;
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce(&Store) + Send>;

/// A cheap, cloneable way to run work on the store's writer thread.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

/// The writer thread. It stops when every [`StoreHandle`] is dropped, after
/// running the jobs already queued; [`StoreWriter::join`] waits for that.
#[derive(Debug)]
pub struct StoreWriter {
    thread: std::thread::JoinHandle<()>,
}

impl StoreHandle {
    /// Move `store` onto a new thread (`marquee-store`) with a queue of
    /// `capacity` jobs (at least 1).
    pub fn spawn(store: Store, capacity: usize) -> Result<(Self, StoreWriter), StoreError> {
        let (jobs, mut queue) = mpsc::channel::<Job>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("marquee-store".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&store);
                }
                // `store` drops here: SQLite checkpoints the WAL on close.
            })
            .map_err(StoreError::Spawn)?;
        Ok((Self { jobs }, StoreWriter { thread }))
    }

    /// Run `f` on the writer thread and await its result. Waits for room
    /// when the queue is full. `f` should be one short unit of work (one
    /// `record`, one query): everything behind it waits.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (job, answer) = Self::job(f);
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// [`call`](Self::call) for plain threads (e.g. classify workers).
    /// It blocks, so it must not be used from an async task: tokio panics
    /// if it is.
    pub fn blocking_call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.blocking_submit(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Queue a job from a plain thread without waiting for it to run: the
    /// answer arrives on the returned receiver. Waits only while the
    /// writer's queue is full (back-pressure). Lets a classify worker start
    /// the next poster while the commit of the last one is being fsynced.
    pub fn blocking_submit<R, F>(
        &self,
        f: F,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (job, answer) = Self::job(f);
        self.jobs
            .blocking_send(job)
            .map_err(|_| StoreError::WriterGone)?;
        Ok(answer)
    }

    /// Jobs that can still be queued without waiting (for the queue-depth metric).
    pub fn free_slots(&self) -> usize {
        self.jobs.capacity()
    }

    /// Box `f` as a job, with the receiver of its answer.
    fn job<R, F>(f: F) -> (Job, oneshot::Receiver<Result<R, StoreError>>)
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store: &Store| {
            // The caller may have stopped waiting (cancelled); nothing to do then.
            let _ = tx.send(f(store));
        });
        (job, rx)
    }
}

impl StoreWriter {
    /// Wait until the thread has run every queued job and closed the
    /// database. Blocks: from async code, call it in `spawn_blocking`.
    /// Every [`StoreHandle`] must be dropped first, or this waits forever.
    pub fn join(self) -> Result<(), StoreError> {
        self.thread.join().map_err(|_| StoreError::WriterGone)
    }
}
