//! The watched folder through the real daemon (`app::start` on 127.0.0.1:0),
//! a temp SQLite file and a temp folder. The broker is a closed port (every
//! result stays in the outbox) except in the end-to-end test, which runs a
//! real broker and a subscriber.

use crate::common::broker::{Broker, Subscriber};
use crate::common::daemon::{self, TestDaemon};
use crate::common::{self, closed_port_url};
use marquee::app::Running;
use marquee::config::Config;
use marquee::drawing::drawn_poster_jpeg;
use marquee::poster::{PosterId, WatchedFile};
use marquee::store::{Store, WatchedState};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(60);

/// A folder and a database that outlive the daemons started on them.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("marquee.db")
    }

    fn config(&self, settle_ms: u64) -> Config {
        // One inference worker (as `daemon::config` sets): files are
        // classified in the order they are queued.
        let mut cfg = daemon::config("watch-dev", closed_port_url(), &self.db());
        cfg.watch.dir = Some(self.inbox());
        cfg.watch.settle_ms = settle_ms;
        cfg
    }

    async fn start(&self, cfg: Config) -> Daemon {
        Daemon(TestDaemon::start(cfg).await)
    }

    fn store(&self) -> Store {
        Store::open(self.db()).unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.inbox().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

struct Daemon(TestDaemon);

impl Daemon {
    fn running(&self) -> &Running {
        self.0.running()
    }

    async fn stop(&mut self) {
        self.0.stop(WAIT).await;
    }

    /// Wait (by condition) until `n` posters came from the folder.
    async fn wait_watched(&self, n: u64) {
        let metrics = &self.running().metrics;
        common::eventually(&format!("{n} posters from the folder"), WAIT, || {
            metrics.posters("watch") >= n
        })
        .await;
        assert_eq!(metrics.posters("watch"), n, "no more than {n}");
    }

    async fn wait_errors(&self, kind: &str, n: u64) {
        let metrics = &self.running().metrics;
        common::eventually(&format!("{n} {kind} errors"), WAIT, || {
            metrics.errors(kind) >= n
        })
        .await;
    }
}

/// The key the watcher records a file under.
fn watched_key(path: &Path) -> WatchedFile {
    let meta = std::fs::metadata(path).unwrap();
    WatchedFile {
        path: path.as_os_str().as_bytes().to_vec(),
        size_bytes: meta.len(),
        mtime_ms: meta
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_file_reaches_a_subscriber_as_a_poster_event() {
    let broker = Broker::launch();
    let site = Site::new();
    let mut cfg = site.config(200);
    cfg.mqtt.url = broker.url();
    let device = cfg.device_id.clone();
    let mut daemon = site.start(cfg).await;
    let topic = format!("marquee/{device}/poster");
    // Subscribed before the file exists: nothing can be missed.
    let mut sub = Subscriber::connect(broker.port(), &[topic.as_str()]).await;
    // A row written before the daemon's session is up would go out as a
    // replay; wait for the connection so this one is a live event.
    common::wait_connected(&daemon.running().publish, true, WAIT).await;

    let poster = drawn_poster_jpeg(36, 240, 360);
    site.write("dropped.jpg", &poster);
    let event = sub.expect(&topic, WAIT).await.json();
    assert_eq!(event["source"], "watch");
    assert_eq!(event["id"], PosterId::of_bytes(&poster).as_str());
    let genres = event["genres"].as_array().expect("genres is an array");
    assert_eq!(genres.len(), 19, "a score for every genre: {event}");
    assert!(
        genres
            .iter()
            .all(|g| g["label"].is_string() && g["score"].is_number()),
        "{event}"
    );
    assert_eq!(event["replayed"], false, "a live event, not a replay");
    daemon.wait_watched(1).await;

    let publish = daemon.running().publish.clone();
    common::eventually("the event acknowledged", WAIT, || {
        publish.status().published >= 1
    })
    .await;
    daemon.stop().await;
    let store = site.store();
    let detail = store.poster(&PosterId::of_bytes(&poster)).unwrap().unwrap();
    assert_eq!(detail.poster.source, "watch");
    assert_eq!(detail.sightings, 1);
    assert_eq!(
        store.outbox_backlog().unwrap(),
        0,
        "acknowledged and marked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_two_halves_is_classified_once_and_whole() {
    let site = Site::new();
    let mut daemon = site.start(site.config(1000)).await;
    let poster = drawn_poster_jpeg(31, 240, 360);
    let (first, second) = poster.split_at(poster.len() / 2);

    let path = site.inbox().join("poster.jpg");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(first).unwrap();
    file.sync_all().unwrap();
    // The writer pauses mid-file (a slow copy): shorter than settle_ms, so
    // the watcher must still see the file as moving, whatever it polls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    file.write_all(second).unwrap();
    file.sync_all().unwrap();
    drop(file);
    daemon.wait_watched(1).await;

    // Another file after it: once it is classified, the watcher has
    // polled past the first one several times without taking it again.
    let other = drawn_poster_jpeg(32, 200, 300);
    site.write("other.jpg", &other);
    daemon.wait_watched(2).await;
    let metrics = &daemon.running().metrics;
    assert_eq!(metrics.errors("bad_image"), 0, "half a file was never read");
    daemon.stop().await;

    let store = site.store();
    let detail = store
        .poster(&PosterId::of_bytes(&poster))
        .unwrap()
        .expect("the whole file's poster");
    assert_eq!(detail.poster.source, "watch");
    assert_eq!(
        detail.poster.size_bytes,
        poster.len() as u64,
        "the stored size is the full size"
    );
    assert_eq!(detail.sightings, 1, "classified once");
    assert_eq!(store.posters_since(0).unwrap(), 2);
    assert!(matches!(
        store.watched_state(&watched_key(&path)).unwrap(),
        Some(WatchedState::Done(Some(id))) if id == PosterId::of_bytes(&poster)
    ));
    assert_eq!(store.outbox_backlog().unwrap(), 2, "each is an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_store_and_folder_classifies_nothing_again() {
    let site = Site::new();
    std::fs::create_dir_all(site.inbox()).unwrap();
    let poster = drawn_poster_jpeg(33, 240, 360);
    site.write("a.jpg", &poster);
    site.write("notes.txt", b"call the cinema about the new posters\n");

    let mut first = site.start(site.config(200)).await;
    first.wait_watched(1).await;
    first.wait_errors("not_an_image", 1).await;
    first.stop().await;

    let mut second = site.start(site.config(200)).await;
    let later = drawn_poster_jpeg(34, 240, 360);
    site.write("later.jpg", &later);
    // One worker, oldest file first: once the new file is done, the old
    // ones have been looked at and skipped (or would have been queued
    // ahead of it).
    second.wait_watched(1).await;
    let metrics = &second.running().metrics;
    assert_eq!(
        metrics.errors("not_an_image"),
        0,
        "the text file is not retried"
    );
    second.stop().await;

    let store = site.store();
    assert_eq!(store.posters_since(0).unwrap(), 2);
    let a = store.poster(&PosterId::of_bytes(&poster)).unwrap().unwrap();
    assert_eq!(a.sightings, 1, "a.jpg was not classified again");
    assert_eq!(store.outbox_backlog().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_is_refused_once_and_the_watcher_goes_on() {
    let site = Site::new();
    let mut daemon = site.start(site.config(200)).await;
    let notes = site.write("notes.txt", b"not a poster at all\n");
    daemon.wait_errors("not_an_image", 1).await;

    let poster = drawn_poster_jpeg(35, 240, 360);
    site.write("good.jpg", &poster);
    daemon.wait_watched(1).await;
    let metrics = &daemon.running().metrics;
    assert_eq!(
        metrics.errors("not_an_image"),
        1,
        "refused once, not at every poll"
    );
    daemon.stop().await;

    let store = site.store();
    match store.watched_state(&watched_key(&notes)).unwrap() {
        Some(WatchedState::Failed(reason)) => {
            assert!(reason.contains("JPEG"), "a clear reason: {reason}");
        }
        other => panic!("the text file is recorded as failed: {other:?}"),
    }
    assert_eq!(store.posters_since(0).unwrap(), 1, "only the poster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_the_watcher_wait_and_drops_nothing() {
    let site = Site::new();
    std::fs::create_dir_all(site.inbox()).unwrap();
    let posters: Vec<Vec<u8>> = (0..6)
        .map(|seed| drawn_poster_jpeg(40 + seed, 600, 900))
        .collect();
    for (i, poster) in posters.iter().enumerate() {
        site.write(&format!("p{i}.jpg"), poster);
    }
    let mut cfg = site.config(200);
    cfg.inference.queue_size = 1;
    let mut daemon = site.start(cfg).await;
    daemon.wait_watched(6).await;
    let metrics = &daemon.running().metrics;
    assert_eq!(metrics.errors("queue_full"), 0);
    daemon.stop().await;

    let store = site.store();
    for poster in &posters {
        let detail = store.poster(&PosterId::of_bytes(poster)).unwrap();
        assert_eq!(detail.map(|d| d.sightings), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_dir_that_cannot_be_created_fails_the_start_naming_the_key() {
    let site = Site::new();
    let blocker = site.dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut cfg = site.config(200);
    cfg.watch.dir = Some(blocker.join("inbox"));
    let err = match TestDaemon::try_start(cfg).await {
        Ok(_) => panic!("started with an unusable watch.dir"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("watch.dir"), "{err}");
}
