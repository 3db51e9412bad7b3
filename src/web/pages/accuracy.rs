//! `/accuracy`: the model against the people's corrections.

use super::render;
use crate::web::auth::Access;
use crate::web::charts;
use crate::web::data;
use crate::web::layout::{opt3, opt_pct, pct};
use crate::web::WebState;
use axum::extract::{Extension, State};
use axum::response::Response;
use maud::html;

pub(super) async fn accuracy(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let loaded = data::accuracy(&state).await;
    render(&state, &access, "/accuracy", "Accuracy", loaded, |a| {
        html! {
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
        }
    })
}
