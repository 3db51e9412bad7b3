//! The HTML pages. Each loads its figures through [`super::data`] (the
//! same functions the JSON API uses) and renders them with maud.

use super::auth::Access;
use super::charts::{self, MapDot};
use super::data::{self, DataError, HistoryQuery, ImpactQuery, MapAnswer};
use super::layout::{self, opt3, opt_pct, page, pct, time};
use super::WebState;
use crate::ingest::http::{classify_bytes, classify_upload};
use crate::ingest::IngestError;
use crate::publish::PosterEvent;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use bytes::Bytes;
use maud::{html, Markup};
use serde::Deserialize;

/// Dots drawn on the poster map at most (outliers always are).
const MAP_DRAWN: usize = 1200;
/// Outlier thumbnails on the map page unless all are asked for: with three
/// samples for each of up to eight clusters, about 30 thumbnails of ~6 KB
/// keep the page under 200 KB.
const MAP_OUTLIERS_SHOWN: usize = 6;

#[derive(Debug, Default, Deserialize)]
struct MapQuery {
    /// `all` lists every outlier's thumbnail.
    outliers: Option<String>,
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(live))
        .route("/tag", get(tag_form).post(tag_submit))
        .route("/history", get(history))
        .route("/posters/{id}", get(poster).post(poster_feedback))
        .route("/insights", get(insights))
        .route("/accuracy", get(accuracy))
        .route("/map", get(map))
        .route("/impact", get(impact))
        .route("/model", get(model))
        .route("/cameras", get(cameras))
        .route("/cameras/capture", axum::routing::post(camera_capture))
}

/// An HTML error page without the navigation (used before access is known).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    layout::html_response(
        status,
        html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Marquee" }
                    link rel="stylesheet" href={ "/assets/app.css?v=" (super::assets::version()) };
                }
                body { main {
                    h1 { (title) }
                    div.banner.bad { (message) }
                    p { a href="/" { "Back to the dashboard" } }
                } }
            }
        },
    )
}

fn failed(state: &WebState, access: &Access, active: &str, err: &DataError) -> Response {
    layout::page_with_status(
        state,
        access,
        active,
        "Error",
        html! { h1 { "Something went wrong" } div.banner.bad { (err.to_string()) } },
        err.status(),
    )
}

pub fn login_page(
    state: &WebState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(error) = error { div.banner.bad role="alert" { (error) } }
        @if !state.auth.has_password() {
            div.banner { "No password is set on this device: there is nothing to log in to." }
        }
        form.card method="post" action="/login" {
            input type="hidden" name="next" value=(next.unwrap_or("/"));
            label for="password" { "Password" }
            input id="password" type="password" name="password" autocomplete="current-password" required autofocus;
            p { button type="submit" { "Log in" } }
        }
    };
    layout::page_with_status(state, &Access::Anonymous, "", "Log in", body, status)
}

fn status_cards(status: &data::Status) -> Markup {
    html! {
        div.stats {
            div.stat { span { "Model" } b { (status.model) } }
            div.stat {
                span { "Broker" }
                b data-status="broker" class=(if status.broker_connected { "ok" } else { "bad" }) {
                    (if status.broker_connected { "connected" } else { "disconnected" })
                }
            }
            div.stat { span { "Queue" } b data-status="queue" { (status.queue_depth) " / " (status.queue_capacity) } }
            div.stat { span { "Outbox backlog" } b data-status="outbox" { (status.outbox_backlog) } }
            div.stat { span { "Posters today" } b data-status="today" { (status.posters_today) } }
            div.stat { span { "Posters kept" } b data-status="posters" { (status.totals.posters) } }
        }
        @if let Some(err) = &status.broker_error {
            div.banner.bad { "MQTT broker unreachable: " (err) ". Results are kept in the outbox and sent when it is back." }
        }
    }
}

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

async fn live(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let (status, latest) = match tokio::try_join!(data::status(&state), data::latest(&state, 12)) {
        Ok(v) => v,
        Err(err) => return failed(&state, &access, "/", &err),
    };
    let body = html! {
        h1 { "Live" }
        (status_cards(&status))
        h2 { "Latest posters" }
        div.grid id="live-list" {
            @for r in &latest {
                (poster_card(r.poster_id.as_str(), &r.tags, &r.top3, html! { (time(r.created_at_ms)) " · " (r.source) }))
            }
        }
        @if latest.is_empty() {
            p.muted id="live-empty" { "Nothing classified yet. " a href="/tag" { "Tag a poster" } " or send one: " code { "curl --data-binary @poster.jpg http://<device>/api/v1/posters" } }
        }
    };
    page(&state, &access, "/", "Live", body)
}

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

async fn tag_form(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let body = tag_body(&state, &access, None);
    page(&state, &access, "/tag", "Tag a poster", body)
}

fn result_fragment(state: &WebState, result: &Result<PosterEvent, IngestError>) -> Markup {
    match result {
        Ok(event) => {
            let thresholds = state.model.thresholds();
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
async fn tag_submit(
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
        classify_upload(&state.http, req, "dashboard").await
    };
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(err) => err.status(),
    };
    let fragment_markup = result_fragment(&state, &result);
    if fragment {
        return layout::html_response(status, fragment_markup);
    }
    let body = tag_body(&state, &access, Some(fragment_markup));
    layout::page_with_status(&state, &access, "/tag", "Tag a poster", body, status)
}

/// A multipart form: `file` (an image) or `sample` (a drawn sample's number).
async fn multipart_tag(state: &WebState, req: Request) -> Result<PosterEvent, IngestError> {
    use axum::extract::{FromRequest, Multipart};
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|r| IngestError::Multipart(r.body_text()))?;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| crate::ingest::http::multipart_error(e, state.http.max_upload_bytes))?;
        let Some(field) = field else {
            return Err(IngestError::Multipart("no `file` field".to_owned()));
        };
        match field.name() {
            Some("file") => {
                let bytes = field.bytes().await.map_err(|e| {
                    crate::ingest::http::multipart_error(e, state.http.max_upload_bytes)
                })?;
                if bytes.is_empty() {
                    return Err(IngestError::Empty);
                }
                let size = bytes.len() as u64;
                if size > state.http.max_upload_bytes {
                    return Err(IngestError::TooLarge {
                        size,
                        limit: state.http.max_upload_bytes,
                    });
                }
                return classify_bytes(&state.http, bytes, "dashboard").await;
            }
            Some("sample") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| IngestError::Multipart(e.body_text()))?;
                return classify_sample(state, &text).await;
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
struct SampleForm {
    sample: String,
}

async fn sample_upload(state: &WebState, req: Request) -> Result<PosterEvent, IngestError> {
    use axum::extract::FromRequest;
    let Form(form) = Form::<SampleForm>::from_request(req, &())
        .await
        .map_err(|r| IngestError::Multipart(r.body_text()))?;
    classify_sample(state, &form.sample).await
}

async fn classify_sample(state: &WebState, which: &str) -> Result<PosterEvent, IngestError> {
    let sample = which
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| state.samples.get(i))
        .ok_or_else(|| IngestError::Multipart(format!("no sample `{which}`")))?;
    classify_bytes(&state.http, Bytes::from(sample.jpeg.clone()), "sample").await
}

async fn history(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let page_data = match data::history(&state, query).await {
        Ok(p) => p,
        Err(err) => return failed(&state, &access, "/history", &err),
    };
    let q = &page_data.query;
    let link = |page: usize| {
        let mut q = q.clone();
        q.page = Some(page);
        format!(
            "/history?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    let body = html! {
        h1 { "History" }
        form.filters.card method="get" action="/history" {
            div { label for="genre" { "Genre" }
                select id="genre" name="genre" {
                    option value="" { "any" }
                    @for g in &page_data.genres { option value=(g) selected[q.genre.as_deref() == Some(g.as_str())] { (g) } }
                } }
            div { label for="source" { "Source" }
                select id="source" name="source" {
                    option value="" { "any" }
                    @for s in &page_data.sources { option value=(s) selected[q.source.as_deref() == Some(s.as_str())] { (s) } }
                } }
            div { label for="from" { "From" } input id="from" type="date" name="from" value=[q.from.as_deref()]; }
            div { label for="to" { "To" } input id="to" type="date" name="to" value=[q.to.as_deref()]; }
            div { label for="min_confidence" { "Confidence ≥" } input id="min_confidence" type="number" step="0.05" min="0" max="1" name="min_confidence" value=[q.min_confidence]; }
            div { label for="max_confidence" { "Confidence <" } input id="max_confidence" type="number" step="0.05" min="0" max="1" name="max_confidence" value=[q.max_confidence]; }
            div { button type="submit" { "Filter" } }
        }
        p.muted { (page_data.total) " classifications match." }
        div.grid {
            @for r in &page_data.items {
                (poster_card(r.poster_id.as_str(), &r.tags, &r.top3, html! {
                    (time(r.created_at_ms)) " · " (r.source) " · best " (pct(f64::from(r.genres.first().map_or(0.0, |g| g.score))))
                }))
            }
        }
        div.pager {
            @if page_data.page > 1 { a.button href=(link(page_data.page - 1)) rel="prev" { "← Newer" } }
            span { "Page " (page_data.page) " of " (page_data.pages) }
            @if page_data.page < page_data.pages { a.button href=(link(page_data.page + 1)) rel="next" { "Older →" } }
        }
    };
    page(&state, &access, "/history", "History", body)
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<u8>,
}

async fn poster(
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
        Err(err) => return failed(&state, &access, "/history", &err),
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
                            @for g in &state.model.labels {
                                label { input type="checkbox" name="genre" value=(g) checked[current.contains(g)]; " " (g) }
                            }
                        }
                        p { label for="by" { "Your name (optional)" } input id="by" name="by" maxlength="64"; }
                        p { button type="submit" { "Save correction" } }
                    }
                } @else {
                    p { a href={ "/login?next=/posters/" (id) } { "Log in" } " to correct this poster." }
                }
                @if !view.feedback.is_empty() {
                    h2 { "Corrections" }
                    table {
                        tr { th { "When" } th { "Genres" } th { "By" } }
                        @for f in view.feedback.iter().rev() {
                            tr { td { (time(f.created_at_ms)) } td { (f.genres.join(", ")) } td { (f.by.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    };
    layout::page_with_status(state, access, "/history", "Poster", body, status)
}

async fn poster_feedback(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let id = match data::parse_id(&id) {
        Ok(id) => id,
        Err(err) => return failed(&state, &access, "/history", &err),
    };
    // `genre` repeats (one per checked box): read the pairs by hand.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let request = data::FeedbackRequest {
        genres: pairs
            .iter()
            .filter(|(k, _)| k == "genre")
            .map(|(_, v)| v.clone())
            .collect(),
        by: pairs
            .iter()
            .find(|(k, _)| k == "by")
            .map(|(_, v)| v.clone()),
    };
    match data::add_feedback(&state, id.clone(), request).await {
        Ok(_) => Redirect::to(&format!("/posters/{id}?saved=1")).into_response(),
        Err(err) => match data::poster(&state, id).await {
            Ok(view) => poster_page(
                &state,
                &access,
                &view,
                false,
                Some(&err.to_string()),
                err.status(),
            ),
            Err(_) => failed(&state, &access, "/history", &err),
        },
    }
}

async fn insights(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let i = match data::insights(&state).await {
        Ok(i) => i,
        Err(err) => return failed(&state, &access, "/insights", &err),
    };
    let max_share = i.distribution.iter().map(|g| g.share).fold(0.0, f64::max);
    let dist_rows: Vec<(String, f64, String, Option<f64>)> = i
        .distribution
        .iter()
        .map(|g| {
            (
                g.label.clone(),
                g.share,
                format!("{} ({})", pct(g.share), g.posters),
                None,
            )
        })
        .collect();
    let drift_rows: Vec<(String, f64, String, Option<f64>)> = i
        .drift
        .genres
        .iter()
        .map(|g| {
            (
                g.label.clone(),
                g.today,
                format!(
                    "{} vs {}{}",
                    pct(g.today),
                    pct(g.reference),
                    if g.flagged { " ⚠" } else { "" }
                ),
                Some(g.reference),
            )
        })
        .collect();
    let drift_max = i
        .drift
        .genres
        .iter()
        .map(|g| g.today.max(g.reference))
        .fold(0.0, f64::max);
    let counts: Vec<u64> = i.confidence.iter().map(|b| b.count).collect();
    let per_day: Vec<f64> = i.sightings_per_day.iter().map(|&n| n as f64).collect();
    let drift_class = match i.drift.status {
        "stable" => "banner ok",
        "drift" => "banner bad",
        _ => "banner",
    };
    let body = html! {
        h1 { "Insights" }
        div.stats {
            div.stat { span { "Posters" } b { (i.posters) } }
            div.stat { span { "Mean confidence" } b { (pct(i.mean_confidence)) } }
            div.stat { span { "No genre over threshold" } b { (i.untagged) } }
        }
        @if let Some(w) = &i.pattern_warning { div.banner.bad role="alert" id="pattern-warning" { (w) } }
        @if i.posters == 0 {
            p.muted { "Nothing classified yet: the charts fill in as posters arrive." }
        }
        div.two {
            div.card { h2 { "Genre distribution" } (charts::hbars(&dist_rows, max_share, "Share of posters tagged with each genre")) }
            div.card { h2 { "Confidence" } p.muted { "The best genre's score per poster." } (charts::histogram(&counts, "0%", "100%", "Confidence histogram")) }
            div.card {
                h2 { "Posters per day" }
                @if per_day.is_empty() { p.muted { "No history yet." } } @else {
                    (charts::line(&per_day, i.days.first().map(String::as_str).unwrap_or(""), i.days.last().map(String::as_str).unwrap_or(""), None, "Sightings per day"))
                }
                h2 { "Trends (last 14 days)" }
                table {
                    tr { th { "Genre" } th { "Trend" } th.n { "points/week" } }
                    @for t in i.trends.iter().take(8) {
                        tr { td { (t.label) } td { (t.direction) } td.n { (format!("{:+.1}", t.points_per_week)) } }
                    }
                }
            }
            div.card {
                h2 { "Top-3 patterns" }
                p.muted { "The three best genres of each poster. One pattern covering most posters means a collapsed model." }
                table {
                    tr { th { "Pattern" } th.n { "Posters" } th.n { "Share" } }
                    @for p in &i.patterns { tr { td { (p.genres.join(" + ")) } td.n { (p.posters) } td.n { (pct(p.share)) } } }
                }
            }
        }
        div.card.scroll {
            h2 { "Genre co-occurrence" }
            @if i.cooccurrence.labels.is_empty() { p.muted { "No tagged posters yet." } } @else {
                (charts::heatmap(&i.cooccurrence.labels, &i.cooccurrence.counts, "genre", "genre", "Posters tagged with both genres"))
            }
        }
        div.card {
            h2 { "Drift: today against the validation mix" }
            div class=(drift_class) id="drift-status" { strong { (i.drift.status) } ": " (i.drift.message) }
            @if !drift_rows.is_empty() {
                p.muted { "Bar: share of today's posters with the genre; red line: share on the model's " (i.drift.reference_posters) " validation posters." }
                (charts::hbars(&drift_rows, drift_max, "Today's genre mix against the validation mix"))
            }
        }
    };
    page(&state, &access, "/insights", "Insights", body)
}

async fn accuracy(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let a = match data::accuracy(&state).await {
        Ok(a) => a,
        Err(err) => return failed(&state, &access, "/accuracy", &err),
    };
    let body = html! {
        h1 { "Accuracy against your corrections" }
        div.stats {
            div.stat { span { "Corrected posters" } b id="corrections" { (a.corrections) } }
            div.stat { span { "Kept as tagged" } b { (a.confirmed) } }
            div.stat { span { "Micro precision" } b { (opt_pct(a.micro_precision)) } }
            div.stat { span { "Micro recall" } b { (opt_pct(a.micro_recall)) } }
            div.stat { span { "Micro F1" } b id="micro-f1" { (opt_pct(a.micro_f1)) } }
            div.stat { span { "Best genre right" } b { (opt_pct(a.hit_at_1)) } }
        }
        @if let Some(w) = &a.warning { div.banner { (w) } }
        div.card.scroll {
            h2 { "Per genre" }
            table id="per-genre" {
                tr { th { "Genre" } th.n { "Precision" } th.n { "Recall" } th.n { "F1" } th.n { "ROC-AUC" } th.n { "Has it" } th.n { "Tagged" } th.n { "Backed by" } }
                @for g in a.per_genre.iter().filter(|g| g.backed_by > 0 || g.support > 0) {
                    tr { td { (g.label) } td.n { (opt_pct(g.precision)) } td.n { (opt_pct(g.recall)) } td.n { (opt_pct(g.f1)) } td.n { (opt3(g.roc_auc)) } td.n { (g.support) } td.n { (g.predicted) } td.n { (g.backed_by) } }
                }
            }
            @if a.corrections == 0 { p.muted { "No corrections yet. Open a poster from the history and correct its genres." } }
        }
        @if let Some(f) = &a.five_genre {
            div.card.scroll {
                h2 { "Five-genre view" }
                p.muted { "Action, Comedy, Drama, Romance, Thriller: the model's best of the five against the genre you chose. " (f.posters) " corrected posters have one of them; accuracy " (pct(f.accuracy)) "." }
                (charts::heatmap(&f.labels, &f.confusion.iter().map(|r| r.iter().map(|&c| c as u64).collect()).collect::<Vec<Vec<u64>>>(), "your genre", "model's", "Five-genre confusion matrix"))
            }
        }
    };
    page(&state, &access, "/accuracy", "Accuracy", body)
}

async fn map(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<MapQuery>,
) -> Response {
    let all_outliers = query.outliers.as_deref() == Some("all");
    let answer = match data::poster_map(&state).await {
        Ok(a) => a,
        Err(err) => return failed(&state, &access, "/map", &err),
    };
    let body = match answer {
        MapAnswer::TooFew { have, needed } => html! {
            h1 { "Poster map" }
            p.muted { "The map needs at least " (needed) " posters; the store has " (have) " with features." }
        },
        MapAnswer::Ready(view) => {
            let hrefs: Vec<String> = view
                .map
                .points
                .iter()
                .map(|p| format!("/posters/{}", p.poster_id))
                .collect();
            // Every outlier, and an even sample of the rest: the page stays
            // light on a phone whatever the number of posters.
            let step = view.map.points.len().div_ceil(MAP_DRAWN).max(1);
            let dots: Vec<MapDot<'_>> = view
                .map
                .points
                .iter()
                .zip(&hrefs)
                .enumerate()
                .filter(|(i, (p, _))| p.outlier || i % step == 0)
                .map(|(_, pair)| pair)
                .map(|(p, href)| MapDot {
                    x: p.x,
                    y: p.y,
                    cluster: p.cluster,
                    outlier: p.outlier,
                    href: p.outlier.then_some(href.as_str()),
                })
                .collect();
            // The most unusual first: those are the frames to check.
            let mut outliers: Vec<&crate::analytics::map::MapPoint> =
                view.map.points.iter().filter(|p| p.outlier).collect();
            outliers.sort_by(|a, b| b.outlier_score.total_cmp(&a.outlier_score));
            let total = outliers.len();
            if !all_outliers {
                outliers.truncate(MAP_OUTLIERS_SHOWN);
            }
            let hidden = total - outliers.len();
            html! {
                h1 { "Poster map" }
                p.muted {
                    (view.map.posters) " newest posters (of " (view.posters_with_features) "), their backbone features reduced to 2-D with PCA ("
                    (pct(view.map.explained_variance[0] + view.map.explained_variance[1])) " of the variance) and grouped by k-means. Computed in " (view.compute_ms) " ms at " (time(view.computed_at_ms)) "."
                }
                div.card { (charts::scatter(&dots, "Poster map")) }
                h2 { "Clusters" }
                div.grid {
                    @for (c, genres) in view.map.clusters.iter().zip(&view.cluster_genres) {
                        div.card {
                            div { span class={ "swatch s" (c.id % charts::CLUSTER_CLASSES) } {} strong { "Cluster " (c.id + 1) } " · " (c.size) " posters" }
                            div.tags { @for g in genres { span.tag { (g) } } }
                            div.samples { @for s in &c.samples { a href={ "/posters/" (s) } { (layout::thumb(s.as_str())) } } }
                        }
                    }
                }
                h2 { "Outliers (" (view.map.outliers) ")" }
                p.muted { "Far from every cluster: often frames that are not posters (a wall, a hand, glare). Check them." }
                div.samples id="outliers" {
                    @for p in &outliers { a href={ "/posters/" (p.poster_id) } title={ "outlier score " (format!("{:.1}", p.outlier_score)) } { (layout::thumb(p.poster_id.as_str())) } }
                }
                @if hidden > 0 {
                    p { a href="/map?outliers=all#outliers" { "Show all " (total) " outliers" } " (the " (outliers.len()) " most unusual are shown)" }
                }
            }
        }
    };
    page(&state, &access, "/map", "Poster map", body)
}

async fn impact(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<ImpactQuery>,
) -> Response {
    let v = match data::impact(&state, query).await {
        Ok(v) => v,
        Err(err) => return failed(&state, &access, "/impact", &err),
    };
    let i = &v.impact;
    let c = &v.currency;
    let money = |x: f64| format!("{c}{x:.0}");
    let savings: Vec<f64> = i.curve.iter().map(|p| p.savings).collect();
    let marker = i
        .curve
        .iter()
        .position(|p| (p.threshold - i.inputs.threshold).abs() < 0.026);
    let body = html! {
        h1 { "Business impact" }
        form.filters.card method="get" action="/impact" {
            div { label for="ppy" { "Posters per year" } input id="ppy" type="number" min="0" step="1" name="posters_per_year" value=(format!("{:.0}", i.inputs.posters_per_year)); }
            div { label for="mc" { "Manual cost per poster (" (c) ")" } input id="mc" type="number" min="0" step="0.01" name="manual_cost" value=(i.inputs.manual_cost); }
            div { label for="cc" { "Cost of a correction (" (c) ")" } input id="cc" type="number" min="0" step="0.01" name="correction_cost" value=(i.inputs.correction_cost); }
            div { label for="th" { "Auto-accept at confidence ≥" } input id="th" type="number" min="0" max="1" step="0.05" name="threshold" value=(i.inputs.threshold); }
            div { button type="submit" { "Recompute" } }
        }
        @if let Some(m) = v.measured_posters_per_year { p.muted { "This device's own rate: " (format!("{m:.0}")) " posters a year." } }
        div.stats {
            div.stat { span { "Tagged automatically" } b id="auto-share" { (pct(i.auto_share)) } }
            div.stat { span { "Right without correction" } b { (pct(i.precision)) } }
            div.stat { span { "Manual only" } b { (money(i.cost_manual_only)) } }
            div.stat { span { "With Marquee" } b { (money(i.cost_with_marquee)) } }
            div.stat { span { "Savings a year" } b id="savings" class=(if i.savings >= 0.0 { "ok" } else { "bad" }) { (money(i.savings)) " (" (pct(i.savings_share)) ")" } }
            div.stat { span { "Corrections still needed" } b { (format!("{:.0}", i.corrections_needed)) } }
        }
        div.banner class=(if i.precision_source == "corrections" { "ok" } else { "" }) {
            @if i.precision_source == "corrections" {
                "Precision measured on " (i.precision_backed_by) " corrected posters over the threshold on this device."
            } @else {
                "No corrected poster over this threshold yet: the precision is the model's validation micro-precision, an estimate. Correct posters to measure it here."
            }
        }
        div.card {
            h2 { "Savings by threshold" }
            (charts::line(&savings, "0.05", "0.95", marker, "Yearly savings at each auto-accept threshold"))
            p.muted { "Most saved at " (format!("{:.2}", i.best_threshold)) ". Posters under the threshold are tagged by hand; auto-tagged posters that are wrong cost a correction each." }
        }
    };
    page(&state, &access, "/impact", "Business impact", body)
}

async fn model(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let m = &state.model;
    let latency = data::model_latency(&state).await.unwrap_or_default();
    let metric = |key: &str| m.validation.get(key).and_then(serde_json::Value::as_f64);
    let base = |key: &str| m.baseline.get(key).and_then(serde_json::Value::as_f64);
    let body = html! {
        h1 { "Model card" }
        div.two {
            div.card {
                h2 { "What runs" }
                table {
                    tr { th { "Model" } td { (m.name) } }
                    tr { th { "Backbone" } td { (m.backbone) " (" (m.variant) ")" } }
                    tr { th { "File" } td { (m.file) @if let Some(b) = m.file_bytes { " · " (format!("{:.1}", b as f64 / 1e6)) " MB" } } }
                    tr { th { "sha256" } td { code { (m.sha256) } } }
                    tr { th { "Input" } td { (m.input_size[0]) "×" (m.input_size[1]) " px, (pixel − " (m.mean[0]) ") / " (m.std[0]) } }
                    tr { th { "Features" } td { (m.feature_dim) } }
                    @if let Some(q) = &m.quantisation { tr { th { "Quantisation" } td.muted { (q) } } }
                    @if let Some(b) = &m.built_with { tr { th { "Built with" } td { code { (b) } } } }
                }
            }
            div.card {
                h2 { "Measured on this board" }
                @if latency.samples == 0 { p.muted { "No poster classified yet." } } @else {
                    table {
                        tr { th { "Classifications" } td.n { (latency.samples) } }
                        tr { th { "p50" } td.n id="latency-p50" { (format!("{:.1}", latency.p50_ms)) " ms" } }
                        tr { th { "p90" } td.n { (format!("{:.1}", latency.p90_ms)) " ms" } }
                        tr { th { "p99" } td.n { (format!("{:.1}", latency.p99_ms)) " ms" } }
                    }
                    p.muted { "Decode, resize, backbone and head, per poster, newest 1000." }
                }
                h2 { "Validation (held-out posters)" }
                table {
                    tr { th {} th.n { "Model" } th.n { "Drama+Comedy baseline" } }
                    @for (label, key) in [("Micro F1", "micro_f1"), ("Macro F1", "macro_f1"), ("Mean ROC-AUC", "mean_roc_auc"), ("Best genre right (hit@1)", "hit_at_1"), ("Right in top 3 (hit@3)", "hit_at_3"), ("Five-genre accuracy", "five_genre_accuracy")] {
                        tr { td { (label) } td.n { (opt3(metric(key))) } td.n { (opt3(base(key))) } }
                    }
                }
                @if let Some(n) = m.validation_posters { p.muted { (n) " held-out posters." } }
            }
        }
        div.card.scroll {
            h2 { "Genres" }
            table {
                tr { th { "Genre" } th.n { "Threshold" } th.n { "Precision" } th.n { "Recall" } th.n { "F1" } th.n { "ROC-AUC" } th.n { "Support" } }
                @for g in &m.genres {
                    @let v = |k: &str| g.validation.get(k).and_then(serde_json::Value::as_f64);
                    tr { td { (g.label) } td.n { (format!("{:.2}", g.threshold)) } td.n { (opt3(v("precision"))) } td.n { (opt3(v("recall"))) } td.n { (opt3(v("f1"))) } td.n { (opt3(v("roc_auc"))) } td.n { (v("support").map(|s| format!("{s:.0}")).unwrap_or_default()) } }
                }
            }
        }
    };
    page(&state, &access, "/model", "Model", body)
}

fn cameras_body(state: &WebState, access: &Access, result: Option<Markup>) -> Markup {
    let cameras = state.cameras.snapshot();
    html! {
        h1 { "Cameras" }
        @if let Some(result) = result { (result) }
        @if cameras.is_empty() {
            p.muted { "No camera is configured. Add a " code { "[[camera]]" } " table to the configuration (see the README)." }
        }
        div.grid id="cameras" {
            @for c in &cameras {
                div.card {
                    h2 { (c.name) " " span class=(if c.online { "ok" } else { "bad" }) data-camera=(c.name) { (if c.online { "online" } else { "offline" }) } }
                    p.muted { (c.kind) " · " (c.source) " · " (match c.mode { crate::config::CameraMode::OnDemand => "on demand", crate::config::CameraMode::Continuous => "continuous" }) }
                    @if let Some(err) = &c.last_error { p.bad { (err) } }
                    table {
                        tr { th { "Frames" } td.n { (c.frames) } }
                        tr { th { "Captures" } td.n { (c.captures) } }
                        tr { th { "Bad frames" } td.n { (c.bad_frames) } }
                        tr { th { "Dropped (queue full)" } td.n { (c.dropped) } }
                        tr { th { "Reconnects" } td.n { (c.reconnects) } }
                        @if let Some(ms) = c.last_frame_ms { tr { th { "Last frame" } td { (time(ms)) } } }
                    }
                    @if let Some(id) = &c.last_capture_id {
                        p { a href={ "/posters/" (id) } { (layout::thumb(id)) } }
                    }
                    @if access.can_write() {
                        form method="post" action="/cameras/capture" {
                            @if let Some(csrf) = access.csrf() { input type="hidden" name="csrf" value=(csrf); }
                            input type="hidden" name="camera" value=(c.name);
                            button type="submit" disabled[!c.online] { "Capture" }
                        }
                    }
                }
            }
        }
    }
}

async fn cameras(State(state): State<WebState>, Extension(access): Extension<Access>) -> Response {
    let body = cameras_body(&state, &access, None);
    page(&state, &access, "/cameras", "Cameras", body)
}

#[derive(Deserialize)]
struct CaptureForm {
    camera: String,
}

/// The Capture button: a frame now, classified, shown like a tagged poster.
async fn camera_capture(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Form(form): Form<CaptureForm>,
) -> Response {
    let (result, status) = match state.cameras.capture(Some(&form.camera)).await {
        Ok(event) => (result_fragment(&state, &Ok(event)), StatusCode::OK),
        Err(err) => {
            let message = err.to_string();
            let status = err.into_response().status();
            (html! { div.banner.bad role="alert" { (message) } }, status)
        }
    };
    let body = cameras_body(&state, &access, Some(result));
    layout::page_with_status(&state, &access, "/cameras", "Cameras", body, status)
}
