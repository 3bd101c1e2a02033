//! Creating an organization with its owner, its APIs, a first management key and the owner's
//! one-time dashboard setup link: on the first start, by `keyward init`, and by `keyward orgs
//! create`.

use rand::rngs::OsRng;

use super::sessions::{self, Purpose, Token};
use super::{Ctx, Result, ServiceError, audit};
use crate::domain::key::{self, SecretKey};
use crate::domain::model::{
    Actor, Api, BUILT_IN_TOKEN_TYPES, Environment, Key, MANAGEMENT_API_SLUG, MANAGEMENT_PREFIXES,
    MANAGEMENT_SCOPES, Millis, Org, Policies, Role, ScopeDef, User, UserStatus,
};
use crate::domain::new_id;

/// What a new organization starts with.
pub struct Bootstrapped {
    pub org: Org,
    pub owner: User,
    pub management_api: Api,
    pub default_api: Api,
    pub key: Key,
    pub secret: SecretKey,
    /// The one-time link where the owner sets an email and password for the dashboard.
    pub setup_token: Token,
}

/// Creates an organization named `name` whose owner is `owner_email`.
pub async fn create_org(
    ctx: &Ctx,
    name: &str,
    owner_email: &str,
    plan: &str,
) -> Result<Bootstrapped> {
    let now = ctx.now();
    let org = Org {
        id: new_id("org"),
        name: name.to_owned(),
        plan: plan.to_owned(),
        api_access: true,
        billing_status: "active".into(),
        policies: Policies::default(),
        created_at: now,
    };
    let owner = User {
        id: new_id("usr"),
        org_id: org.id.clone(),
        email: owner_email.to_owned(),
        name: "Owner".into(),
        role: Role::Owner,
        status: UserStatus::Active,
        kind: crate::domain::model::UserKind::Person,
        created_at: now,
    };
    let management_api = Api {
        id: new_id("api"),
        org_id: org.id.clone(),
        name: "Keyward management API".into(),
        slug: MANAGEMENT_API_SLUG.into(),
        prefix_live: MANAGEMENT_PREFIXES[0].into(),
        prefix_test: MANAGEMENT_PREFIXES[1].into(),
        scopes: MANAGEMENT_SCOPES
            .iter()
            .map(|(n, d)| ScopeDef {
                name: (*n).into(),
                description: (*d).into(),
            })
            .collect(),
        token_types: vec!["standard".into()],
        accept_x_api_key: false,
        default_rate_limit: None,
        upstream: None,
        hosts: Vec::new(),
        routes: Vec::new(),
        created_at: now,
    };
    let default_api = Api {
        id: new_id("api"),
        org_id: org.id.clone(),
        name: "Default API".into(),
        slug: "default".into(),
        prefix_live: "kw_live_".into(),
        prefix_test: "kw_test_".into(),
        scopes: Vec::new(),
        token_types: BUILT_IN_TOKEN_TYPES.iter().map(|s| s.to_string()).collect(),
        accept_x_api_key: false,
        default_rate_limit: None,
        upstream: None,
        hosts: Vec::new(),
        routes: Vec::new(),
        created_at: now + 1,
    };
    let (key, secret) = management_key(
        ctx,
        &management_api,
        &owner,
        "Initial management key",
        "Created when the organization was set up; holds every scope.",
        now,
    );
    let mut tx = ctx.store.begin().await?;
    tx.create_org(
        &org,
        &owner,
        &[management_api.clone(), default_api.clone()],
        &key,
    )
    .await?;
    let setup_token = sessions::setup_link_in(ctx, &mut tx, &owner, Purpose::Setup).await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        org,
        owner,
        management_api,
        default_api,
        key,
        secret,
        setup_token,
    })
}

/// A new management key of `owner` holding every scope (it acts within the owner's role), and its
/// secret; not stored yet.
fn management_key(
    ctx: &Ctx,
    management_api: &Api,
    owner: &User,
    name: &str,
    description: &str,
    now: Millis,
) -> (Key, SecretKey) {
    let pepper = ctx.verifier.peppers().current().clone();
    let secret = key::generate(&management_api.prefix_live, &mut OsRng);
    let public_id = key::parse(secret.expose())
        .expect("generated keys are well-formed")
        .id
        .to_owned();
    let key = Key {
        id: format!("key_{public_id}"),
        org_id: owner.org_id.clone(),
        api_id: management_api.id.clone(),
        name: name.into(),
        description: Some(description.into()),
        key_prefix: management_api.prefix_live.clone(),
        token_type: "standard".into(),
        environment: Environment::Live,
        scopes: MANAGEMENT_SCOPES
            .iter()
            .map(|(n, _)| (*n).to_string())
            .collect(),
        ip_allowlist: Vec::new(),
        expires_at: None,
        enabled: true,
        hash: pepper.hash(secret.expose()),
        pepper_version: pepper.version(),
        owner_id: owner.id.clone(),
        created_by: owner.id.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        rate_limit: None,
        quota: None,
        metadata: Default::default(),
        replaces: None,
        replaced_by: None,
        revoked_at: None,
        revoke_reason: None,
        deleted_at: None,
        exposed_at: None,
        recoverable: false,
        encrypted_secret: None,
        ip_acl_ids: Vec::new(),
        group_ids: Vec::new(),
        resources: Vec::new(),
        linked: Default::default(),
    };
    (key, secret)
}

/// A way back in: a new management key for the active member with `email`, minted by the operator
/// against the database (`keyward keys create-management`), for when every management key is
/// lost or revoked. Audited as created by the operator.
pub async fn create_management_key(ctx: &Ctx, email: &str) -> Result<(Key, SecretKey)> {
    let email = sessions::normalize_email(email);
    let Some((member, _)) = ctx.store.get_user_by_email(&email).await? else {
        return Err(ServiceError::NotFound("member"));
    };
    if member.status != UserStatus::Active {
        return Err(ServiceError::Conflict(format!(
            "The member {email} is {}; enable them first.",
            member.status.as_str()
        )));
    }
    let apis = ctx.store.list_apis(&member.org_id).await?;
    let management_api = apis
        .iter()
        .find(|a| a.is_management())
        .ok_or(ServiceError::NotFound("management API"))?;
    let now = ctx.now();
    let (key, secret) = management_key(
        ctx,
        management_api,
        &member,
        "Recovery management key",
        "Created by the operator with `keyward keys create-management`.",
        now,
    );
    let label = format!("{}••••", key.display_prefix());
    let mut tx = ctx.store.begin().await?;
    tx.create_key(&key).await?;
    audit::record_as(
        ctx,
        &mut tx,
        &member.org_id,
        Actor::system(),
        None,
        None,
        "key.created",
        audit::Target {
            kind: "key",
            id: &key.id,
            label: &label,
        },
        serde_json::json!({"name": key.name, "api_id": key.api_id, "scopes": key.scopes,
                           "owner_id": key.owner_id, "via": "keyward keys create-management"}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_key(&key.id);
    Ok((key, secret))
}
