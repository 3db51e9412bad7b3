//! The JSON API behind every page. Each handler carries its OpenAPI
//! description (`#[utoipa::path]`) and is registered with `routes!`, which
//! adds the route and its description together: `/api/openapi.json` lists
//! exactly what is served.

use super::data::{
    self, DataError, FeedbackRequest, HistoryPage, HistoryQuery, ImpactQuery, ImpactView,
    MapAnswer, MapView, PosterView, Status,
};
use super::model_card::ModelCard;
use super::WebState;
use crate::analytics::accuracy::Accuracy;
use crate::analytics::insights::Insights;
use crate::ingest::http::classify_upload;
use crate::publish::PosterEvent;
use crate::store::{Feedback, LatencySummary};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How often the live feed sends the status line.
const STATUS_EVERY: Duration = Duration::from_secs(5);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee",
        description = "Movie poster genre tagging on the device: upload posters, read the history, \
                       correct genres, and the dashboard's analytics. With a password or tokens \
                       configured, send `Authorization: Bearer <token>`; state-changing requests \
                       made with the dashboard's session cookie need its `X-CSRF-Token`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route with its description.
pub fn router() -> OpenApiRouter<WebState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(upload))
        .routes(routes!(status))
        .routes(routes!(events))
        .routes(routes!(history))
        .routes(routes!(poster))
        .routes(routes!(thumbnail))
        .routes(routes!(feedback))
        .routes(routes!(insights))
        .routes(routes!(accuracy))
        .routes(routes!(poster_map))
        .routes(routes!(impact))
        .routes(routes!(model))
        .routes(routes!(cameras))
        .routes(routes!(capture))
}

/// `{"cameras": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct CameraList {
    pub cameras: Vec<crate::camera::CameraStatus>,
}

/// Every configured camera: online, last error, frames, captures, reconnects.
#[utoipa::path(get, path = "/api/v1/cameras", tag = "cameras",
    responses((status = 200, body = CameraList)))]
async fn cameras(State(state): State<WebState>) -> Response {
    crate::camera::api::list(State(state.cameras.clone())).await
}

/// Capture a frame now and answer its classification (as `POST
/// /api/v1/posters` does); the result also goes out on MQTT.
#[utoipa::path(post, path = "/api/v1/capture", tag = "cameras",
    params(crate::camera::api::Which),
    request_body(content = Option<crate::camera::api::Which>, description = "Optional: {\"camera\": \"NAME\"}"),
    responses(
        (status = 200, body = PosterEvent),
        (status = 400, description = "Malformed body", body = ApiError),
        (status = 404, description = "No such camera, or none configured", body = ApiError),
        (status = 502, description = "The camera sent a frame that is not an image", body = ApiError),
        (status = 503, description = "Camera offline or queue full (Retry-After)", body = ApiError),
    ))]
async fn capture(
    State(state): State<WebState>,
    query: Query<crate::camera::api::Which>,
    body: bytes::Bytes,
) -> Response {
    crate::camera::api::capture(State(state.cameras.clone()), query, body).await
}

/// A JSON error: `{"error": "what failed and what to do"}`.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    pub error: String,
}

/// Classify one poster image (the raw body, or a multipart form's `file`
/// field) and answer its genres once stored; the same event goes out on MQTT.
#[utoipa::path(
    post,
    path = "/api/v1/posters",
    tag = "posters",
    request_body(content = Vec<u8>, description = "A JPEG, PNG, WebP, BMP or GIF image", content_type = "image/jpeg"),
    responses(
        (status = 200, description = "Classified and stored", body = PosterEvent),
        (status = 400, description = "Empty body or bad form", body = ApiError),
        (status = 401, description = "Credentials needed", body = ApiError),
        (status = 403, description = "Read-only, cross-site or missing CSRF token", body = ApiError),
        (status = 413, description = "Over http.max_upload_bytes", body = ApiError),
        (status = 415, description = "Not an image", body = ApiError),
        (status = 422, description = "Truncated, corrupt or too many pixels", body = ApiError),
        (status = 503, description = "Queue full (see Retry-After) or shutting down", body = ApiError),
    )
)]
async fn upload(State(state): State<WebState>, req: Request) -> Response {
    match classify_upload(&state.http, req, "http").await {
        Ok(event) => Json(event).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Model, broker, queue and outbox status.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = Status), (status = 401, body = ApiError)))]
async fn status(State(state): State<WebState>) -> Result<Json<Status>, DataError> {
    data::status(&state).await.map(Json)
}

/// Server-sent events: `poster` (a [`PosterEvent`], as each result is
/// stored) and `status` (every 5 s: `broker`, `queue`, `outbox`, `today`,
/// `posters`). A client that falls behind gets a `lagged` event with the
/// number of events it missed.
#[utoipa::path(get, path = "/api/v1/events", tag = "status",
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream")))]
async fn events(
    State(state): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut live = state.live.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            let event = tokio::select! {
                received = live.recv() => match received {
                    Ok(poster) => Event::default().event("poster").json_data(&poster).ok(),
                    Err(RecvError::Lagged(n)) => Some(Event::default().event("lagged").data(n.to_string())),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => match data::status(&state).await {
                    Ok(s) => Event::default().event("status").json_data(serde_json::json!({
                        "broker": if s.broker_connected { "connected" } else { "disconnected" },
                        "queue": format!("{} / {}", s.queue_depth, s.queue_capacity),
                        "outbox": s.outbox_backlog,
                        "today": s.posters_today,
                        "posters": s.totals.posters,
                    })).ok(),
                    Err(_) => None,
                },
            };
            if let Some(event) = event {
                if tx.send(Ok(event)).await.is_err() {
                    return; // the browser went away
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task: the task ends when the receiver is dropped.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Classifications, newest first, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/history", tag = "posters", params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ApiError)))]
async fn history(
    State(state): State<WebState>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, DataError> {
    data::history(&state, query).await.map(Json)
}

/// One poster: its record, latest scores, thresholds and corrections.
#[utoipa::path(get, path = "/api/v1/posters/{id}", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image, 64 hex digits")),
    responses((status = 200, body = PosterView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn poster(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Json<PosterView>, DataError> {
    data::poster(&state, data::parse_id(&id)?).await.map(Json)
}

/// The poster's thumbnail (JPEG, longest side 160 px).
#[utoipa::path(get, path = "/api/v1/posters/{id}/thumbnail", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image")),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"), (status = 404, body = ApiError)))]
async fn thumbnail(State(state): State<WebState>, Path(id): Path<String>) -> Response {
    let id = match data::parse_id(&id) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    match data::thumbnail(&state, id).await {
        Ok(Some(jpeg)) => (
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
            .into_response(),
        Ok(None) => DataError::NotFound("no thumbnail for this poster".into()).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Correct a poster's genres (human feedback, counted by the accuracy page).
#[utoipa::path(post, path = "/api/v1/posters/{id}/feedback", tag = "posters",
    params(("id" = String, Path, description = "sha256 of the image")),
    request_body = FeedbackRequest,
    responses((status = 201, body = Feedback), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn feedback(
    State(state): State<WebState>,
    Path(id): Path<String>,
    body: Result<Json<FeedbackRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return DataError::BadRequest(format!(
                "{}: send {{\"genres\": [\"Drama\", ...]}}",
                rejection.body_text()
            ))
            .into_response()
        }
    };
    let result = match data::parse_id(&id) {
        Ok(id) => data::add_feedback(&state, id, request).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(stored) => (StatusCode::CREATED, Json(stored)).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Genre mix, confidence, trends, co-occurrence, top-3 patterns and drift.
#[utoipa::path(get, path = "/api/v1/insights", tag = "analytics",
    responses((status = 200, body = Insights)))]
async fn insights(State(state): State<WebState>) -> Result<Json<Insights>, DataError> {
    data::insights(&state).await.map(Json)
}

/// Accuracy against the people's corrections.
#[utoipa::path(get, path = "/api/v1/accuracy", tag = "analytics",
    responses((status = 200, body = Accuracy)))]
async fn accuracy(State(state): State<WebState>) -> Result<Json<Accuracy>, DataError> {
    data::accuracy(&state).await.map(Json)
}

/// The poster map (PCA + k-means over backbone features), with outliers.
/// 409 until the store has enough posters.
#[utoipa::path(get, path = "/api/v1/map", tag = "analytics",
    responses((status = 200, body = MapView), (status = 409, body = ApiError)))]
async fn poster_map(State(state): State<WebState>) -> Response {
    match data::poster_map(&state).await {
        Ok(MapAnswer::Ready(view)) => Json(view.as_ref().clone()).into_response(),
        Ok(MapAnswer::TooFew { have, needed }) => crate::ingest::http::error_response(
            StatusCode::CONFLICT,
            format!("the map needs at least {needed} posters with features; the store has {have}"),
        ),
        Err(err) => err.into_response(),
    }
}

/// Savings of automatic tagging against manual tagging.
#[utoipa::path(get, path = "/api/v1/impact", tag = "analytics", params(ImpactQuery),
    responses((status = 200, body = ImpactView), (status = 400, body = ApiError)))]
async fn impact(
    State(state): State<WebState>,
    Query(query): Query<ImpactQuery>,
) -> Result<Json<ImpactView>, DataError> {
    data::impact(&state, query).await.map(Json)
}

/// The model card and the latency measured on this board.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    #[serde(flatten)]
    pub card: ModelCard,
    pub latency: LatencySummary,
}

/// The model card and the latency measured on this board.
#[utoipa::path(get, path = "/api/v1/model", tag = "analytics",
    responses((status = 200, body = ModelView)))]
async fn model(State(state): State<WebState>) -> Result<Json<ModelView>, DataError> {
    let latency = data::model_latency(&state).await?;
    Ok(Json(ModelView {
        card: state.model.as_ref().clone(),
        latency,
    }))
}
