//! The HTML pages, one file each. Each loads its figures through
//! [`super::data`] (the same functions the JSON API answers with) and
//! renders them with maud inside the shared [`layout`](super::layout).

mod accuracy;
mod cameras;
mod heads;
mod history;
mod impact;
mod insights;
mod live;
mod map;
mod model;
mod poster;
mod tag;

use super::auth::Access;
use super::data::DataError;
use super::error::ApiError;
use super::layout;
use super::WebState;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

/// The pages; the Tag page's form takes `upload_limit` bytes of body.
pub fn routes(upload_limit: usize) -> Router<WebState> {
    Router::new()
        .route("/", get(live::live))
        .route(
            "/tag",
            get(tag::tag_form)
                .post(tag::tag_submit)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/history", get(history::history))
        .route(
            "/posters/{id}",
            get(poster::poster).post(poster::poster_feedback),
        )
        .route("/insights", get(insights::insights))
        .route("/accuracy", get(accuracy::accuracy))
        .route("/map", get(map::map))
        .route("/impact", get(impact::impact))
        .route("/model", get(model::model))
        .route("/cameras", get(cameras::cameras))
        .route("/cameras/capture", post(cameras::camera_capture))
}

/// A page from figures that may have failed to load: the page, or the
/// error with its status inside the same layout.
fn render<T>(
    state: &WebState,
    access: &Access,
    active: &str,
    title: &str,
    loaded: Result<T, DataError>,
    body: impl FnOnce(T) -> Markup,
) -> Response {
    match loaded {
        Ok(figures) => layout::page(state, access, active, title, body(figures)),
        Err(err) => failed(state, access, active, ApiError::from(err)),
    }
}

/// The error page inside the layout, with the error's status.
fn failed(state: &WebState, access: &Access, active: &str, err: ApiError) -> Response {
    layout::page_with_status(
        state,
        access,
        active,
        "Error",
        html! { h1 { "Something went wrong" } div.banner.bad { (err.message()) } },
        err.status(),
    )
}

/// A poster's thumbnail, tags and a line of details, linking to its page.
fn poster_card(
    id: &str,
    tags: &[String],
    top3: &[crate::model::GenreScore],
    meta: Markup,
) -> Markup {
    html! {
        a.card.poster href={ "/posters/" (id) } {
            (layout::thumb(id))
            div { (layout::tags(tags, top3)) div.meta { (meta) } }
        }
    }
}
