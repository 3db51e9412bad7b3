//! `/login` and `/logout`: the login form (drawn through the shared page
//! layout), the password check, the session cookie.

use super::{Access, LoginError, SESSION_COOKIE};
use crate::web::layout::{error_page, page_with_status};
use crate::web::WebState;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use tracing::{info, warn};

/// The login form's body at most: a password and a path, not an upload.
pub const LOGIN_FORM_LIMIT: usize = 4 * 1024;

/// `/login` and `/logout`.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
}

/// The login form, with an error when the last attempt failed.
fn login_page(
    state: &WebState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(error) = error { div.banner.bad role="alert" { (error) } }
        @if !state.auth.has_password() {
            div.banner { "No password is set on this device: there is nothing to log in to." }
        }
        form.card method="post" action="/login" {
            input type="hidden" name="next" value=(next.unwrap_or("/"));
            label for="password" { "Password" }
            input id="password" type="password" name="password" autocomplete="current-password" required autofocus;
            p { button type="submit" { "Log in" } }
        }
    };
    page_with_status(state, &Access::Anonymous, "", "Log in", body, status)
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(State(state): State<WebState>, Query(q): Query<LoginQuery>) -> Response {
    login_page(&state, q.next.as_deref(), None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    password: String,
    next: Option<String>,
}

/// Only a path on this site: it starts with one `/`, has no authority or
/// backslash (which browsers read as `/`), and nothing a browser would
/// drop or stop at (whitespace, control characters).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

/// 429 with `Retry-After`, for an address that must wait.
fn locked_page(state: &WebState, next: Option<&str>, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = login_page(
        state,
        next,
        Some(&format!(
            "Too many wrong passwords from your address: wait {seconds} s and try again."
        )),
        StatusCode::TOO_MANY_REQUESTS,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn login_submit(State(state): State<WebState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip: Option<IpAddr> = peer.map(|peer| state.net.client_ip(peer, req.headers()));
    let https = peer.is_some_and(|peer| state.net.https(peer, req.headers()));
    // A locked-out address is answered before its body is even read.
    if let Some(wait) = ip.and_then(|ip| state.auth.locked_out(ip)) {
        return locked_page(&state, None, wait);
    }
    let form = match axum::body::to_bytes(req.into_body(), LOGIN_FORM_LIMIT).await {
        Ok(body) => serde_urlencoded::from_bytes::<LoginForm>(&body).ok(),
        Err(_) => {
            return error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Login failed",
                "the login form is too large: send only the password",
            )
        }
    };
    let Some(form) = form else {
        return login_page(
            &state,
            None,
            Some("The form needs a password."),
            StatusCode::BAD_REQUEST,
        );
    };
    match state.auth.login(ip, form.password).await {
        Ok(session) => {
            info!(ip = ?ip, "dashboard login");
            let secure = if https { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                state.auth.cookie_max_age()
            );
            let mut response = Redirect::to(safe_next(form.next.as_deref())).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(LoginError::Wrong) => {
            warn!(ip = ?ip, "failed dashboard login");
            login_page(
                &state,
                form.next.as_deref(),
                Some("Wrong password."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(LoginError::Locked(wait)) => locked_page(&state, form.next.as_deref(), wait),
        Err(LoginError::Busy) => {
            let mut response = login_page(
                &state,
                form.next.as_deref(),
                Some("Too many logins at once: try again in a few seconds."),
                StatusCode::SERVICE_UNAVAILABLE,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
        Err(LoginError::NoPassword) => login_page(
            &state,
            form.next.as_deref(),
            Some("No password is set on this device (dashboard.password_hash): nothing to log in to."),
            StatusCode::BAD_REQUEST,
        ),
        Err(LoginError::Internal(err)) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login failed",
            &format!("{err}; try again"),
        ),
    }
}

async fn logout(State(state): State<WebState>, headers: HeaderMap) -> Response {
    state.auth.logout(&headers);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("marquee_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_local() {
        assert_eq!(safe_next(Some("/history?page=2")), "/history?page=2");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        for bad in [
            "/\t/evil.example",
            "/\t\t/evil.example",
            "/\\evil.example",
            "/\n",
            "/a b",
            "/\u{7f}",
            "/caf\u{e9}",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
    }
}
