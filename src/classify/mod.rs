//! The classify stage: N worker threads take posters from the queue,
//! decode, run the model, make a thumbnail and queue the store transaction
//! (poster + classification + outbox row, one commit); one commit thread
//! waits for each commit in order, then tells the publisher, feeds the
//! dashboard's live feed and answers the input.
//!
//! Plain threads, not the async runtime's blocking pool: inference is long
//! CPU work, and a fixed count sized by the board profile is what keeps the
//! board responsive. A worker goes on to the next poster while the last one
//! is fsynced.

use crate::model::{Classifier, ClassifyError, LiveResult, StageTimes};
use crate::poster::{Poster, PosterError, PosterEvent, PosterId};
use crate::publish::PublishHandle;
use crate::queue::PosterReceiver;
use crate::store::{
    NewClassification, NewPoster, NewShadow, OutboxMessage, Qos, RecordOutcome, StoreError,
    StoreHandle,
};
use crate::telemetry::Metrics;
use crate::vision::{self, DecodeBudget, DecodeLimits};
use anyhow::Context as _;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, error, info, info_span, warn};

/// Longest side of the thumbnail kept with each poster, for the dashboard.
pub const THUMBNAIL_SIDE: u32 = 160;

/// What each classify worker needs; cloned per thread.
#[derive(Clone)]
pub struct Worker {
    pub classifier: Classifier,
    pub limits: DecodeLimits,
    /// What all decodes may hold at once (`inference.decode_memory_mb`).
    pub budget: Arc<DecodeBudget>,
    pub store: StoreHandle,
    pub publish: PublishHandle,
    pub metrics: Arc<Metrics>,
    /// `<prefix>/<device_id>/poster`.
    pub topic: String,
    /// The dashboard's live feed; nobody listening is fine.
    pub live: broadcast::Sender<PosterEvent>,
}

/// The running stage: its threads, the commit thread last.
pub struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Start `n` workers sharing one queue, and the commit thread.
    pub fn spawn(worker: Worker, queue: PosterReceiver, n: usize) -> anyhow::Result<Self> {
        // One receiver for all: the worker holding the lock waits for the
        // next poster, the others wait for the lock. Either way they are idle.
        let queue = Arc::new(Mutex::new(queue));
        let (commits, pending) = std_mpsc::sync_channel::<PendingCommit>(n.max(1) * 4);
        let mut threads = (0..n.max(1))
            .map(|i| {
                let worker = worker.clone();
                let queue = Arc::clone(&queue);
                let commits = commits.clone();
                std::thread::Builder::new()
                    .name(format!("marquee-classify-{i}"))
                    .spawn(move || worker.run(&queue, &commits))
                    .context("starting a classify thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        drop(commits);
        // Last in the list: it ends once every worker has gone and every
        // commit has been answered.
        threads.push(
            std::thread::Builder::new()
                .name("marquee-commit".into())
                .spawn(move || worker.finish_commits(&pending))
                .context("starting the commit thread")?,
        );
        Ok(Self { threads })
    }

    /// Wait for every thread; they end once the queue has closed and is
    /// drained. How many panicked.
    pub async fn join(self) -> Result<usize, tokio::task::JoinError> {
        crate::threads::join_counting_panics(self.threads).await
    }
}

/// The store's answer to one queued poster transaction.
type PendingAnswer = oneshot::Receiver<Result<RecordOutcome, StoreError>>;

/// A classified poster whose store transaction has been queued.
struct PendingCommit {
    poster: Poster,
    event: PosterEvent,
    inference: Duration,
    span: tracing::Span,
    answer: PendingAnswer,
}

impl Worker {
    fn run(&self, queue: &Mutex<PosterReceiver>, commits: &std_mpsc::SyncSender<PendingCommit>) {
        loop {
            let next = queue
                .lock()
                // Poisoned: another worker panicked while waiting; the
                // receiver itself is intact.
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .blocking_recv();
            let Some(poster) = next else {
                return; // every input is gone and the queue is empty
            };
            self.handle(poster, commits);
        }
    }

    fn handle(&self, poster: Poster, commits: &std_mpsc::SyncSender<PendingCommit>) {
        let id = PosterId::of_bytes(&poster.bytes);
        let span = info_span!("poster", poster.id = %id, source = %poster.source);
        let entered = span.enter();
        match self.classify_and_submit(&id, &poster) {
            Ok((event, inference, answer)) => {
                debug!(tags = ?event.tags, "classified");
                drop(entered);
                let pending = PendingCommit {
                    poster,
                    event,
                    inference,
                    span,
                    answer,
                };
                if let Err(std_mpsc::SendError(pending)) = commits.send(pending) {
                    // The commit thread is gone (it never is while workers
                    // run); answer here rather than leave the client hanging.
                    self.complete(pending);
                }
            }
            Err(err) => {
                drop(entered);
                let _entered = span.enter();
                self.done(poster, Err(err));
            }
        }
    }

    /// Wait for each queued commit in order, then answer and notify.
    fn finish_commits(&self, pending: &std_mpsc::Receiver<PendingCommit>) {
        for commit in pending {
            self.complete(commit);
        }
    }

    fn complete(&self, commit: PendingCommit) {
        let PendingCommit {
            poster,
            event,
            inference,
            span,
            answer,
        } = commit;
        let _entered = span.enter();
        let stored = answer
            .blocking_recv()
            .unwrap_or(Err(StoreError::WriterGone));
        let result = match stored {
            Ok(outcome) => {
                self.publish.outbox_written();
                // No receiver (no dashboard open) is not an error.
                let _ = self.live.send(event.clone());
                self.metrics.poster_done(&poster.source, inference);
                debug!(new_poster = outcome.new_poster, "stored");
                Ok(event)
            }
            Err(err) => Err(PosterError::Store(err.to_string())),
        };
        self.done(poster, result);
    }

    /// Count, log and answer one poster's outcome.
    fn done(&self, mut poster: Poster, result: Result<PosterEvent, PosterError>) {
        if let Err(err) = &result {
            self.metrics.error(err.kind());
            match err {
                PosterError::Store(_) => error!(error = %err, "result lost"),
                PosterError::Model(_) => warn!(error = %err, "poster not classified"),
                _ => info!(error = %err, "poster refused"),
            }
            if err.is_permanent() {
                self.record_refused(&poster, err);
            }
        }
        poster.answer(result);
    }

    /// A poster read from a file is recorded as refused before its input
    /// hears of it, so neither the next poll nor the next start tries the
    /// same bytes again, even if the daemon stops right after.
    fn record_refused(&self, poster: &Poster, err: &PosterError) {
        let Some(file) = poster.file.clone() else {
            return;
        };
        let reason = err.to_string();
        if let Err(err) = self
            .store
            .blocking_call(move |s| s.mark_watched_failed(&file, &reason))
        {
            // Only costs one more attempt after a restart.
            warn!(error = %err, "cannot record the refused file");
        }
    }

    /// Classify and queue the store transaction; the commit is awaited by
    /// the commit thread.
    fn classify_and_submit(
        &self,
        id: &PosterId,
        poster: &Poster,
    ) -> Result<(PosterEvent, Duration, PendingAnswer), PosterError> {
        let t = Instant::now();
        // Decoded once here, for the model and for the thumbnail.
        let image = vision::decode_within(&poster.bytes, &self.limits, Some(&self.budget))?;
        let times = StageTimes {
            decode: t.elapsed(),
            ..StageTimes::default()
        };
        let live = self
            .classifier
            .classify_live(&image, times)
            .map_err(|err| match err {
                ClassifyError::Image(err) => PosterError::from(err),
                ClassifyError::Backbone(err) => PosterError::Model(err.to_string()),
            })?;
        let LiveResult {
            prediction,
            features,
            model,
            active_id,
            shadow,
            ..
        } = live;
        let inference = t.elapsed();

        let thumbnail = match vision::thumbnail_jpeg(&image, THUMBNAIL_SIDE) {
            Ok(jpeg) => Some(jpeg),
            Err(err) => {
                // The dashboard shows a placeholder; the result matters more.
                warn!(error = %err, "no thumbnail");
                None
            }
        };
        let ts = crate::poster::now_ms();
        let event = PosterEvent::new(id.as_str(), &poster.source, &prediction, &model, ts);
        let payload = event
            .to_json()
            .map_err(|err| PosterError::Model(format!("cannot encode the event: {err}")))?;
        let record = NewPoster {
            id: id.clone(),
            source: poster.source.clone(),
            seen_at_ms: poster.received_at,
            size_bytes: u64::try_from(poster.bytes.len()).unwrap_or(u64::MAX),
            width: image.width(),
            height: image.height(),
            thumbnail,
            features: Some(features),
        };
        let classification = NewClassification {
            model,
            prediction,
            latency_ms: inference.as_secs_f64() * 1000.0,
            created_at_ms: ts,
            shadow: shadow.map(|s| NewShadow {
                head_id: s.head_id,
                active_id,
                prediction: s.prediction,
            }),
        };
        let message = OutboxMessage {
            topic: self.topic.clone(),
            payload,
            qos: Qos::AtLeastOnce,
            retain: false,
        };
        // Committed (fsynced) before anyone hears of the result; the file a
        // poster was read from is marked done in the same transaction.
        let file = poster.file.clone();
        let answer = self
            .store
            .blocking_submit(move |s| match &file {
                Some(file) => s.record_watched(&record, &classification, &[message], file),
                None => s.record(&record, &classification, &[message]),
            })
            .map_err(|err| PosterError::Store(err.to_string()))?;
        Ok((event, inference, answer))
    }
}
