//! The cameras' API:
//!
//! - `GET /api/v1/cameras`: every camera's [`CameraStatus`].
//! - `POST /api/v1/capture`: capture a frame and answer its classification
//!   (the same JSON as `POST /api/v1/posters`). The camera is named by
//!   `?camera=NAME` or a JSON body `{"camera": "NAME"}`, else the first
//!   camera. 404: no such camera (or none configured); 503: the camera is
//!   offline, gave no frame in time, or the queue is full (`Retry-After`).

use crate::camera::CameraStatus;
use crate::poster::PosterEvent;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::WebState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::debug;
use utoipa::ToSchema;

/// `{"cameras": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct CameraList {
    pub cameras: Vec<CameraStatus>,
}

/// Which camera to capture from (default: the first).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Which {
    /// The camera's `name` from its `[[camera]]` table.
    pub camera: Option<String>,
}

/// Every configured camera: online, last error, frames, captures, reconnects.
#[utoipa::path(get, path = "/api/v1/cameras", tag = "cameras",
    responses((status = 200, body = CameraList)))]
pub(super) async fn cameras(State(state): State<WebState>) -> Json<CameraList> {
    Json(CameraList {
        cameras: state.cameras.snapshot(),
    })
}

/// Capture a frame now and answer its classification (as `POST
/// /api/v1/posters` does); the result also goes out on MQTT.
#[utoipa::path(post, path = "/api/v1/capture", tag = "cameras",
    params(Which),
    request_body(content = Option<Which>, description = "Optional: {\"camera\": \"NAME\"}"),
    responses(
        (status = 200, body = PosterEvent),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "No such camera, or none configured", body = ErrorBody),
        (status = 502, description = "The camera sent a frame that is not an image", body = ErrorBody),
        (status = 503, description = "Camera offline or queue full (Retry-After)", body = ErrorBody),
    ))]
pub(super) async fn capture(
    State(state): State<WebState>,
    Query(query): Query<Which>,
    body: Bytes,
) -> Response {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        Which::default()
    } else {
        match serde_json::from_slice::<Which>(&body) {
            Ok(which) => which,
            Err(err) => {
                return ApiError::bad_request(format!(
                    "the body must be empty or JSON like {{\"camera\": \"NAME\"}} ({err})"
                ))
                .into_response()
            }
        }
    };
    let name = query.camera.or(from_body.camera);
    match state.cameras.capture(name.as_deref()).await {
        Ok(event) => Json(event).into_response(),
        Err(err) => {
            debug!(error = %err, "capture refused");
            ApiError::from(err).into_response()
        }
    }
}
