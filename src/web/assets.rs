//! The stylesheet, the script and the drawn sample posters, embedded in the
//! binary (the board is often offline), and the headers every page gets.

use super::WebState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub const CSS: &str = include_str!("assets/app.css");
pub const JS: &str = include_str!("assets/app.js");

/// Changes with the assets' content, so browsers may cache them for a year.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest([CSS.as_bytes(), JS.as_bytes()].concat());
        hex::encode(&digest[..6])
    })
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/samples/{n}", get(sample))
}

fn cached(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    cached("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    cached("text/javascript; charset=utf-8", JS)
}

async fn sample(State(state): State<WebState>, Path(n): Path<String>) -> Response {
    let index = n.strip_suffix(".jpg").and_then(|i| i.parse::<usize>().ok());
    match index.and_then(|i| state.samples.get(i)) {
        Some(sample) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            sample.jpeg.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such sample").into_response(),
    }
}

/// Headers for every dashboard response: no framing by other sites, no
/// script or style from anywhere but the device, no referrer leaking a
/// URL's CSRF token, no MIME sniffing.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
