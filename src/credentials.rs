//! Secrets the dashboard checks: Argon2id password hashes, API tokens kept
//! as their SHA-256, and the random values sessions are made of. Used by
//! the dashboard's access rules and by `marquee dashboard`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// 32 random bytes as hex, from the OS.
pub fn random_hex() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The Argon2id PHC string for `password` (for `dashboard.password_hash`).
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| CredentialError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a hash that
/// does not parse). Deliberately slow: call it off the async threads.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new API token and the SHA-256 to put in `dashboard.api_token_sha256`.
pub fn new_token() -> Result<(String, String), CredentialError> {
    let token = random_hex()?;
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

/// SHA-256 of a secret, the form tokens and session ids are kept in.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal bytes, compared in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_hash_to_their_digest() {
        let (token, hash) = new_token().unwrap();
        assert_eq!(hex::encode(digest(&token)), hash);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
