//! The health endpoints, outside the dashboard's login (probes do not log
//! in): `GET /healthz` (the process answers), `GET /readyz` (model loaded,
//! store answering), `GET /metrics` (Prometheus text; behind a bearer
//! token when `[http] metrics_token` is set).

use super::error::ApiError;
use super::WebState;
use crate::credentials::constant_time_eq;
use crate::telemetry::Gauges;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

/// How long `/readyz` and `/metrics` wait for the store's writer thread,
/// which may be busy with a burst of writes.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

async fn readyz(State(state): State<WebState>) -> Response {
    let probe = state.store.call(|s| s.schema_version());
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
        Ok(Ok(schema)) => Json(json!({
            "ready": true,
            "model": state.model.get().name.clone(),
            "store_schema": schema,
            "broker_connected": state.publish.status().connected,
        }))
        .into_response(),
        Ok(Err(err)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store fails ({err}); check the disk and store.path"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the store did not answer within {}s; retry",
                STORE_PROBE_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// `/metrics` with `[http] metrics_token` set: `Authorization: Bearer`.
fn metrics_allowed(state: &WebState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.metrics_token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| constant_time_eq(token.trim().as_bytes(), expected.as_bytes()))
}

async fn metrics(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if !metrics_allowed(&state, &headers) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "/metrics needs `Authorization: Bearer <http.metrics_token>`",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"marquee-metrics\""),
        );
        return response;
    }
    let backlog = state.store.call(|s| s.outbox_backlog());
    let outbox_backlog = match tokio::time::timeout(STORE_PROBE_TIMEOUT, backlog).await {
        Ok(Ok(n)) => Some(n),
        // Leave the series out rather than report a made-up value.
        Ok(Err(_)) | Err(_) => None,
    };
    let queue = &state.uploads.queue;
    let publish = state.publish.status();
    let gauges = Gauges {
        queue_depth: to_u64(queue.depth()),
        queue_capacity: to_u64(queue.capacity()),
        outbox_backlog,
        broker_connected: publish.connected,
        inputs_subscribed: *state.publish.watch_subscribed().borrow(),
        published: publish.published,
        inbound_dropped: publish.inbound_dropped,
        model_loaded: true,
        cameras: state.cameras.snapshot(),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.uploads.metrics.render(&gauges),
    )
        .into_response()
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
