//! Who may do what on the dashboard and its API.
//!
//! - **No credentials configured** (`dashboard.password_hash` and
//!   `dashboard.api_token_sha256` unset): everyone may do everything. Fine
//!   on the default `127.0.0.1` listener; the daemon warns when it listens
//!   further than that without a password.
//! - **Password**: the login form starts a session (an `HttpOnly`,
//!   `SameSite=Strict` cookie). The password is never stored, only its
//!   Argon2 hash; repeated failures from one address are slowed down.
//! - **Bearer tokens** for programs: `Authorization: Bearer <token>`,
//!   checked against the configured SHA-256 of each token.
//! - **Read-only mode** (`read_only_without_login`): visitors who have not
//!   logged in may read every page and `GET` endpoint, never change anything.
//!
//! Cross-site requests: every state-changing request made with the session
//! cookie must carry the session's CSRF token (`X-CSRF-Token` header, a
//! `csrf` form field or query parameter), and any request whose `Origin` or
//! `Sec-Fetch-Site` says it comes from another site is refused, with or
//! without a login.

use super::WebState;
use crate::ingest::http::error_response;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "marquee_session";
/// The header JavaScript sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Failed logins from one address before it must wait.
const MAX_FAILURES: u32 = 5;
/// How long an address waits after too many failures.
const LOCKOUT: Duration = Duration::from_secs(60);
/// Sessions kept at most; the oldest go first (a script logging in in a
/// loop cannot grow memory).
const MAX_SESSIONS: usize = 256;
/// Largest form body read for its `csrf` field.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the current request may do, put in its extensions by [`guard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// May change things. `csrf` is the token forms must carry (`None`
    /// when there is no session: open mode or a bearer token).
    Admin { csrf: Option<String>, via: Via },
    /// May read only (read-only mode, not logged in).
    Reader,
    /// Must log in first.
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// No credentials are configured.
    Open,
    Session,
    Token,
}

impl Access {
    pub fn can_write(&self) -> bool {
        matches!(self, Self::Admin { .. })
    }

    pub fn can_read(&self) -> bool {
        !matches!(self, Self::Anonymous)
    }

    /// The CSRF token to put in forms, if any.
    pub fn csrf(&self) -> Option<&str> {
        match self {
            Self::Admin { csrf, .. } => csrf.as_deref(),
            _ => None,
        }
    }

    /// Whether a logout button makes sense.
    pub fn logged_in(&self) -> bool {
        matches!(
            self,
            Self::Admin {
                via: Via::Session,
                ..
            }
        )
    }
}

#[derive(Debug)]
struct Session {
    csrf: String,
    expires: Instant,
    created: Instant,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The configured credentials and the live sessions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Auth {
    inner: Arc<AuthInner>,
}

#[derive(Debug)]
struct AuthInner {
    password_hash: Option<String>,
    tokens: Vec<[u8; 32]>,
    read_only: bool,
    ttl: Duration,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the system random source failed: {0}")]
    Random(String),
}

impl Auth {
    /// From `[dashboard]` (already validated by the config loader; a bad
    /// token hash is skipped with a warning rather than accepted).
    pub fn new(config: &crate::config::DashboardConfig) -> Self {
        let tokens = config
            .api_token_sha256
            .iter()
            .filter_map(|hex_hash| {
                let mut out = [0u8; 32];
                match hex::decode_to_slice(hex_hash, &mut out) {
                    Ok(()) => Some(out),
                    Err(err) => {
                        warn!(error = %err, "dashboard.api_token_sha256 entry ignored");
                        None
                    }
                }
            })
            .collect();
        Self {
            inner: Arc::new(AuthInner {
                password_hash: config.password_hash.clone(),
                tokens,
                read_only: config.read_only_without_login,
                ttl: Duration::from_secs(u64::from(config.session_hours) * 3600),
                sessions: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether anyone has to prove who they are.
    pub fn required(&self) -> bool {
        self.inner.password_hash.is_some() || !self.inner.tokens.is_empty()
    }

    pub fn has_password(&self) -> bool {
        self.inner.password_hash.is_some()
    }

    /// What a request with these headers may do.
    pub fn access(&self, headers: &HeaderMap) -> Access {
        if !self.required() {
            return Access::Admin {
                csrf: None,
                via: Via::Open,
            };
        }
        if let Some(token) = bearer(headers) {
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if self.inner.tokens.iter().any(|t| constant_time_eq(t, &hash)) {
                return Access::Admin {
                    csrf: None,
                    via: Via::Token,
                };
            }
            // A wrong token is not silently downgraded to a reader.
            return Access::Anonymous;
        }
        if let Some(csrf) = cookie(headers, SESSION_COOKIE).and_then(|id| self.session_csrf(id)) {
            return Access::Admin {
                csrf: Some(csrf),
                via: Via::Session,
            };
        }
        if self.inner.read_only {
            Access::Reader
        } else {
            Access::Anonymous
        }
    }

    fn session_csrf(&self, id: &str) -> Option<String> {
        let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let mut sessions = lock(&self.inner.sessions);
        let now = Instant::now();
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some(s.csrf.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Check a password; on success, a new session's cookie value.
    async fn login(&self, ip: Option<IpAddr>, password: String) -> Result<String, LoginError> {
        let Some(hash) = self.inner.password_hash.clone() else {
            return Err(LoginError::NoPassword);
        };
        if let Some(ip) = ip {
            if let Some(wait) = self.locked(ip) {
                return Err(LoginError::Locked(wait));
            }
        }
        // Argon2 is deliberately slow: off the async threads.
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        if !ok {
            if let Some(ip) = ip {
                self.failed(ip);
            }
            return Err(LoginError::Wrong);
        }
        if let Some(ip) = ip {
            lock(&self.inner.failures).remove(&ip);
        }
        let id = random_hex().map_err(|e| LoginError::Internal(e.to_string()))?;
        let csrf = random_hex().map_err(|e| LoginError::Internal(e.to_string()))?;
        let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let now = Instant::now();
        let mut sessions = lock(&self.inner.sessions);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            key,
            Session {
                csrf,
                expires: now + self.inner.ttl,
                created: now,
            },
        );
        Ok(id)
    }

    fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
            lock(&self.inner.sessions).remove(&key);
        }
    }

    fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let failures = lock(&self.inner.failures);
        let until = failures.get(&ip)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = lock(&self.inner.failures);
        if failures.len() > 4096 {
            failures.clear(); // bounded memory under a spray of addresses
        }
        let entry = failures.entry(ip).or_default();
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.count = 0;
            entry.locked_until = Some(Instant::now() + LOCKOUT);
            warn!(%ip, "repeated failed dashboard logins; address locked for a minute");
        }
    }

    fn cookie_max_age(&self) -> u64 {
        self.inner.ttl.as_secs()
    }
}

#[derive(Debug)]
enum LoginError {
    NoPassword,
    Wrong,
    Locked(Duration),
    Internal(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Equal bytes, compared in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// 32 random bytes as hex, from the OS.
pub fn random_hex() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The Argon2id PHC string for `password` (for `dashboard.password_hash`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new API token and the SHA-256 to put in `dashboard.api_token_sha256`.
pub fn new_token() -> Result<(String, String), AuthError> {
    let token = random_hex()?;
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

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
    if let Some(given) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if matches(given) {
            Ok(req)
        } else {
            Err(forbidden(
                &path,
                "the form's security token is wrong; reload the page",
            ))
        };
    }
    if let Some(query) = req.uri().query() {
        if let Some(given) = form_value(query, "csrf") {
            return if matches(&given) {
                Ok(req)
            } else {
                Err(forbidden(
                    &path,
                    "the form's security token is wrong; reload the page",
                ))
            };
        }
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
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the form is too large".into(),
                )
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
        error_response(StatusCode::FORBIDDEN, message.to_owned())
    } else {
        super::pages::error_page(StatusCode::FORBIDDEN, "Not allowed", message)
    }
}

fn login_required(path: &str, next: Option<&str>) -> Response {
    if is_api(path) {
        let mut response = error_response(
            StatusCode::UNAUTHORIZED,
            "log in on the dashboard, or send `Authorization: Bearer <token>` \
             (see dashboard.api_token_sha256)"
                .to_owned(),
        );
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

/// `/login` and `/logout`.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    State(state): State<WebState>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    super::pages::login_page(&state, q.next.as_deref(), None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    password: String,
    next: Option<String>,
}

/// Only local paths: a login link must not send people to another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

async fn login_submit(
    State(state): State<WebState>,
    headers: HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = connect.map(|c| c.0 .0.ip());
    match state.auth.login(ip, form.password).await {
        Ok(session) => {
            info!(ip = ?ip, "dashboard login");
            let _ = headers;
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
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
            super::pages::login_page(
                &state,
                form.next.as_deref(),
                Some("Wrong password."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(LoginError::Locked(wait)) => {
            let mut response = super::pages::login_page(
                &state,
                form.next.as_deref(),
                Some(&format!(
                    "Too many wrong passwords from your address: wait {} s and try again.",
                    wait.as_secs().max(1)
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(LoginError::NoPassword) => super::pages::login_page(
            &state,
            form.next.as_deref(),
            Some("No password is set on this device (dashboard.password_hash): nothing to log in to."),
            StatusCode::BAD_REQUEST,
        ),
        Err(LoginError::Internal(err)) => super::pages::error_page(
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
    use crate::config::DashboardConfig;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn password_hash_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_and_read_only() {
        let (token, hash) = new_token().unwrap();
        let config = DashboardConfig {
            password_hash: Some(hash_password("pw").unwrap()),
            api_token_sha256: vec![hash],
            read_only_without_login: true,
            ..DashboardConfig::default()
        };
        let auth = Auth::new(&config);
        let good = format!("Bearer {token}");
        assert!(auth
            .access(&headers(&[("authorization", &good)]))
            .can_write());
        assert_eq!(
            auth.access(&headers(&[("authorization", "Bearer nope")])),
            Access::Anonymous
        );
        assert_eq!(auth.access(&HeaderMap::new()), Access::Reader);
        let open = Auth::new(&DashboardConfig::default());
        assert!(open.access(&HeaderMap::new()).can_write());
    }

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
    fn next_stays_local() {
        assert_eq!(safe_next(Some("/history?page=2")), "/history?page=2");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_and_form_values() {
        let h = headers(&[("cookie", "a=1; marquee_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(form_value("x=1&csrf=a%2Bb", "csrf").as_deref(), Some("a+b"));
    }
}
