//! Protected APIs: the services an organization issues keys for.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, authz, double_option};
use crate::domain::key::is_valid_prefix;
use crate::domain::model::{
    Api, BUILT_IN_TOKEN_TYPES, MANAGEMENT_API_SLUG, RateLimit, Route, ScopeDef,
};
use crate::domain::new_id;
use crate::domain::strict;
use crate::domain::validate::{self, Errors};
use crate::store::StoreError;

/// Key prefixes per environment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixInput {
    #[schema(
        min_length = 2,
        max_length = 16,
        pattern = r"^[a-z0-9]+[_-]([a-z0-9]+[_-])?$"
    )]
    pub live: Option<String>,
    #[schema(
        min_length = 2,
        max_length = 16,
        pattern = r"^[a-z0-9]+[_-]([a-z0-9]+[_-])?$"
    )]
    pub test: Option<String>,
}

/// Body of `POST /v1/apis`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApi {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Lowercase letters, digits and `-`; unique in the organization; `keyward` is reserved.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub slug: String,
    /// Default `kw_live_` / `kw_test_`.
    #[serde(default, deserialize_with = "strict::option_object")]
    pub key_prefix: Option<PrefixInput>,
    /// Names unique within the API.
    #[schema(max_items = 200)]
    #[serde(default, deserialize_with = "strict::option_vec_object")]
    pub scopes: Option<Vec<ScopeDef>>,
    /// Default: `standard`, `batch`, `realtime`.
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, min_items = 1)]
    pub token_types: Option<Vec<String>>,
    /// Accept `x-api-key: <key>` beside `Authorization: Bearer`. Default false.
    pub accept_x_api_key: Option<bool>,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub default_rate_limit: Option<RateLimit>,
    /// Base URL the gateway forwards verified requests to.
    #[schema(value_type = Option<crate::domain::schema::Upstream>)]
    pub upstream: Option<String>,
    /// Host names (no port) the gateway serves this API for; empty or absent: any host. An API
    /// that lists the request's host beats one that lists none.
    #[schema(value_type = Option<std::collections::BTreeSet<crate::domain::schema::Hostname>>, max_items = 50)]
    pub hosts: Option<Vec<String>>,
    /// The gateway's routes; none: every path is forwarded and only the key is checked.
    #[serde(default, deserialize_with = "strict::option_vec_object")]
    pub routes: Option<Vec<Route>>,
}

/// Body of `PATCH /v1/apis/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApi {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "strict::option_object")]
    pub key_prefix: Option<PrefixInput>,
    #[schema(max_items = 200)]
    #[serde(default, deserialize_with = "strict::option_vec_object")]
    pub scopes: Option<Vec<ScopeDef>>,
    #[schema(value_type = Option<Vec<crate::domain::schema::NameToken>>, min_items = 1)]
    pub token_types: Option<Vec<String>>,
    pub accept_x_api_key: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "strict::double_option_object")]
    #[schema(value_type = Option<RateLimit>)]
    pub default_rate_limit: Option<Option<RateLimit>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::domain::schema::Upstream>)]
    pub upstream: Option<Option<String>>,
    /// Replaces the list; `[]`: any host.
    #[schema(value_type = Option<std::collections::BTreeSet<crate::domain::schema::Hostname>>, max_items = 50)]
    pub hosts: Option<Vec<String>>,
    /// Replaces the routes.
    #[serde(default, deserialize_with = "strict::option_vec_object")]
    pub routes: Option<Vec<Route>>,
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<Vec<Api>> {
    caller.require("keys:read")?;
    Ok(ctx.store.list_apis(&caller.org_id).await?)
}

pub async fn get(ctx: &Ctx, caller: &Caller, id: &str) -> Result<Api> {
    caller.require("keys:read")?;
    ctx.store
        .get_api(id)
        .await?
        .filter(|a| a.org_id == caller.org_id)
        .ok_or(ServiceError::NotFound("API"))
}

fn check_prefix(e: &mut Errors, field: &str, p: &str) {
    if !is_valid_prefix(p) {
        e.add(
            field,
            "must be 2 to 16 characters: lowercase letters and digits in one or two groups, each followed by '_' or '-'",
        );
    }
}

fn check_catalogue(e: &mut Errors, scopes: &[ScopeDef]) {
    if scopes.len() > 200 {
        e.add("scopes", "must have at most 200 entries");
    }
    for (i, s) in scopes.iter().enumerate() {
        if !validate::is_valid_name_token(&s.name) {
            e.add(
                format!("scopes[{i}].name"),
                "lowercase letters, digits and ':_-.', 1 to 64 characters",
            );
        } else if scopes[..i].iter().any(|o| o.name == s.name) {
            e.add(format!("scopes[{i}].name"), "duplicate scope");
        }
        if s.description.chars().count() > 300 {
            e.add(
                format!("scopes[{i}].description"),
                "must be at most 300 characters",
            );
        }
    }
}

fn check_token_types(e: &mut Errors, types: &[String]) {
    if types.is_empty() {
        e.add("token_types", "must name at least one token type");
    }
    for (i, t) in types.iter().enumerate() {
        if !validate::is_valid_name_token(t) {
            e.add(
                format!("token_types[{i}]"),
                "lowercase letters, digits and ':_-.', 1 to 64 characters",
            );
        }
    }
}

fn check_upstream(e: &mut Errors, upstream: &str) {
    if !validate::is_valid_upstream(upstream) {
        e.add(
            "upstream",
            "must be an absolute http:// or https:// URL: a host, an optional port and path, no user, query or fragment",
        );
    }
}

fn check_hosts(e: &mut Errors, hosts: &[String]) {
    if hosts.len() > validate::HOSTS_MAX {
        e.add(
            "hosts",
            format!("must have at most {} entries", validate::HOSTS_MAX),
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        if !validate::is_valid_host(h) {
            e.add(
                format!("hosts[{i}]"),
                "must be a lowercase host name (letters, digits, '.' and '-') without a port",
            );
        } else if hosts[..i].contains(h) {
            e.add(format!("hosts[{i}]"), "duplicate host");
        }
    }
}

/// Checks the routes and stores their prefixes in the form the gateway compares request paths in
/// (see [`crate::domain::path`]), so that `/api//v3/` and `/api/v3/` are one route.
fn check_routes(
    e: &mut Errors,
    routes: &mut [Route],
    api_scopes: &[ScopeDef],
    api_types: &[String],
) {
    for (i, r) in routes.iter_mut().enumerate() {
        match crate::domain::path::normalize(&r.path_prefix) {
            Some(p) if r.path_prefix.len() <= 1024 && validate::is_url_path(&r.path_prefix) => {
                r.path_prefix = p;
            }
            _ => e.add(
                format!("routes[{i}].path_prefix"),
                "must be '/' followed by up to 1023 URL path characters",
            ),
        }
        for (j, s) in r.required_scopes.iter().enumerate() {
            if !api_scopes.iter().any(|d| &d.name == s) {
                e.add(
                    format!("routes[{i}].required_scopes[{j}]"),
                    "is not in the API's scope catalogue",
                );
            }
        }
        for (j, t) in r.token_types.iter().enumerate() {
            if !api_types.contains(t) {
                e.add(
                    format!("routes[{i}].token_types[{j}]"),
                    format!(
                        "must be one of the API's token types: {}",
                        api_types.join(", ")
                    ),
                );
            }
        }
        for (j, m) in r.methods.iter().enumerate() {
            if !(1..=16).contains(&m.len()) || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                e.add(
                    format!("routes[{i}].methods[{j}]"),
                    "must be an uppercase HTTP method",
                );
            }
        }
    }
}

pub async fn create(ctx: &Ctx, caller: &Caller, input: CreateApi) -> Result<Api> {
    caller.require(authz::WRITE_APIS)?;
    let mut e = Errors::default();
    let name = validate::text(&mut e, "name", &input.name, validate::NAME_MAX);
    if !validate::is_valid_slug(&input.slug) {
        e.add("slug", "lowercase letters, digits and '-', 1 to 63 characters, starting with a letter or digit");
    } else if input.slug == MANAGEMENT_API_SLUG {
        e.add(
            "slug",
            "'keyward' is reserved for the built-in management API",
        );
    }
    let (live, test) = match &input.key_prefix {
        Some(p) => (
            p.live.clone().unwrap_or_else(|| "kw_live_".into()),
            p.test.clone().unwrap_or_else(|| "kw_test_".into()),
        ),
        None => ("kw_live_".into(), "kw_test_".into()),
    };
    check_prefix(&mut e, "key_prefix.live", &live);
    check_prefix(&mut e, "key_prefix.test", &test);
    let scopes = input.scopes.unwrap_or_default();
    check_catalogue(&mut e, &scopes);
    let token_types = input
        .token_types
        .unwrap_or_else(|| BUILT_IN_TOKEN_TYPES.iter().map(|s| s.to_string()).collect());
    check_token_types(&mut e, &token_types);
    if let Some(rl) = &input.default_rate_limit {
        validate::rate_limit(&mut e, "default_rate_limit", rl);
    }
    if let Some(u) = &input.upstream {
        check_upstream(&mut e, u);
    }
    let hosts = input.hosts.unwrap_or_default();
    check_hosts(&mut e, &hosts);
    let mut routes = input.routes.unwrap_or_default();
    check_routes(&mut e, &mut routes, &scopes, &token_types);
    e.finish(())?;
    let api = Api {
        id: new_id("api"),
        org_id: caller.org_id.clone(),
        name,
        slug: input.slug,
        prefix_live: live,
        prefix_test: test,
        scopes,
        token_types,
        accept_x_api_key: input.accept_x_api_key.unwrap_or(false),
        default_rate_limit: input.default_rate_limit,
        upstream: input.upstream,
        hosts,
        routes,
        created_at: ctx.now(),
    };
    let mut tx = ctx.store.begin().await?;
    match tx.create_api(&api).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(format!(
                "An API with the slug '{}' already exists.",
                api.slug
            )));
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        ctx,
        &mut tx,
        caller,
        "api.created",
        Target {
            kind: "api",
            id: &api.id,
            label: &api.slug,
        },
        json!({"name": api.name}),
    )
    .await?;
    tx.commit().await?;
    ctx.apis_changed
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(api)
}

pub async fn update(ctx: &Ctx, caller: &Caller, id: &str, patch: UpdateApi) -> Result<Api> {
    caller.require(authz::WRITE_APIS)?;
    let mut api = get(ctx, caller, id).await?;
    if !authz::api_changeable(&api) {
        return Err(ServiceError::Forbidden(
            "The built-in management API cannot be changed.".into(),
        ));
    }
    let mut e = Errors::default();
    let mut changed = Vec::new();
    if let Some(n) = &patch.name {
        api.name = validate::text(&mut e, "name", n, validate::NAME_MAX);
        changed.push("name");
    }
    if let Some(p) = &patch.key_prefix {
        if let Some(l) = &p.live {
            check_prefix(&mut e, "key_prefix.live", l);
            api.prefix_live = l.clone();
        }
        if let Some(t) = &p.test {
            check_prefix(&mut e, "key_prefix.test", t);
            api.prefix_test = t.clone();
        }
        changed.push("key_prefix");
    }
    if let Some(s) = patch.scopes {
        check_catalogue(&mut e, &s);
        api.scopes = s;
        changed.push("scopes");
    }
    if let Some(t) = patch.token_types {
        check_token_types(&mut e, &t);
        api.token_types = t;
        changed.push("token_types");
    }
    if let Some(x) = patch.accept_x_api_key {
        api.accept_x_api_key = x;
        changed.push("accept_x_api_key");
    }
    if let Some(rl) = patch.default_rate_limit {
        if let Some(rl) = &rl {
            validate::rate_limit(&mut e, "default_rate_limit", rl);
        }
        api.default_rate_limit = rl;
        changed.push("default_rate_limit");
    }
    if let Some(u) = patch.upstream {
        if let Some(u) = &u {
            check_upstream(&mut e, u);
        }
        api.upstream = u;
        changed.push("upstream");
    }
    if let Some(h) = patch.hosts {
        check_hosts(&mut e, &h);
        api.hosts = h;
        changed.push("hosts");
    }
    if let Some(r) = patch.routes {
        api.routes = r;
        changed.push("routes");
    }
    check_routes(&mut e, &mut api.routes, &api.scopes, &api.token_types);
    e.finish(())?;
    let mut tx = ctx.store.begin().await?;
    tx.update_api(&api).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "api.updated",
        Target {
            kind: "api",
            id: &api.id,
            label: &api.slug,
        },
        json!({"fields": changed}),
    )
    .await?;
    tx.commit().await?;
    ctx.verifier.invalidate_api(&api.id);
    ctx.apis_changed
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(api)
}
