//! The learning loop (issue 11) end to end, through the real daemon, a real
//! broker and a real SQLite file: corrections by the API, MQTT and a bulk
//! import; a retrain; the candidate with its figures and its shadow scores;
//! promotion (the next event names the new head and carries its tags);
//! rollback; a restart keeps the active head; export and import, with the
//! refusals of a head that does not fit. Drawn posters, corrected to one
//! genre, stand in for a collection: small, but the new head's tags differ.

use crate::common::broker::{Broker, Subscriber};
use crate::common::daemon::{config, Fixture, TestDaemon};
use crate::common::http::{request, Reply};
use crate::common::{eventually_async, marquee_command, metric};
use marquee::drawing::drawn_poster_jpeg;
use serde_json::{json, Value};
use std::time::Duration;

const DEVICE: &str = "learn";
const WAIT: Duration = Duration::from_secs(30);
/// A retrain of the shipped head on a debug build, with the base posters.
const RETRAIN_WAIT: Duration = Duration::from_secs(300);
/// Corrected posters: a third each by the API, MQTT and a CSV import.
const CORRECTED: u32 = 36;

async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8], kind: &str) -> Reply {
    request(addr, "POST", path, &[("Content-Type", kind)], body).await
}

async fn upload(addr: std::net::SocketAddr, jpeg: &[u8]) -> Value {
    let reply = request(addr, "POST", "/api/v1/posters", &[], jpeg).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let reply = request(addr, "GET", path, &[], b"").await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

/// Upload `count` drawn posters from `first_seed` and correct them all
/// to `genres` (`A|B`) with one CSV import.
async fn corrected_posters(addr: std::net::SocketAddr, first_seed: u32, count: u32, genres: &str) {
    let mut csv = String::from("id,genres\n");
    for i in 0..count {
        let event = upload(addr, &drawn_poster_jpeg(first_seed + i, 240, 360)).await;
        csv.push_str(&format!("{},{genres}\n", event["id"].as_str().unwrap()));
    }
    let imported = post(addr, "/api/v1/feedback/import", csv.as_bytes(), "text/csv").await;
    assert_eq!(imported.status, 200, "{}", imported.text());
}

fn tags(event: &Value) -> Vec<String> {
    serde_json::from_value(event["tags"].clone()).unwrap()
}

/// The candidate's shadow tags for a poster, read from the store file.
fn shadow_tags(db: &std::path::Path, poster: &str, head: i64) -> Option<Vec<String>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT tags FROM shadow WHERE poster_id = ?1 AND head_id = ?2",
        rusqlite::params![poster, head],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .map(|t| serde_json::from_str(&t).unwrap())
}

async fn retrain(addr: std::net::SocketAddr) -> i64 {
    let started = post(addr, "/api/v1/model/retrain", b"", "application/json").await;
    assert_eq!(started.status, 202, "{}", started.text());
    assert_eq!(started.json()["state"], "running");
    let again = post(addr, "/api/v1/model/retrain", b"", "application/json").await;
    assert_eq!(again.status, 409, "one retrain at a time: {}", again.text());
    let deadline = tokio::time::Instant::now() + RETRAIN_WAIT;
    let status = loop {
        let status = get_json(addr, "/api/v1/model/retrain").await;
        if status["state"] != "running" {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retrain did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["corrections"], CORRECTED);
    status["head_id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_teach_a_candidate_that_is_shadowed_promoted_and_rolled_back() {
    let broker = Broker::launch();
    let mut daemon = Fixture::start(DEVICE, broker.url(), |cfg| cfg.learning.threads = 2).await;
    let addr = daemon.addr;
    let model_topic = format!("marquee/{DEVICE}/model");
    let sub = Subscriber::connect(broker.port(), &[&model_topic]).await;
    eventually_async("the MQTT inputs are subscribed", WAIT, || async {
        metric(&daemon.metrics().await, "marquee_mqtt_inputs_subscribed") == Some(1.0)
    })
    .await;

    // The shipped head is registered and active; its name has no version.
    let heads = get_json(addr, "/api/v1/model/heads").await;
    let shipped = &heads.as_array().unwrap()[0];
    assert_eq!(shipped["origin"], "shipped");
    assert_eq!(shipped["state"], "active");
    let shipped_id = shipped["id"].as_i64().unwrap();
    let base_name = get_json(addr, "/api/v1/model").await["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!base_name.contains("+head"), "{base_name}");

    // A genre the shipped model does not know, added by the operator.
    let bad = post(
        addr,
        "/api/v1/model/genres",
        br#"{"label": "A|B"}"#,
        "application/json",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let added = post(
        addr,
        "/api/v1/model/genres",
        br#"{"label": "Anime"}"#,
        "application/json",
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(added.json()[0]["examples"], 0);

    // Corrections from every side: every corrected poster is a Horror
    // poster, and all but every fourth an anime.
    let mut csv = String::from("id,genres\n");
    for i in 0..CORRECTED {
        let event = upload(addr, &drawn_poster_jpeg(2000 + i, 240, 360)).await;
        let id = event["id"].as_str().unwrap().to_owned();
        let genres: &[&str] = if i % 4 == 3 {
            &["Horror"]
        } else {
            &["Horror", "Anime"]
        };
        match i % 3 {
            0 => {
                let reply = post(
                    addr,
                    &format!("/api/v1/posters/{id}/feedback"),
                    json!({ "genres": genres }).to_string().as_bytes(),
                    "application/json",
                )
                .await;
                assert_eq!(reply.status, 201, "{}", reply.text());
            }
            1 => {
                let body = json!({"id": id, "genres": genres, "by": "pipeline"});
                sub.publish(
                    &format!("marquee/{DEVICE}/feedback"),
                    body.to_string(),
                    false,
                )
                .await;
            }
            _ => csv.push_str(&format!("{id},{}\n", genres.join("|"))),
        }
    }
    let imported = post(addr, "/api/v1/feedback/import", csv.as_bytes(), "text/csv").await;
    assert_eq!(imported.status, 200, "{}", imported.text());
    let store = daemon.store();
    eventually_async("every correction stored", WAIT, || async {
        store.corrected_posters().unwrap() == u64::from(CORRECTED)
    })
    .await;

    let progress = get_json(addr, "/api/v1/model/genres").await;
    assert_eq!(progress[0]["examples"], CORRECTED / 4 * 3, "{progress}");
    assert_eq!(progress[0]["learned"], false);

    // Retrain: a candidate with its held-out figures, announced on MQTT.
    let candidate = retrain(addr).await;
    let heads = get_json(addr, "/api/v1/model/heads").await;
    let row = heads
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == candidate)
        .unwrap()
        .clone();
    assert_eq!(row["state"], "candidate");
    assert_eq!(row["origin"], "retrain");
    assert_eq!(row["parent"], shipped_id);
    assert_eq!(row["corrections"], CORRECTED);
    assert_eq!(
        row["labels"].as_array().unwrap().last().unwrap(),
        "Anime",
        "the added genre is learned"
    );
    assert!(row["metrics"]["posters"].is_u64(), "{row}");
    assert!(row["metrics"]["seconds"].is_f64(), "{row}");
    let mut sub = sub;
    let mut announced = Value::Null;
    for _ in 0..5 {
        announced = sub.expect(&model_topic, WAIT).await.json();
        if announced["candidate"]["id"] == candidate {
            break;
        }
    }
    assert_eq!(announced["candidate"]["id"], candidate, "{announced}");
    assert_eq!(announced["active"]["id"], shipped_id);
    let late = Subscriber::first_message(broker.port(), &model_topic, WAIT).await;
    assert!(
        late.retain,
        "the model state is retained for late subscribers"
    );
    crate::publish::assert_valid(&crate::publish::schema("model-state.schema.json"), &late);
    assert_eq!(late.json()["candidate"]["id"], candidate);

    // Shadow: a new poster is scored by both; only the active head publishes.
    let probe = drawn_poster_jpeg(4242, 240, 360);
    let before = upload(addr, &probe).await;
    assert_eq!(before["model"], base_name.as_str());
    let probe_id = before["id"].as_str().unwrap().to_owned();
    let shadow = shadow_tags(&daemon.db, &probe_id, candidate).expect("a shadow row");
    let compare = get_json(addr, "/api/v1/model/compare").await;
    assert_eq!(compare["candidate_id"], candidate);
    assert!(
        compare["shadow"]["posters"].as_u64().unwrap() >= 1,
        "{compare}"
    );
    assert!(compare["held_out"]["held_out"].is_u64(), "{compare}");

    // Promote (forced if the small held-out set says it is worse).
    let path = format!("/api/v1/model/heads/{candidate}/promote");
    let mut promoted = post(addr, &path, b"{}", "application/json").await;
    if promoted.status == 409 {
        assert!(
            promoted.error_message().contains("force"),
            "{}",
            promoted.text()
        );
        promoted = post(addr, &path, br#"{"force": true}"#, "application/json").await;
    }
    assert_eq!(promoted.status, 200, "{}", promoted.text());
    assert_eq!(promoted.json()["state"], "active");
    let new_name = format!("{base_name}+head-{candidate}");
    let after = upload(addr, &probe).await;
    assert_eq!(
        after["model"],
        new_name.as_str(),
        "the event names the head"
    );
    assert_eq!(tags(&after), shadow, "the tags are the new head's");
    assert!(
        after["genres"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["label"] == "Anime"),
        "the learned genre is scored like the others: {after}"
    );
    let filtered = request(addr, "GET", "/api/v1/history?genre=Anime", &[], b"").await;
    assert_eq!(filtered.status, 200, "{}", filtered.text());
    assert_eq!(
        get_json(addr, "/api/v1/model/genres").await[0]["learned"],
        true
    );
    assert_eq!(
        get_json(addr, "/api/v1/model").await["name"],
        new_name.as_str()
    );

    // Roll back to the shipped head: its tags again, no restart.
    let back = post(
        addr,
        &format!("/api/v1/model/heads/{shipped_id}/promote"),
        b"",
        "application/json",
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.text());
    let rolled = upload(addr, &probe).await;
    assert_eq!(rolled["model"], base_name.as_str());
    assert_eq!(tags(&rolled), tags(&before));

    // Forward again, then a restart keeps it.
    let forward = post(addr, &path, b"", "application/json").await;
    assert_eq!(
        forward.status,
        200,
        "a retired head needs no force: {}",
        forward.text()
    );
    daemon.inner.stop(WAIT).await;
    let mut cfg = config(DEVICE, broker.url(), &daemon.db);
    cfg.learning.threads = 2;
    let mut restarted = TestDaemon::start(cfg).await;
    let again = upload(restarted.addr, &probe).await;
    assert_eq!(
        again["model"],
        new_name.as_str(),
        "the active head survives a restart"
    );
    assert_eq!(tags(&again), shadow);

    // Export, then the refusals of a head that does not fit; nothing changes.
    let exported = request(
        restarted.addr,
        "GET",
        &format!("/api/v1/model/heads/{candidate}/export"),
        &[],
        b"",
    )
    .await;
    assert_eq!(exported.status, 200);
    let file = exported.json();
    assert_eq!(file["format"], "marquee-head/1");
    let count = get_json(restarted.addr, "/api/v1/model/heads")
        .await
        .as_array()
        .unwrap()
        .len();
    let tampered = |f: &dyn Fn(&mut Value)| {
        let mut v = file.clone();
        f(&mut v);
        v.to_string()
    };
    for (body, says) in [
        (tampered(&|v| v["feature_dim"] = json!(1280)), "features"),
        (tampered(&|v| v["labels"][0] = json!("Western")), "genres"),
        (
            // Same weights, other text: the checksum no longer matches.
            tampered(&|v| {
                let head = v["head"]
                    .as_str()
                    .unwrap()
                    .replacen("\"format\":1", "\"format\": 1", 1);
                v["head"] = json!(head);
            }),
            "checksum",
        ),
        (
            tampered(&|v| v["backbone_sha256"] = json!("0".repeat(64))),
            "backbone",
        ),
        (
            "{\"not\": \"a head\"}".to_string(),
            "not a Marquee head file",
        ),
    ] {
        let reply = post(
            restarted.addr,
            "/api/v1/model/heads/import",
            body.as_bytes(),
            "application/json",
        )
        .await;
        assert_eq!(reply.status, 422, "{says}: {}", reply.text());
        assert!(
            reply.error_message().contains(says),
            "{says}: {}",
            reply.text()
        );
    }
    let after_refusals = get_json(restarted.addr, "/api/v1/model/heads").await;
    assert_eq!(
        after_refusals.as_array().unwrap().len(),
        count,
        "nothing changed"
    );
    let imported = post(
        restarted.addr,
        "/api/v1/model/heads/import",
        file.to_string().as_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(imported.status, 201, "{}", imported.text());
    assert_eq!(imported.json()["state"], "candidate");
    assert_eq!(imported.json()["origin"], "import");
    restarted.stop(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_retrains_lists_exports_and_imports_on_a_store() {
    let mut daemon = Fixture::start("learn-cli", crate::common::closed_port_url(), |_| {}).await;
    corrected_posters(daemon.addr, 3000, CORRECTED, "Comedy|Romance").await;
    daemon.stop().await;
    let db = daemon.db.to_str().unwrap().to_owned();

    let out = marquee_command()
        .args(["retrain", "--db", &db, "--threads", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("candidate") && stdout.contains("retrain"),
        "{stdout}"
    );

    let file = daemon.dir.path().join("head.json");
    let list = marquee_command()
        .args(["head", "list", "--db", &db])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    let candidate = listed
        .lines()
        .find(|l| l.contains("candidate"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|h| h.strip_prefix("head-"))
        .unwrap()
        .to_owned();
    let export = marquee_command()
        .args(["head", "export", &candidate, "--db", &db, "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let promote = marquee_command()
        .args(["head", "promote", &candidate, "--force", "--db", &db])
        .output()
        .unwrap();
    assert!(
        promote.status.success(),
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );

    // A damaged file is refused with the reason, and the store is unchanged.
    let mut broken: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    broken["sha256"] = json!("f".repeat(64));
    std::fs::write(&file, broken.to_string()).unwrap();
    let refused = marquee_command()
        .args(["head", "import", "--db", &db])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("checksum"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let listed_after = marquee_command()
        .args(["head", "list", "--db", &db])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed_after.stdout)
            .lines()
            .count(),
        listed.lines().count()
    );
}

/// The Model page's retrain, compare and promote flow in headless Chromium,
/// with screenshots (`target/screenshots/model-*.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_page_retrains_compares_promotes_and_rolls_back_in_a_browser() {
    use crate::common::webdriver::Browser;
    let mut daemon = Fixture::start("learn-ui", crate::common::closed_port_url(), |cfg| {
        cfg.learning.threads = 2;
    })
    .await;
    corrected_posters(daemon.addr, 5000, CORRECTED, "Horror|Mystery").await;

    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots");
    let base = format!("http://{}", daemon.addr);
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/model")).await;
    assert!(!browser.text("#active-head").await.contains("+head"));
    browser.click("#retrain").await;
    // The page polls the job and reloads when the candidate exists.
    let deadline = tokio::time::Instant::now() + RETRAIN_WAIT;
    loop {
        let shown = browser
            .script("return document.getElementById('compare') !== null")
            .await;
        if shown == Value::Bool(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no candidate on the Model page"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A poster classified while the candidate exists is scored in the shadow.
    upload(daemon.addr, &drawn_poster_jpeg(5999, 240, 360)).await;
    browser.goto(&format!("{base}/model")).await;
    assert!(browser.text("#compare h2").await.contains("Candidate"));
    assert_eq!(browser.text("#shadow-posters").await, "1");
    browser
        .script("document.getElementById('compare').scrollIntoView()")
        .await;
    browser.screenshot(&shots.join("model-compare.png")).await;

    browser
        .click("#compare button.promote:not([data-force])")
        .await;
    // Refused as worse on a handful of held-out posters: the page says why
    // and offers the forced promotion.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let active = browser
            .script("var e = document.getElementById('active-head'); return e ? e.textContent : ''")
            .await;
        if active.as_str().is_some_and(|a| a.contains("+head")) {
            break;
        }
        let refused = browser
            .script(
                "var e = document.getElementById('promote-result'); return e ? e.textContent : ''",
            )
            .await;
        if refused.as_str().is_some_and(|r| r.contains("force")) {
            browser.screenshot(&shots.join("model-refused.png")).await;
            browser
                .click("#compare button.promote[data-force='1']")
                .await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the promotion did not happen"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    browser.screenshot(&shots.join("model-promoted.png")).await;
    let event = upload(daemon.addr, &drawn_poster_jpeg(5998, 240, 360)).await;
    assert!(
        event["model"].as_str().unwrap().contains("+head-"),
        "{event}"
    );

    // Roll back from the heads table (scrolled clear of the sticky bar).
    let rollback = "tr[data-state='retired'] button.promote";
    browser.find(rollback).await;
    browser
        .script(&format!(
            "document.querySelector(\"{rollback}\").scrollIntoView({{block: 'center'}})"
        ))
        .await;
    browser.click(rollback).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let active = browser
            .script("var e = document.getElementById('active-head'); return e ? e.textContent : ''")
            .await;
        if active
            .as_str()
            .is_some_and(|a| !a.is_empty() && !a.contains("+head"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollback did not happen"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    browser
        .screenshot(&shots.join("model-rolled-back.png"))
        .await;
    browser.quit().await;
    daemon.stop().await;
}

/// `[learning] retrain_after = N`: a retrain starts by itself once N
/// posters are corrected, and makes a candidate (never an active head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enough_new_corrections_start_a_retrain_by_themselves() {
    const AFTER: u32 = 12;
    let daemon = Fixture::start("learn-auto", crate::common::closed_port_url(), |cfg| {
        cfg.learning.retrain_after = AFTER;
        cfg.learning.threads = 1;
    })
    .await;
    corrected_posters(daemon.addr, 7000, AFTER, "Drama").await;
    // Counted every 30 s, then the retrain itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60) + RETRAIN_WAIT;
    let status = loop {
        let status = get_json(daemon.addr, "/api/v1/model/retrain").await;
        if status["state"] == "done" || status["state"] == "failed" {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic retrain: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["trigger"], "auto");
    let state = get_json(daemon.addr, "/api/v1/model/state").await;
    assert_eq!(state["candidate"]["id"], status["head_id"], "{state}");
    assert_eq!(
        state["active"]["origin"], "shipped",
        "never promoted by itself"
    );
}
