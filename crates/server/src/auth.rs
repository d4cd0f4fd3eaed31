//! Passwords (argon2id), tokens (random, stored as SHA-256), and login rate limiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// Minimum password length.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Hash a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("a password has at least {MIN_PASSWORD_CHARS} characters"));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Check a password against a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A fresh opaque token: `tc_` + 64 hex characters (256 random bits).
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    // getrandom only fails without an OS RNG; then there is no safe token to give
    getrandom::fill(&mut b).expect("the operating system's random source is unavailable");
    let mut s = String::with_capacity(67);
    s.push_str("tc_");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// What is stored for a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Counts failed logins per key (user name, client address) in a sliding window.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    /// Seconds to wait when `key` has used up its failures, else `None`.
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        self.blocked_for_scaled(key, 1)
    }

    /// As [`Self::blocked_for`], with `factor` times the allowance.
    pub fn blocked_for_scaled(&self, key: &str, factor: u32) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(key)?;
        list.retain(|t| now.duration_since(*t) < self.window);
        if list.len() as u32 >= self.max_failures.saturating_mul(factor) {
            let oldest = list.first().copied().unwrap_or(now);
            Some(self.window.saturating_sub(now.duration_since(oldest)).as_secs().max(1))
        } else {
            None
        }
    }

    pub fn record_failure(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // bound memory under a flood of distinct keys
            map.clear();
        }
        map.entry(key.to_owned()).or_default().push(Instant::now());
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse!", &h));
        assert!(hash_password("short").is_err());
        let t = new_token();
        assert_eq!(t.len(), 67);
        assert_ne!(new_token(), t);
        assert_eq!(token_hash(&t).len(), 32);
    }

    #[test]
    fn limiter_blocks_after_max_failures() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.record_failure("u");
        }
        assert_eq!(l.blocked_for("u"), None);
        l.record_failure("u");
        assert!(l.blocked_for("u").is_some());
        assert_eq!(l.blocked_for("other"), None);
        l.clear("u");
        assert_eq!(l.blocked_for("u"), None);
    }
}
