//! Recording and reading the append-only audit log.
//!
//! An event is appended in the unit of work of the change it records, so that both are
//! committed together or neither is.

use serde_json::Value;

use super::{Caller, Ctx, Result, authz};
use crate::domain::model::{Actor, AuditEvent};
use crate::domain::new_id;
use crate::store::{AuditFilter, StoreTx};

/// The thing an event is about.
pub struct Target<'a> {
    pub kind: &'a str,
    pub id: &'a str,
    /// A name, email or masked key prefix: never a secret.
    pub label: &'a str,
}

/// Appends one event done by `caller` to the unit of work `tx`.
pub async fn record(
    ctx: &Ctx,
    tx: &mut StoreTx,
    caller: &Caller,
    action: &str,
    target: Target<'_>,
    details: Value,
) -> Result<()> {
    record_as(
        ctx,
        tx,
        &caller.org_id,
        caller.actor(),
        caller.ip.map(|ip| ip.to_string()),
        caller.user_agent.clone(),
        action,
        target,
        details,
    )
    .await
}

/// Appends one event with an explicit actor (the system, a sign-in attempt) to `tx`.
#[expect(clippy::too_many_arguments, reason = "one column each")]
pub async fn record_as(
    ctx: &Ctx,
    tx: &mut StoreTx,
    org_id: &str,
    actor: Actor,
    ip: Option<String>,
    user_agent: Option<String>,
    action: &str,
    target: Target<'_>,
    details: Value,
) -> Result<()> {
    let event = AuditEvent {
        id: new_id("evt"),
        org_id: org_id.to_owned(),
        actor,
        action: action.to_owned(),
        target_type: target.kind.to_owned(),
        target_id: Some(target.id.to_owned()),
        target_label: Some(target.label.to_owned()),
        ip,
        user_agent: user_agent.map(|ua| ua.chars().take(300).collect()),
        details,
        created_at: ctx.now(),
    };
    tx.append_audit(&event).await?;
    // The change's webhook event, queued in the same unit of work.
    crate::webhooks::raise_for_audit(
        tx,
        org_id,
        action,
        target.id,
        &event.details,
        event.created_at,
    )
    .await?;
    Ok(())
}

/// Records that a client address is throttled for presenting too many refused credentials, in
/// the audit log of the first organization (the operator's own: refused credentials belong to
/// no organization). Best effort: the refusal stands whether or not it is recorded.
pub async fn record_throttled(ctx: &Ctx, ip: std::net::IpAddr, user_agent: Option<String>) {
    let ip = ip.to_string();
    tracing::warn!(%ip, "client throttled for presenting too many refused credentials");
    let recorded = async {
        let Some(org_id) = ctx.store.first_org_id().await? else {
            return Ok(());
        };
        let mut tx = ctx.store.begin().await?;
        record_as(
            ctx,
            &mut tx,
            &org_id,
            Actor::system(),
            Some(ip.clone()),
            user_agent,
            "auth.throttled",
            Target {
                kind: "ip",
                id: &ip,
                label: &ip,
            },
            serde_json::json!({
                "refused": ctx.throttle.limit(),
                "detail": "refused credentials presented too often; answered 429 until the window ends",
            }),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, super::ServiceError>(())
    };
    if let Err(e) = recorded.await {
        tracing::error!(error = %e, "could not record a throttled client in the audit log");
    }
}

/// Events of the caller's organization, newest first.
pub async fn list(
    ctx: &Ctx,
    caller: &Caller,
    filter: &AuditFilter,
) -> Result<Vec<(i64, AuditEvent)>> {
    caller.require(authz::READ_AUDIT)?;
    Ok(ctx.store.list_audit(&caller.org_id, filter).await?)
}
