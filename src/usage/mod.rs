//! Usage counting (contract section 9): every verification by the verify endpoint and the gateway
//! counted per key per minute by verdict code, in memory, and written in batches.
//!
//! - **Counting** ([`Usage::observe`], on the request's task) adds one to a cell of a counter
//!   table. There are several tables, and each thread uses its own, so verifications on different
//!   cores never wait for each other; a known key's cell is found by its packed id, without
//!   allocating. Verifications no key could be attributed to (malformed, unknown) count for their
//!   organization.
//! - **Writing** ([`Usage::flush`], every second in the background and once more on graceful
//!   shutdown) takes every table's cells and adds them, as one batch, to the minute, hour and day
//!   rows in one transaction (see [`Store::add_usage`]): every granularity agrees at every moment,
//!   and counts are visible within about a second. Flushes run one at a time. A batch that fails
//!   is kept and retried under the same id, which the transaction records, so that a batch whose
//!   commit succeeded although it reported an error is never added twice; what is counted
//!   meanwhile waits beside it.
//! - **Retention** ([`Usage::prune`], every minute): rows older than each granularity's retention
//!   are deleted (see [`crate::config::UsageSettings`]).
//! - **Reading** ([`report`]): the usage endpoints and the dashboard.

pub mod report;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::UsageSettings;
use crate::domain::Clock;
use crate::domain::model::Millis;
use crate::observe::{Observation, Observer};
use crate::store::{Granularity, Store, StoreError, UsageCount};
use crate::verify::{packed, unpacked};

/// How often counts are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often old rows are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How long the record of a written batch is kept (a failed batch is retried every second, so it
/// is checked long before).
const BATCHES_KEPT_MS: i64 = 7 * 86_400_000;

/// Who a count is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    /// A key with a Keyward id (`key_` and 12 hex digits), packed.
    Key(u64),
    /// A key with any other id.
    Named(Box<str>),
    /// No key: the organization itself.
    Org,
}

/// One cell's count, with the organization it belongs to.
struct Tally {
    org: Box<str>,
    n: u64,
}

type CellKey = (Who, Millis, &'static str);
type Cells = HashMap<CellKey, Tally, foldhash::fast::RandomState>;

/// One counter table, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(Mutex<Cells>);

/// Counts not yet written, summed: (organization, key id or `""`, minute, code).
type Unsent = HashMap<(String, String, Millis, &'static str), i64>;

/// A batch handed to storage, kept with its id until it is known to be written.
struct Batch {
    id: String,
    counts: Vec<UsageCount>,
}

#[derive(Default)]
struct Pending {
    failed: Option<Batch>,
    unsent: Unsent,
}

/// The usage counter of this process.
pub struct Usage {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: UsageSettings,
    stripes: Box<[Stripe]>,
    /// Held by the one flush running; what waits to be written.
    pending: tokio::sync::Mutex<Pending>,
    /// Cells waiting in `pending` (for the write-behind gauge).
    waiting: AtomicUsize,
}

/// Threads take stripes in turn, so that up to as many threads as stripes each have their own.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn stripe_of_thread() -> usize {
    STRIPE.with(|s| {
        s.get().unwrap_or_else(|| {
            let n = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
            s.set(Some(n));
            n
        })
    })
}

impl Usage {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: UsageSettings) -> Self {
        let stripes = std::thread::available_parallelism()
            .map_or(4, usize::from)
            .saturating_mul(4)
            .next_power_of_two();
        Usage {
            store,
            clock,
            settings,
            stripes: (0..stripes).map(|_| Stripe::default()).collect(),
            pending: tokio::sync::Mutex::default(),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn settings(&self) -> &UsageSettings {
        &self.settings
    }

    /// Counts one verification.
    pub fn count(&self, org_id: &str, key_id: Option<&str>, at: Millis, code: &'static str) {
        let minute = Granularity::Minute.floor(at);
        let who = match key_id {
            Some(id) => match packed(id) {
                Some(p) => Who::Key(p),
                None => Who::Named(id.into()),
            },
            None => Who::Org,
        };
        let stripe = &self.stripes[stripe_of_thread() & (self.stripes.len() - 1)];
        let mut cells = stripe.0.lock();
        let cell = (who, minute, code);
        match cells.get_mut(&cell) {
            Some(t) => t.n += 1,
            None => {
                cells.insert(
                    cell,
                    Tally {
                        org: org_id.into(),
                        n: 1,
                    },
                );
            }
        }
    }

    /// Cells counted and not yet written.
    pub fn pending(&self) -> usize {
        let live: usize = self.stripes.iter().map(|s| s.0.lock().len()).sum();
        live + self.waiting.load(Ordering::Relaxed)
    }

    /// Moves every stripe's cells into `unsent`.
    fn collect(&self, unsent: &mut Unsent) {
        for stripe in self.stripes.iter() {
            let cells = std::mem::take(&mut *stripe.0.lock());
            for ((who, minute, code), tally) in cells {
                let key_id = match who {
                    Who::Key(p) => unpacked(p),
                    Who::Named(id) => id.into(),
                    Who::Org => String::new(),
                };
                *unsent
                    .entry((tally.org.into(), key_id, minute, code))
                    .or_default() += tally.n as i64;
            }
        }
    }

    /// Writes what was counted since the last flush. Returns how many cells were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let mut pending = self.pending.lock().await;
        let result = self.flush_pending(&mut pending).await;
        let waiting = pending.unsent.len() + pending.failed.as_ref().map_or(0, |b| b.counts.len());
        self.waiting.store(waiting, Ordering::Relaxed);
        result
    }

    async fn flush_pending(&self, pending: &mut Pending) -> Result<usize, StoreError> {
        let mut written = 0;
        if let Some(batch) = &pending.failed {
            // Retried alone, under its id: if its earlier commit went through after all, this
            // adds nothing.
            if let Err(e) = self.write(batch).await {
                self.collect(&mut pending.unsent);
                return Err(e);
            }
            written += batch.counts.len();
            pending.failed = None;
        }
        self.collect(&mut pending.unsent);
        if pending.unsent.is_empty() {
            return Ok(written);
        }
        let batch = Batch {
            id: crate::domain::new_id("ub"),
            counts: std::mem::take(&mut pending.unsent)
                .into_iter()
                .map(|((org_id, key_id, minute, code), count)| UsageCount {
                    org_id,
                    key_id,
                    minute,
                    code,
                    count,
                })
                .collect(),
        };
        match self.write(&batch).await {
            Ok(()) => Ok(written + batch.counts.len()),
            Err(e) => {
                pending.failed = Some(batch);
                Err(e)
            }
        }
    }

    async fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        self.store
            .add_usage(&batch.id, &batch.counts, self.clock.now_ms())
            .await
            .map(|_| ())
    }

    /// Deletes rows past their retention. Returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        let cutoff = |g: Granularity| g.floor(now - self.settings.retention(g).as_millis() as i64);
        self.store
            .prune_usage(
                Granularity::ALL.map(|g| (g, cutoff(g))),
                now - BATCHES_KEPT_MS,
            )
            .await
    }

    /// Flushes every second and prunes every minute until `stop`; a flush under way when `stop`
    /// comes finishes first. The final flush is the caller's, once nothing counts any more.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        enum Due {
            Flush,
            Prune,
            Stop,
        }
        loop {
            let due = tokio::select! {
                _ = flush.tick() => Due::Flush,
                _ = prune.tick() => Due::Prune,
                _ = stop.changed() => Due::Stop,
            };
            match due {
                Due::Flush => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "could not write usage counts; will retry");
                    }
                }
                Due::Prune => {
                    if let Err(e) = self.prune().await {
                        tracing::warn!(error = %e, "could not prune old usage counts");
                    }
                }
                Due::Stop => break,
            }
        }
    }
}

/// Counts verifications as they are observed.
pub struct Counting(pub Arc<Usage>);

impl Observer for Counting {
    fn observe(&self, o: &Observation<'_>) {
        let org = match (o.key, o.org_id) {
            (Some(key), _) => key.org_id.as_str(),
            (None, Some(org)) => org,
            (None, None) => return,
        };
        self.0
            .count(org, o.key.map(|k| k.id.as_str()), o.at, o.code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyward_ids_are_packed_and_other_ids_kept_whole() {
        assert_eq!(packed("key_3f9a0c1e7b2d"), Some(0x3f9a0c1e7b2d));
        assert_eq!(packed("key_3f9a0c1e7b2"), None);
        assert_eq!(packed("key_+f9a0c1e7b2d"), None);
        assert_eq!(packed("key_3F9A0C1E7B2D"), None);
        assert_eq!(packed("imported_1"), None);
        assert_eq!(unpacked(0x3f9a0c1e7b2d), "key_3f9a0c1e7b2d");
    }
}
