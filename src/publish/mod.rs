//! MQTT publishing: the broker session (availability and last will,
//! reconnects), Home Assistant discovery, periodic stats, and the durable
//! outbox delivered in order, at least once.
//!
//! # Topics
//!
//! All under `<topic_prefix>/<device_id>/` (see [`Topics`]): `available`
//! (`online` retained on connect; `offline` retained as the last will and on
//! graceful shutdown), `poster` (one [`PosterEvent`](crate::poster::PosterEvent) per result, QoS 1),
//! `last` (the newest event, retained), `stats` ([`Stats`], retained),
//! `camera/<name>/available` (per camera, retained, through
//! [`PublishHandle::set_retained`]),
//! and the inputs `ingest` / `capture` (read on the MQTT inputs' own
//! connection, `crate::ingest::mqtt`). Discovery configs go under
//! `<discovery_prefix>/` and are sent again whenever Home Assistant
//! publishes `online` on `<discovery_prefix>/status` (heard by the inputs'
//! connection, passed on with [`PublishHandle::announce_again`]).
//!
//! # Delivery
//!
//! The pipeline commits each result to the outbox, then calls
//! [`PublishHandle::outbox_written`]. The publisher sends rows in `seq`
//! order with a bounded number in flight, and marks each one published only
//! when the broker acknowledges it. After an outage or a restart, even a
//! SIGKILL, the rows still pending are sent again in order; events that
//! waited carry `"replayed": true`. See `session.rs` for the details.
//!
//! ```no_run
//! # async fn demo(store: marquee::store::StoreHandle) -> Result<(), marquee::publish::PublishError> {
//! use marquee::publish::{Publisher, PublishOptions};
//! use tokio_util::sync::CancellationToken;
//! let opts = PublishOptions::new("lobby", "marquee", "127.0.0.1", 1883);
//! let (publisher, handle) = Publisher::new(opts, store)?;
//! let shutdown = CancellationToken::new();
//! let task = tokio::spawn(publisher.run(shutdown.clone()));
//! // ... after each committed result:
//! handle.outbox_written();
//! shutdown.cancel();
//! let _ = task.await;
//! # Ok(()) }
//! ```

mod connection;
mod discovery;
mod error;
mod event;
mod options;
mod outbox;
mod session;
mod states;
mod status;
mod store_outbox;
mod tls;
mod topics;
mod tracker;

pub use discovery::{announcements, Announcement};
pub use error::{OutboxError, PublishError};
pub use event::{mark_replayed, Stats};
pub use options::{PublishOptions, TlsOptions};
pub use outbox::{Outbox, OutboxRow, PosterCounts};
pub use status::{PublishStatus, StatusSnapshot};
pub use tls::client_config as tls_client_config;
pub use topics::{ha_status_topic, Topics};

use connection::Driver;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use session::{Session, State};
use states::RetainedStates;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Room in rumqttc's request queue beyond the row window: availability,
/// subscriptions, discovery, stats and `last` all go through it too.
const CONTROL_HEADROOM: usize = 64;

/// Events from the driver waiting for the publishing half.
const EVENTS_CAPACITY: usize = 256;

/// Largest packet this connection reads: it subscribes to nothing, so
/// only acknowledgements (and a broker's stray packet) ever arrive.
const MAX_INBOUND_BYTES: usize = 64 * 1024;

/// A cheap, cloneable handle on a running publisher.
#[derive(Debug, Clone)]
pub struct PublishHandle {
    wake: Arc<Notify>,
    announce: Arc<Notify>,
    status: Arc<PublishStatus>,
    states: Arc<RetainedStates>,
}

impl PublishHandle {
    /// Call after committing outbox rows: the publisher fetches them now
    /// instead of at its next one-second poll.
    pub fn outbox_written(&self) {
        self.wake.notify_one();
    }

    /// Publish `payload` retained on `topic` now (when connected) and again
    /// after every reconnect; only changes are sent. For state other
    /// modules own, such as a camera's `online`/`offline`.
    pub fn set_retained(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        if self.states.set(topic.into(), payload.into()) {
            self.wake.notify_one();
        }
    }

    /// Home Assistant came back (its status topic said `online`, heard by
    /// the MQTT inputs' connection): announce the device again.
    pub fn announce_again(&self) {
        self.announce.notify_one();
    }

    /// The value last given to [`set_retained`](Self::set_retained) for `topic`.
    pub fn retained(&self, topic: &str) -> Option<Vec<u8>> {
        self.states.get(topic)
    }

    /// Broker connection, in-flight and published counts, last error.
    pub fn status(&self) -> StatusSnapshot {
        self.status.snapshot()
    }

    /// Follows whether a broker session is up.
    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.status.watch_connected()
    }

    /// Follows whether the broker confirmed the MQTT inputs' subscriptions
    /// (ingest, capture; set by [`crate::ingest::mqtt`]).
    pub fn watch_subscribed(&self) -> watch::Receiver<bool> {
        self.status.watch_subscribed()
    }

    /// The shared status itself, for a metrics registry to hold.
    pub fn shared_status(&self) -> Arc<PublishStatus> {
        Arc::clone(&self.status)
    }
}

/// The MQTT publisher, ready to [`run`](Publisher::run).
pub struct Publisher<O> {
    driver: Driver,
    session: Session<O>,
}

impl<O: Outbox> Publisher<O> {
    /// Set up the session (reading TLS files now, so a bad path fails at
    /// startup). Nothing connects until `run`. Returns the publisher and a
    /// handle for the pipeline and metrics.
    ///
    /// This connection subscribes to nothing: no message anyone publishes
    /// can reach it, so none (an oversize retained image, say) can cost it
    /// its session. What the device listens to comes in on the MQTT
    /// inputs' own connection ([`crate::ingest::mqtt`]).
    pub fn new(opts: PublishOptions, outbox: O) -> Result<(Self, PublishHandle), PublishError> {
        let topics = Topics::new(&opts.topic_prefix, &opts.device_id);
        let window = opts.window.max(1);
        let mqtt = mqtt_options(&opts, &topics, window)?;
        let (client, eventloop) = AsyncClient::new(mqtt, window + CONTROL_HEADROOM);
        let status = Arc::new(PublishStatus::default());
        let wake = Arc::new(Notify::new());
        let announce = Arc::new(Notify::new());
        let states = Arc::new(RetainedStates::default());
        let announcements = match &opts.discovery_prefix {
            Some(prefix) => announcements(prefix, &opts, &topics)?,
            None => Vec::new(),
        };
        let driver = Driver {
            eventloop,
            status: Arc::clone(&status),
            broker: format!("{}:{}", opts.host, opts.port),
            reconnect_min: opts.reconnect_min,
            reconnect_max: opts.reconnect_max.max(opts.reconnect_min),
        };
        let session = Session {
            client,
            outbox,
            topics,
            announcements,
            status: Arc::clone(&status),
            wake: Arc::clone(&wake),
            announce: Arc::clone(&announce),
            states: Arc::clone(&states),
            model: opts.model.clone(),
            window,
            max_outbound_bytes: opts.max_outbound_bytes,
            poll_interval: opts.poll_interval.max(Duration::from_millis(10)),
            stats_interval: opts.stats_interval.max(Duration::from_secs(1)),
            shutdown_grace: opts.shutdown_grace,
            state: State::default(),
        };
        let handle = PublishHandle {
            wake,
            announce,
            status,
            states,
        };
        Ok((Self { driver, session }, handle))
    }

    /// Run until `shutdown`, reconnecting as needed; then deliver what the
    /// grace period allows, publish `offline` and disconnect. Never fails:
    /// problems are logged and shown in [`PublishHandle::status`].
    ///
    /// Dropping (or aborting) this future drops the connection without a
    /// DISCONNECT, so the broker publishes the `offline` last will.
    pub async fn run(self, shutdown: CancellationToken) {
        let stop = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::channel(EVENTS_CAPACITY);
        // Both halves in one task: aborting it takes the socket down with it.
        tokio::join!(
            self.driver.run(events_tx, stop.clone()),
            self.session.run(events_rx, shutdown, stop),
        );
    }
}

fn mqtt_options(
    opts: &PublishOptions,
    topics: &Topics,
    window: usize,
) -> Result<MqttOptions, PublishError> {
    let mut mqtt = MqttOptions::new(&opts.device_id, &opts.host, opts.port);
    // rumqttc refuses sub-second keep-alives (it panics); MQTT counts seconds.
    let keep_alive = if opts.keep_alive.is_zero() {
        Duration::ZERO
    } else {
        opts.keep_alive.max(Duration::from_secs(1))
    };
    mqtt.set_keep_alive(keep_alive);
    // A clean session: the outbox, not the broker, is what survives.
    mqtt.set_clean_session(true);
    mqtt.set_last_will(LastWill::new(
        &topics.available,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    // Incoming: only acknowledgements (nothing is subscribed). Outgoing:
    // the row's payload plus its topic and header.
    mqtt.set_max_packet_size(
        MAX_INBOUND_BYTES,
        opts.max_outbound_bytes.saturating_add(64 * 1024),
    );
    // Above our own window plus control messages, so rumqttc's packet ids
    // rarely wrap onto one still in flight.
    let inflight = window.saturating_mul(2).saturating_add(CONTROL_HEADROOM);
    mqtt.set_inflight(u16::try_from(inflight).unwrap_or(u16::MAX));
    match (&opts.username, &opts.password) {
        (Some(user), password) => {
            mqtt.set_credentials(user, password.clone().unwrap_or_default());
        }
        (None, Some(_)) => {
            warn!("mqtt.password is set without mqtt.username; MQTT 3.1.1 cannot send it alone");
        }
        (None, None) => {}
    }
    if let Some(tls) = &opts.tls {
        let config = tls::client_config(tls)?;
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    Ok(mqtt)
}
