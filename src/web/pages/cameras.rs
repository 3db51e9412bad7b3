//! `/cameras`: each camera's health and a Capture button.

use super::tag::result_fragment;
use crate::config::CameraMode;
use crate::web::auth::Access;
use crate::web::error::ApiError;
use crate::web::layout::{self, page, time};
use crate::web::WebState;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

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
                    p.muted { (c.kind) " · " (c.source) " · " (match c.mode { CameraMode::OnDemand => "on demand", CameraMode::Continuous => "continuous" }) }
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

pub(super) async fn cameras(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
) -> Response {
    let body = cameras_body(&state, &access, None);
    page(&state, &access, "/cameras", "Cameras", body)
}

#[derive(Deserialize)]
pub(super) struct CaptureForm {
    camera: String,
}

/// The Capture button: a frame now, classified, shown like a tagged poster.
pub(super) async fn camera_capture(
    State(state): State<WebState>,
    Extension(access): Extension<Access>,
    Form(form): Form<CaptureForm>,
) -> Response {
    let (result, status) = match state.cameras.capture(Some(&form.camera)).await {
        Ok(event) => (result_fragment(&state, &Ok(event)), StatusCode::OK),
        Err(err) => {
            let err = ApiError::from(err);
            (
                html! { div.banner.bad role="alert" { (err.message()) } },
                err.status(),
            )
        }
    };
    let body = cameras_body(&state, &access, Some(result));
    layout::page_with_status(&state, &access, "/cameras", "Cameras", body, status)
}
