//! Named IP ACLs: lists of networks shared by many keys. A key's effective allowlist is its own
//! plus the entries of every ACL it names; editing an ACL applies to every such key at once.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz};
use crate::domain::model::IpAcl;
use crate::domain::new_id;
use crate::domain::validate::{self, Errors};
use crate::store::{LinkKind, StoreError};

/// Most entries one ACL holds.
pub const ENTRIES_MAX: usize = validate::IP_ALLOWLIST_MAX;

/// Body of `POST /v1/ip-acls`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIpAcl {
    /// 1 to 100 characters, unique in the organization.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// IPv4/IPv6 addresses or CIDR blocks, 1 to 100.
    #[schema(value_type = Vec<crate::domain::schema::IpNetwork>, min_items = 1, max_items = 100)]
    pub entries: Vec<String>,
}

/// Body of `PATCH /v1/ip-acls/{id}`: each field present is replaced.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIpAcl {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<crate::domain::schema::IpNetwork>>, min_items = 1, max_items = 100)]
    pub entries: Option<Vec<String>>,
}

fn check_entries(e: &mut Errors, entries: &[String]) -> Vec<ipnet::IpNet> {
    if entries.is_empty() {
        e.add("entries", "must list at least one address or CIDR block");
    }
    validate::ip_allowlist(e, "entries", entries)
}

fn name_taken(err: StoreError) -> ServiceError {
    match err {
        StoreError::Conflict(_) => {
            ServiceError::Conflict("An IP ACL with this name already exists.".into())
        }
        other => other.into(),
    }
}

fn target(acl: &IpAcl) -> Target<'_> {
    Target {
        kind: "ip_acl",
        id: &acl.id,
        label: &acl.name,
    }
}

fn strings(nets: &[ipnet::IpNet]) -> Vec<String> {
    nets.iter().map(|n| n.to_string()).collect()
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<IpAcl>> {
    caller.require("keys:read")?;
    Ok(ctx.store.list_ip_acls(&caller.org_id).await?)
}

pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<IpAcl> {
    caller.require("keys:read")?;
    ctx.store
        .get_ip_acl(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("IP ACL"))
}

/// Live keys that name the ACL.
pub async fn keys_using(ctx: &Ctx, caller: &Caller, acl: &IpAcl) -> Result<i64> {
    caller.require("keys:read")?;
    Ok(ctx
        .store
        .count_keys_linked(&caller.org_id, LinkKind::IpAcl, &acl.id, ctx.now())
        .await?)
}

pub async fn create(ctx: &Ctx, caller: &Caller, input: CreateIpAcl) -> Result<IpAcl> {
    caller.require(authz::MANAGE_ACCESS)?;
    let mut e = Errors::default();
    let name = validate::text(&mut e, "name", &input.name, validate::NAME_MAX);
    let entries = check_entries(&mut e, &input.entries);
    e.finish(())?;
    let now = ctx.now();
    let acl = IpAcl {
        id: new_id("acl"),
        org_id: caller.org_id.clone(),
        name,
        entries,
        created_at: now,
        updated_at: now,
    };
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    tx.create_ip_acl(&acl).await.map_err(name_taken)?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "ip_acl.created",
        target(&acl),
        json!({"name": acl.name, "entries": strings(&acl.entries)}),
    )
    .await?;
    tx.commit().await?;
    Ok(acl)
}

pub async fn update(ctx: &Ctx, caller: &Caller, id: &str, input: UpdateIpAcl) -> Result<IpAcl> {
    caller.require(authz::MANAGE_ACCESS)?;
    let mut e = Errors::default();
    let name = input
        .name
        .as_deref()
        .map(|n| validate::text(&mut e, "name", n, validate::NAME_MAX));
    let entries = input.entries.as_deref().map(|l| check_entries(&mut e, l));
    e.finish(())?;
    let now = ctx.now();
    // Under the organization's lock: keys that start naming this ACL wait for the change.
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut acl = tx
        .get_ip_acl(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("IP ACL"))?;
    let before = acl.clone();
    if let Some(n) = name {
        acl.name = n;
    }
    if let Some(list) = entries {
        acl.entries = list;
    }
    if acl.name == before.name && acl.entries == before.entries {
        // Nothing changes: nothing is written, nor audited.
        return Ok(before);
    }
    acl.updated_at = now.max(before.updated_at + 1);
    tx.update_ip_acl(&acl).await.map_err(name_taken)?;
    let mut details = serde_json::Map::new();
    if acl.name != before.name {
        details.insert("name".into(), json!({"from": before.name, "to": acl.name}));
    }
    let mut touched = Vec::new();
    if acl.entries != before.entries {
        let added: Vec<String> = strings(&acl.entries)
            .into_iter()
            .filter(|n| !strings(&before.entries).contains(n))
            .collect();
        let removed: Vec<String> = strings(&before.entries)
            .into_iter()
            .filter(|n| !strings(&acl.entries).contains(n))
            .collect();
        details.insert(
            "entries".into(),
            json!({"added": added, "removed": removed}),
        );
        touched = tx
            .touch_keys_linked(&caller.org_id, LinkKind::IpAcl, &acl.id, now)
            .await?;
        details.insert("keys_affected".into(), json!(touched.len()));
    }
    audit::record(
        ctx,
        &mut tx,
        caller,
        "ip_acl.updated",
        target(&acl),
        serde_json::Value::Object(details),
    )
    .await?;
    tx.commit().await?;
    for key_id in &touched {
        ctx.verifier.invalidate_key(key_id);
    }
    Ok(acl)
}

pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<()> {
    caller.require(authz::MANAGE_ACCESS)?;
    let now = ctx.now();
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let acl = tx
        .get_ip_acl(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("IP ACL"))?;
    let used = tx
        .count_keys_linked(&caller.org_id, LinkKind::IpAcl, &acl.id, now)
        .await?;
    if used > 0 {
        return Err(ServiceError::Conflict(format!(
            "The IP ACL '{}' is used by {used} key(s); remove it from them first.",
            acl.name
        )));
    }
    tx.delete_ip_acl(&caller.org_id, &acl.id).await?;
    // Revoked keys that still name it read again: they fail closed without it.
    let touched = tx
        .touch_keys_linked(&caller.org_id, LinkKind::IpAcl, &acl.id, now)
        .await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "ip_acl.deleted",
        target(&acl),
        json!({"name": acl.name, "entries": strings(&acl.entries)}),
    )
    .await?;
    tx.commit().await?;
    for key_id in &touched {
        ctx.verifier.invalidate_key(key_id);
    }
    Ok(())
}
