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
//!
//! | module | owns |
//! | --- | --- |
//! | this one | [`Access`], the configured credentials, checking a request or a password |
//! | [`sessions`] | live sessions and their CSRF tokens |
//! | [`lockout`] | failed logins per address |
//! | [`guard`] | the middleware applying the rules to every route, CSRF and cross-site checks |
//! | [`login`] | `/login` and `/logout` |

pub mod guard;
pub mod lockout;
pub mod login;
pub mod sessions;

pub use guard::guard;
pub use login::routes;

use crate::credentials::{self, constant_time_eq, digest};
use axum::http::{header, HeaderMap};
use lockout::Lockout;
use sessions::Sessions;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::warn;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "marquee_session";
/// The header JavaScript sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

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
    sessions: Sessions,
    lockout: Lockout,
    /// Password checks running at once: each Argon2 check takes 19 MiB
    /// and a core for a moment, so a flood of logins is queued here, not
    /// on the memory of the board.
    checks: Arc<Semaphore>,
    /// The checks' working memory, one per check slot, reused.
    check_memory: Mutex<Vec<credentials::CheckMemory>>,
    /// Logins waiting for a check; past [`MAX_WAITING`] they are turned
    /// away at once.
    waiting: AtomicUsize,
}

/// Password checks at once (Argon2, 19 MiB each, kept: the memory plan's
/// `LOGIN_MB`). One is a login every ~50-200 ms, more than an owner needs;
/// the lockout, not this, is what slows a guesser.
pub const PASSWORD_CHECKS: usize = crate::config::LOGIN_CHECKS as usize;
/// Logins that may wait for a check; more are answered 503 at once.
const MAX_WAITING: usize = 32;
/// How long a login waits for its check before giving up.
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// Why a login did not start a session.
#[derive(Debug)]
pub enum LoginError {
    NoPassword,
    Wrong,
    Locked(Duration),
    /// Too many logins at once: try again shortly.
    Busy,
    Internal(String),
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
                sessions: Sessions::new(Duration::from_secs(
                    u64::from(config.session_hours) * 3600,
                )),
                lockout: Lockout::default(),
                checks: Arc::new(Semaphore::new(PASSWORD_CHECKS)),
                check_memory: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
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
            let hash = digest(token);
            if self.inner.tokens.iter().any(|t| constant_time_eq(t, &hash)) {
                return Access::Admin {
                    csrf: None,
                    via: Via::Token,
                };
            }
            // A wrong token is not silently downgraded to a reader.
            return Access::Anonymous;
        }
        if let Some(csrf) =
            cookie(headers, SESSION_COOKIE).and_then(|id| self.inner.sessions.csrf(id))
        {
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

    /// How long `ip` must wait before its next login, if it is locked out
    /// (checked before the form is even read).
    pub fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        self.inner.lockout.locked(ip)
    }

    /// Check a password; on success, a new session's cookie value. The
    /// attempt counts against `ip` from the moment it starts.
    pub async fn login(&self, ip: Option<IpAddr>, password: String) -> Result<String, LoginError> {
        let Some(hash) = self.inner.password_hash.clone() else {
            return Err(LoginError::NoPassword);
        };
        let attempt = match ip {
            Some(ip) => Some(self.inner.lockout.begin(ip).map_err(LoginError::Locked)?),
            None => None,
        };
        let ok = self.verify(hash, password).await?;
        match attempt {
            Some(attempt) if ok => attempt.succeeded(),
            Some(attempt) => attempt.failed(),
            None => {}
        }
        if !ok {
            return Err(LoginError::Wrong);
        }
        let id = credentials::random_hex().map_err(|e| LoginError::Internal(e.to_string()))?;
        let csrf = credentials::random_hex().map_err(|e| LoginError::Internal(e.to_string()))?;
        self.inner.sessions.start(&id, csrf);
        Ok(id)
    }

    /// One Argon2 check, when one of the few check slots is free.
    async fn verify(&self, hash: String, password: String) -> Result<bool, LoginError> {
        if self.inner.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(LoginError::Busy);
        }
        let permit =
            tokio::time::timeout(CHECK_WAIT, Arc::clone(&self.inner.checks).acquire_owned()).await;
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = match permit {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(LoginError::Busy),
        };
        let inner = Arc::clone(&self.inner);
        // Argon2 is deliberately slow: off the async threads. The slot is
        // held by the check itself, so a login abandoned mid-check (the
        // client gone) does not free it for another while it still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut memory = inner
                .check_memory
                .lock()
                .ok()
                .and_then(|mut kept| kept.pop())
                .unwrap_or_default();
            let ok = credentials::verify_password_in(&hash, &password, &mut memory);
            if let Ok(mut kept) = inner.check_memory.lock() {
                kept.push(memory);
            }
            ok
        })
        .await
        .map_err(|err| LoginError::Internal(format!("the password check failed: {err}")))
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.inner.sessions.end(id);
        }
    }

    pub fn cookie_max_age(&self) -> u64 {
        self.inner.sessions.ttl().as_secs()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DashboardConfig;
    use crate::credentials::{hash_password, new_token};
    use axum::http::HeaderValue;

    pub(super) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
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
    fn cookies() {
        let h = headers(&[("cookie", "a=1; marquee_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
    }
}
