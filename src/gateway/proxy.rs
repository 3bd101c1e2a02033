//! One request through the gateway: the reserved `/healthz`, the management API's limits on the
//! URI and headers (the body streams, unlimited), failed-auth throttling, a key in the URL, the
//! route, the key (checked by the verifier in the contract's order), then the request
//! forwarded with the headers the contract lists, and the upstream's answer streamed back with the
//! key's `RateLimit-*` headers. Every request leaves one access log line: its key's id, never the
//! key, and its path, never its query.

use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri, Version};
use axum::response::IntoResponse;
use http_body_util::Either;
use hyper::body::Incoming;

use super::body::{Download, Moved, Upload};
use super::client_ip::{self, X_FORWARDED_FOR};
use super::routes::{self, Entry};
use super::{Gateway, GatewayError};
use crate::domain::check::{Denial, RateDecision, Requirements};
use crate::domain::key;
use crate::domain::model::Api;
use crate::domain::path;
use crate::http::error::{ApiError, REQUEST_ID, RequestId, rate_limit_headers};
use crate::http::{Handler, InFlight};
use crate::metrics::UpstreamError;
use crate::observe::{Observation, Source};
use crate::verify::{CachedKey, Presented, Scope, Verified};

/// The body of a gateway answer: an upstream's, streamed, or one of the gateway's own.
pub type GatewayBody = Either<Download, Body>;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEY_ID: HeaderName = HeaderName::from_static("x-keyward-key-id");
static API_ID: HeaderName = HeaderName::from_static("x-keyward-api-id");
static ORG_ID: HeaderName = HeaderName::from_static("x-keyward-org-id");
static OWNER_ID: HeaderName = HeaderName::from_static("x-keyward-owner-id");
static KEY_TYPE: HeaderName = HeaderName::from_static("x-keyward-key-type");
static SCOPES: HeaderName = HeaderName::from_static("x-keyward-scopes");
static RESOURCES: HeaderName = HeaderName::from_static("x-keyward-resources");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the access log line tells of a request.
#[derive(Default)]
struct Seen {
    client: Option<IpAddr>,
    path: Option<String>,
    api: Option<Arc<Api>>,
    key: Option<Arc<CachedKey>>,
    /// The verified key's rate limit, for the headers of an answer that fails after it.
    ratelimit: Option<RateDecision>,
    /// The verdict's code, once a key was checked (or found missing).
    code: Option<&'static str>,
}

impl Handler for Arc<Gateway> {
    type Body = GatewayBody;

    fn call(
        self,
        req: Request<Incoming>,
        peer: SocketAddr,
        in_flight: InFlight,
    ) -> impl Future<Output = Response<GatewayBody>> + Send + 'static {
        let id = RequestId::random();
        REQUEST_ID.scope(
            id,
            async move { self.answer(req, peer, in_flight, id).await },
        )
    }
}

impl Gateway {
    async fn answer(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        in_flight: InFlight,
        id: RequestId,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let mut seen = Seen::default();
        let res = match self.serve(req, peer, in_flight, &mut seen).await {
            Ok(res) => res,
            Err(e) => {
                match &e {
                    GatewayError::BadGateway(_) => {
                        self.ctx.metrics.upstream_error(UpstreamError::Unreachable);
                    }
                    GatewayError::Timeout => {
                        self.ctx.metrics.upstream_error(UpstreamError::Timeout)
                    }
                    _ => {}
                }
                refusal(e, seen.ratelimit, id)
            }
        };
        self.ctx
            .metrics
            .gateway_duration(started.elapsed().as_secs_f64());
        tracing::info!(
            target: "keyward::gateway::access",
            request_id = %id.as_str(),
            client = %seen.client.unwrap_or_else(|| peer.ip()),
            %method,
            path = %seen.path.as_deref().unwrap_or("-"),
            status = res.status().as_u16(),
            api_id = %seen.api.as_ref().map_or("-", |a| a.id.as_str()),
            key_id = %seen.key.as_ref().map_or("-", |k| k.id.as_str()),
            ms = started.elapsed().as_millis() as u64,
            "gateway"
        );
        if let (Some(code), Some(api)) = (seen.code, &seen.api) {
            self.ctx.observers.observe(&Observation {
                source: Source::Gateway,
                org_id: Some(&api.org_id),
                key: seen.key.as_deref(),
                code,
                client_ip: seen.client,
                at: self.ctx.now(),
            });
        }
        res
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        in_flight: InFlight,
        seen: &mut Seen,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        in_flight.progress();
        if req.uri().path() == "/healthz" {
            let mut res = Response::new(Either::Right(Body::from(r#"{"status":"ok"}"#)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(res);
        }
        let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > crate::http::URI_MAX_BYTES {
            return Err(GatewayError::UriTooLong);
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if header_bytes > crate::http::HEADERS_MAX_BYTES {
            return Err(GatewayError::HeadersTooLarge);
        }
        let ctx = &self.ctx;
        let now = ctx.now();
        let ip = client_ip::resolve(peer.ip(), req.headers(), &self.trusted_proxies);
        seen.client = Some(ip);
        if let Some(retry_after_ms) = self.throttle.blocked(ip, now) {
            return Err(GatewayError::Throttled {
                limit: self.throttle.limit(),
                retry_after_ms,
            });
        }
        let in_url = req
            .uri()
            .path_and_query()
            .and_then(|pq| key::find_in(pq.as_str()));
        if let Some(found) = in_url {
            let token = found.whole.to_owned();
            let ua = user_agent(req.headers());
            if let Err(e) =
                crate::service::keys::mark_exposed(ctx, &token, Some(ip.to_string()), ua).await
            {
                tracing::error!(error = %e, "could not flag an exposed key");
            }
            return Err(GatewayError::KeyInUrl);
        }
        let path = path::normalize(req.uri().path()).ok_or(GatewayError::BadPath)?;
        let table = self.table().await;
        let host = req.uri().host().or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(routes::host_name)
        });
        let matched = table.find(host, &path, req.method());
        seen.path = Some(path);
        let matched = matched.ok_or(GatewayError::NoRoute)?;
        let api = &matched.entry.api;
        seen.api = Some(api.clone());
        let outcome = {
            let token = match credentials(req.headers(), api.accept_x_api_key) {
                Ok(token) => token,
                Err(denial) => {
                    seen.code = Some(denial.verify_code());
                    return Err(self.refused(denial, None, ip, now, &req).await);
                }
            };
            let prefixes = [api.prefix_live.as_str(), api.prefix_test.as_str()];
            let (token_types, scopes) = matched.route.map_or((&[][..], &[][..]), |r| {
                (&r.token_types[..], &r.required_scopes[..])
            });
            let presented = Presented {
                token,
                scope: Scope {
                    org_id: Some(&api.org_id),
                    api_id: Some(&api.id),
                    management: false,
                    prefixes: &prefixes,
                },
                req: Requirements {
                    client_ip: Some(ip),
                    token_type: None,
                    token_types,
                    scopes,
                    resource: None,
                    skip_plan: false,
                },
                cost: 1,
            };
            ctx.verifier.check_at(&presented, now).await?
        };
        let verified = match outcome {
            Ok(v) => v,
            Err(r) => {
                seen.code = Some(r.denial.verify_code());
                seen.key = r.key;
                return Err(self.refused(r.denial, r.ratelimit, ip, now, &req).await);
            }
        };
        seen.code = Some("VALID");
        seen.key = Some(verified.key.clone());
        seen.ratelimit = verified.ratelimit;
        let path = seen.path.as_deref().unwrap_or("/");
        self.forward(req, matched.entry, path, peer, &verified, in_flight)
            .await
    }

    /// The refusal of a key, counted against the client when it is a refused credential (a 401
    /// for a key sent; sending none is no guess).
    async fn refused(
        &self,
        denial: Denial,
        ratelimit: Option<RateDecision>,
        ip: IpAddr,
        now: i64,
        req: &Request<Incoming>,
    ) -> GatewayError {
        if denial.status() == 401
            && denial != Denial::MissingCredentials
            && self.throttle.failed(ip, now)
        {
            crate::service::audit::record_throttled(&self.ctx, ip, user_agent(req.headers())).await;
        }
        GatewayError::Denied { denial, ratelimit }
    }

    /// Sends the verified request upstream and streams its answer back.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        entry: &Entry,
        path: &str,
        peer: SocketAddr,
        v: &Verified,
        in_flight: InFlight,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let upgrade = is_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let upstream = &entry.upstream;
        let query = parts.uri.query();
        let mut target = String::with_capacity(
            upstream.base.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        target.push_str(&upstream.base);
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        parts.uri = Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|_| GatewayError::BadPath)?;
        parts.version = Version::HTTP_11;
        let peer_trusted = client_ip::trusted(peer.ip(), &self.trusted_proxies);
        request_headers(
            &mut parts.headers,
            upgrade,
            peer,
            peer_trusted,
            host,
            entry,
            v,
        );
        let moved = (!hyper::body::Body::is_end_stream(&body)).then(|| Arc::new(Moved::new()));
        let body = Upload::new(body, in_flight.tracker(), moved.clone());
        let started = Instant::now();
        let timeout = self.upstream_timeout;
        let mut call = pin!(self.client.request(Request::from_parts(parts, body)));
        let mut res = loop {
            let from = moved.as_ref().map_or(started, |m| m.last().max(started));
            match tokio::time::timeout_at((from + timeout).into(), &mut call).await {
                Ok(Ok(res)) => break res,
                Ok(Err(e)) => {
                    tracing::warn!(api_id = %entry.api.id, error = %error_chain(&e), "upstream unreachable");
                    return Err(GatewayError::BadGateway(e.to_string()));
                }
                // A body still arriving gives the upstream its timeout from its latest part.
                Err(_)
                    if moved
                        .as_ref()
                        .is_some_and(|m| m.last() + timeout > Instant::now()) => {}
                Err(_) => {
                    tracing::warn!(api_id = %entry.api.id, "upstream timed out");
                    return Err(GatewayError::Timeout);
                }
            }
        };
        let switching = res.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            let Some(client) = client_upgrade else {
                return Err(GatewayError::BadGateway(
                    "the upstream switched protocols unasked".into(),
                ));
            };
            self.sessions.splice(client, hyper::upgrade::on(&mut res));
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers, switching);
        if switching {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        if let Some(d) = &v.ratelimit {
            rate_limit_headers(&mut parts.headers, d);
        }
        Ok(Response::from_parts(
            parts,
            Either::Left(Download::new(body, in_flight)),
        ))
    }
}

/// The gateway's own answer to `e`, as problem+json.
fn refusal(
    e: GatewayError,
    verified: Option<RateDecision>,
    id: RequestId,
) -> Response<GatewayBody> {
    let ratelimit = match &e {
        // Its own headers already.
        GatewayError::Denied {
            denial: Denial::RateLimited(_),
            ..
        } => None,
        GatewayError::Denied { ratelimit, .. } => *ratelimit,
        _ => verified,
    };
    let mut res = ApiError::from(e).into_response();
    if let Some(d) = &ratelimit {
        rate_limit_headers(res.headers_mut(), d);
    }
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    res.map(Either::Right)
}

/// The key a request presents: `Authorization: Bearer`, else `x-api-key` where the API accepts it.
fn credentials(headers: &HeaderMap, accept_x_api_key: bool) -> Result<&str, Denial> {
    if let Some(token) = crate::http::auth::bearer_in(headers)? {
        return Ok(token);
    }
    if headers.contains_key(header::AUTHORIZATION) || !accept_x_api_key {
        return Err(Denial::MissingCredentials);
    }
    let Some(value) = headers.get(&X_API_KEY) else {
        return Err(Denial::MissingCredentials);
    };
    let value = value.as_bytes();
    if !value.is_ascii() {
        return Err(Denial::Malformed("the x-api-key header is not ASCII"));
    }
    match std::str::from_utf8(value.trim_ascii()) {
        Ok("") => Err(Denial::MissingCredentials),
        Ok(token) => Ok(token),
        Err(_) => Err(Denial::Malformed("the x-api-key header is not ASCII")),
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An HTTP/1.1 request to switch protocols (a WebSocket handshake).
fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes the headers that concern one connection only (RFC 9110, 7.6.1): `Connection` and those
/// it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, and `Upgrade` unless
/// the protocol switch is being passed on.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrading && n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if !upgrading {
        headers.remove(header::UPGRADE);
    }
}

/// The headers a verified request goes upstream with: hop-by-hop headers, the credentials and
/// everything the client sent as `X-Keyward-*` removed; who it is from added.
fn request_headers(
    headers: &mut HeaderMap,
    upgrade: bool,
    peer: SocketAddr,
    peer_trusted: bool,
    host: Option<HeaderValue>,
    entry: &Entry,
    v: &Verified,
) {
    strip_hop_by_hop(headers, upgrade);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    for name in [
        &header::AUTHORIZATION,
        &X_API_KEY,
        &header::PROXY_AUTHORIZATION,
        &header::HOST,
    ] {
        headers.remove(name);
    }
    if headers.keys().any(is_keyward) {
        let spoofed: Vec<HeaderName> = headers.keys().filter(|k| is_keyward(k)).cloned().collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
    // What a trusted proxy says of the request is kept; anyone else's is replaced.
    let peer_ip = crate::domain::model::normalize_ip(peer.ip());
    let forwarded_for = if peer_trusted && headers.contains_key(&X_FORWARDED_FOR) {
        let mut chain = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        chain.push_str(", ");
        chain.push_str(&peer_ip.to_string());
        HeaderValue::from_str(&chain).ok()
    } else {
        HeaderValue::from_str(&peer_ip.to_string()).ok()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST.clone(), host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    let key = &v.key;
    let text = |s: &str| HeaderValue::from_str(s).ok();
    headers.insert(API_ID.clone(), entry.api_id.clone());
    headers.insert(ORG_ID.clone(), entry.org_id.clone());
    for (name, value) in [
        (&KEY_ID, text(&key.id)),
        (&OWNER_ID, text(&key.owner_id)),
        (&KEY_TYPE, text(&key.token_type)),
        (
            &SCOPES,
            // Its groups' scopes too; a key in no group costs no more than before.
            text(&if key.linked.group_scopes.is_empty() {
                key.scopes.join(" ")
            } else {
                key.effective_scopes().join(" ")
            }),
        ),
        // Resource patterns hold no spaces; the upstream decides what a request reaches. A key
        // without any reaches everything, and sends no header.
        (
            &RESOURCES,
            (!key.resources.is_empty())
                .then(|| text(&key.resources.join(" ")))
                .flatten(),
        ),
    ] {
        if let Some(value) = value {
            headers.insert(name.clone(), value);
        }
    }
}

fn is_keyward(name: &HeaderName) -> bool {
    name.as_str().starts_with("x-keyward-")
}

/// An error and its causes, for the log: hyper's own message says little ("client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
    }

    #[test]
    fn credentials_come_from_bearer_or_where_accepted_x_api_key() {
        let h = headers(&[("x-api-key", "k1")]);
        assert_eq!(credentials(&h, true), Ok("k1"));
        assert_eq!(credentials(&h, false), Err(Denial::MissingCredentials));
        let h = headers(&[("authorization", "Bearer k2"), ("x-api-key", "k1")]);
        assert_eq!(credentials(&h, true), Ok("k2"));
        let h = headers(&[("x-api-key", "  ")]);
        assert_eq!(credentials(&h, true), Err(Denial::MissingCredentials));
        let h = headers(&[("authorization", "Basic x")]);
        assert!(matches!(credentials(&h, true), Err(Denial::Malformed(_))));
    }
}
