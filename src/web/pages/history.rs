//! `/history`: classifications, newest first, filtered and paginated.

use super::{poster_card, render};
use crate::web::auth::Access;
use crate::web::data::{self, HistoryQuery};
use crate::web::layout::{pct, time};
use crate::web::WebState;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use maud::html;

pub(super) async fn history(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let loaded = data::history(&state, query).await;
    render(
        &state,
        &access,
        "/history",
        "History",
        loaded,
        |page_data| {
            let q = &page_data.query;
            let link = |page: usize| {
                let mut q = q.clone();
                q.page = Some(page);
                format!(
                    "/history?{}",
                    serde_urlencoded::to_string(&q).unwrap_or_default()
                )
            };
            html! {
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
            }
        },
    )
}
