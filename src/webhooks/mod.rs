//! Signed webhooks: an organization's endpoints, the events they receive, a durable queue of
//! messages in the database, and the worker that delivers them.
//!
//! - **Raised with the change.** An event is queued in the unit of work ([`StoreTx`]) of the change
//!   that raises it, as one message per subscribed endpoint, so that a change is never committed
//!   without its messages nor a message without its change. The key and member operations raise
//!   theirs through their audit records ([`raise_for_audit`]); the expiry scanner and the quota
//!   watcher in their own units of work; other parts through [`enqueue_event`].
//! - **Delivered at least once, never again after a success.** The worker ([`worker`]) claims due
//!   messages with a lease (an atomic update; `FOR UPDATE SKIP LOCKED` on PostgreSQL), signs each
//!   attempt ([`signer`]), and records the outcome only while it holds the lease. A failure is
//!   tried again after about 5 s, 5 min, 30 min, 2 h, 5 h and 10 h, then the message fails.
//! - **Only where allowed.** Unless `KEYWARD_WEBHOOK_ALLOW_PRIVATE` is on, an endpoint whose host
//!   resolves to a loopback, private or link-local address is refused when saved and before every
//!   attempt ([`net`]).

pub mod model;
pub mod net;
pub mod signer;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::domain::model::Millis;
use crate::domain::new_id;
use crate::http::views::{KeyView, rfc3339};
use crate::observe::{Observation, Observer};
use crate::service::Ctx;
use crate::store::{StoreError, StoreTx};
use model::{Message, MessageStatus, Webhook};

/// Every event an endpoint may subscribe to.
pub const EVENTS: &[&str] = &[
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "key.deleted",
    "key.expiring",
    "key.expired",
    "key.exposed",
    "key.quota_low",
    "key.quota_exhausted",
    "security.alert",
    "member.disabled",
    "member.deleted",
];

/// The documented form of an event name (OpenAPI).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub enum EventName {
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.updated")]
    KeyUpdated,
    #[serde(rename = "key.rotated")]
    KeyRotated,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "key.deleted")]
    KeyDeleted,
    #[serde(rename = "key.expiring")]
    KeyExpiring,
    #[serde(rename = "key.expired")]
    KeyExpired,
    #[serde(rename = "key.exposed")]
    KeyExposed,
    #[serde(rename = "key.quota_low")]
    KeyQuotaLow,
    #[serde(rename = "key.quota_exhausted")]
    KeyQuotaExhausted,
    #[serde(rename = "security.alert")]
    SecurityAlert,
    #[serde(rename = "member.disabled")]
    MemberDisabled,
    #[serde(rename = "member.deleted")]
    MemberDeleted,
}

/// How long after each failed attempt of a schedule the next one is made; after the last, the
/// message fails.
pub const BACKOFF: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// When the attempt after a failure is due: `attempt_in_schedule` is the number of the attempt
/// that failed within its schedule (1 for the first). `None`: the schedule is over.
pub fn next_attempt(failed_at: Millis, attempt_in_schedule: i64) -> Option<Millis> {
    let i = usize::try_from(attempt_in_schedule.checked_sub(1)?).ok()?;
    BACKOFF
        .get(i)
        .map(|d| failed_at + i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The webhook settings of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Whether endpoints may resolve to loopback, private or link-local addresses.
    pub allow_private: bool,
    /// How long a receiver may take to answer an attempt.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: true,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the process's webhook parts share: settings, the worker's wake-up, and the keys with a
/// quota seen in verifications since the watcher last looked.
#[derive(Debug, Default)]
pub struct Webhooks {
    pub settings: Settings,
    wake: tokio::sync::Notify,
    quota_seen: Mutex<HashMap<String, String>>,
}

impl Webhooks {
    pub fn new(settings: Settings) -> Self {
        Webhooks {
            settings,
            ..Default::default()
        }
    }

    /// Asks the worker to look for due messages now rather than at its next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The keys (and their organizations) whose quota was used since the last call.
    pub(crate) fn take_quota_seen(&self) -> HashMap<String, String> {
        std::mem::take(&mut *self.quota_seen.lock())
    }
}

/// Notes the keys with a quota that verifications used, for the quota watcher to look at off the
/// request path.
#[derive(Debug)]
pub struct QuotaWatch(pub Arc<Webhooks>);

impl Observer for QuotaWatch {
    fn observe(&self, o: &Observation<'_>) {
        let (Some(key), Some(org)) = (o.key, o.org_id) else {
            return;
        };
        if key.key.quota.is_some() && (o.valid() || o.code == "QUOTA_EXCEEDED") {
            let mut seen = self.0.quota_seen.lock();
            if !seen.contains_key(&key.key.id) {
                seen.insert(key.key.id.clone(), org.to_owned());
            }
        }
    }
}

/// The body of a message: `{"type","timestamp","data"}`.
pub fn payload(event: &str, at: Millis, data: &Value) -> String {
    json!({"type": event, "timestamp": rfc3339(at), "data": data}).to_string()
}

/// Queues `event` for every enabled endpoint of `org_id` that subscribes to it, in `tx`. `data`
/// is made only when one does. Returns how many messages were queued.
pub async fn raise_with(
    tx: &mut StoreTx,
    org_id: &str,
    event: &str,
    now: Millis,
    data: impl AsyncFnOnce(&mut StoreTx) -> Result<Option<Value>, StoreError>,
) -> Result<usize, StoreError> {
    let hooks: Vec<Webhook> = tx
        .enabled_webhooks(org_id)
        .await?
        .into_iter()
        .filter(|h| h.wants(event))
        .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let Some(data) = data(tx).await? else {
        return Ok(0);
    };
    let body = payload(event, now, &data);
    for hook in &hooks {
        tx.insert_message(&Message {
            id: new_id("msg"),
            webhook_id: hook.id.clone(),
            org_id: org_id.to_owned(),
            event: event.to_owned(),
            payload: body.clone(),
            status: MessageStatus::Pending,
            attempts: 0,
            schedule_base: 0,
            next_attempt_at: Some(now),
            response_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        })
        .await?;
    }
    Ok(hooks.len())
}

/// [`raise_with`] for data already made.
pub async fn raise(
    tx: &mut StoreTx,
    org_id: &str,
    event: &str,
    now: Millis,
    data: Value,
) -> Result<usize, StoreError> {
    raise_with(tx, org_id, event, now, async |_| Ok(Some(data))).await
}

/// Queues `event` with `data` for the organization's subscribed endpoints, in a unit of work of
/// its own, and wakes the worker: for parts that raise events outside a change of their own (a
/// security alert). `data` must hold no secret. An event not in [`EVENTS`] queues nothing.
pub async fn enqueue_event(
    ctx: &Ctx,
    org_id: &str,
    event: &str,
    data: Value,
) -> Result<usize, StoreError> {
    if !EVENTS.contains(&event) {
        tracing::error!(event, "not a webhook event; nothing queued");
        return Ok(0);
    }
    let mut tx = ctx.store.begin().await?;
    let n = raise(&mut tx, org_id, event, ctx.now(), data).await?;
    tx.commit().await?;
    if n > 0 {
        ctx.webhooks.wake();
    }
    Ok(n)
}

/// Messages waiting for delivery in every organization (the queue depth, for metrics).
pub async fn queue_depth(ctx: &Ctx) -> Result<i64, StoreError> {
    ctx.store.count_pending_messages().await
}

/// A key as the API renders it, read in `tx`.
async fn key_data(
    tx: &mut StoreTx,
    key_id: &str,
    now: Millis,
) -> Result<Option<Value>, StoreError> {
    Ok(tx
        .get_key(key_id)
        .await?
        .map(|k| serde_json::to_value(KeyView::new(&k, now)).expect("a key view serializes")))
}

/// Raises the webhook event of an audited change in the change's unit of work: key events carry
/// the key as the API renders it after the change, member events the member. Also remembers the
/// amount a new key's quota notices are taken of. Other actions raise nothing.
pub async fn raise_for_audit(
    tx: &mut StoreTx,
    org_id: &str,
    action: &str,
    target_id: &str,
    details: &Value,
    now: Millis,
) -> Result<(), StoreError> {
    let event = match action {
        "key.created" => {
            if let Some(q) = tx.get_key(target_id).await?.and_then(|k| k.quota) {
                tx.set_quota_base(target_id, q.remaining).await?;
            }
            action
        }
        "key.rotated" => {
            if let Some(new_id) = details.get("replaced_by").and_then(Value::as_str) {
                if let Some(base) = tx.quota_notices(target_id).await?.base {
                    tx.set_quota_base(new_id, base).await?;
                }
            }
            action
        }
        "key.updated" | "key.revoked" | "key.deleted" | "key.exposed" => action,
        "user.disabled" => "member.disabled",
        "user.deleted" => "member.deleted",
        _ => return Ok(()),
    };
    if event.starts_with("key.") {
        raise_with(tx, org_id, event, now, async |tx| {
            key_data(tx, target_id, now).await
        })
        .await?;
    } else {
        raise_with(tx, org_id, event, now, async |tx| {
            Ok(tx
                .get_user_in_org(org_id, target_id)
                .await?
                .map(|u| member_data(&u)))
        })
        .await?;
    }
    Ok(())
}

/// A member as `/v1/users` renders it.
fn member_data(u: &crate::domain::model::User) -> Value {
    serde_json::to_value(crate::http::api::users::UserView::from(u))
        .expect("a member view serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_six_retries_then_nothing() {
        let at = 1_000_000;
        let waits: Vec<i64> = (1..=6).map(|n| next_attempt(at, n).unwrap() - at).collect();
        assert_eq!(
            waits,
            [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000]
        );
        assert_eq!(next_attempt(at, 7), None);
        assert_eq!(next_attempt(at, 0), None);
    }

    #[test]
    fn a_payload_has_type_timestamp_and_data() {
        let body: Value =
            serde_json::from_str(&payload("key.revoked", 0, &json!({"id": "key_1"}))).unwrap();
        assert_eq!(
            body,
            json!({"type": "key.revoked", "timestamp": "1970-01-01T00:00:00Z", "data": {"id": "key_1"}})
        );
    }
}
