//! Logged-in sessions, in memory: a restart logs everyone out. Kept by the
//! SHA-256 of their cookie value, so a memory dump holds no usable cookie;
//! bounded, the oldest going first.

use crate::credentials::digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions kept at most; the oldest go first (a script logging in in a
/// loop cannot grow memory).
const MAX_SESSIONS: usize = 256;

#[derive(Debug)]
struct Session {
    csrf: String,
    expires: Instant,
    created: Instant,
}

#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Start a session `id` whose forms carry `csrf`.
    pub fn start(&self, id: &str, csrf: String) {
        let now = Instant::now();
        let mut live = super::lock(&self.live);
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                live.remove(&oldest);
            }
        }
        live.insert(
            digest(id),
            Session {
                csrf,
                expires: now + self.ttl,
                created: now,
            },
        );
    }

    /// The CSRF token of the live session `id`, if there is one.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let key = digest(id);
        let mut live = super::lock(&self.live);
        match live.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.csrf.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        super::lock(&self.live).remove(&digest(id));
    }
}
