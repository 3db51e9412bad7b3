//! The learning loop over HTTP: retrain, list and compare heads, promote
//! or roll back, export and import.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::learning::genres::GenreProgress;
use crate::learning::headfile::MAX_HEAD_FILE_BYTES;
use crate::learning::{HeadComparison, JobStatus, LearningError, ModelState};
use crate::store::HeadRow;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::WebState;

impl From<LearningError> for ApiError {
    fn from(err: LearningError) -> Self {
        let status = match &err {
            LearningError::UnknownHead(_) => StatusCode::NOT_FOUND,
            LearningError::Busy | LearningError::Worse { .. } => StatusCode::CONFLICT,
            LearningError::BadGenre(_) => StatusCode::BAD_REQUEST,
            LearningError::Incompatible { .. } | LearningError::HeadFile(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            LearningError::Store(_)
            | LearningError::Corrupt(..)
            | LearningError::RetrainFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

/// Start a retrain in the background (one at a time). Poll
/// `GET /api/v1/model/retrain` for its progress; it ends with a candidate
/// head that is shadowed until promoted.
#[utoipa::path(post, path = "/api/v1/model/retrain", tag = "model",
    responses((status = 202, body = JobStatus), (status = 409, body = ErrorBody)))]
pub(super) async fn start_retrain(
    State(state): State<WebState>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.learning.start_retrain("api")?),
    ))
}

/// The running or last retrain: state, phase, genres done, the head it made.
#[utoipa::path(get, path = "/api/v1/model/retrain", tag = "model",
    responses((status = 200, body = JobStatus)))]
pub(super) async fn retrain_status(State(state): State<WebState>) -> Json<JobStatus> {
    Json(state.learning.retrain_status())
}

/// Cancel the running retrain (it stops after the genre it is fitting).
#[utoipa::path(delete, path = "/api/v1/model/retrain", tag = "model",
    responses((status = 202, body = JobStatus), (status = 409, body = ErrorBody)))]
pub(super) async fn cancel_retrain(
    State(state): State<WebState>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    if state.learning.cancel_retrain() {
        Ok((StatusCode::ACCEPTED, Json(state.learning.retrain_status())))
    } else {
        Err(ApiError::new(StatusCode::CONFLICT, "no retrain is running"))
    }
}

/// Every head this device has: id, parent, state, where it came from, how
/// many corrections it learned from, its held-out figures.
#[utoipa::path(get, path = "/api/v1/model/heads", tag = "model",
    responses((status = 200, body = Vec<HeadRow>)))]
pub(super) async fn heads(State(state): State<WebState>) -> Result<Json<Vec<HeadRow>>, ApiError> {
    Ok(Json(state.learning.list().await?))
}

/// The active head and the candidate (as on the retained `model` topic).
#[utoipa::path(get, path = "/api/v1/model/state", tag = "model",
    responses((status = 200, body = ModelState)))]
pub(super) async fn model_state(
    State(state): State<WebState>,
) -> Result<Json<ModelState>, ApiError> {
    Ok(Json(state.learning.state().await?))
}

/// Active vs candidate on held-out corrections and on live posters; `null`
/// when there is no candidate.
#[utoipa::path(get, path = "/api/v1/model/compare", tag = "model",
    responses((status = 200, body = Option<HeadComparison>)))]
pub(super) async fn compare(
    State(state): State<WebState>,
) -> Result<Json<Option<HeadComparison>>, ApiError> {
    Ok(Json(state.learning.comparison().await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote a candidate even though it scores worse than the active head.
    #[serde(default)]
    pub force: bool,
}

/// Make a head active now, without a restart: the candidate, or any older
/// head (a rollback). A candidate that scores worse than the active head on
/// held-out corrections is refused (409) unless `force` is true.
#[utoipa::path(post, path = "/api/v1/model/heads/{id}/promote", tag = "model",
    params(("id" = i64, Path, description = "head id")),
    request_body(content = PromoteRequest, description = "optional"),
    responses((status = 200, body = HeadRow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn promote(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<HeadRow>, ApiError> {
    // No body (a bare POST) is a promotion without force.
    let force = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<PromoteRequest>(&body)
            .map_err(|e| {
                ApiError::bad_request(format!("{e}: send {{\"force\": true}} or nothing"))
            })?
            .force
    };
    Ok(Json(state.learning.promote(id, force).await?))
}

/// Stop shadowing the candidate; it is kept as a retired head.
#[utoipa::path(post, path = "/api/v1/model/candidate/discard", tag = "model",
    responses((status = 204)))]
pub(super) async fn discard(State(state): State<WebState>) -> Result<StatusCode, ApiError> {
    state.learning.discard_candidate().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A head as a file (labels, feature layout, backbone, sha256), for
/// `POST /api/v1/model/heads/import` on another device.
#[utoipa::path(get, path = "/api/v1/model/heads/{id}/export", tag = "model",
    params(("id" = i64, Path, description = "head id")),
    responses((status = 200, description = "head file (JSON)", content_type = "application/json"), (status = 404, body = ErrorBody)))]
pub(super) async fn export(
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let file = state.learning.export(id).await?;
    let name = format!(
        "attachment; filename=\"{}-head-{id}.json\"",
        state.device_id
    );
    let disposition = HeaderValue::from_str(&name)
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"head.json\""));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file.to_bytes(),
    )
        .into_response())
}

/// Import a head file as the candidate (shadowed until promoted). Refused
/// (422, nothing changes) when its checksum, backbone, feature width or
/// genres do not match this device.
#[utoipa::path(post, path = "/api/v1/model/heads/import", tag = "model",
    request_body(content = String, content_type = "application/json", description = "a head file"),
    responses((status = 201, body = HeadRow), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn import(
    State(state): State<WebState>,
    req: Request,
) -> Result<(StatusCode, Json<HeadRow>), ApiError> {
    let body = axum::body::to_bytes(req.into_body(), MAX_HEAD_FILE_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a head file is at most {MAX_HEAD_FILE_BYTES} bytes"),
            )
        })?;
    let row = state.learning.import(&body).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGenre {
    /// e.g. `Anime`: letters, digits, spaces and - / & ' (at most 40).
    pub label: String,
}

/// Genres added on this device and how far each is from being learned
/// (`examples` of `needed` corrected posters; `learned` once the active head
/// tags it).
#[utoipa::path(get, path = "/api/v1/model/genres", tag = "model",
    responses((status = 200, body = Vec<GenreProgress>)))]
pub(super) async fn genres(
    State(state): State<WebState>,
) -> Result<Json<Vec<GenreProgress>>, ApiError> {
    Ok(Json(state.learning.genre_progress().await?))
}

/// Add a genre the shipped model does not know: corrections may name it at
/// once; the first retrain after it has enough examples learns it.
#[utoipa::path(post, path = "/api/v1/model/genres", tag = "model",
    request_body = NewGenre,
    responses((status = 201, body = Vec<GenreProgress>), (status = 400, body = ErrorBody)))]
pub(super) async fn add_genre(
    State(state): State<WebState>,
    body: Result<Json<NewGenre>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Vec<GenreProgress>>), ApiError> {
    let Json(genre) = body.map_err(|r| {
        ApiError::bad_request(format!("{}: send {{\"label\": \"Anime\"}}", r.body_text()))
    })?;
    Ok((
        StatusCode::CREATED,
        Json(state.learning.add_genre(&genre.label).await?),
    ))
}
