//! Durability of the whole daemon: results survive a broker that is down,
//! a SIGKILL of the daemon itself, and bad input on the MQTT ingest topic.
//! Real broker process, real SQLite file, the real daemon (in-process through
//! `app::start`, or the `marquee` binary where a SIGKILL is the point).

use crate::common::broker::{Broker, Message, Subscriber};
use crate::common::daemon::{self, TestDaemon};
use crate::common::http::request;
use crate::common::{self, metric, mqtt_url};
use marquee::drawing::drawn_poster_jpeg;
use marquee::poster::PosterId;
use marquee::store::Store;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------- helpers --

/// Upload `poster`; the daemon answers 200 once the result is committed,
/// broker or not. Returns the poster id it answered.
async fn upload(addr: SocketAddr, poster: &[u8]) -> String {
    let reply = request(addr, "POST", "/api/v1/posters", &[], poster).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(id, PosterId::of_bytes(poster).as_str());
    id
}

/// The daemon's `/metrics` page.
async fn metrics_page(addr: SocketAddr) -> String {
    request(addr, "GET", "/metrics", &[], b"").await.text()
}

/// Poster ids in order of first delivery; QoS 1 redeliveries dropped.
fn first_seen(messages: &[Message]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    messages
        .iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// A port the daemon dials as its broker, closed until [`Gate::open`]
/// forwards it to the real broker. It decides when the daemon can reach
/// the broker, so a subscriber is certainly listening before the replay
/// (the daemon reconnects on its own schedule, which a test cannot race).
struct Gate {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    fn closed() -> Self {
        Self {
            port: common::free_port(),
            task: None,
        }
    }

    async fn open(&mut self, upstream: u16) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Stop accepting: the port is closed again once this returns.
    /// Connections already forwarded are left to end with their upstream.
    async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The listener is dropped with the task: wait for that.
            let _ = task.await;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The `marquee` binary as an operator runs it, on a free port it reports
/// through `--ready-file`.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn serve(device: &str, mqtt_port: u16, db: &Path, dir: &Path, run: u32) -> Self {
        let ready = dir.join(format!("ready-{run}"));
        let child = common::serve_command(db, &ready)
            .env("MARQUEE__DEVICE_ID", format!("\"{device}\""))
            .env("MARQUEE__MQTT__URL", mqtt_url(mqtt_port))
            .env("MARQUEE__MQTT__DISCOVERY", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // Ready when the file appears (written after READY=1), not after a sleep.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                process.addr = text.trim().parse().expect("an address in the ready file");
                return process;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("marquee exited before it was ready: {status}");
            }
            assert!(tokio::time::Instant::now() < deadline, "marquee not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn terminate(&mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- tests --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_from_the_start_then_up_delivers_every_upload_in_order_replayed() {
    const N: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let mut broker = Broker::unstarted();
    let mut gate = Gate::closed();
    let mut daemon = TestDaemon::start(daemon::config("late", mqtt_url(gate.port), &db)).await;

    let mut ids = Vec::new();
    for seed in 0..N {
        ids.push(upload(daemon.addr, &drawn_poster_jpeg(300 + seed, 240, 360)).await);
    }
    let metrics = metrics_page(daemon.addr).await;
    assert_eq!(
        metric(&metrics, "marquee_outbox_backlog"),
        Some(f64::from(N)),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "marquee_broker_connected"), Some(0.0));

    broker.start();
    let topic = "marquee/late/poster";
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
    gate.open(broker.port()).await;

    let got = sub.collect(topic, N as usize, WAIT).await;
    let got_ids: Vec<String> = got
        .iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got_ids, ids, "delivered once each, in upload order");
    for m in &got {
        assert_eq!(m.json()["replayed"], true, "waited in the outbox");
        assert_eq!(m.json()["source"], "http");
    }
    let publish = daemon.running().publish.clone();
    common::eventually("every row acknowledged", WAIT, || {
        publish.status().published >= u64::from(N)
    })
    .await;
    daemon.stop(WAIT).await;
    assert_eq!(Store::open(&db).unwrap().outbox_backlog().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_with_a_backlog_delivers_it_after_restart_without_duplicates() {
    const N: u32 = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let mut broker = Broker::unstarted();

    let mut first = Process::serve("crash", broker.port(), &db, dir.path(), 1).await;
    let posters: Vec<Vec<u8>> = (0..N)
        .map(|seed| drawn_poster_jpeg(400 + seed, 240, 360))
        .collect();
    let mut ids = Vec::new();
    for poster in &posters {
        ids.push(upload(first.addr, poster).await);
    }
    first.kill9();
    assert_eq!(
        Store::open(&db).unwrap().outbox_backlog().unwrap(),
        u64::from(N),
        "every answered upload survived the SIGKILL in the outbox"
    );

    broker.start();
    let topic = "marquee/crash/poster";
    // Subscribed before the daemon comes back: nothing can be missed.
    let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
    let mut second = Process::serve("crash", broker.port(), &db, dir.path(), 2).await;

    let got = sub.collect(topic, N as usize, WAIT).await;
    let got_ids: Vec<String> = got
        .iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got_ids, ids, "the backlog, in upload order");
    assert!(
        got.iter().all(|m| m.json()["replayed"] == true),
        "replayed after the restart"
    );
    // Every row acknowledged before the daemon stops cleanly.
    let db_path = db.clone();
    common::eventually("the outbox emptied", WAIT, move || {
        Store::open(&db_path).unwrap().outbox_backlog().unwrap() == 0
    })
    .await;
    second.terminate();

    let store = Store::open(&db).unwrap();
    assert_eq!(store.posters_since(0).unwrap(), u64::from(N));
    for poster in &posters {
        let detail = store.poster(&PosterId::of_bytes(poster)).unwrap().unwrap();
        assert_eq!(detail.sightings, 1, "classified once per upload");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_image_on_the_ingest_topic_is_counted_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let broker = Broker::launch();
    let mut daemon = TestDaemon::start(daemon::config("ingest", broker.url(), &db)).await;
    let poster_topic = "marquee/ingest/poster";
    let ingest_topic = "marquee/ingest/ingest";
    let mut sub = Subscriber::connect(broker.port(), &[poster_topic]).await;
    // Images published before the broker confirms the daemon's subscription
    // are not delivered to it: wait for the SUBACK, not just the connection.
    common::wait_subscribed(&daemon.running().publish, WAIT).await;

    sub.publish(ingest_topic, b"{\"not\": \"an image\"}".to_vec(), false)
        .await;
    let counters = &daemon.running().metrics;
    common::eventually("the refusal counted", WAIT, || {
        counters.errors("not_an_image") == 1
    })
    .await;
    let text = metrics_page(daemon.addr).await;
    assert_eq!(
        metric(
            &text,
            "marquee_classify_errors_total{kind=\"not_an_image\"}"
        ),
        Some(1.0),
        "{text}"
    );

    let poster = drawn_poster_jpeg(500, 240, 360);
    sub.publish(ingest_topic, poster.clone(), false).await;
    let event = sub.expect(poster_topic, WAIT).await.json();
    assert_eq!(event["id"], PosterId::of_bytes(&poster).as_str());
    assert_eq!(event["source"], "mqtt");
    daemon.stop(WAIT).await;

    let store = Store::open(&db).unwrap();
    assert_eq!(store.posters_since(0).unwrap(), 1, "only the image");
    assert_eq!(store.outbox_backlog().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_stream_delivers_the_outage_uploads_in_order_replayed() {
    const BEFORE: u32 = 4;
    const DURING_OUTAGE: u32 = 3;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let mut broker = Broker::launch();
    // The daemon reaches the broker through the gate, so after the restart
    // it cannot reconnect (and replay) before the new subscriber listens.
    let mut gate = Gate::closed();
    gate.open(broker.port()).await;
    let mut daemon = TestDaemon::start(daemon::config("midkill", mqtt_url(gate.port), &db)).await;
    common::wait_connected(&daemon.running().publish, true, WAIT).await;
    let topic = "marquee/midkill/poster";
    let mut before_sub = Subscriber::connect(broker.port(), &[topic]).await;

    let posters: Vec<Vec<u8>> = (0..BEFORE + DURING_OUTAGE)
        .map(|seed| drawn_poster_jpeg(600 + seed, 240, 360))
        .collect();
    let (before_posters, outage_posters) = posters.split_at(BEFORE as usize);
    let mut ids = Vec::new();
    // The stream is flowing: the first upload arrives live...
    ids.push(upload(daemon.addr, &before_posters[0]).await);
    let first = before_sub.expect(topic, WAIT).await.json();
    assert_eq!(first["id"], ids[0].as_str());
    assert_eq!(first["replayed"], false);
    // ...and the broker dies right after the last answer, with whatever
    // the daemon has not yet had acknowledged still in flight.
    for poster in &before_posters[1..] {
        ids.push(upload(daemon.addr, poster).await);
    }
    broker.stop();
    gate.close().await;
    common::wait_connected(&daemon.running().publish, false, WAIT).await;
    // The old subscriber's connection is gone: take what it still buffered.
    let mut before = vec![first.clone()];
    before.extend(
        before_sub
            .collect_until(Duration::from_secs(2), |_| false)
            .await
            .into_iter()
            .filter(|m| m.topic == topic)
            .map(|m| m.json()),
    );

    // Once every acknowledgement received before the kill is marked in the
    // store, what is still pending there was never acknowledged: the
    // daemon owes it again. What the broker acknowledged is the daemon's
    // job done: a broker without persistence may lose what it had not yet
    // forwarded, and the subscriber may never see it.
    let publish = daemon.running().publish.clone();
    let db_path = db.clone();
    common::eventually("acknowledged rows marked in the store", WAIT, || {
        let backlog = Store::open(&db_path).unwrap().outbox_backlog().unwrap();
        backlog + publish.status().published == u64::from(BEFORE)
    })
    .await;
    let pending_at_kill: BTreeSet<String> = Store::open(&db)
        .unwrap()
        .pending_outbox(1000)
        .unwrap()
        .iter()
        .filter(|row| row.topic == topic)
        .map(|row| {
            let event: serde_json::Value = serde_json::from_slice(&row.payload).unwrap();
            event["id"].as_str().unwrap().to_owned()
        })
        .collect();

    eprintln!(
        "note: {} of {BEFORE} uploads were unacknowledged at the kill",
        pending_at_kill.len()
    );

    // Uploads while the broker is down are answered: the result is
    // committed, the event waits in the outbox.
    let mut outage_ids = Vec::new();
    for poster in outage_posters {
        outage_ids.push(upload(daemon.addr, poster).await);
    }
    ids.extend(outage_ids.iter().cloned());
    assert_eq!(
        Store::open(&db).unwrap().outbox_backlog().unwrap(),
        pending_at_kill.len() as u64 + u64::from(DURING_OUTAGE),
        "the outage uploads wait in the outbox"
    );
    let metrics = metrics_page(daemon.addr).await;
    assert_eq!(
        metric(&metrics, "marquee_broker_connected"),
        Some(0.0),
        "{metrics}"
    );

    // Back on the same port, empty; the subscriber listens before the gate
    // lets the daemon in.
    broker.start();
    let mut after_sub = Subscriber::connect(broker.port(), &[topic]).await;
    gate.open(broker.port()).await;
    let must_replay: BTreeSet<String> = pending_at_kill
        .iter()
        .cloned()
        .chain(outage_ids.iter().cloned())
        .collect();
    let after = after_sub
        .collect_until(WAIT, |msgs| {
            let got: BTreeSet<String> = first_seen(msgs).into_iter().collect();
            must_replay.is_subset(&got)
        })
        .await;
    let after: Vec<_> = after.into_iter().filter(|m| m.topic == topic).collect();
    let replay_order = first_seen(&after);
    let missing: Vec<_> = must_replay
        .iter()
        .filter(|id| !replay_order.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "uploads pending at the kill or made during the outage never came: {missing:?}"
    );
    let outage_order: Vec<String> = replay_order
        .iter()
        .filter(|id| outage_ids.contains(id))
        .cloned()
        .collect();
    assert_eq!(
        outage_order, outage_ids,
        "the outage uploads, in upload order"
    );
    for m in &after {
        let event = m.json();
        assert_eq!(event["replayed"], true, "waited in the outbox: {event}");
        assert_eq!(event["source"], "http");
    }
    let upload_rank = |id: &String| ids.iter().position(|x| x == id).unwrap();
    assert!(
        replay_order
            .windows(2)
            .all(|w| upload_rank(&w[0]) < upload_rank(&w[1])),
        "the replay keeps upload order: {replay_order:?}"
    );

    // Across the kill: first deliveries in upload order, and only what the
    // broker had acknowledged may be missing.
    let mut seen_order: Vec<String> = Vec::new();
    for id in before
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .chain(replay_order.iter().cloned())
    {
        if !seen_order.contains(&id) {
            seen_order.push(id);
        }
    }
    assert!(
        seen_order
            .windows(2)
            .all(|w| upload_rank(&w[0]) < upload_rank(&w[1])),
        "first deliveries in upload order: {seen_order:?}"
    );
    let lost_by_broker: Vec<&String> = ids.iter().filter(|id| !seen_order.contains(id)).collect();
    assert!(
        lost_by_broker
            .iter()
            .all(|id| !pending_at_kill.contains(*id) && !outage_ids.contains(*id)),
        "only uploads the broker had acknowledged may be missing: {lost_by_broker:?}"
    );
    if !lost_by_broker.is_empty() {
        eprintln!(
            "note: the killed broker lost {} acknowledged events before forwarding them",
            lost_by_broker.len()
        );
    }

    let db_path = db.clone();
    common::eventually("the outbox emptied", WAIT, move || {
        Store::open(&db_path).unwrap().outbox_backlog().unwrap() == 0
    })
    .await;
    daemon.stop(WAIT).await;
    let store = Store::open(&db).unwrap();
    assert_eq!(store.outbox_backlog().unwrap(), 0);
    assert_eq!(store.posters_since(0).unwrap(), posters.len() as u64);
    for poster in &posters {
        let detail = store.poster(&PosterId::of_bytes(poster)).unwrap().unwrap();
        assert_eq!(detail.sightings, 1, "stored once per upload");
    }
}

/// Issue 14, "a 50 MB retained message on the ingest topic": the daemon
/// tells the broker (MQTT 5) the largest packet its inputs take, so an
/// oversize retained image is never sent to it; results keep going out and
/// MQTT images keep coming in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_retained_image_on_the_ingest_topic_wedges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let broker = Broker::launch();
    let poster_topic = "marquee/big/poster";
    let ingest_topic = "marquee/big/ingest";
    let mut sub = Subscriber::connect(broker.port(), &[poster_topic]).await;
    // Over the daemon's 1 MiB upload limit, retained before it starts.
    let mut oversize = drawn_poster_jpeg(600, 240, 360);
    oversize.resize(2 * 1024 * 1024, 0);
    sub.publish(ingest_topic, oversize, true).await;
    let mut sync = Subscriber::connect(broker.port(), &[ingest_topic]).await;
    sync.expect(ingest_topic, WAIT).await; // the broker holds it now

    let mut cfg = daemon::config("big", broker.url(), &db);
    cfg.http.max_upload_bytes = 1024 * 1024;
    let mut daemon = TestDaemon::start(cfg).await;
    common::wait_subscribed(&daemon.running().publish, WAIT).await;

    // Uploads reach MQTT...
    let id = upload(daemon.addr, &drawn_poster_jpeg(601, 240, 360)).await;
    assert_eq!(sub.expect(poster_topic, WAIT).await.json()["id"], id);
    // ...and so do images on the ingest topic, through the same link.
    let image = drawn_poster_jpeg(602, 240, 360);
    sub.publish(ingest_topic, image.clone(), false).await;
    let event = sub.expect(poster_topic, WAIT).await.json();
    assert_eq!(event["id"], PosterId::of_bytes(&image).as_str());
    assert_eq!(event["source"], "mqtt");
    let status = daemon.running().publish.status();
    assert!(status.connected, "{status:?}");
    assert_eq!(
        status.connects, 1,
        "the event link never dropped: {status:?}"
    );
    daemon.stop(WAIT).await;
    assert_eq!(Store::open(&db).unwrap().posters_since(0).unwrap(), 2);
}

/// A retained image on the ingest topic is refused and counted: it would be
/// classified again for every new subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_image_on_the_ingest_topic_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let broker = Broker::launch();
    let ingest_topic = "marquee/kept/ingest";
    let setup = Subscriber::connect(broker.port(), &["marquee/kept/poster"]).await;
    setup
        .publish(ingest_topic, drawn_poster_jpeg(610, 240, 360), true)
        .await;
    let mut sync = Subscriber::connect(broker.port(), &[ingest_topic]).await;
    sync.expect(ingest_topic, WAIT).await;

    let mut daemon = TestDaemon::start(daemon::config("kept", broker.url(), &db)).await;
    let counters = daemon.running().metrics.clone();
    common::eventually("the retained image refused", WAIT, || {
        counters.errors("mqtt_retained") == 1
    })
    .await;
    assert_eq!(daemon.running().publish.status().inbound_dropped, 1);
    daemon.stop(WAIT).await;
    assert_eq!(Store::open(&db).unwrap().posters_since(0).unwrap(), 0);
}

/// Issue 14: an MQTT image is acknowledged only once its poster is
/// committed, and the broker keeps the daemon's session, so images in
/// flight when the daemon is SIGKILLed are delivered again: every image
/// published is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_images_in_flight_at_a_sigkill_are_delivered_again() {
    const N: u32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let broker = Broker::launch();
    let poster_topic = "marquee/acks/poster";
    let ingest_topic = "marquee/acks/ingest";
    let mut sub = Subscriber::connect(broker.port(), &[poster_topic]).await;

    let mut first = Process::serve("acks", broker.port(), &db, dir.path(), 1).await;
    // Subscribed once the daemon's inputs session exists at the broker;
    // from then on the broker keeps images for it, up or down.
    common::eventually_async("the daemon's MQTT inputs subscribed", WAIT, || async {
        metric(
            &metrics_page(first.addr).await,
            "marquee_mqtt_inputs_subscribed",
        ) == Some(1.0)
    })
    .await;
    let images: Vec<Vec<u8>> = (0..N)
        .map(|seed| drawn_poster_jpeg(700 + seed, 240, 360))
        .collect();
    for image in &images {
        sub.publish(ingest_topic, image.clone(), false).await;
    }
    // One worker: most images are still queued or being classified now.
    sub.expect(poster_topic, WAIT).await;
    first.kill9();
    let stored_before = Store::open(&db).unwrap().posters_since(0).unwrap();
    eprintln!("stored before the SIGKILL: {stored_before} of {N}");

    let mut second = Process::serve("acks", broker.port(), &db, dir.path(), 2).await;
    let db_path = db.clone();
    common::eventually("every published image stored", WAIT, move || {
        Store::open(&db_path).unwrap().posters_since(0).unwrap() == u64::from(N)
    })
    .await;
    second.terminate();
    let store = Store::open(&db).unwrap();
    for image in &images {
        assert!(
            store.poster(&PosterId::of_bytes(image)).unwrap().is_some(),
            "every image stored"
        );
    }
}

/// Home Assistant's `online` (heard on the inputs' connection) makes the
/// daemon announce itself again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_is_announced_again_when_home_assistant_comes_online() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    let broker = Broker::launch();
    let mut cfg = daemon::config("hass", broker.url(), &db);
    cfg.mqtt.discovery = true;
    let mut daemon = TestDaemon::start(cfg).await;
    common::wait_subscribed(&daemon.running().publish, WAIT).await;
    let filter = "homeassistant/+/hass/+/config";
    let mut sub = Subscriber::connect(broker.port(), &[filter]).await;
    // The retained configs first.
    let retained = sub.collect_until(WAIT, |m| m.len() >= 4).await;
    assert!(retained.iter().all(|m| m.retain));
    sub.publish("homeassistant/status", "online", false).await;
    let again = sub.collect_until(WAIT, |m| m.len() >= 4).await;
    assert!(again.len() >= 4, "announced again: {}", again.len());
    assert!(again.iter().all(|m| m.topic.ends_with("/config")));
    daemon.stop(WAIT).await;
}
