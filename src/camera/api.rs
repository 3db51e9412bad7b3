//! The cameras' HTTP API, routed (with its OpenAPI description and the
//! dashboard's access rules) by [`crate::web::api`]:
//!
//! - `GET /api/v1/cameras`: every camera's [`CameraStatus`](super::CameraStatus).
//! - `POST /api/v1/capture`: capture a frame and answer its classification
//!   (the same JSON as `POST /api/v1/posters`). The camera is named by
//!   `?camera=NAME` or a JSON body `{"camera": "NAME"}`, else the first
//!   camera. 404: no such camera (or none configured); 503: the camera is
//!   offline, gave no frame in time, or the queue is full (`Retry-After`).

use super::{CameraRegistry, CaptureError};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tracing::debug;

/// What a client is told to wait before retrying an offline camera.
const RETRY_AFTER_OFFLINE_S: &str = "5";

/// `GET /api/v1/cameras`.
pub async fn list(State(cameras): State<CameraRegistry>) -> Response {
    Json(json!({ "cameras": cameras.snapshot() })).into_response()
}

/// Which camera to capture from (default: the first).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Which {
    /// The camera's `name` from its `[[camera]]` table.
    pub camera: Option<String>,
}

/// `POST /api/v1/capture`.
pub async fn capture(
    State(cameras): State<CameraRegistry>,
    Query(query): Query<Which>,
    body: Bytes,
) -> Response {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        Which::default()
    } else {
        match serde_json::from_slice::<Which>(&body) {
            Ok(which) => which,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be empty or JSON like {{\"camera\": \"NAME\"}} ({err})"),
                )
            }
        }
    };
    let name = query.camera.or(from_body.camera);
    match cameras.capture(name.as_deref()).await {
        Ok(event) => Json(event).into_response(),
        Err(err) => {
            debug!(error = %err, "capture refused");
            err.into_response()
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for CaptureError {
    fn into_response(self) -> Response {
        let (status, retry) = match self {
            // Queue full, shutting down, a bad image: as for an upload.
            Self::Ingest(err) => return err.into_response(),
            Self::NoCameras | Self::Unknown { .. } => (StatusCode::NOT_FOUND, false),
            Self::Offline { .. } | Self::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, true),
            Self::BadFrame { .. } => (StatusCode::BAD_GATEWAY, false),
        };
        let mut response = error(status, self.to_string());
        if retry {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_OFFLINE_S),
            );
        }
        response
    }
}
