//! The analytics pages' figures: insights, accuracy, the poster map,
//! business impact.

use crate::analytics::accuracy::Accuracy;
use crate::analytics::insights::Insights;
use crate::web::data::{self, ImpactQuery, ImpactView, MapAnswer, MapView};
use crate::web::error::{ApiError, ErrorBody};
use crate::web::WebState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;

/// Genre mix, confidence, trends, co-occurrence, top-3 patterns and drift.
#[utoipa::path(get, path = "/api/v1/insights", tag = "analytics",
    responses((status = 200, body = Insights)))]
pub(super) async fn insights(State(state): State<WebState>) -> Result<Json<Insights>, ApiError> {
    Ok(Json(data::insights(&state).await?))
}

/// Accuracy against the people's corrections.
#[utoipa::path(get, path = "/api/v1/accuracy", tag = "analytics",
    responses((status = 200, body = Accuracy)))]
pub(super) async fn accuracy(State(state): State<WebState>) -> Result<Json<Accuracy>, ApiError> {
    Ok(Json(data::accuracy(&state).await?))
}

/// The poster map (PCA + k-means over backbone features), with outliers.
/// 409 until the store has enough posters.
#[utoipa::path(get, path = "/api/v1/map", tag = "analytics",
    responses((status = 200, body = MapView), (status = 409, body = ErrorBody)))]
pub(super) async fn poster_map(State(state): State<WebState>) -> Result<Json<MapView>, ApiError> {
    match data::poster_map(&state).await? {
        MapAnswer::Ready(view) => Ok(Json(view.as_ref().clone())),
        MapAnswer::TooFew { have, needed } => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the map needs at least {needed} posters with features; the store has {have}"),
        )),
    }
}

/// Savings of automatic tagging against manual tagging.
#[utoipa::path(get, path = "/api/v1/impact", tag = "analytics", params(ImpactQuery),
    responses((status = 200, body = ImpactView), (status = 400, body = ErrorBody)))]
pub(super) async fn impact(
    State(state): State<WebState>,
    Query(query): Query<ImpactQuery>,
) -> Result<Json<ImpactView>, ApiError> {
    Ok(Json(data::impact(&state, query).await?))
}
