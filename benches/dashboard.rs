//! Dashboard benchmark: server time and page weight of every page with
//! 10,000 posters in the store (the issue's targets: under 100 ms server
//! time, under 200 KB a page). Not a test: run it and read the figures.
//!
//! ```sh
//! cargo bench --bench dashboard            # 10,000 posters
//! MARQUEE_BENCH_POSTERS=2000 cargo bench --bench dashboard
//! ```
//!
//! The store is filled with synthetic sightings (random scores and features,
//! 60 days, 300 corrections) on /dev/shm when it
//! exists, so filling it does not measure the disk. The daemon is the real
//! one (`app::start`), timed from a client on loopback: the figures are
//! server time plus a loopback round trip.
//!
//! Thumbnails are made the daemon's way from the first 64 posters of
//! `../shared/data/posters` when that folder is there (real posters weigh
//! more than drawn ones, which matters for the page weight); otherwise, or
//! with `MARQUEE_BENCH_DRAWN=1`, from drawn posters.

// Tests and benches may panic on what they did not expect: the house rule
// against unwrap/expect ([lints] in Cargo.toml) is for the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use marquee::app;
use marquee::config::Config;
use marquee::model::{GenreScore, Prediction};
use marquee::poster::{now_ms, PosterId};
use marquee::store::{NewClassification, NewFeedback, NewPoster, Store};
// The integration tests' HTTP client (one request per connection, chunked
// bodies decoded); the bench uses only `request`.
#[allow(dead_code)]
#[path = "../tests/it/common/http.rs"]
mod http;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const RUNS: usize = 15;
const DAY_MS: i64 = 86_400_000;

/// xorshift: deterministic without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn fill(path: &std::path::Path, labels: &[String], thresholds: &[f32], dim: usize, n: usize) {
    let store = Store::open(path).expect("open the bench store");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let thumbs = thumbnails();
    let now = now_ms();
    let sources = ["http", "watch", "mqtt", "camera:lobby"];
    for i in 0..n {
        let id = PosterId::of_bytes(format!("bench-poster-{i}").as_bytes());
        let at = now - ((n - i) as i64 * 60 * DAY_MS / n as i64);
        let mut scores: Vec<(usize, f32)> =
            (0..labels.len()).map(|g| (g, rng.unit().powi(3))).collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let genres: Vec<GenreScore> = scores
            .iter()
            .map(|&(g, s)| GenreScore {
                label: labels[g].clone(),
                score: s,
            })
            .collect();
        let tags = scores
            .iter()
            .filter(|&&(g, s)| s >= thresholds[g])
            .map(|&(g, _)| labels[g].clone())
            .collect();
        let cluster = (i % 5) as f32;
        let features: Vec<f32> = (0..dim)
            .map(|d| if d % 5 == cluster as usize { 1.5 } else { 0.2 } + rng.unit())
            .collect();
        let poster = NewPoster {
            id: id.clone(),
            source: sources[i % sources.len()].into(),
            seen_at_ms: at,
            size_bytes: 40_000,
            width: 224,
            height: 320,
            thumbnail: Some(thumbs[i % thumbs.len()].clone()),
            features: Some(features),
        };
        let classification = NewClassification {
            model: "efficientnet-lite0-int8".into(),
            prediction: Prediction {
                top3: genres[..3].to_vec(),
                genres,
                tags,
            },
            latency_ms: 30.0 + f64::from(rng.unit()) * 10.0,
            created_at_ms: at,
            shadow: None,
        };
        store
            .record(&poster, &classification, &[])
            .expect("record a bench poster");
        if i % (n / 300).max(1) == 0 {
            let truth = vec![labels[(rng.next() % 5) as usize].clone()];
            store
                .add_feedback(&NewFeedback {
                    poster_id: id,
                    genres: truth,
                    by: None,
                    created_at_ms: at + 1000,
                    via: "import",
                    kept: false,
                })
                .expect("record a correction");
        }
    }
}

/// Thumbnails of real posters when the data set is beside the project,
/// else of drawn ones.
fn thumbnails() -> Vec<Vec<u8>> {
    let posters = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/posters");
    let drawn = std::env::var_os("MARQUEE_BENCH_DRAWN").is_some();
    let mut files: Vec<_> = match std::fs::read_dir(&posters) {
        Ok(dir) if !drawn => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        _ => Vec::new(),
    };
    files.sort();
    let real: Vec<Vec<u8>> = files
        .iter()
        .take(64)
        .filter_map(|f| {
            let bytes = std::fs::read(f).ok()?;
            let img = marquee::vision::decode(&bytes, &Default::default()).ok()?;
            marquee::vision::thumbnail_jpeg(&img, marquee::classify::THUMBNAIL_SIDE).ok()
        })
        .collect();
    if !real.is_empty() {
        let mean = real.iter().map(Vec::len).sum::<usize>() / real.len();
        println!(
            "thumbnails: {} real posters from {} ({} bytes each on average)",
            real.len(),
            posters.display(),
            mean
        );
        return real;
    }
    println!(
        "thumbnails: drawn ({} absent or MARQUEE_BENCH_DRAWN set)",
        posters.display()
    );
    (0..8)
        .map(|s| {
            let img = marquee::drawing::drawn_poster(s, 112, 160);
            marquee::drawing::encode(&img, image::ImageFormat::Jpeg)
        })
        .collect()
}

/// `(status, bytes on the wire, decoded body)`, asking for gzip as every
/// browser does.
async fn get(addr: SocketAddr, path: &str) -> (u16, usize, Vec<u8>) {
    let reply = http::request(addr, "GET", path, &[("Accept-Encoding", "gzip")], b"").await;
    (reply.status, reply.body.len(), reply.decoded_body())
}

/// Every `src="..."` and `href="..."` asset a page loads.
fn assets(html: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for key in ["src=\"", "rel=\"stylesheet\" href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(key) {
            rest = &rest[at + key.len()..];
            if let Some(end) = rest.find('"') {
                found.insert(rest[..end].replace("&amp;", "&"));
            }
        }
    }
    found
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("MARQUEE_BENCH_POSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir")
    } else {
        tempfile::tempdir().expect("temp dir")
    };
    let db = dir.path().join("bench.db");
    let model_dir = marquee::model::default_model_dir();
    let classifier = marquee::model::Classifier::load(&model_dir, None).expect("load the model");
    let live = classifier.head();
    let head = &live.head;
    let labels = head.labels();
    let thresholds: Vec<f32> = head.genres.iter().map(|g| g.threshold).collect();
    let t = Instant::now();
    fill(&db, &labels, &thresholds, head.feature_dim, n);
    println!("filled {n} posters in {:.1} s", t.elapsed().as_secs_f64());
    drop(classifier);

    let mut cfg = Config::default();
    cfg.store.path = db;
    cfg.mqtt.url = "mqtt://127.0.0.1:1".into();
    cfg.mqtt.discovery = false;
    cfg.inference.threads = 1;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let shutdown = CancellationToken::new();
    let running = app::start(cfg, listener, shutdown.clone())
        .await
        .expect("start the daemon");
    let addr = running.addr;

    let t = Instant::now();
    let (status, _, _) = get(addr, "/api/v1/map").await;
    println!(
        "poster map first computation: {:.0} ms (status {status}; pages serve the cached map after)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let (_, _, history) = get(addr, "/api/v1/history?per_page=1").await;
    let first_id = serde_json::from_slice::<serde_json::Value>(&history)
        .ok()
        .and_then(|v| v["items"][0]["poster_id"].as_str().map(str::to_owned))
        .unwrap_or_default();

    let pages = [
        "/".to_owned(),
        "/tag".into(),
        "/history".into(),
        "/history?genre=Drama&min_confidence=0.5&page=3".into(),
        format!("/posters/{first_id}"),
        "/insights".into(),
        "/accuracy".into(),
        "/map".into(),
        "/impact".into(),
        "/model".into(),
        "/cameras".into(),
    ];
    println!(
        "\n{:<48} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "page", "p50 ms", "max ms", "status", "HTML KB", "sent KB"
    );
    let mut worst = 0.0f64;
    let mut heaviest = 0usize;
    for page in &pages {
        let _ = get(addr, page).await; // warm caches
        let mut times = Vec::with_capacity(RUNS);
        let mut body = Vec::new();
        let mut status = 0;
        let mut total = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let (s, sent, b) = get(addr, page).await;
            times.push(t.elapsed());
            status = s;
            total = sent;
            body = b;
        }
        times.sort();
        let html = String::from_utf8_lossy(&body).into_owned();
        for asset in assets(&html) {
            total += get(addr, &asset).await.1;
        }
        let p50 = times[RUNS / 2].as_secs_f64() * 1000.0;
        let max = times[RUNS - 1].as_secs_f64() * 1000.0;
        worst = worst.max(p50);
        heaviest = heaviest.max(total);
        println!(
            "{:<48} {:>8.1} {:>8.1} {:>8} {:>10.1} {:>10.1}",
            page,
            p50,
            max,
            status,
            body.len() as f64 / 1024.0,
            total as f64 / 1024.0
        );
    }
    for api in [
        "/api/v1/insights",
        "/api/v1/accuracy",
        "/api/v1/history",
        "/api/v1/status",
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let _ = get(addr, api).await;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{:<48} {:>8.1} {:>8.1}",
            api,
            times[RUNS / 2].as_secs_f64() * 1000.0,
            times[RUNS - 1].as_secs_f64() * 1000.0
        );
    }
    println!(
        "\nslowest page p50 {worst:.1} ms (target < 100 ms); heaviest page {:.1} KB sent with its assets, gzip where the server applies it (target < 200 KB)",
        heaviest as f64 / 1024.0
    );
    shutdown.cancel();
    let _ = running.wait().await;
}
