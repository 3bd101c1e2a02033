//! Webhook endpoints: create (the signing secret shown once), list, read, edit, delete, the
//! delivery log and redelivery. Every operation needs `org:admin` ([`authz::MANAGE_WEBHOOKS`]).

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz, double_option};
use crate::domain::new_id;
use crate::domain::validate::{self, Errors};
use crate::store::StoreTx;
use crate::webhooks::model::{Attempt, Message, Webhook};
use crate::webhooks::net::{self, Unreachable};
use crate::webhooks::signer::{SecretBox, SigningSecret};
use crate::webhooks::{EVENTS, Settings};

/// Most endpoints one organization may have.
pub const WEBHOOKS_MAX: usize = 20;
/// Most deliveries one page of the log shows.
pub const DELIVERIES_MAX: u32 = 100;

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` (or `http://`) URL without credentials, at most 2000 characters.
    #[schema(max_length = 2000, pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s@#]+$")]
    pub url: String,
    /// The events to receive: at least one, each from the list of events.
    #[schema(value_type = Vec<crate::webhooks::EventName>, min_items = 1, max_items = 13)]
    pub events: Vec<String>,
    /// Up to 500 characters, not all spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Body of `PATCH /v1/webhooks/{id}`: each field present is changed; `null` clears the
/// description.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2000, pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s@#]+$")]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<crate::webhooks::EventName>>, min_items = 1, max_items = 13)]
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// A delivery and its attempts.
pub type Delivery = (Message, Vec<Attempt>);

/// The URL, if it is one an endpoint may have on this server.
async fn check_url(e: &mut Errors, settings: Settings, url: &str) -> String {
    match net::check_url(url) {
        Err(why) => e.add("url", why),
        Ok(parsed) if !settings.allow_private => match net::resolve(&parsed, false).await {
            Ok(_) => {}
            Err(Unreachable::NoAddress) => e.add("url", "the host does not resolve"),
            Err(Unreachable::Private) => e.add(
                "url",
                "resolves to a loopback, private or link-local address, which this server does \
                 not send webhooks to (KEYWARD_WEBHOOK_ALLOW_PRIVATE is off)",
            ),
        },
        Ok(_) => {}
    }
    url.to_owned()
}

fn check_events(e: &mut Errors, events: &[String]) -> Vec<String> {
    if events.is_empty() {
        e.add("events", "must name at least one event");
    } else if events.len() > EVENTS.len() {
        e.add(
            "events",
            format!("must have at most {} entries", EVENTS.len()),
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, ev) in events.iter().enumerate() {
        if !EVENTS.contains(&ev.as_str()) {
            e.add(
                format!("events[{i}]"),
                format!("is not a webhook event; one of {}", EVENTS.join(", ")),
            );
        } else if !out.contains(ev) {
            out.push(ev.clone());
        }
    }
    out
}

/// The endpoint's host, for the audit log: a URL's path or query may hold a receiver's token.
fn host_of(url: &str) -> String {
    net::check_url(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn audit_webhook(
    ctx: &Ctx,
    tx: &mut StoreTx,
    caller: &Caller,
    action: &str,
    hook: &Webhook,
    details: serde_json::Value,
) -> Result<()> {
    let label = host_of(&hook.url);
    audit::record(
        ctx,
        tx,
        caller,
        action,
        Target {
            kind: "webhook",
            id: &hook.id,
            label: &label,
        },
        details,
    )
    .await
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<Webhook>> {
    caller.require(authz::MANAGE_WEBHOOKS)?;
    Ok(ctx.store.list_webhooks(&caller.org_id).await?)
}

/// An endpoint of the caller's organization, or 404.
pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Webhook> {
    caller.require(authz::MANAGE_WEBHOOKS)?;
    ctx.store
        .get_webhook(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))
}

/// Creates an endpoint; its secret is returned this once.
pub async fn create(
    ctx: &Ctx,
    caller: &Caller,
    input: CreateWebhook,
) -> Result<(Webhook, SigningSecret)> {
    caller.require(authz::MANAGE_WEBHOOKS)?;
    let mut e = Errors::default();
    let url = check_url(&mut e, ctx.webhooks.settings, &input.url).await;
    let events = check_events(&mut e, &input.events);
    let description = input
        .description
        .as_deref()
        .map(|d| validate::text(&mut e, "description", d, validate::DESCRIPTION_MAX));
    e.finish(())?;
    let now = ctx.now();
    let secret = SigningSecret::generate();
    let id = new_id("wh");
    let (secret_sealed, secret_pepper_version) =
        SecretBox::new(ctx.verifier.peppers()).seal(&secret, &id);
    let hook = Webhook {
        id,
        org_id: caller.org_id.clone(),
        url,
        events,
        description,
        enabled: input.enabled.unwrap_or(true),
        secret_sealed,
        secret_pepper_version,
        created_at: now,
        updated_at: now,
    };
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    if tx.count_webhooks(&caller.org_id).await? >= WEBHOOKS_MAX as i64 {
        return Err(ServiceError::Conflict(format!(
            "The organization has reached its limit of {WEBHOOKS_MAX} webhook endpoints. Delete one first."
        )));
    }
    tx.create_webhook(&hook).await?;
    audit_webhook(
        ctx,
        &mut tx,
        caller,
        "webhook.created",
        &hook,
        json!({"events": hook.events, "enabled": hook.enabled}),
    )
    .await?;
    tx.commit().await?;
    Ok((hook, secret))
}

pub async fn update(ctx: &Ctx, caller: &Caller, id: &str, patch: UpdateWebhook) -> Result<Webhook> {
    let mut hook = get(ctx, caller, id).await?;
    let mut e = Errors::default();
    let mut changed = Vec::new();
    if let Some(url) = &patch.url {
        hook.url = check_url(&mut e, ctx.webhooks.settings, url).await;
        changed.push("url");
    }
    if let Some(events) = &patch.events {
        hook.events = check_events(&mut e, events);
        changed.push("events");
    }
    if let Some(d) = &patch.description {
        hook.description = d
            .as_deref()
            .map(|d| validate::text(&mut e, "description", d, validate::DESCRIPTION_MAX));
        changed.push("description");
    }
    if let Some(enabled) = patch.enabled {
        hook.enabled = enabled;
        changed.push("enabled");
    }
    e.finish(())?;
    hook.updated_at = ctx.now();
    let mut tx = ctx.store.begin().await?;
    if !tx.update_webhook(&hook).await? {
        return Err(ServiceError::NotFound("webhook"));
    }
    audit_webhook(
        ctx,
        &mut tx,
        caller,
        "webhook.updated",
        &hook,
        json!({"fields": changed}),
    )
    .await?;
    tx.commit().await?;
    Ok(hook)
}

/// Deletes an endpoint and its queue: what was not delivered yet never will be.
pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<()> {
    let hook = get(ctx, caller, id).await?;
    let mut tx = ctx.store.begin().await?;
    if !tx.delete_webhook(&caller.org_id, &hook.id).await? {
        return Err(ServiceError::NotFound("webhook"));
    }
    audit_webhook(ctx, &mut tx, caller, "webhook.deleted", &hook, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The endpoint's latest deliveries, newest first, with their attempts.
pub async fn deliveries(ctx: &Ctx, caller: &Caller, id: &str, limit: u32) -> Result<Vec<Delivery>> {
    let hook = get(ctx, caller, id).await?;
    let messages = ctx
        .store
        .list_messages(&hook.id, i64::from(limit.clamp(1, DELIVERIES_MAX)))
        .await?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let attempts = ctx.store.list_attempts(&m.id).await?;
        out.push((m, attempts));
    }
    Ok(out)
}

/// Queues a message of the endpoint again, due now, with a new schedule of retries: the only
/// way a delivered message is sent again. It keeps its `webhook-id`, so that a receiver can tell
/// it is the same event.
pub async fn redeliver(ctx: &Ctx, caller: &Caller, id: &str, msg_id: &str) -> Result<Delivery> {
    let hook = get(ctx, caller, id).await?;
    let now = ctx.now();
    let mut tx = ctx.store.begin().await?;
    let message = tx
        .requeue_message(&hook.id, msg_id, now)
        .await?
        .ok_or(ServiceError::NotFound("delivery"))?;
    audit_webhook(
        ctx,
        &mut tx,
        caller,
        "webhook.redelivered",
        &hook,
        json!({"message_id": message.id, "event": message.event}),
    )
    .await?;
    tx.commit().await?;
    ctx.webhooks.wake();
    let attempts = ctx.store.list_attempts(&message.id).await?;
    Ok((message, attempts))
}
