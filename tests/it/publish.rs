//! The MQTT publisher against a real broker (Mosquitto, or rumqttd where it
//! is not installed): ordering, retained state, last will, discovery,
//! outages and restarts, TLS, and every payload checked against `schemas/`.

use crate::common::broker::{fixtures_tls, Broker, Message, Subscriber};
use crate::common::{self, wait_connected};
use marquee::model::{GenreScore, Prediction};
use marquee::poster::{now_ms, PosterEvent, PosterId};
use marquee::publish::{
    Outbox, OutboxRow, PosterCounts, PublishHandle, PublishOptions, Publisher, TlsOptions,
};
use marquee::store::{self, NewClassification, NewPoster, OutboxMessage, Store, StoreHandle};
use rumqttc::QoS;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "marquee";
const MODEL: &str = "test-model/int8";
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------- outbox --

/// The outbox in memory. `hold` makes it look empty (a busy store), which
/// lets a test attach its subscriber after a broker restart before the
/// publisher replays anything.
#[derive(Clone, Default)]
struct MemoryOutbox(Arc<Mutex<Rows>>);

#[derive(Default)]
struct Rows {
    pending: BTreeMap<i64, OutboxRow>,
    last_seq: i64,
    held: bool,
}

impl MemoryOutbox {
    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.0.lock().unwrap()
    }

    /// Queue a poster event whose id encodes its seq (see [`seq_of`]).
    fn push_event(&self, device: &str) -> i64 {
        let mut rows = self.rows();
        rows.last_seq += 1;
        let seq = rows.last_seq;
        let payload = event(&format!("{seq:064x}"), now_ms()).to_json().unwrap();
        rows.pending.insert(
            seq,
            OutboxRow {
                seq,
                topic: format!("{PREFIX}/{device}/poster"),
                payload,
                qos: QoS::AtLeastOnce,
                retain: false,
                created_at_ms: now_ms(),
            },
        );
        seq
    }

    fn hold(&self, held: bool) {
        self.rows().held = held;
    }

    fn backlog(&self) -> usize {
        self.rows().pending.len()
    }
}

impl Outbox for MemoryOutbox {
    type Error = Infallible;

    async fn pending_outbox_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, Infallible> {
        let rows = self.rows();
        if rows.held {
            return Ok(Vec::new());
        }
        Ok(rows
            .pending
            .range(after + 1..)
            .take(limit)
            .map(|(_, row)| row.clone())
            .collect())
    }

    async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), Infallible> {
        let mut rows = self.rows();
        for seq in seqs {
            rows.pending.remove(&seq);
        }
        Ok(())
    }

    async fn outbox_backlog(&self) -> Result<u64, Infallible> {
        Ok(self.backlog() as u64)
    }

    async fn poster_counts(&self) -> Result<PosterCounts, Infallible> {
        let total = self.rows().last_seq as u64;
        Ok(PosterCounts {
            total,
            today: total,
        })
    }
}

// --------------------------------------------------------------- helpers --

fn event(id: &str, ts: i64) -> PosterEvent {
    let score = |label: &str, score: f32| GenreScore {
        label: label.into(),
        score,
    };
    let prediction = Prediction {
        genres: vec![
            score("horror", 0.91),
            score("thriller", 0.55),
            score("comedy", 0.02),
        ],
        tags: vec!["horror".into(), "thriller".into()],
        top3: vec![
            score("horror", 0.91),
            score("thriller", 0.55),
            score("comedy", 0.02),
        ],
    };
    PosterEvent::new(id, "http", &prediction, MODEL, ts)
}

/// The seq a [`MemoryOutbox`] event carries in its id.
fn seq_of(message: &Message) -> i64 {
    let id = message.json()["id"].as_str().unwrap().to_owned();
    i64::from_str_radix(&id[48..], 16).unwrap()
}

fn replayed(message: &Message) -> bool {
    message.json()["replayed"].as_bool().unwrap()
}

fn options(port: u16, device: &str) -> PublishOptions {
    let mut opts = PublishOptions::new(device, PREFIX, "127.0.0.1", port);
    opts.model = MODEL.into();
    opts.reconnect_min = Duration::from_millis(50);
    opts.reconnect_max = Duration::from_millis(400);
    opts.shutdown_grace = Duration::from_secs(2);
    opts
}

struct Running {
    handle: PublishHandle,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

fn spawn<O: Outbox>(opts: PublishOptions, outbox: O) -> Running {
    let (publisher, handle) = Publisher::new(opts, outbox).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(publisher.run(shutdown.clone()));
    Running {
        handle,
        shutdown,
        task,
    }
}

/// First deliveries in arrival order; duplicates (QoS 1 redelivery) dropped.
fn first_seen(messages: &[Message]) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    messages
        .iter()
        .map(seq_of)
        .filter(|seq| seen.insert(*seq))
        .collect()
}

pub(crate) fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn assert_valid(validator: &jsonschema::Validator, message: &Message) {
    let instance = message.json();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match its schema: {errors:?}\n{}",
        message.topic,
        message.text()
    );
}

// ----------------------------------------------------------------- tests --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_at_qos1_and_the_last_one_is_retained() {
    let broker = Broker::launch();
    let outbox = MemoryOutbox::default();
    let poster_schema = schema("poster-event.schema.json");
    let mut sub = Subscriber::connect(broker.port(), &["marquee/order/poster"]).await;
    let run = spawn(options(broker.port(), "order"), outbox.clone());
    wait_connected(&run.handle, true, WAIT).await;

    for _ in 0..50 {
        outbox.push_event("order");
        run.handle.outbox_written();
    }
    let got = sub.collect("marquee/order/poster", 50, WAIT).await;
    let seqs: Vec<i64> = got.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "in order, once each");
    for m in &got {
        assert_eq!(m.qos, QoS::AtLeastOnce);
        assert!(!replayed(m), "live events are not replayed");
        assert_valid(&poster_schema, m);
    }
    common::eventually("every row marked published", WAIT, || outbox.backlog() == 0).await;
    assert_eq!(run.handle.status().published, 50);
    assert_eq!(run.handle.status().in_flight, 0);

    let last = Subscriber::first_message(broker.port(), "marquee/order/last", WAIT).await;
    assert!(last.retain, "`last` is retained");
    assert_eq!(seq_of(&last), 50);
    assert_valid(&poster_schema, &last);
}

/// A broker that accepts the connection and then never acknowledges
/// anything: rows must stay pending, and only `window` of them go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stay_pending_until_acknowledged_and_the_window_bounds_what_is_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _sink = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0 && buf[0] == 0x10, "expected CONNECT");
        // CONNACK, session not present, accepted.
        socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let outbox = MemoryOutbox::default();
    for _ in 0..100 {
        outbox.push_event("sink");
    }
    let mut opts = options(port, "sink");
    opts.window = 8;
    let run = spawn(opts, outbox.clone());
    wait_connected(&run.handle, true, WAIT).await;
    let handle = run.handle.clone();
    common::eventually("the window fills", WAIT, || handle.status().in_flight == 8).await;
    // Absence of progress can only be shown by letting time pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = run.handle.status();
    assert_eq!((status.in_flight, status.published), (8, 0));
    assert_eq!(outbox.backlog(), 100, "nothing marked without a PUBACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_is_retained_and_the_last_will_says_offline_on_abrupt_disconnect() {
    let broker = Broker::launch();
    let run = spawn(options(broker.port(), "will"), MemoryOutbox::default());
    wait_connected(&run.handle, true, WAIT).await;
    let topic = "marquee/will/available";

    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
    assert_eq!(sub.expect(topic, WAIT).await.text(), "online");
    let online = Subscriber::first_message(broker.port(), topic, WAIT).await;
    assert_eq!((online.text().as_str(), online.retain), ("online", true));

    // Like SIGKILL: the socket closes without a DISCONNECT.
    run.task.abort();
    let _ = run.task.await;
    assert_went_offline(&mut sub, broker.port(), topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_publishes_offline_and_stops() {
    let broker = Broker::launch();
    let run = spawn(options(broker.port(), "bye"), MemoryOutbox::default());
    wait_connected(&run.handle, true, WAIT).await;
    let topic = "marquee/bye/available";
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
    assert_eq!(sub.expect(topic, WAIT).await.text(), "online");

    run.shutdown.cancel();
    tokio::time::timeout(WAIT, run.task)
        .await
        .expect("publisher stops within the timeout")
        .unwrap();
    assert!(!run.handle.status().connected);
    assert_went_offline(&mut sub, broker.port(), topic).await;
}

/// The subscriber that was listening hears `offline` on `available`, and a
/// new one gets it retained.
async fn assert_went_offline(sub: &mut Subscriber, port: u16, topic: &str) {
    assert_eq!(sub.expect(topic, WAIT).await.text(), "offline");
    let after = Subscriber::first_message(port, topic, WAIT).await;
    assert_eq!((after.text().as_str(), after.retain), ("offline", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_retained_and_announced_again_when_home_assistant_comes_online() {
    let broker = Broker::launch();
    let discovery_schema = schema("ha-discovery.schema.json");
    let run = spawn(options(broker.port(), "ha"), MemoryOutbox::default());
    wait_connected(&run.handle, true, WAIT).await;
    let filter = "homeassistant/+/ha/+/config";
    let is_config =
        |m: &Message| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config");

    // A first subscriber makes sure the broker has them all; a second one
    // then must get them from the retained store.
    let mut first = Subscriber::connect(broker.port(), &[filter]).await;
    first.collect_until(WAIT, |m| m.len() >= 5).await;
    let mut sub = Subscriber::connect(broker.port(), &[filter]).await;
    let retained = sub.collect_until(WAIT, |m| m.len() >= 5).await;
    let mut topics: Vec<&str> = retained.iter().map(|m| m.topic.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(
        topics,
        [
            "homeassistant/binary_sensor/ha/status/config",
            "homeassistant/sensor/ha/genre_head/config",
            "homeassistant/sensor/ha/last_genres/config",
            "homeassistant/sensor/ha/outbox_backlog/config",
            "homeassistant/sensor/ha/posters_today/config",
        ]
    );
    let by_topic: HashMap<&str, Value> = retained
        .iter()
        .map(|m| (m.topic.as_str(), m.json()))
        .collect();
    for m in &retained {
        assert!(m.retain && is_config(m), "{} retained", m.topic);
        assert_valid(&discovery_schema, m);
    }
    let last = &by_topic["homeassistant/sensor/ha/last_genres/config"];
    assert_eq!(last["state_topic"], "marquee/ha/last");
    assert_eq!(last["device"]["identifiers"][0], "ha");
    assert_eq!(last["availability_topic"], "marquee/ha/available");
    let today = &by_topic["homeassistant/sensor/ha/posters_today/config"];
    assert_eq!(today["state_topic"], "marquee/ha/stats");

    // Home Assistant restarted (the MQTT inputs' connection hears it and
    // tells the publisher; daemon_mqtt checks that part): everything again.
    run.handle.announce_again();
    let again = sub.collect_until(WAIT, |m| m.len() >= 5).await;
    assert_eq!(
        again.len(),
        5,
        "re-announced: {:?}",
        again.iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
    for m in &again {
        assert!(is_config(m));
        assert_valid(&discovery_schema, m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_go_out_on_connect_and_then_periodically() {
    let broker = Broker::launch();
    let stats_schema = schema("stats.schema.json");
    let outbox = MemoryOutbox::default();
    for _ in 0..3 {
        outbox.push_event("stats");
    }
    let topic = "marquee/stats/stats";
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
    let mut opts = options(broker.port(), "stats");
    opts.stats_interval = Duration::from_secs(1);
    let _run = spawn(opts, outbox.clone());

    let first = sub.expect(topic, WAIT).await;
    assert_valid(&stats_schema, &first);
    assert_eq!(first.json()["posters_total"], 3);
    assert_eq!(first.json()["model"], MODEL);
    let second = sub.expect(topic, Duration::from_secs(5)).await;
    assert_valid(&stats_schema, &second);
    common::eventually("backlog delivered", WAIT, || outbox.backlog() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_from_the_start_then_up_delivers_everything_in_order_replayed() {
    let mut broker = Broker::unstarted();
    let outbox = MemoryOutbox::default();
    let poster_schema = schema("poster-event.schema.json");
    for _ in 0..20 {
        outbox.push_event("late");
    }
    let run = spawn(options(broker.port(), "late"), outbox.clone());
    let status = run.handle.clone();
    common::eventually("a connection error is reported", WAIT, || {
        status.status().last_error.is_some()
    })
    .await;
    assert!(!run.handle.status().connected);
    assert_eq!(
        outbox.backlog(),
        20,
        "nothing marked while the broker is down"
    );

    // Hold the replay until our subscriber is listening.
    outbox.hold(true);
    broker.start();
    let mut sub = Subscriber::connect(broker.port(), &["marquee/late/poster"]).await;
    wait_connected(&run.handle, true, WAIT).await;
    outbox.hold(false);
    run.handle.outbox_written();

    let got = sub.collect("marquee/late/poster", 20, WAIT).await;
    assert_eq!(first_seen(&got), (1..=20).collect::<Vec<_>>());
    for m in &got {
        assert!(replayed(m), "waited in the outbox: replayed");
        assert_valid(&poster_schema, m);
    }
    common::eventually("backlog empty", WAIT, || outbox.backlog() == 0).await;
    assert_eq!(run.handle.status().replayed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream_and_restarted_loses_nothing_and_keeps_order() {
    const BURST: i64 = 300;
    const DURING_OUTAGE: i64 = 20;
    const TOTAL: i64 = BURST + DURING_OUTAGE;
    let mut broker = Broker::launch();
    let outbox = MemoryOutbox::default();
    let run = spawn(options(broker.port(), "kill"), outbox.clone());
    wait_connected(&run.handle, true, WAIT).await;
    let topic = "marquee/kill/poster";
    let mut before_sub = Subscriber::connect(broker.port(), &[topic]).await;

    // A burst keeps the window full, so the kill lands with rows in flight.
    for _ in 0..BURST {
        outbox.push_event("kill");
    }
    run.handle.outbox_written();
    let mut before = before_sub.collect(topic, 10, WAIT).await;
    broker.stop();
    wait_connected(&run.handle, false, WAIT).await;
    // The old subscriber's connection is gone: take what it still buffered.
    before.extend(
        before_sub
            .collect_until(Duration::from_secs(2), |_| false)
            .await,
    );
    // What the broker had acknowledged when it died is the publisher's
    // job done: a broker without persistence may lose what it had not yet
    // forwarded (Mosquitto queues beyond 20 in flight per subscriber).
    // Everything else must come again after the restart.
    let pending_at_kill: BTreeSet<i64> = outbox.rows().pending.keys().copied().collect();
    assert!(
        !pending_at_kill.is_empty(),
        "the kill left rows unacknowledged"
    );
    outbox.hold(true);
    for _ in 0..DURING_OUTAGE {
        outbox.push_event("kill");
        run.handle.outbox_written();
    }
    let must_replay: BTreeSet<i64> = pending_at_kill
        .iter()
        .copied()
        .chain(BURST + 1..=TOTAL)
        .collect();

    broker.start();
    let mut after_sub = Subscriber::connect(broker.port(), &[topic]).await;
    wait_connected(&run.handle, true, WAIT).await;
    outbox.hold(false);
    run.handle.outbox_written();

    let after = after_sub
        .collect_until(WAIT, |msgs| {
            let got: BTreeSet<i64> = msgs.iter().map(seq_of).collect();
            must_replay.is_subset(&got)
        })
        .await;
    let replayed_seqs: BTreeSet<i64> = after.iter().map(seq_of).collect();
    let not_replayed: Vec<_> = must_replay.difference(&replayed_seqs).collect();
    assert!(
        not_replayed.is_empty(),
        "rows pending at the kill or written during the outage never came: {not_replayed:?}"
    );
    assert!(
        after.iter().all(replayed),
        "delivered after the outage: replayed"
    );
    let replay_order = first_seen(&after);
    assert!(
        replay_order.windows(2).all(|w| w[0] < w[1]),
        "replay in order: {replay_order:?}"
    );

    let mut everything = before.clone();
    everything.extend(after.iter().cloned());
    let order = first_seen(&everything);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "first deliveries in order: {order:?}"
    );
    let seen: BTreeSet<i64> = order.into_iter().collect();
    let lost_by_broker: Vec<i64> = (1..=TOTAL).filter(|s| !seen.contains(s)).collect();
    assert!(
        lost_by_broker
            .iter()
            .all(|s| !pending_at_kill.contains(s) && *s <= BURST),
        "only rows the broker had acknowledged may be missing: {lost_by_broker:?}"
    );
    if !lost_by_broker.is_empty() {
        eprintln!(
            "note: the killed broker lost {} acknowledged messages before forwarding them",
            lost_by_broker.len()
        );
    }
    common::eventually("backlog empty", WAIT, || outbox.backlog() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publisher_leaves_its_backlog_in_sqlite_for_the_next_run() {
    const TOTAL: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let (store, writer) = StoreHandle::spawn(Store::open(&db).unwrap(), 64).unwrap();
    let broker = Broker::launch();
    let topic = "marquee/crash/poster";
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;

    let run = spawn(options(broker.port(), "crash"), store.clone());
    wait_connected(&run.handle, true, WAIT).await;
    let ids: Vec<String> = (0..TOTAL)
        .map(|i| PosterId::of_bytes(format!("poster {i}").as_bytes()).to_string())
        .collect();
    let producer = {
        let (store, handle, ids) = (store.clone(), run.handle.clone(), ids.clone());
        tokio::spawn(async move {
            for id in ids {
                record(&store, &id, topic).await;
                handle.outbox_written();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let index: HashMap<String, i64> = ids.iter().cloned().zip(1..).collect();
    let order = |m: &Message| index[m.json()["id"].as_str().unwrap()];

    let mut got = sub.collect(topic, 10, WAIT).await;
    // SIGKILL stand-in: the task dies mid-stream, nothing is flushed.
    run.task.abort();
    let _ = run.task.await;
    let pending_at_kill: BTreeSet<i64> = store
        .call(|s| s.pending_outbox(1000))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.seq)
        .collect();
    producer.await.unwrap();
    let produced_after_kill =
        store.call(|s| s.outbox_backlog()).await.unwrap() as usize - pending_at_kill.len();
    // `replayed` compares millisecond timestamps: let the clock move past
    // the last row so the next connection is strictly later.
    let last_write = now_ms();
    while now_ms() <= last_write {
        tokio::task::yield_now().await;
    }

    // The next "process": same database, new publisher.
    let run2 = spawn(options(broker.port(), "crash"), store.clone());
    let seen: BTreeSet<i64> = got.iter().map(order).collect();
    let rest = sub
        .collect_until(WAIT, |msgs| {
            let mut all = seen.clone();
            all.extend(msgs.iter().map(order));
            all.len() == TOTAL
                && msgs.iter().filter(|m| replayed(m)).count()
                    >= pending_at_kill.len() + produced_after_kill
        })
        .await;
    got.extend(rest.iter().cloned());
    let mut firsts = BTreeSet::new();
    let first_order: Vec<i64> = got
        .iter()
        .map(order)
        .filter(|i| firsts.insert(*i))
        .collect();
    assert_eq!(first_order, (1..=TOTAL as i64).collect::<Vec<_>>());
    let replays = rest.iter().filter(|m| replayed(m)).count();
    assert_eq!(
        replays,
        pending_at_kill.len() + produced_after_kill,
        "each row left pending is delivered once more, marked replayed"
    );
    wait_connected(&run2.handle, true, WAIT).await;
    let mut backlog = u64::MAX;
    for _ in 0..500 {
        backlog = store.call(|s| s.outbox_backlog()).await.unwrap();
        if backlog == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backlog, 0, "every row marked published");

    run2.shutdown.cancel();
    run2.task.await.unwrap();
    drop(store);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap()
        .unwrap();
}

/// One sighting committed with its outbox event, as the pipeline will do it.
async fn record(store: &StoreHandle, id: &str, topic: &str) {
    let at = now_ms();
    let payload = event(id, at).to_json().unwrap();
    let prediction = Prediction {
        genres: vec![GenreScore {
            label: "horror".into(),
            score: 0.9,
        }],
        tags: vec!["horror".into()],
        top3: vec![GenreScore {
            label: "horror".into(),
            score: 0.9,
        }],
    };
    let poster = NewPoster {
        id: PosterId::parse(id).unwrap(),
        source: "http".into(),
        seen_at_ms: at,
        size_bytes: 10,
        width: 1,
        height: 1,
        thumbnail: None,
        features: None,
    };
    let classification = NewClassification {
        model: MODEL.into(),
        prediction,
        latency_ms: 1.0,
        created_at_ms: at,
        shadow: None,
    };
    let message = OutboxMessage {
        topic: topic.into(),
        payload,
        qos: store::Qos::AtLeastOnce,
        retain: false,
    };
    store
        .call(move |s| s.record(&poster, &classification, &[message]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_client_certificate() {
    let Some(broker) = Broker::launch_with_tls() else {
        return;
    };
    let tls_port = broker.tls_port().unwrap();
    let tls = fixtures_tls();
    let outbox = MemoryOutbox::default();
    let topic = "marquee/tls/poster";
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;

    let mut opts = options(tls_port, "tls");
    opts.tls = Some(TlsOptions {
        ca_file: Some(tls.join("ca.pem")),
        client_cert: Some(tls.join("client.pem")),
        client_key: Some(tls.join("client.key")),
    });
    let run = spawn(opts, outbox.clone());
    wait_connected(&run.handle, true, WAIT).await;
    for _ in 0..3 {
        outbox.push_event("tls");
    }
    run.handle.outbox_written();
    let got = sub.collect(topic, 3, WAIT).await;
    assert_eq!(first_seen(&got), [1, 2, 3]);

    // Without the client certificate the broker refuses the handshake; the
    // publisher reports it and keeps trying instead of failing.
    let mut no_cert = options(tls_port, "tls-anon");
    no_cert.tls = Some(TlsOptions {
        ca_file: Some(tls.join("ca.pem")),
        ..TlsOptions::default()
    });
    let anon = spawn(no_cert, MemoryOutbox::default());
    let status = anon.handle.clone();
    common::eventually("the refused handshake is reported", WAIT, || {
        status.status().last_error.is_some()
    })
    .await;
    assert!(!anon.handle.status().connected);
}

/// Mosquitto with `allow_anonymous false` and a password file: the right
/// credentials connect and deliver; a wrong password is refused, reported in
/// terms an operator can act on, and the row waits in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_are_checked_by_the_broker() {
    const USER: &str = "marquee-lobby";
    const PASSWORD: &str = "s3cret pass";
    let Some(broker) = Broker::launch_with_password(USER, PASSWORD) else {
        return;
    };
    let topic = "marquee/auth/poster";
    let mut sub = Subscriber::connect_as(broker.port(), &[topic], Some((USER, PASSWORD))).await;

    let outbox = MemoryOutbox::default();
    let mut opts = options(broker.port(), "auth");
    opts.username = Some(USER.into());
    opts.password = Some(PASSWORD.into());
    let run = spawn(opts, outbox.clone());
    wait_connected(&run.handle, true, WAIT).await;
    outbox.push_event("auth");
    run.handle.outbox_written();
    let got = sub.collect(topic, 1, WAIT).await;
    assert_eq!(first_seen(&got), [1]);
    common::eventually("the row marked published", WAIT, || outbox.backlog() == 0).await;
    assert_eq!(run.handle.status().last_error, None);

    let refused_outbox = MemoryOutbox::default();
    refused_outbox.push_event("auth-wrong");
    let mut wrong = options(broker.port(), "auth-wrong");
    wrong.username = Some(USER.into());
    wrong.password = Some("not the password".into());
    let refused = spawn(wrong, refused_outbox.clone());
    let handle = refused.handle.clone();
    common::eventually("the refusal is reported", WAIT, || {
        handle.status().last_error.is_some()
    })
    .await;
    let status = refused.handle.status();
    let error = status.last_error.clone().unwrap();
    assert!(
        error.contains("refused the credentials")
            && error.contains("mqtt.username")
            && error.contains("mqtt.password")
            && (error.contains("NotAuthorized") || error.contains("BadUserNamePassword")),
        "{error}"
    );
    assert!(
        !error.contains("not the password"),
        "the password must not leak: {error}"
    );
    assert!(!status.connected, "{status:?}");
    assert_eq!(
        (status.connects, status.published, status.in_flight),
        (0, 0, 0)
    );
    assert_eq!(refused_outbox.backlog(), 1, "the row stays pending");
}

#[test]
fn a_missing_client_key_file_fails_at_startup_naming_the_key() {
    let mut opts = PublishOptions::new("x", PREFIX, "127.0.0.1", 8883);
    opts.tls = Some(TlsOptions {
        ca_file: Some(fixtures_tls().join("ca.pem")),
        client_cert: Some(fixtures_tls().join("client.pem")),
        client_key: Some("/nonexistent/client.key".into()),
    });
    let err = Publisher::new(opts, MemoryOutbox::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("mqtt.client_key") && err.contains("/nonexistent/client.key"),
        "{err}"
    );
}
