//! Which of our publishes each broker acknowledgement is for.
//!
//! rumqttc assigns packet ids itself, inside its event loop; the only way to
//! learn them is the `Outgoing::Publish(pkid)` event it emits as it writes
//! each publish. Requests leave its queue in the order we sent them, so a
//! FIFO of what we sent, popped on each such event, gives pkid -> message;
//! the broker's `PubAck(pkid)` (or `PubRec` for QoS 2) then completes it.
//! Everything is dropped when the connection is lost: with a clean session
//! nothing from the old connection can be acknowledged any more, and the
//! outbox still holds every row that was not.

use std::collections::{HashMap, VecDeque};

/// What one publish was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// An outbox row: mark it published on acknowledgement.
    Row { seq: i64, replayed: bool },
    /// Anything else (availability, stats, discovery, `last`); `offline`
    /// is told apart so shutdown can wait for it.
    Control { offline: bool },
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Sent to rumqttc, packet id not known yet.
    queued: VecDeque<Sent>,
    /// Written to the broker, waiting for its acknowledgement.
    by_pkid: HashMap<u16, Sent>,
    /// A publish rumqttc is holding back because its packet id is still in
    /// use (the broker acked out of order); it goes out on that id's ack.
    collided: Option<(u16, Sent)>,
    rows: usize,
}

impl Tracker {
    /// We handed a publish to rumqttc.
    pub fn sent(&mut self, sent: Sent) {
        if matches!(sent, Sent::Row { .. }) {
            self.rows += 1;
        }
        self.queued.push_back(sent);
    }

    /// rumqttc wrote a publish with this packet id. Returns the message when
    /// that completes it: QoS 0 (id 0) gets no acknowledgement.
    pub fn written(&mut self, pkid: u16) -> Option<Sent> {
        let sent = match self.collided.take() {
            Some((held, sent)) if held == pkid => sent,
            other => {
                self.collided = other;
                self.queued.pop_front()?
            }
        };
        if pkid == 0 {
            self.done(sent);
            Some(sent)
        } else {
            self.by_pkid.insert(pkid, sent);
            None
        }
    }

    /// rumqttc holds the next publish until `pkid` is acknowledged.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(sent) = self.queued.pop_front() {
            self.collided = Some((pkid, sent));
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn acked(&mut self, pkid: u16) -> Option<Sent> {
        let sent = self.by_pkid.remove(&pkid)?;
        self.done(sent);
        Some(sent)
    }

    /// The connection is gone; nothing sent on it will be acknowledged.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Outbox rows sent and not yet acknowledged.
    pub fn rows_in_flight(&self) -> usize {
        self.rows
    }

    /// Anything (rows or control messages) not yet acknowledged.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.by_pkid.is_empty() && self.collided.is_none()
    }

    fn done(&mut self, sent: Sent) {
        if matches!(sent, Sent::Row { .. }) {
            self.rows = self.rows.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> Sent {
        Sent::Row {
            seq,
            replayed: false,
        }
    }

    #[test]
    fn acks_map_back_through_packet_ids_in_send_order() {
        let mut t = Tracker::default();
        t.sent(Sent::Control { offline: false });
        t.sent(row(10));
        t.sent(row(11));
        assert_eq!(t.rows_in_flight(), 2);
        assert_eq!(t.written(1), None);
        assert_eq!(t.written(2), None);
        assert_eq!(t.written(3), None);
        // Out of order acks are fine: each id names its own message.
        assert_eq!(t.acked(3), Some(row(11)));
        assert_eq!(t.acked(1), Some(Sent::Control { offline: false }));
        assert_eq!(t.rows_in_flight(), 1);
        assert_eq!(t.acked(2), Some(row(10)));
        assert_eq!(t.acked(2), None, "a duplicate ack completes nothing");
        assert!(t.is_idle());
        assert_eq!(t.rows_in_flight(), 0);
    }

    #[test]
    fn qos0_completes_when_written() {
        let mut t = Tracker::default();
        t.sent(row(1));
        assert_eq!(t.written(0), Some(row(1)));
        assert!(t.is_idle());
    }

    #[test]
    fn a_collision_waits_for_its_packet_id() {
        let mut t = Tracker::default();
        t.sent(row(1));
        t.sent(row(2));
        t.sent(row(3));
        t.written(1);
        t.written(2);
        // Packet id 1 is still unacked when the third publish wants it.
        t.collided(1);
        assert_eq!(t.acked(1), Some(row(1)));
        assert_eq!(t.written(1), None);
        assert_eq!(t.acked(1), Some(row(3)));
        assert_eq!(t.acked(2), Some(row(2)));
        assert!(t.is_idle());
    }

    #[test]
    fn reset_forgets_everything() {
        let mut t = Tracker::default();
        t.sent(row(1));
        t.written(5);
        t.sent(row(2));
        t.reset();
        assert_eq!(t.rows_in_flight(), 0);
        assert_eq!(t.acked(5), None);
        assert!(t.is_idle());
    }
}
