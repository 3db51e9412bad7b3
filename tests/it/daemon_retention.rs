//! Retention through the real daemon: `store.retention_days` is applied as
//! the daemon starts (then hourly), and never takes an undelivered result.

use crate::common::daemon::{self, TestDaemon};
use crate::common::{self, closed_port_url};
use marquee::model::{GenreScore, Prediction};
use marquee::poster::{now_ms, PosterId};
use marquee::store::{NewClassification, NewPoster, OutboxMessage, Qos, Store};
use std::time::Duration;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const WAIT: Duration = Duration::from_secs(60);

/// A sighting from `days_ago`, with its outbox event.
fn old_sighting(store: &Store, seed: u8, days_ago: i64) -> i64 {
    let at = now_ms() - days_ago * DAY_MS;
    let score = GenreScore {
        label: "horror".into(),
        score: 0.9,
    };
    let poster = NewPoster {
        id: PosterId::of_bytes(&[seed]),
        source: "http".into(),
        seen_at_ms: at,
        size_bytes: 1,
        width: 1,
        height: 1,
        thumbnail: None,
        features: None,
    };
    let classification = NewClassification {
        model: "test".into(),
        prediction: Prediction {
            genres: vec![score.clone()],
            tags: vec!["horror".into()],
            top3: vec![score],
        },
        latency_ms: 1.0,
        created_at_ms: at,
        shadow: None,
    };
    let message = OutboxMessage {
        topic: "marquee/ret/poster".into(),
        payload: format!("{{\"seed\":{seed}}}").into_bytes(),
        qos: Qos::AtLeastOnce,
        retain: false,
    };
    let outcome = store.record(&poster, &classification, &[message]).unwrap();
    outcome.outbox_seqs[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_at_start_and_keeps_undelivered_results() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marquee.db");
    {
        let store = Store::open(&db).unwrap();
        let delivered = old_sighting(&store, 1, 30);
        old_sighting(&store, 2, 30); // never delivered
        old_sighting(&store, 3, 0); // recent
        assert!(store.mark_published(delivered).unwrap());
        assert_eq!(store.posters_since(0).unwrap(), 3);
    }

    // A closed port: nothing more gets published while the test looks.
    let mut cfg = daemon::config("ret", closed_port_url(), &db);
    cfg.store.retention_days = Some(7);
    let mut daemon = TestDaemon::start(cfg).await;

    // The first run is due at once: wait for its effect (by condition).
    common::eventually("retention to leave 1 of the 3 posters", WAIT, || {
        Store::open(&db).unwrap().posters_since(0).unwrap() == 1
    })
    .await;
    daemon.stop(WAIT).await;

    let store = Store::open(&db).unwrap();
    assert!(store.poster(&PosterId::of_bytes(&[3])).unwrap().is_some());
    let pending = store.pending_outbox(10).unwrap();
    let payloads: Vec<String> = pending
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    assert_eq!(
        payloads,
        vec!["{\"seed\":2}".to_owned(), "{\"seed\":3}".to_owned()],
        "the 30-day-old undelivered result is kept, in order"
    );
}
