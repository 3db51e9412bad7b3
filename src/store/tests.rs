//! Store tests on a real SQLite file in a temp dir.

use super::*;
use crate::model::{GenreScore, Prediction};
use crate::poster::{now_ms, PosterId};

fn open_temp() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("marquee.db");
    let store = Store::open(&path).unwrap();
    (dir, path, store)
}

fn poster(bytes: &[u8], source: &str, at: i64) -> NewPoster {
    NewPoster {
        id: PosterId::of_bytes(bytes),
        source: source.into(),
        seen_at_ms: at,
        size_bytes: bytes.len() as u64,
        width: 300,
        height: 450,
        thumbnail: Some(vec![0xff, 0xd8, 0xff]),
        features: None,
    }
}

fn score(label: &str, score: f32) -> GenreScore {
    GenreScore {
        label: label.into(),
        score,
    }
}

fn classification(at: i64) -> NewClassification {
    let genres = vec![
        score("Horror", 0.9),
        score("Thriller", 0.6),
        score("Drama", 0.2),
        score("Comedy", 0.1),
    ];
    NewClassification {
        model: "efficientnet-lite0/int8".into(),
        prediction: Prediction {
            tags: vec!["Horror".into(), "Thriller".into()],
            top3: genres[..3].to_vec(),
            genres,
        },
        latency_ms: 42.5,
        created_at_ms: at,
        shadow: None,
    }
}

fn event(topic: &str, n: u32) -> OutboxMessage {
    OutboxMessage {
        topic: topic.into(),
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        qos: Qos::AtLeastOnce,
        retain: false,
    }
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn opens_in_wal_mode_with_full_sync() {
    let (_dir, _path, store) = open_temp();
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), sync), ("wal", 2));
}

#[test]
fn round_trip() {
    let (_dir, _path, store) = open_temp();
    let p = poster(b"poster one", "http", 1_000);
    let c = classification(1_010);
    let outcome = store
        .record(&p, &c, &[event("marquee/dev/poster", 1)])
        .unwrap();
    assert!(outcome.new_poster);
    assert_eq!(outcome.outbox_seqs.len(), 1);

    let detail = store.poster(&p.id).unwrap().unwrap();
    assert_eq!(detail.poster.id, p.id);
    assert_eq!(detail.poster.source, "http");
    assert_eq!(detail.poster.size_bytes, 10);
    assert_eq!((detail.poster.width, detail.poster.height), (300, 450));
    assert_eq!(detail.sightings, 1);
    let latest = detail.latest.unwrap();
    assert_eq!(latest.id, outcome.classification_id);
    assert_eq!(latest.genres, c.prediction.genres);
    assert_eq!(latest.tags, c.prediction.tags);
    assert_eq!(latest.top3, c.prediction.top3);
    assert_eq!(latest.model, c.model);
    assert_eq!(latest.latency_ms, 42.5);
    assert_eq!(latest.created_at_ms, 1_010);

    assert_eq!(store.thumbnail(&p.id).unwrap(), p.thumbnail);
    let unknown = PosterId::of_bytes(b"never seen");
    assert_eq!(store.poster(&unknown).unwrap(), None);
    assert_eq!(store.thumbnail(&unknown).unwrap(), None);
}

#[test]
fn duplicate_poster_is_one_row() {
    let (_dir, _path, store) = open_temp();
    let first = store
        .record(&poster(b"same", "http", 1_000), &classification(1_000), &[])
        .unwrap();
    let again = poster(b"same", "mqtt", 5_000);
    let second = store.record(&again, &classification(5_000), &[]).unwrap();
    assert!(first.new_poster);
    assert!(!second.new_poster);
    assert_eq!(count(&store, "posters"), 1);

    let detail = store.poster(&again.id).unwrap().unwrap();
    assert_eq!(detail.poster.first_seen_ms, 1_000);
    assert_eq!(detail.poster.last_seen_ms, 5_000);
    assert_eq!(detail.poster.source, "http", "the first source is kept");
    assert_eq!(detail.sightings, 2);
    assert_eq!(detail.latest.unwrap().source, "mqtt");

    let by_source = store.counts_by_source().unwrap();
    assert_eq!(by_source.get("http"), Some(&1));
    assert_eq!(by_source.get("mqtt"), Some(&1));
}

#[test]
fn outbox_is_delivered_in_order() {
    let (_dir, _path, store) = open_temp();
    let mut seqs = Vec::new();
    for i in 0..4u32 {
        let p = poster(format!("poster {i}").as_bytes(), "watch", i64::from(i));
        let out = store
            .record(
                &p,
                &classification(i64::from(i)),
                &[event("t/poster", i), event("t/last", i)],
            )
            .unwrap();
        seqs.extend(out.outbox_seqs);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(store.outbox_backlog().unwrap(), 8);

    let pending = store.pending_outbox(100).unwrap();
    let got: Vec<i64> = pending.iter().map(|r| r.seq).collect();
    assert_eq!(got, seqs);
    assert_eq!(pending[0].topic, "t/poster");
    assert_eq!(pending[1].topic, "t/last");
    assert_eq!(pending[2].payload, b"{\"n\":1}");
    assert_eq!(pending[0].qos, Qos::AtLeastOnce);

    assert!(store.mark_published(seqs[0]).unwrap());
    assert!(
        !store.mark_published(seqs[0]).unwrap(),
        "a second ack is a no-op"
    );
    store.bump_attempts(seqs[1]).unwrap();
    store.bump_attempts(seqs[1]).unwrap();

    let pending = store.pending_outbox(3).unwrap();
    assert_eq!(
        pending.iter().map(|r| r.seq).collect::<Vec<_>>(),
        seqs[1..4]
    );
    assert_eq!(pending[0].attempts, 2);
    let after = store.pending_outbox_after(seqs[3], 100).unwrap();
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[4..]);
    assert_eq!(store.outbox_backlog().unwrap(), 7);
}

#[test]
fn unpublished_outbox_survives_a_crash_and_reopen() {
    let (_dir, path, store) = open_temp();
    let out = store
        .record(
            &poster(b"before the crash", "http", 1),
            &classification(1),
            &[event("t/poster", 7)],
        )
        .unwrap();
    // No clean close: the connection is leaked, the WAL is never checkpointed.
    std::mem::forget(store);

    let reopened = Store::open(&path).unwrap();
    let pending = reopened.pending_outbox(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].seq, out.outbox_seqs[0]);
    assert_eq!(pending[0].payload, b"{\"n\":7}");
    assert_eq!(reopened.outbox_backlog().unwrap(), 1);
}

#[test]
fn retention_never_deletes_unpublished_outbox_rows() {
    let (_dir, _path, store) = open_temp();
    let day = 24 * 60 * 60 * 1000;
    let now = now_ms();
    let old = now - 60 * day;
    // Old sightings whose event was published (a) or not (b), a recent one
    // (c), and an old one a person labelled (d).
    let a = store
        .record(
            &poster(b"a", "http", old),
            &classification(old),
            &[event("t", 1)],
        )
        .unwrap();
    let b = store
        .record(
            &poster(b"b", "http", old),
            &classification(old),
            &[event("t", 2)],
        )
        .unwrap();
    let c = store
        .record(
            &poster(b"c", "http", now),
            &classification(now),
            &[event("t", 3)],
        )
        .unwrap();
    let labelled = poster(b"d", "http", old);
    store.record(&labelled, &classification(old), &[]).unwrap();
    store
        .add_feedback(&NewFeedback {
            poster_id: labelled.id.clone(),
            genres: vec!["Comedy".into()],
            by: Some("ana".into()),
            created_at_ms: old,
            via: "dashboard",
            kept: false,
        })
        .unwrap();
    store.mark_published(a.outbox_seqs[0]).unwrap();

    let report = store.apply_retention(Some(30), None, now).unwrap();
    assert_eq!(
        report,
        RetentionReport {
            classifications: 3,
            posters: 2, // the labelled poster stays
            outbox: 0,  // a's was published just now
        }
    );
    assert_eq!(store.feedback_for(&labelled.id).unwrap().len(), 1);

    // A month on, everything is old; only the unpublished rows stay.
    let report = store
        .apply_retention(Some(30), None, now + 31 * day)
        .unwrap();
    assert_eq!(
        report,
        RetentionReport {
            classifications: 1,
            posters: 1,
            outbox: 1,
        }
    );
    assert_eq!(count(&store, "posters"), 1);
    let pending: Vec<i64> = store
        .pending_outbox(10)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(pending, [b.outbox_seqs[0], c.outbox_seqs[0]]);
}

#[test]
fn retention_by_rows_keeps_the_newest() {
    let (_dir, _path, store) = open_temp();
    for i in 0..5 {
        let out = store
            .record(
                &poster(format!("p{i}").as_bytes(), "http", i),
                &classification(i),
                &[event("t", 0)],
            )
            .unwrap();
        if i < 4 {
            store.mark_published(out.outbox_seqs[0]).unwrap();
        }
    }
    let report = store.apply_retention(None, Some(2), now_ms()).unwrap();
    assert_eq!(report.classifications, 3);
    assert_eq!(report.posters, 3);
    assert_eq!(
        report.outbox, 2,
        "4 published, 2 kept; the unpublished one stays"
    );
    let kept: Vec<i64> = store
        .recent(10, 0, &HistoryFilter::default())
        .unwrap()
        .iter()
        .map(|c| c.created_at_ms)
        .collect();
    assert_eq!(kept, [4, 3]);
    assert_eq!(store.outbox_backlog().unwrap(), 1);
    assert_eq!(
        store.apply_retention(None, None, now_ms()).unwrap(),
        RetentionReport::default()
    );
}

#[test]
fn migrations_are_idempotent_on_reopen() {
    let (_dir, path, store) = open_temp();
    assert_eq!(store.schema_version().unwrap(), schema::LATEST as i64);
    store
        .record(
            &poster(b"x", "http", 1),
            &classification(1),
            &[event("t", 1)],
        )
        .unwrap();
    drop(store);
    for _ in 0..2 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::LATEST as i64);
        assert_eq!(count(&store, "posters"), 1);
        assert_eq!(store.outbox_backlog().unwrap(), 1);
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path, store) = open_temp();
    store.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(store);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path().join("absent/marquee.db")).unwrap_err();
    assert!(err.to_string().contains("store.path"), "{err}");
}

#[test]
fn history_filters() {
    let store = Store::open_in_memory().unwrap();
    store
        .record(&poster(b"1", "http", 10), &classification(10), &[])
        .unwrap();
    store
        .record(&poster(b"2", "mqtt", 20), &classification(20), &[])
        .unwrap();
    let mut other = classification(30);
    other.prediction.tags = vec!["Comedy".into()];
    store
        .record(&poster(b"3", "http", 30), &other, &[])
        .unwrap();

    let times = |filter: HistoryFilter, limit, offset| -> Vec<i64> {
        store
            .recent(limit, offset, &filter)
            .unwrap()
            .iter()
            .map(|c| c.created_at_ms)
            .collect()
    };
    assert_eq!(times(HistoryFilter::default(), 10, 0), [30, 20, 10]);
    assert_eq!(times(HistoryFilter::default(), 1, 1), [20]);
    let http = HistoryFilter {
        source: Some("http".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(times(http, 10, 0), [30, 10]);
    let horror = HistoryFilter {
        tag: Some("Horror".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(times(horror, 10, 0), [20, 10]);
    let window = HistoryFilter {
        since_ms: Some(15),
        until_ms: Some(30),
        ..HistoryFilter::default()
    };
    assert_eq!(times(window, 10, 0), [20]);
    let one = HistoryFilter {
        poster_id: Some(PosterId::of_bytes(b"3")),
        model: Some("efficientnet-lite0/int8".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(times(one, 10, 0), [30]);

    assert_eq!(store.posters_since(20).unwrap(), 2);
    assert_eq!(store.posters_today().unwrap(), 0, "all three are from 1970");
    store
        .record(
            &poster(b"1", "http", now_ms()),
            &classification(now_ms()),
            &[],
        )
        .unwrap();
    assert_eq!(store.posters_today().unwrap(), 1);
}

#[test]
fn feedback_round_trip() {
    let store = Store::open_in_memory().unwrap();
    let p = poster(b"f", "http", 1);
    let unknown = NewFeedback {
        poster_id: p.id.clone(),
        genres: vec!["Drama".into()],
        by: None,
        created_at_ms: 2,
        via: "mqtt",
        kept: false,
    };
    assert!(matches!(
        store.add_feedback(&unknown),
        Err(StoreError::UnknownPoster(_))
    ));
    store.record(&p, &classification(1), &[]).unwrap();
    let first = store.add_feedback(&unknown).unwrap();
    let second = store
        .add_feedback(&NewFeedback {
            by: Some("ana".into()),
            created_at_ms: 3,
            ..unknown.clone()
        })
        .unwrap();
    let all = store.list_feedback(10, 0).unwrap();
    assert_eq!(
        all.iter().map(|f| f.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(all[0].by.as_deref(), Some("ana"));
    assert_eq!(all[1].genres, ["Drama"]);
    assert_eq!(all[1].via, "mqtt");
    assert!(!all[1].kept);
    assert_eq!(store.feedback_for(&p.id).unwrap().len(), 2);
    assert_eq!(
        store.latest_tags(&p.id).unwrap(),
        Some(classification(1).prediction.tags.clone())
    );
    assert_eq!(
        store.latest_tags(&PosterId::of_bytes(b"none")).unwrap(),
        None
    );
    // The column's CHECK keeps `via` to the known sources.
    assert!(store
        .add_feedback(&NewFeedback {
            via: "smoke signals",
            ..unknown.clone()
        })
        .is_err());
}

#[test]
fn poster_ids_are_checked() {
    let id = PosterId::of_bytes(b"abc");
    assert_eq!(
        id.as_str(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(PosterId::parse(id.as_str()).unwrap(), id);
    for bad in ["", "abc", &id.as_str().to_uppercase(), &format!("{id}0")] {
        assert!(PosterId::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_handle_runs_jobs_on_the_writer_thread() {
    let (_dir, path, store) = open_temp();
    let (handle, writer) = StoreHandle::spawn(store, 4).unwrap();
    let p = poster(b"via handle", "http", 1);
    let outcome = handle
        .call(move |s| s.record(&p, &classification(1), &[event("t", 1)]))
        .await
        .unwrap();
    assert!(outcome.new_poster);

    // A plain thread (a classify worker) uses the blocking form.
    let worker = handle.clone();
    let backlog = std::thread::spawn(move || worker.blocking_call(|s| s.outbox_backlog()))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(backlog, 1);

    drop(handle);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Store::open(&path).unwrap().outbox_backlog().unwrap(), 1);
}

#[test]
fn counts_by_day_matches_a_per_row_local_date() {
    let store = Store::open_in_memory().unwrap();
    let day = 24 * 3600 * 1000;
    let base = now_ms() - 5 * day;
    // Around each local midnight and across several days, with two genres
    // on some sightings and one on others.
    let times: Vec<i64> = (0..40).map(|i| base + i * (day / 7) + 1_000).collect();
    for (i, &at) in times.iter().enumerate() {
        let mut c = classification(at);
        if i % 3 == 0 {
            c.prediction.tags = vec!["Comedy".into()];
        }
        let bytes = format!("poster {i}");
        store
            .record(&poster(bytes.as_bytes(), "http", at), &c, &[])
            .unwrap();
    }
    let since = times[3];
    let got = store.counts_by_day(since).unwrap();

    // The reference: SQLite's own local date of each row.
    let mut expected: Vec<DayCounts> = Vec::new();
    for (i, &at) in times.iter().enumerate().filter(|(_, &t)| t >= since) {
        let date: String = store
            .conn
            .query_row(
                "SELECT date(?1 / 1000, 'unixepoch', 'localtime')",
                [at],
                |r| r.get(0),
            )
            .unwrap();
        if expected.last().map(|d| &d.day) != Some(&date) {
            expected.push(DayCounts {
                day: date,
                classifications: 0,
                tags: Vec::new(),
            });
        }
        let entry = expected.last_mut().unwrap();
        entry.classifications += 1;
        let tags: &[&str] = if i % 3 == 0 {
            &["Comedy"]
        } else {
            &["Horror", "Thriller"]
        };
        for tag in tags {
            match entry.tags.iter_mut().find(|(t, _)| t == tag) {
                Some((_, n)) => *n += 1,
                None => entry.tags.push((tag.to_string(), 1)),
            }
        }
    }
    for d in &mut expected {
        d.tags.sort();
    }
    assert_eq!(got, expected);
    assert!(got.len() >= 5, "the sightings span several days");
    assert!(store.counts_by_day(now_ms() + day).unwrap().is_empty());
}
