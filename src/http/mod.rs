//! The HTTP surface: management API, health, OpenAPI, docs and the dashboard's pages. Routers of
//! each resource are merged here, behind the one request path every request takes (see
//! [`pipeline`]): a request id, limits on the head and the body, the key-in-URL guard, the request
//! timeout, tracing, and problem+json for every error.

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
mod pipeline;
mod serve;
pub mod views;

pub use serve::{Handler, InFlight, Limits, Progress, serve};

use std::sync::Arc;
use std::time::Duration;

use crate::service::Ctx;
use error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Most header fields a request may carry.
pub const HEADERS_MAX_COUNT: usize = 100;
/// Most bytes a request's header fields may take together.
pub const HEADERS_MAX_BYTES: usize = 32 * 1024;
/// Longest request URI accepted, in bytes.
pub const URI_MAX_BYTES: usize = 8 * 1024;

/// Shared state of every handler.
pub struct AppState {
    pub ctx: Ctx,
    /// Mark cookies `Secure`: the server is reached over TLS (`KEYWARD_PUBLIC_URL` is https).
    pub secure_cookies: bool,
    /// Base URL of links the server hands out (invitations), without a trailing `/`.
    pub public_url: String,
    /// How long a request may take once its headers are in.
    pub request_timeout: Duration,
}

/// The whole HTTP application: every route, behind the request pipeline.
pub fn app(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .merge(api::keys::router())
        .merge(api::verify::router())
        .merge(api::apis::router())
        .merge(api::audit::router())
        .merge(api::events::router())
        .merge(api::users::router())
        .merge(api::ip_acls::router())
        .merge(api::key_groups::router())
        .merge(api::org::router())
        .merge(api::usage::router())
        .merge(api::webhooks::router())
        .merge(api::health::router())
        .merge(api::metrics::router())
        .merge(api::docs::router())
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pipeline::frame,
        ))
        .with_state(state)
}

/// Whether a request for an unknown address is a person's, in a browser, outside the JSON API:
/// they get a page, every other client problem+json.
fn wants_page(parts: &axum::http::request::Parts) -> bool {
    let api = parts.uri.path() == "/v1" || parts.uri.path().starts_with("/v1/");
    let html = parts
        .headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    html && !api
}

async fn not_found(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    mut parts: axum::http::request::Parts,
) -> axum::response::Response {
    if wants_page(&parts) {
        return crate::dashboard::not_found(&state, &mut parts).await;
    }
    axum::response::IntoResponse::into_response(ApiError::NotFound("route".into()))
}

async fn method_not_allowed(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    mut parts: axum::http::request::Parts,
) -> axum::response::Response {
    if wants_page(&parts) {
        return crate::dashboard::method_not_allowed(&state, &mut parts).await;
    }
    axum::response::IntoResponse::into_response(ApiError::MethodNotAllowed)
}
