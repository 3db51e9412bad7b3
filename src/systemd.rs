//! The daemon's side of `Type=notify`: tell systemd when it is ready, when it
//! is stopping, and that it is alive (the watchdog).
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (run by hand, in tests,
//! under another supervisor), so callers need no "am I under systemd" checks.
//!
//! Use: call [`ready`] once the listeners are bound and the store is open;
//! if [`watchdog_interval`] is `Some`, call [`ping`] that often from a task
//! that only runs while the pipeline makes progress; call [`stopping`] when
//! shutdown begins.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// The socket systemd gave us could not be written. The daemon can go
    /// on, but systemd may time it out: log it as a warning.
    #[error("cannot send {state} to systemd's notify socket: {source}")]
    Notify {
        state: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn notify(state: sd_notify::NotifyState<'_>, name: &'static str) -> Result<(), SystemdError> {
    sd_notify::notify(&[state]).map_err(|source| SystemdError::Notify {
        state: name,
        source,
    })
}

/// Whether systemd is listening for notifications.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// `READY=1`: start-up finished; `systemctl start` returns now.
pub fn ready() -> Result<(), SystemdError> {
    notify(sd_notify::NotifyState::Ready, "READY=1")
}

/// `STOPPING=1`: shutdown began; systemd waits up to `TimeoutStopSec`.
pub fn stopping() -> Result<(), SystemdError> {
    notify(sd_notify::NotifyState::Stopping, "STOPPING=1")
}

/// `WATCHDOG=1`: still alive. Only meaningful when [`watchdog_interval`] is `Some`.
pub fn ping() -> Result<(), SystemdError> {
    notify(sd_notify::NotifyState::Watchdog, "WATCHDOG=1")
}

/// `STATUS=...`: one line shown by `systemctl status`.
pub fn status(text: &str) -> Result<(), SystemdError> {
    notify(sd_notify::NotifyState::Status(text), "STATUS")
}

/// How often to [`ping`]: half of `WatchdogSec`, as sd_watchdog_enabled(3)
/// advises, so one late tick does not get the daemon killed. `None` when the
/// watchdog is off or meant for another process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|timeout| !timeout.is_zero())
        .map(|timeout| timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests run without systemd; every call must then do nothing.
    #[test]
    fn calls_are_no_ops_without_systemd() {
        if enabled() {
            return; // run under systemd (e.g. a CI unit): nothing to check
        }
        assert!(ready().is_ok());
        assert!(ping().is_ok());
        assert!(status("testing").is_ok());
        assert!(stopping().is_ok());
    }
}
