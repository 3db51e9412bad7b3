//! The daemon's status, the live feed (server-sent events) and the model
//! card.

use crate::store::LatencySummary;
use crate::web::data::{self, Status};
use crate::web::error::{ApiError, ErrorBody};
use crate::web::model_card::ModelCard;
use crate::web::WebState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::Stream;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

/// How often the live feed sends the status line.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Model, broker, queue and outbox status.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = Status), (status = 401, body = ErrorBody)))]
pub(super) async fn status(State(state): State<WebState>) -> Result<Json<Status>, ApiError> {
    Ok(Json(data::status(&state).await?))
}

/// Server-sent events: `poster` (a [`PosterEvent`], as each result is
/// stored) and `status` (every 5 s: `broker`, `queue`, `outbox`, `today`,
/// `posters`). A client that falls behind gets a `lagged` event with the
/// number of events it missed.
#[utoipa::path(get, path = "/api/v1/events", tag = "status",
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream")))]
pub(super) async fn events(
    State(state): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut live = state.live.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            let event = tokio::select! {
                received = live.recv() => match received {
                    Ok(poster) => Event::default().event("poster").json_data(&poster).ok(),
                    Err(RecvError::Lagged(n)) => Some(Event::default().event("lagged").data(n.to_string())),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => match data::status(&state).await {
                    Ok(s) => Event::default().event("status").json_data(serde_json::json!({
                        "broker": if s.broker_connected { "connected" } else { "disconnected" },
                        "queue": format!("{} / {}", s.queue_depth, s.queue_capacity),
                        "outbox": s.outbox_backlog,
                        "today": s.posters_today,
                        "posters": s.totals.posters,
                    })).ok(),
                    Err(_) => None,
                },
            };
            if let Some(event) = event {
                if tx.send(Ok(event)).await.is_err() {
                    return; // the browser went away
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task: the task ends when the receiver is dropped.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The model card and the latency measured on this board.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    #[serde(flatten)]
    pub card: ModelCard,
    pub latency: LatencySummary,
}

/// The model card and the latency measured on this board.
#[utoipa::path(get, path = "/api/v1/model", tag = "analytics",
    responses((status = 200, body = ModelView)))]
pub(super) async fn model(State(state): State<WebState>) -> Result<Json<ModelView>, ApiError> {
    let latency = data::model_latency(&state).await?;
    Ok(Json(ModelView {
        card: state.model.get().as_ref().clone(),
        latency,
    }))
}
