//! The real daemon (`app::start`) on 127.0.0.1:0, as every integration test
//! runs it: started, stopped cleanly, cancelled if a test panics first.

use marquee::app::{self, Running};
use marquee::config::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The settings the tests share: its own store file, the given broker, no
/// Home Assistant discovery, one inference thread (the tests run in parallel).
pub fn config(device_id: &str, mqtt_url: String, db: &Path) -> Config {
    let mut cfg = Config {
        device_id: device_id.into(),
        ..Config::default()
    };
    cfg.mqtt.url = mqtt_url;
    cfg.mqtt.discovery = false;
    cfg.store.path = db.to_path_buf();
    cfg.inference.threads = 1;
    cfg
}

pub struct TestDaemon {
    pub addr: SocketAddr,
    running: Option<Running>,
    shutdown: CancellationToken,
}

impl TestDaemon {
    /// Returns once the daemon is ready: no sleep, no polling.
    pub async fn start(cfg: Config) -> Self {
        Self::try_start(cfg).await.expect("the daemon starts")
    }

    /// [`start`](Self::start), or the error that kept the daemon from
    /// starting (for the tests of bad configurations).
    pub async fn try_start(cfg: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let running = app::start(cfg, listener, shutdown.clone()).await?;
        Ok(Self {
            addr: running.addr,
            running: Some(running),
            shutdown,
        })
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the daemon is running")
    }

    /// Shut down and wait for a clean exit within `wait`.
    pub async fn stop(&mut self, wait: Duration) {
        self.shutdown.cancel();
        let running = self.running.take().expect("the daemon is running");
        tokio::time::timeout(wait, running.wait())
            .await
            .expect("shutdown within the deadline")
            .expect("clean shutdown");
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A daemon with its own temporary folder and store file, the way most
/// tests want one; modules add their own helpers in `impl Fixture` blocks.
pub struct Fixture {
    pub addr: SocketAddr,
    pub inner: TestDaemon,
    pub db: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

/// How long a fixture's daemon gets to stop cleanly.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl Fixture {
    pub async fn start(device_id: &str, mqtt_url: String, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("marquee.db");
        let mut cfg = config(device_id, mqtt_url, &db);
        tweak(&mut cfg);
        let inner = TestDaemon::start(cfg).await;
        Self {
            addr: inner.addr,
            inner,
            db,
            dir,
        }
    }

    pub async fn stop(&mut self) {
        self.inner.stop(STOP_WAIT).await;
    }

    /// A second connection to the store (WAL: readers do not block the daemon).
    pub fn store(&self) -> marquee::store::Store {
        marquee::store::Store::open(&self.db).unwrap()
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> super::http::Reply {
        super::http::request(self.addr, "GET", path, headers, b"").await
    }

    /// A raw image upload to `POST /api/v1/posters`.
    pub async fn upload(&self, bytes: &[u8]) -> super::http::Reply {
        super::http::request(self.addr, "POST", "/api/v1/posters", &[], bytes).await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", &[]).await.text()
    }
}
