//! Authentication of management requests: a management key in `Authorization: Bearer`, or a
//! signed-in dashboard session. Authorization (scopes, roles) happens in the services.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;
use super::error::ApiError;
use crate::domain::check::Denial;
use crate::service::sessions::{self, CSRF_HEADER, SESSION_COOKIE};
use crate::service::{Caller, Via};
use crate::verify::Presented;

/// The peer address of the connection.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| crate::domain::model::normalize_ip(c.0.ip()))
}

pub fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Where a request came from, for sessions and the audit log.
pub fn client(parts: &Parts) -> sessions::Client {
    sessions::Client {
        ip: client_ip(parts),
        user_agent: user_agent(parts),
    }
}

/// The value of the cookie `name`, from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The member of a signed-in dashboard session. A state-changing request (anything but GET, HEAD,
/// OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`, so that another site
/// cannot make a signed-in browser act.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Err(ApiError::Denied(Denial::MissingCredentials));
    };
    let Some(caller) = sessions::authenticate(&state.ctx, token, &client(parts)).await? else {
        return Err(ApiError::Denied(Denial::MissingCredentials));
    };
    if !parts.method.is_safe() {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !sessions::secrets_match(sent, &sessions::csrf_token(token)) {
            return Err(ApiError::Forbidden(
                "A request signed in with a dashboard session must carry the session's CSRF token \
                 in the X-CSRF-Token header."
                    .into(),
            ));
        }
    }
    Ok(caller)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, Denial> {
    bearer_in(&parts.headers)
}

/// [`bearer`], from a request's headers.
pub fn bearer_in(headers: &HeaderMap) -> Result<Option<&str>, Denial> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    // Read as bytes: a header value holds no control characters but tab, so being ASCII is what
    // `HeaderValue::to_str` checks, and ASCII whitespace is all `str::trim` could remove.
    let value = value.as_bytes();
    if !value.is_ascii() {
        return Err(Denial::Malformed("the Authorization header is not ASCII"));
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(Denial::MissingCredentials);
    }
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Denial::Malformed("expected 'Authorization: Bearer <key>'"));
    }
    let Ok(token) = std::str::from_utf8(token.trim_ascii()) else {
        return Err(Denial::Malformed("the Authorization header is not ASCII"));
    };
    if token.is_empty() {
        return Err(Denial::MissingCredentials);
    }
    Ok(Some(token))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    /// A management key, else a session cookie. A client that presented too many refused
    /// credentials lately is refused whatever it presents now, and each refusal of what it
    /// presents counts (see [`crate::verify::throttle`]).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ctx = &state.ctx;
        let ip = client_ip(parts);
        let now = ctx.now();
        if let Some(retry_after_ms) = ip.and_then(|ip| ctx.throttle.blocked(ip, now)) {
            return Err(ApiError::Throttled {
                limit: ctx.throttle.limit(),
                retry_after_ms,
            });
        }
        let presented_cookie = cookie(&parts.headers, SESSION_COOKIE).is_some();
        let caller = match bearer(parts) {
            Ok(Some(token)) => key_caller(state, token, ip, user_agent(parts)).await,
            Ok(None) => session_caller(parts, state).await,
            Err(d) => Err(ApiError::Denied(d)),
        };
        let refused = match &caller {
            Err(ApiError::Denied(Denial::MissingCredentials)) => presented_cookie,
            Err(ApiError::Denied(d)) => d.status() == 401,
            _ => false,
        };
        if let (true, Some(ip)) = (refused, ip) {
            if ctx.throttle.failed(ip, now) {
                crate::service::audit::record_throttled(ctx, ip, user_agent(parts)).await;
            }
        }
        caller
    }
}

/// The member a management key acts for, checked by the verifier like every key.
async fn key_caller(
    state: &AppState,
    token: &str,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
) -> Result<Caller, ApiError> {
    let verifier = &state.ctx.verifier;
    let v = verifier
        .check(&Presented::management(token, ip))
        .await?
        .map_err(|rejected| ApiError::Denied(rejected.denial))?;
    Ok(Caller {
        org_id: v.key.org_id.clone(),
        user: v.owner,
        via: Via::Key(v.key),
        ip,
        user_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer_of(value: &[u8]) -> Result<Option<String>, Denial> {
        let req = axum::http::Request::builder()
            .header(header::AUTHORIZATION, value)
            .body(())
            .expect("a valid request");
        let (parts, ()) = req.into_parts();
        bearer(&parts).map(|t| t.map(str::to_owned))
    }

    #[test]
    fn the_bearer_token_is_read_with_any_case_of_scheme_and_surrounding_spaces() {
        assert_eq!(bearer_of(b"Bearer abc").unwrap().as_deref(), Some("abc"));
        assert_eq!(bearer_of(b"bEaReR abc").unwrap().as_deref(), Some("abc"));
        assert_eq!(
            bearer_of(b" \tBearer   abc \t").unwrap().as_deref(),
            Some("abc")
        );
        let none = axum::http::Request::builder().body(()).unwrap();
        assert_eq!(bearer(&none.into_parts().0), Ok(None));
    }

    #[test]
    fn a_bad_authorization_header_is_refused_with_the_reason() {
        let malformed = |v: &[u8]| match bearer_of(v) {
            Err(Denial::Malformed(reason)) => reason,
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(v)),
        };
        assert_eq!(
            malformed(b"Bearer k\xc3\xa9y"),
            "the Authorization header is not ASCII"
        );
        assert_eq!(
            malformed(b"Basic abc"),
            "expected 'Authorization: Bearer <key>'"
        );
        assert_eq!(
            malformed(b"Bearer\tabc"),
            "expected 'Authorization: Bearer <key>'"
        );
        assert_eq!(bearer_of(b"   "), Err(Denial::MissingCredentials));
        assert_eq!(bearer_of(b"Bearer"), Err(Denial::MissingCredentials));
        assert_eq!(bearer_of(b"Bearer    "), Err(Denial::MissingCredentials));
    }
}
