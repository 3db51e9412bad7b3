//! Secrets the dashboard checks: Argon2id password hashes, API tokens kept
//! as their SHA-256, and the random values sessions are made of. Used by
//! the dashboard's access rules and by `marquee dashboard`.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    verify_password_in(hash, password, &mut CheckMemory::default())
}

/// The working memory of one Argon2 check, kept between checks.
///
/// Why kept: a check needs 19 MiB (the default parameters), and glibc's
/// allocator, once such a block is freed, raises its mmap threshold to it
/// and keeps every later one in its arenas: 200 wrong logins left the
/// daemon 244 MB larger for good (`scripts/bench-hostile.py`). A few
/// buffers allocated once and reused bound it to what the memory plan
/// counts.
#[derive(Default)]
pub struct CheckMemory(Vec<Block>);

impl std::fmt::Debug for CheckMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckMemory({} KiB)", self.0.len())
    }
}

/// The most memory a kept hash may make a check take (64 MiB, in 1 KiB
/// blocks): a hash asking for more is refused, not allocated.
pub const MAX_CHECK_KIB: usize = 64 * 1024;

/// The working memory, in KiB, a check against `hash` takes (the default
/// parameters' when there is no hash yet: the generated one uses them).
pub fn check_memory_kib(hash: Option<&str>) -> usize {
    hash.and_then(|h| PasswordHash::new(h).ok())
        .and_then(|parsed| Params::try_from(&parsed).ok())
        .unwrap_or_default()
        .block_count()
        .min(MAX_CHECK_KIB)
}

/// [`verify_password`] in `memory`, grown to the hash's memory cost on
/// first use and kept for the next check.
pub fn verify_password_in(hash: &str, password: &str, memory: &mut CheckMemory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let blocks = params.block_count();
    if blocks > MAX_CHECK_KIB {
        return false;
    }
    if memory.0.len() < blocks {
        memory.0.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory.0[..blocks],
        )
        .is_ok()
        && constant_time_eq(&out, expected.as_bytes())
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
    fn a_check_in_kept_memory_agrees_with_the_plain_one() {
        let hash = hash_password("correct horse").unwrap();
        let mut memory = CheckMemory::default();
        assert!(verify_password_in(&hash, "correct horse", &mut memory));
        assert!(!verify_password_in(&hash, "wrong", &mut memory));
        assert!(verify_password_in(&hash, "correct horse", &mut memory));
        assert_eq!(memory.0.len(), Params::DEFAULT.block_count());
        assert!(!verify_password_in(
            "not a hash",
            "correct horse",
            &mut memory
        ));
        // Other parameters, other algorithm: still the PHC string's own.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let other = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password_in(&other, "pw", &mut memory));
        assert!(!verify_password_in(&other, "pW", &mut memory));
        // A hash asking for more than a check may take is refused.
        let greedy = Params::new(128 * 1024, 1, 1, None).unwrap();
        let big = Argon2::new(Algorithm::Argon2id, Version::V0x13, greedy)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!verify_password_in(&big, "pw", &mut memory));
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
