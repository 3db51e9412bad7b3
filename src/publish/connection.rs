//! Drives rumqttc's event loop: connects, reconnects with backoff, and turns
//! its events into [`SessionEvent`]s for the publishing half.
//!
//! Why a separate future that does nothing but poll: `EventLoop::poll` is not
//! cancel-safe (dropped mid-write, a publish can be counted in flight but
//! never sent), so it must never lose a `select!` race to other work.

use super::status::PublishStatus;
use rumqttc::{ConnectReturnCode, ConnectionError, Event, EventLoop, Outgoing, Packet};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

pub struct Driver {
    pub eventloop: EventLoop,
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
                Ok(Event::Incoming(Packet::PubRec(rec))) => SessionEvent::Acked(rec.pkid),
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // Nothing is subscribed here; a broker's stray message.
                    debug!(topic = %publish.topic, "ignoring a message on the publishing connection");
                    continue;
                }
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
}
