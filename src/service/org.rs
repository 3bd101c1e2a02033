//! The organization: plan, API access, billing status and key policies.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz};
use crate::domain::model::{ExpiryChoice, Org};
use crate::domain::strict;
use crate::domain::validate::{self, Errors};

/// Key policies to change; each field present is set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesPatch {
    /// Most keys (not revoked, not deleted) the organization may hold, 1 to 1000000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "strict::option_int")]
    pub key_limit: Option<u32>,
    /// Non-empty subset of `1y`, `2y`, `5y`, `never`.
    #[schema(value_type = Option<Vec<crate::domain::schema::Expiry>>, min_items = 1)]
    #[serde(default, deserialize_with = "strict::option_vec_string_enum")]
    pub allowed_expiries: Option<Vec<ExpiryChoice>>,
    pub scopes_editable: Option<bool>,
    /// Creating a key revokes the owner's other active keys of the same API.
    pub single_active_key: Option<bool>,
    /// Needs `KEYWARD_ENCRYPTION_KEY` on the server.
    pub recoverable_keys: Option<bool>,
}

/// Body of `PATCH /v1/org`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// One of the configured plans (default `free`, `pro`, `enterprise`).
    pub plan: Option<String>,
    pub api_access: Option<bool>,
    #[schema(value_type = Option<crate::domain::schema::BillingStatus>)]
    pub billing_status: Option<String>,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub policies: Option<PoliciesPatch>,
}

pub async fn get(ctx: &Ctx, caller: &Caller) -> Result<Org> {
    caller.require("keys:read")?;
    ctx.store
        .get_org(&caller.org_id)
        .await?
        .ok_or(ServiceError::NotFound("organization"))
}

pub async fn update(ctx: &Ctx, caller: &Caller, input: UpdateOrg) -> Result<Org> {
    caller.require(authz::UPDATE_ORG)?;
    // Read under the organization's lock, so that two changes of different fields made at once
    // both stay: the second sees the first instead of writing back what it read before.
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut org = tx
        .get_org(&caller.org_id)
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    let mut e = Errors::default();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(n) = &input.name {
        org.name = validate::text(&mut e, "name", n, validate::NAME_MAX);
        changed.push("name");
    }
    if let Some(p) = &input.plan {
        if ctx.plans.iter().any(|plan| &plan.name == p) {
            org.plan = p.clone();
        } else {
            let names: Vec<&str> = ctx.plans.iter().map(|p| p.name.as_str()).collect();
            e.add("plan", format!("must be one of {}", names.join(", ")));
        }
        changed.push("plan");
    }
    if let Some(a) = input.api_access {
        org.api_access = a;
        changed.push("api_access");
    }
    if let Some(b) = &input.billing_status {
        if b == "active" || b == "past_due" {
            org.billing_status = b.clone();
        } else {
            e.add("billing_status", "must be active or past_due");
        }
        changed.push("billing_status");
    }
    if let Some(p) = input.policies {
        let pol = &mut org.policies;
        if let Some(limit) = p.key_limit {
            if !(1..=1_000_000).contains(&limit) {
                e.add("policies.key_limit", "must be between 1 and 1000000");
            }
            pol.key_limit = limit;
            changed.push("policies.key_limit");
        }
        if let Some(mut choices) = p.allowed_expiries {
            choices.dedup();
            if choices.is_empty() {
                e.add(
                    "policies.allowed_expiries",
                    "must allow at least one expiry choice",
                );
            }
            pol.allowed_expiries = choices;
            changed.push("policies.allowed_expiries");
        }
        if let Some(v) = p.scopes_editable {
            pol.scopes_editable = v;
            changed.push("policies.scopes_editable");
        }
        if let Some(v) = p.single_active_key {
            pol.single_active_key = v;
            changed.push("policies.single_active_key");
        }
        if let Some(v) = p.recoverable_keys {
            if v {
                if let Err(why) = authz::recoverable_policy(ctx.sealer.is_some()) {
                    e.add("policies.recoverable_keys", why);
                }
            }
            pol.recoverable_keys = v;
            changed.push("policies.recoverable_keys");
        }
    }
    e.finish(())?;
    tx.update_org(&org).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "org.updated",
        Target {
            kind: "org",
            id: &org.id,
            label: &org.name,
        },
        json!({"fields": changed, "plan": org.plan, "api_access": org.api_access,
               "billing_status": org.billing_status, "policies": org.policies}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_org(&org.id);
    Ok(org)
}
