//! The gateway's errors, each answered as problem+json with the contract's code (rendered by the
//! HTTP layer's [`ApiError`]).

use crate::domain::check::{Denial, RateDecision};
use crate::http::error::ApiError;
use crate::verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No API or route matches the request: the upstream is not contacted.
    #[error("no route")]
    NoRoute,
    #[error("the request's path is malformed")]
    BadPath,
    /// The URI is longer than the management API accepts, too.
    #[error("URI too long")]
    UriTooLong,
    /// The headers are larger than the management API accepts, too.
    #[error("headers too large")]
    HeadersTooLarge,
    #[error("key in URL")]
    KeyInUrl,
    /// The verifier refused the key; `ratelimit` is where the key's rate limit stands, if any.
    #[error("denied: {}", .denial.code())]
    Denied {
        denial: Denial,
        ratelimit: Option<RateDecision>,
    },
    /// Failed-auth throttling.
    #[error("throttled")]
    Throttled { limit: u32, retry_after_ms: i64 },
    #[error("upstream unreachable: {0}")]
    BadGateway(String),
    #[error("upstream timed out")]
    Timeout,
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::NoRoute => ApiError::NotFound("route".into()),
            GatewayError::BadPath => {
                ApiError::BadRequest("The request's path is malformed.".into())
            }
            GatewayError::UriTooLong => ApiError::UriTooLong,
            GatewayError::HeadersTooLarge => ApiError::HeadersTooLarge,
            GatewayError::KeyInUrl => ApiError::KeyInUrl,
            GatewayError::Denied { denial, .. } => ApiError::Denied(denial),
            GatewayError::Throttled {
                limit,
                retry_after_ms,
            } => ApiError::Throttled {
                limit,
                retry_after_ms,
            },
            GatewayError::BadGateway(_) => ApiError::BadGateway,
            GatewayError::Timeout => ApiError::GatewayTimeout,
            GatewayError::Verify(e) => e.into(),
        }
    }
}
