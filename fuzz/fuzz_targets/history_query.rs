//! `GET /history?...` and `GET /api/v1/history?...`: the query string
//! through axum's `Query` extractor into `HistoryQuery`, checked against
//! the model's genres and paged (`history_window`), then run against an
//! in-memory store with a few rows (`history_rows`). Also `/posters/{id}`'s
//! id parsing. A bad query is a 400, never a panic.

#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use marquee::model::head::GenreHead;
use marquee::model::{GenreScore, Prediction};
use marquee::poster::PosterId;
use marquee::store::{NewClassification, NewPoster, Store};
use marquee::web::data::{self, HistoryQuery, MAX_PER_PAGE};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

fn labels() -> &'static [String] {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    LABELS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/genre-head.json");
        GenreHead::load(&path)
            .expect("models/genre-head.json")
            .labels()
    })
}

/// A store with a few classifications, so the rows are read and decoded.
fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = Store::open_in_memory().expect("an in-memory store");
        let labels = labels();
        for (i, source) in ["http", "mqtt", "camera:desk", "watch"].iter().enumerate() {
            let at = 1_700_000_000_000 + i as i64 * 86_400_000;
            let genres: Vec<GenreScore> = labels
                .iter()
                .enumerate()
                .map(|(g, label)| GenreScore {
                    label: label.clone(),
                    score: ((g + i) % 10) as f32 / 10.0,
                })
                .collect();
            let poster = NewPoster {
                id: PosterId::of_bytes(source.as_bytes()),
                source: (*source).to_owned(),
                seen_at_ms: at,
                size_bytes: 1000,
                width: 300,
                height: 450,
                thumbnail: None,
                features: None,
            };
            let classification = NewClassification {
                model: "efficientnet-lite0/int8".to_owned(),
                prediction: Prediction {
                    tags: vec![genres[0].label.clone()],
                    top3: genres[..3].to_vec(),
                    genres,
                },
                latency_ms: 10.0,
                created_at_ms: at,
            };
            store
                .record(&poster, &classification, &[])
                .expect("a row in the fuzz store");
        }
        Mutex::new(store)
    })
}

fuzz_target!(|data: &[u8]| {
    let labels = labels();
    let text = String::from_utf8_lossy(data);
    let _ = data::parse_id(&text);

    // What the server hands the extractor: a request target that parsed.
    let from_uri = Uri::try_from(format!("/api/v1/history?{text}"))
        .ok()
        .and_then(|uri| Query::<HistoryQuery>::try_from_uri(&uri).ok())
        .map(|Query(query)| query);
    // And the decoding underneath it, on the raw bytes.
    let from_bytes = serde_urlencoded::from_bytes::<HistoryQuery>(data).ok();

    for query in [from_uri, from_bytes].into_iter().flatten() {
        let Ok(window) = data::history_window(query, labels) else {
            continue;
        };
        assert!((1..=MAX_PER_PAGE).contains(&window.per_page));
        assert!(window.page >= 1);
        assert_eq!(window.offset, (window.page - 1) * window.per_page);
        assert!(i64::try_from(window.offset).is_ok());
        let store = store().lock().unwrap_or_else(|p| p.into_inner());
        if let Ok((items, total, _sources)) = data::history_rows(&store, &window) {
            assert!(items.len() <= window.per_page);
            assert!(items.len() as u64 <= total);
            let _pages = (total as usize).div_ceil(window.per_page).max(1);
        }
        // The pager's links: the query written back must read back.
        let link = serde_urlencoded::to_string(&window.query).expect("a query string");
        let back = serde_urlencoded::from_str::<HistoryQuery>(&link);
        assert!(
            back.is_ok(),
            "the pager's link `{link}` does not parse: {back:?}"
        );
    }
});
