//! The HTTP layer's one error type. Every error leaves as RFC 9457 `application/problem+json` with
//! the contract's `code` and the request id. A 500 is logged with its cause; the client gets a
//! generic body that reveals nothing.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::check::{Denial, RateDecision};
use crate::domain::validate::FieldError;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::verify::VerifyError;

tokio::task_local! {
    /// The id of the request being handled, for error bodies and logs.
    pub static REQUEST_ID: RequestId;
}

/// A request id, `req_` and 24 hex digits from the OS-seeded CSPRNG. Plain bytes, so that giving
/// every request one costs no allocation.
#[derive(Clone, Copy)]
pub struct RequestId([u8; 28]);

impl RequestId {
    pub fn random() -> Self {
        let mut random = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
        let mut id = *b"req_000000000000000000000000";
        hex::encode_to_slice(random, &mut id[4..]).expect("24 hex digits fit");
        RequestId(id)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

/// The current request's id, or an empty string outside a request.
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// RFC 9457 problem details, as every error is answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    /// A stable machine code (contract section 4).
    pub code: String,
    pub detail: String,
    pub request_id: String,
    /// Present on 422 `validation_failed`: each invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("key in URL")]
    KeyInUrl,
    #[error("denied: {}", .0.code())]
    Denied(Denial),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The caller lacks a management scope.
    #[error("forbidden: missing scope {scope}")]
    MissingScope { scope: String, detail: String },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body did not arrive within the request timeout.
    #[error("request timeout")]
    RequestTimeout,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("URI too long")]
    UriTooLong,
    /// Failed-auth throttling: the client presented too many refused credentials.
    #[error("throttled")]
    Throttled { limit: u32, retry_after_ms: i64 },
    /// The answer took longer than the request timeout.
    #[error("timed out")]
    Timeout,
    /// An error answered by a part that does not speak problem+json (a framework rejection),
    /// rewritten with a generic detail that repeats nothing of the request.
    #[error("status {0}")]
    Status(StatusCode),
    #[error("internal error: {0}")]
    Internal(String),
    /// A dependency (storage) is unreachable; for readiness.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The gateway could not reach the upstream, or it broke off its answer.
    #[error("bad gateway")]
    BadGateway,
    /// The upstream did not answer within the gateway's upstream timeout.
    #[error("gateway timeout")]
    GatewayTimeout,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::KeyInUrl => StatusCode::BAD_REQUEST,
            ApiError::Denied(d) => {
                StatusCode::from_u16(d.status()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            ApiError::Forbidden(_) | ApiError::MissingScope { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Status(status) => *status,
            ApiError::BadGateway => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_)
            | ApiError::PayloadTooLarge
            | ApiError::MethodNotAllowed
            | ApiError::RequestTimeout
            | ApiError::HeadersTooLarge
            | ApiError::UriTooLong => "bad_request",
            ApiError::KeyInUrl => "key_in_url",
            ApiError::Denied(d) => d.code(),
            ApiError::Forbidden(_) | ApiError::MissingScope { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Internal(_) => "internal_error",
            ApiError::Unavailable(_) | ApiError::Timeout => "unavailable",
            ApiError::Throttled { .. } => "rate_limited",
            ApiError::BadGateway => "bad_gateway",
            ApiError::GatewayTimeout => "gateway_timeout",
            ApiError::Status(status) => match status.as_u16() {
                401 => "missing_credentials",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                422 => "validation_failed",
                429 => "rate_limited",
                503 => "unavailable",
                500..=599 => "internal_error",
                _ => "bad_request",
            },
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest(d)
            | ApiError::Forbidden(d)
            | ApiError::Conflict(d)
            | ApiError::MissingScope { detail: d, .. } => d.clone(),
            ApiError::KeyInUrl => {
                "An API key was sent in the URL. Keys are accepted only in the Authorization \
                                   header; this key has been flagged as exposed: rotate it."
                    .into()
            }
            ApiError::Denied(d) => d.detail(),
            ApiError::NotFound(what) => format!("No such {what}."),
            ApiError::Validation(errors) => format!(
                "{} field{} invalid: {}",
                errors.len(),
                if errors.len() == 1 { " is" } else { "s are" },
                errors
                    .iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ApiError::PayloadTooLarge => {
                format!("The request body exceeds {} bytes.", super::BODY_LIMIT)
            }
            ApiError::MethodNotAllowed => "This method is not allowed on this path.".into(),
            ApiError::Internal(_) => {
                "Something went wrong on our side. Quote the request id if you report it.".into()
            }
            ApiError::Unavailable(_) => {
                "Storage is unreachable; this instance is not ready.".into()
            }
            ApiError::RequestTimeout => {
                "The request body did not arrive in time; the connection is closed.".into()
            }
            ApiError::HeadersTooLarge => format!(
                "The request's headers exceed {} bytes or {} fields.",
                super::HEADERS_MAX_BYTES,
                super::HEADERS_MAX_COUNT
            ),
            ApiError::UriTooLong => {
                format!("The request's URI exceeds {} bytes.", super::URI_MAX_BYTES)
            }
            ApiError::Throttled { retry_after_ms, .. } => format!(
                "Too many refused credentials from this address; retry in {} s.",
                retry_after_s(*retry_after_ms)
            ),
            ApiError::Timeout => {
                "The answer took too long; nothing more will be done for this request.".into()
            }
            ApiError::BadGateway => {
                "The upstream service could not be reached, or broke off its answer.".into()
            }
            ApiError::GatewayTimeout => "The upstream service did not answer in time.".into(),
            ApiError::Status(status) => match status.as_u16() {
                400 => "The request is malformed (its path, query or headers could not be read)."
                    .into(),
                404 => "No such route.".into(),
                405 => "This method is not allowed on this path.".into(),
                415 => "The request's content type is not supported.".into(),
                s if s >= 500 => {
                    "Something went wrong on our side. Quote the request id if you report it."
                        .into()
                }
                _ => status
                    .canonical_reason()
                    .map_or_else(|| "The request was refused.".into(), |r| format!("{r}.")),
            },
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().to_owned(),
            detail: self.detail(),
            request_id: request_id(),
            errors: match self {
                ApiError::Validation(e) => Some(e.clone()),
                _ => None,
            },
        }
    }
}

fn retry_after_s(ms: i64) -> i64 {
    ((ms + 999) / 1000).max(1)
}

/// The RFC 6750 challenge of an answer refusing a caller: `error` only when credentials were
/// presented, `scope` naming what a 403 lacks.
fn challenge(err: &ApiError) -> Option<String> {
    let quoted = |s: &str| s.replace(['"', '\\'], "'");
    match err {
        ApiError::Denied(Denial::MissingCredentials) => Some("Bearer realm=\"keyward\"".into()),
        ApiError::Denied(d) if d.status() == 401 => Some(format!(
            "Bearer realm=\"keyward\", error=\"invalid_token\", error_description=\"{}\"",
            quoted(&d.detail())
        )),
        ApiError::Denied(Denial::InsufficientScope { scope }) => Some(match scope {
            Some(s) => format!(
                "Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"{}\"",
                quoted(s)
            ),
            None => "Bearer realm=\"keyward\", error=\"insufficient_scope\"".into(),
        }),
        ApiError::MissingScope { scope, .. } => Some(format!(
            "Bearer realm=\"keyward\", error=\"insufficient_scope\", scope=\"{}\"",
            quoted(scope)
        )),
        ApiError::Forbidden(_) => {
            Some("Bearer realm=\"keyward\", error=\"insufficient_scope\"".into())
        }
        ApiError::Status(s) if *s == StatusCode::UNAUTHORIZED => {
            Some("Bearer realm=\"keyward\"".into())
        }
        _ => None,
    }
}

/// Adds the `RateLimit-*` headers of a decision (and `Retry-After` when refused).
pub fn rate_limit_headers(headers: &mut HeaderMap, d: &RateDecision) {
    let num =
        |n: i64| HeaderValue::from_str(&n.to_string()).expect("digits are a valid header value");
    headers.insert("ratelimit-limit", num(i64::from(d.limit)));
    headers.insert("ratelimit-remaining", num(i64::from(d.remaining)));
    headers.insert("ratelimit-reset", num(d.reset_in_s()));
    if !d.allowed {
        headers.insert(header::RETRY_AFTER, num(d.retry_after_s().max(1)));
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = &self {
            tracing::error!(request_id = %request_id(), %cause, "internal error");
        }
        let status = self.status();
        let mut res = (status, Json(self.problem())).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = challenge(&self).and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        match &self {
            ApiError::Denied(Denial::RateLimited(d)) => rate_limit_headers(headers, d),
            ApiError::Throttled {
                limit,
                retry_after_ms,
            } => {
                let secs = retry_after_s(*retry_after_ms);
                let num = |n: i64| HeaderValue::from(n);
                headers.insert(header::RETRY_AFTER, num(secs));
                headers.insert("ratelimit-limit", num(i64::from(*limit)));
                headers.insert("ratelimit-remaining", num(0));
                headers.insert("ratelimit-reset", num(secs));
            }
            _ => {}
        }
        if closes_connection(&self) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// Whether the answer ends the connection: its request's body (or head) was not read whole, so
/// the connection cannot carry another request.
fn closes_connection(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::PayloadTooLarge
            | ApiError::RequestTimeout
            | ApiError::HeadersTooLarge
            | ApiError::UriTooLong
    )
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::NotFound(what.into()),
            ServiceError::Forbidden(d) => ApiError::Forbidden(d),
            ServiceError::MissingScope { scope, who } => ApiError::MissingScope {
                detail: crate::service::missing_scope_message(&scope, who),
                scope,
            },
            ServiceError::Conflict(d) => ApiError::Conflict(d),
            ServiceError::Validation(errors) => ApiError::Validation(errors),
            ServiceError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_contract_status_and_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::KeyInUrl, 400, "key_in_url"),
            (
                ApiError::Denied(Denial::MissingCredentials),
                401,
                "missing_credentials",
            ),
            (
                ApiError::Denied(Denial::Malformed("bad checksum")),
                401,
                "malformed_credentials",
            ),
            (ApiError::Denied(Denial::UnknownKey), 401, "unknown_key"),
            (
                ApiError::Denied(Denial::Revoked { disabled: false }),
                401,
                "key_revoked",
            ),
            (ApiError::Denied(Denial::Expired), 401, "key_expired"),
            (
                ApiError::Denied(Denial::OwnerDisabled),
                401,
                "owner_disabled",
            ),
            (
                ApiError::Denied(Denial::InsufficientScope {
                    scope: Some("a".into()),
                }),
                403,
                "insufficient_scope",
            ),
            (
                ApiError::Denied(Denial::IpNotAllowed),
                403,
                "ip_not_allowed",
            ),
            (ApiError::Denied(Denial::PlanInactive), 403, "plan_inactive"),
            (
                ApiError::Denied(Denial::QuotaExceeded),
                429,
                "quota_exceeded",
            ),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::NotFound("key".into()), 404, "not_found"),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (ApiError::Validation(vec![]), 422, "validation_failed"),
            (ApiError::Internal("db down".into()), 500, "internal_error"),
            (ApiError::BadGateway, 502, "bad_gateway"),
            (ApiError::GatewayTimeout, 504, "gateway_timeout"),
        ];
        for (err, status, code) in cases {
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let p = ApiError::Internal("password=hunter2 at db".into()).problem();
        assert!(!p.detail.contains("hunter2"));
    }

    #[test]
    fn unauthorized_answers_carry_www_authenticate_and_problem_json() {
        let res = ApiError::Denied(Denial::UnknownKey).into_response();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
