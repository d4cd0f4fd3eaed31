//! Small caches of rows the server reads on nearly every request.
//!
//! Facilities and users are small registries whose rows the store never changes after
//! creation (there is no update path), and every referral answer names several of them.
//! A new row is fetched on its first miss, so the cache is never wrong about what exists;
//! the time limit bounds staleness should an update path appear (it must then evict).
//! Signed-in tokens are kept for a few seconds (every request presents one): sign-out
//! evicts its token at once, and expiry is still checked on every request; a token
//! revoked by another server process is honoured here within [`TOKEN_TTL`].
//! One cache per [`crate::AppState`], so two servers in one process never share rows.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tiercare_domain::facility::Facility;
use tiercare_store::{TokenRecord, User};
use uuid::Uuid;

use crate::routes::referrals::Actor;

const REGISTRY_TTL: Duration = Duration::from_secs(30);
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(5);
const MAX_ROWS: usize = 20_000;

/// Rows by key, each kept for the cache's time limit.
pub(crate) struct Cache<K, V> {
    ttl: Duration,
    rows: RwLock<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Hash + Eq, V> Cache<K, V> {
    fn new(ttl: Duration) -> Self {
        Cache { ttl, rows: RwLock::new(HashMap::new()) }
    }
    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>> {
        let rows = self.rows.read().ok()?;
        rows.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }
    pub(crate) fn put(&self, key: K, v: Arc<V>) {
        if let Ok(mut rows) = self.rows.write() {
            if rows.len() >= MAX_ROWS {
                rows.clear();
            }
            rows.insert(key, (Instant::now(), v));
        }
    }
    pub(crate) fn remove(&self, key: &K) {
        if let Ok(mut rows) = self.rows.write() {
            rows.remove(key);
        }
    }
}

/// The caches a server keeps.
pub(crate) struct Caches {
    pub(crate) facilities: Cache<Uuid, Facility>,
    pub(crate) actors: Cache<Uuid, Actor>,
    /// token hash → the token and its user, as `Store::find_token` answered
    pub(crate) tokens: Cache<Vec<u8>, (TokenRecord, User)>,
}

impl Caches {
    pub(crate) fn new() -> Self {
        Caches { facilities: Cache::new(REGISTRY_TTL), actors: Cache::new(REGISTRY_TTL), tokens: Cache::new(TOKEN_TTL) }
    }
}
