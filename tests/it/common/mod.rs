//! Helpers shared by the integration tests (`crate::common` in each module).

use marquee::publish::PublishHandle;
use std::time::Duration;

pub mod broker;
pub mod camera_server;
pub mod daemon;
pub mod http;
pub mod webdriver;

/// The `marquee` binary this build produced, without the `MARQUEE__*`
/// variables of the environment the tests run in: each test chooses every
/// configuration layer itself.
pub fn marquee_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marquee"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MARQUEE__") {
            command.env_remove(key);
        }
    }
    command
}

/// `marquee serve` as an operator runs it: the x86_64 profile, one
/// inference thread, a free port on 127.0.0.1 that it writes to `ready`
/// once it is ready, its store at `db`. The caller adds the broker and the
/// output handles.
pub fn serve_command(db: &std::path::Path, ready: &std::path::Path) -> std::process::Command {
    let mut command = marquee_command();
    command
        .args([
            "serve",
            "--board",
            "x86_64-generic",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--db")
        .arg(db)
        .arg("--ready-file")
        .arg(ready)
        .env("MARQUEE__INFERENCE__THREADS", "1");
    command
}

/// A 127.0.0.1 port nothing listens on right now (bound, read, released).
/// Only for what must be told a port before it listens (a broker process, a
/// gate opened later); anything the test binds itself binds port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `mqtt://127.0.0.1:<port>`.
pub fn mqtt_url(port: u16) -> String {
    format!("mqtt://127.0.0.1:{port}")
}

/// An MQTT URL on a port nothing listens on: a broker that is down.
pub fn closed_port_url() -> String {
    mqtt_url(free_port())
}

/// The value of one series in a Prometheus text page (`name{labels}` as
/// written), if it is there.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Poll `check` every 20 ms until it holds (for state that has no event to
/// wait on); panics after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a check that has to await (an HTTP request).
pub async fn eventually_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the publisher's broker connection is up (`true`) or down.
pub async fn wait_connected(publish: &PublishHandle, want: bool, within: Duration) {
    let mut rx = publish.watch_connected();
    tokio::time::timeout(within, rx.wait_for(|up| *up == want))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "broker connected={} never became {want} within {within:?}: {:?}",
                !want,
                publish.status()
            )
        })
        .expect("the publisher is running");
}

/// Wait for the broker's SUBACK of the publisher's inbound topics (ingest,
/// capture): a message published before it is not delivered to the daemon.
pub async fn wait_subscribed(publish: &PublishHandle, within: Duration) {
    let mut rx = publish.watch_subscribed();
    tokio::time::timeout(within, rx.wait_for(|up| *up))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the publisher's subscription was not confirmed within {within:?}: {:?}",
                publish.status()
            )
        })
        .expect("the publisher is running");
}
