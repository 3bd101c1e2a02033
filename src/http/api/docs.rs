//! `GET /openapi.json` (OpenAPI 3.1, generated from the handlers) and `GET /docs`, a reference
//! rendered from the same document on the server, so it works without any CDN.

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::http::AppState;
use crate::http::api::{
    apis, audit, events, health, ip_acls, key_groups, keys, metrics, org, usage, users, verify,
    webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyward",
        description = "Self-hosted API key service: issue, verify, rotate and revoke API keys.\n\n\
            Authenticate with a management key: `Authorization: Bearer kw_live_...`. Every error is \
            RFC 9457 `application/problem+json` with a stable `code`; see the Problem schema.",
        license(name = "Apache-2.0")
    ),
    paths(
        keys::create_key, keys::list_keys, keys::get_key, keys::update_key, keys::rotate_key,
        keys::revoke_key, keys::delete_key, keys::reveal_key_secret, verify::verify_key,
        apis::list_apis, apis::create_api, apis::get_api, apis::update_api,
        audit::list_audit_log,
        events::list_security_events,
        usage::get_account_usage, usage::get_key_usage,
        users::list_users, users::create_user, users::get_user, users::update_user, users::delete_user,
        org::get_org, org::update_org,
        ip_acls::list_ip_acls, ip_acls::create_ip_acl, ip_acls::get_ip_acl, ip_acls::update_ip_acl,
        ip_acls::delete_ip_acl,
        key_groups::list_key_groups, key_groups::create_key_group, key_groups::get_key_group,
        key_groups::update_key_group, key_groups::delete_key_group,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook,
        webhooks::update_webhook, webhooks::delete_webhook, webhooks::list_deliveries,
        webhooks::redeliver,
        health::healthz, health::readyz, metrics::metrics, openapi, docs,
    ),
    components(schemas(
        crate::http::error::Problem,
        crate::domain::validate::FieldError,
        crate::domain::schema::KeyStatusFilter
    )),
    modifiers(&BearerAuth, &CommonAnswers),
    tags(
        (name = "keys", description = "Create, list, rotate, revoke and verify keys"),
        (name = "apis", description = "Protected APIs: prefixes, scope catalogues, token types"),
        (name = "members", description = "Members of the organization and their roles; service accounts"),
        (name = "access", description = "Named IP ACLs and key groups shared by many keys"),
        (name = "organization", description = "Plan, API access and key policies"),
        (name = "audit", description = "The append-only audit log"),
        (name = "security", description = "Security events: refused keys, new networks, usage spikes, old keys in their grace period, exposed keys"),
        (name = "usage", description = "Verifications counted per key, by minute, hour or day and by verdict code"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "webhooks", description = "Signed event deliveries (Standard Webhooks)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "management_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A management key (a key of the built-in `keyward` API)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "dashboard_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::service::sessions::SESSION_COOKIE,
                "A signed-in dashboard session: acts with the member's role. POST, PATCH and \
                 DELETE must also send the session's CSRF token in `X-CSRF-Token`.",
            ))),
        );
        // Every operation that takes a management key also takes a session.
        for op in operations(openapi) {
            if let Some(security) = op.security.as_mut().filter(|s| !s.is_empty()) {
                security.push(SecurityRequirement::new(
                    "dashboard_session",
                    Vec::<String>::new(),
                ));
            }
        }
    }
}

/// The answers any operation may give besides its own, documented on each: every request passes the
/// same pipeline (head and body limits, timeouts), and every authenticated one the same
/// authentication and throttling. A body whose schema requires no field may be left out (it reads
/// as `{}`).
struct CommonAnswers;

impl CommonAnswers {
    fn problem(description: &str) -> RefOr<Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    }
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let optional_bodies: Vec<String> = openapi
            .components
            .as_ref()
            .map(|c| {
                c.schemas
                    .iter()
                    .filter(
                        |(_, s)| matches!(s, RefOr::T(Schema::Object(o)) if o.required.is_empty()),
                    )
                    .map(|(name, _)| format!("#/components/schemas/{name}"))
                    .collect()
            })
            .unwrap_or_default();
        for op in operations(openapi) {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let mut common = vec![
                (
                    "400",
                    "Malformed request: JSON that does not parse, a bad query or path parameter",
                ),
                ("414", "The URI exceeds 8 KiB"),
                ("431", "The headers exceed 100 fields or 32 KiB"),
                (
                    "500",
                    "Something went wrong on the server's side; quote the request id",
                ),
                (
                    "503",
                    "Storage is unreachable, or the answer took longer than the request timeout",
                ),
            ];
            if secured {
                common.extend([
                        ("401", "No credentials (`missing_credentials`), or refused ones; `WWW-Authenticate` says why"),
                        ("403", "The caller's key or role may not do this (`forbidden`)"),
                        ("429", "Throttled after too many refused credentials from this address, or the management key's rate limit (`rate_limited`, `Retry-After`)"),
                    ]);
            }
            if let Some(body) = &mut op.request_body {
                common.extend([
                        ("408", "The body did not arrive within the request timeout; the connection is closed"),
                        ("413", "The body exceeds 64 KiB (refused before it is read); the connection is closed"),
                        ("422", "A field is invalid (`validation_failed`); `errors` names each"),
                    ]);
                let optional = body.content.values().all(|c| {
                        matches!(&c.schema, Some(RefOr::Ref(r)) if optional_bodies.contains(&r.ref_location))
                    });
                if optional {
                    body.required = Some(Required::False);
                }
            }
            for (status, description) in common {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| Self::problem(description));
            }
        }
    }
}

/// Every operation of the document.
fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// The OpenAPI document as JSON text, pretty-printed (as committed in `openapi.json`).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .expect("the OpenAPI document serializes")
}

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

/// This document: OpenAPI 3.1 of the whole HTTP surface.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&openapi_json()).expect("valid JSON"))
}

/// The API reference as HTML, rendered from this document on the server.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML reference", content_type = "text/html")))]
pub async fn docs() -> Html<String> {
    Html(render(
        &serde_json::from_str(&openapi_json()).expect("valid JSON"),
    ))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn schema_name(v: &serde_json::Value) -> String {
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str()) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(t) = v.get("type") {
        let t = match t {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            other => other.as_str().unwrap_or("").to_owned(),
        };
        if t.contains("array") {
            if let Some(items) = v.get("items") {
                return format!("array of {}", schema_name(items));
            }
        }
        return esc(&t);
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(serde_json::Value::Array(a)) = v.get(k) {
            return a.iter().map(schema_name).collect::<Vec<_>>().join(" | ");
        }
    }
    "object".into()
}

/// Renders the reference: endpoints, then schemas.
fn render(doc: &serde_json::Value) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>Keyward API reference</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#1d2330}\
         code,pre{font-family:ui-monospace,monospace}section{border-top:1px solid #ddd;padding:.5rem 0}\
         .m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}\
         table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
         </style></head><body><h1>Keyward API reference</h1>",
    );
    let info = &doc["info"];
    let _ = write!(
        out,
        "<p>Version {} · <a href=\"/openapi.json\">openapi.json</a></p><p>{}</p><h2>Endpoints</h2>",
        esc(info["version"].as_str().unwrap_or("")),
        esc(info["description"].as_str().unwrap_or(""))
    );
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                let _ = write!(
                    out,
                    "<section><h3><span class=\"m\">{}</span> <code>{}</code></h3>",
                    esc(method),
                    esc(path)
                );
                if let Some(d) = op["description"].as_str().or(op["summary"].as_str()) {
                    let _ = write!(out, "<p>{}</p>", esc(d));
                }
                if let Some(sec) = op["security"].as_array() {
                    let scopes: Vec<String> = sec
                        .iter()
                        .filter_map(|s| s.as_object())
                        .flat_map(|o| o.values())
                        .filter_map(|v| v.as_array())
                        .flatten()
                        .filter_map(|s| s.as_str().map(esc))
                        .collect();
                    if !scopes.is_empty() {
                        let _ = write!(out, "<p>Scope: <code>{}</code></p>", scopes.join(", "));
                    }
                }
                if let Some(params) = op["parameters"].as_array() {
                    out.push_str("<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th></tr>");
                    for p in params {
                        let _ = write!(
                            out,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            schema_name(&p["schema"]),
                            esc(p["description"].as_str().unwrap_or(""))
                        );
                    }
                    out.push_str("</table>");
                }
                if let Some(body) =
                    op["requestBody"]["content"]["application/json"]["schema"].as_object()
                {
                    let _ = write!(
                        out,
                        "<p>Body: {}</p>",
                        schema_name(&serde_json::Value::Object(body.clone()))
                    );
                }
                if let Some(resps) = op["responses"].as_object() {
                    out.push_str(
                        "<table><tr><th>Status</th><th>Description</th><th>Body</th></tr>",
                    );
                    for (status, r) in resps {
                        let body = r["content"]
                            .as_object()
                            .and_then(|c| c.values().next())
                            .map(|m| schema_name(&m["schema"]))
                            .unwrap_or_default();
                        let _ = write!(
                            out,
                            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(status),
                            esc(r["description"].as_str().unwrap_or("")),
                            body
                        );
                    }
                    out.push_str("</table>");
                }
                out.push_str("</section>");
            }
        }
    }
    out.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            let _ = write!(out, "<section id=\"schema-{0}\"><h3>{0}</h3>", esc(name));
            if let Some(d) = s["description"].as_str() {
                let _ = write!(out, "<p>{}</p>", esc(d));
            }
            if let Some(props) = s["properties"].as_object() {
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                out.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
                for (field, p) in props {
                    let _ = write!(
                        out,
                        "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(field),
                        if required.contains(&field.as_str()) {
                            " *"
                        } else {
                            ""
                        },
                        schema_name(p),
                        esc(p["description"].as_str().unwrap_or(""))
                    );
                }
                out.push_str("</table>");
            } else if let Some(e) = s["enum"].as_array() {
                let vals: Vec<String> = e.iter().map(|v| esc(&v.to_string())).collect();
                let _ = write!(out, "<p>One of: <code>{}</code></p>", vals.join(", "));
            }
            out.push_str("</section>");
        }
    }
    out.push_str("</body></html>");
    out
}
