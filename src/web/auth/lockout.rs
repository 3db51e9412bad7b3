//! Failed logins per address: after a few, the address waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::warn;

/// Failed logins from one address before it must wait.
const MAX_FAILURES: u32 = 5;
/// How long an address waits after too many failures.
const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses remembered at most (bounded memory under a spray of addresses).
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Lockout {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Lockout {
    /// How long `ip` must still wait, if it is locked out.
    pub fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let failures = super::lock(&self.failures);
        let until = failures.get(&ip)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut failures = super::lock(&self.failures);
        if failures.len() > MAX_ADDRESSES {
            failures.clear();
        }
        let entry = failures.entry(ip).or_default();
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.count = 0;
            entry.locked_until = Some(Instant::now() + LOCKOUT);
            warn!(%ip, "repeated failed dashboard logins; address locked for a minute");
        }
    }

    pub fn succeeded(&self, ip: IpAddr) {
        super::lock(&self.failures).remove(&ip);
    }
}
