//! The publishing half: availability, discovery, stats, and the outbox
//! delivered in order with at-least-once semantics.
//!
//! Delivery, in short: rows are fetched in `seq` order behind a cursor and
//! handed to rumqttc while fewer than `window` are unacknowledged; each
//! broker acknowledgement marks its row published in the outbox. When the
//! session is lost, everything unacknowledged is forgotten here and the
//! cursor goes back to the start, so the new session replays every row the
//! outbox still holds, in order. A row acknowledged just before the loss
//! may be published twice (QoS 1 allows that); none is skipped.

use super::connection::SessionEvent;
use super::discovery::Announcement;
use super::error::PublishError;
use super::event::{mark_replayed, Stats};
use super::outbox::{Outbox, OutboxRow};
use super::states::RetainedStates;
use super::status::PublishStatus;
use super::topics::Topics;
use super::tracker::{Sent, Tracker};
use crate::poster::now_ms;
use rumqttc::{valid_topic, AsyncClient, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio::time::{interval_at, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// How long shutdown waits for `offline` to be acknowledged and for the
/// DISCONNECT to go out, after the grace period for the backlog.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Events handled before the acknowledged rows are marked in the outbox.
const EVENT_BATCH: usize = 64;

pub struct Session<O> {
    pub client: AsyncClient,
    pub outbox: O,
    pub topics: Topics,
    pub announcements: Vec<Announcement>,
    pub status: Arc<PublishStatus>,
    pub wake: Arc<Notify>,
    /// Home Assistant came back: announce again.
    pub announce: Arc<Notify>,
    pub states: Arc<RetainedStates>,
    pub model: String,
    pub window: usize,
    pub max_outbound_bytes: usize,
    pub poll_interval: Duration,
    pub stats_interval: Duration,
    pub shutdown_grace: Duration,
    pub state: State,
}

/// What changes as the session runs.
pub struct State {
    tracker: Tracker,
    /// Wall-clock time of the current CONNACK; `None` while disconnected.
    /// Rows created before it waited for the broker: they go out replayed.
    connected_at_ms: Option<i64>,
    /// Highest `seq` handed to rumqttc on this connection.
    cursor: i64,
    /// The outbox may hold rows past the cursor (woken, polled, or the last
    /// fetch came back full).
    maybe_more: bool,
    /// Acknowledged rows not yet marked in the outbox.
    to_mark: Vec<i64>,
    /// The newest event sent, re-published to `last` on each connect so a
    /// restarted broker gets its retained state back.
    last_event: Option<Vec<u8>>,
    offline_acked: bool,
    outbox_failing: bool,
    started: Instant,
}

impl Default for State {
    fn default() -> Self {
        Self {
            tracker: Tracker::default(),
            connected_at_ms: None,
            cursor: 0,
            maybe_more: true,
            to_mark: Vec::new(),
            last_event: None,
            offline_acked: false,
            outbox_failing: false,
            started: Instant::now(),
        }
    }
}

/// What woke the main loop.
enum Step {
    Shutdown,
    Event(SessionEvent),
    DriverGone,
    Work,
    Stats,
    Announce,
}

/// What happened to one outbox row.
enum RowOutcome {
    Sent,
    /// rumqttc's queue is full; try again later.
    Busy,
    /// It can never be sent; taken out of the queue.
    Dropped,
}

impl<O: Outbox> Session<O> {
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<SessionEvent>,
        shutdown: CancellationToken,
        stop: CancellationToken,
    ) {
        let wake = Arc::clone(&self.wake);
        let announce = Arc::clone(&self.announce);
        let start = tokio::time::Instant::now();
        let mut poll = interval_at(start + self.poll_interval, self.poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stats = interval_at(start + self.stats_interval, self.stats_interval);
        stats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let connected = self.state.connected_at_ms.is_some();
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => Step::Shutdown,
                event = events.recv() => event.map_or(Step::DriverGone, Step::Event),
                () = wake.notified() => Step::Work,
                _ = poll.tick() => Step::Work,
                _ = stats.tick(), if connected => Step::Stats,
                () = announce.notified(), if connected => Step::Announce,
            };
            match step {
                Step::Shutdown => break,
                Step::DriverGone => {
                    self.status.set_connected(false);
                    stop.cancel();
                    return;
                }
                Step::Event(event) => {
                    let mut next = Some(event);
                    let mut taken = 0;
                    while let Some(event) = next {
                        if matches!(event, SessionEvent::Connected) {
                            // Stats go out on connect; the next ones a full
                            // interval later, not at once for ticks missed
                            // while offline.
                            stats.reset();
                        }
                        self.on_event(event).await;
                        // Under load acks come in bursts: take the ones
                        // already queued so one outbox write marks them all.
                        taken += 1;
                        next = (taken < EVENT_BATCH)
                            .then(|| events.try_recv().ok())
                            .flatten();
                    }
                }
                Step::Work => self.state.maybe_more = true,
                Step::Stats => self.publish_stats().await,
                Step::Announce => {
                    info!("Home Assistant came online: announcing the device again");
                    self.announce();
                }
            }
            self.publish_states();
            self.flush_marks().await;
            self.fill().await;
        }
        self.shut_down(&mut events).await;
        stop.cancel();
    }

    async fn on_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected => self.on_connected().await,
            SessionEvent::Lost { ack } => {
                self.on_lost();
                let _ = ack.send(());
            }
            SessionEvent::Written(pkid) => {
                if let Some(sent) = self.state.tracker.written(pkid) {
                    self.completed(sent);
                }
            }
            SessionEvent::Collided(pkid) => self.state.tracker.collided(pkid),
            SessionEvent::Acked(pkid) => match self.state.tracker.acked(pkid) {
                Some(sent) => self.completed(sent),
                None => debug!(pkid, "acknowledgement for nothing we track"),
            },
            SessionEvent::Disconnected => {}
        }
        self.status
            .set_in_flight(self.state.tracker.rows_in_flight());
    }

    async fn on_connected(&mut self) {
        let state = &mut self.state;
        state.tracker.reset();
        state.connected_at_ms = Some(now_ms());
        state.cursor = 0;
        state.maybe_more = true;
        self.status.set_connected(true);
        // Availability first, so nothing arrives from a device that still
        // looks offline.
        self.publish_control(&self.topics.available.clone(), b"online".to_vec(), false);
        self.states.mark_all_dirty();
        self.publish_states();
        self.announce();
        if let Some(last) = self.state.last_event.clone() {
            self.publish_control(&self.topics.last.clone(), last, false);
        }
        self.publish_stats().await;
    }

    fn on_lost(&mut self) {
        let state = &mut self.state;
        state.connected_at_ms = None;
        state.tracker.reset();
        self.status.set_connected(false);
        self.status.set_in_flight(0);
    }

    fn completed(&mut self, sent: Sent) {
        match sent {
            Sent::Row { seq, replayed } => {
                self.state.to_mark.push(seq);
                self.status.add_published(1, u64::from(replayed));
            }
            Sent::Control { offline } => {
                if offline {
                    self.state.offline_acked = true;
                }
            }
        }
    }

    /// Hand rows to rumqttc while the window has room and the outbox has
    /// rows past the cursor.
    async fn fill(&mut self) {
        while self.state.connected_at_ms.is_some() && self.state.maybe_more {
            let room = self
                .window
                .saturating_sub(self.state.tracker.rows_in_flight());
            if room == 0 {
                return;
            }
            let rows = match self
                .outbox
                .pending_outbox_after(self.state.cursor, room)
                .await
            {
                Ok(rows) => {
                    self.outbox_ok();
                    rows
                }
                Err(e) => return self.outbox_failed("reading pending rows", e),
            };
            if rows.len() < room {
                self.state.maybe_more = false;
            }
            let mut newest_event = None;
            for row in rows {
                match self.send_row(row, &mut newest_event) {
                    RowOutcome::Sent | RowOutcome::Dropped => {}
                    RowOutcome::Busy => {
                        self.state.maybe_more = true;
                        break;
                    }
                }
            }
            // One `last` per batch: a replayed backlog does not rewrite the
            // retained message once per row.
            if let Some(event) = newest_event {
                self.publish_control(&self.topics.last.clone(), event.clone(), false);
                self.state.last_event = Some(event);
            }
            self.status
                .set_in_flight(self.state.tracker.rows_in_flight());
        }
    }

    fn send_row(&mut self, row: OutboxRow, newest_event: &mut Option<Vec<u8>>) -> RowOutcome {
        let Some(connected_at) = self.state.connected_at_ms else {
            return RowOutcome::Busy;
        };
        let seq = row.seq;
        if !valid_topic(&row.topic) || row.payload.len() > self.max_outbound_bytes {
            error!(
                seq,
                topic = %row.topic,
                bytes = row.payload.len(),
                limit = self.max_outbound_bytes,
                "outbox row can never be published (invalid topic or too large): \
                 taking it out of the queue so the rows behind it can go"
            );
            self.status.add_dropped_row();
            self.state.to_mark.push(seq);
            self.state.cursor = seq;
            return RowOutcome::Dropped;
        }
        let waited = row.created_at_ms < connected_at;
        let payload = if waited {
            mark_replayed(&row.payload).unwrap_or(row.payload)
        } else {
            row.payload
        };
        let is_event = row.topic == self.topics.poster;
        let event = is_event.then(|| payload.clone());
        match self
            .client
            .try_publish(row.topic, row.qos, row.retain, payload)
        {
            Ok(()) => {
                self.state.tracker.sent(Sent::Row {
                    seq,
                    replayed: waited,
                });
                self.state.cursor = seq;
                if event.is_some() {
                    *newest_event = event;
                }
                debug!(seq, replayed = waited, "outbox row handed to MQTT");
                RowOutcome::Sent
            }
            Err(_) => RowOutcome::Busy,
        }
    }

    /// A QoS 1 message that is not an outbox row. Only while connected.
    fn publish_control(&mut self, topic: &str, payload: Vec<u8>, offline: bool) -> bool {
        if self.state.connected_at_ms.is_none() {
            return false;
        }
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => {
                self.state.tracker.sent(Sent::Control { offline });
                true
            }
            Err(_) => {
                warn!(topic, "MQTT request queue full: skipped a state message");
                false
            }
        }
    }

    /// Hand the changed retained states to rumqttc (while connected).
    fn publish_states(&mut self) {
        if self.state.connected_at_ms.is_none() {
            return;
        }
        for (topic, payload) in self.states.take_dirty() {
            if !self.publish_control(&topic, payload, false) {
                self.states.retry(&topic);
            }
        }
    }

    fn announce(&mut self) {
        for a in self.announcements.clone() {
            self.publish_control(&a.topic, a.payload, false);
        }
    }

    async fn publish_stats(&mut self) {
        if self.state.connected_at_ms.is_none() {
            return;
        }
        let counts = match self.outbox.poster_counts().await {
            Ok(c) => c,
            Err(e) => return self.outbox_failed("counting posters", e),
        };
        let backlog = match self.outbox.outbox_backlog().await {
            Ok(b) => b,
            Err(e) => return self.outbox_failed("counting the backlog", e),
        };
        let stats = Stats {
            posters_total: counts.total,
            posters_today: counts.today,
            outbox_backlog: backlog,
            published: self.status.published(),
            uptime_s: self.state.started.elapsed().as_secs(),
            model: self.model.clone(),
            ts: now_ms(),
        };
        match stats.to_json() {
            Ok(payload) => {
                self.publish_control(&self.topics.stats.clone(), payload, false);
            }
            Err(e) => warn!(error = %e, "could not encode the stats message"),
        }
    }

    async fn flush_marks(&mut self) {
        if self.state.to_mark.is_empty() {
            return;
        }
        let seqs = std::mem::take(&mut self.state.to_mark);
        match self.outbox.mark_published(seqs.clone()).await {
            Ok(()) => self.outbox_ok(),
            Err(e) => {
                // Keep them: retried on the next turn. If the session drops
                // first, they are simply published again (at least once).
                self.state.to_mark = seqs;
                self.outbox_failed("marking rows published", e);
            }
        }
    }

    fn outbox_failed(&mut self, doing: &'static str, source: O::Error) {
        let err = PublishError::Outbox {
            doing,
            source: Box::new(source),
        };
        self.status.set_error(err.to_string());
        if !self.state.outbox_failing {
            self.state.outbox_failing = true;
            error!(error = %err, "outbox unavailable; nothing is lost, delivery waits");
        } else {
            debug!(error = %err, "outbox still failing");
        }
    }

    fn outbox_ok(&mut self) {
        if self.state.outbox_failing {
            self.state.outbox_failing = false;
            info!("outbox available again; delivery resumes");
        }
    }

    /// Deliver what we can within the grace period, say `offline`, and
    /// disconnect cleanly so the broker does not fire the last will.
    async fn shut_down(&mut self, events: &mut mpsc::Receiver<SessionEvent>) {
        let wake = Arc::clone(&self.wake);
        let grace = tokio::time::sleep(self.shutdown_grace);
        tokio::pin!(grace);
        self.state.maybe_more = true;
        loop {
            self.publish_states();
            self.flush_marks().await;
            self.fill().await;
            let drained = !self.state.maybe_more && self.state.tracker.rows_in_flight() == 0;
            if self.state.connected_at_ms.is_none() || drained {
                break;
            }
            tokio::select! {
                () = &mut grace => break,
                () = wake.notified() => self.state.maybe_more = true,
                event = events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => return self.status.set_connected(false),
                },
            }
        }
        // The inputs stopped before the publisher: their final states
        // (cameras offline) go out before the device's own `offline`.
        self.publish_states();
        if self.publish_control(&self.topics.available.clone(), b"offline".to_vec(), true) {
            let goodbye = tokio::time::sleep(GOODBYE_TIMEOUT);
            tokio::pin!(goodbye);
            while !self.state.offline_acked && self.state.connected_at_ms.is_some() {
                tokio::select! {
                    () = &mut goodbye => break,
                    event = events.recv() => match event {
                        Some(event) => self.on_event(event).await,
                        None => break,
                    },
                }
            }
            if self.state.connected_at_ms.is_some() && self.client.try_disconnect().is_ok() {
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
                    while let Some(event) = events.recv().await {
                        let done = matches!(event, SessionEvent::Disconnected);
                        self.on_event(event).await;
                        if done {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        self.flush_marks().await;
        self.on_lost();
        info!("MQTT publisher stopped");
    }
}
