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
