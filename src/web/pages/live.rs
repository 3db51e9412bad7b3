//! `/`: the live feed and the daemon's status.

use super::{poster_card, render};
use crate::web::auth::Access;
use crate::web::data;
use crate::web::layout::time;
use crate::web::WebState;
use axum::extract::{Extension, State};
use axum::response::Response;
use maud::{html, Markup};

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

pub(super) async fn live(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let loaded = tokio::try_join!(data::status(&state), data::latest(&state, 12));
    render(&state, &access, "/", "Live", loaded, |(status, latest)| {
        html! {
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
        }
    })
}
