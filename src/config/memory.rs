//! The daemon's worst-case memory, from its configuration: what a board
//! profile states as `inference.memory_budget_mb` and the code keeps.
//!
//! Every part that grows with input is bounded by a setting; what does not
//! grow is measured (see the constants and the README's hostile-load
//! benchmark, `scripts/bench-hostile.py`, which checks peak RSS against it).

use super::schema::Config;
use serde::Serialize;

/// The process before any poster: the loaded int8 model (tract's optimised
/// plan), the async runtime, SQLite's page cache and the dashboard's caches
/// at their caps. Measured: 133 MB peak after 5,000 posters on x86_64
/// (`scripts/bench-daemon.py`), rounded up.
pub const RUNTIME_MB: u64 = 150;
/// Each classify worker's inference scratch (tract's activations for one
/// 224x320 poster, the tensor, the thumbnail), rounded up. onnxruntime (one
/// session per worker) measured below tract at 1 and 6 workers
/// (docs/onnxruntime.md), so these bound both runtimes.
pub const PER_WORKER_MB: u64 = 16;
/// Each open connection at most: hyper's read buffer (capped at this) and
/// the task around it.
pub const PER_CONNECTION_KB: u64 = 80;
/// Password checks at once (`web::auth::PASSWORD_CHECKS`), each with its
/// Argon2 working memory kept for the next one.
pub const LOGIN_CHECKS: u64 = 1;
/// One feedback import at a time: its body (`feedback::MAX_IMPORT_BYTES`)
/// and its parsed rows, rounded up.
pub const IMPORT_MB: u64 = 8;
/// A retrain on corrections (one at a time): the corrected and the shipped
/// base posters' features and the standardised matrix the fitting threads
/// share, then each thread's solver state. Measured: 88-90 MB over the
/// daemon's (or the CLI's) RSS with the whole base and 600 corrections on 2
/// threads (`scripts/bench-learning.py`, `marquee retrain`; docs/learning.md),
/// rounded up.
pub const RETRAIN_MB: u64 = 100;
pub const RETRAIN_PER_THREAD_MB: u64 = 5;
/// Images held outside the queue's memory at most: one MQTT message being
/// read, one waiting for room.
pub const IN_TRANSIT_INPUTS: u64 = 2;

/// Where the worst case goes, in MiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    pub runtime_mb: u64,
    pub workers: u64,
    pub workers_mb: u64,
    pub decode_mb: u64,
    pub uploads_mb: u64,
    /// Images on their way in before they take a share of the uploads'
    /// memory: the MQTT message being received and the one waiting for
    /// room ([`IN_TRANSIT_INPUTS`] x `http.max_upload_bytes`).
    pub in_transit_mb: u64,
    pub connections_mb: u64,
    /// The password checks' kept Argon2 memory ([`LOGIN_CHECKS`] x the
    /// hash's memory cost, 19 MiB by default).
    pub login_mb: u64,
    /// A retrain ([`RETRAIN_MB`] + `learning.threads` x [`RETRAIN_PER_THREAD_MB`]).
    pub retrain_mb: u64,
    pub total_mb: u64,
    pub budget_mb: u64,
}

impl MemoryPlan {
    pub fn fits(&self) -> bool {
        self.total_mb <= self.budget_mb
    }
}

impl std::fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} MiB worst case of a {} MiB budget: runtime {} + {} workers x {} + decodes {} \
             (inference.decode_memory_mb) + uploads {} (http.upload_memory_mb) + in transit {} \
             ({IN_TRANSIT_INPUTS} x http.max_upload_bytes) + connections {} (http.max_connections) \
             + login {} (Argon2) + a feedback import {IMPORT_MB} + a retrain {} (learning.threads)",
            self.total_mb,
            self.budget_mb,
            self.runtime_mb,
            self.workers,
            PER_WORKER_MB,
            self.decode_mb,
            self.uploads_mb,
            self.in_transit_mb,
            self.connections_mb,
            self.login_mb,
            self.retrain_mb
        )
    }
}

impl Config {
    /// The worst case this configuration allows, against its budget.
    pub fn memory_plan(&self) -> MemoryPlan {
        let workers = self.inference.effective_threads() as u64;
        let decode_mb = u64::from(self.inference.decode_memory_mb);
        let uploads_mb = u64::from(self.http.upload_memory_mb);
        let connections_mb =
            (u64::from(self.http.max_connections) * PER_CONNECTION_KB).div_ceil(1024);
        let workers_mb = workers * PER_WORKER_MB;
        let in_transit_mb = (IN_TRANSIT_INPUTS * self.http.max_upload_bytes).div_ceil(1 << 20);
        let check_kib =
            crate::credentials::check_memory_kib(self.dashboard.password_hash.as_deref());
        let login_mb = LOGIN_CHECKS * (check_kib as u64).div_ceil(1024);
        let retrain_mb =
            RETRAIN_MB + self.learning.effective_threads() as u64 * RETRAIN_PER_THREAD_MB;
        MemoryPlan {
            runtime_mb: RUNTIME_MB,
            workers,
            workers_mb,
            decode_mb,
            uploads_mb,
            in_transit_mb,
            connections_mb,
            login_mb,
            retrain_mb,
            total_mb: RUNTIME_MB
                + workers_mb
                + decode_mb
                + uploads_mb
                + in_transit_mb
                + connections_mb
                + login_mb
                + IMPORT_MB
                + retrain_mb,
            budget_mb: u64::from(self.inference.memory_budget_mb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_their_budget() {
        let mut config = Config::default();
        config.inference.threads = 4;
        let plan = config.memory_plan();
        assert!(plan.fits(), "{plan}");
        assert_eq!(
            plan.total_mb,
            RUNTIME_MB + 4 * PER_WORKER_MB + 128 + 48 + 40 + 20 + 19 + IMPORT_MB + plan.retrain_mb,
            "{plan}"
        );
        // Whatever the machine's core count, `threads = 0` fits too.
        config.inference.threads = 0;
        assert!(config.memory_plan().fits(), "{}", config.memory_plan());
    }
}
