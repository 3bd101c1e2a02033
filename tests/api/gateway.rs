//! The gateway in front of real upstreams started by each test (an HTTP echo and a WebSocket echo
//! on loopback): routing, every contract code, the headers forwarded, streamed bodies, WebSocket
//! upgrades, upstream faults, rate limits and quotas, throttling, route changes without restart.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use keyward::config::ServerArgs;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::helpers::{Db, Options, Res, TestApp, spawn_with};

/// A body fed through a channel, so that a test decides when each part is sent.
struct Channel(mpsc::Receiver<Bytes>);

impl Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A real HTTP upstream on loopback. It echoes each request as JSON (method, path with query,
/// headers, body length), except on a few paths:
/// - `.../slow`: answers after 3 s;
/// - `.../download/N`: answers N bytes in 64 KiB parts;
/// - `.../gated-download`: answers one part, waits for `gate`, then the rest (1 MiB in all);
/// - `.../gated-upload`: reports its body's first part on `events` before reading the rest.
pub(crate) struct Upstream {
    pub(crate) base: String,
    hits: Arc<AtomicUsize>,
    events: mpsc::UnboundedReceiver<String>,
    gate: Arc<Notify>,
}

pub(crate) async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let (tx, events) = mpsc::unbounded_channel();
    let (h, g) = (hits.clone(), gate.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (hits, gate, tx) = (h.clone(), g.clone(), tx.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    echo(req, gate.clone(), tx.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Upstream {
        base: format!("http://{addr}"),
        hits,
        events,
        gate,
    }
}

type Echoed = hyper::Response<http_body_util::Either<http_body_util::Full<Bytes>, Channel>>;

async fn echo(
    req: hyper::Request<Incoming>,
    gate: Arc<Notify>,
    events: mpsc::UnboundedSender<String>,
) -> Result<Echoed, std::convert::Infallible> {
    use http_body_util::Either;
    let path = req.uri().path().to_owned();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(n) = path.rsplit_once("/download/").map(|(_, n)| n) {
        let mut left: usize = n.parse().unwrap();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while left > 0 {
                let part = left.min(64 * 1024);
                if tx.send(Bytes::from(vec![b'x'; part])).await.is_err() {
                    return;
                }
                left -= part;
            }
        });
        return Ok(hyper::Response::new(Either::Right(Channel(rx))));
    }
    if path.ends_with("/gated-download") {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from(vec![b'a'; 64 * 1024])).await;
            gate.notified().await;
            for _ in 1..16 {
                let _ = tx.send(Bytes::from(vec![b'b'; 64 * 1024])).await;
            }
        });
        return Ok(hyper::Response::new(Either::Right(Channel(rx))));
    }
    let gated = path.ends_with("/gated-upload");
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.to_str().unwrap_or("<binary>").to_owned());
    }
    let method = req.method().to_string();
    let target = req.uri().path_and_query().unwrap().as_str().to_owned();
    let mut body = req.into_body();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            if gated && len == 0 {
                let _ = events.send(format!("first part of {} bytes", data.len()));
            }
            len += data.len();
        }
    }
    let answer = json!({"method": method, "path": target, "headers": headers, "body_len": len});
    let mut res = hyper::Response::new(Either::Left(http_body_util::Full::new(Bytes::from(
        answer.to_string(),
    ))));
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    res.headers_mut()
        .insert("x-upstream", "echo".parse().unwrap());
    Ok(res)
}

/// A WebSocket echo upstream; each handshake's request headers are reported on the channel.
async fn websocket_upstream() -> (String, mpsc::UnboundedReceiver<BTreeMap<String, String>>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                #[expect(clippy::result_large_err, reason = "the handshake callback's type")]
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        let _ = tx.send(headers);
                        Ok(res)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            return;
                        }
                    } else if msg.is_close() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

/// A Keyward with its gateway on `db`, with further settings.
pub(crate) async fn gateway_app(db: Db, args: ServerArgs) -> TestApp {
    spawn_with(Options {
        db,
        args: ServerArgs {
            gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..args
        },
        ..Default::default()
    })
    .await
}

/// Sends a request through the gateway of `app` with `headers`.
pub(crate) async fn through(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Res {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.gateway.as_ref().unwrap()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("the gateway answers");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res {
        status,
        headers,
        body,
        text,
    }
}

/// `GET path` through the gateway with `Authorization: Bearer key`.
pub(crate) async fn get_with(app: &TestApp, path: &str, key: &str) -> Res {
    let auth = format!("Bearer {key}");
    through(app, Method::GET, path, &[("authorization", &auth)]).await
}

/// An API of `app` served by the gateway: prefixes `tk_live_`/`tk_test_`, the scopes
/// `transcripts:read` and `transcripts:write`, and `gateway` (upstream, hosts, routes).
pub(crate) async fn protected_api(app: &TestApp, slug: &str, gateway: Value) -> String {
    let api = app
        .create_api(slug, &["transcripts:read", "transcripts:write"])
        .await;
    let id = api["id"].as_str().unwrap().to_owned();
    app.patch(&format!("/v1/apis/{id}"), gateway)
        .await
        .assert_status(200);
    id
}

/// A key of `api` with `extra` create fields; returns (secret, id).
pub(crate) async fn key_of(app: &TestApp, api: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "gateway key", "api_id": api});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let k = app.create_key(body).await;
    (
        k["key"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    )
}

/// Waits until `check` holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn routes_by_host_and_longest_prefix_and_answers_404_without_contacting_the_upstream(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let listed = protected_api(
        &app,
        "speech",
        json!({"upstream": format!("{}/base/", up.base), "hosts": ["api.example.com"],
               "routes": [
                   {"path_prefix": "/api/v3/stream", "methods": ["GET"], "token_types": ["realtime"]},
                   {"path_prefix": "/api/v3", "required_scopes": ["transcripts:read"]}]}),
    )
    .await;
    let catch_all = protected_api(&app, "anything", json!({"upstream": up.base})).await;
    let (realtime, _) = key_of(&app, &listed, json!({"type": "realtime"})).await;
    let (reader, _) = key_of(
        &app,
        &listed,
        json!({"type": "batch", "scopes": ["transcripts:read"]}),
    )
    .await;
    let (other, _) = key_of(&app, &catch_all, json!({})).await;
    let send = |path: &'static str, host: &'static str, key: &str| {
        let auth = format!("Bearer {key}");
        let app = &app;
        async move {
            through(
                app,
                Method::GET,
                path,
                &[("host", host), ("authorization", &auth)],
            )
            .await
        }
    };
    // The upstream's path is prepended, the query kept, the path compared in its normal form.
    let res = send(
        "/api/v3/stream/abc?lang=en&x=1",
        "api.example.com",
        &realtime,
    )
    .await;
    assert_eq!(
        res.assert_status(200)["path"],
        "/base/api/v3/stream/abc?lang=en&x=1"
    );
    assert_eq!(res.headers["x-upstream"], "echo");
    let res = send("/api/v3/%73tream//abc", "API.example.com:8081", &realtime).await;
    assert_eq!(res.assert_status(200)["path"], "/base/api/v3/stream/abc");
    // `/api/v3/streams` is not under `/api/v3/stream`: the shorter route, which needs a scope.
    send("/api/v3/streams", "api.example.com", &realtime)
        .await
        .assert_problem(403, "insufficient_scope");
    send("/api/v3/streams", "api.example.com", &reader)
        .await
        .assert_status(200);
    send("/api/v3/stream/x", "api.example.com", &reader)
        .await
        .assert_problem(403, "wrong_token_type");
    // Another host goes to the API that lists none, which forwards every path.
    let res = send("/anything/at/all", "elsewhere.example", &other).await;
    assert_eq!(res.assert_status(200)["path"], "/anything/at/all");
    send("/api/v3/stream", "elsewhere.example", &realtime)
        .await
        .assert_problem(401, "unknown_key");
    let hits = up.hits.load(Ordering::SeqCst);
    assert_eq!(hits, 4);
    // The listed API decides for its host: no route, no upstream.
    let res = send("/api/v2/stream", "api.example.com", &realtime).await;
    res.assert_problem(404, "not_found");
    assert!(res.headers.contains_key("x-request-id"));
    through(
        &app,
        Method::GET,
        "/api/v3/stream",
        &[("host", "api.example.com")],
    )
    .await
    .assert_problem(401, "missing_credentials");
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "refusals never reach the upstream"
    );
    // The gateway's own health, on any host.
    let res = through(&app, Method::GET, "/healthz", &[]).await;
    assert_eq!(res.assert_status(200)["status"], "ok");
}

async fn every_contract_code_answers_through_the_gateway_as_problem_json(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(
        &app,
        "transcription",
        json!({"upstream": up.base, "routes": [
            {"path_prefix": "/write", "required_scopes": ["transcripts:write"]},
            {"path_prefix": "/live", "token_types": ["realtime"]},
            {"path_prefix": "/", "token_types": ["batch", "standard"]}]}),
    )
    .await;
    let sibling = app.create_api("sibling", &[]).await;
    let sibling_id = sibling["id"].as_str().unwrap();
    let (valid, valid_id) = key_of(&app, &api, json!({"type": "batch"})).await;
    get_with(&app, "/ok", &valid).await.assert_status(200);
    let hits = up.hits.load(Ordering::SeqCst);

    // Credentials.
    through(&app, Method::GET, "/ok", &[])
        .await
        .assert_problem(401, "missing_credentials");
    through(
        &app,
        Method::GET,
        "/ok",
        &[("authorization", "Basic dXNlcjpwdw==")],
    )
    .await
    .assert_problem(401, "malformed_credentials");
    get_with(&app, "/ok", "tk_live_nonsense")
        .await
        .assert_problem(401, "malformed_credentials");
    // A management key has none of this API's prefixes; a sibling API's key has them, but is not
    // this API's.
    get_with(&app, "/ok", &app.admin_key)
        .await
        .assert_problem(401, "malformed_credentials");
    let (foreign, _) = key_of(&app, sibling_id, json!({})).await;
    get_with(&app, "/ok", &foreign)
        .await
        .assert_problem(401, "unknown_key");
    let guessed = keyward::domain::key::generate("tk_live_", &mut rand::rngs::OsRng);
    let res = get_with(&app, "/ok", guessed.expose()).await;
    res.assert_problem(401, "unknown_key");
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // A path that is no path.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = app
            .gateway
            .as_ref()
            .unwrap()
            .trim_start_matches("http://")
            .to_owned();
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /ok/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    }
    let long = format!("/{}", "a".repeat(9000));
    through(&app, Method::GET, &long, &[])
        .await
        .assert_problem(414, "bad_request");
    // A key in the URL is refused and flagged as exposed.
    let (leaked, leaked_id) = key_of(&app, &api, json!({"type": "batch"})).await;
    through(&app, Method::GET, &format!("/ok?api_key={leaked}"), &[])
        .await
        .assert_problem(400, "key_in_url");
    let flagged = app.get(&format!("/v1/keys/{leaked_id}")).await;
    assert!(flagged.body["exposed_at"].is_string(), "{}", flagged.text);

    // Key state.
    let (revoked, revoked_id) = key_of(&app, &api, json!({"type": "batch"})).await;
    app.post(&format!("/v1/keys/{revoked_id}/revoke"), json!({}))
        .await
        .assert_status(200);
    get_with(&app, "/ok", &revoked)
        .await
        .assert_problem(401, "key_revoked");
    let (member, _) = app.member("developer").await;
    let (orphan, _) = key_of(&app, &api, json!({"type": "batch", "owner_id": member})).await;
    app.patch(
        &format!("/v1/users/{member}"),
        json!({"status": "disabled"}),
    )
    .await
    .assert_status(200);
    get_with(&app, "/ok", &orphan)
        .await
        .assert_problem(401, "owner_disabled");

    // Organization, address, type, scope.
    app.patch("/v1/org", json!({"billing_status": "past_due"}))
        .await
        .assert_status(200);
    get_with(&app, "/ok", &valid)
        .await
        .assert_problem(403, "plan_inactive");
    app.patch("/v1/org", json!({"billing_status": "active"}))
        .await
        .assert_status(200);
    let (fenced, _) = key_of(
        &app,
        &api,
        json!({"type": "batch", "ip_allowlist": ["203.0.113.0/24"]}),
    )
    .await;
    get_with(&app, "/ok", &fenced)
        .await
        .assert_problem(403, "ip_not_allowed");
    let res = get_with(&app, "/live/feed", &valid).await;
    res.assert_problem(403, "wrong_token_type");
    assert!(res.body["detail"].as_str().unwrap().contains("'realtime'"));
    let res = get_with(&app, "/write/x", &valid).await;
    res.assert_problem(403, "insufficient_scope");
    assert!(
        res.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"transcripts:write\"")
    );

    // Rate limit, quota.
    let (limited, _) = key_of(
        &app,
        &api,
        json!({"type": "batch", "rate_limit": {"requests": 1, "per_seconds": 60}}),
    )
    .await;
    get_with(&app, "/ok", &limited).await.assert_status(200);
    let res = get_with(&app, "/ok", &limited).await;
    res.assert_problem(429, "rate_limited");
    assert!(res.headers.contains_key("retry-after"));
    let (spent, _) = key_of(
        &app,
        &api,
        json!({"type": "batch", "quota": {"remaining": 0}}),
    )
    .await;
    get_with(&app, "/ok", &spent)
        .await
        .assert_problem(429, "quota_exceeded");
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits + 1,
        "only the limited key's first request reached the upstream"
    );

    // Expiry, last: it moves the clock.
    let in_an_hour = time::OffsetDateTime::from_unix_timestamp(app.ctx.now() / 1000 + 3600)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (expiring, _) = key_of(
        &app,
        &api,
        json!({"type": "batch", "expires_at": in_an_hour}),
    )
    .await;
    get_with(&app, "/ok", &expiring).await.assert_status(200);
    app.clock.advance(2 * 3600 * 1000);
    get_with(&app, "/ok", &expiring)
        .await
        .assert_problem(401, "key_expired");
    get_with(&app, "/ok", &valid).await.assert_status(200);
    let _ = valid_id;
}

async fn forwarded_requests_carry_who_sent_them_and_never_the_key_or_spoofed_headers(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(&app, "headers", json!({"upstream": up.base})).await;
    let (secret, id) = key_of(
        &app,
        &api,
        json!({"type": "batch", "scopes": ["transcripts:read", "transcripts:write"]}),
    )
    .await;
    let auth = format!("Bearer {secret}");
    let res = through(
        &app,
        Method::POST,
        "/submit?q=1",
        &[
            ("authorization", &auth),
            ("host", "public.example:9443"),
            ("x-keyward-key-id", "key_000000000000"),
            ("X-Keyward-Scopes", "admin"),
            ("x-keyward-anything", "spoofed"),
            ("x-api-key", "also a credential"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "hop"),
            ("keep-alive", "timeout=5"),
            ("x-custom", "kept"),
        ],
    )
    .await;
    let echoed = res.assert_status(200);
    let h = &echoed["headers"];
    let one = |name: &str| h[name].as_array().map(|v| v.len());
    assert_eq!(h["x-keyward-key-id"], json!([id]));
    assert_eq!(h["x-keyward-api-id"], json!([api]));
    assert_eq!(h["x-keyward-org-id"], json!([app.org_id]));
    assert_eq!(h["x-keyward-owner-id"], json!([app.owner_id]));
    assert_eq!(h["x-keyward-key-type"], json!(["batch"]));
    assert_eq!(
        h["x-keyward-scopes"],
        json!(["transcripts:read transcripts:write"])
    );
    assert_eq!(one("x-keyward-key-id"), Some(1));
    assert!(h.get("x-keyward-anything").is_none());
    assert!(h.get("authorization").is_none());
    assert!(h.get("x-api-key").is_none());
    assert!(h.get("x-hop").is_none() && h.get("keep-alive").is_none());
    assert_eq!(h["x-custom"], json!(["kept"]));
    // Without trusted proxies, what the client says of its route is replaced.
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(h["x-forwarded-host"], json!(["public.example:9443"]));
    assert_eq!(echoed["path"], "/submit?q=1");
    assert!(
        !res.text.contains(&secret),
        "the key never reaches the upstream"
    );
}

async fn x_api_key_is_read_only_where_the_api_accepts_it(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(&app, "xkey", json!({"upstream": up.base})).await;
    let (secret, _) = key_of(&app, &api, json!({})).await;
    let header = [("x-api-key", secret.as_str())];
    let with_header = || through(&app, Method::GET, "/x", &header);
    with_header()
        .await
        .assert_problem(401, "missing_credentials");
    app.patch(
        &format!("/v1/apis/{api}"),
        json!({"accept_x_api_key": true}),
    )
    .await
    .assert_status(200);
    let res = with_header().await;
    assert!(res.assert_status(200)["headers"].get("x-api-key").is_none());
    through(&app, Method::GET, "/x", &[("x-api-key", "tk_live_wrong")])
        .await
        .assert_problem(401, "malformed_credentials");
}

async fn a_route_change_through_the_api_applies_on_every_instance_without_restart(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(
        &app,
        "moving",
        json!({"upstream": up.base, "routes": [{"path_prefix": "/v1"}]}),
    )
    .await;
    let (secret, _) = key_of(&app, &api, json!({})).await;
    // A second instance on the same database, with a gateway of its own.
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.gateway_listen = Some("127.0.0.1:0".parse().unwrap());
    let second = keyward::Application::build(config).await.unwrap();
    let second_gateway = format!("http://{}", second.gateway_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let on_second = |path: &'static str| {
        let (http, base, auth) = (
            app.http.clone(),
            second_gateway.clone(),
            format!("Bearer {secret}"),
        );
        async move {
            http.get(format!("{base}{path}"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    get_with(&app, "/v1/x", &secret).await.assert_status(200);
    get_with(&app, "/v2/x", &secret)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(on_second("/v2/x").await, 404);
    let changed = Instant::now();
    app.patch(
        &format!("/v1/apis/{api}"),
        json!({"routes": [{"path_prefix": "/v2"}]}),
    )
    .await
    .assert_status(200);
    eventually(Duration::from_millis(500), || async {
        get_with(&app, "/v2/x", &secret).await.status == 200
    })
    .await;
    get_with(&app, "/v1/x", &secret)
        .await
        .assert_problem(404, "not_found");
    eventually(Duration::from_secs(2), || async {
        on_second("/v2/x").await == 200
    })
    .await;
    assert!(changed.elapsed() < Duration::from_secs(2));
    // Clearing the upstream takes the API off the gateway.
    app.patch(&format!("/v1/apis/{api}"), json!({"upstream": null}))
        .await
        .assert_status(200);
    eventually(Duration::from_secs(2), || async {
        on_second("/v2/x").await == 404
    })
    .await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

async fn a_limit_of_n_forwards_exactly_n_then_429_and_recovers_after_the_window(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(&app, "limited", json!({"upstream": up.base, "routes": [
        {"path_prefix": "/scoped", "required_scopes": ["transcripts:write"]}, {"path_prefix": "/"}]})).await;
    let (secret, _) = key_of(
        &app,
        &api,
        json!({"rate_limit": {"requests": 5, "per_seconds": 60}}),
    )
    .await;
    let burst = futures_util::future::join_all((0..8).map(|_| get_with(&app, "/x", &secret))).await;
    let ok: Vec<&Res> = burst.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<&Res> = burst.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok.len(), refused.len()), (5, 3));
    assert_eq!(up.hits.load(Ordering::SeqCst), 5, "exactly N forwarded");
    let mut remaining: Vec<u32> = ok
        .iter()
        .map(|r| {
            r.headers["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4]);
    for r in &ok {
        assert_eq!(r.headers["ratelimit-limit"], "5");
        assert!(r.headers.contains_key("ratelimit-reset"));
        assert!(!r.headers.contains_key("retry-after"));
    }
    for r in &refused {
        r.assert_problem(429, "rate_limited");
        assert_eq!(r.headers["ratelimit-limit"], "5");
        assert_eq!(r.headers["ratelimit-remaining"], "0");
        let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=12).contains(&retry), "{retry}");
    }
    // A refusal for another reason still tells where the limit stands, and charges nothing.
    let res = get_with(&app, "/scoped", &secret).await;
    res.assert_problem(403, "insufficient_scope");
    assert_eq!(res.headers["ratelimit-limit"], "5");
    assert_eq!(res.headers["ratelimit-remaining"], "0");
    assert!(!res.headers.contains_key("retry-after"));
    app.clock.advance(60_000);
    let res = get_with(&app, "/x", &secret).await;
    res.assert_status(200);
    assert_eq!(res.headers["ratelimit-remaining"], "4");
    assert_eq!(up.hits.load(Ordering::SeqCst), 6);
}

async fn a_quota_is_never_overspent_by_50_parallel_clients(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(&app, "metered", json!({"upstream": up.base})).await;
    let (secret, id) = key_of(&app, &api, json!({"quota": {"remaining": 20}})).await;
    let clients = (0..50).map(|_| {
        let (http, url, auth) = (
            reqwest::Client::new(),
            format!("{}/x", app.gateway.as_ref().unwrap()),
            format!("Bearer {secret}"),
        );
        async move {
            let mut statuses = Vec::new();
            for _ in 0..2 {
                let res = http
                    .get(&url)
                    .header("authorization", &auth)
                    .send()
                    .await
                    .unwrap();
                statuses.push(res.status().as_u16());
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures_util::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 80);
    assert_eq!(up.hits.load(Ordering::SeqCst), 20);
    let key = app.get(&format!("/v1/keys/{id}")).await;
    assert_eq!(key.body["quota"]["remaining"], 0);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name(crate::helpers::Db::Sqlite).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name(crate::helpers::Db::Postgres).await; })*
        }
    };
}

on_both_backends!(
    routes_by_host_and_longest_prefix_and_answers_404_without_contacting_the_upstream,
    every_contract_code_answers_through_the_gateway_as_problem_json,
    forwarded_requests_carry_who_sent_them_and_never_the_key_or_spoofed_headers,
    x_api_key_is_read_only_where_the_api_accepts_it,
    a_route_change_through_the_api_applies_on_every_instance_without_restart,
    a_limit_of_n_forwards_exactly_n_then_429_and_recovers_after_the_window,
    a_quota_is_never_overspent_by_50_parallel_clients,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_decide_the_client_address() {
    let up = upstream().await;
    for (trusted, expected) in [(None, 403), (Some("127.0.0.0/8"), 200)] {
        let app = gateway_app(
            Db::Sqlite,
            ServerArgs {
                trusted_proxies: trusted.map(str::to_owned),
                ..Default::default()
            },
        )
        .await;
        let api = protected_api(&app, "proxied", json!({"upstream": up.base})).await;
        let (secret, _) = key_of(&app, &api, json!({"ip_allowlist": ["203.0.113.0/24"]})).await;
        let auth = format!("Bearer {secret}");
        // The client's own claim (leftmost) proves nothing; the proxy's entry (rightmost) counts.
        let res = through(
            &app,
            Method::GET,
            "/x",
            &[
                ("authorization", &auth),
                ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example.com"),
            ],
        )
        .await;
        assert_eq!(res.status.as_u16(), expected, "{trusted:?}: {}", res.text);
        if expected == 200 {
            let h = &res.body["headers"];
            assert_eq!(
                h["x-forwarded-for"],
                json!(["198.51.100.1, 203.0.113.9, 127.0.0.1"])
            );
            assert_eq!(h["x-forwarded-proto"], json!(["https"]));
            assert_eq!(h["x-forwarded-host"], json!(["api.example.com"]));
        } else {
            res.assert_problem(403, "ip_not_allowed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_are_never_held_whole() {
    let app = gateway_app(Db::Sqlite, ServerArgs::default()).await;
    let mut up = upstream().await;
    let api = protected_api(&app, "streams", json!({"upstream": up.base})).await;
    let (secret, _) = key_of(&app, &api, json!({})).await;
    let auth = format!("Bearer {secret}");
    let gateway = app.gateway.clone().unwrap();
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(gateway.trim_start_matches("http://"))
            .await
            .unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake::<_, Channel>(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        send
    };
    // The upstream reads the first part of an upload while the client still holds the rest.
    let mut send = connect().await;
    let (parts, rx) = mpsc::channel(4);
    let req = hyper::Request::post("/gated-upload")
        .header("host", "streams")
        .header("authorization", &auth)
        .body(Channel(rx))
        .unwrap();
    let answer = tokio::spawn(async move { send.send_request(req).await });
    parts.send(Bytes::from(vec![b'u'; 1024])).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), up.events.recv())
        .await
        .expect("the first part reaches the upstream before the body ends");
    assert_eq!(first.unwrap(), "first part of 1024 bytes");
    // Then far more than any buffer, in 1 MiB parts.
    for _ in 0..64 {
        parts.send(Bytes::from(vec![b'u'; 1 << 20])).await.unwrap();
    }
    drop(parts);
    let res = answer.await.unwrap().unwrap();
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["body_len"], 1024 + 64 * (1 << 20));

    // The client reads the first part of an answer while the upstream still holds the rest.
    let mut send = connect().await;
    let (_none, rx) = mpsc::channel(1);
    let req = hyper::Request::get("/gated-download")
        .header("host", "streams")
        .header("authorization", &auth)
        .body(Channel(rx))
        .unwrap();
    drop(_none);
    let res = send.send_request(req).await.unwrap();
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first part arrives before the upstream sends the rest")
        .unwrap()
        .unwrap();
    assert_eq!(first.data_ref().unwrap()[0], b'a');
    up.gate.notify_one();
    let mut len = first.data_ref().unwrap().len();
    while let Some(frame) = body.frame().await {
        len += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(len, 16 * 64 * 1024);
    // A large answer, counted as it arrives.
    let res = app
        .http
        .get(format!("{gateway}/download/{}", 96 << 20))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let mut res = res;
    let mut len = 0;
    while let Some(chunk) = res.chunk().await.unwrap() {
        len += chunk.len();
    }
    assert_eq!(len, 96 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_pass_for_realtime_keys_and_other_keys_are_refused_at_the_upgrade() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let app = gateway_app(Db::Sqlite, ServerArgs::default()).await;
    let (ws_base, mut handshakes) = websocket_upstream().await;
    let api = protected_api(
        &app,
        "realtime",
        json!({"upstream": ws_base, "routes": [
            {"path_prefix": "/api/v3/stream", "methods": ["GET"], "token_types": ["realtime"]}]}),
    )
    .await;
    let (realtime, realtime_id) = key_of(&app, &api, json!({"type": "realtime"})).await;
    let (batch, _) = key_of(&app, &api, json!({"type": "batch"})).await;
    let url = format!(
        "{}/api/v3/stream/session",
        app.gateway.as_ref().unwrap().replace("http://", "ws://")
    );
    let request = |key: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        req.headers_mut()
            .insert("x-keyward-key-id", "key_spoofed00000".parse().unwrap());
        req
    };
    let (mut ws, res) = tokio_tungstenite::connect_async(request(&realtime))
        .await
        .expect("the upgrade passes for a realtime key");
    assert_eq!(res.status(), 101);
    let seen = handshakes.recv().await.unwrap();
    assert_eq!(seen["x-keyward-key-id"], realtime_id);
    assert_eq!(seen["x-keyward-key-type"], "realtime");
    assert!(!seen.contains_key("authorization"));
    for text in ["hello", "second frame"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![7u8; 200_000])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().len(), 200_000);
    ws.close(None).await.unwrap();
    // A batch key is refused before any frame, and the upstream never sees the handshake.
    match tokio_tungstenite::connect_async(request(&batch)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 403);
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "wrong_token_type");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    assert!(handshakes.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_is_502_and_a_slow_one_504() {
    let app = gateway_app(
        Db::Sqlite,
        ServerArgs {
            gateway_upstream_timeout: Some("1s".into()),
            ..Default::default()
        },
    )
    .await;
    let up = upstream().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = protected_api(
        &app,
        "down",
        json!({"upstream": format!("http://{closed}"), "hosts": ["down.example"]}),
    )
    .await;
    let slow = protected_api(
        &app,
        "slow",
        json!({"upstream": up.base, "hosts": ["slow.example"]}),
    )
    .await;
    let (down_key, _) = key_of(
        &app,
        &down,
        json!({"rate_limit": {"requests": 10, "per_seconds": 60}}),
    )
    .await;
    let (slow_key, _) = key_of(&app, &slow, json!({})).await;
    let res = through(
        &app,
        Method::GET,
        "/x",
        &[
            ("host", "down.example"),
            ("authorization", &format!("Bearer {down_key}")),
        ],
    )
    .await;
    res.assert_problem(502, "bad_gateway");
    assert_eq!(
        res.headers["ratelimit-limit"], "10",
        "an answer for a limited key"
    );
    let started = Instant::now();
    let res = through(
        &app,
        Method::GET,
        "/slow",
        &[
            ("host", "slow.example"),
            ("authorization", &format!("Bearer {slow_key}")),
        ],
    )
    .await;
    res.assert_problem(504, "gateway_timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_many_refused_keys_is_throttled_and_others_are_not() {
    let app = gateway_app(
        Db::Sqlite,
        ServerArgs {
            auth_failure_limit: Some(5),
            trusted_proxies: Some("127.0.0.1".into()),
            ..Default::default()
        },
    )
    .await;
    let up = upstream().await;
    let api = protected_api(&app, "guarded", json!({"upstream": up.base})).await;
    let (secret, _) = key_of(&app, &api, json!({})).await;
    let from = |ip: &'static str, key: String| {
        let app = &app;
        async move {
            let auth = format!("Bearer {key}");
            through(
                app,
                Method::GET,
                "/x",
                &[("authorization", &auth), ("x-forwarded-for", ip)],
            )
            .await
        }
    };
    for _ in 0..5 {
        let guess = keyward::domain::key::generate("tk_live_", &mut rand::rngs::OsRng);
        from("198.51.100.7", guess.expose().to_owned())
            .await
            .assert_problem(401, "unknown_key");
    }
    let res = from("198.51.100.7", secret.clone()).await;
    res.assert_problem(429, "rate_limited");
    assert!(res.headers.contains_key("retry-after"));
    from("198.51.100.8", secret.clone())
        .await
        .assert_status(200);
    // The management API keeps its own count.
    app.get("/v1/keys").await.assert_status(200);
    app.clock.advance(61_000);
    from("198.51.100.7", secret).await.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_may_speak_http2_and_in_flight_requests_finish_on_shutdown() {
    let app = gateway_app(Db::Sqlite, ServerArgs::default()).await;
    let up = upstream().await;
    let api = protected_api(&app, "h2", json!({"upstream": up.base})).await;
    let (secret, _) = key_of(&app, &api, json!({})).await;
    let gateway = app.gateway.clone().unwrap();
    let tcp = tokio::net::TcpStream::connect(gateway.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<
        _,
        _,
        http_body_util::Empty<Bytes>,
    >(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tcp))
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("{gateway}/over/h2?x=1"))
        .header("authorization", format!("Bearer {secret}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["path"], "/over/h2?x=1");
    // A slow request in flight when the shutdown begins is answered.
    let slow = {
        let (http, url) = (app.http.clone(), format!("{gateway}/slow"));
        let auth = format!("Bearer {secret}");
        tokio::spawn(async move { http.get(url).header("authorization", auth).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = tokio::spawn(app.stop());
    let res = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(res.status(), 200);
    stopped.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_key_by_id_never_the_key_or_the_query() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::helpers::Binary::serve(&[
        ("KEYWARD_DATA_DIR", dir.path().to_str().unwrap()),
        ("KEYWARD_PEPPER", crate::helpers::TEST_PEPPER),
        ("KEYWARD_GATEWAY_LISTEN", "127.0.0.1:0"),
        ("KEYWARD_LOG", "info"),
    ])
    .await;
    let mut gateway = None;
    eventually(Duration::from_secs(5), || {
        let text = server.stderr();
        gateway = text.find("gateway is listening on http://").map(|at| {
            let rest = &text[at + "gateway is listening on ".len()..];
            rest.split_whitespace().next().unwrap().to_owned()
        });
        std::future::ready(gateway.is_some())
    })
    .await;
    let gateway = gateway.unwrap();
    let http = reqwest::Client::new();
    let admin = server.admin_key();
    let api: Value = http
        .post(format!("{}/v1/apis", server.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "Logged", "slug": "logged", "upstream": up.base}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = http
        .post(format!("{}/v1/keys", server.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "k", "api_id": api["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["key"].as_str().unwrap();
    let id = key["id"].as_str().unwrap();
    let url = format!("{gateway}/reports/7?token=query-secret-value");
    eventually(Duration::from_secs(3), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
                == 200
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Without the terminal's colours.
    let log = server.stderr();
    let mut plain = String::with_capacity(log.len());
    let mut rest = log.as_str();
    while let Some(at) = rest.find('\x1b') {
        plain.push_str(&rest[..at]);
        rest = rest[at..].split_once('m').map_or("", |(_, r)| r);
    }
    plain.push_str(rest);
    let line = plain
        .lines()
        .rev()
        .find(|l| l.contains("keyward::gateway::access") && l.contains("status=200"))
        .unwrap_or_else(|| panic!("an access log line: {log}"));
    assert!(line.contains(&format!("key_id={id}")), "{line}");
    assert!(line.contains("path=/reports/7"), "{line}");
    assert!(!log.contains(secret), "the key is never logged");
    assert!(
        !log.contains("query-secret-value"),
        "the query is never logged"
    );
    server.terminate(Duration::from_secs(10)).await;
}

/// Signs the first owner in through the first start's setup link; returns the session cookie and
/// the page's CSRF token.
async fn dashboard_session(app: &TestApp) -> (String, String) {
    let cookie_of = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .unwrap()
    };
    let sign_in = app.http.get(app.url("/sign-in")).send().await.unwrap();
    let csrf = cookie_of(&sign_in, "keyward_csrf");
    let setup = &app.setup_url[app.setup_url.find("/setup/").unwrap()..];
    let password = "correct horse battery staple";
    let res = app
        .http
        .post(app.url(setup))
        .header("cookie", format!("keyward_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "owner@example.com"),
            ("name", "Olivia"),
            ("password", password),
            ("password_confirmation", password),
        ])
        .send()
        .await
        .unwrap();
    let session = format!("keyward_session={}", cookie_of(&res, "keyward_session"));
    let page = app
        .http
        .get(app.url("/apis"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf-token\" content=\"";
    let at = page.find(marker).unwrap() + marker.len();
    (session, page[at..at + 64].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_sets_an_apis_upstream_hosts_and_routes() {
    let app = gateway_app(Db::Sqlite, ServerArgs::default()).await;
    let up = upstream().await;
    let (session, csrf) = dashboard_session(&app).await;
    let id = app.default_api_id.clone();
    let edit = |routes: [[&'static str; 4]; 2]| {
        let (app, session, csrf, upstream) = (&app, session.clone(), csrf.clone(), up.base.clone());
        let path = format!("/apis/{id}/edit");
        async move {
            let mut form = vec![
                ("csrf", csrf),
                ("name", "Default".to_owned()),
                ("key_prefix.live", "kw_live_".to_owned()),
                ("key_prefix.test", "kw_test_".to_owned()),
                ("token_types", "standard".to_owned()),
                ("token_types", "batch".to_owned()),
                ("token_types", "realtime".to_owned()),
                ("scope_name", "reports:read".to_owned()),
                ("scope_description", "Read reports".to_owned()),
                ("upstream", upstream),
                ("hosts", "reports.example".to_owned()),
            ];
            for row in routes {
                for (name, value) in [
                    "route_prefix",
                    "route_methods",
                    "route_types",
                    "route_scopes",
                ]
                .into_iter()
                .zip(row)
                {
                    form.push((name, value.to_owned()));
                }
            }
            app.http
                .post(app.url(&path))
                .header("cookie", session)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    // A bad row is named by its place in the table, and what was typed is shown again.
    let res = edit([
        ["/reports", "get", "", "reports:read"],
        ["/admin", "", "nope", ""],
    ])
    .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Entry 2: must be one of the API&#39;s token types")
            || page.contains("Entry 2: must be one of the API's token types"),
        "{page}"
    );
    assert!(page.contains("value=\"/admin\""));
    let res = edit([["/reports", "get", "", "reports:read"], ["", "", "", ""]]).await;
    assert_eq!(res.status(), 303);
    let api = app.get(&format!("/v1/apis/{id}")).await;
    assert_eq!(api.body["upstream"], up.base.as_str());
    assert_eq!(api.body["hosts"], json!(["reports.example"]));
    assert_eq!(
        api.body["routes"],
        json!([{"path_prefix": "/reports", "methods": ["GET"], "required_scopes": ["reports:read"], "token_types": []}])
    );
    let page = app
        .http
        .get(app.url("/apis"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Gateway routes of Default"),
        "the card lists the routes"
    );
    let (secret, _) = key_of(&app, &id, json!({"scopes": ["reports:read"]})).await;
    let auth = format!("Bearer {secret}");
    let res = through(
        &app,
        Method::GET,
        "/reports/1",
        &[("host", "reports.example"), ("authorization", &auth)],
    )
    .await;
    assert_eq!(res.assert_status(200)["path"], "/reports/1");
}
