//! Network cameras over plain HTTP/1.1 (hyper): a JPEG snapshot URL polled
//! at `fps`, or an MJPEG stream (`multipart/x-mixed-replace`, as IP cameras,
//! mjpg-streamer and GStreamer's `multipartmux` serve it). `http://` decides
//! by the answer's Content-Type; `mjpeg+http://` insists on a stream.
//!
//! An on-demand snapshot camera is polled once a second (enough to know it
//! is there) and at once when a capture is asked for.
//!
//! Errors: a refused connection, a timeout, a non-2xx status or a closed
//! stream is [`SourceError::Gone`] (the runner reopens with backoff); a body
//! that is not a JPEG is [`SourceError::BadFrame`] (skipped, the camera
//! stays online).

use super::mjpeg::PartReader;
use super::{Frame, FrameData, FrameSource, SourceError, SourceFuture};
use crate::config::{CameraMode, CameraSettings};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Connecting, and each answer or stream read, must finish within this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A frame larger than this is refused (and the stream dropped): 1080p
/// JPEGs are well under 2 MiB.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// How often an idle on-demand snapshot camera is polled.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Where to connect and what to ask for, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `Host:` header value.
    authority: String,
    path: String,
    /// `Basic ...` from `user:password@` in the URL.
    auth: Option<String>,
}

fn parse_target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("HTTP://"))
        .ok_or_else(|| format!("`{url}`: only http:// camera URLs are supported"))?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed `[` in the host"))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("`{url}`: port `{p}` is not a number from 1 to 65535"))?,
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(Target {
        host,
        port,
        authority: hostport.to_owned(),
        path,
        auth: userinfo.map(|u| format!("Basic {}", base64(u.as_bytes()))),
    })
}

/// Standard base64 with padding, for the Basic authorization header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An MJPEG stream being read.
struct Stream {
    body: Incoming,
    parts: PartReader,
}

/// A snapshot or MJPEG camera.
pub struct HttpSource {
    target: Target,
    url: String,
    /// `Some(true)`: must be a stream; `Some(false)`: snapshots; `None`: by
    /// Content-Type.
    want_stream: Option<bool>,
    interval: Duration,
    wake: Arc<Notify>,
    sender: Option<SendRequest<Empty<Bytes>>>,
    stream: Option<Stream>,
    last_poll: Option<tokio::time::Instant>,
}

impl HttpSource {
    pub fn new(
        url: &str,
        want_stream: Option<bool>,
        settings: &CameraSettings,
        wake: Arc<Notify>,
    ) -> Result<Self, String> {
        let frame_interval = Duration::from_secs(1) / settings.fps.max(1);
        Ok(Self {
            target: parse_target(url)?,
            url: crate::config::redact_url(url),
            want_stream,
            interval: match settings.mode {
                CameraMode::Continuous => frame_interval,
                CameraMode::OnDemand => IDLE_POLL.max(frame_interval),
            },
            wake,
            sender: None,
            stream: None,
            last_poll: None,
        })
    }

    async fn connect(&mut self) -> Result<(), SourceError> {
        let t = &self.target;
        let gone = |what: String| SourceError::Gone(format!("{what} ({})", self.url));
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((t.host.as_str(), t.port)))
            .await
            .map_err(|_| {
                gone(format!(
                    "connecting timed out after {}s",
                    IO_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|err| gone(format!("cannot connect to the camera: {err}")))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|err| gone(format!("HTTP handshake with the camera failed: {err}")))?;
        // Drives the socket; ends when the camera or we close it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// GET the URL on a live connection, reconnecting once if the camera
    /// closed the previous one (many close after every snapshot).
    async fn get(&mut self) -> Result<Response<Incoming>, SourceError> {
        for attempt in 0..2 {
            let usable = match &mut self.sender {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !usable {
                self.connect().await?;
            }
            let mut request = Request::get(self.target.path.as_str())
                .header(HOST, self.target.authority.as_str())
                .header("user-agent", concat!("marquee/", env!("CARGO_PKG_VERSION")));
            if let Some(auth) = &self.target.auth {
                request = request.header(AUTHORIZATION, auth.as_str());
            }
            let request = request.body(Empty::new()).map_err(|err| {
                SourceError::Gone(format!("cannot build the request for {}: {err}", self.url))
            })?;
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            match tokio::time::timeout(IO_TIMEOUT, sender.send_request(request)).await {
                Ok(Ok(response)) => return self.check_status(response),
                Ok(Err(err)) if attempt == 0 => {
                    tracing::debug!(error = %err, "camera connection closed; reconnecting");
                    self.sender = None;
                }
                Ok(Err(err)) => {
                    return Err(SourceError::Gone(format!(
                        "the camera did not answer ({err}) ({})",
                        self.url
                    )))
                }
                Err(_) => {
                    self.sender = None;
                    return Err(SourceError::Gone(format!(
                        "the camera did not answer within {}s ({})",
                        IO_TIMEOUT.as_secs(),
                        self.url
                    )));
                }
            }
        }
        Err(SourceError::Gone(format!(
            "the camera keeps closing the connection ({})",
            self.url
        )))
    }

    fn check_status(
        &self,
        response: Response<Incoming>,
    ) -> Result<Response<Incoming>, SourceError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let hint = match status.as_u16() {
            401 | 403 => {
                ": put the camera's user and password in the URL (http://user:password@host/...)"
            }
            404 => ": check the snapshot or stream path in the camera's manual",
            _ => "",
        };
        Err(SourceError::Gone(format!(
            "the camera answered {status}{hint} ({})",
            self.url
        )))
    }

    async fn snapshot(&mut self) -> Result<Frame, SourceError> {
        if let Some(last) = self.last_poll {
            let due = last + self.interval;
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = self.wake.notified() => {}
            }
        }
        self.last_poll = Some(tokio::time::Instant::now());
        let response = self.get().await?;
        let content_type = content_type(&response);
        if let Some(delimiter) = multipart_delimiter(&content_type) {
            if self.want_stream != Some(false) {
                self.stream = Some(Stream {
                    body: response.into_body(),
                    parts: PartReader::new(delimiter, MAX_FRAME_BYTES),
                });
                return self.stream_frame().await;
            }
        }
        if self.want_stream == Some(true) {
            return Err(SourceError::Gone(format!(
                "expected an MJPEG stream (multipart/x-mixed-replace) and the camera answered \
                 `{content_type}`: check the URL, or drop `mjpeg+` for a snapshot URL ({})",
                self.url
            )));
        }
        let at = Instant::now();
        let body = read_body(response.into_body(), &self.url).await?;
        jpeg_frame(at, body, &content_type)
    }

    async fn stream_frame(&mut self) -> Result<Frame, SourceError> {
        let url = self.url.clone();
        let Some(stream) = self.stream.as_mut() else {
            return Err(SourceError::Gone("the MJPEG stream is not open".into()));
        };
        loop {
            match stream.parts.next_part() {
                Ok(Some(part)) => return jpeg_frame(Instant::now(), part, "image/jpeg"),
                Ok(None) => {}
                Err(reason) => return Err(SourceError::Gone(format!("{reason} ({url})"))),
            }
            let chunk = tokio::time::timeout(IO_TIMEOUT, stream.body.frame())
                .await
                .map_err(|_| {
                    SourceError::Gone(format!(
                        "the MJPEG stream sent nothing for {}s ({url})",
                        IO_TIMEOUT.as_secs()
                    ))
                })?;
            match chunk {
                None => return Err(SourceError::Gone(format!("the MJPEG stream ended ({url})"))),
                Some(Err(err)) => {
                    return Err(SourceError::Gone(format!(
                        "the MJPEG stream broke: {err} ({url})"
                    )))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        stream.parts.push(&data);
                    }
                }
            }
        }
    }
}

impl FrameSource for HttpSource {
    fn open(&mut self) -> SourceFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            self.last_poll = None;
            self.connect().await
        })
    }

    fn next_frame(&mut self) -> SourceFuture<'_, Result<Frame, SourceError>> {
        Box::pin(async move {
            if self.stream.is_some() {
                self.stream_frame().await
            } else {
                self.snapshot().await
            }
        })
    }

    fn close(&mut self) {
        self.stream = None;
        self.sender = None;
    }
}

fn content_type(response: &Response<Incoming>) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `--boundary` from `multipart/x-mixed-replace; boundary=...`.
fn multipart_delimiter(content_type: &str) -> Option<Vec<u8>> {
    let (mime, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime
        .trim()
        .eq_ignore_ascii_case("multipart/x-mixed-replace")
    {
        return None;
    }
    let boundary = params.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })?;
    // Some servers put the dashes in the header's boundary already.
    let boundary = boundary.strip_prefix("--").unwrap_or(&boundary);
    Some(format!("--{boundary}").into_bytes())
}

async fn read_body(mut body: Incoming, url: &str) -> Result<Bytes, SourceError> {
    let mut out = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(IO_TIMEOUT, body.frame())
            .await
            .map_err(|_| {
                SourceError::Gone(format!(
                    "the snapshot did not arrive within {}s ({url})",
                    IO_TIMEOUT.as_secs()
                ))
            })?;
        match frame {
            None => return Ok(out.freeze()),
            Some(Err(err)) => {
                return Err(SourceError::BadFrame(format!(
                    "the snapshot was cut short: {err} ({url})"
                )))
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > MAX_FRAME_BYTES {
                        return Err(SourceError::BadFrame(format!(
                            "the snapshot is over {MAX_FRAME_BYTES} bytes ({url})"
                        )));
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// A frame from a body that must be a JPEG (checked by its start marker
/// here; fully when decoded).
fn jpeg_frame(at: Instant, body: Bytes, content_type: &str) -> Result<Frame, SourceError> {
    if body.len() < 4 || body[..2] != [0xFF, 0xD8] {
        return Err(SourceError::BadFrame(format!(
            "the camera sent {} bytes of `{content_type}`, not a JPEG: check that the URL \
             serves JPEG snapshots or an MJPEG stream",
            body.len()
        )));
    }
    Ok(Frame {
        at,
        data: FrameData::Jpeg(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_target("http://admin:secret@10.0.0.5:8080/snap.jpg?res=hi").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("10.0.0.5", 8080, "/snap.jpg?res=hi")
        );
        assert_eq!(t.authority, "10.0.0.5:8080");
        assert_eq!(t.auth.as_deref(), Some("Basic YWRtaW46c2VjcmV0"));
        let t = parse_target("http://cam").unwrap();
        assert_eq!((t.port, t.path.as_str(), t.auth), (80, "/", None));
        assert!(parse_target("http://cam:99999/").is_err());
        assert!(parse_target("ftp://cam/").is_err());
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            multipart_delimiter("multipart/x-mixed-replace; boundary=frame"),
            Some(b"--frame".to_vec())
        );
        assert_eq!(
            multipart_delimiter("multipart/x-mixed-replace;boundary=\"--myboundary\""),
            Some(b"--myboundary".to_vec())
        );
        assert_eq!(multipart_delimiter("image/jpeg"), None);
    }
}
