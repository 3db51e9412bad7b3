//! Corrections from every side (issue 11, item 1): the API (genres or
//! "kept as tagged"), the MQTT `feedback` topic, and bulk imports through
//! the API and `marquee feedback import`, all against the real daemon, a
//! real broker and a real SQLite file.

use crate::common::broker::{Broker, Subscriber};
use crate::common::daemon::Fixture;
use crate::common::http::{request, Reply};
use crate::common::{closed_port_url, eventually_async, marquee_command, metric};
use marquee::drawing::drawn_poster_jpeg;
use serde_json::{json, Value};
use std::time::Duration;

const DEVICE: &str = "fb";
const WAIT: Duration = Duration::from_secs(30);

type Daemon = Fixture;

impl Fixture {
    /// Upload a drawn poster; its event.
    async fn poster(&self, seed: u32) -> Value {
        let reply = self.upload(&drawn_poster_jpeg(seed, 240, 360)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    async fn post_json(&self, path: &str, body: &Value) -> Reply {
        request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }
}

fn tags(event: &Value) -> Vec<String> {
    serde_json::from_value(event["tags"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_genres_or_kept_as_tagged_and_explains_refusals() {
    let mut daemon = Daemon::start(DEVICE, closed_port_url(), |_| {}).await;
    let event = daemon.poster(801).await;
    let id = event["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/posters/{id}/feedback");

    let kept = daemon
        .post_json(&path, &json!({"kept": true, "by": "ana"}))
        .await;
    assert_eq!(kept.status, 201, "{}", kept.text());
    let kept = kept.json();
    assert_eq!(kept["kept"], true);
    assert_eq!(kept["via"], "api");
    assert_eq!(
        serde_json::from_value::<Vec<String>>(kept["genres"].clone()).unwrap(),
        tags(&event),
        "a confirmation stores the tags the poster has"
    );

    let corrected = daemon.post_json(&path, &json!({"genres": ["Drama"]})).await;
    assert_eq!(corrected.status, 201, "{}", corrected.text());
    assert_eq!(corrected.json()["kept"], false);

    for (body, status, says) in [
        (json!({"genres": ["Drama"], "kept": true}), 400, "not both"),
        (json!({}), 400, "at least one genre"),
        (json!({"genres": ["Western"]}), 400, "unknown genre"),
        (json!({"genre": ["Drama"]}), 400, "genre"),
    ] {
        let reply = daemon.post_json(&path, &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert!(
            reply.error_message().contains(says),
            "{body}: {}",
            reply.text()
        );
    }
    let unknown = format!("/api/v1/posters/{}/feedback", "ab".repeat(32));
    let reply = daemon.post_json(&unknown, &json!({"kept": true})).await;
    assert_eq!(reply.status, 404, "{}", reply.text());

    // The poster page says which were confirmations, and where from.
    let page = request(daemon.addr, "GET", &format!("/posters/{id}"), &[], b"")
        .await
        .text();
    assert!(page.contains("kept as tagged"), "{page}");
    assert!(page.contains("Tags are right"), "{page}");
    daemon.stop().await;
    let stored = daemon.store().feedback_for(&id.parse().unwrap()).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[0].kept && stored[0].via == "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_on_the_mqtt_topic_are_stored_and_bad_ones_counted() {
    let broker = Broker::launch();
    let mut daemon = Daemon::start(DEVICE, broker.url(), |_| {}).await;
    let event = daemon.poster(802).await;
    let id = event["id"].as_str().unwrap().to_owned();
    eventually_async("the MQTT inputs are subscribed", WAIT, || async {
        metric(&daemon.metrics().await, "marquee_mqtt_inputs_subscribed") == Some(1.0)
    })
    .await;

    let topic = format!("marquee/{DEVICE}/feedback");
    let sub = Subscriber::connect(broker.port(), &[&format!("marquee/{DEVICE}/poster")]).await;
    for bad in [
        b"not json at all".to_vec(),
        json!({"id": "ab".repeat(32), "genres": ["Drama"]})
            .to_string()
            .into_bytes(),
        json!({"id": id, "genres": ["Western"]})
            .to_string()
            .into_bytes(),
        vec![b' '; 64 * 1024],
    ] {
        sub.publish(&topic, bad, false).await;
    }
    let good = json!({"id": id, "genres": ["Comedy", "Drama"], "by": "pipeline"});
    sub.publish(&topic, good.to_string(), false).await;
    let kept = json!({"id": id, "kept": true});
    sub.publish(&topic, kept.to_string(), false).await;

    let stored = "marquee_feedback_total{via=\"mqtt\",outcome=\"stored\"}";
    let refused = "marquee_feedback_total{via=\"mqtt\",outcome=\"refused\"}";
    eventually_async("every correction was judged", WAIT, || async {
        let text = daemon.metrics().await;
        metric(&text, stored) == Some(2.0) && metric(&text, refused) == Some(4.0)
    })
    .await;
    // The daemon goes on: the link is up and uploads are answered.
    daemon.poster(803).await;
    assert_eq!(
        metric(&daemon.metrics().await, "marquee_mqtt_inputs_subscribed"),
        Some(1.0)
    );
    daemon.stop().await;

    // Two messages are handled at once: stored in either order.
    let all = daemon.store().feedback_for(&id.parse().unwrap()).unwrap();
    assert_eq!(all.len(), 2);
    let (kept, corrected): (Vec<_>, Vec<_>) = all.iter().partition(|f| f.kept);
    assert_eq!((kept.len(), corrected.len()), (1, 1), "{all:?}");
    assert_eq!(corrected[0].genres, ["Comedy", "Drama"]);
    assert_eq!(corrected[0].by.as_deref(), Some("pipeline"));
    assert!(all.iter().all(|f| f.via == "mqtt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_imports_through_the_api_and_the_cli_match_posters_by_id() {
    let mut daemon = Daemon::start(DEVICE, closed_port_url(), |_| {}).await;
    let a = daemon.poster(804).await["id"].as_str().unwrap().to_owned();
    let b = daemon.poster(805).await["id"].as_str().unwrap().to_owned();
    let unknown = "cd".repeat(32);
    let csv = format!(
        "id,genres,by\n{a},Drama|Comedy,ops\n{b},kept\n{a},Western\n{unknown},Drama\nnot a row\n"
    );
    let reply = request(
        daemon.addr,
        "POST",
        "/api/v1/feedback/import",
        &[("Content-Type", "text/csv")],
        csv.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["kept"], 1, "{report}");
    let refused: Vec<u64> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(refused, [4, 5, 6], "{report}");
    assert!(report["refused"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("not in the history"));
    daemon.stop().await;

    // Offline, into the same store file.
    let file = daemon.dir.path().join("more.csv");
    std::fs::write(&file, format!("{b},Horror\n{a},Nope\n")).unwrap();
    let out = marquee_command()
        .args(["feedback", "import"])
        .arg(&file)
        .arg("--db")
        .arg(&daemon.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "some rows refused: {stdout}{stderr}"
    );
    assert!(stdout.contains("1 corrections imported"), "{stdout}");
    assert!(
        stderr.contains("line 2") && stderr.contains("unknown genre"),
        "{stderr}"
    );

    let store = daemon.store();
    let of_b = store.feedback_for(&b.parse().unwrap()).unwrap();
    assert_eq!(of_b.len(), 2);
    assert!(of_b[0].kept);
    assert_eq!(of_b[1].genres, ["Horror"]);
    assert!(of_b.iter().all(|f| f.via == "import"));
    let missing = marquee_command()
        .args(["feedback", "import"])
        .arg(&file)
        .arg("--db")
        .arg(daemon.dir.path().join("nope.db"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--db"));
}
