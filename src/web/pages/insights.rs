//! `/insights`: genre mix, confidence, trends, co-occurrence, patterns, drift.

use super::render;
use crate::web::auth::Access;
use crate::web::charts;
use crate::web::data;
use crate::web::layout::pct;
use crate::web::WebState;
use axum::extract::{Extension, State};
use axum::response::Response;
use maud::html;

pub(super) async fn insights(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let loaded = data::insights(&state).await;
    render(&state, &access, "/insights", "Insights", loaded, |i| {
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
        html! {
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
        }
    })
}
