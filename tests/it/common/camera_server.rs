//! A network camera for the tests: a real HTTP/1.1 server on 127.0.0.1
//! serving the synthetic scene the test sets, as JPEG snapshots
//! (`/snapshot.jpg`, one request per connection, as many IP cameras do) or
//! as an MJPEG stream (`/stream`, `multipart/x-mixed-replace`). It can be
//! killed (every connection drops) and restarted on the same port, and made
//! to send broken frames.

use marquee::camera::source::synthetic::{render_frame, Scene};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What the camera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Good,
    /// An HTML error page with status 200 (a misconfigured URL).
    NotJpeg,
    /// The first half of the JPEG.
    Truncated,
}

#[derive(Debug)]
struct Shared {
    scene: Mutex<Scene>,
    output: Mutex<Output>,
    frame_no: AtomicU32,
    width: u32,
    height: u32,
}

pub struct CameraServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CameraServer {
    pub async fn start(width: u32, height: u32) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            scene: Mutex::new(Scene::Wall),
            output: Mutex::new(Output::Good),
            frame_no: AtomicU32::new(1),
            width,
            height,
        });
        let mut server = Self {
            shared,
            addr,
            task: None,
        };
        server.serve(listener);
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_scene(&self, scene: Scene) {
        *self.shared.scene.lock().unwrap() = scene;
    }

    pub fn set_output(&self, output: Output) {
        *self.shared.output.lock().unwrap() = output;
    }

    /// The JPEG the camera serves now (without sensor noise).
    pub fn current_jpeg(&self) -> Vec<u8> {
        jpeg(&self.shared, false)
    }

    /// Kill the server: the listener and every connection close at once.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Start again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.task.is_none(), "already running");
        let listener = loop {
            // The old socket may linger a moment; poll, do not sleep blindly.
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        self.task = Some(tokio::spawn(async move {
            // Owned by this task: aborting it drops every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        connections.spawn(handle(stream, Arc::clone(&shared)));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }
}

impl Drop for CameraServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn jpeg(shared: &Shared, noise: bool) -> Vec<u8> {
    let scene = *shared.scene.lock().unwrap();
    let noise_seed = if noise {
        shared.frame_no.fetch_add(1, Ordering::Relaxed)
    } else {
        0
    };
    let image = render_frame(&scene, shared.width, shared.height, noise_seed);
    marquee::drawing::encode(&image, image::ImageFormat::Jpeg)
}

/// The body for one frame, as the output mode wants it.
fn frame_body(shared: &Shared) -> (&'static str, Vec<u8>) {
    let output = *shared.output.lock().unwrap();
    match output {
        Output::Good => ("image/jpeg", jpeg(shared, false)),
        Output::NotJpeg => (
            "text/html",
            b"<html><body>401 please log in</body></html>".to_vec(),
        ),
        Output::Truncated => {
            let mut body = jpeg(shared, false);
            body.truncate(body.len() / 2);
            ("image/jpeg", body)
        }
    }
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    match path.as_str() {
        "/snapshot.jpg" => {
            let (content_type, body) = frame_body(&shared);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        "/stream" => {
            let head = "HTTP/1.1 200 OK\r\n\
                        Content-Type: multipart/x-mixed-replace; boundary=marqueeframe\r\n\
                        Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                let (content_type, body) = frame_body(&shared);
                let part = format!(
                    "--marqueeframe\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(part.as_bytes()).await.is_err()
                    || stream.write_all(&body).await.is_err()
                    || stream.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(66)).await;
            }
        }
        _ => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    }
}
