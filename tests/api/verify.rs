use serde_json::{Value, json};

use keyward::domain::Clock;

use crate::helpers::{Db, spawn_app, spawn_app_on};

async fn verify_answers_every_contract_code(db: Db) {
    let app = spawn_app_on(db).await;
    let api = app
        .create_api("transcription", &["transcripts:read", "transcripts:write"])
        .await;
    let api_id = api["id"].as_str().unwrap();
    let k = app
        .create_key(json!({"name": "batch worker", "api_id": api_id, "type": "batch", "scopes": ["transcripts:read"],
                           "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"], "expires": "1y"}))
        .await;
    let secret = k["key"].as_str().unwrap();
    let ok = app
        .verify(
            secret,
            json!({"api_id": api_id, "ip": "203.0.113.7", "token_type": "batch",
                                       "required_scopes": ["transcripts:read"]}),
        )
        .await;
    assert_eq!(
        (
            ok["valid"].clone(),
            ok["code"].clone(),
            ok["status"].clone()
        ),
        (json!(true), json!("VALID"), json!(200))
    );
    assert_eq!(ok["key"]["id"], k["id"]);
    assert!(
        ok["key"].get("key").is_none(),
        "the verdict never carries the secret"
    );

    let code = |v: serde_json::Value| {
        (
            v["code"].as_str().unwrap().to_owned(),
            v["status"].as_u64().unwrap(),
        )
    };
    let ip6 = app
        .verify(
            secret,
            json!({"ip": "2001:db8:ffff::1", "token_type": "batch"}),
        )
        .await;
    assert_eq!(code(ip6), ("VALID".into(), 200));
    let v = app.verify(secret, json!({"ip": "198.51.100.1"})).await;
    assert_eq!(code(v), ("IP_NOT_ALLOWED".into(), 403));
    let v = app.verify(secret, json!({"ip": "2001:db9::1"})).await;
    assert_eq!(code(v), ("IP_NOT_ALLOWED".into(), 403));
    let v = app
        .verify(
            secret,
            json!({"ip": "203.0.113.7", "token_type": "realtime"}),
        )
        .await;
    assert_eq!(code(v.clone()), ("WRONG_TOKEN_TYPE".into(), 403));
    assert_eq!(v["key"]["id"], k["id"], "an identified key is described");
    let v = app
        .verify(
            secret,
            json!({"ip": "203.0.113.7", "required_scopes": ["transcripts:write"]}),
        )
        .await;
    assert_eq!(code(v.clone()), ("INSUFFICIENT_SCOPE".into(), 403));
    assert!(v["detail"].as_str().unwrap().contains("transcripts:write"));

    let mut tampered = secret.to_owned();
    let c = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(tampered.len() - 1.., c);
    assert_eq!(
        code(app.verify(&tampered, json!({})).await),
        ("MALFORMED".into(), 401)
    );
    assert_eq!(
        code(app.verify("hello", json!({})).await),
        ("MALFORMED".into(), 401)
    );
    assert_eq!(
        code(app.verify("", json!({})).await),
        ("MALFORMED".into(), 401)
    );
    let unknown = keyward::domain::key::generate("tk_live_", &mut rand::rngs::OsRng);
    let v = app.verify(unknown.expose(), json!({})).await;
    assert_eq!(code(v.clone()), ("NOT_FOUND".into(), 401));
    assert!(v.get("key").is_none());
    let v = app
        .verify(secret, json!({"api_id": app.default_api_id}))
        .await;
    assert_eq!(
        code(v),
        ("NOT_FOUND".into(), 401),
        "a key of another API than api_id is not found"
    );

    app.clock.advance(366 * 24 * 3600 * 1000);
    let v = app.verify(secret, json!({"ip": "203.0.113.7"})).await;
    assert_eq!(code(v), ("EXPIRED".into(), 401));
}

#[tokio::test]
async fn verify_answers_every_contract_code_on_sqlite() {
    verify_answers_every_contract_code(Db::Sqlite).await;
}

#[tokio::test]
async fn verify_answers_every_contract_code_on_postgres() {
    verify_answers_every_contract_code(Db::Postgres).await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_the_state_and_refill_over_time() {
    let app = spawn_app().await;
    let k = app
        .create_key(json!({"name": "limited", "rate_limit": {"requests": 3, "per_seconds": 60}}))
        .await;
    let secret = k["key"].as_str().unwrap();
    for remaining in [2, 1, 0] {
        let v = app.verify(secret, json!({})).await;
        assert_eq!(v["code"], "VALID");
        assert_eq!(v["ratelimit"]["limit"], 3);
        assert_eq!(v["ratelimit"]["remaining"], remaining);
    }
    let v = app.verify(secret, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["status"].as_u64()),
        (Some("RATE_LIMITED"), Some(429))
    );
    assert_eq!(v["ratelimit"]["remaining"], 0);
    assert!(v["ratelimit"]["reset_ms"].as_i64().unwrap() > 0);
    app.clock.advance(20_000);
    assert_eq!(
        app.verify(secret, json!({})).await["code"],
        "VALID",
        "one request refills every 20 s"
    );
    assert_eq!(app.verify(secret, json!({})).await["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn quotas_are_spent_only_by_accepted_requests() {
    let app = spawn_app().await;
    let api = app.create_api("quota", &["q:read"]).await;
    let k = app
        .create_key(json!({"name": "metered", "api_id": api["id"], "quota": {"remaining": 2}}))
        .await;
    let secret = k["key"].as_str().unwrap();
    // A refused request (missing scope) spends nothing.
    assert_eq!(
        app.verify(secret, json!({"required_scopes": ["q:read"]}))
            .await["code"],
        "INSUFFICIENT_SCOPE"
    );
    let v = app.verify(secret, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["quota"]["remaining"].as_i64()),
        (Some("VALID"), Some(1))
    );
    let v = app.verify(secret, json!({})).await;
    assert_eq!(v["quota"]["remaining"], 0);
    let v = app.verify(secret, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["status"].as_u64()),
        (Some("QUOTA_EXCEEDED"), Some(429))
    );
    let shown = app
        .get(&format!("/v1/keys/{}", k["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown.body["quota"]["remaining"], 0);
    // A cost larger than what is left is refused and spends nothing either.
    let k2 = app
        .create_key(json!({"name": "metered2", "quota": {"remaining": 5}}))
        .await;
    let s2 = k2["key"].as_str().unwrap();
    assert_eq!(
        app.verify(s2, json!({"cost": 6})).await["code"],
        "QUOTA_EXCEEDED"
    );
    assert_eq!(
        app.verify(s2, json!({"cost": 5})).await["quota"]["remaining"],
        0
    );
}

#[tokio::test]
async fn daily_quotas_refill_at_the_next_utc_day() {
    let app = spawn_app().await;
    let k = app
        .create_key(json!({"name": "daily", "quota": {"remaining": 1, "refill": {"interval": "daily", "amount": 2}}}))
        .await;
    let secret = k["key"].as_str().unwrap();
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    assert_eq!(
        app.verify(secret, json!({})).await["code"],
        "QUOTA_EXCEEDED"
    );
    app.clock.advance(24 * 3600 * 1000);
    let v = app.verify(secret, json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["quota"]["remaining"].as_i64()),
        (Some("VALID"), Some(1))
    );
}

#[tokio::test]
async fn a_key_of_another_organization_is_not_found() {
    let app = spawn_app().await;
    let other =
        keyward::service::bootstrap::create_org(&app.ctx, "Other", "owner@other.example", "pro")
            .await
            .unwrap();
    let foreign = other.secret.expose();
    let v = app.verify(foreign, json!({})).await;
    assert_eq!(v["code"], "NOT_FOUND");
    assert!(v.get("key").is_none());
    // And the other organization's management key cannot see our keys either.
    let ours = app.create_key(json!({"name": "ours"})).await;
    let res = app
        .get_as(
            foreign,
            &format!("/v1/keys/{}", ours["id"].as_str().unwrap()),
        )
        .await;
    res.assert_problem(404, "not_found");
}

#[tokio::test]
async fn verify_validates_its_own_input() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/keys/verify",
            json!({"key": "x", "ip": "300.1.1.1", "cost": 5000}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"].as_array().unwrap().len(), 2);
    app.post("/v1/keys/verify", json!({}))
        .await
        .assert_problem(422, "validation_failed");
    let no_scope = app.management_key(&["keys:read"]).await;
    app.post_as(&no_scope, "/v1/keys/verify", json!({"key": "x"}))
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn organizations_on_a_plan_without_access_get_plan_inactive_but_can_still_manage() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "k"})).await;
    let mut org = app.ctx.store.get_org(&app.org_id).await.unwrap().unwrap();
    org.billing_status = "past_due".into();
    app.ctx.store.update_org(&org).await.unwrap();
    app.ctx.verifier.invalidate_org(&app.org_id);
    let v = app.verify(k["key"].as_str().unwrap(), json!({})).await;
    assert_eq!(
        (v["code"].as_str(), v["status"].as_u64()),
        (Some("PLAN_INACTIVE"), Some(403))
    );
    app.get("/v1/keys").await.assert_status(200);
}

/// The endpoint backends call most reads its request like every other one: the caller first, then
/// the body, then the scope; problem+json with the request id for each refusal.
#[tokio::test]
async fn verify_checks_the_caller_then_the_body_then_the_scope() {
    let app = spawn_app().await;
    let url = app.url("/v1/keys/verify");
    let send = |auth: Option<&str>, content_type: &str, body: String| {
        let mut req = app
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if status != 200 {
                assert_eq!(body["request_id"], id.as_str(), "{body}");
            }
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    let admin = format!("Bearer {}", app.admin_key);
    let json = "application/json";
    let ok = json!({"key": "x"}).to_string();
    let cases = [
        (None, json, ok.clone(), 401, "missing_credentials"),
        (
            Some("Basic a2V5"),
            json,
            ok.clone(),
            401,
            "malformed_credentials",
        ),
        (
            Some("Bearer kw_live_nope"),
            "text/plain",
            "{".into(),
            401,
            "malformed_credentials",
        ),
        (
            Some(admin.as_str()),
            "text/plain",
            ok.clone(),
            400,
            "bad_request",
        ),
        (
            Some(admin.as_str()),
            json,
            "{\"key\":".into(),
            400,
            "bad_request",
        ),
        (
            Some(admin.as_str()),
            json,
            "".into(),
            422,
            "validation_failed",
        ),
        (
            Some(admin.as_str()),
            json,
            json!({"key": "x", "keys": 1}).to_string(),
            422,
            "validation_failed",
        ),
        (
            Some(admin.as_str()),
            json,
            json!({"key": "y".repeat(70_000)}).to_string(),
            413,
            "bad_request",
        ),
        (Some(admin.as_str()), json, ok.clone(), 200, "MALFORMED"),
    ];
    for (auth, content_type, body, status, code) in cases {
        let what = format!("{auth:?} {content_type} {:.40}", body);
        assert_eq!(
            send(auth, content_type, body).await,
            (status, code.to_owned()),
            "{what}"
        );
    }
    // A key without the scope is refused only once its body is known to be well-formed.
    let reader = format!("Bearer {}", app.management_key(&["keys:read"]).await);
    assert_eq!(
        send(Some(&reader), json, "{".into()).await,
        (400, "bad_request".to_owned())
    );
    assert_eq!(
        send(Some(&reader), json, ok.clone()).await,
        (403, "forbidden".to_owned())
    );
    // Another method is a 405; a key in the query string is refused (and never verified).
    let get = app.get("/v1/keys/verify").await;
    get.assert_problem(405, "bad_request");
    let k = app.create_key(json!({"name": "leaked"})).await;
    let leaked = format!("/v1/keys/verify?key={}", k["key"].as_str().unwrap());
    let (status, code) = {
        let res = app
            .http
            .post(app.url(&leaked))
            .header("authorization", &admin)
            .json(&json!({"key": k["key"]}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap()["code"].clone())
    };
    assert_eq!((status, code.as_str()), (400, Some("key_in_url")));
}

/// A backend's keep-alive connection presents the same management key on every request; its
/// verification is remembered briefly, and nothing about it may outlive a change: a revoke, an
/// expiry, or another key on the same connection.
#[tokio::test]
async fn a_management_key_presented_again_on_one_connection_is_still_checked_every_time() {
    let app = spawn_app().await;
    let target = app.create_key(json!({"name": "checked"})).await;
    let target = target["key"].as_str().unwrap();
    let expiring = app
        .create_key(json!({"name": "backend", "api_id": app.management_api_id,
                           "scopes": ["keys:verify"], "expires": "1y"}))
        .await;
    let (backend_id, backend) = (
        expiring["id"].as_str().unwrap().to_owned(),
        expiring["key"].as_str().unwrap().to_owned(),
    );
    // One client, one connection: every request below reuses it.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let verify = |key: String| {
        let req = http
            .post(app.url("/v1/keys/verify"))
            .bearer_auth(key)
            .json(&json!({"key": target}));
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            (status, code)
        }
    };
    for _ in 0..3 {
        assert_eq!(verify(backend.clone()).await, (200, "VALID".to_owned()));
    }
    // Its use is recorded each time, remembered or not.
    app.clock.advance(5_000);
    let before = app.ctx.verifier.pending_touch(&backend_id).unwrap().0;
    verify(backend.clone()).await;
    let after = app.ctx.verifier.pending_touch(&backend_id).unwrap().0;
    assert_eq!(after - before, 5_000);
    // Another key on the same connection acts as itself.
    let reader = app.management_key(&["keys:read"]).await;
    assert_eq!(verify(reader).await, (403, "forbidden".to_owned()));
    assert_eq!(verify(backend.clone()).await, (200, "VALID".to_owned()));
    // Expiring while remembered: refused at once.
    let in_800_ms = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(app.clock.now_ms() + 800) * 1_000_000,
    )
    .unwrap()
    .format(&time::format_description::well_known::Rfc3339)
    .unwrap();
    let short = app
        .create_key(json!({"name": "short", "api_id": app.management_api_id,
                           "scopes": ["keys:verify"], "expires_at": in_800_ms}))
        .await;
    let short = short["key"].as_str().unwrap().to_owned();
    assert_eq!(verify(short.clone()).await, (200, "VALID".to_owned()));
    app.clock.advance(900);
    assert_eq!(verify(short).await, (401, "key_expired".to_owned()));
    assert_eq!(verify(backend.clone()).await, (200, "VALID".to_owned()));
    // Revoked: the very next request is refused.
    app.post(&format!("/v1/keys/{backend_id}/revoke"), json!({}))
        .await
        .assert_status(200);
    assert_eq!(verify(backend).await, (401, "key_revoked".to_owned()));
}

/// A key's owner, API and organization are re-read after 30 s: a change made straight in storage
/// (as another instance would) shows then, however often they were found unchanged before.
#[tokio::test]
async fn an_owner_changed_elsewhere_is_seen_once_the_cached_copy_is_30_s_old() {
    let app = spawn_app().await;
    let (user_id, _) = app.member("developer").await;
    let k = app
        .create_key(json!({"name": "owned", "owner_id": user_id}))
        .await;
    let secret = k["key"].as_str().unwrap();
    let code = |v: Value| v["code"].as_str().unwrap().to_owned();
    assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
    // Found unchanged twice: renewed, still valid.
    for _ in 0..2 {
        app.clock.advance(31_000);
        assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
    }
    let set_status = |status: keyward::domain::model::UserStatus| {
        let app = &app;
        let user_id = user_id.clone();
        async move {
            let mut user = app.ctx.store.get_user(&user_id).await.unwrap().unwrap();
            user.status = status;
            app.ctx.store.update_user(&user).await.unwrap();
        }
    };
    set_status(keyward::domain::model::UserStatus::Disabled).await;
    assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
    app.clock.advance(31_000);
    assert_eq!(code(app.verify(secret, json!({})).await), "OWNER_DISABLED");
    set_status(keyward::domain::model::UserStatus::Active).await;
    app.clock.advance(31_000);
    assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
}
