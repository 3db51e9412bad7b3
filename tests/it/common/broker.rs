//! A real MQTT broker per test, and a subscriber that collects what it hears.
//!
//! [`Broker`] runs Mosquitto (`/usr/sbin/mosquitto` or on `PATH`) on a free
//! 127.0.0.1 port with a generated config and no persistence. Where Mosquitto
//! is not installed it runs rumqttd instead, in a child process (this test
//! binary, re-executed into [`rumqttd_broker_child`]), so that `stop()` is a
//! real process kill in both cases and `cargo test` passes with only Rust.
//! Set `MARQUEE_TEST_BROKER=rumqttd` to force the fallback.
//!
//! `stop()` kills the broker (SIGKILL: an outage, not a shutdown) and
//! `start()` brings it back on the same port, with empty state.

use super::free_port;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Tells a re-executed test binary to be the rumqttd broker on this port.
const CHILD_ENV: &str = "MARQUEE_TEST_RUMQTTD_PORT";
/// `rumqttd` forces the fallback even where Mosquitto is installed.
const FORCE_ENV: &str = "MARQUEE_TEST_BROKER";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    Mosquitto(PathBuf),
    Rumqttd,
}

/// A broker process on a fixed 127.0.0.1 port, killed on drop.
pub struct Broker {
    flavor: Flavor,
    port: u16,
    /// A second, TLS-only listener with client certificates (Mosquitto only).
    tls_port: Option<u16>,
    /// A `password_file` in `dir`: anonymous clients are refused (Mosquitto only).
    password_file: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// A running broker on a free port.
    pub fn launch() -> Self {
        let mut broker = Self::unstarted();
        broker.start();
        broker
    }

    /// A free port with no broker on it yet, for "the broker is down from
    /// the start"; [`start`](Self::start) brings it up.
    pub fn unstarted() -> Self {
        Self {
            flavor: flavor(),
            port: free_port(),
            tls_port: None,
            password_file: None,
            dir: tempfile::tempdir().expect("temp dir for the broker"),
            child: None,
        }
    }

    /// Mosquitto with a plain listener and an mTLS one (CA, server and
    /// client certificates from `tests/fixtures/tls`). `None`, loudly, where
    /// Mosquitto is not installed: the rumqttd fallback is built without TLS.
    pub fn launch_with_tls() -> Option<Self> {
        let mut broker = Self::unstarted();
        if broker.flavor == Flavor::Rumqttd {
            eprintln!(
                "\n*** SKIPPED: the TLS broker test needs Mosquitto (apt-get install mosquitto); \
                 the rumqttd fallback has no TLS listener ***\n"
            );
            return None;
        }
        broker.tls_port = Some(free_port());
        broker.start();
        Some(broker)
    }

    /// Mosquitto with `allow_anonymous false` and one `user`/`password` in
    /// a `password_file` made by `mosquitto_passwd`. `None`, loudly, where
    /// either is not installed (the rumqttd fallback has no password file).
    pub fn launch_with_password(user: &str, password: &str) -> Option<Self> {
        let mut broker = Self::unstarted();
        let passwd = find_mosquitto_passwd();
        if broker.flavor == Flavor::Rumqttd || passwd.is_none() {
            eprintln!(
                "\n*** SKIPPED: the broker authentication test needs Mosquitto and \
                 mosquitto_passwd (apt-get install mosquitto); {} ***\n",
                if broker.flavor == Flavor::Rumqttd {
                    "the rumqttd fallback is in use"
                } else {
                    "mosquitto_passwd is not installed"
                }
            );
            return None;
        }
        let file = broker.dir.path().join("passwd");
        let out = Command::new(passwd.unwrap())
            .arg("-b")
            .arg("-c")
            .arg(&file)
            .args([user, password])
            .output()
            .expect("run mosquitto_passwd");
        assert!(
            out.status.success(),
            "mosquitto_passwd failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        broker.password_file = Some(file);
        broker.start();
        Some(broker)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        super::mqtt_url(self.port)
    }

    /// Start (again) on the same port; returns once it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = self.dir.path().join("broker.log");
        let log_file = std::fs::File::create(&log).expect("broker log file");
        let mut command = match &self.flavor {
            Flavor::Mosquitto(bin) => {
                let conf = self.dir.path().join("mosquitto.conf");
                std::fs::write(&conf, self.mosquitto_config()).expect("write mosquitto.conf");
                let mut c = Command::new(bin);
                c.arg("-c").arg(&conf);
                c
            }
            Flavor::Rumqttd => {
                let mut c = Command::new(std::env::current_exe().expect("test binary path"));
                c.args([
                    "--exact",
                    "common::broker::rumqttd_broker_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, self.port.to_string());
                c
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("broker log file"))
            .stderr(log_file);
        let child = command.spawn().expect("spawn the broker");
        self.child = Some(child);
        self.wait_ready(&log);
    }

    /// Kill the broker (SIGKILL) and wait for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&mut self, log: &Path) {
        let addrs: Vec<SocketAddr> = std::iter::once(self.port)
            .chain(self.tls_port)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect();
        let deadline = Instant::now() + READY_TIMEOUT;
        for addr in addrs {
            loop {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        self.child = None;
                        panic!(
                            "the {:?} broker exited with {status} before accepting connections:\n{}",
                            self.flavor,
                            std::fs::read_to_string(log).unwrap_or_default()
                        );
                    }
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the {:?} broker did not accept connections on {addr} within {READY_TIMEOUT:?}:\n{}",
                    self.flavor,
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                // Polling the port, not waiting a fixed time.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn mosquitto_config(&self) -> String {
        let auth = match &self.password_file {
            // Run as root, Mosquitto would switch to the `mosquitto` user
            // and then fail to read the file in our 0700 temp dir; `user
            // root` keeps the uid it was started with (ignored if not root).
            Some(file) => format!(
                "allow_anonymous false\npassword_file {}\nuser root\n",
                file.display()
            ),
            None => "allow_anonymous true\n".to_owned(),
        };
        let mut conf = format!(
            "listener {} 127.0.0.1\n\
             {auth}\
             persistence false\n\
             max_queued_messages 100000\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n",
            self.port
        );
        if let Some(tls_port) = self.tls_port {
            let tls = fixtures_tls();
            conf.push_str(&format!(
                "listener {tls_port} 127.0.0.1\n\
                 cafile {}\n\
                 certfile {}\n\
                 keyfile {}\n\
                 require_certificate true\n",
                tls.join("ca.pem").display(),
                tls.join("server.pem").display(),
                tls.join("server.key").display(),
            ));
        }
        conf
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `tests/fixtures/tls`: test-only CA, server and client certificates.
pub fn fixtures_tls() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn flavor() -> Flavor {
    static ANNOUNCE: Once = Once::new();
    let forced = std::env::var(FORCE_ENV).is_ok_and(|v| v == "rumqttd");
    let found = if forced { None } else { find_mosquitto() };
    match found {
        Some(bin) => Flavor::Mosquitto(bin),
        None => {
            ANNOUNCE.call_once(|| {
                eprintln!(
                    "note: {}; the MQTT tests use the rumqttd fallback broker",
                    if forced {
                        "MARQUEE_TEST_BROKER=rumqttd"
                    } else {
                        "mosquitto is not installed"
                    }
                );
            });
            Flavor::Rumqttd
        }
    }
}

fn find_mosquitto() -> Option<PathBuf> {
    find_program("mosquitto", &["/usr/sbin", "/usr/local/sbin"])
}

fn find_mosquitto_passwd() -> Option<PathBuf> {
    find_program("mosquitto_passwd", &["/usr/bin", "/usr/local/bin"])
}

fn find_program(name: &str, fixed_dirs: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    fixed_dirs
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Not a test: the entry point of the rumqttd fallback broker. [`Broker`]
/// re-executes the test binary with only this test selected and the port in
/// the environment; run normally, it returns at once.
#[test]
fn rumqttd_broker_child() {
    let Ok(port) = std::env::var(CHILD_ENV) else {
        return;
    };
    let port: u16 = port.parse().expect("port number");
    if let Err(e) = run_rumqttd(port) {
        eprintln!("rumqttd failed: {e}");
        std::process::exit(1);
    }
}

fn run_rumqttd(port: u16) -> Result<(), String> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    let server = ServerSettings {
        name: "v4".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 32 * 1024 * 1024,
            max_inflight_count: 1000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some([("1".to_owned(), server)].into_iter().collect()),
        ..Config::default()
    };
    rumqttd::Broker::new(config)
        .start()
        .map_err(|e| format!("{e:?}"))
}

/// One message as a subscriber got it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Set when the broker delivered it from its retained store.
    pub retain: bool,
    pub qos: QoS,
}

impl Message {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// A plain MQTT client that records every message on its filters.
pub struct Subscriber {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Message>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connect and subscribe (QoS 1); returns once the broker confirmed the
    /// subscription, so nothing published afterwards is missed.
    pub async fn connect(port: u16, filters: &[&str]) -> Self {
        Self::connect_as(port, filters, None).await
    }

    /// [`connect`](Self::connect) with a username and password.
    pub async fn connect_as(
        port: u16,
        filters: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "test-sub-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let message = Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            qos: p.qos,
                        };
                        if tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The test decides what an outage means; this client
                    // just stops (connect a new one after a restart).
                    Err(_) => return,
                }
            }
        });
        client
            .subscribe_many(
                filters
                    .iter()
                    .map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce)),
            )
            .await
            .expect("queue the subscription");
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("subscription confirmed within 10 s")
            .expect("subscriber connection stayed up");
        Self { client, rx, task }
    }

    /// The first message a new subscriber to `topic` gets: the retained one,
    /// where the broker holds one. Panics if none comes within `within`.
    pub async fn first_message(port: u16, topic: &str, within: Duration) -> Message {
        Self::connect(port, &[topic])
            .await
            .expect(topic, within)
            .await
    }

    /// The next message, if one comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Message> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message on `topic` (others are skipped); panics on timeout.
    pub async fn expect(&mut self, topic: &str, within: Duration) -> Message {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(m) if m.topic == topic => return m,
                Some(_) => {}
                None => panic!("no message on {topic} within {within:?}"),
            }
        }
    }

    /// `n` messages on `topic`; panics with what did arrive on timeout.
    pub async fn collect(&mut self, topic: &str, n: usize, within: Duration) -> Vec<Message> {
        let got = self
            .collect_until(within, |msgs| {
                msgs.iter().filter(|m| m.topic == topic).count() >= n
            })
            .await;
        let on_topic: Vec<Message> = got.into_iter().filter(|m| m.topic == topic).collect();
        assert!(
            on_topic.len() >= n,
            "expected {n} messages on {topic} within {within:?}, got {}",
            on_topic.len()
        );
        on_topic
    }

    /// Everything received until `done` says so or `within` passes (no panic).
    pub async fn collect_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&[Message]) -> bool,
    ) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(m) => got.push(m),
                None => break,
            }
        }
        got
    }

    /// Publish (QoS 1) through this client's connection.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("queue a publish");
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
