//! Key groups: scopes and a rate limit shared by keys of one API. A key's effective scopes are its
//! own plus its groups'; its rate limit is its own, else its first group's that sets one, else its
//! API's, else its plan's. Changing a group applies to every member key at once.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::keys::check_scopes;
use super::{Caller, Ctx, Result, ServiceError, authz};
use crate::domain::model::{KeyGroup, RateLimit};
use crate::domain::new_id;
use crate::domain::strict;
use crate::domain::validate::{self, Errors};
use crate::store::{LinkKind, StoreError};

/// Body of `POST /v1/key-groups`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyGroup {
    /// 1 to 100 characters, unique in the organization.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// A protected API of the organization (not the built-in management API); only its keys join.
    #[schema(pattern = r"^api_[0-9a-f]{16}$")]
    pub api_id: String,
    /// From the API's scope catalogue.
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// Applies to member keys that set none of their own.
    #[serde(default, deserialize_with = "strict::option_object")]
    pub rate_limit: Option<RateLimit>,
}

/// Body of `PATCH /v1/key-groups/{id}`: each field present is replaced; `null` clears the rate
/// limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyGroup {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "strict::double_option_object")]
    #[schema(value_type = Option<RateLimit>)]
    pub rate_limit: Option<Option<RateLimit>>,
}

fn name_taken(err: StoreError) -> ServiceError {
    match err {
        StoreError::Conflict(_) => {
            ServiceError::Conflict("A key group with this name already exists.".into())
        }
        other => other.into(),
    }
}

fn target(g: &KeyGroup) -> Target<'_> {
    Target {
        kind: "key_group",
        id: &g.id,
        label: &g.name,
    }
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<KeyGroup>> {
    caller.require("keys:read")?;
    Ok(ctx.store.list_key_groups(&caller.org_id).await?)
}

pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<KeyGroup> {
    caller.require("keys:read")?;
    ctx.store
        .get_key_group(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("key group"))
}

pub async fn create(ctx: &Ctx, caller: &Caller, input: CreateKeyGroup) -> Result<KeyGroup> {
    caller.require(authz::MANAGE_ACCESS)?;
    let mut e = Errors::default();
    let name = validate::text(&mut e, "name", &input.name, validate::NAME_MAX);
    let api = ctx
        .store
        .get_api(&input.api_id)
        .await?
        .filter(|a| a.org_id == caller.org_id);
    let scopes = input.scopes.unwrap_or_default();
    let scopes = match &api {
        None => {
            e.add("api_id", "no such API in this organization");
            Vec::new()
        }
        Some(api) if api.is_management() => {
            e.add(
                "api_id",
                "key groups are for protected APIs; management keys carry their own scopes",
            );
            Vec::new()
        }
        Some(api) => check_scopes(&mut e, "scopes", api, &scopes),
    };
    if let Some(rl) = &input.rate_limit {
        validate::rate_limit(&mut e, "rate_limit", rl);
    }
    let api = e.finish(api)?.expect("an API when there are no errors");
    let now = ctx.now();
    let group = KeyGroup {
        id: new_id("grp"),
        org_id: caller.org_id.clone(),
        api_id: api.id.clone(),
        name,
        scopes,
        rate_limit: input.rate_limit,
        created_at: now,
        updated_at: now,
    };
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    tx.create_key_group(&group).await.map_err(name_taken)?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "key_group.created",
        target(&group),
        json!({"name": group.name, "api_id": group.api_id, "scopes": group.scopes,
               "rate_limit": group.rate_limit}),
    )
    .await?;
    tx.commit().await?;
    Ok(group)
}

pub async fn update(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    input: UpdateKeyGroup,
) -> Result<KeyGroup> {
    caller.require(authz::MANAGE_ACCESS)?;
    let now = ctx.now();
    let current = get(ctx, caller, id).await?;
    let api = ctx
        .store
        .get_api(&current.api_id)
        .await?
        .ok_or(ServiceError::NotFound("API"))?;
    let mut e = Errors::default();
    let name = input
        .name
        .as_deref()
        .map(|n| validate::text(&mut e, "name", n, validate::NAME_MAX));
    let scopes = input
        .scopes
        .as_deref()
        .map(|s| check_scopes(&mut e, "scopes", &api, s));
    if let Some(Some(rl)) = &input.rate_limit {
        validate::rate_limit(&mut e, "rate_limit", rl);
    }
    e.finish(())?;
    // Under the organization's lock: keys that start naming this group wait for the change.
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut group = tx
        .get_key_group(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("key group"))?;
    let before = group.clone();
    if let Some(n) = name {
        group.name = n;
    }
    if let Some(s) = scopes {
        group.scopes = s;
    }
    if let Some(rl) = input.rate_limit {
        group.rate_limit = rl;
    }
    if group.name == before.name
        && group.scopes == before.scopes
        && group.rate_limit == before.rate_limit
    {
        // Nothing changes: nothing is written, nor audited.
        return Ok(before);
    }
    group.updated_at = now.max(before.updated_at + 1);
    tx.update_key_group(&group).await.map_err(name_taken)?;
    let mut details = serde_json::Map::new();
    if group.name != before.name {
        details.insert(
            "name".into(),
            json!({"from": before.name, "to": group.name}),
        );
    }
    if group.scopes != before.scopes {
        details.insert(
            "scopes".into(),
            json!({"from": before.scopes, "to": group.scopes}),
        );
    }
    let limit_changed = group.rate_limit != before.rate_limit;
    if limit_changed {
        details.insert(
            "rate_limit".into(),
            json!({"from": before.rate_limit, "to": group.rate_limit}),
        );
    }
    let mut touched = Vec::new();
    if group.scopes != before.scopes || limit_changed {
        touched = tx
            .touch_keys_linked(&caller.org_id, LinkKind::Group, &group.id, now)
            .await?;
        details.insert("keys_affected".into(), json!(touched.len()));
    }
    audit::record(
        ctx,
        &mut tx,
        caller,
        "key_group.updated",
        target(&group),
        serde_json::Value::Object(details),
    )
    .await?;
    tx.commit().await?;
    for key_id in &touched {
        ctx.verifier.invalidate_key(key_id);
        if limit_changed {
            ctx.verifier.reset_rate_limit(key_id);
        }
    }
    Ok(group)
}

pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<()> {
    caller.require(authz::MANAGE_ACCESS)?;
    let now = ctx.now();
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let group = tx
        .get_key_group(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("key group"))?;
    let used = tx
        .count_keys_linked(&caller.org_id, LinkKind::Group, &group.id, now)
        .await?;
    if used > 0 {
        return Err(ServiceError::Conflict(format!(
            "The key group '{}' has {used} key(s); remove them from it first.",
            group.name
        )));
    }
    tx.delete_key_group(&caller.org_id, &group.id).await?;
    let touched = tx
        .touch_keys_linked(&caller.org_id, LinkKind::Group, &group.id, now)
        .await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "key_group.deleted",
        target(&group),
        json!({"name": group.name, "api_id": group.api_id, "scopes": group.scopes}),
    )
    .await?;
    tx.commit().await?;
    for key_id in &touched {
        ctx.verifier.invalidate_key(key_id);
    }
    Ok(())
}

/// Live keys in the group.
pub async fn member_count(ctx: &Ctx, caller: &Caller, group: &KeyGroup) -> Result<i64> {
    caller.require("keys:read")?;
    Ok(ctx
        .store
        .count_keys_linked(&caller.org_id, LinkKind::Group, &group.id, ctx.now())
        .await?)
}
