//! Background upkeep while the daemon runs: history retention and the
//! systemd watchdog. Both stop when their token is cancelled.

use crate::poster::now_ms;
use crate::store::StoreHandle;
use crate::systemd;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often retention runs after the first run at start. Hourly keeps each
/// run's delete small (it holds the writer for one transaction) while the
/// limits are never overshot by more than an hour of history.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Apply `store.retention_days` / `retention_rows` at start, then hourly.
/// The store never deletes unpublished outbox rows, however old.
pub async fn retention(
    days: Option<u32>,
    rows: Option<u64>,
    store: StoreHandle,
    stop: CancellationToken,
) {
    // The first tick fires at once: a board that was off for a month trims
    // its history as it starts, not an hour later.
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store
            .call(move |s| s.apply_retention(days, rows, now_ms()))
            .await
        {
            Ok(report) => info!(
                classifications = report.classifications,
                posters = report.posters,
                outbox = report.outbox,
                "retention applied"
            ),
            // The next run tries again; history only grows meanwhile.
            Err(err) => warn!(error = %err, "retention failed"),
        }
    }
}

/// WATCHDOG=1 while the store's writer answers: a wedged writer stalls
/// the whole pipeline, and systemd should restart the daemon then.
pub async fn watchdog(every: Duration, store: StoreHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = store.call(|s| s.schema_version());
        match tokio::time::timeout(every, probe).await {
            Ok(Ok(_)) => {
                if let Err(err) = systemd::ping() {
                    warn!(error = %err, "watchdog ping failed");
                }
            }
            Ok(Err(err)) => warn!(error = %err, "store failing: no watchdog ping"),
            Err(_) => warn!("store busy beyond the watchdog period: no ping"),
        }
    }
}
