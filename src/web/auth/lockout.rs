//! Failed logins per address: after a few, the address waits, longer each
//! time. An attempt is counted when it starts, before the password is
//! checked, so a burst of concurrent guesses cannot slip past the limit;
//! other addresses (the owner's) are not affected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::warn;

/// Wrong passwords (counted or in flight) from one address before it waits.
pub const MAX_FAILURES: u32 = 5;
/// The first wait; each lockout after it doubles, up to [`MAX_LOCKOUT`].
const LOCKOUT: Duration = Duration::from_secs(60);
const MAX_LOCKOUT: Duration = Duration::from_secs(30 * 60);
/// An address forgotten this long after its last attempt starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(6 * 60 * 60);
/// Addresses remembered at most: memory stays bounded under a spray of
/// addresses; the least recently seen are forgotten first.
const MAX_ADDRESSES: usize = 4096;

/// Addresses are judged per host for IPv4 and per /64 for IPv6 (one home
/// or one attacker gets a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u128);

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self((u128::from(v6) >> 64) << 64 | 1 << 63),
            },
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    in_flight: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub struct Lockout {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// One password check under way; say how it went, or it counts as failed.
#[derive(Debug)]
#[must_use]
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    key: Key,
    ip: IpAddr,
    settled: bool,
}

impl Lockout {
    /// Start an attempt from `ip`, or how long it must wait first.
    pub fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        let key = Key::from(ip);
        let now = Instant::now();
        let mut entries = super::lock(&self.entries);
        if !entries.contains_key(&key) && entries.len() >= MAX_ADDRESSES {
            make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            lockouts: 0,
            locked_until: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if let Some(wait) = entry
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
        {
            return Err(wait);
        }
        if entry.failures + entry.in_flight >= MAX_FAILURES {
            // Enough guesses are already being checked: wait for them.
            return Err(Duration::from_secs(1));
        }
        entry.in_flight += 1;
        Ok(Attempt {
            lockout: self,
            key,
            ip,
            settled: false,
        })
    }

    /// How long `ip` must still wait, if it is locked out.
    pub fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let entries = super::lock(&self.entries);
        let until = entries.get(&Key::from(ip))?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Addresses remembered now.
    pub fn remembered(&self) -> usize {
        super::lock(&self.entries).len()
    }

    fn settle(&self, key: Key, ip: IpAddr, ok: bool) {
        let mut entries = super::lock(&self.entries);
        let Some(entry) = entries.get_mut(&key) else {
            return;
        };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if ok {
            entries.remove(&key);
            return;
        }
        entry.failures += 1;
        if entry.failures >= MAX_FAILURES {
            let wait = LOCKOUT
                .saturating_mul(1 << entry.lockouts.min(5))
                .min(MAX_LOCKOUT);
            entry.failures = 0;
            entry.lockouts += 1;
            entry.locked_until = Some(Instant::now() + wait);
            warn!(
                %ip,
                wait_s = wait.as_secs(),
                "repeated failed dashboard logins; address locked"
            );
        }
    }
}

/// Forget addresses idle for long, then the least recently seen that are
/// not checking a password now.
fn make_room(entries: &mut HashMap<Key, Entry>, now: Instant) {
    entries.retain(|_, e| e.in_flight > 0 || now.duration_since(e.last_seen) < FORGET_AFTER);
    while entries.len() >= MAX_ADDRESSES {
        let oldest = entries
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(k, _)| *k);
        match oldest {
            Some(key) => {
                entries.remove(&key);
            }
            None => break,
        }
    }
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.settled = true;
        self.lockout.settle(self.key, self.ip, true);
    }

    pub fn failed(mut self) {
        self.settled = true;
        self.lockout.settle(self.key, self.ip, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            // Abandoned half way (the client went): counted as a failure.
            self.lockout.settle(self.key, self.ip, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn a_burst_gets_at_most_the_limit_through_and_others_are_not_locked() {
        let lockout = Lockout::default();
        let mut started = Vec::new();
        for _ in 0..50 {
            if let Ok(attempt) = lockout.begin(ip(1)) {
                started.push(attempt);
            }
        }
        assert_eq!(started.len() as u32, MAX_FAILURES, "in flight count too");
        for attempt in started {
            attempt.failed();
        }
        let wait = lockout.locked(ip(1)).expect("locked after the failures");
        assert!(wait > Duration::from_secs(50));
        assert!(lockout.begin(ip(1)).is_err());
        // The owner, from another address, is not locked out.
        lockout.begin(ip(2)).unwrap().succeeded();
        assert_eq!(lockout.remembered(), 1, "a success forgets the address");
    }

    #[test]
    fn ipv6_is_judged_per_64_and_v4_mapped_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::from(a), Key::from(b));
        assert_ne!(Key::from(a), Key::from(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(Key::from(mapped), Key::from(ip(1)));
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_addresses() {
        let lockout = Lockout::default();
        for n in 0..(MAX_ADDRESSES as u32 + 500) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + n));
            lockout.begin(addr).unwrap().failed();
        }
        assert!(lockout.remembered() <= MAX_ADDRESSES);
    }

    #[test]
    fn an_abandoned_attempt_counts_as_failed() {
        let lockout = Lockout::default();
        for _ in 0..MAX_FAILURES {
            drop(lockout.begin(ip(3)).unwrap());
        }
        assert!(lockout.locked(ip(3)).is_some());
    }
}
