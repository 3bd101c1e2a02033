//! Following key changes made by other processes sharing the database.

use std::sync::atomic::Ordering;

use super::cache::packed;
use super::{Verifier, VerifyError};
use crate::domain::model::Millis;

/// How far [`Verifier::follow_changes`] looks back before its previous run began, to allow for
/// clocks of instances that differ and changes committed late.
const CHANGE_WINDOW_MS: i64 = 5_000;
/// Changed keys read per query.
const CHANGE_BATCH: i64 = 1_000;

impl Verifier {
    /// Drops cached key records that another process changed since they were read: keys whose
    /// stored version (`updated_at`) is newer than the cached one. Run every second, so a change
    /// made through any instance sharing the database is seen by this one about a second later.
    /// Each run reads the keys changed since [`CHANGE_WINDOW_MS`] before the previous run began,
    /// page by page, so that a change of many keys at once (say, every key of a disabled member)
    /// is followed in full. Returns how many records were dropped.
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
                let stale = packed(id)
                    .and_then(|p| self.cache.keys.get(&p))
                    .is_some_and(|e| e.value.as_ref().is_some_and(|k| k.updated_at < *version));
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
}
