//! `/posters/{id}`: one poster's scores and corrections, and the form to
//! correct its genres.

use super::{failed, layout};
use crate::feedback::Via;
use crate::web::auth::Access;
use crate::web::data;
use crate::web::error::ApiError;
use crate::web::layout::time;
use crate::web::WebState;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use maud::html;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct SavedQuery {
    saved: Option<u8>,
}

pub(super) async fn poster(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(saved): Query<SavedQuery>,
) -> Response {
    let view = match data::parse_id(&id) {
        Ok(id) => data::poster(&state, id).await,
        Err(err) => Err(err),
    };
    let view = match view {
        Ok(v) => v,
        Err(err) => return failed(&state, &access, "/history", err.into()),
    };
    poster_page(
        &state,
        &access,
        &view,
        saved.saved.is_some(),
        None,
        StatusCode::OK,
    )
}

fn poster_page(
    state: &WebState,
    access: &Access,
    view: &data::PosterView,
    saved: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let p = &view.detail.poster;
    let id = p.id.as_str();
    let current: Vec<String> = view
        .feedback
        .last()
        .map(|f| f.genres.clone())
        .or_else(|| view.detail.latest.as_ref().map(|l| l.tags.clone()))
        .unwrap_or_default();
    let body = html! {
        h1 { "Poster" }
        @if saved { div.banner.ok role="status" id="saved" { "Correction saved. The accuracy page counts it now." } }
        @if let Some(error) = error { div.banner.bad role="alert" { (error) } }
        div.two {
            div.card {
                div.poster {
                    img.thumb src={ "/api/v1/posters/" (id) "/thumbnail" } alt="poster thumbnail" width="120" style="width:120px";
                    div.meta {
                        div { "First seen " (time(p.first_seen_ms)) " via " (p.source) }
                        div { "Last seen " (time(p.last_seen_ms)) " · " (view.detail.sightings) " sighting(s)" }
                        div { (p.width) "×" (p.height) " px · " (p.size_bytes / 1024) " KB" }
                        div { code { (id) } }
                    }
                }
                @if let Some(latest) = &view.detail.latest {
                    h2 { "Model says" }
                    (layout::tags(&latest.tags, &latest.top3))
                    p.muted { (latest.model) " · " (format!("{:.0}", latest.latency_ms)) " ms · " (time(latest.created_at_ms)) }
                    (layout::score_bars(&latest.genres, &latest.tags, &view.thresholds))
                }
            }
            div.card {
                h2 { "Correct its genres" }
                @if access.can_write() {
                    form method="post" action={ "/posters/" (id) } id="feedback" {
                        @if let Some(csrf) = access.csrf() { input type="hidden" name="csrf" value=(csrf); }
                        div.checks {
                            @for g in state.learning.known_genres().iter() {
                                label { input type="checkbox" name="genre" value=(g) checked[current.contains(g)]; " " (g) }
                            }
                        }
                        p { label for="by" { "Your name (optional)" } input id="by" name="by" maxlength="64"; }
                        p {
                            button type="submit" { "Save correction" }
                            " "
                            @if !current.is_empty() {
                                button.secondary type="submit" name="kept" value="1" formnovalidate title="The tags are right as they are" { "Tags are right" }
                            }
                        }
                    }
                } @else {
                    p { a href={ "/login?next=/posters/" (id) } { "Log in" } " to correct this poster." }
                }
                @if !view.feedback.is_empty() {
                    h2 { "Corrections" }
                    table {
                        tr { th { "When" } th { "Genres" } th { "By" } }
                        @for f in view.feedback.iter().rev() {
                            tr {
                                td { (time(f.created_at_ms)) }
                                td { (f.genres.join(", ")) @if f.kept { span.muted { " (kept as tagged)" } } }
                                td { (f.by.as_deref().unwrap_or("")) span.muted { " via " (f.via) } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page_with_status(state, access, "/history", "Poster", body, status)
}

pub(super) async fn poster_feedback(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let id = match data::parse_id(&id) {
        Ok(id) => id,
        Err(err) => return failed(&state, &access, "/history", err.into()),
    };
    // `genre` repeats (one per checked box): read the pairs by hand.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    // "Tags are right" sends the boxes too: they are the tags, so only
    // `kept` counts then.
    let kept = pairs.iter().any(|(k, v)| k == "kept" && v == "1");
    let request = data::FeedbackRequest {
        genres: if kept {
            Vec::new()
        } else {
            pairs
                .iter()
                .filter(|(k, _)| k == "genre")
                .map(|(_, v)| v.clone())
                .collect()
        },
        by: pairs
            .iter()
            .find(|(k, _)| k == "by")
            .map(|(_, v)| v.clone()),
        kept,
    };
    match data::add_feedback(&state, id.clone(), request, Via::Dashboard).await {
        Ok(_) => Redirect::to(&format!("/posters/{id}?saved=1")).into_response(),
        Err(err) => {
            let err = ApiError::from(err);
            match data::poster(&state, id).await {
                Ok(view) => poster_page(
                    &state,
                    &access,
                    &view,
                    false,
                    Some(err.message()),
                    err.status(),
                ),
                Err(_) => failed(&state, &access, "/history", err),
            }
        }
    }
}
