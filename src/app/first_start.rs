//! Secure by default: a daemon that would otherwise serve its dashboard
//! open to the whole network gets an admin password instead.
//!
//! With no `dashboard.password_hash`, no API token, `dashboard.open` unset
//! and `http.listen` beyond loopback, the first start makes a random
//! password, keeps its Argon2 hash in the state directory (next to the
//! store) and writes the password itself to a file only the service's user
//! can read, and says so once in the log (as Frigate does). Later starts
//! use the kept hash. Set `dashboard.password_hash` to choose your own, or
//! `dashboard.open = true` to run without a login on purpose.

use crate::config::{Config, DashboardConfig};
use crate::credentials;
use anyhow::Context as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// The kept hash, in the state directory.
pub const HASH_FILE: &str = "dashboard-password.hash";
/// The generated password, readable by the service's user only.
pub const PASSWORD_FILE: &str = "dashboard-password";

/// The dashboard settings to run with, after the secure default.
pub fn dashboard_config(cfg: &Config) -> anyhow::Result<DashboardConfig> {
    let mut dashboard = cfg.dashboard.clone();
    if dashboard.auth_required() || dashboard.open || cfg.http.listen.ip().is_loopback() {
        return Ok(dashboard);
    }
    let dir = state_dir(&cfg.store.path);
    dashboard.password_hash = Some(admin_password_hash(&dir)?);
    Ok(dashboard)
}

/// Where the store lives: the daemon's state directory.
fn state_dir(store: &Path) -> PathBuf {
    match store.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The kept hash, or a new password's (written to its files first).
fn admin_password_hash(dir: &Path) -> anyhow::Result<String> {
    let hash_path = dir.join(HASH_FILE);
    match std::fs::read_to_string(&hash_path) {
        Ok(hash) if argon2::PasswordHash::new(hash.trim()).is_ok() => {
            info!(
                file = %hash_path.display(),
                "dashboard login uses the generated admin password (set dashboard.password_hash \
                 to choose your own)"
            );
            return Ok(hash.trim().to_owned());
        }
        Ok(_) => warn!(
            file = %hash_path.display(),
            "the kept dashboard password hash is unreadable; making a new password"
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| {
                format!(
                    "reading {} (the generated dashboard password's hash)",
                    hash_path.display()
                )
            })
        }
    }
    let password = new_password()?;
    let hash = credentials::hash_password(&password)?;
    let password_path = dir.join(PASSWORD_FILE);
    write_private(&password_path, &format!("{password}\n"))?;
    write_private(&hash_path, &format!("{hash}\n"))?;
    // Shown once: the journal is the place an installer looks first.
    warn!(
        password = %password,
        file = %password_path.display(),
        "the dashboard listens beyond this device and no login was configured: an admin \
         password was made for it (shown only this once; also in the file, readable by this \
         service's user and root). Log in with it, or set dashboard.password_hash (`marquee \
         dashboard hash-password`), or dashboard.open = true to run without a login"
    );
    Ok(hash)
}

/// 20 characters from an alphabet without look-alikes: ~100 bits.
fn new_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("the system random source failed: {err}"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// Create (or replace) `path` with mode 0600.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "writing {} (the generated dashboard password; the state directory must be \
                 writable)",
                path.display()
            )
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn config(dir: &Path, listen: &str) -> Config {
        let mut cfg = Config::default();
        cfg.http.listen = listen.parse().unwrap();
        cfg.store.path = dir.join("marquee.db");
        cfg
    }

    #[test]
    fn beyond_loopback_a_password_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "0.0.0.0:8080");
        let first = dashboard_config(&cfg).unwrap();
        let hash = first.password_hash.clone().expect("a password");
        let password = std::fs::read_to_string(dir.path().join(PASSWORD_FILE)).unwrap();
        assert!(credentials::verify_password(&hash, password.trim()));
        for file in [PASSWORD_FILE, HASH_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let again = dashboard_config(&cfg).unwrap();
        assert_eq!(again.password_hash, Some(hash), "kept, not made again");
    }

    #[test]
    fn loopback_open_or_configured_logins_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            dashboard_config(&config(dir.path(), "127.0.0.1:8080")).unwrap(),
            Config::default().dashboard
        );
        let mut open = config(dir.path(), "0.0.0.0:8080");
        open.dashboard.open = true;
        assert!(dashboard_config(&open).unwrap().password_hash.is_none());
        let mut own = config(dir.path(), "0.0.0.0:8080");
        own.dashboard.password_hash = Some(credentials::hash_password("mine, long").unwrap());
        assert_eq!(
            dashboard_config(&own).unwrap().password_hash,
            own.dashboard.password_hash
        );
        assert!(!dir.path().join(HASH_FILE).exists());
    }
}
