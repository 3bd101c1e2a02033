//! Rate limits and last use, kept in each key's cache slot; `last_used_at`/`last_used_ip` are
//! written behind in batches.
//!
//! A key's last use is written at most every [`LAST_USED_WRITE_INTERVAL_MS`] (plus up to half that,
//! chosen by its id): each write rewrites the key's row, and keys in use are spread over the whole
//! table, so this sets the write load of a busy instance. The instance that saw a use shows it at
//! once ([`Verifier::pending_touch`]); others, and storage, see it later. Graceful shutdown writes
//! everything pending.

use std::cmp::Reverse;
use std::net::IpAddr;

use super::Verifier;
use super::cache::{packed, unpacked};
use crate::domain::check::{self, RateDecision};
use crate::domain::model::{Millis, RateLimit, normalize_ip};
use crate::store::UsageTouch;

/// Shortest time between two writes of one key's `last_used`: 100,000 keys in steady use cost
/// about 270 row writes a second at five minutes (1,300 at one).
pub const LAST_USED_WRITE_INTERVAL_MS: i64 = 300_000;

/// How long after a write of a key's `last_used` the next one may happen: five minutes, plus up
/// to half that chosen by the key's (random) id, so that keys first used together (say, all of
/// them after a restart) are not written together again in one burst every five minutes.
fn write_interval(id: u64) -> i64 {
    LAST_USED_WRITE_INTERVAL_MS + (id % (LAST_USED_WRITE_INTERVAL_MS as u64 / 2)) as i64
}

impl Verifier {
    /// Charges `cost` against the key's rate `limit` (if any) and, when `used_from` is given (the
    /// client's address, if known), records `now` as the key's last use, unless the charge was
    /// refused.
    pub(super) fn charge(
        &self,
        id: u64,
        limit: Option<RateLimit>,
        cost: u32,
        now: Millis,
        used_from: Option<Option<IpAddr>>,
    ) -> Option<RateDecision> {
        let mut entry = self.cache.keys.entry(id).or_default();
        let decision = limit.map(|l| {
            let (decision, tat) = check::gcra(entry.tat, now, l.requests, l.per_seconds, cost);
            entry.tat = tat;
            decision
        });
        let mut due = None;
        if decision.is_none_or(|d| d.allowed) {
            if let Some(ip) = used_from {
                if entry.touch.replace((now, ip.map(normalize_ip))).is_none() {
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

    /// Where a key's rate `limit` stands at `now`, without charging it.
    pub(super) fn peek(&self, id: u64, limit: RateLimit, now: Millis) -> RateDecision {
        let tat = self.cache.keys.get(&id).map_or(0, |e| e.tat);
        check::gcra(tat, now, limit.requests, limit.per_seconds, 0).0
    }

    /// The newest not yet written `last_used` of a key, to overlay on what storage returns.
    pub fn pending_touch(&self, key_id: &str) -> Option<(Millis, Option<IpAddr>)> {
        self.cache.keys.get(&packed(key_id)?)?.touch
    }

    /// Forgets a key's rate-limit state (when its limit changes).
    pub fn reset_rate_limit(&self, key_id: &str) {
        if let Some(mut entry) = packed(key_id).and_then(|id| self.cache.keys.get_mut(&id)) {
            entry.tat = 0;
        }
    }

    /// Writes the `last_used` observations that are due, in one batch; a key written less than
    /// its write interval ago stays pending (and shown from memory).
    pub async fn flush(&self) -> Result<usize, super::VerifyError> {
        self.flush_pending(false).await
    }

    /// Writes every pending `last_used` observation now (on shutdown).
    pub async fn flush_all(&self) -> Result<usize, super::VerifyError> {
        self.flush_pending(true).await
    }

    async fn flush_pending(&self, all: bool) -> Result<usize, super::VerifyError> {
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
            let Some(mut entry) = self.cache.keys.get_mut(&id) else {
                continue;
            };
            let due_at = entry.written_at.map(|at| at + write_interval(id));
            if !all && due_at.is_some_and(|at| at > now) {
                // Written since this item was queued (by a flush that failed and was retried).
                if entry.touch.is_some() {
                    later.extend(due_at.map(|at| Reverse((at, id))));
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
        self.due.lock().extend(later);
        if let Err(e) = self.store.touch_keys(&batch).await {
            // Put them back so that the next flush tries again, unless newer ones arrived (which
            // are then queued already).
            let mut retry = Vec::with_capacity(batch.len());
            for t in batch {
                let Some(id) = packed(&t.key_id) else {
                    continue;
                };
                let mut entry = self.cache.keys.entry(id).or_default();
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
}
