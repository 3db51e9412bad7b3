//! Ordered shutdown under one deadline.
//!
//! systemd kills the daemon `TimeoutStopSec` (30 s) after SIGTERM, so the
//! whole shutdown gets one budget below that ([`SHUTDOWN_BUDGET`]). Each
//! stage gets an absolute deadline carved from it: what an early stage does
//! not use is left to the later ones, and a stage that hangs is cut at its
//! deadline so the ones after it (the publisher's `offline`, the store's
//! last commits) still run.
//!
//! 1. inputs: the HTTP server stops accepting and finishes what it has
//!    (uploads wait for their posters); the folder, MQTT and cameras stop;
//! 2. workers: the queue closes once the inputs are gone; they classify
//!    what is in it and commit it;
//! 3. publisher: delivers what its grace period allows, says `offline`;
//! 4. store: the writer thread runs what is queued and closes the file.
//!
//! A result committed and not yet published is delivered by the next start.

use crate::classify::Workers;
use crate::store::{StoreHandle, StoreWriter};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

/// The whole shutdown, from SIGTERM to the store closed: 5 s under the
/// unit's `TimeoutStopSec=30s`, for the runtime to wind down and the
/// process to exit.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

/// Kept for the store's writer to finish its queue and close the file.
const STORE_RESERVE: Duration = Duration::from_secs(1);
/// Kept for the publisher: its grace period for the backlog (3 s by
/// default) and the DISCONNECT.
const PUBLISH_RESERVE: Duration = Duration::from_secs(4);
/// Kept for the workers to classify what is still queued.
const WORKERS_RESERVE: Duration = Duration::from_secs(5);

/// A point in time every stage of a shutdown must be done by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    /// The same deadline `reserve` earlier: what a stage gets when the
    /// stages after it need `reserve`.
    #[must_use]
    pub fn leaving(self, reserve: Duration) -> Self {
        Self {
            at: self.at.checked_sub(reserve).unwrap_or(self.at),
        }
    }

    pub fn remaining(self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Run `work` until the deadline: `None` if it was cut.
    pub async fn run<F: Future>(self, work: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.at, work).await.ok()
    }
}

/// Each stage's deadline, carved from one budget.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub inputs: Deadline,
    pub workers: Deadline,
    pub publisher: Deadline,
    pub store: Deadline,
}

impl Plan {
    /// A plan for a shutdown starting now with `budget` in all.
    pub fn starting_now(budget: Duration) -> Self {
        let store = Deadline::after(budget);
        let publisher = store.leaving(STORE_RESERVE);
        let workers = publisher.leaving(PUBLISH_RESERVE);
        let inputs = workers.leaving(WORKERS_RESERVE);
        Self {
            inputs,
            workers,
            publisher,
            store,
        }
    }
}

/// Everything shutdown has to stop, in the order it stops them.
pub struct Stages {
    pub shutdown: CancellationToken,
    pub inputs: TaskTracker,
    pub http_task: JoinHandle<std::io::Result<()>>,
    pub workers: Workers,
    pub publisher_stop: CancellationToken,
    pub publisher_task: JoinHandle<()>,
    /// Stops the maintenance tasks (watchdog, retention).
    pub maintenance_stop: CancellationToken,
    pub maintenance: Vec<JoinHandle<()>>,
    pub store: StoreHandle,
    pub writer: StoreWriter,
}

impl Stages {
    /// Wait for `shutdown` (or the HTTP server failing), then stop every
    /// stage in order within [`SHUTDOWN_BUDGET`].
    pub async fn supervise(self) -> anyhow::Result<()> {
        let Self {
            shutdown,
            inputs,
            mut http_task,
            workers,
            publisher_stop,
            mut publisher_task,
            maintenance_stop,
            maintenance,
            store,
            writer,
        } = self;

        // The HTTP server only ends by itself on an error: shut down then too.
        let early = tokio::select! {
            () = shutdown.cancelled() => None,
            ended = &mut http_task => Some(ended),
        };
        shutdown.cancel();
        let plan = Plan::starting_now(SHUTDOWN_BUDGET);
        if let Err(err) = crate::systemd::stopping() {
            debug!(error = %err, "cannot tell systemd we are stopping");
        }
        info!(
            budget_s = SHUTDOWN_BUDGET.as_secs(),
            "shutting down: inputs stop, in-flight posters drain"
        );

        // 1. Inputs: they finish what they accepted (uploads wait for their
        //    results, which the workers are still producing).
        let mut failure: Option<anyhow::Error> = None;
        let http_outcome = match early {
            Some(ended) => Some(ended),
            None => plan.inputs.run(&mut http_task).await,
        };
        match http_outcome {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(err))) => {
                failure = Some(anyhow::Error::new(err).context("the HTTP server failed"));
            }
            Some(Err(join)) => failure = Some(anyhow::anyhow!("the HTTP server panicked: {join}")),
            None => {
                warn!("uploads still open at the inputs' deadline; closing them");
                http_task.abort();
            }
        }
        if plan.inputs.run(inputs.wait()).await.is_none() {
            warn!("an input did not stop by its deadline");
        }

        // 2. Workers: the queue is closed once the inputs are gone; they
        //    finish every poster in it and exit.
        match plan.workers.run(workers.join()).await {
            Some(Ok(0)) => {}
            Some(Ok(n)) => error!(workers = n, "classify workers panicked"),
            Some(Err(err)) => error!(error = %err, "joining the classify workers failed"),
            None => error!(
                "the classify workers did not finish the queue by their deadline; \
                 posters not yet committed are lost (their inputs were not told they were stored)"
            ),
        }

        // 3. Publisher: deliver what its grace period allows, say offline.
        publisher_stop.cancel();
        match plan.publisher.run(&mut publisher_task).await {
            Some(Ok(())) => {}
            Some(Err(err)) => error!(error = %err, "the publisher panicked"),
            None => {
                warn!("the publisher did not stop by its deadline; the backlog goes out at the next start");
                publisher_task.abort();
            }
        }
        maintenance_stop.cancel();
        for task in maintenance {
            let _ = plan.publisher.run(task).await;
        }

        // 4. Store: every handle is gone once this one is; the writer
        //    runs what is queued and closes the database.
        drop(store);
        match plan
            .store
            .run(tokio::task::spawn_blocking(move || writer.join()))
            .await
        {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(err))) => error!(error = %err, "the store's writer thread failed"),
            Some(Err(err)) => error!(error = %err, "joining the store's writer failed"),
            None => error!("the store's writer did not close by the deadline"),
        }
        info!("marquee stopped");
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit's `TimeoutStopSec`, read from the shipped unit file.
    fn unit_stop_timeout() -> Duration {
        let unit = include_str!("../../systemd/marquee.service");
        let value = unit
            .lines()
            .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
            .expect("the unit sets TimeoutStopSec");
        Duration::from_secs(value.trim_end_matches('s').parse().unwrap())
    }

    #[test]
    fn the_budget_is_under_the_units_stop_timeout() {
        assert!(SHUTDOWN_BUDGET + Duration::from_secs(2) <= unit_stop_timeout());
        assert!(STORE_RESERVE + PUBLISH_RESERVE + WORKERS_RESERVE < SHUTDOWN_BUDGET);
    }

    #[tokio::test(start_paused = true)]
    async fn stages_that_hang_are_cut_at_their_deadlines_and_all_fit_the_budget() {
        let start = Instant::now();
        let plan = Plan::starting_now(SHUTDOWN_BUDGET);
        let hang = std::future::pending::<()>;
        assert_eq!(plan.inputs.run(hang()).await, None);
        assert_eq!(plan.inputs.run(hang()).await, None, "past it: cut at once");
        assert_eq!(plan.workers.run(hang()).await, None);
        assert_eq!(plan.publisher.run(hang()).await, None);
        assert_eq!(plan.store.run(hang()).await, None);
        let took = start.elapsed();
        assert_eq!(took, SHUTDOWN_BUDGET);
        assert!(took < unit_stop_timeout());
    }

    #[tokio::test(start_paused = true)]
    async fn time_an_early_stage_leaves_goes_to_the_later_ones() {
        let start = Instant::now();
        let plan = Plan::starting_now(SHUTDOWN_BUDGET);
        // The inputs finish at once; the workers may use the inputs' share.
        let quick = plan.inputs.run(async {}).await;
        assert_eq!(quick, Some(()));
        let long = SHUTDOWN_BUDGET - STORE_RESERVE - PUBLISH_RESERVE - Duration::from_secs(1);
        let drained = plan.workers.run(tokio::time::sleep(long)).await;
        assert_eq!(
            drained,
            Some(()),
            "the workers had until their own deadline"
        );
        // The publisher still has its reserve.
        assert!(plan.publisher.remaining() >= PUBLISH_RESERVE);
        assert!(start.elapsed() < SHUTDOWN_BUDGET);
    }
}
