//! `POST /v1/keys/verify`: for backends that check keys themselves. Always 200 when the call
//! itself is authorized; the verdict is in the body.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::check::{RateDecision, Requirements};
use crate::domain::model::{Key, normalize_ip};
use crate::domain::validate::FieldError;
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{self, KeyView};
use crate::service::Caller;
use crate::verify::Scope;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/keys/verify", post(verify_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The key presented to your service.
    pub key: String,
    /// Only keys of this API count; another API's key answers `NOT_FOUND`.
    pub api_id: Option<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The address your client called from, checked against the key's allowlist.
    pub ip: Option<String>,
    /// The token type the route needs (exact match).
    pub token_type: Option<String>,
    /// Units to charge against rate limit and quota; 0 to 1000, default 1.
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
    /// `IP_NOT_ALLOWED`, `WRONG_TOKEN_TYPE`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`, `QUOTA_EXCEEDED`.
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
    let mut errors = Vec::new();
    let ip = match body.ip.as_deref() {
        Some(s) => match s.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                errors.push(FieldError {
                    field: "ip".into(),
                    message: "must be an IPv4 or IPv6 address".into(),
                });
                None
            }
        },
        None => None,
    };
    let cost = body.cost.unwrap_or(1);
    if cost > 1000 {
        errors.push(FieldError {
            field: "cost".into(),
            message: "must be between 0 and 1000".into(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let req = Requirements {
        client_ip: ip,
        token_type: body.token_type.as_deref(),
        scopes: &body.required_scopes,
        skip_plan: false,
    };
    let scope = Scope {
        org_id: Some(&caller.org_id),
        api_id: body.api_id.as_deref(),
        management: false,
    };
    let outcome = state
        .ctx
        .verifier
        .verify(&body.key, scope, &req, cost)
        .await?;
    let now = state.ctx.now();
    let verifier = &state.ctx.verifier;
    // The key object is spliced from a rendering cached per key record plus the per-request
    // fields; `VerifyResponse` documents (and a test checks) the same shape.
    let key_json = |k: &Arc<Key>, quota: Option<i64>| {
        let fixed = verifier.rendered(k, views::render_fixed);
        views::splice_key_json(&fixed, k, now, verifier.pending_touch(&k.id), quota)
    };
    let (outer, key) = match &outcome {
        Ok(v) => (
            VerifyOuter {
                valid: true,
                code: "VALID",
                status: 200,
                detail: None,
                ratelimit: v.ratelimit.map(Into::into),
                quota: v.quota_remaining.map(|remaining| QuotaState { remaining }),
            },
            // This very request is the key's last use.
            Some(views::splice_key_json(
                &verifier.rendered(&v.key, views::render_fixed),
                &v.key,
                now,
                Some((v.at, ip.map(|ip| normalize_ip(ip).to_string()))),
                v.quota_remaining,
            )),
        ),
        Err(r) => (
            VerifyOuter {
                valid: false,
                code: r.denial.verify_code(),
                status: r.denial.status(),
                detail: Some(r.denial.detail()),
                ratelimit: r.ratelimit.map(Into::into),
                quota: None,
            },
            r.key.as_ref().map(|k| key_json(k, None)),
        ),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        verdict_json(&outer, key.as_deref()),
    )
        .into_response())
}

/// The verdict without its key, which is added by [`verdict_json`].
#[derive(Serialize)]
struct VerifyOuter {
    valid: bool,
    code: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratelimit: Option<RateLimitState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaState>,
}

/// `{"valid":...}` with `"key":<key>` joined in front when there is a key.
fn verdict_json(outer: &VerifyOuter, key: Option<&str>) -> String {
    let outer = serde_json::to_string(outer).expect("plain data serializes");
    match key {
        Some(key) => {
            let mut out = String::with_capacity(outer.len() + key.len() + 8);
            out.push_str("{\"key\":");
            out.push_str(key);
            out.push(',');
            out.push_str(&outer[1..]);
            out
        }
        None => outer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spliced_verdict_is_the_documented_verify_response() {
        let outer = VerifyOuter {
            valid: false,
            code: "RATE_LIMITED",
            status: 429,
            detail: Some("slow down".into()),
            ratelimit: Some(RateLimitState {
                limit: 5,
                remaining: 0,
                reset_ms: 99,
            }),
            quota: None,
        };
        let spliced: serde_json::Value =
            serde_json::from_str(&verdict_json(&outer, Some("{\"id\":\"key_1\"}"))).unwrap();
        let documented = serde_json::json!({
            "valid": false, "code": "RATE_LIMITED", "status": 429, "detail": "slow down",
            "key": {"id": "key_1"}, "ratelimit": {"limit": 5, "remaining": 0, "reset_ms": 99}
        });
        assert_eq!(spliced, documented);
        let bare: serde_json::Value = serde_json::from_str(&verdict_json(&outer, None)).unwrap();
        assert!(bare.get("key").is_none());
        // The documented struct serializes to the same shape.
        let doc = VerifyResponse {
            valid: false,
            code: "RATE_LIMITED",
            status: 429,
            detail: Some("slow down".into()),
            key: None,
            ratelimit: Some(RateLimitState {
                limit: 5,
                remaining: 0,
                reset_ms: 99,
            }),
            quota: None,
        };
        assert_eq!(serde_json::to_value(doc).unwrap(), bare);
    }
}
