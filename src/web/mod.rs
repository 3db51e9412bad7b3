//! The on-device dashboard and its JSON API, served by `marquee serve` on
//! `[http] listen`.
//!
//! Every page is rendered on the server (maud templates, SVG charts drawn
//! in Rust) from the same functions the JSON API answers with, so the board
//! needs no CDN and a phone gets a page it can show at once. The one
//! stylesheet and one script are embedded in the binary.
//!
//! | page | API |
//! | --- | --- |
//! | `/` live feed and status | `GET /api/v1/status`, `GET /api/v1/events` (SSE) |
//! | `/tag` tag a poster | `POST /api/v1/posters` |
//! | `/history`, `/posters/{id}` | `GET /api/v1/history`, `GET /api/v1/posters/{id}`, `POST /api/v1/posters/{id}/feedback` |
//! | `/insights` | `GET /api/v1/insights` |
//! | `/accuracy` | `GET /api/v1/accuracy` |
//! | `/map` | `GET /api/v1/map` |
//! | `/impact` | `GET /api/v1/impact` |
//! | `/model` | `GET /api/v1/model` |
//!
//! `/api/openapi.json` is generated from the handlers' annotations
//! (utoipa), so it cannot drift from the routes. Access rules: [`auth`].
//! Every refusal is an [`error::ApiError`]. `/healthz`, `/readyz` and
//! `/metrics` ([`health`]) are open to probes.

pub mod api;
mod assets;
pub mod auth;
mod charts;
pub mod data;
pub mod error;
mod health;
mod layout;
pub mod model_card;
pub mod net;
mod pages;
pub mod samples;
pub mod server;

use crate::analytics::insights::ReferenceMix;
use crate::config::DashboardConfig;
use crate::ingest::http::Uploads;
use crate::poster::PosterEvent;
use crate::publish::PublishHandle;
use crate::store::{StoreHandle, StoreReader};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

/// Live events kept for a slow browser before it skips ahead.
pub const LIVE_BUFFER: usize = 64;

/// Everything the dashboard's handlers share; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    /// Uploads into the classify queue.
    pub uploads: Uploads,
    /// The store's writer (health probes, corrections).
    pub store: StoreHandle,
    pub publish: PublishHandle,
    /// Read-only connections for the pages.
    pub reader: StoreReader,
    /// Each stored classification, as it is committed.
    pub live: broadcast::Sender<PosterEvent>,
    pub model: model_card::CardSlot,
    /// Heads: retrain, compare, promote, roll back, export, import.
    pub learning: crate::learning::Learning,
    pub reference: Option<Arc<ReferenceMix>>,
    pub config: Arc<DashboardConfig>,
    pub auth: auth::Auth,
    pub map: data::MapCache,
    pub latest: data::LatestCache,
    pub samples: Arc<Vec<samples::Sample>>,
    pub device_id: Arc<str>,
    pub started: Instant,
    /// Whether `http.listen` is a loopback address (no warning banner then).
    pub listen_loopback: bool,
    /// The configured cameras (status, capture on demand).
    pub cameras: crate::camera::CameraRegistry,
    /// Allowed Host names, trusted proxies.
    pub net: Arc<net::NetPolicy>,
    /// `[http] metrics_token`: `/metrics` needs it when set.
    pub metrics_token: Option<Arc<str>>,
}

/// Request bodies at most, except on the routes that take an upload: a
/// correction, a capture request, a form.
pub const SMALL_BODY: usize = 64 * 1024;

/// The whole HTTP surface: pages, API, OpenAPI document, health, assets.
/// `upload_limit` is the body limit of the upload routes; the others take
/// [`SMALL_BODY`].
pub fn router(state: WebState, upload_limit: usize) -> Router {
    let (api, openapi) = api::router(upload_limit).split_for_parts();
    let openapi = Arc::new(openapi);
    let mut app = Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&openapi);
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(auth::routes());
    if state.config.enabled {
        app = app.merge(pages::routes(upload_limit));
    }
    app.merge(assets::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn(assets::security_headers))
        .merge(health::routes())
        .layer(axum::extract::DefaultBodyLimit::max(SMALL_BODY))
        .with_state(state)
        // gzip when the client asks for it; tower-http leaves images and
        // server-sent events (which must flush per event) uncompressed.
        .layer(tower_http::compression::CompressionLayer::new())
}

/// Unknown paths: a page for browsers, JSON for programs.
async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let message = "no such endpoint: the dashboard is at /, the API is described at \
                   /api/openapi.json (POST /api/v1/posters to classify), health at \
                   /healthz, /readyz and /metrics";
    if wants_html {
        layout::error_page(axum::http::StatusCode::NOT_FOUND, "Not found", message)
    } else {
        axum::response::IntoResponse::into_response(error::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            message,
        ))
    }
}
