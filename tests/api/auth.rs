//! Authentication of the management API itself: each contract code over HTTP.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn requests_without_credentials_or_with_bad_ones_get_the_right_401() {
    let app = spawn_app().await;
    let res = app.send(Method::GET, "/v1/keys", None, None).await;
    res.assert_problem(401, "missing_credentials");
    assert_eq!(res.headers["www-authenticate"], "Bearer realm=\"keyward\"");

    let raw = |auth: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(app.url("/v1/keys"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body["code"].as_str().unwrap().to_owned())
        }
    };
    assert_eq!(raw("").await, (401, "missing_credentials".into()));
    assert_eq!(raw("Bearer ").await, (401, "missing_credentials".into()));
    assert_eq!(
        raw("Basic dXNlcjpwYXNz").await,
        (401, "malformed_credentials".into())
    );
    assert_eq!(
        raw("Bearer not-a-key").await,
        (401, "malformed_credentials".into())
    );

    let mut bad_checksum = app.admin_key.clone();
    let last = if bad_checksum.ends_with('a') {
        "b"
    } else {
        "a"
    };
    bad_checksum.replace_range(bad_checksum.len() - 1.., last);
    app.get_as(&bad_checksum, "/v1/keys")
        .await
        .assert_problem(401, "malformed_credentials");
    let wrong_prefix = format!("zz_{}", &app.admin_key[8..]);
    app.get_as(&wrong_prefix, "/v1/keys")
        .await
        .assert_problem(401, "malformed_credentials");

    let unknown = keyward::domain::key::generate("kw_live_", &mut rand::rngs::OsRng);
    app.get_as(unknown.expose(), "/v1/keys")
        .await
        .assert_problem(401, "unknown_key");
    let foreign_prefix = keyward::domain::key::generate("sk_live_", &mut rand::rngs::OsRng);
    let res = app.get_as(foreign_prefix.expose(), "/v1/keys").await;
    res.assert_problem(401, "malformed_credentials");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("wrong prefix")
    );
    // Lowercase scheme is accepted.
    let r = app
        .http
        .get(app.url("/v1/keys"))
        .header("authorization", format!("bearer {}", app.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn keys_of_a_protected_api_cannot_call_the_management_api() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "service key"})).await;
    app.get_as(k["key"].as_str().unwrap(), "/v1/keys")
        .await
        .assert_problem(401, "unknown_key");
}

#[tokio::test]
async fn revoked_and_expired_management_keys_are_refused() {
    let app = spawn_app().await;
    let key = app.management_key(&["keys:read"]).await;
    app.get_as(&key, "/v1/keys").await.assert_status(200);
    let id = format!("key_{}", &key[8..20]);
    app.post(&format!("/v1/keys/{id}/revoke"), json!({}))
        .await
        .assert_status(200);
    app.get_as(&key, "/v1/keys")
        .await
        .assert_problem(401, "key_revoked");

    let at = time::OffsetDateTime::from_unix_timestamp({
        use keyward::domain::Clock;
        app.clock.now_ms() / 1000 + 60
    })
    .unwrap()
    .format(&time::format_description::well_known::Rfc3339)
    .unwrap();
    let short = app
        .create_key(json!({"name": "short", "api_id": app.management_api_id, "scopes": ["keys:read"], "expires_at": at}))
        .await;
    let short = short["key"].as_str().unwrap();
    app.get_as(short, "/v1/keys").await.assert_status(200);
    app.clock.advance(61_000);
    app.get_as(short, "/v1/keys")
        .await
        .assert_problem(401, "key_expired");
}

#[tokio::test]
async fn management_keys_honour_their_ip_allowlist_for_ipv4_and_ipv6() {
    let app = spawn_app().await;
    let elsewhere = app
        .create_key(
            json!({"name": "office only", "api_id": app.management_api_id, "scopes": ["keys:read"],
                           "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"]}),
        )
        .await;
    app.get_as(elsewhere["key"].as_str().unwrap(), "/v1/keys")
        .await
        .assert_problem(403, "ip_not_allowed");
    let loopback = app
        .create_key(
            json!({"name": "local", "api_id": app.management_api_id, "scopes": ["keys:read"],
                           "ip_allowlist": ["127.0.0.0/8", "::1/128"]}),
        )
        .await;
    app.get_as(loopback["key"].as_str().unwrap(), "/v1/keys")
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_management_key_without_the_scope_is_forbidden() {
    let app = spawn_app().await;
    let reader = app.management_key(&["keys:read"]).await;
    app.get_as(&reader, "/v1/keys").await.assert_status(200);
    let res = app.post_as(&reader, "/v1/keys", json!({"name": "x"})).await;
    res.assert_problem(403, "forbidden");
    assert!(res.body["detail"].as_str().unwrap().contains("keys:write"));
    app.get_as(&reader, "/v1/audit-log")
        .await
        .assert_problem(403, "forbidden");
    app.post_as(&reader, "/v1/apis", json!({"name": "a", "slug": "a"}))
        .await
        .assert_problem(403, "forbidden");
    let k = app.create_key(json!({"name": "target"})).await;
    let id = k["id"].as_str().unwrap();
    app.send(
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Some(&reader),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
    app.post_as(&reader, &format!("/v1/keys/{id}/rotate"), json!({}))
        .await
        .assert_problem(403, "forbidden");
    let writer = app.management_key(&["keys:write"]).await;
    app.get_as(&writer, "/v1/keys")
        .await
        .assert_problem(403, "forbidden");
    // Nobody grants a management scope they do not hold.
    app.post_as(
        &writer,
        "/v1/keys",
        json!({"name": "escalate", "api_id": app.management_api_id, "scopes": ["org:admin"]}),
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn management_keys_with_rate_limits_get_429_with_headers() {
    let app = spawn_app().await;
    let k = app
        .create_key(
            json!({"name": "slow", "api_id": app.management_api_id, "scopes": ["keys:read"],
                           "rate_limit": {"requests": 2, "per_seconds": 10}}),
        )
        .await;
    let key = k["key"].as_str().unwrap();
    app.get_as(key, "/v1/keys").await.assert_status(200);
    app.get_as(key, "/v1/keys").await.assert_status(200);
    let res = app.get_as(key, "/v1/keys").await;
    res.assert_problem(429, "rate_limited");
    assert_eq!(res.headers["retry-after"], "5");
    assert_eq!(res.headers["ratelimit-limit"], "2");
    assert_eq!(res.headers["ratelimit-remaining"], "0");
    assert_eq!(res.headers["ratelimit-reset"], "10");
}
