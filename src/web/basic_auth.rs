//! `basic_auth_users`: the bcrypt hashes as Go's `bcrypt.Cost` accepts them, the
//! `Authorization: Basic` header, and the check itself: bcrypt on the blocking pool, one
//! at a time, a bounded queue, a cache of successes, and unknown users paying a bcrypt too
//! so timing does not reveal which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use tokio::sync::Semaphore;

use super::{invalid, WebConfigError};

/// How many successful (user, password) checks are remembered.
const AUTH_CACHE_SIZE: usize = 100;
/// How many requests may wait for a bcrypt check at once; more get 503.
const BCRYPT_QUEUE: usize = 32;
/// Longest `Authorization` credentials decoded.
const MAX_CREDENTIALS: usize = 16 * 1024;

/// Go's `base64.StdEncoding`, as `net/http`'s `BasicAuth` uses it: padding required,
/// non-zero trailing bits tolerated.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Checks a configured hash as Go's `bcrypt.Cost` does, with the toolkit's messages.
pub fn validate_hash(user: &str, hash: &str) -> Result<(), WebConfigError> {
    // What Go's bcrypt.Cost accepts: $2a$/$2b$/$2x$/$2y$, a two-digit cost 4..=31, then
    // 53 characters of salt and hash.
    let b = hash.as_bytes();
    if b.len() < 59 {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: hashedSecret too short to be a bcrypted password"
        )));
    }
    if b[0] != b'$' || b[1] != b'2' {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: bcrypt algorithm version '{}' requested is newer than current version '2'",
            String::from_utf8_lossy(&b[1..2])
        )));
    }
    if hash.parse::<bcrypt::HashParts>().is_err() {
        return Err(invalid(format!(
            "basic_auth_users: {user}: not a bcrypt hash (expected $2y$10$... as made by `htpasswd -nBC 10`)"
        )));
    }
    Ok(())
}

/// The (user, password) of an `Authorization: Basic` header; `None` when absent or
/// malformed.
pub fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = rest.trim();
    if encoded.len() > MAX_CREDENTIALS {
        return None;
    }
    let decoded = GO_STD_BASE64.decode(encoded).ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Outcome of a basic-auth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Known user, right password.
    Allowed,
    /// Unknown user or wrong password.
    Denied,
    /// Too many bcrypt checks queued.
    Busy,
}

/// Checks basic-auth credentials: bcrypt runs on the blocking pool, one at a time (it is
/// CPU-bound by design), and successes are cached so repeated scrapes pay it once.
#[derive(Debug)]
pub struct Authenticator {
    cache: Mutex<HashSet<[u8; 32]>>,
    compute: Semaphore,
    queue: Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            cache: Mutex::new(HashSet::new()),
            compute: Semaphore::new(1),
            queue: Semaphore::new(BCRYPT_QUEUE),
        }
    }
}

/// The cache key: SHA-256 over the length-prefixed user, hash and password, so the
/// password itself is never stored.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash to check `user` against and whether the user is known: an unknown user is
/// checked against the costliest configured hash. `None`: no users at all.
fn hash_for<'a>(users: &'a BTreeMap<String, String>, user: &str) -> Option<(&'a str, bool)> {
    if let Some(h) = users.get(user) {
        return Some((h, true));
    }
    users
        .values()
        .max_by_key(|h| h.get(4..6).and_then(|c| c.parse::<u32>().ok()))
        .map(|h| (h.as_str(), false))
}

impl Authenticator {
    /// Checks `user`/`password` against `users`. Unknown users cost a bcrypt check too (on
    /// the costliest configured hash), so timing does not reveal which users exist.
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        user: &str,
        password: &str,
    ) -> AuthResult {
        let Some((hash, known)) = hash_for(users, user) else {
            return AuthResult::Denied;
        };
        let key = cache_key(user, hash, password);
        if known && self.lock_cache().contains(&key) {
            return AuthResult::Allowed;
        }
        let Ok(_queued) = self.queue.try_acquire() else {
            return AuthResult::Busy;
        };
        let Ok(_computing) = self.compute.acquire().await else {
            return AuthResult::Busy;
        };
        let (password, hash) = (password.to_string(), hash.to_string());
        let matched = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if known && matched {
            let mut cache = self.lock_cache();
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key);
            AuthResult::Allowed
        } else {
            AuthResult::Denied
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(v: &str) -> Option<(String, String)> {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        credentials(&h)
    }

    #[test]
    fn basic_credentials() {
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(auth("Basic YWxpY2U6cHc="), pair("alice", "pw"));
        assert_eq!(auth("basic  YWxpY2U6cHc= "), pair("alice", "pw"));
        // "a:b:c": the password may hold colons.
        assert_eq!(auth("Basic YTpiOmM="), pair("a", "b:c"));
        // Padding is required, as in Go's StdEncoding; trailing bits are tolerated.
        assert_eq!(auth("Basic YWxpY2U6cHc"), None);
        assert_eq!(auth("Basic YWxpY2U6cHd="), pair("alice", "pw"));
        assert_eq!(auth("Basic YW=j"), None);
        assert_eq!(auth("Basic Y"), None);
        assert_eq!(auth("Basic YWJj"), None, "no colon");
        assert_eq!(auth("Bearer YWxpY2U6cHc="), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
        let long = format!("Basic {}", "QUFB".repeat(MAX_CREDENTIALS / 4 + 1));
        assert_eq!(auth(&long), None);
    }

    #[test]
    fn unknown_users_are_checked_against_the_costliest_hash() {
        let mut users = BTreeMap::new();
        users.insert("a".to_string(), "$2y$04$x".to_string());
        users.insert("b".to_string(), "$2y$12$y".to_string());
        assert_eq!(hash_for(&users, "a"), Some(("$2y$04$x", true)));
        assert_eq!(hash_for(&users, "zz"), Some(("$2y$12$y", false)));
        assert_eq!(hash_for(&BTreeMap::new(), "a"), None);
    }
}
