//! Security events: detectors fed by verdicts, the one place events are recorded, and reading
//! them back.
//!
//! The detectors of [`detect::Detector`] watch every verification (as an
//! [`Observer`](crate::observe::Observer)) in memory, on the request's task; what they find is
//! written by [`Detector::flush`](detect::Detector::flush), called every second by the server's
//! background task and once more at shutdown. A key seen in a URL is recorded at once, by
//! [`crate::service::keys::mark_exposed`]. Every new event, whatever raised it, goes through
//! [`record`].

pub mod detect;

use crate::domain::model::Millis;
use crate::domain::new_id;
use crate::domain::security::{EventType, SecurityEvent};
use crate::service::{Caller, Ctx, Result, authz};
use crate::store::{EventFilter, StoreError};

pub use detect::Detector;

/// What a new event says; [`record`] gives it its severity.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `sev_` and 16 hex characters, from [`new_event_id`].
    pub id: String,
    pub org_id: String,
    pub kind: EventType,
    pub key_id: Option<String>,
    /// The key's public prefix, never its secret.
    pub prefix: Option<String>,
    pub ip: Option<String>,
    pub count: i64,
    pub detail: String,
    /// When the burst it reports began.
    pub at: Millis,
    /// The last request it covers.
    pub last_seen_at: Millis,
}

/// A new event's id. Detectors name an event when they open it, so that its count can be brought
/// up to date once it is stored.
pub fn new_event_id() -> String {
    new_id("sev")
}

/// Records a new security event: the one function through which every event is stored, whichever
/// detector or surface raised it.
///
/// Every event stored here also raises one `security.alert` webhook (contract section 10), its
/// data the event as the API shows it. A failure to queue the alert is logged; the event stays.
pub async fn record(ctx: &Ctx, new: NewEvent) -> Result<SecurityEvent, StoreError> {
    let event = SecurityEvent {
        id: new.id,
        org_id: new.org_id,
        kind: new.kind,
        severity: new.kind.severity(),
        key_id: new.key_id,
        prefix: new.prefix,
        ip: new.ip,
        count: new.count,
        detail: new.detail,
        created_at: new.at,
        last_seen_at: new.last_seen_at,
    };
    ctx.store.insert_security_event(&event).await?;
    tracing::warn!(
        event_id = %event.id,
        kind = event.kind.as_str(),
        org = %event.org_id,
        key_id = event.key_id.as_deref().unwrap_or("-"),
        ip = event.ip.as_deref().unwrap_or("-"),
        "security event"
    );
    let data = serde_json::to_value(crate::http::api::events::SecurityEventView::from(&event))
        .expect("a security event serializes");
    if let Err(e) = crate::webhooks::enqueue_event(ctx, &event.org_id, "security.alert", data).await
    {
        tracing::warn!(error = %e, event_id = %event.id, "could not queue the security.alert webhook");
    }
    Ok(event)
}

/// The caller's organization's events, newest first, with each one's sequence number for the
/// cursor. A `key_id` filter must name a key of the organization (404 otherwise).
pub async fn list(
    ctx: &Ctx,
    caller: &Caller,
    filter: &EventFilter,
) -> Result<Vec<(i64, SecurityEvent)>> {
    caller.require(authz::READ_SECURITY_EVENTS)?;
    if let Some(key_id) = &filter.key_id {
        if ctx
            .store
            .get_key_in_org(&caller.org_id, key_id)
            .await?
            .is_none()
        {
            return Err(crate::service::ServiceError::NotFound("key"));
        }
    }
    Ok(ctx
        .store
        .list_security_events(&caller.org_id, filter)
        .await?)
}
