//! The access rules as a middleware over every dashboard and API route:
//! who may read, who may change, and the CSRF and cross-site checks on
//! every state change.

use super::{Access, CSRF_HEADER};
use crate::credentials::constant_time_eq;
use crate::web::error::ApiError;
use crate::web::layout::error_page;
use crate::web::WebState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tracing::warn;

/// Largest form body read for its `csrf` field.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Paths anyone may reach: the login form, the stylesheet and script, and
/// the API description.
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/") || path == "/api/openapi.json"
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The access rules, as a middleware over every dashboard and API route.
pub async fn guard(State(state): State<WebState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    // Open mode has no cookie or token to stop a page elsewhere that had
    // its name resolve to this device (DNS rebinding): the Host it used
    // must be one this device answers to.
    if !state.auth.required() && !state.net.host_allowed(req.headers()) {
        warn!(%path, "request for a foreign Host refused (DNS rebinding?)");
        return misdirected(&path);
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if let Some(reason) = cross_site(req.headers()) {
            warn!(%path, reason, "cross-site request refused");
            return forbidden(&path, &format!("cross-site request refused ({reason})"));
        }
    }
    let access = state.auth.access(req.headers());
    req.extensions_mut().insert(access.clone());
    if is_public(&path) {
        return next.run(req).await;
    }
    if !unsafe_method {
        if access.can_read() {
            return next.run(req).await;
        }
        return login_required(&path, req.uri().path_and_query().map(|p| p.as_str()));
    }
    match &access {
        Access::Anonymous => login_required(&path, None),
        Access::Reader => forbidden(
            &path,
            "this dashboard is read-only without a login: log in to change anything",
        ),
        Access::Admin { csrf: None, .. } => next.run(req).await,
        Access::Admin {
            csrf: Some(expected),
            ..
        } => {
            let expected = expected.clone();
            match csrf_checked(req, &expected).await {
                Ok(req) => next.run(req).await,
                Err(response) => response,
            }
        }
    }
}

/// Why a request looks cross-site, if it does.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return Some("Sec-Fetch-Site says another site sent it");
        }
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    if origin == "null" {
        return Some("opaque Origin");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (!origin_host.eq_ignore_ascii_case(host)).then_some("Origin is another host")
}

/// The request, if it carries the session's CSRF token (header, query or
/// urlencoded form field); otherwise the 403 to send.
async fn csrf_checked(req: Request, expected: &str) -> Result<Request, Response> {
    let path = req.uri().path().to_owned();
    let matches = |given: &str| constant_time_eq(given.as_bytes(), expected.as_bytes());
    let wrong = || forbidden(&path, "the form's security token is wrong; reload the page");
    if let Some(given) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if matches(given) {
            Ok(req)
        } else {
            Err(wrong())
        };
    }
    if let Some(given) = req.uri().query().and_then(|q| form_value(q, "csrf")) {
        return if matches(&given) {
            Ok(req)
        } else {
            Err(wrong())
        };
    }
    let urlencoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if urlencoded {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
                    .into_response()
            })?;
        let given = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| form_value(text, "csrf"));
        if given.as_deref().is_some_and(matches) {
            return Ok(Request::from_parts(parts, Body::from(bytes)));
        }
        return Err(forbidden(
            &path,
            "the form's security token is missing or wrong; reload the page and try again",
        ));
    }
    Err(forbidden(
        &path,
        "missing security token: send the X-CSRF-Token header of your session, or use a bearer token",
    ))
}

/// The first value of `key` in an `a=1&b=2` string, percent-decoded.
fn form_value(text: &str, key: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn forbidden(path: &str, message: &str) -> Response {
    if is_api(path) {
        ApiError::new(StatusCode::FORBIDDEN, message).into_response()
    } else {
        error_page(StatusCode::FORBIDDEN, "Not allowed", message)
    }
}

fn misdirected(path: &str) -> Response {
    let message = "this device does not answer to that host name: open it by its address or \
                   localhost, or add the name to http.allowed_hosts";
    if is_api(path) {
        ApiError::new(StatusCode::MISDIRECTED_REQUEST, message).into_response()
    } else {
        error_page(StatusCode::MISDIRECTED_REQUEST, "Wrong address", message)
    }
}

fn login_required(path: &str, next: Option<&str>) -> Response {
    if is_api(path) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in on the dashboard, or send `Authorization: Bearer <token>` \
             (see dashboard.api_token_sha256)",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"marquee\""),
        );
        return response;
    }
    let target = match next {
        Some(next) => format!(
            "/login?next={}",
            serde_urlencoded::to_string([("", next)])
                .map(|s| s.trim_start_matches('=').to_owned())
                .unwrap_or_default()
        ),
        None => "/login".to_owned(),
    };
    Redirect::to(&target).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::auth::tests::headers;

    #[test]
    fn cross_site_detection() {
        assert!(cross_site(&headers(&[
            ("host", "board:8080"),
            ("origin", "http://board:8080")
        ]))
        .is_none());
        assert!(cross_site(&headers(&[
            ("host", "board:8080"),
            ("origin", "http://evil.example")
        ]))
        .is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site(&HeaderMap::new()).is_none());
    }

    #[test]
    fn form_values() {
        assert_eq!(form_value("x=1&csrf=a%2Bb", "csrf").as_deref(), Some("a+b"));
    }
}
