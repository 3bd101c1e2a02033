//! What the verifier keeps in memory: key records by public id (with each key's rate-limit and
//! last-use state beside them), the hashes known to belong to no key, and the APIs, members and
//! organizations keys depend on.
//!
//! Every change made through this process invalidates what it changed synchronously; a counter of
//! invalidations (the epoch) keeps a load that raced with one from caching what it read.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use foldhash::fast::RandomState;

use crate::domain::key::{self, KeyHash};
use crate::domain::model::{Key, Millis};
use crate::store::StoreError;

/// How long a cached API, member or organization is trusted before it is read again.
pub const POSITIVE_TTL_MS: i64 = 30_000;
/// How long a cached key record is trusted before it is read again. Long, because changes by other
/// processes are followed (see [`super::Verifier::follow_changes`]): re-reading every active key
/// often would cost a query per key.
pub const KEY_TTL_MS: i64 = 600_000;
/// How long a hash that matched no key is remembered, so that a flood of well-formed but unknown
/// keys does not reach storage once per request.
pub const NEGATIVE_TTL_MS: i64 = 2_000;
/// Most unknown hashes remembered at once; past it, they are all forgotten.
pub const NEGATIVE_MAX: usize = 100_000;

/// Maps keyed by ids; foldhash with a per-process random seed is several times faster than
/// SipHash on these short keys.
pub type Map<V> = DashMap<String, V, RandomState>;

/// The packed public id of `key_3f9a0c1e7b2d` or `3f9a0c1e7b2d`: a `u64` key, without allocation.
/// Only the canonical form (lowercase hex) packs, so that [`unpacked`] gives back the same id.
pub fn packed(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("key_").unwrap_or(id);
    if hex.len() != key::ID_LEN || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The `key_...` id of a packed public id.
pub fn unpacked(id: u64) -> String {
    format!("key_{id:012x}")
}

/// A cached key record, with a rendering of it made at most once, for whoever shows it on every
/// verification (the verify endpoint's JSON): a changed key is a new record, rendered anew.
pub struct CachedKey {
    pub key: Key,
    rendering: OnceLock<Box<str>>,
}

impl CachedKey {
    pub fn new(key: Key) -> Self {
        CachedKey {
            key,
            rendering: OnceLock::new(),
        }
    }

    /// The rendering of this record by `render`, made on first use.
    pub fn rendered(&self, render: impl FnOnce(&Key) -> String) -> &str {
        self.rendering
            .get_or_init(|| render(&self.key).into_boxed_str())
    }
}

impl std::ops::Deref for CachedKey {
    type Target = Key;

    fn deref(&self) -> &Key {
        &self.key
    }
}

impl std::fmt::Debug for CachedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.key.fmt(f)
    }
}

/// A key's slot: its record, when loaded, and its usage state, which outlives reloads and
/// invalidations of the record.
#[derive(Default)]
pub struct KeyEntry {
    pub value: Option<Arc<CachedKey>>,
    /// When `value` was read from storage.
    pub loaded_at: Millis,
    /// The rate limiter's theoretical arrival time (GCRA), in microseconds; 0 for a full one.
    pub tat: i64,
    /// The newest `last_used` observation not yet written to storage.
    pub touch: Option<(Millis, Option<IpAddr>)>,
    /// When `last_used` was last written (see [`super::last_use`]).
    pub written_at: Option<Millis>,
}

/// A cached API, member or organization (`None`: known not to exist).
pub struct Cached<T> {
    value: Option<Arc<T>>,
    loaded_at: Millis,
}

/// The verifier's memory.
pub struct Cache {
    pub keys: DashMap<u64, KeyEntry, RandomState>,
    /// Hashes (their first 8 bytes) of presented keys that matched no stored key, and when.
    unknown: DashMap<u64, Millis, RandomState>,
    unknown_count: AtomicUsize,
    pub apis: Map<Cached<crate::domain::model::Api>>,
    pub users: Map<Cached<crate::domain::model::User>>,
    pub orgs: Map<Cached<crate::domain::model::Org>>,
    /// Counts invalidations, so that a load racing with one does not cache what it read.
    epoch: AtomicU64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            // Many shards, so that verifications on different cores rarely meet on one lock.
            keys: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                RandomState::default(),
                256,
            ),
            unknown: DashMap::default(),
            unknown_count: AtomicUsize::new(0),
            apis: Map::default(),
            users: Map::default(),
            orgs: Map::default(),
            epoch: AtomicU64::new(0),
        }
    }
}

fn short(hash: &KeyHash) -> u64 {
    u64::from_ne_bytes(hash.0[..8].try_into().expect("8 bytes"))
}

impl Cache {
    /// The invalidation count, read before a load from storage.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A key's record, if cached and younger than [`KEY_TTL_MS`].
    pub fn key(&self, id: u64, now: Millis) -> Option<Arc<CachedKey>> {
        let entry = self.keys.get(&id)?;
        let fresh = now >= entry.loaded_at && now - entry.loaded_at < KEY_TTL_MS;
        entry.value.clone().filter(|_| fresh)
    }

    /// Caches a key read from storage when nothing was invalidated since `epoch`. The check and the
    /// update happen under the slot's lock, and invalidations count before they clear, so a stale
    /// record cannot slip in between.
    pub fn put_key(&self, id: u64, key: Arc<CachedKey>, epoch: u64, now: Millis) {
        let mut entry = self.keys.entry(id).or_default();
        if self.epoch() == epoch {
            entry.value = Some(key);
            entry.loaded_at = now;
        }
    }

    /// Whether `hash` was found to match no key less than [`NEGATIVE_TTL_MS`] ago.
    pub fn known_unknown(&self, hash: &KeyHash, now: Millis) -> bool {
        self.unknown
            .get(&short(hash))
            .is_some_and(|at| now >= *at && now - *at < NEGATIVE_TTL_MS)
    }

    /// Remembers that `hash` matched no key.
    pub fn put_unknown(&self, hash: &KeyHash, now: Millis) {
        if self.unknown_count.fetch_add(1, Ordering::Relaxed) >= NEGATIVE_MAX {
            self.unknown.clear();
            self.unknown_count.store(0, Ordering::Relaxed);
        }
        self.unknown.insert(short(hash), now);
    }

    /// Forgets a key's record (by packed id); its usage state stays.
    pub fn invalidate_key(&self, id: u64) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(mut entry) = self.keys.get_mut(&id) {
            entry.value = None;
        }
    }

    /// Forgets what is cached under `id` in one of the dependency maps.
    pub fn invalidate<T>(&self, map: &Map<Cached<T>>, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(id);
    }

    /// A value of one of the dependency maps: from memory when younger than
    /// [`POSITIVE_TTL_MS`], else loaded and cached (unless an invalidation raced with the load).
    pub async fn get_or_load<T, F, Fut>(
        &self,
        map: &Map<Cached<T>>,
        id: &str,
        now: Millis,
        load: F,
    ) -> Result<Option<Arc<T>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, StoreError>>,
    {
        if let Some(c) = map.get(id) {
            if now >= c.loaded_at && now - c.loaded_at < POSITIVE_TTL_MS {
                if let Some(v) = &c.value {
                    return Ok(Some(v.clone()));
                }
            }
        }
        let epoch = self.epoch();
        let value = load().await?.map(Arc::new);
        if value.is_some() {
            store_unless_invalidated(map, &self.epoch, epoch, id, &value, now);
        }
        Ok(value)
    }
}

/// Caches a freshly loaded value, unless an invalidation happened since `epoch` was read before
/// the load: the value may predate the change that caused it (say, a member disabled while this
/// load waited on the database), and caching it would bring the old state back.
fn store_unless_invalidated<T>(
    map: &Map<Cached<T>>,
    epochs: &AtomicU64,
    epoch: u64,
    id: &str,
    value: &Option<Arc<T>>,
    now: Millis,
) {
    let cached = || Cached {
        value: value.clone(),
        loaded_at: now,
    };
    match map.entry(id.to_owned()) {
        dashmap::Entry::Occupied(mut e) if epochs.load(Ordering::SeqCst) == epoch => {
            e.insert(cached());
        }
        dashmap::Entry::Vacant(e) if epochs.load(Ordering::SeqCst) == epoch => {
            e.insert(cached());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_raced_with_an_invalidation_is_not_cached() {
        let map: Map<Cached<u32>> = Map::default();
        let epochs = AtomicU64::new(0);
        let before = epochs.load(Ordering::SeqCst);
        // An invalidation lands while the load is in flight.
        epochs.fetch_add(1, Ordering::SeqCst);
        map.remove("k");
        store_unless_invalidated(&map, &epochs, before, "k", &Some(Arc::new(1)), 5);
        assert!(map.get("k").is_none(), "the stale value must not be cached");
        let now = epochs.load(Ordering::SeqCst);
        store_unless_invalidated(&map, &epochs, now, "k", &Some(Arc::new(2)), 6);
        assert_eq!(
            map.get("k").and_then(|c| c.value.clone()).as_deref(),
            Some(&2)
        );
    }

    #[test]
    fn unknown_hashes_are_remembered_for_a_while_and_bounded() {
        let cache = Cache::default();
        let h = KeyHash([9; 32]);
        assert!(!cache.known_unknown(&h, 1_000));
        cache.put_unknown(&h, 1_000);
        assert!(cache.known_unknown(&h, 1_000 + NEGATIVE_TTL_MS - 1));
        assert!(!cache.known_unknown(&h, 1_000 + NEGATIVE_TTL_MS));
        for i in 0..=NEGATIVE_MAX as u64 {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&i.to_ne_bytes());
            cache.put_unknown(&KeyHash(b), 2_000);
        }
        assert!(
            cache.unknown.len() <= NEGATIVE_MAX,
            "{}",
            cache.unknown.len()
        );
    }

    #[test]
    fn packed_ids_round_trip_and_refuse_other_text() {
        assert_eq!(packed("key_3f9a0c1e7b2d"), Some(0x3f9a0c1e7b2d));
        assert_eq!(unpacked(0x3f9a0c1e7b2d), "key_3f9a0c1e7b2d");
        assert_eq!(packed("key_3f9a0c1e7b2"), None);
        assert_eq!(packed("key_3f9a0c1e7b2x"), None);
        assert_eq!(packed("key_+f9a0c1e7b2"), None);
        assert_eq!(packed("key_3F9A0C1E7B2D"), None);
        assert_eq!(packed("imported_1"), None);
    }
}
