//! The one decision about a presented key: [`Verifier::check`], used by the verify endpoint, the
//! management API's authentication of its callers and the gateway.
//!
//! Checks run in the contract's order: credentials, key state, owner, plan, IP allowlist, token
//! type, scope, rate limit, quota. A key is found by the HMAC of the whole presented token, so that
//! an unknown key and a known id with a wrong secret take the same path and the same time: both
//! miss the cache, both are looked up by hash (in memory for hashes recently found to match
//! nothing, else in storage), and neither tells a caller which key ids exist.
//!
//! Known keys, their APIs, owners and organizations are cached (see [`cache`]), so a verification
//! of a known key does not touch the database; rate limits and last use live beside each cached
//! key (see [`last_use`]); changes by other processes are followed (see [`follow`]).

mod cache;
mod follow;
mod last_use;
pub mod throttle;

pub use last_use::LAST_USED_WRITE_INTERVAL_MS;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::domain::Clock;
use crate::domain::check::{self, Denial, RateDecision, Requirements};
use crate::domain::key::{self, KeyHash, Peppers};
use crate::domain::model::{Api, Key, MANAGEMENT_PREFIXES, Millis, Org, RateLimit, User};
use crate::store::{Store, StoreError};
use cache::Cache;
pub use cache::{CachedKey, packed, unpacked};

/// Where a key may come from: the verify endpoint scopes it to the caller's organization (and
/// optionally one API); the management API needs a key of the built-in `keyward` API; the gateway
/// a key of the API it matched, with one of that API's prefixes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub org_id: Option<&'a str>,
    pub api_id: Option<&'a str>,
    pub management: bool,
    /// A token with none of these prefixes is malformed, before any lookup; empty: any prefix.
    pub prefixes: &'a [&'a str],
}

/// A key presented for checking, with what the request asks of it.
#[derive(Debug, Clone)]
pub struct Presented<'a> {
    pub token: &'a str,
    pub scope: Scope<'a>,
    pub req: Requirements<'a>,
    /// Units charged against the rate limit and the quota.
    pub cost: u32,
}

impl<'a> Presented<'a> {
    /// A management key presented from `client_ip`: the management API authenticating its caller.
    /// Never refused for the organization's plan, so that it can always manage itself.
    pub fn management(token: &'a str, client_ip: Option<IpAddr>) -> Self {
        Presented {
            token,
            scope: Scope {
                management: true,
                ..Default::default()
            },
            req: Requirements {
                client_ip,
                skip_plan: true,
                ..Default::default()
            },
            cost: 1,
        }
    }
}

/// A verification's outcome: `Err` is a refusal.
pub type Outcome = Result<Verified, Rejected>;

/// A key that passed every check, with what it depends on.
#[derive(Debug, Clone)]
pub struct Verified {
    pub key: Arc<CachedKey>,
    pub api: Arc<Api>,
    pub org: Arc<Org>,
    pub owner: Arc<User>,
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
    cache: Cache,
    /// When the latest [`Verifier::follow_changes`] began, by this process's clock.
    changes_polled: AtomicI64,
    /// Keys with a `last_used` observation not yet written, by when it is due: every slot holding
    /// one has an item here, so that a flush visits the keys due, not every key.
    due: Mutex<BinaryHeap<Reverse<(Millis, u64)>>>,
    /// Presented keys found in the cache, and not (for the metrics).
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// The dependencies of a key, as cached (`None`: not found).
struct Deps {
    api: Option<Arc<Api>>,
    org: Option<Arc<Org>>,
    owner: Option<Arc<User>>,
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
            cache: Cache::default(),
            changes_polled: AtomicI64::new(started),
            due: Mutex::default(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }

    /// Presented keys found in the cache so far, and not found there.
    pub fn cache_lookups(&self) -> (u64, u64) {
        (
            self.cache_hits.load(Ordering::Relaxed),
            self.cache_misses.load(Ordering::Relaxed),
        )
    }

    /// How many keys the cache holds (records, rate-limit and last-use state).
    pub fn cached_keys(&self) -> usize {
        self.cache.keys.len()
    }

    /// Keys whose last use waits to be written.
    pub fn pending_writes(&self) -> usize {
        self.due.lock().len()
    }

    pub fn peppers(&self) -> &Peppers {
        &self.peppers
    }

    pub fn plans_without_access(&self) -> &[String] {
        &self.plans_without_access
    }

    /// Checks a presented key now. `Ok(Err(_))` is a refusal; `Err(_)` a storage failure.
    pub async fn check(&self, p: &Presented<'_>) -> Result<Outcome, VerifyError> {
        self.check_at(p, self.clock.now_ms()).await
    }

    /// [`Verifier::check`] at `now`, the time of a request that already read the clock.
    pub async fn check_at(&self, p: &Presented<'_>, now: Millis) -> Result<Outcome, VerifyError> {
        let id = match public_id(p.token, p.scope) {
            Ok(id) => id,
            Err(denial) => return Ok(Err(denial.into())),
        };
        let Some(key) = self.find(p.token, id, now).await? else {
            return Ok(Err(Denial::UnknownKey.into()));
        };
        let deps = self.dependencies(&key, now).await?;
        let (api, org, owner, limit) = match self.admit(id, &key, deps, p, now) {
            Ok(admitted) => admitted,
            Err(rejected) => return Ok(Err(rejected)),
        };
        let refuse = |denial, ratelimit| {
            Ok(Err(Rejected {
                denial,
                key: Some(key.clone()),
                ratelimit,
            }))
        };
        let used_from = Some(p.req.client_ip);
        let (ratelimit, quota_remaining) = if key.quota.is_none() {
            let ratelimit = self.charge(id, limit, p.cost, now, used_from);
            if let Some(d) = ratelimit.filter(|d| !d.allowed) {
                return refuse(Denial::RateLimited(d), Some(d));
            }
            (ratelimit, None)
        } else {
            // Charged first, so that a request refused by its rate limit spends no quota; the
            // use is recorded once the quota is spent.
            let ratelimit = self.charge(id, limit, p.cost, now, None);
            if let Some(d) = ratelimit.filter(|d| !d.allowed) {
                return refuse(Denial::RateLimited(d), Some(d));
            }
            let spent = self
                .store
                .consume_quota(&key.id, i64::from(p.cost), now)
                .await?;
            let Some(left) = spent else {
                return refuse(Denial::QuotaExceeded, ratelimit);
            };
            self.charge(id, None, p.cost, now, used_from);
            (ratelimit, Some(left))
        };
        Ok(Ok(Verified {
            key,
            api,
            org,
            owner,
            ratelimit,
            quota_remaining,
            at: now,
        }))
    }

    /// The key `token` is, if any. The presented token is hashed under every pepper first, and a
    /// cached record whose hash differs leads to the same lookup as an unknown id, so the answer
    /// and its timing depend on the whole token, never on whether its id exists.
    async fn find(
        &self,
        token: &str,
        id: u64,
        now: Millis,
    ) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let current = self.peppers.current().hash(token);
        if let Some(key) = self.cache.key(id, now) {
            if self.authentic(token, &key, &current) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(key));
            }
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        if self.cache.known_unknown(&current, now) {
            return Ok(None);
        }
        let epoch = self.cache.epoch();
        let hashes: Vec<KeyHash> = self
            .peppers
            .hashes(token)
            .into_iter()
            .map(|(_, h)| h)
            .collect();
        match self.store.get_key_by_hash(&hashes).await? {
            Some(key) if self.authentic(token, &key, &current) => {
                let key = Arc::new(CachedKey::new(key));
                self.cache.put_key(id, key.clone(), epoch, now);
                Ok(Some(key))
            }
            _ => {
                self.cache.put_unknown(&current, now);
                Ok(None)
            }
        }
    }

    /// Whether `token` is `key`: the same prefix, and its HMAC under the key's pepper (`current`,
    /// already computed, when the key is under the current pepper) is the stored hash, compared in
    /// constant time.
    fn authentic(&self, token: &str, key: &Key, current: &KeyHash) -> bool {
        let prefix_ok = token.len() == key.key_prefix.len() + key::BODY_LEN
            && token.starts_with(key.key_prefix.as_str());
        let hash_ok = if key.pepper_version == self.peppers.current().version() {
            current.ct_eq(&key.hash)
        } else {
            self.peppers
                .get(key.pepper_version)
                .is_some_and(|p| p.hash(token).ct_eq(&key.hash))
        };
        prefix_ok & hash_ok
    }

    async fn dependencies(&self, key: &Key, now: Millis) -> Result<Deps, StoreError> {
        Ok(Deps {
            api: self.api(&key.api_id, now).await?,
            org: self.org(&key.org_id, now).await?,
            owner: self.user(&key.owner_id, now).await?,
        })
    }

    /// The stateless checks of a found key, in contract order: where it belongs (a key out of the
    /// presented scope is not found, and not shown), its state, owner, organization, address,
    /// token type and scopes. Returns what it depends on and the rate limit that applies.
    #[expect(clippy::type_complexity, reason = "one use, right above")]
    fn admit(
        &self,
        id: u64,
        key: &Arc<CachedKey>,
        deps: Deps,
        p: &Presented<'_>,
        now: Millis,
    ) -> Result<(Arc<Api>, Arc<Org>, Arc<User>, Option<RateLimit>), Rejected> {
        let (Some(api), Some(org)) = (deps.api, deps.org) else {
            return Err(Denial::UnknownKey.into());
        };
        let in_scope = p.scope.org_id.is_none_or(|o| o == org.id)
            && p.scope.api_id.is_none_or(|a| a == api.id)
            && (!p.scope.management || api.is_management());
        if !in_scope {
            return Err(Denial::UnknownKey.into());
        }
        // Its own limit, else its group's, else its API's, else its plan's.
        let limit = key
            .rate_limit
            .or(key.linked.group_rate_limit)
            .or(api.default_rate_limit)
            .or_else(|| {
                // The plan's default covers protected APIs; management keys are limited only by
                // their own setting, so that an organization can always manage itself.
                (!api.is_management())
                    .then(|| self.plan_rate_limits.get(&org.plan).copied())
                    .flatten()
            });
        let req = Requirements {
            skip_plan: p.req.skip_plan || api.is_management(),
            ..p.req.clone()
        };
        let checked = check::check_key(
            key,
            deps.owner.as_deref(),
            &org,
            &self.plans_without_access,
            &req,
            now,
        );
        if let Err(denial) = checked {
            // A refusal still tells where the key's rate limit stands, uncharged: every answer
            // about a limited key carries its `RateLimit-*` headers.
            return Err(Rejected {
                denial: denial.naming_only(&api),
                key: Some(key.clone()),
                ratelimit: limit.map(|l| self.peek(id, l, now)),
            });
        }
        let Some(owner) = deps.owner else {
            return Err(Denial::OwnerDisabled.into());
        };
        Ok((api, org, owner, limit))
    }

    /// Forgets a key's record (by `key_...` id), so the next verification reads it again. Its
    /// usage state stays.
    pub fn invalidate_key(&self, id: &str) {
        if let Some(id) = packed(id) {
            self.cache.invalidate_key(id);
        }
    }

    pub fn invalidate_api(&self, id: &str) {
        self.cache.invalidate(&self.cache.apis, id);
    }

    pub fn invalidate_user(&self, id: &str) {
        self.cache.invalidate(&self.cache.users, id);
    }

    pub fn invalidate_org(&self, id: &str) {
        self.cache.invalidate(&self.cache.orgs, id);
    }

    /// An API, cached.
    pub async fn api(&self, id: &str, now: Millis) -> Result<Option<Arc<Api>>, StoreError> {
        self.cache
            .get_or_load(&self.cache.apis, id, now, || self.store.get_api(id))
            .await
    }

    /// A member, cached.
    pub async fn user(&self, id: &str, now: Millis) -> Result<Option<Arc<User>>, StoreError> {
        self.cache
            .get_or_load(&self.cache.users, id, now, || self.store.get_user(id))
            .await
    }

    /// An organization, cached.
    pub async fn org(&self, id: &str, now: Millis) -> Result<Option<Arc<Org>>, StoreError> {
        self.cache
            .get_or_load(&self.cache.orgs, id, now, || self.store.get_org(id))
            .await
    }
}

/// The packed public id of a well-formed `token` (of the management API's prefixes for a
/// management `scope`).
fn public_id(token: &str, scope: Scope<'_>) -> Result<u64, Denial> {
    if token.is_empty() {
        return Err(Denial::MissingCredentials);
    }
    let parsed = key::parse(token).map_err(|e| Denial::Malformed(malformed_reason(e)))?;
    let foreign = (scope.management && !MANAGEMENT_PREFIXES.contains(&parsed.prefix))
        || (!scope.prefixes.is_empty() && !scope.prefixes.contains(&parsed.prefix));
    if foreign {
        return Err(Denial::Malformed("wrong prefix"));
    }
    packed(parsed.id).ok_or(Denial::Malformed("unexpected characters"))
}

fn malformed_reason(e: key::FormatError) -> &'static str {
    match e {
        key::FormatError::Length => "wrong length",
        key::FormatError::Prefix => "wrong prefix",
        key::FormatError::Characters => "unexpected characters",
        key::FormatError::Checksum => "bad checksum",
    }
}
