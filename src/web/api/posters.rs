//! Posters: upload one, read the history and one poster, its thumbnail,
//! and correct its genres.

use crate::feedback::{self, ImportReport, Via};
use crate::poster::PosterEvent;
use crate::store::Feedback;
use crate::web::data::{self, FeedbackRequest, HistoryPage, HistoryQuery, PosterView};
use crate::web::error::{ApiError, ErrorBody};
use crate::web::WebState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The `source` of posters uploaded through the API.
const SOURCE: &str = "http";

/// Classify one poster image (the raw body, or a multipart form's `file`
/// field) and answer its genres once stored; the same event goes out on MQTT.
#[utoipa::path(
    post,
    path = "/api/v1/posters",
    tag = "posters",
    request_body(content = Vec<u8>, description = "A JPEG, PNG, WebP, BMP or GIF image", content_type = "image/jpeg"),
    responses(
        (status = 200, description = "Classified and stored", body = PosterEvent),
        (status = 400, description = "Empty body or bad form", body = ErrorBody),
        (status = 401, description = "Credentials needed", body = ErrorBody),
        (status = 403, description = "Read-only, cross-site or missing CSRF token", body = ErrorBody),
        (status = 413, description = "Over http.max_upload_bytes", body = ErrorBody),
        (status = 415, description = "Not an image", body = ErrorBody),
        (status = 422, description = "Truncated, corrupt or too many pixels", body = ErrorBody),
        (status = 503, description = "Queue full (see Retry-After) or shutting down", body = ErrorBody),
    )
)]
pub(super) async fn upload(
    State(state): State<WebState>,
    req: Request,
) -> Result<Json<PosterEvent>, ApiError> {
    Ok(Json(state.uploads.classify_request(req, SOURCE).await?))
}

/// Classifications, newest first, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/history", tag = "posters", params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<WebState>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    Ok(Json(data::history(&state, query).await?))
}

/// One poster: its record, latest scores, thresholds and corrections.
#[utoipa::path(get, path = "/api/v1/posters/{id}", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image, 64 hex digits")),
    responses((status = 200, body = PosterView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn poster(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Json<PosterView>, ApiError> {
    Ok(Json(data::poster(&state, data::parse_id(&id)?).await?))
}

/// The poster's thumbnail (JPEG, longest side 160 px).
#[utoipa::path(get, path = "/api/v1/posters/{id}/thumbnail", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image")),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"), (status = 404, body = ErrorBody)))]
pub(super) async fn thumbnail(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = data::parse_id(&id)?;
    match data::thumbnail(&state, id).await? {
        Some(jpeg) => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                // A poster's id is its content hash: the thumbnail never changes.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=604800, immutable"),
                ),
            ],
            jpeg,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no thumbnail for this poster",
        )),
    }
}

/// Correct a poster's genres (human feedback, counted by the accuracy page).
#[utoipa::path(post, path = "/api/v1/posters/{id}/feedback", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image")),
    request_body = FeedbackRequest,
    responses((status = 201, body = Feedback), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn feedback(
    State(state): State<WebState>,
    Path(id): Path<String>,
    body: Result<Json<FeedbackRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Feedback>), ApiError> {
    let Json(request) = body.map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}: send {{\"genres\": [\"Drama\", ...]}}",
            rejection.body_text()
        ))
    })?;
    let stored = data::add_feedback(&state, data::parse_id(&id)?, request, Via::Api).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Import many corrections at once: CSV rows `id,Genre|Genre[,by]`, or
/// `id,kept` to confirm a poster's tags (a header line `id,...` is
/// skipped). Each row stands alone: the answer lists the refused ones with
/// their line and why.
#[utoipa::path(post, path = "/api/v1/feedback/import", tag = "posters",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(super) async fn import_feedback(
    State(state): State<WebState>,
    req: Request,
) -> Result<Json<ImportReport>, ApiError> {
    // One import at a time, its body read only once it has the slot: the
    // memory plan counts one (`IMPORT_MB`).
    let Ok(_slot) = IMPORTS.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "another import is running: try again when it has finished",
        )
        .retry_after(5));
    };
    let body = axum::body::to_bytes(req.into_body(), feedback::MAX_IMPORT_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the import is over {} bytes (or was cut off): split the file",
                    feedback::MAX_IMPORT_BYTES
                ),
            )
        })?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request("the import is not UTF-8 text: send CSV rows `id,Genre|Genre[,by]`")
    })?;
    Ok(Json(data::import_feedback(&state, text).await?))
}

/// Imports running at once.
static IMPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
