//! The watched folder (`[watch] dir`): each new file is classified once,
//! only after it is completely written, and never again after a restart.
//!
//! # How
//!
//! The folder is polled (every `settle_ms / 4`, at most every 250 ms)
//! rather than watched with inotify: polling works the same on every
//! filesystem the boards mount (SD cards, USB sticks, NFS and SMB shares,
//! where inotify sees nothing), and a poster a second late does not matter.
//!
//! - **Complete files only.** A file is read once its size and mtime have
//!   not changed for `settle_ms`; a copy in progress keeps changing one of
//!   them. Empty files are left alone (a file being created), as are names
//!   starting with `.` (the usual temporary names of copy tools), folders
//!   and anything that is not a regular file. If the size read differs from
//!   the size that settled, the file is still moving: it settles again.
//! - **Once.** A file is known by (path, size, mtime). The classify worker
//!   marks it done in the same transaction as its result, so a crash can
//!   neither lose it nor repeat it; at start, and for each file that
//!   settles, the store is asked first. New content in a known path (a new
//!   size or mtime) is a new file.
//! - **Bad files.** A file that cannot be classified (not an image, corrupt,
//!   too large, unreadable) is logged with its path and the reason, counted
//!   in `marquee_classify_errors_total`, and recorded as failed so it is not
//!   retried: not every poll, not after a restart. The classify worker
//!   records what it refuses itself, before it answers, so a shutdown right
//!   after cannot lose the decision. Changing the file (a new
//!   mtime) makes it a new file again. Transient failures (the store, a
//!   shutdown) are not recorded: the file is tried again.
//! - **Full queue.** The watcher waits for room before it reads a file (a
//!   queue slot and the file's share of `http.upload_memory_mb`): the files
//!   wait on disk, nothing is dropped.

use crate::poster::{Answer, Poster, PosterError, WatchedFile};
use crate::queue::{PosterQueue, WhenFull};
use crate::store::StoreHandle;
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument as _};

/// The `source` of posters from the folder.
pub const SOURCE: &str = "watch";

/// Slowest poll: a new file waits at most this long past `settle_ms`.
const MAX_POLL: Duration = Duration::from_millis(250);
/// Fastest poll, for very short settle times.
const MIN_POLL: Duration = Duration::from_millis(25);

/// What can stop the watcher from starting.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot use the watched folder {dir} (watch.dir): {source}; \
         create it and let the daemon's user read it, or remove watch.dir"
    )]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The watcher's settings, from `[watch]` and `[http] max_upload_bytes`.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub dir: PathBuf,
    /// How long size and mtime must stay the same before a file is read.
    pub settle: Duration,
    /// Larger files are refused without being read (the upload limit).
    pub max_bytes: u64,
}

/// The folder watcher, ready to [`run`](Watcher::run).
pub struct Watcher {
    opts: WatchOptions,
    poll: Duration,
    queue: PosterQueue,
    store: StoreHandle,
    metrics: Arc<Metrics>,
}

/// A file whose size and mtime have not been stable long enough yet.
struct Settling {
    size: u64,
    mtime_ms: i64,
    since: Instant,
}

/// A file handed to the workers, waiting for its result.
struct InFlight {
    file: WatchedFile,
    answer: Answer,
}

/// What one poll found about one settled file.
struct Ready {
    path: PathBuf,
    size: u64,
    mtime_ms: i64,
}

impl Watcher {
    /// Check the folder (created if missing) so a wrong `watch.dir` fails
    /// the start, with the key named, instead of logging forever.
    pub fn new(
        opts: WatchOptions,
        queue: &PosterQueue,
        store: StoreHandle,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WatchError> {
        let dir_err = |source| WatchError::Dir {
            dir: opts.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&opts.dir).map_err(dir_err)?;
        std::fs::read_dir(&opts.dir).map_err(dir_err)?;
        let poll = (opts.settle / 4).clamp(MIN_POLL, MAX_POLL);
        Ok(Self {
            opts,
            poll,
            queue: queue.clone(),
            store,
            metrics,
        })
    }

    /// Poll until `stop`. Posters already queued are finished by the
    /// workers (and marked done); a file not yet queued is found again by
    /// the next start.
    pub async fn run(mut self, stop: CancellationToken) {
        let span = info_span!("watch", dir = %self.opts.dir.display());
        self.poll_loop(stop).instrument(span).await;
    }

    async fn poll_loop(&mut self, stop: CancellationToken) {
        info!(
            settle_ms = self.opts.settle.as_millis(),
            "watching the folder"
        );
        let mut settling: HashMap<PathBuf, Settling> = HashMap::new();
        // Files decided (done or failed) with the key they had then.
        let mut decided: HashMap<PathBuf, (u64, i64)> = HashMap::new();
        let mut in_flight: HashMap<PathBuf, InFlight> = HashMap::new();
        let mut dir_ok = true;
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.collect_results(&mut in_flight, &mut decided).await;

            let entries = match list(&self.opts.dir).await {
                Ok(entries) => {
                    if !dir_ok {
                        info!("the watched folder is readable again");
                        dir_ok = true;
                    }
                    entries
                }
                Err(err) => {
                    // Once per outage (an unmounted stick), not every poll.
                    if dir_ok {
                        warn!(error = %err, "cannot read the watched folder; retrying");
                        dir_ok = false;
                    }
                    continue;
                }
            };

            let now = Instant::now();
            let mut ready = Vec::new();
            for (path, size, mtime_ms) in &entries {
                if in_flight.contains_key(path) {
                    continue;
                }
                if decided.get(path) == Some(&(*size, *mtime_ms)) {
                    continue;
                }
                decided.remove(path);
                if *size == 0 {
                    settling.remove(path);
                    continue;
                }
                let entry = settling.entry(path.clone()).or_insert(Settling {
                    size: *size,
                    mtime_ms: *mtime_ms,
                    since: now,
                });
                if (entry.size, entry.mtime_ms) != (*size, *mtime_ms) {
                    *entry = Settling {
                        size: *size,
                        mtime_ms: *mtime_ms,
                        since: now,
                    };
                } else if now.duration_since(entry.since) >= self.opts.settle {
                    ready.push(Ready {
                        path: path.clone(),
                        size: *size,
                        mtime_ms: *mtime_ms,
                    });
                }
            }
            // Forget what is no longer in the folder: memory follows its content.
            settling.retain(|path, _| entries.iter().any(|(p, _, _)| p == path));
            decided.retain(|path, _| entries.iter().any(|(p, _, _)| p == path));

            // Oldest first, so posters go out in the order they arrived.
            ready.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
            for file in ready {
                settling.remove(&file.path);
                let outcome = self.submit(&file, &stop).await;
                match outcome {
                    Submit::Sent(flight) => {
                        in_flight.insert(file.path, flight);
                    }
                    Submit::Decided => {
                        decided.insert(file.path, (file.size, file.mtime_ms));
                    }
                    Submit::Moving => {}
                    Submit::Stop => return,
                }
            }
        }
    }

    /// Read one settled file and queue it (waiting for room), unless the
    /// store already knows it or it cannot be a poster.
    async fn submit(&mut self, ready: &Ready, stop: &CancellationToken) -> Submit {
        let file = WatchedFile {
            path: ready.path.as_os_str().as_bytes().to_vec(),
            size_bytes: ready.size,
            mtime_ms: ready.mtime_ms,
        };
        let path = ready.path.display().to_string();
        let lookup = file.clone();
        match self.store.call(move |s| s.watched_state(&lookup)).await {
            Ok(None) => {}
            Ok(Some(state)) => {
                debug!(%path, ?state, "already decided in an earlier run");
                return Submit::Decided;
            }
            Err(err) => {
                warn!(%path, error = %err, "cannot check the store; will retry the file");
                return Submit::Moving;
            }
        }
        if ready.size > self.opts.max_bytes {
            let err = PosterError::TooLarge {
                size: ready.size,
                limit: self.opts.max_bytes,
            };
            self.metrics.error(err.kind());
            self.refuse(&file, &path, &err.to_string()).await;
            return Submit::Decided;
        }
        // Room first (waiting while the queue or its memory is full: the
        // folder is the buffer), then the file is read into it.
        let reserved = tokio::select! {
            biased;
            () = stop.cancelled() => return Submit::Stop,
            reserved = self.queue.reserve(ready.size, WhenFull::Wait) => match reserved {
                Ok(reserved) => reserved,
                Err(_) => return Submit::Stop,
            },
        };
        let bytes = match tokio::fs::read(&ready.path).await {
            Ok(bytes) => bytes,
            // Gone between the listing and the read: nothing to do.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Submit::Moving,
            Err(err) => {
                self.metrics.error("unreadable");
                let reason = format!("cannot read the file: {err}");
                self.refuse(&file, &path, &reason).await;
                return Submit::Decided;
            }
        };
        // Still being written after all (a writer that paused longer than
        // settle_ms): let it settle again rather than classify half a file.
        let now = stat(&ready.path).await;
        if u64::try_from(bytes.len()).ok() != Some(ready.size)
            || now != Some((ready.size, ready.mtime_ms))
        {
            debug!(%path, "changed while being read; waiting for it to settle");
            return Submit::Moving;
        }

        let (mut poster, answer) = Poster::awaited(bytes.into(), SOURCE);
        poster.file = Some(file.clone());
        reserved.send(poster);
        debug!(%path, "queued");
        Submit::Sent(InFlight { file, answer })
    }

    /// Take the results the workers have answered; record the failures.
    async fn collect_results(
        &self,
        in_flight: &mut HashMap<PathBuf, InFlight>,
        decided: &mut HashMap<PathBuf, (u64, i64)>,
    ) {
        let mut finished = Vec::new();
        for (path, flight) in in_flight.iter_mut() {
            // `Some(None)`: the worker stopped without an answer
            // (shutdown): not recorded, so the file is tried again.
            if let Some(result) = flight.answer.try_outcome() {
                finished.push((path.clone(), result));
            }
        }
        for (path, result) in finished {
            let Some(flight) = in_flight.remove(&path) else {
                continue;
            };
            let key = (flight.file.size_bytes, flight.file.mtime_ms);
            let shown = path.display().to_string();
            match result {
                // The worker marked it done with its result.
                Some(Ok(event)) => {
                    debug!(path = %shown, poster.id = %event.id, "classified");
                    decided.insert(path, key);
                }
                // The worker counted it and recorded it as failed.
                Some(Err(err)) if err.is_permanent() => {
                    warn!(
                        path = %shown,
                        error = %err,
                        "watched file refused; it is not retried unless it changes"
                    );
                    decided.insert(path, key);
                }
                Some(Err(err)) => {
                    warn!(path = %shown, error = %err, "watched file not classified; will retry");
                }
                None => {}
            }
        }
    }

    /// Log why `file` is refused and remember it, so it is not tried again.
    async fn refuse(&self, file: &WatchedFile, path: &str, reason: &str) {
        warn!(
            %path,
            error = %reason,
            "watched file refused; it will not be retried unless it changes"
        );
        let file = file.clone();
        let reason_owned = reason.to_owned();
        if let Err(err) = self
            .store
            .call(move |s| s.mark_watched_failed(&file, &reason_owned))
            .await
        {
            // Only costs one more attempt after a restart.
            warn!(%path, error = %err, "cannot record the refused file");
        }
    }
}

enum Submit {
    Sent(InFlight),
    /// Known to the store, or refused for good.
    Decided,
    /// Changed, vanished or not checkable now: look again later.
    Moving,
    Stop,
}

/// The folder's candidate files: (path, size, mtime in ms).
async fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, i64)>> {
    let mut out = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_name().as_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a link to a poster is a poster.
        if let Some((size, mtime_ms)) = stat(&path).await {
            out.push((path, size, mtime_ms));
        }
    }
    Ok(out)
}

/// Size and mtime of a regular file; `None` for anything else or gone.
async fn stat(path: &Path) -> Option<(u64, i64)> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some((meta.len(), mtime_ms))
}
