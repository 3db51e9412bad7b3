//! `/impact`: what automatic tagging saves against manual tagging.

use super::render;
use crate::web::auth::Access;
use crate::web::charts;
use crate::web::data::{self, ImpactQuery};
use crate::web::layout::pct;
use crate::web::WebState;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use maud::html;

pub(super) async fn impact(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Query(query): Query<ImpactQuery>,
) -> Response {
    let loaded = data::impact(&state, query).await;
    render(&state, &access, "/impact", "Business impact", loaded, |v| {
        let i = &v.impact;
        let c = &v.currency;
        let money = |x: f64| format!("{c}{x:.0}");
        let savings: Vec<f64> = i.curve.iter().map(|p| p.savings).collect();
        let marker = i
            .curve
            .iter()
            .position(|p| (p.threshold - i.inputs.threshold).abs() < 0.026);
        html! {
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
        }
    })
}
