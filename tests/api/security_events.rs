//! Security events: each of the five detectors triggered through the verify endpoint (and the
//! gateway), found through `GET /v1/security-events` with the right key prefix, address and
//! reason; one burst, one event; filters, paging, scopes, and other organizations.

use std::time::Duration;

use keyward::config::ServerArgs;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Db, Options, Res, TestApp, spawn_app_on, spawn_with};

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// The events `GET /v1/security-events?query` lists now, as the admin.
async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let res = app.get(&format!("/v1/security-events?{query}")).await;
    res.assert_status(200)["data"].as_array().unwrap().clone()
}

/// Waits (at most 10 s: the detectors write every second) until the events of `query` satisfy
/// `check`; returns them.
async fn events_until(app: &TestApp, query: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let found = events(app, query).await;
        if check(&found) {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events of {query:?} never matched: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets the detectors' background writer run at least twice, so that what it would write is
/// written.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(2_300)).await;
}

/// A new key of the default API; returns (secret, id, prefix).
async fn new_key(app: &TestApp, name: &str) -> (String, String, String) {
    let k = app.create_key(json!({"name": name})).await;
    (
        k["key"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
        k["prefix"].as_str().unwrap().to_owned(),
    )
}

/// Asserts the contract's shape of an event, and that it holds no secret.
#[track_caller]
fn assert_shape(e: &Value, secrets: &[&str]) {
    let o = e.as_object().unwrap();
    let mut fields: Vec<&str> = o.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "count",
            "created_at",
            "detail",
            "id",
            "ip",
            "key_id",
            "prefix",
            "severity",
            "type"
        ]
    );
    let id = e["id"].as_str().unwrap();
    assert!(id.starts_with("sev_") && id.len() == 20, "{id}");
    let text = e.to_string();
    for s in secrets {
        assert!(!text.contains(s), "an event holds a secret: {text}");
    }
}

#[tokio::test]
async fn refused_keys_from_one_address_raise_one_event_per_burst_on_sqlite() {
    refused_keys_from_one_address_raise_one_event_per_burst(Db::Sqlite).await;
}

#[tokio::test]
async fn refused_keys_from_one_address_raise_one_event_per_burst_on_postgres() {
    refused_keys_from_one_address_raise_one_event_per_burst(Db::Postgres).await;
}

async fn refused_keys_from_one_address_raise_one_event_per_burst(db: Db) {
    let app = spawn_app_on(db).await;
    // 19 refusals are not enough.
    for _ in 0..19 {
        let v = app
            .verify("kw_live_000000000000", json!({"ip": "198.51.100.7"}))
            .await;
        assert_eq!(v["code"], "MALFORMED");
    }
    settle().await;
    assert!(events(&app, "type=auth_failures").await.is_empty());
    // The 20th within the minute raises the event; the rest of the burst adds to it.
    let (secret, _, _) = new_key(&app, "victim").await;
    let unknown = format!("{}{}", &secret[..secret.len() - 9], "0deadbeef");
    for i in 0..11 {
        let token = if i % 2 == 0 {
            "kw_live_000000000000"
        } else {
            unknown.as_str()
        };
        app.verify(token, json!({"ip": "198.51.100.7"})).await;
    }
    let found = events_until(&app, "type=auth_failures", |e| {
        e.len() == 1 && e[0]["count"] == 30
    })
    .await;
    let e = &found[0];
    assert_shape(e, &[&secret, &unknown]);
    assert_eq!(e["type"], "auth_failures");
    assert_eq!(e["severity"], "high");
    assert_eq!(e["ip"], "198.51.100.7");
    assert_eq!(e["key_id"], Value::Null);
    assert_eq!(e["prefix"], Value::Null);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("30 refused keys from 198.51.100.7 in "),
        "{e}"
    );
    // Another address's refusals are its own.
    for _ in 0..5 {
        app.verify("kw_live_000000000000", json!({"ip": "203.0.113.9"}))
            .await;
    }
    // After a quiet minute, a new burst is a new event.
    app.clock.advance(MINUTE + 1);
    for _ in 0..20 {
        app.verify("kw_live_000000000000", json!({"ip": "198.51.100.7"}))
            .await;
    }
    let found = events_until(&app, "type=auth_failures", |e| e.len() == 2).await;
    assert_eq!(found[0]["count"], 20, "newest first: {found:#?}");
    assert_eq!(found[1]["count"], 30);
    assert!(found.iter().all(|e| e["ip"] == "198.51.100.7"));
}

#[tokio::test]
async fn refused_verifications_of_one_key_raise_an_event_naming_it() {
    let app = spawn_app_on(Db::Sqlite).await;
    let (secret, id, prefix) = new_key(&app, "revoked soon").await;
    app.post(&format!("/v1/keys/{id}/revoke"), json!({"reason": "test"}))
        .await
        .assert_status(200);
    // From twenty addresses, so that no address reaches the threshold on its own.
    for i in 0..20 {
        let v = app
            .verify(&secret, json!({"ip": format!("198.51.100.{}", i + 1)}))
            .await;
        assert_eq!(v["code"], "REVOKED");
    }
    let found = events_until(&app, "type=auth_failures", |e| !e.is_empty()).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = &found[0];
    assert_shape(e, &[&secret]);
    assert_eq!(e["key_id"], id);
    assert_eq!(e["prefix"], prefix);
    assert_eq!(e["ip"], "198.51.100.1");
    assert_eq!(e["count"], 20);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("20 refused verifications of key {prefix} in ")),
        "{e}"
    );
    // Filtered by the key, it is there.
    let by_key = events(&app, &format!("key_id={id}")).await;
    assert_eq!(by_key.len(), 1);
}

#[tokio::test]
async fn a_key_used_from_a_new_network_raises_new_ip_on_sqlite() {
    a_key_used_from_a_new_network_raises_new_ip(Db::Sqlite).await;
}

#[tokio::test]
async fn a_key_used_from_a_new_network_raises_new_ip_on_postgres() {
    a_key_used_from_a_new_network_raises_new_ip(Db::Postgres).await;
}

async fn a_key_used_from_a_new_network_raises_new_ip(db: Db) {
    let app = spawn_app_on(db).await;
    let (secret, id, prefix) = new_key(&app, "roaming").await;
    // The first use is learned, not reported; so is another address of the same /24.
    assert_eq!(
        app.verify(&secret, json!({"ip": "198.51.100.7"})).await["code"],
        "VALID"
    );
    settle().await;
    app.verify(&secret, json!({"ip": "198.51.100.99"})).await;
    settle().await;
    assert!(events(&app, "type=new_ip").await.is_empty());
    // Another network.
    for _ in 0..3 {
        app.verify(&secret, json!({"ip": "203.0.113.5"})).await;
    }
    let found = events_until(&app, "type=new_ip", |e| !e.is_empty()).await;
    assert_eq!(found.len(), 1, "one event for the network: {found:#?}");
    let e = &found[0];
    assert_shape(e, &[&secret]);
    assert_eq!(e["severity"], "medium");
    assert_eq!(e["key_id"], id);
    assert_eq!(e["prefix"], prefix);
    assert_eq!(e["ip"], "203.0.113.5");
    assert!(
        e["detail"].as_str().unwrap().contains("203.0.113.0/24"),
        "{e}"
    );
    // IPv6 counts per /64.
    app.verify(&secret, json!({"ip": "2001:db8:1:2::1"})).await;
    events_until(&app, "type=new_ip", |e| e.len() == 2).await;
    app.verify(&secret, json!({"ip": "2001:db8:1:2:ffff::7"}))
        .await;
    settle().await;
    assert_eq!(events(&app, "type=new_ip").await.len(), 2);
    // A network not used for more than 30 days is new again.
    app.clock.advance(31 * DAY);
    app.verify(&secret, json!({"ip": "198.51.100.7"})).await;
    let found = events_until(&app, "type=new_ip", |e| e.len() == 3).await;
    assert_eq!(found[0]["ip"], "198.51.100.7");
}

#[tokio::test]
async fn networks_and_grace_period_events_are_remembered_across_a_restart() {
    let app = spawn_app_on(Db::Sqlite).await;
    let (secret, _, _) = new_key(&app, "steady").await;
    app.verify(&secret, json!({"ip": "198.51.100.7"})).await;
    // An old key used in its grace period: one event, which a restart does not repeat.
    let (old, old_id, _) = new_key(&app, "rotated").await;
    app.post(
        &format!("/v1/keys/{old_id}/rotate"),
        json!({"grace_period_s": 7200}),
    )
    .await
    .assert_status(201);
    app.verify(&old, json!({})).await;
    events_until(&app, "type=grace_period_use", |e| e.len() == 1).await;
    settle().await;
    let config = app.config.clone();
    let admin = app.admin_key.clone();
    let now = keyward::domain::Clock::now_ms(&*app.clock);
    let _dir = app.stop().await;
    // The same database, a new process: the known network raises nothing, a new one does.
    let clock = std::sync::Arc::new(keyward::domain::ManualClock::new(now + MINUTE));
    let restarted = keyward::Application::build_with_clock(config, clock)
        .await
        .expect("restarts");
    let base = format!("http://{}", restarted.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(restarted.run_until(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let verify = |ip: &'static str| {
        http.post(format!("{base}/v1/keys/verify"))
            .bearer_auth(&admin)
            .json(&json!({"key": secret, "ip": ip}))
            .send()
    };
    let list = || async {
        let res = http
            .get(format!("{base}/v1/security-events?type=new_ip"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        body["data"].as_array().unwrap().clone()
    };
    assert_eq!(verify("198.51.100.8").await.unwrap().status(), 200);
    let used = http
        .post(format!("{base}/v1/keys/verify"))
        .bearer_auth(&admin)
        .json(&json!({"key": old}))
        .send()
        .await
        .unwrap();
    assert_eq!(used.json::<Value>().await.unwrap()["code"], "VALID");
    settle().await;
    assert!(list().await.is_empty());
    let grace: Value = http
        .get(format!("{base}/v1/security-events?type=grace_period_use"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        grace["data"].as_array().unwrap().len(),
        1,
        "within the hour, not again: {grace}"
    );
    verify("203.0.113.5").await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let found = list().await;
        if !found.is_empty() {
            assert_eq!(found.len(), 1);
            assert_eq!(found[0]["ip"], "203.0.113.5");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_usage_spike_raises_one_event() {
    let app = spawn_app_on(Db::Sqlite).await;
    let (secret, id, prefix) = new_key(&app, "bursty").await;
    for _ in 0..5 {
        app.verify(&secret, json!({})).await;
    }
    // The next minute: 99 requests are not a spike, the 100th is.
    app.clock.advance(MINUTE);
    for _ in 0..99 {
        app.verify(&secret, json!({})).await;
    }
    settle().await;
    assert!(events(&app, "type=usage_spike").await.is_empty());
    for _ in 0..21 {
        app.verify(&secret, json!({})).await;
    }
    let found = events_until(&app, "type=usage_spike", |e| {
        e.len() == 1 && e[0]["count"] == 120
    })
    .await;
    let e = &found[0];
    assert_shape(e, &[&secret]);
    assert_eq!(e["severity"], "medium");
    assert_eq!(e["key_id"], id);
    assert_eq!(e["prefix"], prefix);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("average minute over the previous hour"),
        "{e}"
    );
    // A key as busy as it always is does not spike: 120 a minute is now its usual.
    app.clock.advance(MINUTE);
    for _ in 0..100 {
        app.verify(&secret, json!({})).await;
    }
    settle().await;
    assert_eq!(events(&app, "type=usage_spike").await.len(), 1);
}

#[tokio::test]
async fn the_old_key_of_a_rotation_used_in_its_grace_period_raises_one_event_an_hour_on_sqlite() {
    the_old_key_of_a_rotation_used_in_its_grace_period_raises_one_event_an_hour(Db::Sqlite).await;
}

#[tokio::test]
async fn the_old_key_of_a_rotation_used_in_its_grace_period_raises_one_event_an_hour_on_postgres() {
    the_old_key_of_a_rotation_used_in_its_grace_period_raises_one_event_an_hour(Db::Postgres).await;
}

async fn the_old_key_of_a_rotation_used_in_its_grace_period_raises_one_event_an_hour(db: Db) {
    let app = spawn_app_on(db).await;
    let (old, id, prefix) = new_key(&app, "rotating").await;
    let rotated = app
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_period_s": 7200}),
        )
        .await
        .assert_status(201)
        .clone();
    let new = rotated["key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(
            app.verify(&old, json!({"ip": "198.51.100.7"})).await["code"],
            "VALID"
        );
    }
    // The new key is not reported.
    app.verify(&new, json!({"ip": "198.51.100.7"})).await;
    let found = events_until(&app, "type=grace_period_use", |e| {
        e.len() == 1 && e[0]["count"] == 3
    })
    .await;
    let e = &found[0];
    assert_shape(e, &[&old, &new]);
    assert_eq!(e["severity"], "low");
    assert_eq!(e["key_id"], id);
    assert_eq!(e["prefix"], prefix);
    assert_eq!(e["ip"], "198.51.100.7");
    assert!(
        e["detail"].as_str().unwrap().contains("grace period"),
        "{e}"
    );
    // Within the hour: the same event. After it: one more.
    app.clock.advance(30 * MINUTE);
    app.verify(&old, json!({})).await;
    events_until(&app, "type=grace_period_use", |e| e[0]["count"] == 4).await;
    app.clock.advance(31 * MINUTE);
    app.verify(&old, json!({})).await;
    let found = events_until(&app, "type=grace_period_use", |e| e.len() == 2).await;
    assert!(found.iter().all(|e| e["key_id"] == id));
    // After the grace period the old key is refused, and that is no grace-period use.
    app.clock.advance(2 * 60 * MINUTE);
    assert_eq!(app.verify(&old, json!({})).await["code"], "REVOKED");
    settle().await;
    assert_eq!(events(&app, "type=grace_period_use").await.len(), 2);
}

#[tokio::test]
async fn a_key_in_the_url_of_the_verify_endpoint_raises_key_exposed_once() {
    let app = spawn_app_on(Db::Sqlite).await;
    let (secret, id, prefix) = new_key(&app, "leaky").await;
    // Eight at once: the key is flagged once, so one event.
    let path = format!("/v1/keys/verify?key={secret}");
    let body = json!({"key": secret});
    let sent = (0..8).map(|_| app.send(Method::POST, &path, Some(&app.admin_key), Some(&body)));
    for res in futures_util::future::join_all(sent).await {
        res.assert_problem(400, "key_in_url");
    }
    let found = events_until(&app, "type=key_exposed", |e| !e.is_empty()).await;
    assert_eq!(found.len(), 1, "one event per key: {found:#?}");
    let e = &found[0];
    assert_shape(e, &[&secret]);
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["key_id"], id);
    assert_eq!(e["prefix"], prefix);
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["count"], 1);
    assert!(e["detail"].as_str().unwrap().contains("URL"), "{e}");
    // The audit log names the key by its prefix only.
    let audit = app.get("/v1/audit-log?action=key.exposed").await;
    assert!(!audit.text.contains(&secret));
}

/// A Keyward with its gateway and an API served by it (its upstream is never reached: every
/// request here is refused).
async fn gateway_app(db: Db) -> (TestApp, String) {
    let app = spawn_with(Options {
        db,
        args: ServerArgs {
            gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let api = app.create_api("guarded", &["transcripts:read"]).await;
    let api_id = api["id"].as_str().unwrap().to_owned();
    app.patch(
        &format!("/v1/apis/{api_id}"),
        json!({"upstream": "http://127.0.0.1:9"}),
    )
    .await
    .assert_status(200);
    (app, api_id)
}

async fn through_gateway(app: &TestApp, path: &str, key: Option<&str>) -> Res {
    let mut req = app
        .http
        .get(format!("{}{path}", app.gateway.as_ref().unwrap()));
    if let Some(k) = key {
        req = req.bearer_auth(k);
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

#[tokio::test]
async fn refused_keys_and_exposed_keys_at_the_gateway_raise_events_on_sqlite() {
    refused_keys_and_exposed_keys_at_the_gateway_raise_events(Db::Sqlite).await;
}

#[tokio::test]
async fn refused_keys_and_exposed_keys_at_the_gateway_raise_events_on_postgres() {
    refused_keys_and_exposed_keys_at_the_gateway_raise_events(Db::Postgres).await;
}

async fn refused_keys_and_exposed_keys_at_the_gateway_raise_events(db: Db) {
    let (app, api_id) = gateway_app(db).await;
    let k = app
        .create_key(json!({"name": "gateway key", "api_id": api_id}))
        .await;
    let secret = k["key"].as_str().unwrap().to_owned();
    let unknown = format!("{}{}", &secret[..secret.len() - 9], "0deadbeef");
    for _ in 0..22 {
        through_gateway(&app, "/anything", Some(&unknown))
            .await
            .assert_problem(401, "malformed_credentials");
    }
    let found = events_until(&app, "type=auth_failures", |e| {
        e.len() == 1 && e[0]["count"] == 22
    })
    .await;
    assert_shape(&found[0], &[&secret, &unknown]);
    assert_eq!(found[0]["ip"], "127.0.0.1");
    assert!(
        found[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("22 refused keys from 127.0.0.1"),
        "{}",
        found[0]
    );
    // The key in a URL through the gateway.
    through_gateway(&app, &format!("/anything?api_key={secret}"), None)
        .await
        .assert_problem(400, "key_in_url");
    let found = events_until(&app, "type=key_exposed", |e| !e.is_empty()).await;
    assert_shape(&found[0], &[&secret]);
    assert_eq!(found[0]["key_id"], k["id"]);
    assert_eq!(found[0]["prefix"], k["prefix"]);
    assert_eq!(found[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn events_are_filtered_paged_newest_first_and_kept_from_other_organizations() {
    let app = spawn_app_on(Db::Sqlite).await;
    // Five exposed keys and one burst of refusals.
    let mut ids = Vec::new();
    for i in 0..5 {
        let (secret, id, _) = new_key(&app, &format!("exposed {i}")).await;
        app.send(
            Method::GET,
            &format!("/v1/keys?token={secret}"),
            Some(&app.admin_key),
            None,
        )
        .await
        .assert_problem(400, "key_in_url");
        ids.push(id);
    }
    for _ in 0..20 {
        app.verify("kw_live_000000000000", json!({"ip": "198.51.100.7"}))
            .await;
    }
    events_until(&app, "", |e| e.len() == 6).await;

    // Pages of two, newest first, each event once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/security-events?type=key_exposed&limit=2&cursor={c}"),
            None => "/v1/security-events?type=key_exposed&limit=2".to_owned(),
        };
        let page = app.get(&q).await.assert_status(200).clone();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|e| e["key_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // By key.
    let one = events(&app, &format!("key_id={}", ids[2])).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["key_id"], ids[2]);
    // By type.
    assert_eq!(events(&app, "type=auth_failures").await.len(), 1);
    assert!(events(&app, "type=usage_spike").await.is_empty());

    // Without audit:read: 403.
    let reader = app.management_key(&["keys:read"]).await;
    let refused = app.get_as(&reader, "/v1/security-events").await;
    refused.assert_problem(403, "forbidden");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("audit:read")
    );
    let auditor = app.management_key(&["audit:read"]).await;
    app.get_as(&auditor, "/v1/security-events")
        .await
        .assert_status(200);

    // Another organization sees none of them, and not even by key id.
    let other =
        keyward::service::bootstrap::create_org(&app.ctx, "Other", "owner@other.example", "pro")
            .await
            .unwrap();
    let b = other.secret.expose().to_owned();
    let theirs = app.get_as(&b, "/v1/security-events").await;
    assert_eq!(theirs.assert_status(200)["data"], json!([]));
    app.get_as(&b, &format!("/v1/security-events?key_id={}", ids[0]))
        .await
        .assert_problem(404, "not_found");
    // Their own events are theirs alone.
    for _ in 0..20 {
        app.post_as(
            &b,
            "/v1/keys/verify",
            json!({"key": "kw_live_000000000000", "ip": "192.0.2.1"}),
        )
        .await
        .assert_status(200);
    }
    let started = std::time::Instant::now();
    loop {
        let theirs = app.get_as(&b, "/v1/security-events").await;
        if theirs.body["data"].as_array().is_some_and(|d| d.len() == 1) {
            assert_eq!(theirs.body["data"][0]["ip"], "192.0.2.1");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            theirs.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        events(&app, "type=auth_failures")
            .await
            .iter()
            .all(|e| e["ip"] != "192.0.2.1")
    );
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_each_one() {
    let app = spawn_app_on(Db::Sqlite).await;
    let res = app
        .get("/v1/security-events?type=everything&key_id=key_XYZ&limit=0&cursor=abc")
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["type", "key_id", "limit", "cursor"]);
    for q in ["limit=101", "limit=ten", "limit=-1"] {
        let res = app.get(&format!("/v1/security-events?{q}")).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), ["limit"], "{q}");
    }
    app.get("/v1/security-events?key_id=key_000000000000")
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/security-events?severity=high")
        .await
        .assert_problem(400, "bad_request");
    app.send(Method::GET, "/v1/security-events", None, None)
        .await
        .assert_problem(401, "missing_credentials");
    let empty = app.get("/v1/security-events").await;
    assert_eq!(
        empty.assert_status(200),
        &json!({"data": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn the_command_line_lists_events_filtered_and_refuses_bad_filters() {
    let app = spawn_app_on(Db::Sqlite).await;
    let (secret, id, prefix) = new_key(&app, "printed").await;
    app.send(
        Method::GET,
        &format!("/v1/keys?token={secret}"),
        Some(&app.admin_key),
        None,
    )
    .await
    .assert_problem(400, "key_in_url");
    for _ in 0..20 {
        app.verify("kw_live_000000000000", json!({"ip": "198.51.100.7"}))
            .await;
    }
    events_until(&app, "", |e| e.len() == 2).await;
    let kw = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.arg("events")
            .args(args)
            .env("KEYWARD_URL", &app.base)
            .env("KEYWARD_API_KEY", &app.admin_key);
        cmd.output()
    };
    let out = kw(&[]).await.unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("CREATED"), "{table}");
    assert!(table.contains("key_exposed") && table.contains("auth_failures"));
    assert!(table.contains(&format!("{prefix}••••")));
    assert!(!table.contains(&secret));

    let out = kw(&["--key", &id, "--json"]).await.unwrap();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["type"], "key_exposed");

    let out = kw(&["--type", "everything"]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("422 validation_failed") && err.contains("type:"),
        "{err}"
    );
}
