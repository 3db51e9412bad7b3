//! Joining the daemon's plain threads (classify workers, cameras) from async
//! code at shutdown.

use std::thread::JoinHandle;

/// Join every thread on the blocking pool; how many of them panicked.
pub(crate) async fn join_counting_panics(
    threads: Vec<JoinHandle<()>>,
) -> Result<usize, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(JoinHandle::join)
            .filter(Result::is_err)
            .count()
    })
    .await
}
