//! `/map`: the poster map, its clusters and outliers.

use super::{layout, render};
use crate::web::auth::Access;
use crate::web::charts::{self, MapDot};
use crate::web::data::{self, MapAnswer};
use crate::web::layout::{pct, time};
use crate::web::WebState;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

/// Dots drawn on the poster map at most (outliers always are).
const MAP_DRAWN: usize = 1200;
/// Outlier thumbnails on the map page unless all are asked for: with three
/// samples for each of up to eight clusters, about 30 thumbnails of ~6 KB
/// keep the page under 200 KB.
const MAP_OUTLIERS_SHOWN: usize = 6;

#[derive(Debug, Default, Deserialize)]
pub(super) struct MapQuery {
    /// `all` lists every outlier's thumbnail.
    outliers: Option<String>,
}

pub(super) async fn map(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<MapQuery>,
) -> Response {
    let all_outliers = query.outliers.as_deref() == Some("all");
    let loaded = data::poster_map(&state).await;
    render(
        &state,
        &access,
        "/map",
        "Poster map",
        loaded,
        |answer| match answer {
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
        },
    )
}
