//! The real daemon through `app::start`: HTTP uploads on 127.0.0.1:0, a temp
//! SQLite file, the shipped model, and a real broker (or a closed port, to
//! keep every result in the outbox).

use crate::common::broker::{Broker, Subscriber};
use crate::common::daemon::{self, TestDaemon};
use crate::common::http::{multipart, parse_reply, request, try_request, Reply};
use crate::common::{closed_port_url, metric};
use marquee::config::Config;
use marquee::drawing::drawn_poster_jpeg;
use marquee::poster::{PosterEvent, PosterId};
use marquee::store::Store;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEVICE: &str = "test-dev";
const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ the daemon --

struct Daemon {
    addr: SocketAddr,
    inner: TestDaemon,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(mqtt_url: String, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("marquee.db");
        let mut cfg = daemon::config(DEVICE, mqtt_url, &db);
        tweak(&mut cfg);
        let inner = TestDaemon::start(cfg).await;
        Self {
            addr: inner.addr,
            inner,
            db,
            _dir: dir,
        }
    }

    /// A daemon whose broker is a closed port: every result stays in the outbox.
    async fn without_broker() -> Self {
        Self::start(closed_port_url(), |_| {}).await
    }

    async fn stop(&mut self) {
        self.inner.stop(WAIT).await;
    }

    /// A second connection to the store (WAL: readers do not block the daemon).
    fn store(&self) -> Store {
        Store::open(&self.db).unwrap()
    }

    async fn upload(&self, body: &[u8]) -> Reply {
        request(self.addr, "POST", "/api/v1/posters", &[], body).await
    }

    /// Upload `bytes` as the multipart form field `field`.
    async fn upload_multipart(&self, field: &str, bytes: &[u8]) -> Reply {
        let (content_type, body) = multipart(field, bytes);
        request(
            self.addr,
            "POST",
            "/api/v1/posters",
            &[("Content-Type", &content_type)],
            &body,
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"").await
    }
}

fn assert_event(event: &Value, bytes: &[u8], source: &str) {
    assert_eq!(event["id"], PosterId::of_bytes(bytes).as_str());
    assert_eq!(event["source"], source);
    assert_eq!(event["genres"].as_array().unwrap().len(), 19);
    assert_eq!(event["top3"].as_array().unwrap().len(), 3);
    assert!(event["tags"].is_array());
    assert!(event["model"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(event["ts"].as_i64().is_some_and(|ts| ts > 0));
    assert_eq!(event["replayed"], false);
}

// ------------------------------------------------------------------ tests --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_answers_the_event_and_commits_poster_and_outbox_row() {
    let mut daemon = Daemon::without_broker().await;
    let poster = drawn_poster_jpeg(11, 240, 360);
    let reply = daemon.upload(&poster).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/json")));
    let event = reply.json();
    assert_event(&event, &poster, "http");

    daemon.stop().await;
    let store = daemon.store();
    let id = PosterId::of_bytes(&poster);
    let detail = store.poster(&id).unwrap().expect("poster row");
    assert_eq!(detail.poster.source, "http");
    assert_eq!(detail.poster.size_bytes, poster.len() as u64);
    assert_eq!((detail.poster.width, detail.poster.height), (240, 360));
    assert!(store.thumbnail(&id).unwrap().is_some_and(|t| !t.is_empty()));
    let latest = detail.latest.expect("classification row");
    assert_eq!(latest.genres.len(), 19);

    // The broker was never reachable: the event waits in the outbox, as answered.
    let rows = store.pending_outbox(10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].topic, format!("marquee/{DEVICE}/poster"));
    let stored: Value = serde_json::from_slice(&rows[0].payload).unwrap();
    assert_eq!(
        stored, event,
        "the outbox holds the same object the client got"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_file_field_is_accepted() {
    let daemon = Daemon::without_broker().await;
    let poster = drawn_poster_jpeg(12, 200, 300);
    let reply = daemon.upload_multipart("file", &poster).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_event(&reply.json(), &poster, "http");

    let reply = daemon.upload_multipart("image", &poster).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.error_message().contains("`file`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_poster_twice_is_one_poster_with_two_sightings() {
    let mut daemon = Daemon::without_broker().await;
    let poster = drawn_poster_jpeg(13, 220, 330);
    let first = daemon.upload(&poster).await;
    let second = daemon.upload(&poster).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.json()["id"], second.json()["id"]);
    daemon.stop().await;

    let store = daemon.store();
    assert_eq!(store.posters_since(0).unwrap(), 1, "one poster row");
    let detail = store.poster(&PosterId::of_bytes(&poster)).unwrap().unwrap();
    assert_eq!(detail.sightings, 2);
    assert_eq!(
        store.outbox_backlog().unwrap(),
        2,
        "each sighting is an event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_errors_and_the_daemon_goes_on() {
    let mut daemon = Daemon::without_broker().await;

    let whole = drawn_poster_jpeg(14, 240, 360);
    let reply = daemon.upload(&whole[..whole.len() / 2]).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.error_message().contains("truncated"),
        "{}",
        reply.text()
    );

    let reply = daemon.upload(b"just some notes, not a poster").await;
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert!(reply.error_message().contains("JPEG"), "{}", reply.text());

    let reply = daemon.upload(b"").await;
    assert_eq!(reply.status, 400, "{}", reply.text());

    // A PNG that declares 100000x100000 pixels: refused from its header.
    let bomb = marquee::drawing::png_bomb(100_000, 100_000);
    let reply = daemon.upload(&bomb).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.error_message().contains("100000x100000"),
        "{}",
        reply.text()
    );

    let reply = daemon.upload(&whole).await;
    assert_eq!(reply.status, 200, "the daemon goes on: {}", reply.text());

    let metrics = daemon.get("/metrics").await.text();
    assert_eq!(
        metric(
            &metrics,
            "marquee_classify_errors_total{kind=\"bad_image\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    for kind in ["not_an_image", "too_many_pixels", "empty"] {
        let series = format!("marquee_classify_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{metrics}");
    }
    daemon.stop().await;
    let store = daemon.store();
    assert_eq!(store.posters_since(0).unwrap(), 1, "only the good poster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_refused_with_413() {
    let daemon = Daemon::without_broker().await;
    let body = vec![0xAB_u8; 50 * 1024 * 1024];
    let reply = daemon.upload(&body).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.error_message().contains("limit"), "{}", reply.text());

    // Without a declared length (chunked), the limit holds while reading.
    let reply = chunked_upload(daemon.addr, &vec![0xAB_u8; 21 * 1024 * 1024]).await;
    assert_eq!(reply.status, 413, "{}", reply.text());

    let ok = daemon.upload(&drawn_poster_jpeg(15, 200, 300)).await;
    assert_eq!(ok.status, 200);
}

async fn chunked_upload(addr: SocketAddr, body: &[u8]) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /api/v1/posters HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let body = body.to_vec();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(head.as_bytes()).await;
        for chunk in body.chunks(1024 * 1024) {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            if write.write_all(&framed).await.is_err() {
                return;
            }
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
    });
    let mut raw = Vec::new();
    let _ = read.read_to_end(&mut raw).await;
    writer.abort();
    parse_reply(&raw).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let daemon = Daemon::without_broker().await;
    let health = daemon.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "alive");

    let ready = daemon.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["ready"], true);
    assert_eq!(ready.json()["broker_connected"], false);

    assert_eq!(
        daemon.upload(&drawn_poster_jpeg(16, 200, 300)).await.status,
        200
    );
    let metrics = daemon.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = metrics.text();
    for (series, value) in [
        ("marquee_queue_depth", Some(0.0)),
        ("marquee_queue_capacity", Some(16.0)),
        ("marquee_outbox_backlog", Some(1.0)),
        ("marquee_broker_connected", Some(0.0)),
        ("marquee_posters_total{source=\"http\"}", Some(1.0)),
        ("marquee_inference_seconds_count", Some(1.0)),
        ("marquee_inference_seconds_bucket{le=\"+Inf\"}", Some(1.0)),
    ] {
        assert_eq!(metric(&text, series), value, "{series} in:\n{text}");
    }
    assert!(text.contains("# TYPE marquee_inference_seconds histogram"));
    assert!(text.contains("# TYPE marquee_classify_errors_total counter"));

    let missing = daemon.get("/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.error_message().contains("/api/v1/posters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    // One slow worker and a queue of one: a burst overflows it.
    let daemon = Daemon::start(closed_port_url(), |cfg| cfg.inference.queue_size = 1).await;
    let addr = daemon.addr;
    let uploads: Vec<_> = (0..8)
        .map(|seed| {
            tokio::spawn(async move {
                let poster = drawn_poster_jpeg(100 + seed, 1600, 2400);
                request(addr, "POST", "/api/v1/posters", &[], &poster).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for upload in uploads {
        let reply = upload.await.unwrap();
        if reply.status == 503 {
            assert_eq!(reply.header("retry-after"), Some("2"));
            assert!(reply.error_message().contains("retry"));
        }
        statuses.push(reply.status);
    }
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "a burst of 8 overflows 1 slot: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_the_posters_in_flight() {
    let mut daemon = Daemon::without_broker().await;
    let addr = daemon.addr;
    // Large posters and one worker, so several wait in the queue.
    let posters: Vec<Vec<u8>> = (0..6)
        .map(|seed| drawn_poster_jpeg(200 + seed, 1500, 2250))
        .collect();
    let uploads: Vec<_> = posters
        .iter()
        .cloned()
        .map(|poster| {
            tokio::spawn(
                async move { try_request(addr, "POST", "/api/v1/posters", &[], &poster).await },
            )
        })
        .collect();

    // Wait (by condition, not time) until posters are queued behind the worker.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = daemon.get("/metrics").await.text();
        if metric(&text, "marquee_queue_depth").unwrap_or(0.0) >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "posters never queued:\n{text}"
        );
        tokio::task::yield_now().await;
    }
    daemon.stop().await;

    let mut answered = Vec::new();
    for upload in uploads {
        // A connection the server had not accepted yet may be refused;
        // every upload it accepted must be answered with its result.
        if let Ok(reply) = upload.await.unwrap() {
            assert_eq!(reply.status, 200, "{}", reply.text());
            answered.push(reply.json()["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        answered.len() >= 2,
        "the queued posters were answered: {answered:?}"
    );
    let store = daemon.store();
    assert_eq!(store.posters_since(0).unwrap(), answered.len() as u64);
    assert_eq!(store.outbox_backlog().unwrap(), answered.len() as u64);
    for id in &answered {
        assert!(store
            .poster(&PosterId::parse(id).unwrap())
            .unwrap()
            .is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_subscriber_and_mqtt_ingest_is_classified() {
    let broker = Broker::launch();
    let mut daemon = Daemon::start(broker.url(), |_| {}).await;
    let poster_topic = format!("marquee/{DEVICE}/poster");
    let mut sub = Subscriber::connect(broker.port(), &[&poster_topic]).await;

    let poster = drawn_poster_jpeg(17, 240, 360);
    let reply = daemon.upload(&poster).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let message = sub.expect(&poster_topic, WAIT).await;
    let published: PosterEvent = serde_json::from_slice(&message.payload).unwrap();
    let answered: PosterEvent = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(published, answered, "the MQTT event is the HTTP answer");

    // An image published on the ingest topic is classified like an upload.
    let other = drawn_poster_jpeg(18, 240, 360);
    sub.publish(&format!("marquee/{DEVICE}/ingest"), other.clone(), false)
        .await;
    let message = sub.expect(&poster_topic, WAIT).await;
    assert_event(&message.json(), &other, "mqtt");

    daemon.stop().await;
    let store = daemon.store();
    assert_eq!(
        store.outbox_backlog().unwrap(),
        0,
        "everything acknowledged"
    );
    assert_eq!(store.posters_since(0).unwrap(), 2);
}
