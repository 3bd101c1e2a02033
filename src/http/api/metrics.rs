//! `GET /metrics`: Prometheus text, without authentication (like `/healthz`), for a scraper on
//! the operator's network. It holds counts and timings, never a key, a path or a client address.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;
use crate::metrics::Snapshot;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/metrics", get(metrics))
}

/// The metrics of this instance in Prometheus's text format (version 0.0.4):
/// `keyward_verifications_total{source,code}`, `keyward_verify_duration_seconds`,
/// `keyward_gateway_request_duration_seconds`, `keyward_gateway_upstream_errors_total{kind}`,
/// `keyward_cache_keys`, `keyward_cache_lookups_total{result}`, `keyward_write_behind_pending`,
/// `keyward_webhook_queue_depth` and `keyward_http_requests_total{route,status}`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let ctx = &state.ctx;
    let (cache_hits, cache_misses) = ctx.verifier.cache_lookups();
    match crate::webhooks::queue_depth(ctx).await {
        Ok(depth) => ctx
            .metrics
            .set_webhook_queue_depth(usize::try_from(depth).unwrap_or(0)),
        Err(e) => tracing::warn!(error = %e, "could not count the webhook queue for /metrics"),
    }
    let text = ctx.metrics.render(Snapshot {
        cached_keys: ctx.verifier.cached_keys(),
        cache_hits,
        cache_misses,
        write_behind_pending: ctx.verifier.pending_writes() + ctx.usage.pending(),
    });
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
