//! The attacks of the hardening issue (14), one regression test each, aimed
//! only at 127.0.0.1 with every loop bounded. They check what the daemon
//! answers and keeps, never how fast: the figures (RSS, latency) are in
//! `scripts/bench-hostile.py`.

use crate::common::daemon::{self, Fixture, TestDaemon};
use crate::common::http::{multipart, request, request_from, Reply};
use crate::common::{closed_port_url, serve_command};
use marquee::config::Config;
use marquee::credentials::hash_password;
use marquee::drawing::{drawn_poster_jpeg, png_bomb};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

type Daemon = Fixture;

impl Fixture {
    async fn with_password(tweak: impl FnOnce(&mut Config)) -> Self {
        let hash = hash_password(PASSWORD).unwrap();
        Self::start("hard", closed_port_url(), |cfg| {
            cfg.dashboard.password_hash = Some(hash);
            tweak(cfg);
        })
        .await
    }

    async fn login_from(&self, from: IpAddr, password: &str, next: &str) -> Reply {
        let body = serde_urlencoded::to_string([("password", password), ("next", next)]).unwrap();
        request_from(from, self.addr, "POST", "/login", &[FORM], body.as_bytes()).await
    }

    fn posters(&self) -> u64 {
        self.store().posters_since(0).unwrap()
    }
}

fn loopback(a: u8, b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, a, b))
}

/// Headers only, declaring `length` bytes of body that never come; the
/// answer the daemon gives without them within `within`, or `None` when it
/// accepted the request and waits for the body.
async fn answer_before_body(addr: SocketAddr, head: &str, within: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

// ---------------------------------------------------------------- login --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_logins_gets_no_more_tries_and_the_owner_still_gets_in() {
    let daemon = Daemon::with_password(|_| {}).await;
    // 40 at once from one address: recorded before they are checked, so
    // at most the allowed failures reach the password check.
    let one = loopback(0, 2);
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let addr = daemon.addr;
            tokio::spawn(async move {
                let body = format!("password=guess{i}&next=%2F");
                request_from(one, addr, "POST", "/login", &[FORM], body.as_bytes())
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in burst {
        statuses.push(task.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked as u32 <= marquee::web::auth::lockout::MAX_FAILURES,
        "{checked} wrong passwords checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        daemon.login_from(one, PASSWORD, "/").await.status,
        429,
        "the attacking address waits, even with the right password"
    );

    // 2 each from 40 other addresses at once: nobody is let in, the owner
    // at yet another address is not locked out by them.
    let spray: Vec<_> = (0..80u8)
        .map(|i| {
            let addr = daemon.addr;
            let from = loopback(1, 1 + i / 2);
            tokio::spawn(async move {
                request_from(from, addr, "POST", "/login", &[FORM], b"password=nope")
                    .await
                    .status
            })
        })
        .collect();
    for task in spray {
        let status = task.await.unwrap();
        assert!([401, 429, 503].contains(&status), "{status}");
    }
    let owner = daemon
        .login_from(loopback(0, 3), PASSWORD, "/history")
        .await;
    assert_eq!(owner.status, 303, "{}", owner.text());
    assert_eq!(owner.header("location"), Some("/history"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_is_small_and_a_locked_address_is_answered_before_its_body() {
    let daemon = Daemon::with_password(|_| {}).await;
    let padded = format!("password=x&next=%2F&pad={}", "a".repeat(8 * 1024));
    let big = request(daemon.addr, "POST", "/login", &[FORM], padded.as_bytes()).await;
    assert_eq!(big.status, 413, "{}", big.text());

    let from = loopback(0, 4);
    for _ in 0..marquee::web::auth::lockout::MAX_FAILURES + 1 {
        daemon.login_from(from, "nope", "/").await;
    }
    // 19 MB announced, none sent: the lockout answers from the headers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(daemon.addr).await.unwrap();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 19000000\r\n\r\n",
        daemon.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_login_next_goes_only_to_a_path_here() {
    let daemon = Daemon::with_password(|_| {}).await;
    for (i, (next, expected)) in [
        ("/accuracy?page=2", "/accuracy?page=2"),
        ("/\t/evil.example", "/"),
        ("/\n", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/ /evil.example", "/"),
    ]
    .into_iter()
    .enumerate()
    {
        // A fresh address each time: the right password, never locked out.
        let reply = daemon
            .login_from(loopback(2, i as u8 + 1), PASSWORD, next)
            .await;
        assert_eq!(reply.status, 303, "{next:?}: {}", reply.text());
        assert_eq!(reply.header("location"), Some(expected), "{next:?}");
    }
}

// ------------------------------------------------------- the HTTP server --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_does_not_stop_health_or_uploads() {
    let daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.http.max_connections = 16
    })
    .await;
    // Three times the cap, each with half a request that never ends.
    let mut held = Vec::new();
    for _ in 0..48 {
        let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
        let _ = stream
            .write_all(b"POST /api/v1/posters HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await;
        held.push(stream);
    }
    let health = tokio::time::timeout(WAIT, daemon.get("/healthz", &[]))
        .await
        .expect("/healthz answers during the slowloris");
    assert_eq!(health.status, 200);
    let jpeg = drawn_poster_jpeg(71, 240, 360);
    let upload = tokio::time::timeout(WAIT, daemon.upload(&jpeg))
        .await
        .expect("an upload answers during the slowloris");
    assert_eq!(upload.status, 200, "{}", upload.text());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_memory_left_hears_503_before_its_body_is_sent() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.http.max_upload_bytes = 1024 * 1024;
        cfg.http.upload_memory_mb = 1;
    })
    .await;
    // The first announces a whole megabyte and holds its reservation.
    let head = |len: usize| {
        format!(
            "POST /api/v1/posters HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // Reservations happen in the handlers, so the two requests race: when
    // the second gets in first (accepted, waiting for its body), both let
    // go and try again, a bounded number of times.
    let mut held = None;
    for _ in 0..20 {
        let mut first = TcpStream::connect(daemon.addr).await.unwrap();
        first.write_all(head(1024 * 1024).as_bytes()).await.unwrap();
        first.write_all(&[0xFF, 0xD8]).await.unwrap();
        let second =
            answer_before_body(daemon.addr, &head(512 * 1024), Duration::from_secs(2)).await;
        if let Some(second) = second.filter(|s| s.starts_with("HTTP/1.1 503")) {
            held = Some((first, second));
            break;
        }
    }
    let (first, second) = held.expect("an upload refused while another holds the memory");
    assert!(
        second.to_ascii_lowercase().contains("retry-after"),
        "{second}"
    );
    drop(first);
    // Its memory comes back once the first is gone.
    let jpeg = drawn_poster_jpeg(72, 240, 360);
    crate::common::eventually_async("an upload fits again", WAIT, || async {
        daemon.upload(&jpeg).await.status == 200
    })
    .await;
    daemon.stop().await;
}

// -------------------------------------------------------------- decoding --

/// `jpeg` with its frame header claiming `side` x `side` pixels.
fn lying_header(mut jpeg: Vec<u8>, side: u16) -> Vec<u8> {
    let sof = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .expect("a frame header");
    // FF Cx, length (2), precision (1), height (2), width (2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    jpeg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_pixels_a_lying_header_and_a_cut_jpeg_are_refused_and_nothing_is_stored() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.inference.max_pixels = 4_000_000
    })
    .await;

    let bomb = png_bomb(4096, 4096);
    let reply = daemon.upload(&bomb).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.error_message().contains("inference.max_pixels"),
        "{}",
        reply.text()
    );

    let jpeg = drawn_poster_jpeg(73, 240, 360);
    let reply = daemon.upload(&lying_header(jpeg.clone(), 1900)).await;
    assert_eq!(reply.status, 422, "{}", reply.text());

    let mut cut = jpeg[..jpeg.len() * 6 / 10].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    let reply = daemon.upload(&cut).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.error_message().contains("truncated"),
        "{}",
        reply.text()
    );

    // The same through the multipart form.
    let (content_type, body) = multipart("file", &cut);
    let reply = request(
        daemon.addr,
        "POST",
        "/api/v1/posters",
        &[("Content-Type", &content_type)],
        &body,
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text());

    assert_eq!(daemon.posters(), 0, "nothing refused was stored");
    assert_eq!(daemon.upload(&jpeg).await.status, 200, "the daemon goes on");
    assert_eq!(daemon.posters(), 1);
    daemon.stop().await;
}

// ---------------------------------------------------- the dashboard's door --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_answers_only_to_its_own_names() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.http.allowed_hosts = vec!["marquee.lan".into()]
    })
    .await;
    let jpeg = drawn_poster_jpeg(74, 240, 360);
    // A page elsewhere whose name now resolves to this device.
    let foreign = [
        ("Host", "attacker.example"),
        ("Origin", "http://attacker.example"),
        ("Content-Type", "image/jpeg"),
    ];
    let reply = request(daemon.addr, "POST", "/api/v1/posters", &foreign, &jpeg).await;
    assert_eq!(reply.status, 421, "{}", reply.text());
    let reply = request(
        daemon.addr,
        "POST",
        "/api/v1/posters/0123456789abcdef/feedback",
        &foreign,
        br#"{"genres":["Drama"]}"#,
    )
    .await;
    assert_eq!(reply.status, 421, "{}", reply.text());
    assert_eq!(
        daemon
            .get("/", &[("Host", "attacker.example:80")])
            .await
            .status,
        421
    );
    assert_eq!(daemon.posters(), 0);

    // Its own names: loopback, and the configured one.
    for host in [
        "localhost",
        "127.0.0.1:8080",
        "marquee.lan",
        "MARQUEE.LAN:80",
    ] {
        let reply = request(
            daemon.addr,
            "POST",
            "/api/v1/posters",
            &[("Host", host), ("Content-Type", "image/jpeg")],
            &jpeg,
        )
        .await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.text());
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_listening_beyond_loopback_makes_itself_a_password() {
    // Where it listens is what decides; the test still binds 127.0.0.1.
    let mut daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.http.listen = "0.0.0.0:8080".parse().unwrap()
    })
    .await;
    let password_file = daemon
        .dir
        .path()
        .join(marquee::app::first_start::PASSWORD_FILE);
    let hash_file = daemon.dir.path().join(marquee::app::first_start::HASH_FILE);
    use std::os::unix::fs::PermissionsExt as _;
    for file in [&password_file, &hash_file] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is private: {mode:o}", file.display());
    }
    let jpeg = drawn_poster_jpeg(75, 240, 360);
    assert_eq!(
        daemon.upload(&jpeg).await.status,
        401,
        "no anonymous changes"
    );
    let password = std::fs::read_to_string(&password_file).unwrap();
    let login = daemon
        .login_from(loopback(0, 1), password.trim(), "/")
        .await;
    assert_eq!(login.status, 303, "{}", login.text());
    let hash = std::fs::read_to_string(&hash_file).unwrap();
    daemon.stop().await;

    // A second start keeps the same password.
    let cfg_db = daemon.db.clone();
    let mut cfg = daemon::config("hard", closed_port_url(), &cfg_db);
    cfg.http.listen = "0.0.0.0:8080".parse().unwrap();
    let mut again = TestDaemon::start(cfg).await;
    assert_eq!(std::fs::read_to_string(&hash_file).unwrap(), hash);
    again.stop(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_daemon_writes_no_password() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |_| {}).await;
    assert!(!daemon
        .dir
        .path()
        .join(marquee::app::first_start::PASSWORD_FILE)
        .exists());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set_and_health_stays_open() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |cfg| {
        cfg.http.metrics_token = Some("s3cret-token".into())
    })
    .await;
    let bare = daemon.get("/metrics", &[]).await;
    assert_eq!(bare.status, 401, "{}", bare.text());
    let wrong = daemon
        .get("/metrics", &[("Authorization", "Bearer nope")])
        .await;
    assert_eq!(wrong.status, 401);
    let right = daemon
        .get("/metrics", &[("Authorization", "Bearer s3cret-token")])
        .await;
    assert_eq!(right.status, 200);
    assert!(right.text().contains("marquee_"));
    assert_eq!(daemon.get("/healthz", &[]).await.status, 200);
    assert_eq!(daemon.get("/readyz", &[]).await.status, 200);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_number_past_the_end_of_arithmetic_is_a_400() {
    let mut daemon = Daemon::start("hard", closed_port_url(), |_| {}).await;
    for path in [
        "/api/v1/history?page=18446744073709551615",
        "/api/v1/history?page=18446744073709551615&per_page=200",
        "/history?page=18446744073709551615",
    ] {
        let reply = daemon.get(path, &[]).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
    }
    assert_eq!(daemon.get("/api/v1/history?page=2", &[]).await.status, 200);
    daemon.stop().await;
}

// ------------------------------------------------------------------ logs --

/// A watched file named to forge log lines: the journal gets one escaped line.
#[test]
fn names_from_outside_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let watch = dir.path().join("in");
    std::fs::create_dir(&watch).unwrap();
    let forged = "poster\nFORGED marquee: admin logged in \u{1b}[31mred.jpg";
    std::fs::write(watch.join(forged), b"not an image at all").unwrap();
    let ready = dir.path().join("ready");
    let mut child = serve_command(&dir.path().join("m.db"), &ready)
        .env("MARQUEE__MQTT__URL", format!("\"{}\"", closed_port_url()))
        .env("MARQUEE__WATCH__DIR", format!("\"{}\"", watch.display()))
        .env("MARQUEE__WATCH__SETTLE_MS", "100")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            if lines_tx.send(std::mem::take(&mut line)).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    while !seen
        .iter()
        .any(|l| String::from_utf8_lossy(l).contains("watched file refused"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text: Vec<String> = seen
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let refused = text
        .iter()
        .find(|l| l.contains("watched file refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", text.join("")));
    assert!(
        refused.contains("FORGED"),
        "the name is in the line: {refused}"
    );
    assert!(
        !text.iter().any(|l| l.starts_with("FORGED")),
        "a forged line: {}",
        text.join("")
    );
    assert!(
        !seen.iter().flatten().any(|b| *b == 0x1b),
        "a raw escape code reached the log"
    );
}
