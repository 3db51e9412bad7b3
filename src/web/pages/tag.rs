//! `/tag`: upload a poster (or try a drawn sample) and see its genres.

use crate::poster::{PosterError, PosterEvent};
use crate::web::auth::Access;
use crate::web::error::ApiError;
use crate::web::layout::{self, page};
use crate::web::WebState;
use axum::extract::{Extension, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use bytes::Bytes;
use maud::{html, Markup};
use serde::Deserialize;

/// The `source` of posters uploaded on this page.
const SOURCE: &str = "dashboard";
/// The `source` of the drawn samples.
const SAMPLE_SOURCE: &str = "sample";

fn tag_body(state: &WebState, access: &Access, result: Option<Markup>) -> Markup {
    let csrf_query = access
        .csrf()
        .map(|c| format!("?csrf={c}"))
        .unwrap_or_default();
    html! {
        h1 { "Tag a poster" }
        @if !access.can_write() {
            div.banner { "Read-only: " a href="/login?next=/tag" { "log in" } " to tag posters." }
        } @else {
            form.card.drop id="drop" method="post" action={ "/tag" (csrf_query) } enctype="multipart/form-data" {
                p { "Drop a poster image here, or choose one." }
                input type="file" name="file" accept="image/*" required;
                noscript { p { button type="submit" { "Classify" } } }
            }
            h2 { "Or try a drawn sample" }
            div.samples {
                @for (i, sample) in state.samples.iter().enumerate() {
                    form.sample method="post" action="/tag" {
                        @if let Some(csrf) = access.csrf() { input type="hidden" name="csrf" value=(csrf); }
                        input type="hidden" name="sample" value=(i);
                        button type="submit" title={ "Classify the " (sample.name) " sample" } {
                            img src={ "/samples/" (i) ".jpg" } alt={ (sample.name) " sample poster" } width="64" height="91";
                        }
                    }
                }
            }
        }
        div id="result" { @if let Some(result) = result { (result) } }
    }
}

pub(super) async fn tag_form(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let body = tag_body(&state, &access, None);
    page(&state, &access, "/tag", "Tag a poster", body)
}

pub(super) fn result_fragment(
    state: &WebState,
    result: &Result<PosterEvent, PosterError>,
) -> Markup {
    match result {
        Ok(event) => {
            let thresholds = state.model.get().thresholds();
            html! {
                div.card id="tag-result" {
                    div.poster {
                        (layout::thumb(&event.id))
                        div {
                            h2 { "Genres" }
                            @if event.tags.is_empty() {
                                p.muted { "No genre is over its threshold; the three best guesses are:" }
                            }
                            (layout::tags(&event.tags, &event.top3))
                            p.meta { a href={ "/posters/" (event.id) } { "Open this poster (correct its genres)" } }
                        }
                    }
                    (layout::score_bars(&event.genres, &event.tags, &thresholds))
                }
            }
        }
        Err(err) => html! { div.banner.bad role="alert" id="tag-error" { (err.to_string()) } },
    }
}

/// The Tag form: a multipart upload (`file`) or a sample (`sample=N`).
/// With `X-Fragment: 1` (the page's script) only the result is returned.
pub(super) async fn tag_submit(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let fragment = headers.get("x-fragment").is_some();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let result = if content_type.starts_with("application/x-www-form-urlencoded") {
        sample_upload(&state, req).await
    } else if content_type.starts_with("multipart/form-data") {
        multipart_tag(&state, req).await
    } else {
        state.uploads.classify_request(req, SOURCE).await
    };
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(err) => ApiError::from(err).status(),
    };
    let fragment_markup = result_fragment(&state, &result);
    if fragment {
        return layout::html_response(status, fragment_markup);
    }
    let body = tag_body(&state, &access, Some(fragment_markup));
    layout::page_with_status(&state, &access, "/tag", "Tag a poster", body, status)
}

/// A multipart form: `file` (an image) or `sample` (a drawn sample's number).
async fn multipart_tag(state: &WebState, req: Request) -> Result<PosterEvent, PosterError> {
    let samples = &state.samples;
    state
        .uploads
        .classify_form(req, SOURCE, |which| {
            sample_bytes(samples, which).map(|bytes| (bytes, SAMPLE_SOURCE))
        })
        .await
}

#[derive(Deserialize)]
struct SampleForm {
    sample: String,
}

async fn sample_upload(state: &WebState, req: Request) -> Result<PosterEvent, PosterError> {
    let Form(form) = Form::<SampleForm>::from_request(req, &())
        .await
        .map_err(|r| PosterError::Multipart(r.body_text()))?;
    classify_sample(state, &form.sample).await
}

async fn classify_sample(state: &WebState, which: &str) -> Result<PosterEvent, PosterError> {
    let bytes = sample_bytes(&state.samples, which)?;
    state.uploads.classify(bytes, SAMPLE_SOURCE).await
}

/// The drawn sample numbered `which`.
fn sample_bytes(
    samples: &[crate::web::samples::Sample],
    which: &str,
) -> Result<Bytes, PosterError> {
    which
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| samples.get(i))
        .map(|sample| Bytes::from(sample.jpeg.clone()))
        .ok_or_else(|| PosterError::Multipart(format!("no sample `{which}`")))
}
