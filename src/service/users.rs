//! Members of an organization and their roles.
//!
//! Rules: owners and admins manage members (`users:write`); only an owner may create an owner,
//! change an owner, or make someone an owner; the organization always keeps at least one active
//! owner. Disabling or deleting a member revokes every key they own at once (contract section 5);
//! while the member stays disabled or deleted, verification of those keys answers
//! `owner_disabled`. Enabling the member again does not bring the keys back.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz, passwords};
use crate::domain::model::{Millis, Role, User, UserKind, UserStatus};
use crate::domain::new_id;
use crate::domain::validate::{self, Errors};
use crate::store::{StoreError, StoreTx};

/// Body of `POST /v1/users`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// `person` (default) signs in; `service` is a service account that only owns keys (for
    /// integrations): it has no email and no password, never signs in, and its keys survive any
    /// person leaving.
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::schema::MemberKind>)]
    pub kind: Option<String>,
    /// One address a person signs in with, across the whole service. Required for a person; a
    /// service account has none.
    #[schema(
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001F\u007F-\u009F]+@[^\s@\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub email: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Required for a person; a service account defaults to `developer`. A management key owned
    /// by a service account acts within this role.
    #[schema(value_type = Option<crate::domain::schema::RoleName>)]
    pub role: Option<String>,
    /// For dashboard sign-in (people only); 10 to 256 characters. Without it the member signs in
    /// only after a password is set.
    #[schema(min_length = 10, max_length = 256)]
    pub password: Option<String>,
}

/// Body of `PATCH /v1/users/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::domain::schema::RoleName>)]
    pub role: Option<String>,
    /// Use DELETE to delete.
    #[schema(value_type = Option<crate::domain::schema::MemberStatus>)]
    pub status: Option<String>,
}

/// A normalized email address, or a field error.
pub fn check_email(e: &mut Errors, field: &str, email: &str) -> String {
    let email = email.to_lowercase();
    let valid = email.chars().count() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !valid {
        e.add(field, "must be an email address");
    }
    email
}

fn parse_role(e: &mut Errors, role: &str) -> Option<Role> {
    let r = Role::parse(role);
    if r.is_none() {
        e.add("role", "must be one of owner, admin, developer, viewer");
    }
    r
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<User>> {
    caller.require("keys:read")?;
    Ok(ctx.store.list_users(&caller.org_id).await?)
}

/// Members who were invited and have not set a password yet, with the end of their latest unused
/// sign-in link (`None` when none is left).
pub async fn pending(ctx: &Ctx, caller: &Caller) -> Result<HashMap<String, Option<Millis>>> {
    caller.require("keys:read")?;
    let now = ctx.now();
    Ok(ctx
        .store
        .members_without_password(&caller.org_id)
        .await?
        .into_iter()
        .map(|(id, link)| (id, link.filter(|t| *t > now)))
        .collect())
}

/// Renames the signed-in member themself, whatever their role.
pub async fn rename_self(ctx: &Ctx, caller: &Caller, name: &str) -> Result<User> {
    if !authz::may_edit_own_profile(caller) {
        return Err(ServiceError::Forbidden(
            "Only the member signed in to the dashboard can change their own name.".into(),
        ));
    }
    let mut e = Errors::default();
    let name = validate::text(&mut e, "name", name, validate::NAME_MAX);
    e.finish(())?;
    // Read again in the unit of work, so that a role or status changed meanwhile stays.
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut user = find_in(&mut tx, caller, &caller.user.id).await?;
    if user.name == name {
        return Ok(user);
    }
    user.name = name;
    tx.update_user(&user).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.updated",
        Target {
            kind: "user",
            id: &user.id,
            label: user.label(),
        },
        json!({"fields": ["name"]}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_user(&user.id);
    Ok(user)
}

pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<User> {
    caller.require("keys:read")?;
    find(ctx, caller, id).await
}

async fn find(ctx: &Ctx, caller: &Caller, id: &str) -> Result<User> {
    ctx.store
        .get_user_in_org(&caller.org_id, id)
        .await?
        .filter(|u| u.status != UserStatus::Deleted)
        .ok_or(ServiceError::NotFound("member"))
}

/// [`find`] as the unit of work `tx` sees the member.
async fn find_in(tx: &mut StoreTx, caller: &Caller, id: &str) -> Result<User> {
    tx.get_user_in_org(&caller.org_id, id)
        .await?
        .filter(|u| u.status != UserStatus::Deleted)
        .ok_or(ServiceError::NotFound("member"))
}

/// The 403 of a rule only owners pass, when `allowed` says the caller did not.
fn only_owners(allowed: bool, what: &str) -> Result<()> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "Only an owner can {what}."
        )))
    }
}

pub async fn create(ctx: &Ctx, caller: &Caller, input: CreateUser) -> Result<User> {
    caller.require(authz::MANAGE_MEMBERS)?;
    let mut e = Errors::default();
    // An unknown kind is the one error: what the other fields need depends on it.
    let kind = match input.kind.as_deref() {
        None => Some(UserKind::Person),
        Some(k) => UserKind::parse(k).or_else(|| {
            e.add("kind", "must be person or service");
            None
        }),
    };
    let email = match (kind, input.email.as_deref()) {
        (Some(UserKind::Person), Some(email)) => check_email(&mut e, "email", email),
        (Some(UserKind::Person), None) => {
            e.add("email", "is required for a person");
            String::new()
        }
        (Some(UserKind::Service), Some(_)) => {
            e.add("email", "a service account has no email: it never signs in");
            String::new()
        }
        _ => String::new(),
    };
    let name = validate::text(&mut e, "name", &input.name, validate::NAME_MAX);
    let role = match (kind, input.role.as_deref()) {
        (_, Some(r)) => parse_role(&mut e, r),
        (Some(UserKind::Person), None) => {
            e.add(
                "role",
                "is required: one of owner, admin, developer, viewer",
            );
            None
        }
        _ => Some(Role::Developer),
    };
    if kind == Some(UserKind::Service) && input.password.is_some() {
        e.add(
            "password",
            "a service account has no password: it never signs in",
        );
    }
    let kind = kind.unwrap_or_default();
    if let Some(p) = input.password.as_ref().filter(|_| kind == UserKind::Person) {
        if let Err(ServiceError::Validation(errors)) = passwords::check_new("password", p) {
            e.0.extend(errors);
        }
    }
    let role = e.finish(role)?.expect("a role when there are no errors");
    only_owners(authz::may_assign_role(caller, role), "add an owner")?;
    let password_hash = match &input.password {
        Some(p) => Some(passwords::hash(p).await?),
        None => None,
    };
    let user = User {
        id: new_id("usr"),
        org_id: caller.org_id.clone(),
        email,
        name,
        role,
        status: UserStatus::Active,
        kind,
        created_at: ctx.now(),
    };
    let mut tx = ctx.store.begin().await?;
    match tx.create_user(&user, password_hash.as_deref()).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(
                "A member with this email already exists.".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.created",
        Target {
            kind: "user",
            id: &user.id,
            label: user.label(),
        },
        json!({"role": user.role.as_str(), "kind": user.kind.as_str(),
               "password_set": password_hash.is_some()}),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Refuses to leave the organization without an active owner. Owners are counted in `tx`, which
/// holds the organization's lock (see `Store::begin_for_org`), so that two owners removing each
/// other at once cannot both pass.
async fn keep_an_owner(tx: &mut StoreTx, target: &User) -> Result<()> {
    if target.role == Role::Owner
        && target.status == UserStatus::Active
        && tx.count_active_owners(&target.org_id).await? <= 1
    {
        return Err(ServiceError::Conflict(
            "The organization must keep at least one active owner; make someone else an owner first.".into(),
        ));
    }
    Ok(())
}

pub async fn update(ctx: &Ctx, caller: &Caller, id: &str, input: UpdateUser) -> Result<User> {
    caller.require(authz::MANAGE_MEMBERS)?;
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut user = find_in(&mut tx, caller, id).await?;
    let mut e = Errors::default();
    let name = input
        .name
        .as_deref()
        .map(|n| validate::text(&mut e, "name", n, validate::NAME_MAX));
    let role = input.role.as_deref().and_then(|r| parse_role(&mut e, r));
    let status = match input.status.as_deref() {
        None => None,
        Some("active") => Some(UserStatus::Active),
        Some("disabled") => Some(UserStatus::Disabled),
        Some(_) => {
            e.add(
                "status",
                "must be active or disabled (use DELETE to delete a member)",
            );
            None
        }
    };
    e.finish(())?;
    only_owners(authz::may_manage_member(caller, &user), "change an owner")?;
    if let Some(r) = role {
        only_owners(authz::may_assign_role(caller, r), "make someone an owner")?;
    }
    let demoted = role.is_some_and(|r| r != Role::Owner);
    let disabled = status == Some(UserStatus::Disabled);
    if demoted || disabled {
        keep_an_owner(&mut tx, &user).await?;
    }
    let before = user.clone();
    if let Some(n) = name {
        user.name = n;
    }
    if let Some(r) = role {
        user.role = r;
    }
    if let Some(s) = status {
        user.status = s;
    }
    tx.update_user(&user).await?;
    let mut revoked = Vec::new();
    if before.role != user.role {
        audit::record(
            ctx,
            &mut tx,
            caller,
            "user.role_changed",
            Target {
                kind: "user",
                id: &user.id,
                label: user.label(),
            },
            json!({"from": before.role.as_str(), "to": user.role.as_str()}),
        )
        .await?;
    }
    if before.status != user.status {
        let (action, details) = match user.status {
            UserStatus::Disabled => {
                revoked = revoke_all_keys(ctx, &mut tx, caller, &user, "owner disabled").await?;
                ("user.disabled", json!({"keys_revoked": revoked}))
            }
            _ => ("user.enabled", json!({})),
        };
        audit::record(
            ctx,
            &mut tx,
            caller,
            action,
            Target {
                kind: "user",
                id: &user.id,
                label: user.label(),
            },
            details,
        )
        .await?;
    }
    if before.name != user.name {
        audit::record(
            ctx,
            &mut tx,
            caller,
            "user.updated",
            Target {
                kind: "user",
                id: &user.id,
                label: user.label(),
            },
            json!({"fields": ["name"]}),
        )
        .await?;
    }
    tx.commit().await?;
    ctx.verifier.invalidate_user(&user.id);
    for key_id in &revoked {
        ctx.verifier.invalidate_key(key_id);
    }
    Ok(user)
}

pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<()> {
    caller.require(authz::MANAGE_MEMBERS)?;
    let mut tx = ctx.store.begin_for_org(&caller.org_id).await?;
    let mut user = find_in(&mut tx, caller, id).await?;
    only_owners(authz::may_manage_member(caller, &user), "delete an owner")?;
    keep_an_owner(&mut tx, &user).await?;
    user.status = UserStatus::Deleted;
    tx.update_user(&user).await?;
    let revoked = revoke_all_keys(ctx, &mut tx, caller, &user, "owner deleted").await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.deleted",
        Target {
            kind: "user",
            id: &user.id,
            label: user.label(),
        },
        json!({"keys_revoked": revoked}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_user(&user.id);
    for key_id in &revoked {
        ctx.verifier.invalidate_key(key_id);
    }
    Ok(())
}

/// Revokes every live key a member owns in `tx`, each audited; returns their ids, for the
/// caller to drop from the cache once `tx` is committed.
async fn revoke_all_keys(
    ctx: &Ctx,
    tx: &mut StoreTx,
    caller: &Caller,
    user: &User,
    reason: &str,
) -> Result<Vec<String>> {
    let revoked = tx
        .revoke_keys_of_owner(&user.org_id, &user.id, ctx.now(), reason)
        .await?;
    for (key_id, prefix) in &revoked {
        audit::record(
            ctx,
            tx,
            caller,
            "key.revoked",
            Target {
                kind: "key",
                id: key_id,
                label: &format!("{prefix}••••"),
            },
            json!({"reason": reason}),
        )
        .await?;
    }
    Ok(revoked.into_iter().map(|(id, _)| id).collect())
}
