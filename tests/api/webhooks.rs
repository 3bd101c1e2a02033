//! Webhooks, end to end: a real receiver on loopback, signatures checked by an implementation of
//! Standard Webhooks that this project did not write, retries on the backoff schedule with a
//! clock the test moves, restarts, redelivery, expiry and quota notices, private addresses,
//! authorization and tenancy; on SQLite and PostgreSQL.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use keyward::domain::Clock;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{Db, Options, TestApp, spawn_app_on, spawn_with};

const DAY_MS: i64 = 86_400_000;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn id(&self) -> String {
        self.header("webhook-id")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inbox {
    got: Mutex<Vec<Got>>,
    /// Statuses to answer with, in order; 200 once they run out.
    answers: Mutex<VecDeque<u16>>,
}

/// An HTTP server on loopback that records every webhook it receives.
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox.got.lock().unwrap().push(Got { headers, body });
    let status = inbox.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start() -> Receiver {
        Self::start_at("127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    async fn start_at(addr: SocketAddr, inbox: Arc<Inbox>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            addr,
            inbox,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn answer(&self, statuses: &[u16]) {
        self.inbox.answers.lock().unwrap().extend(statuses);
    }

    fn got(&self) -> Vec<Got> {
        self.inbox.got.lock().unwrap().clone()
    }

    /// Stops listening; the port is free until [`Receiver::start_at`] binds it again.
    async fn stop(mut self) -> (SocketAddr, Arc<Inbox>) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        (self.addr, self.inbox.clone())
    }

    /// Waits until at least `n` requests arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        wait_until(&format!("{n} webhooks received"), || self.got().len() >= n).await;
        self.got()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a request with the Standard Webhooks reference implementation for Rust.
fn verify_signature(secret: &str, got: &Got) {
    let wh =
        standardwebhooks::Webhook::new(secret).expect("the secret is a Standard Webhooks secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).parse().unwrap());
    }
    wh.verify(&got.body, &headers)
        .unwrap_or_else(|e| panic!("the signature does not verify: {e:?}"));
}

async fn create_hook(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let res = app
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": events, "description": "test receiver"}),
        )
        .await;
    let body = res.assert_status(201).clone();
    assert_eq!(
        res.headers.get("cache-control").unwrap(),
        "no-store",
        "the secret is never cached"
    );
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    app.get(&format!("/v1/webhooks/{hook}/deliveries"))
        .await
        .assert_status(200)
        .as_array()
        .expect("a list of deliveries")
        .clone()
}

/// Waits until the endpoint's newest delivery satisfies `done`; returns it.
async fn wait_delivery(app: &TestApp, hook: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let list = deliveries(app, hook).await;
        if let Some(d) = list.first().filter(|d| done(d)) {
            return d.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out; deliveries: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(rfc3339: &Value) -> i64 {
    let t = OffsetDateTime::parse(rfc3339.as_str().expect("a time"), &Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Lets the worker run a few more times, to show that nothing more happens.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1_300)).await;
}

async fn deliveries_are_signed_per_standard_webhooks_and_carry_the_object(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    let (hook, secret) = create_hook(
        &app,
        &receiver.url(),
        &["key.created", "key.revoked", "member.disabled"],
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let created = app.create_key(json!({"name": "hooked"})).await;
    let key_id = created["id"].as_str().unwrap();
    let full_key = created["key"].as_str().unwrap();
    app.post(
        &format!("/v1/keys/{key_id}/revoke"),
        json!({"reason": "test"}),
    )
    .await
    .assert_status(200);
    let (member, _) = app.member("developer").await;
    app.patch(
        &format!("/v1/users/{member}"),
        json!({"status": "disabled"}),
    )
    .await
    .assert_status(200);
    receiver.wait_for(3).await;
    settle().await;
    let got = receiver.got();
    let mut types: Vec<String> = got
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    // The member's own management key: created with them, revoked when they are disabled.
    assert_eq!(
        types,
        [
            "key.created",
            "key.created",
            "key.revoked",
            "key.revoked",
            "member.disabled"
        ],
    );
    for g in &got {
        verify_signature(&secret, g);
        assert!(g.id().starts_with("msg_"), "{}", g.id());
        assert_eq!(g.header("content-type"), "application/json");
        let body = g.json();
        assert!(body["timestamp"].as_str().is_some());
        let text = String::from_utf8_lossy(&g.body);
        assert!(!text.contains(full_key), "never a key's secret");
        assert!(body["data"].get("key").is_none());
    }
    let revoked = got
        .iter()
        .map(Got::json)
        .find(|b| b["type"] == "key.revoked" && b["data"]["id"] == key_id)
        .expect("the key's revocation");
    assert_eq!(revoked["data"]["status"], "revoked");
    assert_eq!(revoked["data"]["revoke_reason"], "test");
    let disabled = got
        .iter()
        .map(Got::json)
        .find(|b| b["type"] == "member.disabled")
        .unwrap();
    assert_eq!(disabled["data"]["id"], member.as_str());
    assert_eq!(disabled["data"]["status"], "disabled");

    // A tampered body or another secret does not verify.
    let mut forged = got[0].clone();
    forged.body = Bytes::from(format!("{} ", String::from_utf8_lossy(&forged.body)));
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, forged.header(name).parse().unwrap());
    }
    assert!(wh.verify(&forged.body, &headers).is_err());

    // The log: delivered once each, with the receiver's status.
    let log = deliveries(&app, &hook).await;
    assert_eq!(log.len(), 5);
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["response_status"], 200);
        assert!(d["next_attempt_at"].is_null());
        assert!(got.iter().any(|g| g.id() == d["id"].as_str().unwrap()));
    }
    // The secret is shown once: never in a listing, a read or the audit log.
    let b64 = &secret["whsec_".len()..];
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{hook}"),
        "/v1/audit-log".to_owned(),
    ] {
        let res = app.get(&path).await;
        res.assert_status(200);
        assert!(!res.text.contains(b64), "{path} shows the secret");
        assert!(!res.text.contains("whsec_"), "{path}");
    }
    let one = app.get(&format!("/v1/webhooks/{hook}")).await;
    assert_eq!(one.body["url"], receiver.url());
    assert_eq!(
        one.body["events"],
        json!(["key.created", "key.revoked", "member.disabled"])
    );
}

async fn failures_are_retried_on_the_backoff_schedule_then_the_message_fails(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 503]);
    let (hook, secret) = create_hook(&app, &receiver.url(), &["key.created"]).await;
    app.create_key(json!({"name": "retried"})).await;

    let first = wait_delivery(&app, &hook, |d| d["attempts"] == 1).await;
    assert_eq!(first["status"], "pending");
    assert_eq!(first["response_status"], 500);
    let attempt_at = ms(&first["attempt_log"][0]["at"]);
    assert_eq!(ms(&first["next_attempt_at"]) - attempt_at, 5_000, "{first}");
    assert_eq!(first["attempt_log"][0]["response_status"], 500);

    // Not due yet: nothing happens.
    app.clock.advance(4_000);
    settle().await;
    assert_eq!(receiver.got().len(), 1);
    app.clock.advance(1_000);
    let second = wait_delivery(&app, &hook, |d| d["attempts"] == 2).await;
    assert_eq!(second["status"], "pending");
    assert_eq!(second["response_status"], 503);
    let at = ms(&second["attempt_log"][1]["at"]);
    assert_eq!(ms(&second["next_attempt_at"]) - at, 5 * 60_000, "{second}");

    app.clock.advance(5 * 60_000);
    let third = wait_delivery(&app, &hook, |d| d["attempts"] == 3).await;
    assert_eq!(third["status"], "delivered");
    assert_eq!(third["response_status"], 200);
    assert!(third["next_attempt_at"].is_null());
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    for g in &got {
        assert_eq!(g.id(), got[0].id(), "one webhook-id on every attempt");
        assert_eq!(g.body, got[0].body, "the same body on every attempt");
        verify_signature(&secret, g);
    }

    // A receiver that never succeeds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then failed.
    let failing = Receiver::start().await;
    failing.answer(&[500; 10]);
    let (hook, _) = create_hook(&app, &failing.url(), &["key.updated"]).await;
    let key = app.create_key(json!({"name": "doomed"})).await;
    app.patch(
        &format!("/v1/keys/{}", key["id"].as_str().unwrap()),
        json!({"name": "renamed"}),
    )
    .await
    .assert_status(200);
    wait_delivery(&app, &hook, |d| d["attempts"] == 1).await;
    for (n, wait_s) in [
        (2, 5),
        (3, 300),
        (4, 1_800),
        (5, 7_200),
        (6, 18_000),
        (7, 36_000),
    ] {
        app.clock.advance(wait_s * 1_000);
        wait_delivery(&app, &hook, |d| d["attempts"] == n).await;
    }
    let last = deliveries(&app, &hook).await[0].clone();
    assert_eq!(last["status"], "failed", "{last}");
    assert!(last["next_attempt_at"].is_null());
    assert_eq!(last["attempt_log"].as_array().unwrap().len(), 7);
    app.clock.advance(DAY_MS);
    settle().await;
    assert_eq!(failing.got().len(), 7, "no attempt after the last");
}

async fn a_pending_delivery_is_delivered_once_after_a_restart(db: Db) {
    let app = spawn_app_on(db).await;
    let (addr, inbox) = Receiver::start().await.stop().await;
    let url = format!("http://{addr}/hook");
    let (hook, secret) = create_hook(&app, &url, &["key.created"]).await;
    app.create_key(json!({"name": "while down"})).await;
    let first = wait_delivery(&app, &hook, |d| d["attempts"] == 1).await;
    assert_eq!(first["status"], "pending");
    assert!(first["response_status"].is_null());
    assert!(
        first["last_error"].as_str().unwrap().contains("connect"),
        "{first}"
    );

    let app = app.restart_with(|_| {}).await;
    let receiver = Receiver::start_at(addr, inbox).await;
    app.clock.advance(5_000);
    let done = wait_delivery(&app, &hook, |d| d["status"] == "delivered").await;
    assert_eq!(done["attempts"], 2);
    settle().await;
    let got = receiver.got();
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(got[0].id(), done["id"].as_str().unwrap());
    verify_signature(&secret, &got[0]);
}

async fn a_delivered_message_is_sent_again_only_on_request(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    let (hook, secret) = create_hook(&app, &receiver.url(), &["key.created"]).await;
    app.create_key(json!({"name": "once"})).await;
    let done = wait_delivery(&app, &hook, |d| d["status"] == "delivered").await;
    let msg = done["id"].as_str().unwrap().to_owned();
    app.clock.advance(11 * 3_600_000);
    settle().await;
    assert_eq!(receiver.got().len(), 1, "never again after a success");

    let res = app
        .post(
            &format!("/v1/webhooks/{hook}/deliveries/{msg}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(res.assert_status(202)["status"], "pending");
    let again = receiver.wait_for(2).await;
    assert_eq!(again[1].id(), msg, "the same webhook-id");
    verify_signature(&secret, &again[1]);
    let d = wait_delivery(&app, &hook, |d| d["attempts"] == 2).await;
    assert_eq!(d["status"], "delivered");
    settle().await;
    assert_eq!(receiver.got().len(), 2, "one new attempt per request");

    app.post(
        &format!("/v1/webhooks/{hook}/deliveries/msg_0000000000000000/redeliver"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    // Deleting the endpoint takes its log with it.
    app.delete(&format!("/v1/webhooks/{hook}"))
        .await
        .assert_status(204);
    app.get(&format!("/v1/webhooks/{hook}/deliveries"))
        .await
        .assert_problem(404, "not_found");
    app.post(
        &format!("/v1/webhooks/{hook}/deliveries/{msg}/redeliver"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
}

async fn expiry_notices_are_raised_once_per_threshold_then_expired(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    let (hook, _) = create_hook(&app, &receiver.url(), &["key.expiring", "key.expired"]).await;
    let now = app.clock.now_ms();
    let expires = now + 40 * DAY_MS;
    let expires_at = OffsetDateTime::from_unix_timestamp(expires / 1_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let key = app
        .create_key(json!({"name": "expiring", "expires_at": expires_at}))
        .await;
    let key_id = key["id"].as_str().unwrap();
    let expires = expires / 1_000 * 1_000;
    settle().await;
    assert!(receiver.got().is_empty(), "40 days left: nothing yet");

    let mut seen = 0;
    for (at, event) in [
        (expires - 30 * DAY_MS + 1_000, "key.expiring"),
        (expires - 7 * DAY_MS + 1_000, "key.expiring"),
        (expires - DAY_MS + 1_000, "key.expiring"),
        (expires + 1_000, "key.expired"),
    ] {
        app.clock.set(at);
        seen += 1;
        let got = receiver.wait_for(seen).await;
        let body = got[seen - 1].json();
        assert_eq!(body["type"], event);
        assert_eq!(body["data"]["id"], key_id);
        assert_eq!(body["data"]["expires_at"], key["expires_at"]);
        // Scanned again a few minutes later: the same threshold is not raised twice.
        app.clock.set(app.clock.now_ms() + 3 * 60_000);
        settle().await;
        assert_eq!(receiver.got().len(), seen, "once per threshold");
    }
    assert_eq!(receiver.got()[3].json()["data"]["status"], "expired");
    assert_eq!(deliveries(&app, &hook).await.len(), 4);
}

async fn quota_notices_are_raised_once_per_crossing(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    create_hook(
        &app,
        &receiver.url(),
        &["key.quota_low", "key.quota_exhausted"],
    )
    .await;
    let key = app
        .create_key(json!({"name": "metered", "quota": {"remaining": 10}}))
        .await;
    let secret = key["key"].as_str().unwrap();
    for _ in 0..8 {
        assert_eq!(app.verify(secret, json!({})).await["valid"], true);
    }
    settle().await;
    assert!(receiver.got().is_empty(), "2 of 10 left: above 10%");
    assert_eq!(app.verify(secret, json!({})).await["valid"], true);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "key.quota_low");
    assert_eq!(got[0].json()["data"]["quota"]["remaining"], 1);
    assert_eq!(app.verify(secret, json!({})).await["valid"], true);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].json()["type"], "key.quota_exhausted");
    for _ in 0..3 {
        assert_eq!(
            app.verify(secret, json!({})).await["code"],
            "QUOTA_EXCEEDED"
        );
    }
    settle().await;
    assert_eq!(receiver.got().len(), 2, "once per crossing");
}

async fn private_addresses_are_refused_when_not_allowed(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    // Allowed in development: a receiver on this machine.
    let (hook, _) = create_hook(&app, &receiver.url(), &["key.created"]).await;
    let app = app.restart_with(|c| c.webhooks.allow_private = false).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "https://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/hook",
        "http://[::ffff:192.168.1.1]/hook",
    ] {
        let res = app
            .post(
                "/v1/webhooks",
                json!({"url": url, "events": ["key.created"]}),
            )
            .await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), ["url"], "{url}");
        assert!(res.text.contains("private"), "{}", res.text);
    }
    app.patch(
        &format!("/v1/webhooks/{hook}"),
        json!({"url": "http://127.0.0.2/x"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Checked again at delivery: the endpoint saved before resolves to loopback.
    app.create_key(json!({"name": "not sent"})).await;
    let d = wait_delivery(&app, &hook, |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending");
    assert!(d["last_error"].as_str().unwrap().contains("private"), "{d}");
    assert!(receiver.got().is_empty(), "never contacted");
}

async fn endpoints_are_validated(db: Db) {
    let app = spawn_app_on(db).await;
    let cases = [
        (
            json!({"url": "ftp://example.com/x", "events": ["key.created"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/x", "events": ["key.created"]}),
            "url",
        ),
        (
            json!({"url": "example.com/hook", "events": ["key.created"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["key.nope"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://example.com/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["key.created"], "description": "x".repeat(501)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let res = app.post("/v1/webhooks", body.clone()).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), [field], "{body}");
        assert!(!res.text.contains("user:pw"), "never repeats a credential");
    }
    app.post("/v1/webhooks", json!({"url": "https://example.com/x"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_raw("/v1/webhooks", "application/json", "{\"url\":")
        .await
        .assert_problem(400, "bad_request");
    let res = app
        .post(
            "/v1/webhooks",
            json!({"url": "https://example.com/x", "events": ["key.created", "key.created", "security.alert"]}),
        )
        .await;
    assert_eq!(
        res.assert_status(201)["events"],
        json!(["key.created", "security.alert"])
    );
    let id = res.body["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/webhooks/{id}"),
            json!({"enabled": false, "events": ["key.revoked"], "description": null}),
        )
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["events"], json!(["key.revoked"]));
    assert!(body["description"].is_null());
    app.patch(&format!("/v1/webhooks/{id}"), json!({"events": ["nope"]}))
        .await
        .assert_problem(422, "validation_failed");
}

async fn only_admins_of_the_organization_reach_its_webhooks(db: Db) {
    let app = spawn_app_on(db).await;
    let receiver = Receiver::start().await;
    let (hook, _) = create_hook(&app, &receiver.url(), &["key.created"]).await;
    for role in ["developer", "viewer"] {
        let (_, key) = app.member(role).await;
        app.post_as(
            &key,
            "/v1/webhooks",
            json!({"url": receiver.url(), "events": ["key.created"]}),
        )
        .await
        .assert_problem(403, "forbidden");
        app.get_as(&key, "/v1/webhooks")
            .await
            .assert_problem(403, "forbidden");
        app.get_as(&key, &format!("/v1/webhooks/{hook}/deliveries"))
            .await
            .assert_problem(403, "forbidden");
        app.delete_as(&key, &format!("/v1/webhooks/{hook}"))
            .await
            .assert_problem(403, "forbidden");
    }
    // The owner's key without org:admin.
    let narrow = app.management_key(&["keys:read", "keys:write"]).await;
    let res = app.get_as(&narrow, "/v1/webhooks").await;
    res.assert_problem(403, "forbidden");
    assert!(res.text.contains("org:admin"), "{}", res.text);

    // Another organization's endpoint does not exist for this one.
    let other =
        keyward::service::bootstrap::create_org(&app.ctx, "Other", "other@example.com", "pro")
            .await
            .unwrap();
    let other_key = other.secret.expose().to_owned();
    let res = app
        .post_as(
            &other_key,
            "/v1/webhooks",
            json!({"url": receiver.url(), "events": ["key.created"]}),
        )
        .await;
    let theirs = res.assert_status(201)["id"].as_str().unwrap().to_owned();
    let their_receiver = Receiver::start().await;
    app.patch_as(
        &other_key,
        &format!("/v1/webhooks/{theirs}"),
        json!({"url": their_receiver.url()}),
    )
    .await
    .assert_status(200);
    app.get(&format!("/v1/webhooks/{theirs}"))
        .await
        .assert_problem(404, "not_found");
    app.patch(&format!("/v1/webhooks/{theirs}"), json!({"enabled": false}))
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/webhooks/{theirs}/deliveries"))
        .await
        .assert_problem(404, "not_found");
    app.delete(&format!("/v1/webhooks/{theirs}"))
        .await
        .assert_problem(404, "not_found");
    let mine = app.get("/v1/webhooks").await;
    let ids: Vec<&str> = mine.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [hook.as_str()]);
    // Its events go to its own endpoint only.
    app.create_key(json!({"name": "mine"})).await;
    wait_until("the organization's own event", || {
        receiver
            .got()
            .iter()
            .any(|g| g.json()["data"]["name"] == "mine")
    })
    .await;
    settle().await;
    assert!(
        their_receiver.got().is_empty(),
        "another organization's event"
    );
    app.get_as(&other_key, &format!("/v1/webhooks/{theirs}"))
        .await
        .assert_status(200);
}

/// Two instances on one PostgreSQL database: every message is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_deliver_each_message_once() {
    let app = spawn_with(Options {
        db: Db::Postgres,
        ..Default::default()
    })
    .await;
    let second = keyward::Application::build_with_clock(app.config.clone(), app.clock.clone())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let receiver = Receiver::start().await;
    let (hook, _) = create_hook(&app, &receiver.url(), &["key.created"]).await;
    const N: usize = 30;
    for i in 0..N {
        app.create_key(json!({"name": format!("k{i}")})).await;
    }
    receiver.wait_for(N).await;
    settle().await;
    let got = receiver.got();
    let mut ids: Vec<String> = got.iter().map(Got::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N);
    assert_eq!(got.len(), N, "no message delivered twice");
    let log = deliveries(&app, &hook).await;
    assert!(
        log.iter()
            .all(|d| d["attempts"] == 1 && d["status"] == "delivered")
    );
    let _ = stop.send(());
    second.await.unwrap().unwrap();
}

async fn exposed_keys_and_alerts_from_other_parts_are_delivered_and_the_queue_is_measured(db: Db) {
    let app = spawn_app_on(db).await;
    let (addr, inbox) = Receiver::start().await.stop().await;
    let url = format!("http://{addr}/hook");
    let (hook, secret) = create_hook(&app, &url, &["key.exposed", "security.alert"]).await;
    let key = app.create_key(json!({"name": "leaky"})).await;
    let full = key["key"].as_str().unwrap();
    // A key in a URL: refused, flagged, and told.
    app.get(&format!("/v1/keys?token={full}"))
        .await
        .assert_problem(400, "key_in_url");
    // The key in the URL is also a security event (`key_exposed`), which raises its alert. An event
    // name that is not a webhook event queues nothing.
    assert_eq!(
        keyward::webhooks::enqueue_event(&app.ctx, &app.org_id, "no.such_event", json!({}))
            .await
            .unwrap(),
        0
    );
    wait_all_attempted(&app, &hook, 2).await;
    assert_eq!(
        keyward::webhooks::queue_depth(&app.ctx).await.unwrap(),
        2,
        "both wait while the receiver is down"
    );
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.text.contains("\nkeyward_webhook_queue_depth 2\n"),
        "/metrics shows the queue"
    );

    let receiver = Receiver::start_at(addr, inbox).await;
    app.clock.advance(5_000);
    let got = receiver.wait_for(2).await;
    for g in &got {
        verify_signature(&secret, g);
    }
    let exposed = got
        .iter()
        .map(Got::json)
        .find(|b| b["type"] == "key.exposed")
        .unwrap();
    assert_eq!(exposed["data"]["id"], key["id"]);
    assert!(exposed["data"]["exposed_at"].is_string());
    assert!(!String::from_utf8_lossy(&got[0].body).contains(full));
    let alerted = got
        .iter()
        .map(Got::json)
        .find(|b| b["type"] == "security.alert")
        .unwrap();
    let event = &alerted["data"];
    assert_eq!(event["type"], "key_exposed");
    assert_eq!(event["key_id"], key["id"]);
    assert_eq!(event["prefix"], key["prefix"]);
    assert!(event["id"].as_str().unwrap().starts_with("sev_"));
    for g in &got {
        assert!(
            !String::from_utf8_lossy(&g.body).contains(full),
            "no secret"
        );
    }
    let started = std::time::Instant::now();
    while keyward::webhooks::queue_depth(&app.ctx).await.unwrap() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the queue drains"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the endpoint has `n` messages, each attempted at least once.
async fn wait_all_attempted(app: &TestApp, hook: &str, n: usize) {
    let started = std::time::Instant::now();
    loop {
        let list = deliveries(app, hook).await;
        if list.len() == n && list.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{list:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Db::Sqlite).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Db::Postgres).await; })*
        }
    };
}

on_both_backends!(
    deliveries_are_signed_per_standard_webhooks_and_carry_the_object,
    failures_are_retried_on_the_backoff_schedule_then_the_message_fails,
    a_pending_delivery_is_delivered_once_after_a_restart,
    a_delivered_message_is_sent_again_only_on_request,
    expiry_notices_are_raised_once_per_threshold_then_expired,
    quota_notices_are_raised_once_per_crossing,
    private_addresses_are_refused_when_not_allowed,
    endpoints_are_validated,
    only_admins_of_the_organization_reach_its_webhooks,
    exposed_keys_and_alerts_from_other_parts_are_delivered_and_the_queue_is_measured,
);

/// The Webhooks page in a real browser: an owner adds an endpoint (a mistake first), sees its
/// secret once, reads the delivery log, redelivers, pauses and deletes it; a developer is offered
/// none of it. Screenshots at 1280, 1024 and 390 px.
#[tokio::test]
async fn an_admin_manages_webhooks_in_the_dashboard() {
    use crate::browser::Browser;
    let app = spawn_app_on(Db::Sqlite).await;
    let receiver = Receiver::start().await;
    let b = Browser::start(&app.base, "webhooks").await;
    let setup = &app.setup_url[app.setup_url.find("/setup/").unwrap()..];
    b.go(setup).await;
    b.fill("#email", "olivia@example.com").await;
    b.fill("#name", "Olivia").await;
    b.fill("#password", "correct horse battery staple").await;
    b.fill("#password_confirmation", "correct horse battery staple")
        .await;
    b.click("form button[type=submit]").await;
    b.until_text("Your password is set").await;

    b.click("nav a[href='/webhooks']").await;
    b.until_text("No endpoints yet").await;
    b.shoot("empty").await;

    // A mistake first: the server explains it, the dialog stays open with what was typed.
    b.click(".page-actions button[data-open='create-webhook']")
        .await;
    b.until_open("create-webhook").await;
    b.fill("#new-hook-url", "ftp://example.com/hook").await;
    b.click("[id='new-hook-ev-key.revoked']").await;
    b.click("form[action='/webhooks'] button[type=submit]")
        .await;
    b.until_text("an absolute http:// or https:// URL").await;
    b.until_open("create-webhook").await;
    b.shoot("create-error").await;
    b.fill("#new-hook-url", &receiver.url()).await;
    b.click("[id='new-hook-ev-key.created']").await;
    b.fill("#new-hook-description", "Ops channel").await;
    b.click("form[action='/webhooks'] button[type=submit]")
        .await;

    // The secret, once, after a redirect.
    b.until_open("webhook-created").await;
    let secret = b.value("#new-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(b.path().await, "/webhooks");
    b.shoot("secret").await;
    b.client.refresh().await.unwrap();
    b.until_text("shown once and is no longer available").await;
    assert!(!b.text().await.contains(&secret));

    // An event, delivered and signed with that secret; the log shows it; redeliver it.
    app.create_key(json!({"name": "from the dashboard test"}))
        .await;
    let got = receiver.wait_for(1).await;
    verify_signature(&secret, &got[0]);
    b.click(".webhooks-table a[href^='/webhooks/wh_']").await;
    b.until_text("Deliveries").await;
    b.client.refresh().await.unwrap();
    b.until_text("Delivered").await;
    b.shoot("detail").await;
    b.click("form[action$='/redeliver'] button[type=submit]")
        .await;
    b.until_text("Queued again").await;
    let again = receiver.wait_for(2).await;
    assert_eq!(again[1].id(), got[0].id());

    // Edit the events, pause, delete.
    b.click("[id='hook-ev-key.expiring']").await;
    b.click("#edit-webhook button[type=submit]").await;
    b.until_text("Saved the endpoint").await;
    let hook = app.get("/v1/webhooks").await.body["data"][0].clone();
    assert_eq!(
        hook["events"],
        json!(["key.created", "key.revoked", "key.expiring"])
    );
    b.click(".page-actions form.inline button").await;
    b.until_text("Endpoint paused").await;
    b.shoot("paused").await;
    assert_eq!(
        app.get("/v1/webhooks").await.body["data"][0]["enabled"],
        false
    );
    b.click(".page-actions button[data-open='delete-webhook']")
        .await;
    b.until_open("delete-webhook").await;
    b.click("#delete-webhook button[type=submit]").await;
    b.until_text("Endpoint deleted").await;
    assert_eq!(app.get("/v1/webhooks").await.body["data"], json!([]));

    // A developer is offered no Webhooks page, and is refused it.
    app.post(
        "/v1/users",
        json!({"email": "dev@example.com", "name": "Dev", "role": "developer",
               "password": "another long password here"}),
    )
    .await
    .assert_status(201);
    b.click("form[action='/sign-out'] button").await;
    b.until_text("You have signed out").await;
    b.go("/sign-in").await;
    b.fill("#email", "dev@example.com").await;
    b.fill("#password", "another long password here").await;
    b.click("form[action='/sign-in'] button[type=submit]").await;
    b.find(".page-actions").await;
    assert!(!b.has("nav a[href='/webhooks']").await);
    b.go("/webhooks").await;
    b.until_text("org:admin").await;
    b.shoot("developer-refused").await;
    b.stop().await;
}

/// `keyward webhooks` against a running server.
#[tokio::test]
async fn webhooks_are_managed_from_the_command_line() {
    let app = spawn_app_on(Db::Sqlite).await;
    let receiver = Receiver::start().await;
    let kw = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("webhooks")
            .args(args)
            .env("KEYWARD_URL", &app.base)
            .env("KEYWARD_API_KEY", &app.admin_key);
        async move { cmd.output().await.expect("the binary runs") }
    };
    let out = kw(vec![
        "create".into(),
        "--endpoint".into(),
        receiver.url(),
        "--event".into(),
        "key.created".into(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        secret.starts_with("whsec_"),
        "the secret alone on stdout: {secret}"
    );
    let hook = app.get("/v1/webhooks").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = kw(vec!["list".into()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&hook) && text.contains("key.created"),
        "{text}"
    );
    assert!(!text.contains(&secret));

    app.create_key(json!({"name": "cli"})).await;
    let got = receiver.wait_for(1).await;
    verify_signature(&secret, &got[0]);
    wait_delivery(&app, &hook, |d| d["status"] == "delivered").await;
    let out = kw(vec!["deliveries".into(), hook.clone()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&got[0].id()) && text.contains("delivered"),
        "{text}"
    );
    let out = kw(vec!["redeliver".into(), hook.clone(), got[0].id()]).await;
    assert!(out.status.success(), "{out:?}");
    receiver.wait_for(2).await;

    let out = kw(vec![
        "update".into(),
        hook.clone(),
        "--endpoint".into(),
        "gopher://x".into(),
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("url"), "{err}");
    let out = kw(vec!["delete".into(), hook.clone()]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.get("/v1/webhooks").await.body["data"], json!([]));
}
