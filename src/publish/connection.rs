//! Drives rumqttc's event loop: connects, reconnects with backoff, and turns
//! its events into [`SessionEvent`]s for the publishing half.
//!
//! Why a separate future that does nothing but poll: `EventLoop::poll` is not
//! cancel-safe (dropped mid-write, a publish can be counted in flight but
//! never sent), so it must never lose a `select!` race to other work.

use super::status::PublishStatus;
use super::Inbound;
use rumqttc::{ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet, Publish};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A connection that lasts less than this does not reset the backoff, so a
/// broker that accepts and then drops us is not hammered.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// What the publishing half needs to hear about, in the order it happened.
#[derive(Debug)]
pub enum SessionEvent {
    /// CONNACK: a new clean session.
    Connected,
    /// The session is gone. The driver waits for `ack` before reconnecting,
    /// then discards every request still queued in rumqttc: after the ack
    /// the publisher sends nothing until `Connected`, so nothing stale from
    /// the old session can go out ahead of the replay on the new one.
    Lost { ack: oneshot::Sender<()> },
    /// A publish went out with this packet id (0 for QoS 0).
    Written(u16),
    /// rumqttc holds the next publish until this packet id is acknowledged.
    Collided(u16),
    /// PUBACK (QoS 1) or PUBREC (QoS 2): the broker has the message.
    Acked(u16),
    /// Our DISCONNECT went out (graceful shutdown).
    Disconnected,
    /// Home Assistant restarted: announce the device again.
    HaOnline,
    /// SUBACK: the ingest and capture topics now reach us.
    Subscribed,
}

/// rumqttc's text, plus what to check when the broker refused our login.
fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => format!(
            "the broker refused the credentials (check mqtt.username / mqtt.password): {error}"
        ),
        _ => error.to_string(),
    }
}

/// Where incoming messages go.
#[derive(Debug, Clone)]
pub struct Routes {
    pub ingest: String,
    pub capture: String,
    pub ha_status: Option<String>,
}

pub struct Driver {
    pub eventloop: EventLoop,
    pub routes: Routes,
    pub inbound: mpsc::Sender<Inbound>,
    pub status: Arc<PublishStatus>,
    /// `host:port`, for log lines.
    pub broker: String,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Driver {
    /// Poll until `stop`, our DISCONNECT, or the publishing half is gone.
    pub async fn run(mut self, events: mpsc::Sender<SessionEvent>, stop: CancellationToken) {
        let broker = self.broker.clone();
        let mut connected_since: Option<Instant> = None;
        // Set from the first failure until the next CONNACK: one warning
        // per outage, however many retries it takes.
        let mut outage_since: Option<Instant> = None;
        let mut delay = self.reconnect_min;
        loop {
            let polled = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                polled = self.eventloop.poll() => polled,
            };
            let event = match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    match outage_since.take() {
                        Some(since) => info!(
                            %broker,
                            down_for_s = since.elapsed().as_secs(),
                            "reconnected to the MQTT broker"
                        ),
                        None => info!(%broker, "connected to the MQTT broker"),
                    }
                    connected_since = Some(Instant::now());
                    SessionEvent::Connected
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => SessionEvent::Acked(ack.pkid),
                Ok(Event::Incoming(Packet::SubAck(_))) => SessionEvent::Subscribed,
                Ok(Event::Incoming(Packet::PubRec(rec))) => SessionEvent::Acked(rec.pkid),
                Ok(Event::Incoming(Packet::Publish(publish))) => match self.route(publish) {
                    Some(event) => event,
                    None => continue,
                },
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => SessionEvent::Written(pkid),
                Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => SessionEvent::Collided(pkid),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    let _ = events.send(SessionEvent::Disconnected).await;
                    return;
                }
                Ok(_) => continue,
                Err(error) => {
                    let error = describe(&error);
                    self.status
                        .set_error(format!("MQTT broker {broker}: {error}"));
                    if outage_since.is_none() {
                        outage_since = Some(Instant::now());
                        warn!(
                            %broker,
                            %error,
                            "no MQTT session with the broker; results wait in the outbox, retrying"
                        );
                    } else {
                        debug!(%broker, %error, "MQTT reconnect failed");
                    }
                    if let Some(since) = connected_since.take() {
                        if !self.session_lost(&events, &stop).await {
                            return;
                        }
                        if since.elapsed() >= STABLE_AFTER {
                            delay = self.reconnect_min;
                        }
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = delay.saturating_mul(2).min(self.reconnect_max);
                    continue;
                }
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }

    /// Tell the publisher, wait until it has stopped sending, then drop
    /// whatever it queued for the dead session. False: time to stop.
    async fn session_lost(
        &mut self,
        events: &mpsc::Sender<SessionEvent>,
        stop: &CancellationToken,
    ) -> bool {
        let (ack, acked) = oneshot::channel();
        if events.send(SessionEvent::Lost { ack }).await.is_err() {
            return false;
        }
        tokio::select! {
            () = stop.cancelled() => return false,
            answer = acked => if answer.is_err() { return false },
        }
        // The clean session starts empty; the outbox replays what was not
        // acknowledged, in order.
        self.eventloop.clean();
        self.eventloop.pending.clear();
        true
    }

    /// An incoming message: Home Assistant's status, or work for the
    /// ingest module (handed over here, not through the publisher).
    fn route(&self, publish: Publish) -> Option<SessionEvent> {
        let topic = publish.topic.as_str();
        if self.routes.ha_status.as_deref() == Some(topic) {
            // A retained `online` arrives on every subscribe, right after we
            // announced anyway; only a live one means HA restarted.
            return (!publish.retain && publish.payload.as_ref() == b"online")
                .then_some(SessionEvent::HaOnline);
        }
        let inbound = if topic == self.routes.ingest {
            Inbound::Ingest(publish.payload.clone())
        } else if topic == self.routes.capture {
            Inbound::Capture(publish.payload.to_vec())
        } else {
            debug!(
                topic,
                "ignoring a message on a topic we did not subscribe to"
            );
            return None;
        };
        if publish.retain {
            // A retained command would run again on every reconnect.
            warn!(
                topic,
                "ignoring a retained message; publish without retain (clear it with \
                 `mosquitto_pub -r -n -t {topic}`)"
            );
            return None;
        }
        match self.inbound.try_send(inbound) {
            Ok(()) => self.status.inbound_accepted(),
            Err(TrySendError::Full(_)) => {
                // Blocking here would stall acks and keep-alives for every
                // other message; the sender can publish again.
                if self.status.inbound_dropped() {
                    warn!(topic, "ingest queue full: dropping MQTT messages (counted)");
                }
            }
            Err(TrySendError::Closed(_)) => {
                if self.status.inbound_dropped() {
                    warn!(
                        topic,
                        "nothing consumes MQTT ingest messages: dropping them"
                    );
                }
            }
        }
        None
    }
}
