//! The retrain job: one at a time, on its own thread in the idle CPU class,
//! with progress the dashboard can poll and a cancel flag.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;
use tracing::{info, warn};
use utoipa::ToSchema;

use super::retrain::{self, RetrainConfig, RetrainError};
use super::{load_base, Learning, LearningError};
use crate::store::{HeadRow, HeadState, NewHead};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    #[default]
    Idle,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// What `GET /api/v1/model/retrain` answers.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct JobStatus {
    pub state: JobState,
    /// `reading corrections`, `fitting`, `judging`, `storing`.
    pub phase: String,
    /// Who asked: `api`, `dashboard`, `auto`, `cli`.
    pub trigger: String,
    pub genres_done: usize,
    pub genres_total: usize,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub seconds: Option<f64>,
    /// The candidate it made.
    pub head_id: Option<i64>,
    pub corrections: usize,
    pub base_posters: usize,
    pub error: Option<String>,
}

#[derive(Default)]
pub(super) struct Job {
    status: Mutex<JobStatus>,
    cancel: AtomicBool,
    done: AtomicUsize,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn snapshot(&self) -> JobStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if s.state == JobState::Running {
            s.genres_done = self.done.load(Ordering::Relaxed);
        }
        s
    }
}

impl Learning {
    pub fn retrain_status(&self) -> JobStatus {
        self.0.job.snapshot()
    }

    /// Ask a running retrain to stop (it stops after the genre it is on).
    pub fn cancel_retrain(&self) -> bool {
        let running = self.0.job.snapshot().state == JobState::Running;
        if running {
            self.0.job.cancel.store(true, Ordering::Relaxed);
        }
        running
    }

    /// Start a retrain in the background; `Busy` if one is running.
    pub fn start_retrain(&self, trigger: &str) -> Result<JobStatus, LearningError> {
        self.spawn(trigger, None)?;
        Ok(self.retrain_status())
    }

    /// Retrain and wait for the candidate (the CLI).
    pub async fn retrain_now(&self, trigger: &str) -> Result<HeadRow, LearningError> {
        let (tx, rx) = oneshot::channel();
        self.spawn(trigger, Some(tx))?;
        let status = rx.await.unwrap_or_else(|_| self.retrain_status());
        match (status.state, status.head_id) {
            (JobState::Done, Some(id)) => self
                .0
                .store
                .call(move |s| s.head_row(id))
                .await?
                .ok_or(LearningError::UnknownHead(id)),
            _ => Err(LearningError::RetrainFailed(
                status.error.unwrap_or_else(|| "the retrain stopped".into()),
            )),
        }
    }

    fn spawn(
        &self,
        trigger: &str,
        finished: Option<oneshot::Sender<JobStatus>>,
    ) -> Result<(), LearningError> {
        let job = &self.0.job;
        // The new head is stored and put live through the async store handle.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            LearningError::RetrainFailed(
                "a retrain must be started from the daemon's runtime".into(),
            )
        })?;
        {
            let mut s = job.status.lock().unwrap_or_else(PoisonError::into_inner);
            if s.state == JobState::Running {
                return Err(LearningError::Busy);
            }
            *s = JobStatus {
                state: JobState::Running,
                phase: "reading corrections".into(),
                trigger: trigger.to_string(),
                genres_total: self.known_genres().len(),
                started_at_ms: Some(crate::poster::now_ms()),
                ..JobStatus::default()
            };
        }
        job.cancel.store(false, Ordering::Relaxed);
        job.done.store(0, Ordering::Relaxed);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("marquee-retrain".into())
            .spawn(move || {
                lowest_priority();
                let outcome = me.run(&runtime);
                let job = &me.0.job;
                job.update(|s| {
                    s.finished_at_ms = Some(crate::poster::now_ms());
                    s.genres_done = job.done.load(Ordering::Relaxed);
                    match outcome {
                        Ok(id) => {
                            s.state = JobState::Done;
                            s.head_id = Some(id);
                        }
                        Err(RunError::Cancelled) => s.state = JobState::Cancelled,
                        Err(RunError::Failed(why)) => {
                            s.state = JobState::Failed;
                            s.error = Some(why);
                        }
                    }
                });
                let status = job.snapshot();
                match status.state {
                    JobState::Done => info!(
                        head = ?status.head_id,
                        seconds = ?status.seconds,
                        corrections = status.corrections,
                        "retrain done: a candidate head is shadowed"
                    ),
                    JobState::Cancelled => info!("retrain cancelled"),
                    _ => warn!(error = ?status.error, "retrain failed"),
                }
                if let Some(tx) = finished {
                    let _ = tx.send(status);
                }
            });
        if let Err(err) = spawned {
            job.update(|s| {
                s.state = JobState::Failed;
                s.error = Some(format!("cannot start the retrain thread: {err}"));
            });
            return Err(LearningError::RetrainFailed(err.to_string()));
        }
        Ok(())
    }

    fn run(&self, runtime: &tokio::runtime::Handle) -> Result<i64, RunError> {
        let inner = &self.0;
        let dim = inner.backbone.feature_dim;
        let model = inner.backbone.name.clone();
        let (corrections, extra) = inner
            .store
            .blocking_call(move |s| {
                Ok((s.corrections_with_features(&model, dim)?, s.extra_genres()?))
            })
            .map_err(|e| RunError::Failed(e.to_string()))?;
        let base = load_base(&inner.base, &inner.backbone, dim).map_err(|e| {
            RunError::Failed(format!("the shipped base features cannot be used: {e}"))
        })?;
        let parent = inner.heads.active();
        inner.job.update(|s| s.phase = "fitting".into());
        let cfg = RetrainConfig {
            threads: if inner.threads == 0 {
                RetrainConfig::default().threads
            } else {
                inner.threads
            },
            ..RetrainConfig::default()
        };
        let retrained = retrain::retrain(
            &parent.head,
            corrections,
            base,
            &extra,
            &cfg,
            &inner.job.cancel,
            &inner.job.done,
        );
        let retrained = match retrained {
            Ok(r) => r,
            Err(RetrainError::Fit(crate::model::training::TrainError::Cancelled)) => {
                return Err(RunError::Cancelled)
            }
            Err(e) => return Err(RunError::Failed(e.to_string())),
        };
        inner.job.update(|s| {
            s.phase = "storing".into();
            s.seconds = Some(retrained.seconds);
            s.corrections = retrained.corrections;
            s.base_posters = retrained.base_posters;
        });
        let json = serde_json::to_string(&retrained.head)
            .map_err(|e| RunError::Failed(format!("cannot encode the head: {e}")))?;
        let mut metrics = retrained.head.metrics.clone();
        metrics["seconds"] = serde_json::json!(retrained.seconds);
        let new = NewHead {
            parent: parent.id,
            state: HeadState::Candidate,
            origin: "retrain",
            backbone: inner.backbone.sha256.clone(),
            feature_dim: dim,
            labels: retrained.head.labels(),
            corrections: retrained.corrections as u64,
            base_posters: retrained.base_posters as u64,
            metrics,
            sha256: crate::model::manifest::sha256_hex(json.as_bytes()),
            head: json,
            created_at_ms: crate::poster::now_ms(),
        };
        runtime
            .block_on(self.add_candidate(new))
            .map(|row| row.id)
            .map_err(|e| RunError::Failed(e.to_string()))
    }
}

enum RunError {
    Cancelled,
    Failed(String),
}

/// The retrain must never slow classification: nice 19 on its own thread
/// (Linux keeps nice per thread) gives the classify workers ~70 times its
/// share of a busy core. The fit's threads inherit it.
fn lowest_priority() {
    let me = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(me), 19) {
        warn!(error = %err, "cannot lower the retrain thread's priority: it competes with classification");
    }
}
