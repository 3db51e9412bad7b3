//! `/model`: the model card and the latency measured on this board.

use crate::web::auth::Access;
use crate::web::data;
use crate::web::layout::{opt3, page};
use crate::web::WebState;
use axum::extract::{Extension, State};
use axum::response::Response;
use maud::html;

pub(super) async fn model(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let m = state.model.get();
    let latency = data::model_latency(&state).await.unwrap_or_default();
    let heads = state.learning.list().await.unwrap_or_default();
    let compare = state.learning.comparison().await.unwrap_or_default();
    let job = state.learning.retrain_status();
    let genres = state.learning.genre_progress().await.unwrap_or_default();
    let metric = |key: &str| m.validation.get(key).and_then(serde_json::Value::as_f64);
    let base = |key: &str| m.baseline.get(key).and_then(serde_json::Value::as_f64);
    let body = html! {
        h1 { "Model card" }
        (super::heads::learning(&access, &heads, &m.name, &job, compare.as_ref(), &genres))
        div.two {
            div.card {
                h2 { "What runs" }
                table {
                    tr { th { "Model" } td { (m.name) } }
                    tr { th { "Backbone" } td { (m.backbone) " (" (m.variant) ")" } }
                    tr { th { "Runtime" } td id="model-runtime" { (m.runtime_about) } }
                    @if let Some(why) = &m.runtime_fallback { tr { th { "Runtime note" } td.muted { (why) } } }
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
                h2 { "Validation (" (m.validation_split.as_deref().unwrap_or("held-out posters")) ")" }
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
