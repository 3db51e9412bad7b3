//! The HTTP server under the dashboard: hyper's HTTP/1.1 over our own
//! accept loop, so the daemon decides what a connection may cost.
//!
//! - A connection has `http.header_timeout_s` to send each request's
//!   headers; an idle keep-alive connection is closed after as long.
//! - Reads are buffered up to [`MAX_BUF`] per connection.
//! - At most `http.max_connections` are open. When a new one arrives at
//!   the cap, the connection that is doing least is closed to make room: not
//!   one in the middle of a request or a response; first one that never
//!   finished a request, oldest first (a slowloris), then the oldest idle
//!   one. Health checks and uploads get through a flood of half-sent
//!   requests.
//! - On shutdown: no new connections, each open one finishes its request.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// Each connection's read buffer at most (hyper's default is ~400 KB):
/// request headers fit in far less, bodies are streamed through it.
pub const MAX_BUF: usize = 64 * 1024;

/// What a connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// One open connection, as the eviction policy sees it.
struct Conn {
    accepted: Instant,
    /// Requests (with their response bodies) in progress.
    busy: Arc<AtomicUsize>,
    /// Requests it finished.
    served: Arc<AtomicU64>,
    close: CancellationToken,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, Conn>,
}

/// Counters for tests and `/metrics`-like inspection.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub accepted: AtomicU64,
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
}

/// Serve `app` on `listener` until `shutdown`, then let open connections
/// finish their requests (bounded by the caller's deadline).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    stats: Arc<ServerStats>,
) -> std::io::Result<()> {
    let conns = Arc::new(Mutex::new(Conns::default()));
    let tasks = TaskTracker::new();
    let mut accept_errors = 0u32;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                accept_errors = 0;
                pair
            }
            Err(err) => {
                // Out of file descriptors, or the peer gave up: wait a
                // moment instead of spinning, and say so once in a while.
                if accept_errors.is_multiple_of(100) {
                    warn!(error = %err, "accepting a connection failed; retrying");
                }
                accept_errors = accept_errors.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let Some((id, conn)) = admit(&conns, limits.max_connections, &stats) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "connection refused: every open one is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conns = Arc::clone(&conns);
        let app = app.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            run_connection(stream, peer, app, limits, conn, shutdown).await;
            lock(&conns).open.remove(&id);
        });
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

fn lock(conns: &Mutex<Conns>) -> std::sync::MutexGuard<'_, Conns> {
    conns
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The handles a new connection's task needs.
struct Admitted {
    busy: Arc<AtomicUsize>,
    served: Arc<AtomicU64>,
    close: CancellationToken,
}

/// Make room for a new connection (closing the one doing least) and
/// register it; `None` when every open connection is busy.
fn admit(conns: &Mutex<Conns>, max: usize, stats: &ServerStats) -> Option<(u64, Admitted)> {
    let mut conns = lock(conns);
    if conns.open.len() >= max.max(1) {
        let victim = conns
            .open
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0 && !c.close.is_cancelled())
            .min_by_key(|(_, c)| (c.served.load(Ordering::Relaxed) > 0, c.accepted))
            .map(|(id, _)| *id)?;
        if let Some(victim) = conns.open.remove(&victim) {
            victim.close.cancel();
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }
    let id = conns.next_id;
    conns.next_id += 1;
    let conn = Conn {
        accepted: Instant::now(),
        busy: Arc::new(AtomicUsize::new(0)),
        served: Arc::new(AtomicU64::new(0)),
        close: CancellationToken::new(),
    };
    let admitted = Admitted {
        busy: Arc::clone(&conn.busy),
        served: Arc::clone(&conn.served),
        close: conn.close.clone(),
    };
    conns.open.insert(id, conn);
    Some((id, admitted))
}

async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    conn: Admitted,
    shutdown: CancellationToken,
) {
    let Admitted {
        busy,
        served,
        close,
    } = conn;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let guard = BusyGuard::new(Arc::clone(&busy), Arc::clone(&served));
        let call = app.clone().oneshot(req.map(Body::new));
        async move {
            let response = match call.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Guarded {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(err) = ended {
                    debug!(%peer, error = %err, "connection ended");
                }
                return;
            }
            () = close.cancelled() => {
                debug!(%peer, "connection closed to make room");
                return;
            }
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Marks its connection busy from the request's arrival to the end of its
/// response body (a live event stream stays busy while it streams).
struct BusyGuard {
    busy: Arc<AtomicUsize>,
    served: Arc<AtomicU64>,
}

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>, served: Arc<AtomicU64>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self { busy, served }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its connection's [`BusyGuard`].
struct Guarded {
    body: Body,
    _guard: BusyGuard,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
