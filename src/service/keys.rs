//! The key lifecycle: create, list, read, edit, rotate, revoke, delete.

use std::sync::Arc;

use rand::rngs::OsRng;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz, double_option};
use crate::domain::key::{self, SecretKey};
use crate::domain::model::{Api, Environment, Key, Millis, Quota, RateLimit, Refill, User};
use crate::domain::resource;
use crate::domain::strict;
use crate::domain::validate::{self, Errors};
use crate::store::{KeyFilter, StoreError, StoreTx};

/// Body of `POST /v1/keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1 to 100 characters, not all spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Default: the organization's default API.
    #[schema(pattern = r"^api_[0-9a-f]{16}$")]
    pub api_id: Option<String>,
    /// Up to 500 characters, not all spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
    /// One of the API's token types; default `standard`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::domain::schema::NameToken>)]
    pub token_type: Option<String>,
    /// From the API's scope catalogue.
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// IPv4/IPv6 addresses or CIDR blocks; empty allows every address.
    #[schema(value_type = Option<Vec<crate::domain::schema::IpNetwork>>, max_items = 100)]
    pub ip_allowlist: Option<Vec<String>>,
    /// Allowed by the organization's policy; not with `expires_at`.
    #[schema(value_type = Option<crate::domain::schema::Expiry>)]
    pub expires: Option<String>,
    /// An RFC 3339 instant in the future, instead of `expires`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// `live` (default) or `test`.
    #[serde(default, deserialize_with = "strict::option_string_enum")]
    pub environment: Option<Environment>,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub quota: Option<QuotaInput>,
    /// A JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Named IP ACLs whose entries join `ip_allowlist` (the effective allowlist is the union).
    #[schema(value_type = Option<Vec<crate::domain::schema::IpAclId>>, max_items = 20)]
    pub ip_acl_ids: Option<Vec<String>>,
    /// Key groups of the key's API: the key takes their scopes, and the first one's rate limit
    /// when it sets none of its own.
    #[schema(value_type = Option<Vec<crate::domain::schema::KeyGroupId>>, max_items = 20)]
    pub group_ids: Option<Vec<String>>,
    /// What the key may reach, `type:id` patterns (a trailing `*` matches any suffix); empty:
    /// everything.
    #[schema(value_type = Option<Vec<crate::domain::schema::ResourcePattern>>, max_items = 50)]
    pub resources: Option<Vec<String>>,
    /// Default: the caller. May name a service account.
    #[schema(pattern = r"^usr_[0-9a-f]{16}$")]
    pub owner_id: Option<String>,
    /// Keep the secret encrypted so that it can be revealed later (policy permitting).
    pub recoverable: Option<bool>,
}

/// A quota of remaining uses.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaInput {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "strict::int")]
    pub remaining: i64,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub refill: Option<Refill>,
}

/// Body of `PATCH /v1/keys/{id}`: each field present is changed; `null` clears a nullable one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<Option<String>>,
    #[schema(value_type = Option<Vec<crate::domain::schema::IpNetwork>>, max_items = 100)]
    pub ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
    /// Only where the organization's policy lets scopes be edited after creation.
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "strict::double_option_object")]
    #[schema(value_type = Option<RateLimit>)]
    pub rate_limit: Option<Option<RateLimit>>,
    /// Replaces the list. Named IP ACLs whose entries join `ip_allowlist` (the effective allowlist is the union).
    #[schema(value_type = Option<Vec<crate::domain::schema::IpAclId>>, max_items = 20)]
    pub ip_acl_ids: Option<Vec<String>>,
    /// Replaces the list. Key groups of the key's API: the key takes their scopes, and the first one's rate limit
    /// when it sets none of its own.
    #[schema(value_type = Option<Vec<crate::domain::schema::KeyGroupId>>, max_items = 20)]
    pub group_ids: Option<Vec<String>>,
    /// Replaces the list. What the key may reach, `type:id` patterns (a trailing `*` matches any suffix); empty:
    /// everything.
    #[schema(value_type = Option<Vec<crate::domain::schema::ResourcePattern>>, max_items = 50)]
    pub resources: Option<Vec<String>>,
}

/// Body of `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working, 0 to 1209600 (14 days). Default 0.
    #[schema(minimum = 0, maximum = 1_209_600)]
    #[serde(default, deserialize_with = "strict::option_int")]
    pub grace_period_s: Option<i64>,
}

/// Body of `POST /v1/keys/{id}/revoke`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    /// Up to 500 characters, no control characters; kept with the key and in the audit log.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub reason: Option<String>,
}

/// A new key, with its secret to show once.
pub struct Created {
    pub key: Key,
    pub secret: SecretKey,
    /// Keys revoked by the one-active-key policy.
    pub revoked: Vec<String>,
}

pub const GRACE_MAX_S: i64 = 1_209_600;
/// Longest revocation reason, in characters.
pub const REASON_MAX: usize = 500;

/// Why the one-active-key policy revoked a key.
const REPLACED: &str = "replaced under the one-active-key policy";

/// Resolves the API a request names, or the organization's default protected API.
pub async fn resolve_api(
    ctx: &Ctx,
    caller: &Caller,
    api_id: Option<&str>,
    errors: &mut Errors,
) -> Result<Option<Api>> {
    match api_id {
        Some(id) => {
            let api = ctx
                .store
                .get_api(id)
                .await?
                .filter(|a| a.org_id == caller.org_id);
            if api.is_none() {
                errors.add("api_id", "no such API in this organization");
            }
            Ok(api)
        }
        None => {
            let apis = ctx.store.list_apis(&caller.org_id).await?;
            let default = apis
                .iter()
                .find(|a| a.slug == "default")
                .or_else(|| apis.iter().find(|a| !a.is_management()))
                .cloned();
            if default.is_none() {
                errors.add(
                    "api_id",
                    "the organization has no protected API yet; create one first",
                );
            }
            Ok(default)
        }
    }
}

pub(super) fn check_scopes(
    errors: &mut Errors,
    field: &str,
    api: &Api,
    scopes: &[String],
) -> Vec<String> {
    if scopes.len() > validate::SCOPES_MAX {
        errors.add(
            field,
            format!("must have at most {} entries", validate::SCOPES_MAX),
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for (i, s) in scopes.iter().enumerate() {
        if !api.has_scope(s) {
            errors.add(
                format!("{field}[{i}]"),
                format!("is not in the scope catalogue of API '{}'", api.slug),
            );
        } else if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// Most ACLs, and most groups, one key names.
pub const LINKS_MAX: usize = 20;

/// Well-formed, distinct ids of one kind (`acl`, `grp`), or field errors.
fn check_link_ids(e: &mut Errors, field: &str, kind: &str, ids: &[String]) -> Vec<String> {
    if ids.len() > LINKS_MAX {
        e.add(field, format!("must have at most {LINKS_MAX} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let well_formed = id
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|hex| {
                hex.len() == 16
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        if !well_formed {
            e.add(
                format!("{field}[{i}]"),
                format!("must be an id like {kind}_ and 16 hex digits"),
            );
        } else if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// Well-formed, distinct resource patterns, or field errors.
fn check_resources(e: &mut Errors, patterns: &[String]) -> Vec<String> {
    if patterns.len() > resource::RESOURCES_MAX {
        e.add(
            "resources",
            format!("must have at most {} entries", resource::RESOURCES_MAX),
        );
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(patterns.len());
    for (i, p) in patterns.iter().enumerate() {
        if !resource::is_valid_pattern(p) {
            e.add(format!("resources[{i}]"), resource::PATTERN_RULE);
        } else if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// Checks, in the unit of work that stores the key (under the organization's lock, so that none
/// is deleted meanwhile), that every ACL and group the key names exists, and that its groups are
/// of the key's API.
async fn check_links(tx: &mut StoreTx, key: &Key) -> Result<()> {
    let mut e = Errors::default();
    for (i, id) in key.ip_acl_ids.iter().enumerate() {
        if tx.get_ip_acl(&key.org_id, id).await?.is_none() {
            e.add(
                format!("ip_acl_ids[{i}]"),
                "no such IP ACL in this organization",
            );
        }
    }
    for (i, id) in key.group_ids.iter().enumerate() {
        match tx.get_key_group(&key.org_id, id).await? {
            None => e.add(
                format!("group_ids[{i}]"),
                "no such key group in this organization",
            ),
            Some(g) if g.api_id != key.api_id => e.add(
                format!("group_ids[{i}]"),
                "the group is for another API than the key's",
            ),
            Some(_) => {}
        }
    }
    Ok(e.finish(())?)
}

/// What `key.updated` records: the fields changed, and the new ACLs, groups and resources when
/// they changed (ids and patterns, never a secret).
fn updated_details(key: &Key, changed: &[&str]) -> serde_json::Value {
    let mut details = json!({ "fields": changed });
    for (field, value) in [
        ("ip_acl_ids", &key.ip_acl_ids),
        ("group_ids", &key.group_ids),
        ("resources", &key.resources),
    ] {
        if changed.contains(&field) {
            details[field] = json!(value);
        }
    }
    details
}

/// The key as stored now, its ACLs and groups resolved (after a change).
async fn reread(ctx: &Ctx, key: Key) -> Result<Key> {
    Ok(ctx.store.get_key(&key.id).await?.unwrap_or(key))
}

fn ensure_manageable(caller: &Caller, key: &Key) -> Result<()> {
    if authz::may_change_key(caller, key) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "Your role may only change keys you own.".into(),
        ))
    }
}

/// [`authz::may_act_for_owner`], or the 403 naming the owner's role.
fn ensure_not_above(caller: &Caller, api: &Api, owner: &User) -> Result<()> {
    if !authz::may_act_for_owner(caller, api, owner) {
        return Err(ServiceError::Forbidden(format!(
            "Only an {} can manage management keys owned by an {}.",
            owner.role.as_str(),
            owner.role.as_str()
        )));
    }
    Ok(())
}

/// [`ensure_not_above`] for an existing key.
async fn ensure_management_key_not_above(ctx: &Ctx, caller: &Caller, key: &Key) -> Result<()> {
    let now = ctx.now();
    let api = ctx.verifier.api(&key.api_id, now).await?;
    let owner = ctx.verifier.user(&key.owner_id, now).await?;
    match (api, owner) {
        (Some(api), Some(owner)) => ensure_not_above(caller, &api, &owner),
        _ => Ok(()),
    }
}

/// Records an event about `key` by `caller` in `tx`; the key appears by its masked prefix.
async fn audit_key(
    ctx: &Ctx,
    tx: &mut StoreTx,
    caller: &Caller,
    action: &str,
    key: &Key,
    details: serde_json::Value,
) -> Result<()> {
    let label = format!("{}••••", key.display_prefix());
    audit::record(
        ctx,
        tx,
        caller,
        action,
        Target {
            kind: "key",
            id: &key.id,
            label: &label,
        },
        details,
    )
    .await
}

/// A key of the caller's organization, or 404.
/// A key of the caller's organization; a deleted key is gone (404) except from listings of
/// every status and the audit log.
pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Key> {
    caller.require("keys:read")?;
    find(ctx, caller, id).await
}

/// [`get`], deleted keys included: the dashboard still shows one's page, marked deleted, for the
/// history it links to.
pub async fn get_with_deleted(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Key> {
    caller.require("keys:read")?;
    find_any(ctx, caller, id).await
}

/// A key of the caller's organization that is not deleted, or 404.
async fn find(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Key> {
    let key = find_any(ctx, caller, id).await?;
    if key.deleted_at.is_some() {
        return Err(ServiceError::NotFound("key"));
    }
    Ok(key)
}

async fn find_any(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Key> {
    let mut key = ctx
        .store
        .get_key_in_org(&caller.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound("key"))?;
    overlay_usage(ctx, &mut key);
    Ok(key)
}

/// Adds `last_used` observations not yet written behind.
pub fn overlay_usage(ctx: &Ctx, key: &mut Key) {
    if let Some((at, ip)) = ctx.verifier.pending_touch(&key.id) {
        if key.last_used_at.is_none_or(|t| t < at) {
            key.last_used_at = Some(at);
            key.last_used_ip = ip.map(|ip| ip.to_string());
        }
    }
}

pub async fn list(ctx: &Ctx, caller: &Caller, filter: &KeyFilter) -> Result<Vec<Key>> {
    caller.require("keys:read")?;
    let mut keys = ctx
        .store
        .list_keys(&caller.org_id, filter, ctx.now())
        .await?;
    for k in &mut keys {
        overlay_usage(ctx, k);
    }
    Ok(keys)
}

/// A page of keys that match `filter`, and how many match in all.
pub async fn search(ctx: &Ctx, caller: &Caller, filter: &KeyFilter) -> Result<(Vec<Key>, i64)> {
    caller.require("keys:read")?;
    let now = ctx.now();
    let total = ctx.store.count_keys(&caller.org_id, filter, now).await?;
    let mut keys = ctx.store.list_keys(&caller.org_id, filter, now).await?;
    for k in &mut keys {
        overlay_usage(ctx, k);
    }
    Ok((keys, total))
}

pub async fn create(ctx: &Ctx, caller: &Caller, input: CreateKey) -> Result<Created> {
    caller.require(authz::WRITE_KEYS)?;
    let now = ctx.now();
    let org = ctx
        .verifier
        .org(&caller.org_id, now)
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    let mut e = Errors::default();
    let name = validate::text(&mut e, "name", &input.name, validate::NAME_MAX);
    let description = input
        .description
        .as_deref()
        .map(|d| validate::text(&mut e, "description", d, validate::DESCRIPTION_MAX));
    let api = resolve_api(ctx, caller, input.api_id.as_deref(), &mut e).await?;
    let owner = resolve_owner(ctx, caller, input.owner_id.as_deref(), &mut e).await?;
    let token_type = input.token_type.unwrap_or_else(|| "standard".into());
    let scopes = input.scopes.unwrap_or_default();
    let scopes = match &api {
        Some(api) => {
            if !api.token_types.contains(&token_type) {
                e.add(
                    "type",
                    format!("must be one of {}", api.token_types.join(", ")),
                );
            }
            check_scopes(&mut e, "scopes", api, &scopes)
        }
        None => scopes,
    };
    let ip_allowlist = validate::ip_allowlist(
        &mut e,
        "ip_allowlist",
        &input.ip_allowlist.unwrap_or_default(),
    );
    let expires_at = validate::expiry(
        &mut e,
        input.expires.as_deref(),
        input
            .expires_at
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis),
        &org.policies,
        now,
    );
    if let Some(rl) = &input.rate_limit {
        validate::rate_limit(&mut e, "rate_limit", rl);
    }
    if let Some(q) = &input.quota {
        validate::quota(&mut e, q.remaining, q.refill.as_ref());
    }
    let metadata = input.metadata.unwrap_or_default();
    validate::metadata(&mut e, &metadata);
    let ip_acl_ids = check_link_ids(
        &mut e,
        "ip_acl_ids",
        "acl",
        &input.ip_acl_ids.unwrap_or_default(),
    );
    let group_ids = check_link_ids(
        &mut e,
        "group_ids",
        "grp",
        &input.group_ids.unwrap_or_default(),
    );
    let resources = check_resources(&mut e, &input.resources.unwrap_or_default());
    let recoverable = input.recoverable.unwrap_or(false);
    if recoverable {
        if let Err(why) = authz::recoverable_keys(&org.policies, ctx.sealer.is_some()) {
            e.add("recoverable", why);
        }
    }
    let (Some(api), Some(owner)) = (api, owner) else {
        return Err(ServiceError::Validation(e.0));
    };
    let scopes = e.finish(scopes)?;
    ensure_not_above(caller, &api, &owner)?;
    if let Some(s) = scopes
        .iter()
        .find(|s| !authz::may_grant_scope(caller, &api, s))
    {
        return Err(ServiceError::Forbidden(format!(
            "You cannot grant the scope '{s}', which you do not hold yourself."
        )));
    }
    let environment = input.environment.unwrap_or(Environment::Live);
    let template = Key {
        id: String::new(),
        org_id: caller.org_id.clone(),
        api_id: api.id.clone(),
        name,
        description,
        key_prefix: api.prefix_for(environment).to_owned(),
        token_type,
        environment,
        scopes,
        ip_allowlist,
        expires_at,
        enabled: true,
        hash: key::KeyHash([0; 32]),
        pepper_version: 0,
        owner_id: owner.id.clone(),
        created_by: caller.user.id.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        rate_limit: input.rate_limit,
        quota: input.quota.map(|q| Quota {
            remaining: q.remaining,
            refill: q.refill,
            refilled_at: now,
        }),
        metadata,
        replaces: None,
        replaced_by: None,
        revoked_at: None,
        revoke_reason: None,
        deleted_at: None,
        exposed_at: None,
        recoverable,
        encrypted_secret: None,
        ip_acl_ids,
        group_ids,
        resources,
        linked: Default::default(),
    };
    let pepper = ctx.verifier.peppers().current().clone();
    for _ in 0..5 {
        let mut key = template.clone();
        let secret = assign_secret(ctx, &mut key, &pepper)?;
        // Creations in one organization take turns, so that each counts the keys the one before
        // left, under the policies as they are now.
        let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
        let policies = tx
            .get_org(&caller.org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?
            .policies;
        check_links(&mut tx, &key).await?;
        let revoked = if policies.single_active_key {
            tx.revoke_active_keys(&caller.org_id, &api.id, &owner.id, now, REPLACED)
                .await?
        } else {
            Vec::new()
        };
        // Keys the one-active-key policy just revoked no longer count: they made room.
        if tx.count_live_keys(&caller.org_id, now).await? >= i64::from(policies.key_limit) {
            return Err(ServiceError::Conflict(format!(
                "The organization has reached its limit of {} keys. Revoke or delete a key first.",
                policies.key_limit
            )));
        }
        match tx.create_key(&key).await {
            Ok(()) => {}
            // The (unlikely) id collision: everything again, with another secret.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        for (id, masked) in &revoked {
            audit::record(
                ctx,
                &mut tx,
                caller,
                "key.revoked",
                Target {
                    kind: "key",
                    id,
                    label: &format!("{masked}••••"),
                },
                json!({"reason": REPLACED, "replaced_by": key.id}),
            )
            .await?;
        }
        audit_key(
            ctx,
            &mut tx,
            caller,
            "key.created",
            &key,
            json!({"name": key.name, "api_id": key.api_id, "type": key.token_type, "scopes": key.scopes,
                   "owner_id": key.owner_id, "expires_at": key.expires_at,
                   "ip_acl_ids": key.ip_acl_ids, "group_ids": key.group_ids,
                   "resources": key.resources}),
        )
        .await?;
        tx.commit().await?;
        ctx.verifier.invalidate_key(&key.id);
        for (id, _) in &revoked {
            ctx.verifier.invalidate_key(id);
        }
        let key = reread(ctx, key).await?;
        return Ok(Created {
            key,
            secret,
            revoked: revoked.into_iter().map(|(id, _)| id).collect(),
        });
    }
    Err(ServiceError::Conflict(
        "Could not allocate a unique key id; try again.".into(),
    ))
}

async fn resolve_owner(
    ctx: &Ctx,
    caller: &Caller,
    owner_id: Option<&str>,
    e: &mut Errors,
) -> Result<Option<Arc<User>>> {
    let Some(id) = owner_id.filter(|id| *id != caller.user.id) else {
        return Ok(Some(caller.user.clone()));
    };
    if !authz::may_create_keys_for_others(caller) {
        return Err(ServiceError::Forbidden(
            "Your role may only create keys for yourself.".into(),
        ));
    }
    match ctx.store.get_user_in_org(&caller.org_id, id).await? {
        Some(u) if authz::may_own_keys(&u) => Ok(Some(Arc::new(u))),
        Some(_) => {
            e.add("owner_id", "the member is not active");
            Ok(None)
        }
        None => {
            e.add("owner_id", "no such member in this organization");
            Ok(None)
        }
    }
}

/// The sealed secret of a recoverable key (bound to its id), `None` for other keys.
fn seal_if_recoverable(ctx: &Ctx, key: &Key, secret: &SecretKey) -> Result<Option<String>> {
    if !key.recoverable {
        return Ok(None);
    }
    let sealer = ctx.sealer.as_ref().ok_or_else(|| {
        ServiceError::Conflict(
            "This key is recoverable, which needs KEYWARD_ENCRYPTION_KEY on the server.".into(),
        )
    })?;
    Ok(Some(sealer.seal(secret.expose(), &key.id)))
}

/// Reveals the secret of a recoverable key (`keys:reveal`); every reveal is audited.
pub async fn reveal(ctx: &Ctx, caller: &Caller, id: &str) -> Result<(Key, SecretKey)> {
    caller.require(authz::REVEAL_KEYS)?;
    let key = find(ctx, caller, id).await?;
    ensure_management_key_not_above(ctx, caller, &key).await?;
    authz::revealable(&key, ctx.now())?;
    let sealer = ctx.sealer.as_ref().ok_or_else(|| {
        ServiceError::Conflict("Revealing keys needs KEYWARD_ENCRYPTION_KEY on the server.".into())
    })?;
    let plain = key
        .encrypted_secret
        .as_deref()
        .and_then(|sealed| sealer.open(sealed, &key.id))
        .ok_or_else(|| {
            ServiceError::Store(StoreError::Corrupt(format!(
                "the sealed secret of {} does not open with the configured encryption key",
                key.id
            )))
        })?;
    let parsed = key::parse(&plain).map_err(|_| {
        ServiceError::Store(StoreError::Corrupt("sealed secret is not a key".into()))
    })?;
    let secret = SecretKey::from_parsed(&parsed);
    let mut tx = ctx.store.begin().await?;
    audit_key(ctx, &mut tx, caller, "key.revealed", &key, json!({})).await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Gives `key` a fresh secret: its id, hash (under `pepper`) and, if recoverable, sealed copy.
fn assign_secret(ctx: &Ctx, key: &mut Key, pepper: &key::Pepper) -> Result<SecretKey> {
    let secret = key::generate(&key.key_prefix, &mut OsRng);
    let parsed = key::parse(secret.expose()).expect("generated keys are well-formed");
    key.id = format!("key_{}", parsed.id);
    key.hash = pepper.hash(secret.expose());
    key.pepper_version = pepper.version();
    key.encrypted_secret = seal_if_recoverable(ctx, key, &secret)?;
    Ok(secret)
}

pub async fn update(ctx: &Ctx, caller: &Caller, id: &str, patch: UpdateKey) -> Result<Key> {
    caller.require(authz::WRITE_KEYS)?;
    let mut key = find(ctx, caller, id).await?;
    ensure_manageable(caller, &key)?;
    ensure_management_key_not_above(ctx, caller, &key).await?;
    let now = ctx.now();
    authz::editable(&key, now)?;
    let org = ctx
        .verifier
        .org(&caller.org_id, now)
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    let mut e = Errors::default();
    let mut changed = Vec::new();
    if let Some(name) = &patch.name {
        key.name = validate::text(&mut e, "name", name, validate::NAME_MAX);
        changed.push("name");
    }
    if let Some(d) = &patch.description {
        key.description = d
            .as_deref()
            .map(|d| validate::text(&mut e, "description", d, validate::DESCRIPTION_MAX));
        changed.push("description");
    }
    if let Some(list) = &patch.ip_allowlist {
        key.ip_allowlist = validate::ip_allowlist(&mut e, "ip_allowlist", list);
        changed.push("ip_allowlist");
    }
    if let Some(m) = patch.metadata {
        validate::metadata(&mut e, &m);
        key.metadata = m;
        changed.push("metadata");
    }
    if let Some(enabled) = patch.enabled {
        key.enabled = enabled;
        changed.push("enabled");
    }
    if let Some(rl) = patch.rate_limit {
        if let Some(rl) = &rl {
            validate::rate_limit(&mut e, "rate_limit", rl);
        }
        key.rate_limit = rl;
        changed.push("rate_limit");
    }
    if let Some(scopes) = &patch.scopes {
        if !org.policies.scopes_editable {
            e.add(
                "scopes",
                "the organization's policy does not allow editing scopes after creation",
            );
        } else {
            let api = ctx
                .store
                .get_api(&key.api_id)
                .await?
                .ok_or(ServiceError::NotFound("API"))?;
            key.scopes = check_scopes(&mut e, "scopes", &api, scopes);
            if let Some(s) = key
                .scopes
                .iter()
                .find(|s| !authz::may_grant_scope(caller, &api, s))
            {
                return Err(ServiceError::Forbidden(format!(
                    "You cannot grant the scope '{s}', which you do not hold yourself."
                )));
            }
            changed.push("scopes");
        }
    }
    if let Some(ids) = &patch.ip_acl_ids {
        key.ip_acl_ids = check_link_ids(&mut e, "ip_acl_ids", "acl", ids);
        changed.push("ip_acl_ids");
    }
    if let Some(ids) = &patch.group_ids {
        key.group_ids = check_link_ids(&mut e, "group_ids", "grp", ids);
        changed.push("group_ids");
    }
    if let Some(patterns) = &patch.resources {
        key.resources = check_resources(&mut e, patterns);
        changed.push("resources");
    }
    e.finish(())?;
    key.updated_at = now;
    let links_changed = changed.contains(&"ip_acl_ids") || changed.contains(&"group_ids");
    // A key that starts naming an ACL or group holds the organization's lock, so that what it
    // names cannot be deleted meanwhile.
    let mut tx = if links_changed {
        let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
        check_links(&mut tx, &key).await?;
        tx
    } else {
        ctx.store.begin().await?
    };
    if !tx.update_key_settings(&key, now).await? {
        return Err(ServiceError::Conflict(
            "The key was revoked or deleted meanwhile; it cannot be edited.".into(),
        ));
    }
    audit_key(
        ctx,
        &mut tx,
        caller,
        "key.updated",
        &key,
        updated_details(&key, &changed),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_key(&key.id);
    if changed.contains(&"rate_limit") || changed.contains(&"group_ids") {
        ctx.verifier.reset_rate_limit(&key.id);
    }
    let mut key = reread(ctx, key).await?;
    overlay_usage(ctx, &mut key);
    Ok(key)
}

pub async fn rotate(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    input: RotateKey,
) -> Result<(Key, SecretKey)> {
    caller.require(authz::WRITE_KEYS)?;
    let grace = input.grace_period_s.unwrap_or(0);
    if !(0..=GRACE_MAX_S).contains(&grace) {
        return Err(ServiceError::Validation(vec![validate::FieldError {
            field: "grace_period_s".into(),
            message: format!("must be between 0 and {GRACE_MAX_S} seconds"),
        }]));
    }
    let mut old = find(ctx, caller, id).await?;
    ensure_manageable(caller, &old)?;
    ensure_management_key_not_above(ctx, caller, &old).await?;
    let now = ctx.now();
    authz::rotatable(&old, now)?;
    let mut template = old.clone();
    template.created_at = now;
    template.updated_at = now;
    template.created_by = caller.user.id.clone();
    template.last_used_at = None;
    template.last_used_ip = None;
    template.replaces = Some(old.id.clone());
    template.replaced_by = None;
    template.revoked_at = None;
    template.revoke_reason = None;
    template.exposed_at = None;
    template.encrypted_secret = None;
    if let Some(q) = &mut template.quota {
        q.refilled_at = now;
    }
    let pepper = ctx.verifier.peppers().current().clone();
    old.revoked_at = Some(now + grace * 1000);
    old.revoke_reason = Some("rotated".into());
    old.updated_at = now;
    let mut attempt = 0;
    let (new, secret) = loop {
        attempt += 1;
        let secret = assign_secret(ctx, &mut template, &pepper)?;
        old.replaced_by = Some(template.id.clone());
        let mut tx = ctx.store.begin().await?;
        match tx.rotate_key(&old, &template, now).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ServiceError::Conflict(
                    "The key was rotated, revoked or deleted meanwhile.".into(),
                ));
            }
            Err(StoreError::Conflict(_)) if attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
        audit_key(
            ctx,
            &mut tx,
            caller,
            "key.rotated",
            &old,
            json!({"replaced_by": template.id, "new_prefix": template.display_prefix(),
                   "grace_period_s": grace, "old_key_revoked_at": old.revoked_at}),
        )
        .await?;
        tx.commit().await?;
        break (template, secret);
    };
    ctx.verifier.invalidate_key(&old.id);
    ctx.verifier.invalidate_key(&new.id);
    Ok((new, secret))
}

fn ensure_deletable(caller: &Caller, key: &Key) -> Result<()> {
    if authz::may_remove_key(caller, key) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "Your role may only revoke or delete keys you own or created.".into(),
        ))
    }
}

pub async fn revoke(ctx: &Ctx, caller: &Caller, id: &str, input: RevokeKey) -> Result<Key> {
    caller.require(authz::REMOVE_KEYS)?;
    if let Some(reason) = &input.reason {
        let mut e = Errors::default();
        validate::free_text(&mut e, "reason", reason, REASON_MAX);
        e.finish(())?;
    }
    let mut key = find(ctx, caller, id).await?;
    ensure_deletable(caller, &key)?;
    let now = ctx.now();
    if key.revoked_at.is_some_and(|t| t <= now) {
        return Ok(key);
    }
    let reason = input
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let stored_reason = reason.clone().unwrap_or_else(|| "revoked".into());
    let mut tx = ctx.store.begin().await?;
    if !tx
        .revoke_key(&key.org_id, &key.id, now, &stored_reason)
        .await?
    {
        // Revoked by someone else meanwhile: answer with the key as it now is.
        drop(tx);
        ctx.verifier.invalidate_key(&key.id);
        return find_any(ctx, caller, id).await;
    }
    key.revoked_at = Some(now);
    key.revoke_reason = Some(stored_reason);
    key.updated_at = now;
    audit_key(
        ctx,
        &mut tx,
        caller,
        "key.revoked",
        &key,
        json!({"reason": reason}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_key(&key.id);
    Ok(key)
}

/// Most keys one request may revoke together.
pub const BULK_MAX: usize = 100;

/// What [`revoke_many`] did.
#[derive(Debug)]
pub struct Revoked {
    /// The keys this call revoked, as they now are.
    pub revoked: Vec<Key>,
    /// Keys named that had already stopped working; left as they were.
    pub already: usize,
}

/// Revokes several keys at once: every one must exist and be the caller's to revoke, or none is
/// revoked. They are revoked in one unit of work, each with its own audit event.
pub async fn revoke_many(
    ctx: &Ctx,
    caller: &Caller,
    ids: &[String],
    input: RevokeKey,
) -> Result<Revoked> {
    caller.require(authz::REMOVE_KEYS)?;
    let mut e = Errors::default();
    if ids.is_empty() || ids.len() > BULK_MAX {
        e.add("ids", format!("must name 1 to {BULK_MAX} keys"));
    }
    if let Some(reason) = &input.reason {
        validate::free_text(&mut e, "reason", reason, REASON_MAX);
    }
    e.finish(())?;
    let mut keys: Vec<Key> = Vec::with_capacity(ids.len());
    for id in ids {
        if keys.iter().any(|k| &k.id == id) {
            continue;
        }
        let key = find(ctx, caller, id).await?;
        ensure_deletable(caller, &key)?;
        keys.push(key);
    }
    let now = ctx.now();
    let reason = input
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let stored_reason = reason.clone().unwrap_or_else(|| "revoked".into());
    let together = keys.len();
    let mut revoked = Vec::new();
    let mut already = 0;
    let mut tx = ctx.store.begin().await?;
    for mut key in keys {
        // A key revoked meanwhile, by someone else, stays as they left it.
        if key.revoked_at.is_some_and(|t| t <= now)
            || !tx
                .revoke_key(&key.org_id, &key.id, now, &stored_reason)
                .await?
        {
            already += 1;
            continue;
        }
        key.revoked_at = Some(now);
        key.revoke_reason = Some(stored_reason.clone());
        key.updated_at = now;
        audit_key(
            ctx,
            &mut tx,
            caller,
            "key.revoked",
            &key,
            json!({"reason": reason, "revoked_together": together}),
        )
        .await?;
        revoked.push(key);
    }
    tx.commit().await?;
    for k in &revoked {
        ctx.verifier.invalidate_key(&k.id);
    }
    Ok(Revoked { revoked, already })
}

pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<()> {
    caller.require(authz::REMOVE_KEYS)?;
    let key = find_any(ctx, caller, id).await?;
    ensure_deletable(caller, &key)?;
    if key.deleted_at.is_some() {
        return Ok(());
    }
    let now = ctx.now();
    let mut tx = ctx.store.begin().await?;
    if tx.delete_key(&key.org_id, &key.id, now).await? {
        audit_key(ctx, &mut tx, caller, "key.deleted", &key, json!({})).await?;
        tx.commit().await?;
    }
    ctx.verifier.invalidate_key(&key.id);
    Ok(())
}

/// Marks a key exposed (its whole secret seen in a URL), once, and records a security event.
/// Only a token that really is the key counts, so nobody can flag keys by guessing ids.
pub async fn mark_exposed(
    ctx: &Ctx,
    token: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<()> {
    let Ok(parsed) = key::parse(token) else {
        return Ok(());
    };
    let Some(key) = ctx.store.get_key(&format!("key_{}", parsed.id)).await? else {
        return Ok(());
    };
    let authentic = ctx
        .verifier
        .peppers()
        .get(key.pepper_version)
        .is_some_and(|p| p.hash(token).ct_eq(&key.hash));
    if !authentic || key.exposed_at.is_some() {
        return Ok(());
    }
    let now = ctx.now();
    let mut tx = ctx.store.begin().await?;
    if !tx.mark_key_exposed(&key.id, now).await? {
        return Ok(());
    }
    let prefix = format!("{}••••", key.display_prefix());
    let from = ip.clone();
    audit::record_as(
        ctx,
        &mut tx,
        &key.org_id,
        crate::domain::model::Actor::system(),
        ip,
        user_agent,
        "key.exposed",
        Target {
            kind: "key",
            id: &key.id,
            label: &prefix,
        },
        json!({"where": "url"}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_key(&key.id);
    // Flagged once, so one event per key however often the URL is sent again.
    let detail = match &from {
        Some(ip) => format!(
            "Key {} was seen in the URL of a request from {ip}; it is flagged as exposed: rotate it",
            key.display_prefix()
        ),
        None => format!(
            "Key {} was seen in the URL of a request; it is flagged as exposed: rotate it",
            key.display_prefix()
        ),
    };
    crate::events::record(
        ctx,
        crate::events::NewEvent {
            id: crate::events::new_event_id(),
            org_id: key.org_id.clone(),
            kind: crate::domain::security::EventType::KeyExposed,
            key_id: Some(key.id.clone()),
            prefix: Some(key.display_prefix()),
            ip: from,
            count: 1,
            detail,
            at: now,
            last_seen_at: now,
        },
    )
    .await?;
    Ok(())
}
