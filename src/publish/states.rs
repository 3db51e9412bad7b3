//! Retained state messages owned by other modules (each camera's
//! availability): the session publishes a value when it changes, and every
//! value again after each reconnect, so a restarted broker has them all.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct RetainedStates {
    entries: Mutex<BTreeMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    payload: Vec<u8>,
    /// Not yet handed to the broker on the current connection.
    dirty: bool,
}

impl RetainedStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A poisoned map is still a whole map.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Set `topic`'s value; true when it changed.
    pub fn set(&self, topic: String, payload: Vec<u8>) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(&topic) {
            Some(entry) if entry.payload == payload => false,
            Some(entry) => {
                entry.payload = payload;
                entry.dirty = true;
                true
            }
            None => {
                entries.insert(
                    topic,
                    Entry {
                        payload,
                        dirty: true,
                    },
                );
                true
            }
        }
    }

    /// The values to publish, marked as sent.
    pub fn take_dirty(&self) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .iter_mut()
            .filter(|(_, entry)| entry.dirty)
            .map(|(topic, entry)| {
                entry.dirty = false;
                (topic.clone(), entry.payload.clone())
            })
            .collect()
    }

    /// A value that could not be handed over: try again next turn.
    pub fn retry(&self, topic: &str) {
        if let Some(entry) = self.lock().get_mut(topic) {
            entry.dirty = true;
        }
    }

    /// A new connection: everything goes out again.
    pub fn mark_all_dirty(&self) {
        for entry in self.lock().values_mut() {
            entry.dirty = true;
        }
    }

    /// The current value of `topic`.
    pub fn get(&self, topic: &str) -> Option<Vec<u8>> {
        self.lock().get(topic).map(|entry| entry.payload.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_go_out_once_and_all_again_after_a_reconnect() {
        let s = RetainedStates::default();
        assert!(s.set("a".into(), b"online".to_vec()));
        assert!(!s.set("a".into(), b"online".to_vec()));
        assert_eq!(s.take_dirty().len(), 1);
        assert!(s.take_dirty().is_empty());
        s.set("b".into(), b"offline".to_vec());
        s.mark_all_dirty();
        assert_eq!(s.take_dirty().len(), 2);
        s.retry("a");
        assert_eq!(s.take_dirty(), vec![("a".into(), b"online".to_vec())]);
    }
}
