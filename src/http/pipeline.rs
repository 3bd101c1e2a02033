//! The one path every request takes, around its route: an id (for error bodies, logs and the
//! `x-request-id` header), limits on the head, the body read whole within the body limit and the
//! request timeout, the key-in-URL guard, the answer within what is left of the request timeout,
//! a trace line, and problem+json for every error, whatever part of the stack refused.
//!
//! The body is read before the route runs, so that an answer given without looking at it (a
//! refused caller, say) never leaves unread bytes on a keep-alive connection, where the client's
//! next request would be lost. A body that cannot be read whole (too large, too slow) is refused
//! with `Connection: close`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::{ApiError, REQUEST_ID, RequestId};
use super::{AppState, BODY_LIMIT, HEADERS_MAX_BYTES, HEADERS_MAX_COUNT, URI_MAX_BYTES, auth};
use crate::domain::key;
use crate::metrics;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Runs `next` (the route) for `req` within the pipeline.
pub async fn frame(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = RequestId::random();
    let started = Instant::now();
    let deadline = started + state.request_timeout;
    // The route's template, never the path itself: paths carry setup and invitation tokens.
    let span = if tracing::enabled!(tracing::Level::DEBUG) {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("<no route>", MatchedPath::as_str);
        tracing::debug_span!("request", request_id = id.as_str(), method = %req.method(), %route)
    } else {
        tracing::Span::none()
    };
    // The route's template for the metrics; the verify endpoint's, the hot one, is known without
    // holding on to it.
    let matched = req.extensions().get::<MatchedPath>();
    let verify = matched.is_some_and(|m| m.as_str() == metrics::VERIFY_ROUTE);
    let route = matched.filter(|_| !verify).cloned();
    let answer = async {
        let res = match admit(&state, req, deadline).await {
            Ok(req) => match tokio::time::timeout_at(deadline.into(), next.run(req)).await {
                Ok(res) => as_problem(res),
                Err(_) => ApiError::Timeout.into_response(),
            },
            Err(res) => res,
        };
        tracing::debug!(
            status = res.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        let metrics = &state.ctx.metrics;
        if verify {
            metrics.verify_duration(started.elapsed().as_secs_f64());
            metrics.http_request(metrics::VERIFY_ROUTE, res.status());
        } else {
            let route = route
                .as_ref()
                .map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
            metrics.http_request(route, res.status());
        }
        with_request_id(res, id)
    };
    REQUEST_ID.scope(id, answer.instrument(span)).await
}

/// The request with its body read whole, or the answer refusing it.
async fn admit(state: &AppState, req: Request, deadline: Instant) -> Result<Request, Response> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > URI_MAX_BYTES {
        return Err(ApiError::UriTooLong.into_response());
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > HEADERS_MAX_COUNT || header_bytes > HEADERS_MAX_BYTES {
        return Err(ApiError::HeadersTooLarge.into_response());
    }
    // Refused at once, without waiting for a body that would be refused anyway.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge.into_response());
    }
    let (parts, body) = req.into_parts();
    let read = super::extract::read_body(body, BODY_LIMIT);
    let bytes = match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(closing(e.into_response())),
        Err(_) => return Err(ApiError::RequestTimeout.into_response()),
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    if has_key_in_url(&req) {
        return Err(reject_key_in_url(state, req).await);
    }
    Ok(req)
}

/// Error answers of parts that do not speak problem+json (framework rejections in text/plain,
/// empty bodies) become problem+json with a generic detail: their own text may repeat what the
/// client sent. Dashboard pages (HTML) and problem+json pass unchanged.
fn as_problem(res: Response) -> Response {
    if res.status().as_u16() < 400 {
        return res;
    }
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with(b"application/problem+json")
        || content_type.starts_with(b"text/html")
    {
        return res;
    }
    let mut problem = ApiError::Status(res.status()).into_response();
    for name in [header::ALLOW, header::CONNECTION] {
        if let Some(v) = res.headers().get(&name) {
            problem.headers_mut().insert(name, v.clone());
        }
    }
    problem
}

/// Ends the connection after `res`: its request was not read whole.
fn closing(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn with_request_id(mut res: Response, id: RequestId) -> Response {
    let value =
        HeaderValue::from_bytes(id.as_str().as_bytes()).expect("hex is a valid header value");
    res.headers_mut().insert(X_REQUEST_ID.clone(), value);
    res
}

fn has_key_in_url(req: &Request) -> bool {
    req.uri()
        .path_and_query()
        .is_some_and(|pq| key::find_in(pq.as_str()).is_some())
}

/// Refuses a request whose URL carries a well-formed key, and flags that key as exposed.
async fn reject_key_in_url(state: &AppState, req: Request) -> Response {
    let found = req
        .uri()
        .path_and_query()
        .and_then(|pq| key::find_in(pq.as_str()))
        .map(|k| k.whole.to_owned());
    let (parts, _) = req.into_parts();
    if let Some(token) = found {
        let ip = auth::client_ip(&parts).map(|ip| ip.to_string());
        let ua = auth::user_agent(&parts);
        if let Err(e) = crate::service::keys::mark_exposed(&state.ctx, &token, ip, ua).await {
            tracing::error!(error = %e, "could not flag an exposed key");
        }
    }
    ApiError::KeyInUrl.into_response()
}
