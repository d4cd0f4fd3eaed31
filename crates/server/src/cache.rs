//! Small caches of registry rows the server reads on every referral request.
//!
//! Facilities and users are small registries whose rows the store never changes after
//! creation (there is no update path), and every referral answer names several of them.
//! A new row is fetched on its first miss, so the cache is never wrong about what exists;
//! the time limit bounds staleness should an update path appear (it must then evict).
//! One cache per [`crate::AppState`], so two servers in one process never share rows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tiercare_domain::facility::Facility;
use uuid::Uuid;

use crate::routes::referrals::Actor;

const TTL: Duration = Duration::from_secs(30);
const MAX_ROWS: usize = 20_000;

/// Rows by id, each kept for [`TTL`].
pub(crate) struct Cache<V> {
    rows: RwLock<HashMap<Uuid, (Instant, Arc<V>)>>,
}

impl<V> Cache<V> {
    fn new() -> Self {
        Cache { rows: RwLock::new(HashMap::new()) }
    }
    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<V>> {
        let rows = self.rows.read().ok()?;
        rows.get(&id).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }
    pub(crate) fn put(&self, id: Uuid, v: Arc<V>) {
        if let Ok(mut rows) = self.rows.write() {
            if rows.len() >= MAX_ROWS {
                rows.clear();
            }
            rows.insert(id, (Instant::now(), v));
        }
    }
}

/// The caches a server keeps.
pub(crate) struct Caches {
    pub(crate) facilities: Cache<Facility>,
    pub(crate) actors: Cache<Actor>,
}

impl Caches {
    pub(crate) fn new() -> Self {
        Caches { facilities: Cache::new(), actors: Cache::new() }
    }
}
