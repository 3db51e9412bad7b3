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

/// How often the automatic retrain counts corrections.
const AUTO_RETRAIN_EVERY: Duration = Duration::from_secs(30);

/// `[learning] retrain_after = N`: start a retrain once N more posters have
/// been corrected than the newest retrained head learned from. A retrain
/// that fails is tried again only when more corrections arrive.
pub async fn auto_retrain(
    learning: crate::learning::Learning,
    after: u64,
    store: StoreHandle,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(AUTO_RETRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_try: Option<u64> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let counted = store
            .call(|s| {
                let learned = s
                    .heads()?
                    .iter()
                    .filter(|h| h.origin == "retrain")
                    .map(|h| h.corrections)
                    .max()
                    .unwrap_or(0);
                Ok((s.corrected_posters()?, learned))
            })
            .await;
        let (corrected, learned) = match counted {
            Ok(c) => c,
            Err(err) => {
                warn!(error = %err, "cannot count corrections for the automatic retrain");
                continue;
            }
        };
        if corrected < learned + after || last_try == Some(corrected) {
            continue;
        }
        last_try = Some(corrected);
        match learning.start_retrain("auto") {
            Ok(_) => info!(corrected, learned, "automatic retrain started"),
            Err(err) => info!(error = %err, "automatic retrain not started"),
        }
    }
}
