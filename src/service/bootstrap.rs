//! Creating an organization with its owner, its APIs, a first management key and the owner's
//! one-time dashboard setup link: on the first start, by `keyward init`, and by `keyward orgs
//! create`.

use rand::rngs::OsRng;

use super::sessions::{self, Purpose, Token};
use super::{Ctx, Result};
use crate::domain::key::{self, SecretKey};
use crate::domain::model::{
    Api, BUILT_IN_TOKEN_TYPES, Environment, Key, MANAGEMENT_API_SLUG, MANAGEMENT_PREFIXES,
    MANAGEMENT_SCOPES, Org, Policies, Role, ScopeDef, User, UserStatus,
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
        routes: Vec::new(),
        created_at: now + 1,
    };
    let pepper = ctx.verifier.peppers().current().clone();
    let secret = key::generate(&management_api.prefix_live, &mut OsRng);
    let public_id = key::parse(secret.expose())
        .expect("generated keys are well-formed")
        .id
        .to_owned();
    let key = Key {
        id: format!("key_{public_id}"),
        org_id: org.id.clone(),
        api_id: management_api.id.clone(),
        name: "Initial management key".into(),
        description: Some("Created when the organization was set up; holds every scope.".into()),
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
    };
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
