//! The hot path: checking a presented key.
//!
//! Key records, their APIs, owners and organizations are cached in memory, so a known key is
//! verified without touching the database. Every change made through this process invalidates the
//! cache synchronously (so a revoke is seen by the very next verify). Changes made by another
//! process sharing the database are picked up by [`Verifier::follow_changes`], run every second,
//! which drops key records whose stored version is newer; APIs, owners and organizations are read
//! again after a short TTL, and key records after a long one, as a safety net. `last_used` is
//! collected in memory and written behind in batches by [`Verifier::flush`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use parking_lot::Mutex;

use crate::domain::Clock;
use crate::domain::check::{self, Denial, RateDecision, Requirements};
use crate::domain::key::{self, Peppers};
use crate::domain::model::{Api, Key, MANAGEMENT_PREFIXES, Millis, Org, RateLimit, User};
use crate::store::{Store, StoreError, UsageTouch};

/// How long a cached API, user or organization is trusted before it is read again.
const POSITIVE_TTL_MS: i64 = 30_000;
/// How long a cached key record is trusted before it is read again. Long, because changes by other
/// processes are followed (see [`Verifier::follow_changes`]): re-reading every active key often
/// would cost a query per key, which among many keys is a large share of the work.
const KEY_TTL_MS: i64 = 600_000;
/// How far back [`Verifier::follow_changes`] looks before its previous run began, to allow for
/// clocks of instances that differ and changes committed late.
const CHANGE_WINDOW_MS: i64 = 5_000;
/// Changed keys read per query by [`Verifier::follow_changes`].
const CHANGE_BATCH: i64 = 1_000;
/// How long a connection's management key is taken as verified without hashing it again (see
/// [`Verifier::verify_management`]); invalidations end it at once.
const REMEMBER_MS: i64 = 1_000;
/// How long "no such key" is remembered, so garbage with a valid checksum cannot flood storage.
const NEGATIVE_TTL_MS: i64 = 2_000;
/// Shortest time between two writes of one key's `last_used` to storage. Each write rewrites the
/// key's row (a page of SQLite's WAL, a row version in PostgreSQL), and keys in use are spread over
/// the whole table, so this sets the write load of a busy instance: 100,000 keys in steady use
/// cost about 270 row writes a second at five minutes (1,300 at one). The instance that saw a use
/// shows it at once; others, and storage, see it up to this long (and half as long again) later.
pub const LAST_USED_WRITE_INTERVAL_MS: i64 = 300_000;
/// Most "no such key" entries kept at once.
const NEGATIVE_MAX: usize = 100_000;

/// Maps keyed by ids; foldhash with a per-process random seed is several times faster than SipHash
/// on these short keys, which matters on the hot path.
type Map<V> = DashMap<String, V, RandomState>;

/// Maps keyed by a key's public id (12 hex characters, 6 bytes) packed into a `u64`: no heap
/// allocation and no string comparison per lookup, which keeps lookups among many keys cheap.
type IdMap<V> = DashMap<u64, V, RandomState>;

/// Shards of the key cache. Many, so that verifications running at once on different cores rarely
/// meet on one shard's lock.
const SHARDS: usize = 256;

/// The packed public id of `key_3f9a0c1e7b2d` or `3f9a0c1e7b2d`.
fn packed(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("key_").unwrap_or(id);
    if hex.len() != key::ID_LEN {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// How long after a write of a key's `last_used` the next one may happen: five minutes, plus up
/// to half that chosen by the key's (random) id. Keys first used together (say, all of them after
/// a restart) are then not written together again every five minutes, in one large burst, but
/// spread.
fn write_interval(id: u64) -> i64 {
    LAST_USED_WRITE_INTERVAL_MS + (id % (LAST_USED_WRITE_INTERVAL_MS as u64 / 2)) as i64
}

/// The `key_...` id of a packed public id.
fn unpacked(id: u64) -> String {
    format!("key_{id:012x}")
}

/// A key's slot in the cache: its record (or the knowledge that there is none) and its usage
/// state. The state lives here, beside the record, so that a verification among many keys
/// touches one slot, not one per map; it outlives reloads and invalidations of the record.
#[derive(Default)]
struct KeyEntry {
    value: Option<Arc<CachedKey>>,
    /// When `value` was read from storage; [`STALE`] once invalidated.
    loaded_at: Millis,
    /// The rate limiter's theoretical arrival time (GCRA), in microseconds; 0 for a full one.
    tat: i64,
    /// The newest `last_used` observation not yet written to storage.
    touch: Option<(Millis, Option<IpAddr>)>,
    /// When `last_used` was last written, to write a hot key at most once every five minutes (see
    /// [`write_interval`]).
    written_at: Option<Millis>,
}

/// `loaded_at` of an invalidated entry: read again by the next verification.
const STALE: Millis = Millis::MIN;

impl KeyEntry {
    fn fresh(&self, now: Millis) -> bool {
        let ttl = if self.value.is_some() {
            KEY_TTL_MS
        } else {
            NEGATIVE_TTL_MS
        };
        self.loaded_at != STALE && now >= self.loaded_at && now - self.loaded_at < ttl
    }
}

/// A cached key record with what checking and answering it needs, resolved at most once while
/// the record stays cached. A verification then reads this entry and objects shared by many keys
/// (its API, organization and owner), not the record's own scattered strings: among many keys,
/// memory touched per verification is what bounds throughput.
#[repr(C)]
pub struct CachedKey {
    /// The key's prefix, inline.
    prefix: ([u8; key::PREFIX_MAX], u8),
    deps: OnceLock<Deps>,
    /// The record itself, inline, so that what a verification reads (the fields above and the
    /// record's leading ones, see [`Key`]) lies in consecutive cache lines.
    pub key: Key,
    /// Last: the rendering, most of it inline too.
    rendered: OnceLock<Rendered>,
}

/// Longest rendering kept inline in a [`CachedKey`]: most keys' (those without much metadata).
const RENDERED_INLINE: usize = 1024;
const _: () = assert!(
    RENDERED_INLINE <= u16::MAX as usize,
    "an inline length fits a u16"
);

/// A key's rendering (see [`CachedKey::rendered`]). Inline, a verification reads it at addresses
/// known as soon as the entry is found, so that its loads overlap with those of the record instead
/// of waiting for them to yield a pointer to follow.
#[derive(Clone)]
struct Rendered {
    /// The text's length when inline.
    len: u16,
    inline: [u8; RENDERED_INLINE],
    /// A text longer than [`RENDERED_INLINE`].
    apart: Option<Box<[u8]>>,
}

impl Rendered {
    fn new(text: String) -> Self {
        let mut inline = [0u8; RENDERED_INLINE];
        if text.len() > RENDERED_INLINE {
            return Rendered {
                len: 0,
                inline,
                apart: Some(text.into_bytes().into_boxed_slice()),
            };
        }
        inline[..text.len()].copy_from_slice(text.as_bytes());
        Rendered {
            // At most `RENDERED_INLINE`.
            len: text.len() as u16,
            inline,
            apart: None,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match &self.apart {
            None => &self.inline[..usize::from(self.len)],
            Some(text) => text,
        }
    }
}

/// A key's API, organization and owner, as cached when resolved (`None`: not found).
struct Deps {
    /// [`Verifier::deps_epoch`] when resolved: valid while it is unchanged, for a TTL. Both are
    /// renewed in place when a new resolution finds the same values.
    epoch: AtomicU64,
    resolved_at: AtomicI64,
    api: Option<Arc<Api>>,
    org: Option<Arc<Org>>,
    owner: Option<Arc<User>>,
}

impl Deps {
    fn new(
        epoch: u64,
        resolved_at: Millis,
        api: Option<Arc<Api>>,
        org: Option<Arc<Org>>,
        owner: Option<Arc<User>>,
    ) -> Self {
        Deps {
            epoch: AtomicU64::new(epoch),
            resolved_at: AtomicI64::new(resolved_at),
            api,
            org,
            owner,
        }
    }

    fn same_as(&self, other: &Deps) -> bool {
        self.api == other.api && self.org == other.org && self.owner == other.owner
    }
}

impl std::fmt::Debug for CachedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CachedKey {
    fn new(key: Key, deps: Option<Deps>) -> Self {
        let mut prefix = [0u8; key::PREFIX_MAX];
        let len = key.key_prefix.len().min(key::PREFIX_MAX);
        prefix[..len].copy_from_slice(&key.key_prefix.as_bytes()[..len]);
        CachedKey {
            key,
            prefix: (prefix, len as u8),
            deps: deps.map(OnceLock::from).unwrap_or_default(),
            rendered: OnceLock::new(),
        }
    }

    fn prefix(&self) -> &[u8] {
        &self.prefix.0[..usize::from(self.prefix.1)]
    }

    /// A rendering of the key (its JSON text), computed once per cached record.
    pub fn rendered(&self, render: impl FnOnce(&Key) -> String) -> &[u8] {
        self.rendered
            .get_or_init(|| Rendered::new(render(&self.key)))
            .as_bytes()
    }

    /// The same record with other dependencies (and the rendering, which depends on the record
    /// only).
    fn with_deps(&self, deps: Deps) -> Self {
        let fresh = CachedKey::new(self.key.clone(), Some(deps));
        if let Some(r) = self.rendered.get() {
            let _ = fresh.rendered.set(r.clone());
        }
        fresh
    }

    /// A copy of this entry with reference counts of its own, for one connection's
    /// [`Remembered`]: connections on both cores presenting the same management key then do not
    /// all count references to one entry, whose count each would have to take from the other
    /// core's cache on every request.
    fn private_copy(&self) -> Self {
        match self.deps.get() {
            Some(d) => self.with_deps(Deps::new(
                d.epoch.load(Ordering::SeqCst),
                d.resolved_at.load(Ordering::SeqCst),
                d.api.clone(),
                d.org.clone(),
                d.owner.clone(),
            )),
            None => CachedKey::new(self.key.clone(), None),
        }
    }

    /// The key's owner, when it was found.
    pub fn owner(&self) -> Option<&Arc<User>> {
        self.deps.get().and_then(|d| d.owner.as_ref())
    }
}

struct Cached<T> {
    value: Option<Arc<T>>,
    loaded_at: Millis,
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Cached {
            value: self.value.clone(),
            loaded_at: self.loaded_at,
        }
    }
}

/// Where a key may come from: the verify endpoint scopes it to the caller's organization (and
/// optionally one API); the management API needs a key of the built-in `keyward` API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub org_id: Option<&'a str>,
    pub api_id: Option<&'a str>,
    pub management: bool,
}

/// A verification's outcome: `Err` is a refusal.
pub type Outcome = Result<Verified, Rejected>;

/// How far a verification from memory got before it needed storage; [`Verifier::resume`] goes on
/// from there.
pub struct Pending {
    id: u64,
    stage: Stage,
    /// For a management key hashed by this verification: the invalidation count before it, to
    /// remember the key with once it passes (see [`Remembered`]).
    remember_at_epoch: Option<u64>,
}

enum Stage {
    /// The key's record must be read.
    Load,
    /// The key is authentic; its API, organization or owner must be read.
    Resolve(Arc<CachedKey>),
    /// The key passed every check; its quota must be consumed, under this rate limit.
    Quota(Arc<CachedKey>, Option<RateLimit>),
}

impl Pending {
    fn new(id: u64, stage: Stage) -> Self {
        Pending {
            id,
            stage,
            remember_at_epoch: None,
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::Load => "load",
            Stage::Resolve(_) => "resolve",
            Stage::Quota(..) => "quota",
        };
        write!(f, "Pending({stage})")
    }
}

/// A key that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The cached record: the key, its owner and renderings.
    pub cached: Arc<CachedKey>,
    pub ratelimit: Option<RateDecision>,
    pub quota_remaining: Option<i64>,
    /// When this verification happened (and so the key's last use).
    pub at: Millis,
}

/// A refusal, with the key when it was identified (for the verify endpoint's `key` field).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub denial: Denial,
    pub key: Option<Arc<CachedKey>>,
    pub ratelimit: Option<RateDecision>,
}

impl From<Denial> for Rejected {
    fn from(denial: Denial) -> Self {
        Rejected {
            denial,
            key: None,
            ratelimit: None,
        }
    }
}

impl Verified {
    pub fn key(&self) -> &Key {
        &self.cached.key
    }

    /// The key's owner: always found and active for a verified key.
    pub fn owner(&self) -> &Arc<User> {
        self.cached
            .owner()
            .expect("check_key refuses keys without an active owner")
    }
}

/// The management key a connection authenticated with last, for
/// [`Verifier::verify_management`]: a backend sends the same key on every request of a
/// keep-alive connection. Holds the key itself (as the connection's buffers do) and never prints
/// it.
#[derive(Default)]
pub struct Remembered(Mutex<Option<Arc<Remembrance>>>);

struct Remembrance {
    token: Box<str>,
    id: u64,
    /// This connection's own copy of the key's entry (see [`CachedKey::private_copy`]).
    cached: Arc<CachedKey>,
    client_ip: Option<IpAddr>,
    /// [`Verifier::epoch`] before the key was verified: any invalidation since ends the memory.
    epoch: u64,
    at: Millis,
}

impl Remembered {
    /// The remembered key, if it is `token` presented from `client_ip`, nothing was invalidated
    /// since (`epoch` unchanged) and it is younger than [`REMEMBER_MS`].
    fn recall(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
        epoch: u64,
        now: Millis,
    ) -> Option<Arc<Remembrance>> {
        let m = self.0.lock().clone()?;
        let same = m.epoch == epoch
            && now >= m.at
            && now - m.at < REMEMBER_MS
            && m.client_ip == client_ip
            && key::same_secret(&m.token, token);
        same.then_some(m)
    }

    /// Remembers `token`, verified as `v` at `now` while the invalidation count was `epoch`.
    fn remember(
        &self,
        token: &str,
        v: &Verified,
        client_ip: Option<IpAddr>,
        epoch: u64,
        now: Millis,
    ) {
        if let Some(id) = packed(&v.key().id) {
            *self.0.lock() = Some(Arc::new(Remembrance {
                token: token.into(),
                id,
                cached: Arc::new(v.cached.private_copy()),
                client_ip,
                epoch,
                at: now,
            }));
        }
    }
}

impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remembered(<redacted>)")
    }
}

/// Errors of the verification layer: only storage can fail.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Verifier {
    store: Store,
    peppers: Peppers,
    clock: Arc<dyn Clock>,
    plans_without_access: Vec<String>,
    plan_rate_limits: HashMap<String, RateLimit>,
    keys: IdMap<KeyEntry>,
    apis: Map<Cached<Api>>,
    users: Map<Cached<User>>,
    orgs: Map<Cached<Org>>,
    /// Counts invalidations, so that a load racing with one does not cache what it read.
    epoch: AtomicU64,
    /// Counts invalidations of APIs, users and organizations, which resolved [`Deps`] depend on.
    deps_epoch: AtomicU64,
    /// When the latest [`Verifier::follow_changes`] began, by this process's clock.
    changes_polled: AtomicI64,
    /// About how many "no such key" entries were added since they were last cleared.
    negatives: AtomicUsize,
    /// Keys with a `last_used` observation not yet written, by when it is due (see
    /// [`write_interval`]): every slot holding one has an item here, added when it got it, so
    /// that a flush visits the keys due, not every key.
    due: Mutex<BinaryHeap<Reverse<(Millis, u64)>>>,
}

impl Verifier {
    pub fn new(
        store: Store,
        peppers: Peppers,
        clock: Arc<dyn Clock>,
        plans_without_access: Vec<String>,
        plan_rate_limits: HashMap<String, RateLimit>,
    ) -> Self {
        let started = clock.now_ms();
        Verifier {
            store,
            peppers,
            clock,
            plans_without_access,
            plan_rate_limits,
            keys: IdMap::with_capacity_and_hasher_and_shard_amount(
                0,
                RandomState::default(),
                SHARDS,
            ),
            apis: Map::default(),
            users: Map::default(),
            orgs: Map::default(),
            epoch: AtomicU64::new(0),
            deps_epoch: AtomicU64::new(0),
            changes_polled: AtomicI64::new(started),
            negatives: AtomicUsize::new(0),
            due: Mutex::default(),
        }
    }

    pub fn peppers(&self) -> &Peppers {
        &self.peppers
    }

    pub fn plans_without_access(&self) -> &[String] {
        &self.plans_without_access
    }

    /// Checks `token` in contract order. `Ok(Err(_))` is a refusal; `Err(_)` a storage failure.
    pub async fn verify(
        &self,
        token: &str,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
    ) -> Result<Outcome, VerifyError> {
        self.verify_at(token, scope, req, cost, self.clock.now_ms())
            .await
    }

    /// [`Verifier::verify`] at `now`, the time of a request that already read the clock.
    pub async fn verify_at(
        &self,
        token: &str,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Result<Outcome, VerifyError> {
        match self.verify_now(token, scope, req, cost, now) {
            Ok(outcome) => Ok(outcome),
            Err(pending) => self.resume(pending, token, scope, req, cost, now).await,
        }
    }

    /// [`Verifier::verify_at`] from memory alone, the common case, so it builds no future. When it
    /// needs storage (a key, API, owner or organization to load, or a quota to consume) it returns
    /// how far it got, for [`Verifier::resume`]; nothing was charged or recorded then.
    pub fn verify_now(
        &self,
        token: &str,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Result<Outcome, Pending> {
        let id = match self.public_id(token, scope) {
            Ok(id) => id,
            Err(rejected) => return Ok(Err(rejected)),
        };
        let Some(cached) = self.cached_key(id, now) else {
            return Err(Pending::new(id, Stage::Load));
        };
        let Some(cached) = cached else {
            return Ok(Err(Denial::UnknownKey.into()));
        };
        if !self.authentic(token, &cached) {
            return Ok(Err(Denial::UnknownKey.into()));
        }
        self.admit_resolved_now(id, cached, scope, req, cost, now)
    }

    /// Finishes a verification that [`Verifier::verify_now`] (called with the same arguments)
    /// could not finish from memory.
    pub async fn resume(
        &self,
        pending: Pending,
        token: &str,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Result<Outcome, VerifyError> {
        let Pending { id, stage, .. } = pending;
        let cached = match stage {
            Stage::Load => {
                let Some(cached) = self.key_by_public_id(id, now).await? else {
                    return Ok(Err(Denial::UnknownKey.into()));
                };
                if !self.authentic(token, &cached) {
                    return Ok(Err(Denial::UnknownKey.into()));
                }
                cached
            }
            Stage::Resolve(cached) => cached,
            Stage::Quota(cached, limit) => {
                return self.consume(id, cached, limit, req, cost, now).await;
            }
        };
        let cached = self.resolve(id, cached, now).await?;
        match self.admit_now(id, cached, scope, req, cost, now) {
            Admission::Done(outcome) => Ok(outcome),
            Admission::Quota(cached, limit) => {
                self.consume(id, cached, limit, req, cost, now).await
            }
        }
    }

    /// The checks of an authenticated key, from memory: its API, organization and owner as
    /// resolved (or resolved again from their caches), then [`Verifier::admit_now`].
    fn admit_resolved_now(
        &self,
        id: u64,
        cached: Arc<CachedKey>,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Result<Outcome, Pending> {
        let cached = match self.resolve_now(id, cached, now) {
            Ok(cached) => cached,
            Err(cached) => return Err(Pending::new(id, Stage::Resolve(cached))),
        };
        match self.admit_now(id, cached, scope, req, cost, now) {
            Admission::Done(outcome) => Ok(outcome),
            Admission::Quota(cached, limit) => Err(Pending::new(id, Stage::Quota(cached, limit))),
        }
    }

    /// The packed public id of a well-formed `token` (of the management API's prefixes for
    /// `scope.management`).
    fn public_id(&self, token: &str, scope: Scope<'_>) -> Result<u64, Rejected> {
        if token.is_empty() {
            return Err(Denial::MissingCredentials.into());
        }
        let parsed = key::parse(token).map_err(|e| Denial::Malformed(malformed_reason(e)))?;
        if scope.management && !MANAGEMENT_PREFIXES.contains(&parsed.prefix) {
            return Err(Denial::Malformed("wrong prefix").into());
        }
        packed(parsed.id).ok_or_else(|| Denial::Malformed("unexpected characters").into())
    }

    /// Whether `token` is the key `cached` holds: same prefix, and its HMAC under the key's
    /// pepper is the stored hash (compared in constant time).
    fn authentic(&self, token: &str, cached: &CachedKey) -> bool {
        let key = &cached.key;
        // Hashed with the current pepper before the record's pepper version is known, so that
        // hashing overlaps with loading the record; a key of an older pepper is hashed again.
        let current = self.peppers.current();
        let hash = current.hash(token);
        let prefix = token.get(..cached.prefix().len()).map(str::as_bytes);
        prefix == Some(cached.prefix())
            && token.len() == cached.prefix().len() + key::BODY_LEN
            && if key.pepper_version == current.version() {
                hash.ct_eq(&key.hash)
            } else {
                self.peppers
                    .get(key.pepper_version)
                    .is_some_and(|p| p.hash(token).ct_eq(&key.hash))
            }
    }

    /// Checks a management key presented on a connection that already presented one: when it is
    /// the very key `remembered` holds, and nothing was invalidated since (and for at most
    /// [`REMEMBER_MS`]), parsing, lookup and hashing are skipped; every other check of
    /// [`Verifier::verify`] runs as usual, and so do the rate limit and the record of its use.
    /// Otherwise (or without `remembered`) the key is verified in full and, if it passes,
    /// remembered.
    pub async fn verify_management(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
        remembered: Option<&Remembered>,
    ) -> Result<Outcome, VerifyError> {
        let now = self.clock.now_ms();
        match self.verify_management_now(token, client_ip, remembered, now) {
            Ok(outcome) => Ok(outcome),
            Err(pending) => {
                self.resume_management(pending, token, client_ip, remembered, now)
                    .await
            }
        }
    }

    /// [`Verifier::verify_management`] from memory alone (see [`Verifier::verify_now`]).
    pub fn verify_management_now(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
        remembered: Option<&Remembered>,
        now: Millis,
    ) -> Result<Outcome, Pending> {
        let (scope, req) = management(client_ip);
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(m) = remembered.and_then(|r| r.recall(token, client_ip, epoch, now)) {
            // Not hashed now: not remembered again, so the memory still ends in time.
            return self.admit_resolved_now(m.id, m.cached.clone(), scope, &req, 1, now);
        }
        let outcome = self
            .verify_now(token, scope, &req, 1, now)
            .map_err(|pending| Pending {
                remember_at_epoch: Some(epoch),
                ..pending
            })?;
        if let (Ok(v), Some(r)) = (&outcome, remembered) {
            r.remember(token, v, client_ip, epoch, now);
        }
        Ok(outcome)
    }

    /// Finishes a verification that [`Verifier::verify_management_now`] (called with the same
    /// arguments) could not finish from memory.
    pub async fn resume_management(
        &self,
        pending: Pending,
        token: &str,
        client_ip: Option<IpAddr>,
        remembered: Option<&Remembered>,
        now: Millis,
    ) -> Result<Outcome, VerifyError> {
        let (scope, req) = management(client_ip);
        let epoch = pending.remember_at_epoch;
        let outcome = self.resume(pending, token, scope, &req, 1, now).await?;
        if let (Ok(v), Some(r), Some(epoch)) = (&outcome, remembered, epoch) {
            r.remember(token, v, client_ip, epoch, now);
        }
        Ok(outcome)
    }

    /// Consumes the quota of a key that passed every check (see [`Admission::Quota`]), after
    /// charging its rate `limit`, and records its use.
    async fn consume(
        &self,
        id: u64,
        cached: Arc<CachedKey>,
        limit: Option<RateLimit>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Result<Outcome, VerifyError> {
        let ratelimit = self.charge(id, limit, cost, now, None);
        if let Some(d) = ratelimit.filter(|d| !d.allowed) {
            return Ok(Err(reject(&cached, Denial::RateLimited(d), Some(d))));
        }
        let consumed = self
            .store
            .consume_quota(&cached.key.id, i64::from(cost), now)
            .await?;
        let Some(left) = consumed else {
            return Ok(Err(reject(&cached, Denial::QuotaExceeded, ratelimit)));
        };
        self.charge(id, None, cost, now, Some(req.client_ip));
        Ok(Ok(Verified {
            cached,
            ratelimit,
            quota_remaining: Some(left),
            at: now,
        }))
    }

    /// The checks after a key is authenticated and resolved, in contract order, and the charge of
    /// its rate limit and record of its use; for a key with a quota that passes the checks, which
    /// is consumed in storage, [`Admission::Quota`] with the rate limit that applies, having
    /// charged nothing.
    fn admit_now(
        &self,
        id: u64,
        cached: Arc<CachedKey>,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        cost: u32,
        now: Millis,
    ) -> Admission {
        let limit = match self.check(&cached, scope, req, now) {
            Ok(limit) => limit,
            Err(rejected) => return Admission::Done(Err(rejected)),
        };
        if cached.key.quota.is_some() {
            return Admission::Quota(cached, limit);
        }
        // Without a quota to consume, charging the limit and recording the use is one visit to
        // the key's slot.
        let ratelimit = self.charge(id, limit, cost, now, Some(req.client_ip));
        if let Some(d) = ratelimit.filter(|d| !d.allowed) {
            return Admission::Done(Err(reject(&cached, Denial::RateLimited(d), Some(d))));
        }
        Admission::Done(Ok(Verified {
            cached,
            ratelimit,
            quota_remaining: None,
            at: now,
        }))
    }

    /// The stateless checks of a resolved key, in contract order: where it belongs (a key out of
    /// `scope` is not found, and not shown), its state, its owner and organization. Returns the
    /// rate limit that applies.
    fn check(
        &self,
        cached: &Arc<CachedKey>,
        scope: Scope<'_>,
        req: &Requirements<'_>,
        now: Millis,
    ) -> Result<Option<RateLimit>, Rejected> {
        let key = &cached.key;
        let deps = cached.deps.get().expect("resolved");
        let (Some(api), Some(org)) = (deps.api.as_deref(), deps.org.as_deref()) else {
            return Err(Denial::UnknownKey.into());
        };
        // Compared with the shared API and organization (same ids as the key's), not the key's
        // own strings.
        let in_scope = scope.org_id.is_none_or(|o| o == org.id)
            && scope.api_id.is_none_or(|a| a == api.id)
            && (!scope.management || api.is_management());
        if !in_scope {
            return Err(Denial::UnknownKey.into());
        }
        let req = Requirements {
            skip_plan: req.skip_plan || api.is_management(),
            ..req.clone()
        };
        check::check_key(
            key,
            deps.owner.as_deref(),
            org,
            &self.plans_without_access,
            &req,
            now,
        )
        .map_err(|denial| reject(cached, denial, None))?;
        Ok(key.rate_limit.or(api.default_rate_limit).or_else(|| {
            // The plan's default covers protected APIs; management keys are limited only by
            // their own setting, so an organization can always manage itself.
            (!api.is_management())
                .then(|| self.plan_rate_limits.get(&org.plan).copied())
                .flatten()
        }))
    }

    /// `cached` with its API, organization and owner resolved and current, from memory: as
    /// resolved in the entry, or resolved again from their caches when those hold them (as when
    /// only the resolution's TTL ran out). `Err` (with `cached` back) when one of them must be
    /// read from storage.
    fn resolve_now(
        &self,
        id: u64,
        cached: Arc<CachedKey>,
        now: Millis,
    ) -> Result<Arc<CachedKey>, Arc<CachedKey>> {
        let epoch = self.deps_epoch.load(Ordering::SeqCst);
        if self.resolved(&cached, now) {
            return Ok(cached);
        }
        let key = &cached.key;
        // Looked up by the ids of the objects resolved before, when there are: shared by many
        // keys, their text is in the CPU's cache, unlike the record's own copies.
        let prior = cached.deps.get();
        let api_id = prior
            .and_then(|d| d.api.as_deref())
            .map_or(key.api_id.as_str(), |a| a.id.as_str());
        let org_id = prior
            .and_then(|d| d.org.as_deref())
            .map_or(key.org_id.as_str(), |o| o.id.as_str());
        let owner_id = prior
            .and_then(|d| d.owner.as_deref())
            .map_or(key.owner_id.as_str(), |u| u.id.as_str());
        let found = (|| {
            let api = fresh(&self.apis, api_id, now)?;
            let org = fresh(&self.orgs, org_id, now)?;
            let owner = fresh(&self.users, owner_id, now)?;
            Some(Deps::new(epoch, now, Some(api), Some(org), Some(owner)))
        })();
        match found {
            Some(deps) => Ok(self.settle(id, cached, deps)),
            None => Err(cached),
        }
    }

    /// [`Verifier::resolve_now`], reading from storage what is not cached.
    async fn resolve(
        &self,
        id: u64,
        cached: Arc<CachedKey>,
        now: Millis,
    ) -> Result<Arc<CachedKey>, StoreError> {
        let epoch = self.deps_epoch.load(Ordering::SeqCst);
        if self.resolved(&cached, now) {
            return Ok(cached);
        }
        let key = &cached.key;
        let deps = Deps::new(
            epoch,
            now,
            self.api(&key.api_id, now).await?,
            self.org(&key.org_id, now).await?,
            self.user(&key.owner_id, now).await?,
        );
        Ok(self.settle(id, cached, deps))
    }

    /// `cached` with `deps`, its API, organization and owner as just resolved (while the
    /// dependencies' invalidation count was `deps.epoch`): set in place when it had none, renewed
    /// in place when unchanged, else in a copy of the record that replaces the cache entry.
    fn settle(&self, id: u64, cached: Arc<CachedKey>, deps: Deps) -> Arc<CachedKey> {
        let deps = match cached.deps.set(deps) {
            Ok(()) => return cached,
            Err(deps) => deps,
        };
        if let Some(old) = cached.deps.get().filter(|old| old.same_as(&deps)) {
            // Unchanged (the common case when only the TTL ran out): renewed in place, rather
            // than the record copied into a new entry.
            old.epoch
                .store(deps.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
            old.resolved_at
                .store(deps.resolved_at.load(Ordering::SeqCst), Ordering::SeqCst);
            return cached;
        }
        // Resolved before a change: replace the entry, unless it was invalidated or reloaded
        // meanwhile (then the next verification resolves again).
        let fresh = Arc::new(cached.with_deps(deps));
        if let Some(mut entry) = self.keys.get_mut(&id) {
            if entry
                .value
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &cached))
            {
                entry.value = Some(fresh.clone());
            }
        }
        fresh
    }

    /// Whether `cached` has its API, organization and owner resolved, and still current: nothing
    /// they depend on was invalidated since, and they are younger than their TTL.
    fn resolved(&self, cached: &CachedKey, now: Millis) -> bool {
        cached.deps.get().is_some_and(|d| {
            let resolved_at = d.resolved_at.load(Ordering::SeqCst);
            d.epoch.load(Ordering::SeqCst) == self.deps_epoch.load(Ordering::SeqCst)
                && now >= resolved_at
                && now - resolved_at < POSITIVE_TTL_MS
        })
    }

    /// Charges `cost` against the key's rate `limit` (if any) and, when `used_from` is given (the
    /// client's address, if known), records this moment as the key's last use.
    fn charge(
        &self,
        id: u64,
        limit: Option<RateLimit>,
        cost: u32,
        now: Millis,
        used_from: Option<Option<IpAddr>>,
    ) -> Option<RateDecision> {
        let used_from = used_from.map(|ip| ip.map(crate::domain::model::normalize_ip));
        if limit.is_none() {
            // Nothing to charge, and this very moment's use from this address already recorded
            // (a key many connections present at once): no need for the slot's exclusive lock,
            // which those connections would otherwise queue for.
            let recorded = used_from.is_none_or(|ip| {
                self.keys
                    .get(&id)
                    .is_some_and(|e| e.touch == Some((now, ip)))
            });
            if recorded {
                return None;
            }
        }
        let mut entry = self.keys.entry(id).or_default();
        let decision = limit.map(|l| {
            let (decision, tat) = check::gcra(entry.tat, now, l.requests, l.per_seconds, cost);
            entry.tat = tat;
            decision
        });
        let mut due = None;
        if decision.is_none_or(|d| d.allowed) {
            if let Some(ip) = used_from {
                if entry.touch.replace((now, ip)).is_none() {
                    due = Some(entry.written_at.map_or(now, |at| at + write_interval(id)));
                }
            }
        }
        drop(entry);
        if let Some(at) = due {
            self.due.lock().push(Reverse((at, id)));
        }
        decision
    }

    /// The newest not yet written `last_used` of a key, to overlay on what storage returns.
    pub fn pending_touch(&self, key_id: &str) -> Option<(Millis, Option<IpAddr>)> {
        self.keys.get(&packed(key_id)?)?.touch
    }

    /// Writes collected `last_used` observations in one batch. A key whose `last_used` was
    /// written less than [`write_interval`] ago stays pending (still shown by the API
    /// from memory), so a hot key costs one row update every five minutes, not one a second.
    pub async fn flush(&self) -> Result<usize, VerifyError> {
        self.flush_pending(false).await
    }

    /// Writes every pending `last_used` observation now (on shutdown).
    pub async fn flush_all(&self) -> Result<usize, VerifyError> {
        self.flush_pending(true).await
    }

    async fn flush_pending(&self, all: bool) -> Result<usize, VerifyError> {
        let now = self.clock.now_ms();
        let ids: Vec<u64> = {
            let mut due = self.due.lock();
            let mut ids = Vec::new();
            while let Some(Reverse((at, id))) = due.peek().copied() {
                if !all && at > now {
                    break;
                }
                due.pop();
                ids.push(id);
            }
            ids
        };
        let mut batch = Vec::with_capacity(ids.len());
        let mut later = Vec::new();
        for id in ids {
            let Some(mut entry) = self.keys.get_mut(&id) else {
                continue;
            };
            let due_at = entry.written_at.map(|at| at + write_interval(id));
            if !all && due_at.is_some_and(|at| at > now) {
                // Written since this item was added (by a flush that failed and was retried).
                if entry.touch.is_some() {
                    later.extend(due_at.map(|at| (at, id)));
                }
                continue;
            }
            if let Some((at, ip)) = entry.touch.take() {
                entry.written_at = Some(now);
                batch.push(UsageTouch {
                    key_id: unpacked(id),
                    at,
                    ip: ip.map(|ip| ip.to_string()),
                });
            }
        }
        self.due.lock().extend(later.into_iter().map(Reverse));
        if let Err(e) = self.store.touch_keys(&batch).await {
            // Put them back so that the next flush tries again, unless newer ones arrived (which
            // are then due already).
            let mut retry = Vec::with_capacity(batch.len());
            for t in batch {
                let Some(id) = packed(&t.key_id) else {
                    continue;
                };
                let mut entry = self.keys.entry(id).or_default();
                entry.written_at = None;
                if entry.touch.is_none() {
                    entry.touch = Some((t.at, t.ip.and_then(|ip| ip.parse().ok())));
                }
                retry.push(Reverse((now, id)));
            }
            self.due.lock().extend(retry);
            return Err(e.into());
        }
        Ok(batch.len())
    }

    /// Drops cached key records that another process changed since they were read: keys whose
    /// stored version (`updated_at`) is newer than the cached one. Run every second, so a change
    /// made through any instance sharing the database is seen by this one about a second later.
    /// Each run reads the keys changed since [`CHANGE_WINDOW_MS`] before the previous run began,
    /// page by page, so that a change of many keys at once (say, every key of a disabled member)
    /// is followed in full, and read again only while it is that recent. Returns how many records
    /// were dropped.
    pub async fn follow_changes(&self) -> Result<usize, VerifyError> {
        let began = self.clock.now_ms();
        let since = self.changes_polled.load(Ordering::SeqCst) - CHANGE_WINDOW_MS;
        let mut dropped = 0;
        let mut after: Option<(Millis, String)> = None;
        loop {
            let page = after.as_ref().map(|(v, id)| (*v, id.as_str()));
            let changed = self
                .store
                .keys_changed_since(since, page, CHANGE_BATCH)
                .await?;
            for (id, version) in &changed {
                let stale = packed(id).and_then(|p| self.keys.get(&p)).is_some_and(|e| {
                    e.value
                        .as_ref()
                        .is_some_and(|c| c.key.updated_at < *version)
                });
                if stale {
                    self.invalidate_key(id);
                    dropped += 1;
                }
            }
            match changed.last() {
                Some((id, version)) if changed.len() as i64 == CHANGE_BATCH => {
                    after = Some((*version, id.clone()));
                }
                _ => break,
            }
        }
        self.changes_polled.fetch_max(began, Ordering::SeqCst);
        Ok(dropped)
    }

    /// Forgets a key's record (by `key_...` id), so the next verify reads it again. Its usage
    /// state stays.
    pub fn invalidate_key(&self, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(mut entry) = packed(id).and_then(|id| self.keys.get_mut(&id)) {
            entry.value = None;
            entry.loaded_at = STALE;
        }
    }

    pub fn invalidate_api(&self, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.deps_epoch.fetch_add(1, Ordering::SeqCst);
        self.apis.remove(id);
    }

    pub fn invalidate_user(&self, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.deps_epoch.fetch_add(1, Ordering::SeqCst);
        self.users.remove(id);
    }

    pub fn invalidate_org(&self, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.deps_epoch.fetch_add(1, Ordering::SeqCst);
        self.orgs.remove(id);
    }

    /// Forgets a key's rate-limit state (when its limit changes).
    pub fn reset_rate_limit(&self, key_id: &str) {
        if let Some(mut entry) = packed(key_id).and_then(|id| self.keys.get_mut(&id)) {
            entry.tat = 0;
        }
    }

    /// A key's record from memory: `None` when it must be read from storage, `Some(None)` when
    /// it is known not to exist.
    fn cached_key(&self, id: u64, now: Millis) -> Option<Option<Arc<CachedKey>>> {
        let c = self.keys.get(&id)?;
        if !c.fresh(now) {
            return None;
        }
        // Before the reference is counted: that locked instruction waits for its cache line, and
        // loads issued after it would wait behind it.
        if let Some(cached) = c.value.as_deref() {
            warm(cached);
        }
        Some(c.value.clone())
    }

    async fn key_by_public_id(
        &self,
        id: u64,
        now: Millis,
    ) -> Result<Option<Arc<CachedKey>>, StoreError> {
        if let Some(value) = self.cached_key(id, now) {
            return Ok(value);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let value = self
            .store
            .get_key(&unpacked(id))
            .await?
            .map(|k| Arc::new(CachedKey::new(k, None)));
        if value.is_none() && self.negatives.fetch_add(1, Ordering::Relaxed) >= NEGATIVE_MAX {
            // Forget unknown keys, but not usage state still to be written.
            self.keys
                .retain(|_, c| c.value.is_some() || c.touch.is_some() || c.tat != 0);
            self.negatives.store(0, Ordering::Relaxed);
        }
        // As in `store_unless_invalidated`: not if an invalidation raced with this load. The
        // check and the update happen under the slot's shard lock.
        let mut entry = self.keys.entry(id).or_default();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            entry.value = value.clone();
            entry.loaded_at = now;
        }
        Ok(value)
    }

    /// An API, cached.
    pub async fn api(&self, id: &str, now: Millis) -> Result<Option<Arc<Api>>, StoreError> {
        cached(&self.apis, &self.epoch, id, now, || self.store.get_api(id)).await
    }

    /// A user, cached.
    pub async fn user(&self, id: &str, now: Millis) -> Result<Option<Arc<User>>, StoreError> {
        cached(&self.users, &self.epoch, id, now, || {
            self.store.get_user(id)
        })
        .await
    }

    /// An organization, cached.
    pub async fn org(&self, id: &str, now: Millis) -> Result<Option<Arc<Org>>, StoreError> {
        cached(&self.orgs, &self.epoch, id, now, || self.store.get_org(id)).await
    }
}

/// Caches a freshly loaded value, unless an invalidation happened since `epoch` was read before
/// the load: the value may predate the change that caused it, and caching it would resurrect
/// the old state (say, a key revoked while this load was waiting on the database). The check and
/// the insert happen under the map shard's lock, and invalidations bump the epoch before they
/// remove, so no stale value can slip in between.
fn store_unless_invalidated<T>(
    map: &Map<Cached<T>>,
    epochs: &AtomicU64,
    epoch: u64,
    id: &str,
    value: &Option<Arc<T>>,
    now: Millis,
) {
    match map.entry(id.to_owned()) {
        dashmap::Entry::Occupied(mut e) if epochs.load(Ordering::SeqCst) == epoch => {
            e.insert(Cached {
                value: value.clone(),
                loaded_at: now,
            });
        }
        dashmap::Entry::Vacant(e) if epochs.load(Ordering::SeqCst) == epoch => {
            e.insert(Cached {
                value: value.clone(),
                loaded_at: now,
            });
        }
        _ => {}
    }
}

async fn cached<T, F, Fut>(
    map: &Map<Cached<T>>,
    epochs: &AtomicU64,
    id: &str,
    now: Millis,
    load: F,
) -> Result<Option<Arc<T>>, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    if let Some(value) = fresh(map, id, now) {
        return Ok(Some(value));
    }
    let epoch = epochs.load(Ordering::SeqCst);
    let value = load().await?.map(Arc::new);
    if value.is_some() {
        store_unless_invalidated(map, epochs, epoch, id, &value, now);
    }
    Ok(value)
}

/// The value cached under `id`, if there is one younger than [`POSITIVE_TTL_MS`].
fn fresh<T>(map: &Map<Cached<T>>, id: &str, now: Millis) -> Option<Arc<T>> {
    let c = map.get(id)?;
    (now >= c.loaded_at && now - c.loaded_at < POSITIVE_TTL_MS)
        .then(|| c.value.clone())
        .flatten()
}

/// Starts loading what checking and answering `cached` reads (the record's leading fields and its
/// rendering), all at once, so that those loads overlap with hashing the token: among many keys a
/// record is rarely in the CPU's cache, and read field by field its cache lines would arrive one
/// after another.
fn warm(cached: &CachedKey) {
    let key = &cached.key;
    let mut touched = (key.pepper_version as u8)
        ^ u8::from(key.enabled)
        ^ (key.ip_allowlist.len() as u8)
        ^ (key.scopes.len() as u8)
        ^ (key.id.len() as u8);
    if let Some(rendered) = cached.rendered.get() {
        for line in rendered.as_bytes().chunks(64) {
            touched ^= line[0];
        }
    }
    std::hint::black_box(touched);
}

/// What [`Verifier::admit_now`] decided.
enum Admission {
    Done(Outcome),
    /// The key passed every check and has a quota to consume (in storage), under this rate
    /// limit; nothing was charged yet.
    Quota(Arc<CachedKey>, Option<RateLimit>),
}

/// The scope and requirements of a management key presented from `client_ip`.
fn management(client_ip: Option<IpAddr>) -> (Scope<'static>, Requirements<'static>) {
    let scope = Scope {
        management: true,
        ..Default::default()
    };
    let req = Requirements {
        client_ip,
        skip_plan: true,
        ..Default::default()
    };
    (scope, req)
}

/// A refusal of an identified key.
fn reject(cached: &Arc<CachedKey>, denial: Denial, ratelimit: Option<RateDecision>) -> Rejected {
    Rejected {
        denial,
        key: Some(cached.clone()),
        ratelimit,
    }
}

fn malformed_reason(e: key::FormatError) -> &'static str {
    match e {
        key::FormatError::Length => "wrong length",
        key::FormatError::Prefix => "wrong prefix",
        key::FormatError::Characters => "unexpected characters",
        key::FormatError::Checksum => "bad checksum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renderings up to the inline size and beyond it (a key with much metadata) read back whole.
    #[test]
    fn a_rendering_reads_back_whole_inline_or_apart() {
        for len in [
            2,
            RENDERED_INLINE - 1,
            RENDERED_INLINE,
            RENDERED_INLINE + 1,
            5_000,
        ] {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let rendered = Rendered::new(text.clone());
            assert_eq!(rendered.as_bytes(), text.as_bytes(), "{len} bytes");
            assert_eq!(
                rendered.apart.is_some(),
                len > RENDERED_INLINE,
                "{len} bytes"
            );
        }
    }

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
        // Without a race the value is cached.
        let now = epochs.load(Ordering::SeqCst);
        store_unless_invalidated(&map, &epochs, now, "k", &Some(Arc::new(2)), 6);
        assert_eq!(map.get("k").map(|c| *c.value.clone().unwrap()), Some(2));
    }
}
