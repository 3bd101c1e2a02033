//! The HTTP surface: management API, health, OpenAPI, docs and the dashboard's pages. Routers of each resource are merged
//! here, with the middleware every response passes through: a request id, the key-in-URL guard,
//! a body size limit, and problem+json for unknown routes.

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
pub mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::domain::key;
use crate::service::Ctx;
use error::{ApiError, REQUEST_ID, RequestId};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Shared state of every handler.
pub struct AppState {
    pub ctx: Ctx,
    /// Mark cookies `Secure`: the server is reached over TLS (`KEYWARD_PUBLIC_URL` is https).
    pub secure_cookies: bool,
    /// Base URL of links the server hands out (invitations), without a trailing `/`.
    pub public_url: String,
}

/// The whole HTTP application.
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .merge(api::keys::router())
        .merge(api::verify::router())
        .merge(api::apis::router())
        .merge(api::audit::router())
        .merge(api::users::router())
        .merge(api::org::router())
        .merge(api::health::router())
        .merge(api::docs::router())
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// What every request passes through: it gets an id, available to error bodies and returned as
/// `x-request-id`, and is refused if its URL carries a key. One middleware, not two: this runs
/// on every verification.
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = RequestId::random();
    let header_value =
        HeaderValue::from_bytes(id.as_str().as_bytes()).expect("hex is a valid header value");
    let mut res = REQUEST_ID
        .scope(id, async {
            if has_key_in_url(&req) {
                reject_key_in_url(&state, req).await
            } else {
                next.run(req).await
            }
        })
        .await;
    res.headers_mut().insert("x-request-id", header_value);
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
    let Some(token) = found else {
        return ApiError::KeyInUrl.into_response();
    };
    let (parts, _) = req.into_parts();
    let ip = auth::client_ip(&parts).map(|ip| ip.to_string());
    let ua = auth::user_agent(&parts);
    if let Err(e) = crate::service::keys::mark_exposed(&state.ctx, &token, ip, ua).await {
        tracing::error!(error = %e, "could not flag an exposed key");
    }
    let mut res = ApiError::KeyInUrl.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
