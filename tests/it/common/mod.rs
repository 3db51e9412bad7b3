//! Helpers shared by the integration tests (`crate::common` in each module).

pub mod broker;
pub mod camera_server;
pub mod daemon;
pub mod http;
pub mod webdriver;

/// An MQTT URL on a port nothing listens on: a broker that is down.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("mqtt://127.0.0.1:{port}")
}

/// Poll `check` every 20 ms until it holds (for state that has no event to
/// wait on); panics after `timeout`.
pub async fn eventually(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
