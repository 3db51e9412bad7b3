//! The HTTP input and the health endpoints.
//!
//! `POST /api/v1/posters` (routed by [`crate::web::api`]) takes the image as the raw body or as the `file`
//! field of a multipart form, queues it, waits for the result and answers
//! the same JSON object that goes out on MQTT ([`PosterEvent`]). A full
//! queue answers 503 with `Retry-After` at once instead of holding the
//! connection: the client knows best whether to retry or give up.
//!
//! `GET /healthz` (the process answers), `GET /readyz` (model loaded, store
//! answering), `GET /metrics` (Prometheus text).

use super::{IngestError, Poster};
use crate::metrics::{Gauges, Metrics};
use crate::publish::{PosterEvent, PublishHandle};
use crate::store::{now_ms, StoreHandle};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Room for the multipart boundaries and headers around a file that is
/// itself just under the upload limit.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// What a client is told to wait before retrying when the queue is full:
/// about one inference batch on a small board.
const RETRY_AFTER_FULL_S: &str = "2";

/// How long `/readyz` and `/metrics` wait for the store's writer thread,
/// which may be busy with a burst of writes.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub posters: mpsc::Sender<Poster>,
    pub store: StoreHandle,
    pub publish: PublishHandle,
    pub metrics: Arc<Metrics>,
    pub max_upload_bytes: u64,
    /// The loaded model's name, shown by `/readyz`.
    pub model: String,
}

/// The health endpoints, open to everyone (probes and Prometheus do not
/// log in). The upload endpoint is part of the dashboard's API
/// ([`crate::web::api`]), behind its access rules.
pub fn health_router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The largest request body accepted: an upload at the limit plus its
/// multipart framing.
pub fn body_limit(max_upload_bytes: u64) -> usize {
    usize::try_from(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX)
}

/// A JSON error body `{"error": "..."}` with the status it deserves.
pub fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl IngestError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Empty | Self::Multipart(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadImage(_) | Self::TooManyPixels { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::QueueFull | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Model(_) | Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status(), self.to_string());
        if matches!(self, Self::QueueFull) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_FULL_S),
            );
        }
        response
    }
}

/// Read an uploaded image (raw body or multipart `file`), queue it with
/// `source`, and wait for its result.
pub async fn classify_upload(
    state: &HttpState,
    req: Request,
    source: &str,
) -> Result<PosterEvent, IngestError> {
    let bytes = match read_image(state, req).await {
        Ok(bytes) => bytes,
        Err(err) => {
            // Refusals before the queue are counted here; the workers
            // count what fails after it.
            state.metrics.error(err.kind());
            return Err(err);
        }
    };
    classify_bytes(state, bytes, source).await
}

/// Queue `bytes` with `source` and wait for the result. A full queue is
/// answered at once (503), not by holding the connection.
pub async fn classify_bytes(
    state: &HttpState,
    bytes: Bytes,
    source: &str,
) -> Result<PosterEvent, IngestError> {
    let (reply, answer) = oneshot::channel();
    let poster = Poster {
        bytes,
        source: source.to_owned(),
        received_at: now_ms(),
        reply: Some(reply),
        watched: None,
    };
    // try_send: a full queue is answered now (503), not by holding the
    // connection open until there is room.
    if let Err(err) = state.posters.try_send(poster) {
        let err = match err {
            mpsc::error::TrySendError::Full(_) => IngestError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
        };
        state.metrics.error(err.kind());
        return Err(err);
    }
    // The workers always answer; a dropped sender means one stopped mid-way.
    answer.await.unwrap_or(Err(IngestError::ShuttingDown))
}

/// The image bytes from a raw body or a multipart `file` field, refusing
/// oversize bodies before reading them when the length is declared.
async fn read_image(state: &HttpState, req: Request) -> Result<Bytes, IngestError> {
    let limit = state.max_upload_bytes;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let allowed = if multipart {
        limit.saturating_add(MULTIPART_OVERHEAD)
    } else {
        limit
    };
    if let Some(size) = declared.filter(|&size| size > allowed) {
        return Err(IngestError::TooLarge { size, limit });
    }

    let bytes = if multipart {
        read_multipart(state, req).await?
    } else {
        Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_error(rejection.status(), rejection.body_text(), limit))?
    };
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limit {
        return Err(IngestError::TooLarge { size, limit });
    }
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(bytes)
}

async fn read_multipart(state: &HttpState, req: Request) -> Result<Bytes, IngestError> {
    let limit = state.max_upload_bytes;
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|rejection| IngestError::Multipart(rejection.body_text()))?;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|err| body_error(err.status(), err.body_text(), limit))?;
        let Some(field) = field else {
            return Err(IngestError::Multipart("no `file` field".to_owned()));
        };
        if field.name() == Some("file") {
            return field
                .bytes()
                .await
                .map_err(|err| body_error(err.status(), err.body_text(), limit));
        }
    }
}

/// A multipart field that could not be read.
pub fn multipart_error(err: axum::extract::multipart::MultipartError, limit: u64) -> IngestError {
    body_error(err.status(), err.body_text(), limit)
}

/// A body that could not be read: over the limit, or broken.
fn body_error(status: StatusCode, text: String, limit: u64) -> IngestError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The size is unknown (no Content-Length): say "over" the limit.
        IngestError::TooLarge {
            size: limit.saturating_add(1),
            limit,
        }
    } else {
        IngestError::Multipart(text)
    }
}

async fn healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let probe = state.store.call(|s| s.schema_version());
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
        Ok(Ok(schema)) => Json(json!({
            "ready": true,
            "model": state.model,
            "store_schema": schema,
            "broker_connected": state.publish.status().connected,
        }))
        .into_response(),
        Ok(Err(err)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store fails ({err}); check the disk and store.path"),
        ),
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the store did not answer within {}s; retry",
                STORE_PROBE_TIMEOUT.as_secs()
            ),
        ),
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let backlog = state.store.call(|s| s.outbox_backlog());
    let outbox_backlog = match tokio::time::timeout(STORE_PROBE_TIMEOUT, backlog).await {
        Ok(Ok(n)) => Some(n),
        // Leave the series out rather than report a made-up value.
        Ok(Err(_)) | Err(_) => None,
    };
    let capacity = state.posters.max_capacity();
    let publish = state.publish.status();
    let gauges = Gauges {
        queue_depth: to_u64(capacity.saturating_sub(state.posters.capacity())),
        queue_capacity: to_u64(capacity),
        outbox_backlog,
        broker_connected: publish.connected,
        published: publish.published,
        inbound_dropped: publish.inbound_dropped,
        model_loaded: true,
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(&gauges),
    )
        .into_response()
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
