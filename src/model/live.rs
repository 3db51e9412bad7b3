//! The heads the daemon classifies with right now: the active one (its tags
//! are published) and, while one is being judged, a candidate that scores
//! the same features in the shadow (stored, never published).
//!
//! Swapped whole behind a lock held for a pointer copy: a promotion takes
//! effect for the next poster without a restart, and a poster being
//! classified keeps the head it started with.

use std::sync::{Arc, PoisonError, RwLock};

use super::head::GenreHead;

/// A head with the version the outside sees.
#[derive(Debug)]
pub struct LiveHead {
    /// The head's row in the store; `None` before the store has registered it
    /// (offline tools, a daemon starting up).
    pub id: Option<i64>,
    /// Whether this is the head shipped in `models/` (its name carries no
    /// `+head-N`, so subscribers of the shipped model see what they always saw).
    pub shipped: bool,
    pub head: GenreHead,
    /// As published in events' `model`: `efficientnet-lite0-int8+head-7`.
    pub name: String,
}

impl LiveHead {
    pub fn new(base_name: &str, id: Option<i64>, shipped: bool, head: GenreHead) -> Self {
        let name = match (shipped, id) {
            (false, Some(id)) => format!("{base_name}+head-{id}"),
            _ => base_name.to_string(),
        };
        Self {
            id,
            shipped,
            head,
            name,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HeadSet {
    pub active: Arc<LiveHead>,
    pub candidate: Option<Arc<LiveHead>>,
}

/// Shared between the classify workers, the learning loop and the dashboard.
#[derive(Debug, Clone)]
pub struct HeadSlot(Arc<RwLock<HeadSet>>);

impl HeadSlot {
    pub fn new(active: LiveHead) -> Self {
        Self(Arc::new(RwLock::new(HeadSet {
            active: Arc::new(active),
            candidate: None,
        })))
    }

    pub fn get(&self) -> HeadSet {
        // Poisoned only if a writer panicked between two pointer stores;
        // either pointer is a whole head.
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn active(&self) -> Arc<LiveHead> {
        self.get().active
    }

    pub fn set(&self, active: Arc<LiveHead>, candidate: Option<Arc<LiveHead>>) {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        set.active = active;
        set.candidate = candidate;
    }
}

/// The genres a correction may name: the active head's, then the genres an
/// operator added that no head has learned yet. Shared with the inputs that
/// check corrections (dashboard, API, MQTT, imports).
#[derive(Debug, Clone)]
pub struct GenreList(Arc<RwLock<Arc<[String]>>>);

impl GenreList {
    pub fn new(labels: Vec<String>) -> Self {
        Self(Arc::new(RwLock::new(labels.into())))
    }

    pub fn get(&self) -> Arc<[String]> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set(&self, labels: Vec<String>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = labels.into();
    }
}
