//! `POST /v1/keys/verify`: for backends that check keys themselves. Always 200 when the call
//! itself is authorized; the verdict is in the body.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::check::{RateDecision, Requirements};
use crate::domain::model::normalize_ip;
use crate::domain::validate::{self, Errors};
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{self, KeyRecordView, KeyStateView, KeyView};
use crate::observe::{Observation, Source};
use crate::service::Caller;
use crate::verify::{Presented, Scope};

/// Most units one verification may charge.
pub const COST_MAX: u32 = 1000;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/keys/verify", post(verify_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key presented to your service, whatever it is: a malformed one is a verdict, not an
    /// error.
    pub key: String,
    /// Only keys of this API count; another API's key answers `NOT_FOUND`.
    pub api_id: Option<String>,
    /// Scopes the route needs.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schema::NameToken>, max_items = 100)]
    pub required_scopes: Vec<String>,
    /// The address your client called from, checked against the key's allowlist.
    #[schema(value_type = Option<crate::domain::schema::IpAddress>)]
    pub ip: Option<String>,
    /// The token type the route needs (exact match).
    #[schema(value_type = Option<crate::domain::schema::NameToken>)]
    pub token_type: Option<String>,
    /// The resource the request reaches, `type:id` (e.g. `project:acme-web`): a key that carries
    /// resource patterns and matches none answers `RESOURCE_NOT_ALLOWED`, checked right after
    /// scope.
    #[schema(value_type = Option<crate::domain::schema::Resource>)]
    pub resource: Option<String>,
    /// Units to charge against rate limit and quota; 0 to 1000, default 1.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "crate::domain::strict::option_int")]
    pub cost: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitState {
    pub limit: u32,
    pub remaining: u32,
    /// When the allowance is full again, Unix milliseconds.
    pub reset_ms: i64,
}

impl From<RateDecision> for RateLimitState {
    fn from(d: RateDecision) -> Self {
        RateLimitState {
            limit: d.limit,
            remaining: d.remaining,
            reset_ms: d.reset_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaState {
    pub remaining: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    /// `VALID`, `MALFORMED`, `NOT_FOUND`, `REVOKED`, `EXPIRED`, `OWNER_DISABLED`, `PLAN_INACTIVE`,
    /// `IP_NOT_ALLOWED`, `WRONG_TOKEN_TYPE`, `INSUFFICIENT_SCOPE`, `RESOURCE_NOT_ALLOWED`,
    /// `RATE_LIMITED`, `QUOTA_EXCEEDED`.
    pub code: &'static str,
    /// The HTTP status your service should answer with.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaState>,
}

#[utoipa::path(post, path = "/v1/keys/verify", tag = "keys", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The verdict", body = VerifyResponse),
        (status = 401, description = "The calling management key itself was refused", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:verify"])))]
pub async fn verify_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    caller.require("keys:verify")?;
    let (ip, cost) = body.check()?;
    let presented = Presented {
        token: &body.key,
        scope: Scope {
            org_id: Some(&caller.org_id),
            api_id: body.api_id.as_deref(),
            management: false,
            prefixes: &[],
        },
        req: Requirements {
            client_ip: ip,
            token_type: body.token_type.as_deref(),
            token_types: &[],
            scopes: &body.required_scopes,
            resource: body.resource.as_deref(),
            skip_plan: false,
        },
        cost,
    };
    let verifier = &state.ctx.verifier;
    let now = state.ctx.now();
    let outcome = verifier.check_at(&presented, now).await?;
    let (code, observed_key) = match &outcome {
        Ok(v) => ("VALID", Some(&*v.key)),
        Err(r) => (r.denial.verify_code(), r.key.as_deref()),
    };
    state.ctx.observers.observe(&Observation {
        source: Source::Verify,
        org_id: Some(&caller.org_id),
        key: observed_key,
        code,
        client_ip: ip,
        at: now,
    });
    let (verdict, key) = match &outcome {
        Ok(v) => {
            // This very request is the key's last use.
            let usage = Some((v.at, ip.map(|ip| normalize_ip(ip).to_string())));
            let mut key_state = KeyStateView::new(&v.key, now, usage);
            if let Some(left) = v.quota_remaining {
                key_state.quota.remaining = Some(left);
            }
            let verdict = VerifyResponse {
                valid: true,
                code: "VALID",
                status: 200,
                detail: None,
                key: None,
                ratelimit: v.ratelimit.map(Into::into),
                quota: v.quota_remaining.map(|remaining| QuotaState { remaining }),
            };
            (verdict, Some((&v.key, key_state)))
        }
        Err(r) => {
            let verdict = VerifyResponse {
                valid: false,
                code: r.denial.verify_code(),
                status: r.denial.status(),
                detail: Some(r.denial.detail()),
                key: None,
                ratelimit: r.ratelimit.map(Into::into),
                quota: None,
            };
            let key = r.key.as_ref().map(|k| {
                let usage = verifier
                    .pending_touch(&k.id)
                    .map(|(at, ip)| (at, ip.map(|ip| ip.to_string())));
                (k, KeyStateView::new(k, now, usage))
            });
            (verdict, key)
        }
    };
    let key = key.map(|(cached, key_state)| {
        views::key_json(cached.rendered(KeyRecordView::render), &key_state)
    });
    let mut res = Response::new(Body::from(verdict_body(&verdict, key.as_deref())));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// The verdict's JSON: serde writes the verdict, and its key object (see [`views::key_json`]),
/// already JSON, is its last field.
fn verdict_body(verdict: &VerifyResponse<'_>, key: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + key.map_or(0, str::len));
    serde_json::to_writer(&mut out, verdict).expect("a verdict serializes");
    if let Some(key) = key {
        out.pop();
        out.extend_from_slice(b",\"key\":");
        out.extend_from_slice(key.as_bytes());
        out.push(b'}');
    }
    out
}

impl VerifyRequest {
    /// The client address and cost, once every field is valid. What the request asks for is
    /// checked for its form only, and never repeated in an error: it could be anything a client
    /// sent, a secret included.
    fn check(&self) -> Result<(Option<IpAddr>, u32), ApiError> {
        let mut e = Errors::default();
        let ip = match self.ip.as_deref().map(|s| s.trim().parse::<IpAddr>()) {
            Some(Ok(ip)) => Some(ip),
            Some(Err(_)) => {
                e.add("ip", "must be an IPv4 or IPv6 address");
                None
            }
            None => None,
        };
        let cost = self.cost.unwrap_or(1);
        if cost > COST_MAX {
            e.add("cost", format!("must be between 0 and {COST_MAX}"));
        }
        if let Some(t) = &self.token_type {
            if !validate::is_valid_name_token(t) {
                e.add("token_type", validate::NAME_TOKEN_RULE);
            }
        }
        if self.required_scopes.len() > validate::SCOPES_MAX {
            e.add(
                "required_scopes",
                format!("must have at most {} entries", validate::SCOPES_MAX),
            );
        }
        for (i, s) in self.required_scopes.iter().enumerate() {
            if !validate::is_valid_name_token(s) {
                e.add(format!("required_scopes[{i}]"), validate::NAME_TOKEN_RULE);
            }
        }
        if let Some(r) = &self.resource {
            if !crate::domain::resource::is_valid_resource(r) {
                e.add("resource", crate::domain::resource::RESOURCE_RULE);
            }
        }
        e.finish((ip, cost)).map_err(ApiError::Validation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict with its key appended is the documented `VerifyResponse`, field for field.
    #[test]
    fn a_verdict_with_its_key_appended_is_the_documented_response() {
        let key = views::tests::sample_key();
        let verdict = |key| VerifyResponse {
            valid: false,
            code: "RATE_LIMITED",
            status: 429,
            detail: Some("slow \"down\"".into()),
            key,
            ratelimit: Some(RateLimitState {
                limit: 5,
                remaining: 0,
                reset_ms: 99,
            }),
            quota: None,
        };
        let usage = Some((1_800, Some("192.0.2.1".to_owned())));
        let state = KeyStateView::new(&key, 1_700, usage.clone());
        let spliced = verdict_body(
            &verdict(None),
            Some(&views::key_json(&KeyRecordView::render(&key), &state)),
        );
        let spliced: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
        let documented = verdict(Some(KeyView::with_usage(&key, 1_700, usage)));
        assert_eq!(spliced, serde_json::to_value(documented).unwrap());
        let bare: serde_json::Value =
            serde_json::from_slice(&verdict_body(&verdict(None), None)).unwrap();
        assert_eq!(bare, serde_json::to_value(verdict(None)).unwrap());
    }
}
