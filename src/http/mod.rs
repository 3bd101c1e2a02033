//! The HTTP surface: management API, health, OpenAPI, docs and the dashboard's pages. Routers of each resource are merged
//! here, with the middleware every response passes through: a request id, the key-in-URL guard,
//! a body size limit, and problem+json for unknown routes.

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
mod serve;
pub mod views;

pub use serve::serve;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use crate::domain::key;
use crate::service::Ctx;
use crate::verify::Remembered;
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

/// The whole HTTP application: the routes behind [`Guarded`], one per connection.
pub fn app(state: Arc<AppState>) -> Connections {
    Connections {
        router: router(state.clone()),
        state,
    }
}

/// Makes the service of each accepted connection: [`Guarded`], knowing the connection's peer.
#[derive(Clone)]
pub struct Connections {
    router: axum::Router,
    state: Arc<AppState>,
}

impl Connections {
    /// The service of a connection from `peer`.
    pub fn connection(&self, peer: SocketAddr) -> Guarded {
        Guarded(Arc::new(Connection {
            router: self.router.clone(),
            state: self.state.clone(),
            peer,
            remembered: Remembered::default(),
        }))
    }
}

/// Every route of the HTTP application.
fn router(state: Arc<AppState>) -> axum::Router {
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
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// What every request passes through: it gets an id, available to error bodies and returned as
/// `x-request-id`, and is refused if its URL carries a key. Verifications with a management key
/// then go straight to [`api::verify::serve`]; everything else to the router, with the peer address
/// as `ConnectInfo`. A service wrapping the router rather than a middleware, because it runs on
/// every verification.
#[derive(Clone)]
pub struct Guarded(Arc<Connection>);

/// What the requests of one connection share. Cloned per request as one reference count that
/// only this connection's task touches.
pub struct Connection {
    router: axum::Router,
    pub state: Arc<AppState>,
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The management key this connection presented last.
    pub remembered: Remembered,
}

impl Guarded {
    fn handle(
        &self,
        mut req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> {
        let id = RequestId::random();
        if is_keyed_verification(&req) && !has_key_in_url(&req) {
            let conn = self.0.clone();
            return Box::pin(REQUEST_ID.scope(id, async move {
                let res = api::verify::serve(&conn, req).await;
                Ok(with_request_id(res, id))
            }));
        }
        req.extensions_mut().insert(ConnectInfo(self.0.peer));
        if has_key_in_url(&req) {
            let state = self.0.state.clone();
            return Box::pin(REQUEST_ID.scope(id, async move {
                Ok(with_request_id(reject_key_in_url(&state, req).await, id))
            }));
        }
        let mut router = self.0.router.clone();
        let routed = REQUEST_ID.sync_scope(id, || tower::Service::call(&mut router, req));
        Box::pin(REQUEST_ID.scope(id, async move {
            let res = routed.await.unwrap_or_else(|never| match never {});
            Ok(with_request_id(res, id))
        }))
    }
}

/// `POST /v1/keys/verify` with an `Authorization` header: a backend verifying a key.
fn is_keyed_verification(req: &Request) -> bool {
    req.method() == Method::POST
        && req.uri().path() == "/v1/keys/verify"
        && req.headers().contains_key(header::AUTHORIZATION)
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
