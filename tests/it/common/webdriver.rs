//! A small W3C WebDriver client over the tests' own HTTP client, driving
//! Debian's headless Chromium through `chromedriver` (packages `chromium`
//! and `chromium-driver`, installed by `.ci/run`).

use super::http::{request, Reply};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The browser's time zone in the tests (UTC+05:30, no daylight saving).
pub const BROWSER_TZ: &str = "Asia/Kolkata";

impl Browser {
    /// Start chromedriver on a free port and open a headless session with a
    /// phone-sized window. Panics with what to install when it cannot.
    pub async fn start() -> Self {
        let driver_bin = find_program(&["chromedriver"]).unwrap_or_else(|| {
            panic!(
                "chromedriver not found: install Debian's `chromium` and `chromium-driver` \
                 (apt-get install -y chromium chromium-driver; .ci/run does)"
            )
        });
        let browser_bin = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("chromium not found: apt-get install -y chromium"));
        let port = super::free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            // A zone away from UTC (and by half an hour) so the pages'
            // local-time rendering is really exercised; Chromium inherits it.
            .env("TZ", BROWSER_TZ)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = super::http::try_request(addr, "GET", "/status", &[], b"").await {
                if reply.json()["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser_bin,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=412,915",
                         "--no-first-run", "--disable-extensions"]
            }
        }}});
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
        };
        let created = browser.call("POST", "/session", Some(caps)).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let reply: Reply = request(
            self.addr,
            method,
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        let value = reply.json();
        assert!(
            reply.status == 200,
            "WebDriver {method} {path} failed ({}): {}",
            reply.status,
            value
        );
        value["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css}).to_string();
        let reply = request(
            self.addr,
            "POST",
            &self.at("/element"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        (reply.status == 200)
            .then(|| reply.json()["value"][ELEMENT].as_str().map(str::to_owned))
            .flatten()
    }

    /// The element matching `css`, waiting up to 30 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element `{css}` on {}",
                self.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Type into an input; for a file input, `text` is the file's path.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &self.at(&format!("/element/{id}/text")), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Run a script in the page and return its value.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Save a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", &self.at("/screenshot"), None).await;
        let png = decode_base64(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(mut self) {
        let _ = request(self.addr, "DELETE", &self.at(""), &[], b"").await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
