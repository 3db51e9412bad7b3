//! End to end in a real browser (headless Chromium through chromedriver):
//! log in, tag a drawn poster, see its genres, correct them, see the
//! accuracy page change, watch the live feed; a screenshot of every page is
//! kept under `target/screenshots/` (CI keeps them as artifacts).

use crate::common::closed_port_url;
use crate::common::daemon::{self, TestDaemon};
use crate::common::http::request;
use crate::common::webdriver::Browser;
use marquee::credentials::{hash_password, new_token};
use marquee::drawing::drawn_poster_jpeg;
use std::path::PathBuf;
use std::time::Duration;

const PASSWORD: &str = "poster-wall-42";

fn screenshots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tags_corrects_and_sees_accuracy_change() {
    let dir = tempfile::tempdir().unwrap();
    let (token, token_hash) = new_token().unwrap();
    let mut cfg = daemon::config(
        "browser-test",
        closed_port_url(),
        &dir.path().join("marquee.db"),
    );
    cfg.dashboard.password_hash = Some(hash_password(PASSWORD).unwrap());
    cfg.dashboard.api_token_sha256 = vec![token_hash];
    let mut running = TestDaemon::start(cfg).await;
    let base = format!("http://{}", running.addr);
    let bearer = format!("Bearer {token}");
    // Enough posters for the map and the charts, through the API.
    for seed in 100..112 {
        let reply = request(
            running.addr,
            "POST",
            "/api/v1/posters",
            &[("authorization", &bearer)],
            &drawn_poster_jpeg(seed, 200, 300),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    let shots = screenshots();
    let browser = Browser::start().await;

    // Not logged in: the login page.
    browser.goto(&format!("{base}/accuracy")).await;
    assert!(browser.current_url().await.contains("/login"));
    browser.screenshot(&shots.join("login.png")).await;
    browser.type_into("#password", "wrong-password").await;
    browser.click("form.card button[type=submit]").await;
    assert!(browser.text(".banner.bad").await.contains("Wrong password"));
    browser.type_into("#password", PASSWORD).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("#corrections").await;
    assert!(browser.current_url().await.ends_with("/accuracy"));
    assert_eq!(browser.text("#corrections").await, "0");

    // Tag a drawn poster: the file input, answered in place by the script.
    let poster = dir.path().join("drawn.jpg");
    std::fs::write(&poster, drawn_poster_jpeg(7, 224, 320)).unwrap();
    browser.goto(&format!("{base}/tag")).await;
    browser
        .type_into("#drop input[type=file]", poster.to_str().unwrap())
        .await;
    browser.find("#tag-result").await;
    let genres = browser.text("#tag-result").await;
    assert!(genres.contains("Genres"), "{genres}");
    let bars = browser
        .script("return document.querySelectorAll('#tag-result .bars .row').length")
        .await;
    assert_eq!(bars, 19);
    browser.screenshot(&shots.join("tag.png")).await;

    // Correct it: Horror and Mystery only.
    browser.click("#tag-result a[href^='/posters/']").await;
    browser.find("#feedback").await;
    browser
        .script("document.querySelectorAll('#feedback input[type=checkbox]').forEach(function(c){c.checked = (c.value === 'Horror' || c.value === 'Mystery');}); return true;")
        .await;
    browser.type_into("#by", "browser test").await;
    browser.click("#feedback button[type=submit]").await;
    assert!(browser.text("#saved").await.contains("Correction saved"));
    browser.screenshot(&shots.join("poster.png")).await;
    // Times are shown in the viewer's zone; the server's UTC stays on hover.
    let times = browser
        .script(
            "return Array.from(document.querySelectorAll('time[datetime]')).map(function(t){\
               var d = new Date(t.getAttribute('datetime'));\
               var p = function(n){return (n < 10 ? '0' : '') + n;};\
               var local = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());\
               return [t.textContent === local, /UTC$/.test(t.title), t.textContent !== t.title.replace(' UTC', '')];})",
        )
        .await;
    let times = times.as_array().unwrap();
    assert!(!times.is_empty(), "the poster page shows when it was seen");
    for t in times {
        // Shown locally (UTC+05:30 in the test browser), not as UTC.
        assert_eq!(t, &serde_json::json!([true, true, true]), "{times:?}");
    }

    // The accuracy page counts it.
    browser.goto(&format!("{base}/accuracy")).await;
    assert_eq!(browser.text("#corrections").await, "1");
    let table = browser.text("#per-genre").await;
    assert!(
        table.contains("Horror") && table.contains("Mystery"),
        "{table}"
    );
    browser.screenshot(&shots.join("accuracy.png")).await;

    // The live page gets new results without a reload.
    browser.goto(&format!("{base}/")).await;
    browser.find("#live-list").await;
    let before = browser
        .script("return document.querySelectorAll('#live-list > a').length")
        .await;
    let reply = request(
        running.addr,
        "POST",
        "/api/v1/posters",
        &[("authorization", &bearer)],
        &drawn_poster_jpeg(999, 200, 300),
    )
    .await;
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    browser
        .find(&format!("#live-list a[href='/posters/{id}']"))
        .await;
    let after = browser
        .script("return document.querySelectorAll('#live-list > a').length")
        .await;
    assert!(
        after.as_u64() > before.as_u64() || after == 24,
        "{before} -> {after}"
    );
    browser.screenshot(&shots.join("live.png")).await;

    // Every other page renders in the browser; keep a screenshot of each.
    for (page, marker) in [
        ("history", "div.grid"),
        ("insights", "svg.chart"),
        ("map", "svg.map"),
        ("impact", "#savings"),
        ("model", "#latency-p50"),
        ("cameras", "h1"),
    ] {
        browser.goto(&format!("{base}/{page}")).await;
        browser.find(marker).await;
        browser.screenshot(&shots.join(format!("{page}.png"))).await;
    }
    // The matrices' rotated column labels stay inside their chart (they
    // were cut at the right edge: "Thrille", "Famil").
    browser.goto(&format!("{base}/insights")).await;
    browser.find("svg.heat").await;
    let clipped = browser
        .script(
            "return Array.from(document.querySelectorAll('svg.heat')).map(function(svg){\
               var box = svg.getBoundingClientRect();\
               return Array.from(svg.querySelectorAll('text')).filter(function(t){\
                 var r = t.getBoundingClientRect();\
                 return r.right > box.right + 0.5 || r.left < box.left - 0.5 || r.top < box.top - 0.5;\
               }).map(function(t){return t.textContent;});})",
        )
        .await;
    let clipped = clipped.as_array().unwrap();
    assert!(!clipped.is_empty(), "the insights page draws a heatmap");
    for labels in clipped {
        assert_eq!(
            labels,
            &serde_json::json!([]),
            "labels cut at the chart's edge"
        );
    }
    let errors = browser
        .script("return performance.getEntriesByType('resource').filter(function(r){return r.responseStatus >= 400;}).length")
        .await;
    assert_eq!(errors, 0, "a page asset failed to load");

    browser.quit().await;
    running.stop(Duration::from_secs(30)).await;
}
