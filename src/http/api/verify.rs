//! `POST /v1/keys/verify`: for backends that check keys themselves. Always 200 when the call
//! itself is authorized; the verdict is in the body.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::check::{Denial, RateDecision, Requirements};
use crate::domain::model::{Millis, normalize_ip};
use crate::domain::validate::FieldError;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{self, KeyView};
use crate::http::{AppState, BODY_LIMIT, Connection, auth, extract};
use crate::service::{self, Caller};
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
    verdict(&state, &caller.org_id, body, state.ctx.now()).await
}

/// `POST /v1/keys/verify` called with a management key, served without the router: the same
/// checks in the same order as [`verify_key`] (the caller, then the body, then the scope), without
/// building a [`Caller`]. It is the request Keyward answers most, so it gets the shortest path.
pub async fn serve(conn: &Connection, req: Request) -> Response {
    let state = &conn.state;
    let (parts, body) = req.into_parts();
    let answer = async {
        let token = auth::bearer(&parts)
            .map_err(ApiError::Denied)?
            .ok_or(ApiError::Denied(Denial::MissingCredentials))?;
        let ip = Some(normalize_ip(conn.peer.ip()));
        let remembered = Some(&conn.remembered);
        // From memory when it can (without building the futures that storage would need).
        let now = state.ctx.now();
        let caller = match auth::management_key_now(state, token, ip, remembered, now) {
            Ok(caller) => caller?,
            Err(pending) => {
                let resumed =
                    auth::resume_management_key(state, pending, token, ip, remembered, now);
                Box::pin(resumed).await?
            }
        };
        extract::require_json(&parts.headers)?;
        let body = extract::read_body(body, BODY_LIMIT).await?;
        let body: VerifyRequest = extract::parse_body(&body)?;
        service::require(Some(caller.key()), caller.owner(), "keys:verify")?;
        // The caller's verification read the clock for this request.
        verdict(state, &caller.key().org_id, body, caller.at).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// Checks the key of `body` for the organization `org_id` at `now` (the request's time) and writes
/// the verdict.
async fn verdict(
    state: &AppState,
    org_id: &str,
    body: VerifyRequest,
    now: Millis,
) -> Result<Response, ApiError> {
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
        org_id: Some(org_id),
        api_id: body.api_id.as_deref(),
        management: false,
    };
    let verifier = &state.ctx.verifier;
    let outcome = match verifier.verify_now(&body.key, scope, &req, cost, now) {
        Ok(outcome) => outcome,
        Err(pending) => {
            Box::pin(verifier.resume(pending, &body.key, scope, &req, cost, now)).await?
        }
    };
    // The key object is its rendering cached per key record plus the per-request fields, written
    // straight into the body, in the order of `VerifyResponse`, which documents (and a test checks)
    // the same shape.
    let mut body = Vec::with_capacity(1024);
    match &outcome {
        Ok(v) => {
            let outer = VerifyOuter {
                valid: true,
                code: "VALID",
                status: 200,
                detail: None,
                ratelimit: v.ratelimit.map(Into::into),
                quota: v.quota_remaining.map(|remaining| QuotaState { remaining }),
            };
            outer.write_head(&mut body);
            body.extend_from_slice(b",\"key\":");
            let fixed = v.cached.rendered(views::render_fixed);
            // This very request is the key's last use.
            let usage = Some((v.at, ip.map(normalize_ip)));
            views::write_key_json(&mut body, fixed, v.key(), now, usage, v.quota_remaining);
            outer.write_tail(&mut body);
        }
        Err(r) => {
            let outer = VerifyOuter {
                valid: false,
                code: r.denial.verify_code(),
                status: r.denial.status(),
                detail: Some(r.denial.detail()),
                ratelimit: r.ratelimit.map(Into::into),
                quota: None,
            };
            outer.write_head(&mut body);
            if let Some(cached) = &r.key {
                body.extend_from_slice(b",\"key\":");
                let fixed = cached.rendered(views::render_fixed);
                let usage = verifier.pending_touch(&cached.key.id);
                views::write_key_json(&mut body, fixed, &cached.key, now, usage, None);
            }
            outer.write_tail(&mut body);
        }
    }
    let mut res = Response::new(Body::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// The verdict's fields beside its key.
struct VerifyOuter {
    valid: bool,
    code: &'static str,
    status: u16,
    detail: Option<String>,
    ratelimit: Option<RateLimitState>,
    quota: Option<QuotaState>,
}

impl VerifyOuter {
    /// Opens the object and writes the fields before `key`.
    fn write_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.valid {
            b"{\"valid\":true,\"code\":\""
        } else {
            b"{\"valid\":false,\"code\":\""
        });
        out.extend_from_slice(self.code.as_bytes());
        out.extend_from_slice(b"\",\"status\":");
        views::push_int(out, self.status);
        if let Some(detail) = &self.detail {
            out.extend_from_slice(b",\"detail\":");
            views::push_str(out, detail);
        }
    }

    /// Writes the fields after `key` and closes the object.
    fn write_tail(&self, out: &mut Vec<u8>) {
        if let Some(r) = &self.ratelimit {
            out.extend_from_slice(b",\"ratelimit\":{\"limit\":");
            views::push_int(out, r.limit);
            out.extend_from_slice(b",\"remaining\":");
            views::push_int(out, r.remaining);
            out.extend_from_slice(b",\"reset_ms\":");
            views::push_int(out, r.reset_ms);
            out.push(b'}');
        }
        if let Some(q) = &self.quota {
            out.extend_from_slice(b",\"quota\":{\"remaining\":");
            views::push_int(out, q.remaining);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written verdict is the documented `VerifyResponse`, field for field.
    #[test]
    fn the_written_verdict_is_the_documented_verify_response() {
        let cases = [
            (true, "VALID", 200, None, Some((5, 4, 99)), Some(7)),
            (
                false,
                "RATE_LIMITED",
                429,
                Some("slow \"down\"\n"),
                Some((5, 0, 99)),
                None,
            ),
            (false, "NOT_FOUND", 404, Some("no such key"), None, None),
            (true, "VALID", 200, None, None, None),
        ];
        for (valid, code, status, detail, ratelimit, quota) in cases {
            let rl = |(limit, remaining, reset_ms)| RateLimitState {
                limit,
                remaining,
                reset_ms,
            };
            let outer = VerifyOuter {
                valid,
                code,
                status,
                detail: detail.map(str::to_owned),
                ratelimit: ratelimit.map(rl),
                quota: quota.map(|remaining| QuotaState { remaining }),
            };
            let mut out = Vec::new();
            outer.write_head(&mut out);
            outer.write_tail(&mut out);
            let written: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let documented = VerifyResponse {
                valid,
                code,
                status,
                detail: detail.map(str::to_owned),
                key: None,
                ratelimit: ratelimit.map(rl),
                quota: quota.map(|remaining| QuotaState { remaining }),
            };
            assert_eq!(written, serde_json::to_value(documented).unwrap(), "{code}");
        }
    }
}
