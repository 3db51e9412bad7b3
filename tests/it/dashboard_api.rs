//! The dashboard and its JSON API on the real daemon (`app::start` on
//! 127.0.0.1:0, a temp SQLite file, the shipped model): every page renders,
//! the API answers what the pages show, access rules hold, bad input is
//! refused clearly.

use crate::common::closed_port_url;
use crate::common::daemon::{self, TestDaemon};
use crate::common::http::{multipart, request, Reply};
use marquee::config::Config;
use marquee::credentials::{hash_password, new_token};
use marquee::drawing::drawn_poster_jpeg;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "poster-wall-42";
/// Every page, as linked from the navigation.
const PAGES: [&str; 9] = [
    "/",
    "/tag",
    "/history",
    "/insights",
    "/accuracy",
    "/map",
    "/impact",
    "/model",
    "/cameras",
];
/// Page weight budget (the target), HTML alone here; the page-weight
/// benchmark adds assets and thumbnails.
const PAGE_BUDGET: usize = 200 * 1024;

struct Daemon {
    addr: SocketAddr,
    inner: TestDaemon,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = daemon::config(
            "dash-test",
            closed_port_url(),
            &dir.path().join("marquee.db"),
        );
        tweak(&mut cfg);
        let inner = TestDaemon::start(cfg).await;
        Self {
            addr: inner.addr,
            inner,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.addr, "GET", path, headers, b"").await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.addr, "POST", path, headers, body).await
    }

    async fn upload(&self, seed: u32, headers: &[(&str, &str)]) -> Reply {
        self.post(
            "/api/v1/posters",
            headers,
            &drawn_poster_jpeg(seed, 200, 300),
        )
        .await
    }

    async fn stop(mut self) {
        self.inner.stop(WAIT).await;
    }
}

fn ok_json(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_the_api_agrees_with_it() {
    let daemon = Daemon::start(|_| {}).await;
    // Empty store: every page still renders.
    for page in PAGES {
        let reply = daemon.get(page, &[]).await;
        assert_eq!(reply.status, 200, "{page}: {}", reply.text());
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        assert!(reply.text().contains("<nav>"), "{page}");
    }

    let mut ids = Vec::new();
    for seed in 0..10 {
        ids.push(
            ok_json(&daemon.upload(seed, &[]).await)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let history = ok_json(&daemon.get("/api/v1/history?per_page=4", &[]).await);
    assert_eq!(history["total"], 10);
    assert_eq!(history["pages"], 3);
    assert_eq!(history["items"].as_array().unwrap().len(), 4);
    // Newest first.
    assert_eq!(history["items"][0]["poster_id"], ids[9].as_str());
    let page3 = ok_json(&daemon.get("/api/v1/history?per_page=4&page=3", &[]).await);
    assert_eq!(page3["items"].as_array().unwrap().len(), 2);
    let by_source = ok_json(&daemon.get("/api/v1/history?source=mqtt", &[]).await);
    assert_eq!(by_source["total"], 0);
    let confident = ok_json(
        &daemon
            .get("/api/v1/history?min_confidence=0&max_confidence=1", &[])
            .await,
    );
    assert_eq!(confident["total"], 10);
    let today = ok_json(&daemon.get("/api/v1/history?from=2000-01-01", &[]).await);
    assert_eq!(today["total"], 10);
    for bad in [
        "/api/v1/history?genre=Western",
        "/api/v1/history?from=yesterday",
        "/api/v1/history?min_confidence=2",
    ] {
        let reply = daemon.get(bad, &[]).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert!(!reply.error_message().is_empty());
    }

    let id = &ids[0];
    let poster = ok_json(&daemon.get(&format!("/api/v1/posters/{id}"), &[]).await);
    assert_eq!(poster["poster"]["id"], id.as_str());
    assert_eq!(poster["latest"]["genres"].as_array().unwrap().len(), 19);
    assert_eq!(poster["thresholds"].as_array().unwrap().len(), 19);
    let thumb = daemon
        .get(&format!("/api/v1/posters/{id}/thumbnail"), &[])
        .await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    assert!(image::load_from_memory(&thumb.body).is_ok());
    assert_eq!(
        daemon
            .get(&format!("/api/v1/posters/{}", "0".repeat(64)), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        daemon.get("/api/v1/posters/not-an-id", &[]).await.status,
        400
    );

    // Corrections move the accuracy figures.
    let before = ok_json(&daemon.get("/api/v1/accuracy", &[]).await);
    assert_eq!(before["corrections"], 0);
    let body = json!({"genres": ["Horror", "Thriller"], "by": "tester"}).to_string();
    let saved = daemon
        .post(
            &format!("/api/v1/posters/{id}/feedback"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.text());
    assert_eq!(saved.json()["genres"], json!(["Horror", "Thriller"]));
    for (bad, status) in [
        (json!({"genres": ["Western"]}).to_string(), 400),
        (json!({"genres": []}).to_string(), 400),
        ("not json".to_owned(), 400),
    ] {
        let reply = daemon
            .post(
                &format!("/api/v1/posters/{id}/feedback"),
                &[("content-type", "application/json")],
                bad.as_bytes(),
            )
            .await;
        assert_eq!(reply.status, status, "{bad}: {}", reply.text());
    }
    let unknown = daemon
        .post(
            &format!("/api/v1/posters/{}/feedback", "a".repeat(64)),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let after = ok_json(&daemon.get("/api/v1/accuracy", &[]).await);
    assert_eq!(after["corrections"], 1);
    let horror = after["per_genre"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["label"] == "Horror")
        .unwrap()
        .clone();
    assert_eq!(horror["support"], 1);
    assert!(after["warning"]
        .as_str()
        .unwrap()
        .contains("Only 1 corrected poster"));

    let insights = ok_json(&daemon.get("/api/v1/insights", &[]).await);
    assert_eq!(insights["posters"], 10);
    let binned: u64 = insights["confidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 10);
    assert_eq!(insights["drift"]["status"], "not enough data");
    assert_eq!(insights["drift"]["genres"].as_array().unwrap().len(), 19);

    let map = ok_json(&daemon.get("/api/v1/map", &[]).await);
    assert_eq!(map["posters"], 10);
    assert_eq!(map["points"].as_array().unwrap().len(), 10);
    assert_eq!(map["clusters"].as_array().unwrap().len(), 2);
    // Page weight: three samples a cluster, the most unusual outliers, and
    // every outlier only when asked for.
    let mut samples = 0;
    for cluster in map["clusters"].as_array().unwrap() {
        let shown = cluster["samples"].as_array().unwrap().len();
        assert_eq!(shown, cluster["size"].as_u64().unwrap().min(3) as usize);
        samples += shown;
    }
    let outliers = map["outliers"].as_u64().unwrap() as usize;
    let thumbs = |page: &Reply| page.text().matches("/thumbnail\"").count();
    let page = daemon.get("/map", &[]).await;
    assert_eq!(thumbs(&page), samples + outliers.min(6));
    let all = daemon.get("/map?outliers=all", &[]).await;
    assert_eq!(all.status, 200);
    assert_eq!(thumbs(&all), samples + outliers);

    let impact = ok_json(
        &daemon
            .get(
                "/api/v1/impact?posters_per_year=1000&manual_cost=2&correction_cost=1&threshold=0",
                &[],
            )
            .await,
    );
    assert_eq!(impact["auto_share"], 1.0);
    assert_eq!(impact["cost_manual_only"], 2000.0);
    assert_eq!(
        daemon.get("/api/v1/impact?threshold=3", &[]).await.status,
        400
    );

    let model = ok_json(&daemon.get("/api/v1/model", &[]).await);
    assert_eq!(model["labels"].as_array().unwrap().len(), 19);
    assert_eq!(model["latency"]["samples"], 10);
    let status = ok_json(&daemon.get("/api/v1/status", &[]).await);
    assert_eq!(status["totals"]["posters"], 10);
    assert_eq!(status["broker_connected"], false);
    assert_eq!(status["outbox_backlog"], 10);
    assert_eq!(status["access"], "open");

    // Every page again, with data, within the page-weight budget.
    for page in PAGES
        .iter()
        .copied()
        .chain([format!("/posters/{id}").as_str()])
    {
        let reply = daemon.get(page, &[]).await;
        assert_eq!(reply.status, 200, "{page}");
        assert!(
            reply.body.len() < PAGE_BUDGET,
            "{page}: {} bytes",
            reply.body.len()
        );
    }
    let history_page = daemon.get("/history?genre=&source=http", &[]).await.text();
    assert!(
        history_page.contains("10 classifications match"),
        "{history_page}"
    );
    let poster_page = daemon.get(&format!("/posters/{id}"), &[]).await.text();
    assert!(poster_page.contains("Horror, Thriller"));

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_api_route() {
    let daemon = Daemon::start(|_| {}).await;
    let doc = ok_json(&daemon.get("/api/openapi.json", &[]).await);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/posters", "post"),
        ("/api/v1/status", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/history", "get"),
        ("/api/v1/posters/{id}", "get"),
        ("/api/v1/posters/{id}/thumbnail", "get"),
        ("/api/v1/posters/{id}/feedback", "post"),
        ("/api/v1/insights", "get"),
        ("/api/v1/accuracy", "get"),
        ("/api/v1/map", "get"),
        ("/api/v1/impact", "get"),
        ("/api/v1/model", "get"),
        ("/api/v1/cameras", "get"),
        ("/api/v1/capture", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // Every documented GET route without parameters is really served.
    for (path, item) in paths {
        if item.get("get").is_some() && !path.contains('{') && path != "/api/v1/events" {
            let reply = daemon.get(path, &[]).await;
            assert!(
                reply.status == 200 || reply.status == 409,
                "{path}: {}",
                reply.status
            );
        }
    }
    assert!(doc["components"]["schemas"]["PosterEvent"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    daemon.stop().await;
}

/// The `marquee_session` cookie from a login answer.
fn session_cookie(reply: &Reply) -> String {
    let set = reply.header("set-cookie").expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" content=\"").expect("csrf meta") + 21;
    page[start..start + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_csrf_and_cross_site_rules() {
    let (token, token_hash) = new_token().unwrap();
    let hash = hash_password(PASSWORD).unwrap();
    let daemon = Daemon::start(|cfg| {
        cfg.dashboard.password_hash = Some(hash);
        cfg.dashboard.api_token_sha256 = vec![token_hash];
    })
    .await;
    let bearer = format!("Bearer {token}");

    // Missing or wrong token: 401 with a challenge; pages redirect to the login.
    let missing = daemon.get("/api/v1/status", &[]).await;
    assert_eq!(missing.status, 401);
    assert!(missing
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert!(missing.error_message().contains("Bearer"));
    assert_eq!(
        daemon
            .get("/api/v1/status", &[("authorization", "Bearer wrong")])
            .await
            .status,
        401
    );
    assert_eq!(daemon.upload(1, &[]).await.status, 401);
    let page = daemon.get("/history?page=2", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        Some("/login?next=%2Fhistory%3Fpage%3D2")
    );
    // Public: the login form, the assets, health.
    assert_eq!(daemon.get("/login", &[]).await.status, 200);
    assert_eq!(daemon.get("/assets/app.css", &[]).await.status, 200);
    assert_eq!(daemon.get("/healthz", &[]).await.status, 200);

    // A token works for the API.
    let uploaded = daemon.upload(1, &[("authorization", &bearer)]).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let id = uploaded.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ok_json(
            &daemon
                .get("/api/v1/status", &[("authorization", &bearer)])
                .await
        )["access"],
        "password"
    );

    // Wrong password: 401 and no cookie.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = daemon
        .post("/login", &form, b"password=nope&next=%2F")
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains("Wrong password"));

    // Right password: a session; pages render with a CSRF token.
    let body = format!("password={PASSWORD}&next=%2Faccuracy");
    let login = daemon.post("/login", &form, body.as_bytes()).await;
    assert_eq!(login.status, 303, "{}", login.text());
    assert_eq!(login.header("location"), Some("/accuracy"));
    let cookie = session_cookie(&login);
    let live = daemon.get("/", &[("cookie", &cookie)]).await;
    assert_eq!(live.status, 200);
    let csrf = csrf_of(&live.text());

    // A forged form (no token, or a wrong one) is refused; the real one works.
    let feedback = format!("/api/v1/posters/{id}/feedback");
    let json_body = json!({"genres": ["Comedy"]}).to_string();
    let json_type = ("content-type", "application/json");
    let forged = daemon
        .post(
            &feedback,
            &[("cookie", &cookie), json_type],
            json_body.as_bytes(),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert!(forged.error_message().contains("security token"));
    let wrong_token = daemon
        .post(
            &feedback,
            &[
                ("cookie", &cookie),
                json_type,
                ("x-csrf-token", &"0".repeat(64)),
            ],
            json_body.as_bytes(),
        )
        .await;
    assert_eq!(wrong_token.status, 403);
    let good = daemon
        .post(
            &feedback,
            &[("cookie", &cookie), json_type, ("x-csrf-token", &csrf)],
            json_body.as_bytes(),
        )
        .await;
    assert_eq!(good.status, 201, "{}", good.text());
    let page_form = format!("/posters/{id}");
    let forged_form = daemon
        .post(&page_form, &[("cookie", &cookie), form[0]], b"genre=Drama")
        .await;
    assert_eq!(forged_form.status, 403);
    let real_form = format!("csrf={csrf}&genre=Drama&genre=Romance");
    let saved = daemon
        .post(
            &page_form,
            &[("cookie", &cookie), form[0]],
            real_form.as_bytes(),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text());
    let poster = ok_json(
        &daemon
            .get(
                &format!("/api/v1/posters/{id}"),
                &[("authorization", &bearer)],
            )
            .await,
    );
    assert_eq!(poster["feedback"].as_array().unwrap().len(), 2);
    assert_eq!(poster["feedback"][1]["genres"], json!(["Drama", "Romance"]));

    // Another site's page cannot post, even with a valid token.
    let cross = daemon
        .post(
            &feedback,
            &[
                ("authorization", &bearer),
                json_type,
                ("origin", "http://evil.example"),
            ],
            json_body.as_bytes(),
        )
        .await;
    assert_eq!(cross.status, 403);
    assert!(cross.error_message().contains("cross-site"));
    let fetch_meta = daemon
        .post(
            &feedback,
            &[
                ("cookie", &cookie),
                json_type,
                ("x-csrf-token", &csrf),
                ("sec-fetch-site", "cross-site"),
            ],
            json_body.as_bytes(),
        )
        .await;
    assert_eq!(fetch_meta.status, 403);

    // Logging out ends the session.
    let out = daemon
        .post(
            "/logout",
            &[("cookie", &cookie), form[0]],
            format!("csrf={csrf}").as_bytes(),
        )
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(daemon.get("/", &[("cookie", &cookie)]).await.status, 303);

    // Repeated wrong passwords from one address: 429 with Retry-After.
    let mut last = 0;
    for _ in 0..6 {
        last = daemon.post("/login", &form, b"password=guess").await.status;
    }
    assert_eq!(last, 429);
    let locked = daemon.post("/login", &form, body.as_bytes()).await;
    assert_eq!(locked.status, 429, "even the right password waits");
    assert!(locked.header("retry-after").is_some());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_shows_everything_and_changes_nothing() {
    let hash = hash_password(PASSWORD).unwrap();
    let daemon = Daemon::start(|cfg| {
        cfg.dashboard.password_hash = Some(hash);
        cfg.dashboard.read_only_without_login = true;
    })
    .await;
    for page in PAGES {
        let reply = daemon.get(page, &[]).await;
        assert_eq!(reply.status, 200, "{page}");
        assert!(reply.text().contains("read-only"), "{page}");
    }
    assert_eq!(daemon.get("/api/v1/history", &[]).await.status, 200);
    let refused = daemon.upload(3, &[]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.error_message().contains("read-only"));
    let tag = daemon.get("/tag", &[]).await.text();
    assert!(tag.contains("log in"), "{tag}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tag_page_classifies_uploads_and_samples_and_refuses_bad_input() {
    let daemon = Daemon::start(|cfg| cfg.http.max_upload_bytes = 64 * 1024).await;
    let (content_type, body) = multipart("file", &drawn_poster_jpeg(5, 200, 300));
    let page = daemon
        .post("/tag", &[("content-type", &content_type)], &body)
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("id=\"tag-result\""));
    let fragment = daemon
        .post(
            "/tag",
            &[("content-type", &content_type), ("x-fragment", "1")],
            &body,
        )
        .await;
    assert!(
        fragment
            .text()
            .starts_with("<div class=\"card\" id=\"tag-result\""),
        "{}",
        fragment.text()
    );

    let sample = daemon
        .post(
            "/tag",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"sample=2",
        )
        .await;
    assert_eq!(sample.status, 200);
    assert!(sample.text().contains("tag-result"));
    let history = ok_json(&daemon.get("/api/v1/history?source=sample", &[]).await);
    assert_eq!(history["total"], 1);
    assert_eq!(
        daemon
            .get("/samples/0.jpg", &[])
            .await
            .header("content-type"),
        Some("image/jpeg")
    );

    // Oversize, not an image, a truncated JPEG, an unknown sample: clear errors.
    let (ct, big) = multipart("file", &vec![0xAB; 200 * 1024]);
    let oversize = daemon.post("/tag", &[("content-type", &ct)], &big).await;
    assert_eq!(oversize.status, 413, "{}", oversize.text());
    assert!(oversize.text().contains("limit"));
    let (ct, text) = multipart("file", b"hello, not an image");
    assert_eq!(
        daemon
            .post("/tag", &[("content-type", &ct)], &text)
            .await
            .status,
        415
    );
    let jpeg = drawn_poster_jpeg(6, 200, 300);
    let (ct, cut) = multipart("file", &jpeg[..jpeg.len() / 2]);
    let truncated = daemon.post("/tag", &[("content-type", &ct)], &cut).await;
    assert_eq!(truncated.status, 422, "{}", truncated.text());
    let unknown = daemon
        .post(
            "/tag",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"sample=99",
        )
        .await;
    assert_eq!(unknown.status, 400);
    // The daemon goes on.
    assert_eq!(daemon.upload(7, &[]).await.status, 200);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_api_are_gzipped_for_clients_that_ask_but_images_are_not() {
    let daemon = Daemon::start(|_| {}).await;
    let id = ok_json(&daemon.upload(5, &[]).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gzip = [("Accept-Encoding", "gzip")];
    for path in [
        "/history".to_owned(),
        "/model".into(),
        "/api/v1/model".into(),
        "/assets/app.css".into(),
        format!("/posters/{id}"),
    ] {
        let plain = daemon.get(&path, &[]).await;
        let packed = daemon.get(&path, &gzip).await;
        assert_eq!((plain.status, packed.status), (200, 200), "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(packed.header("content-encoding"), Some("gzip"), "{path}");
        assert!(packed.body.len() < plain.body.len(), "{path}");
        assert_eq!(packed.decoded_body(), plain.body, "{path}");
    }
    // JPEG is compressed already: sent as it is.
    let thumb = daemon
        .get(&format!("/api/v1/posters/{id}/thumbnail"), &gzip)
        .await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    assert_eq!(thumb.header("content-encoding"), None);
    assert!(thumb.body.starts_with(&[0xff, 0xd8]));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_streams_each_stored_result() {
    let daemon = Daemon::start(|_| {}).await;
    let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
    let head = format!(
        // A browser always offers gzip; the events must still come plain.
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Accept-Encoding: gzip, deflate, br\r\n\r\n",
        daemon.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Wait for the response head so the subscription exists before the upload.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(head.contains("text/event-stream"));
    assert!(!head.contains("content-encoding"), "{head}");
    let uploaded = ok_json(&daemon.upload(11, &[]).await);
    let id = uploaded["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(at) = text.find("event: poster") {
            let data = text[at..]
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("");
            if data.contains(id) {
                let event: Value = serde_json::from_str(data).unwrap();
                assert_eq!(event["source"], "http");
                assert_eq!(event["genres"].as_array().unwrap().len(), 19);
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no poster event in: {text}"
        );
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stream);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_page_shows_status_and_captures_behind_the_login() {
    let hash = hash_password(PASSWORD).unwrap();
    let daemon = Daemon::start(|cfg| {
        cfg.dashboard.password_hash = Some(hash);
        cfg.cameras = vec![marquee::config::CameraConfig {
            name: "wall".into(),
            source: "synthetic:demo".into(),
            ..Default::default()
        }];
    })
    .await;
    // Capturing needs a login like every change.
    assert_eq!(daemon.post("/api/v1/capture", &[], b"").await.status, 401);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = format!("password={PASSWORD}&next=%2Fcameras");
    let cookie = session_cookie(&daemon.post("/login", &form, body.as_bytes()).await);
    let page = daemon.get("/cameras", &[("cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("data-camera=\"wall\""), "{text}");
    let csrf = csrf_of(&text);
    let list = ok_json(&daemon.get("/api/v1/cameras", &[("cookie", &cookie)]).await);
    assert_eq!(list["cameras"][0]["name"], "wall");
    // The Capture button, once the camera delivers frames.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = ok_json(&daemon.get("/api/v1/cameras", &[("cookie", &cookie)]).await);
        if list["cameras"][0]["online"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "camera never online: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forged = daemon
        .post(
            "/cameras/capture",
            &[("cookie", &cookie), form[0]],
            b"camera=wall",
        )
        .await;
    assert_eq!(forged.status, 403);
    let captured = daemon
        .post(
            "/cameras/capture",
            &[("cookie", &cookie), form[0]],
            format!("csrf={csrf}&camera=wall").as_bytes(),
        )
        .await;
    assert_eq!(captured.status, 200, "{}", captured.text());
    assert!(captured.text().contains("tag-result"));
    let unknown = daemon
        .post(
            "/cameras/capture",
            &[("cookie", &cookie), form[0]],
            format!("csrf={csrf}&camera=door").as_bytes(),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("no camera named"));
    let history = ok_json(
        &daemon
            .get("/api/v1/history?source=camera:wall", &[("cookie", &cookie)])
            .await,
    );
    assert!(history["total"].as_u64().unwrap() >= 1);
    daemon.stop().await;
}
