use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Db, spawn_app, spawn_app_on};

#[tokio::test]
async fn creating_a_key_shows_the_secret_once_and_never_again() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/keys",
            json!({"name": "Production integration", "type": "batch", "ip_allowlist": ["203.0.113.0/24"],
                   "expires": "2y", "rate_limit": {"requests": 100, "per_seconds": 60},
                   "metadata": {"team": "billing"}}),
        )
        .await;
    let created = res.assert_status(201);
    assert_eq!(res.headers["cache-control"], "no-store");
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(key.starts_with("kw_live_"));
    assert_eq!(key.len(), 8 + 68);
    assert_eq!(created["prefix"], format!("kw_live_{}", &id[4..]));
    assert_eq!(created["type"], "batch");
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["rate_limit"],
        json!({"requests": 100, "per_seconds": 60})
    );
    assert_eq!(created["quota"], json!({"remaining": null}));
    assert_eq!(created["owner_id"], app.owner_id.as_str());
    assert!(
        created["expires_at"]
            .as_str()
            .unwrap()
            .starts_with(&(time_year(&app) + 2).to_string())
    );
    assert!(created.get("hash").is_none());

    let shown = app.get(&format!("/v1/keys/{id}")).await;
    let shown = shown.assert_status(200);
    assert!(
        shown.get("key").is_none(),
        "the secret is shown only at creation"
    );
    assert!(!shown.to_string().contains(&key[20..]));
    let list = app.get("/v1/keys").await;
    assert!(!list.text.contains(&key[20..]));
    assert!(
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id)
    );
}

fn time_year(app: &crate::helpers::TestApp) -> i32 {
    use keyward::domain::Clock;
    time::OffsetDateTime::from_unix_timestamp(app.clock.now_ms() / 1000)
        .unwrap()
        .year()
}

#[tokio::test]
async fn invalid_fields_are_each_listed_in_a_422() {
    let app = spawn_app().await;
    let api = app.create_api("transcription", &["transcripts:read"]).await;
    let res = app
        .post(
            "/v1/keys",
            json!({"name": "  ", "api_id": api["id"], "type": "streaming", "scopes": ["transcripts:read", "billing:write"],
                   "ip_allowlist": ["10.0.0.1", "not-an-ip", "10.0.0.0/33"], "expires": "3y",
                   "metadata": {"blob": "x".repeat(5000)}, "rate_limit": {"requests": 0, "per_seconds": 60}}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in [
        "name",
        "type",
        "scopes[1]",
        "ip_allowlist[1]",
        "ip_allowlist[2]",
        "expires",
        "metadata",
        "rate_limit.requests",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    // Nothing was created.
    let list = app.get("/v1/keys").await;
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "only the initial management key"
    );
}

#[tokio::test]
async fn wrong_json_types_unknown_fields_and_missing_names_are_422_and_bad_json_is_400() {
    let app = spawn_app().await;
    let res = app.post("/v1/keys", json!({"name": 5})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "name");
    app.post("/v1/keys", json!({"nmae": "typo"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post("/v1/keys", json!({}))
        .await
        .assert_problem(422, "validation_failed");
    app.post_raw("/v1/keys", "application/json", "{\"name\": ")
        .await
        .assert_problem(400, "bad_request");
    app.post_raw("/v1/keys", "application/x-www-form-urlencoded", "name=x")
        .await
        .assert_problem(400, "bad_request");
    app.post_raw("/v1/keys", "text/plain", "{\"name\": \"x\"}")
        .await
        .assert_problem(400, "bad_request");
    // JSON in any letter case, with parameters, or as a +json type is JSON.
    for ct in [
        "Application/JSON; charset=utf-8",
        "application/vnd.keyward+json",
    ] {
        app.post_raw("/v1/keys", ct, "{\"name\": \"typed\"}")
            .await
            .assert_status(201);
    }
    let huge = json!({"name": "x", "description": "y".repeat(70_000)});
    app.post("/v1/keys", huge)
        .await
        .assert_problem(413, "bad_request");
}

#[tokio::test]
async fn listing_pages_with_a_cursor_and_filters_by_status_api_and_owner() {
    let app = spawn_app().await;
    let api = app.create_api("pages", &[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        app.clock.advance(10);
        let k = app
            .create_key(json!({"name": format!("k{i}"), "api_id": api["id"]}))
            .await;
        ids.push(k["id"].as_str().unwrap().to_owned());
    }
    let page1 = app
        .get(&format!(
            "/v1/keys?api_id={}&limit=2",
            api["id"].as_str().unwrap()
        ))
        .await;
    let page1 = page1.assert_status(200).clone();
    let got: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(&format!(
            "/v1/keys?api_id={}&limit=2&cursor={cursor}",
            api["id"].as_str().unwrap()
        ))
        .await;
    let got: Vec<&str> = page2.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let page3 = app
        .get(&format!(
            "/v1/keys?api_id={}&limit=2&cursor={}",
            api["id"].as_str().unwrap(),
            page2.body["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page3.body["data"].as_array().unwrap().len(), 1);
    assert!(page3.body["next_cursor"].is_null());

    app.post(&format!("/v1/keys/{}/revoke", ids[0]), json!({}))
        .await
        .assert_status(200);
    app.delete(&format!("/v1/keys/{}", ids[1]))
        .await
        .assert_status(204);
    let count = |v: &Value| v["data"].as_array().unwrap().len();
    let q = |s: &str| format!("/v1/keys?api_id={}&status={s}", api["id"].as_str().unwrap());
    assert_eq!(count(&app.get(&q("active")).await.body), 3);
    assert_eq!(count(&app.get(&q("revoked")).await.body), 1);
    assert_eq!(
        count(&app.get(&q("all")).await.body),
        5,
        "all includes the deleted key"
    );
    let default = app
        .get(&format!("/v1/keys?api_id={}", api["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        count(&default.body),
        4,
        "deleted keys are hidden by default"
    );
    let by_owner = app
        .get(&format!(
            "/v1/keys?owner_id={}&api_id={}",
            app.owner_id,
            api["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(count(&by_owner.body), 4);
    assert_eq!(
        count(&app.get("/v1/keys?owner_id=usr_nobody").await.body),
        0
    );

    app.get("/v1/keys?limit=0")
        .await
        .assert_problem(400, "bad_request");
    app.get("/v1/keys?limit=101")
        .await
        .assert_problem(400, "bad_request");
    app.get("/v1/keys?status=gone")
        .await
        .assert_problem(400, "bad_request");
    app.get("/v1/keys?cursor=zz")
        .await
        .assert_problem(400, "bad_request");
    app.get("/v1/keys?limit=ten")
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn expired_keys_are_listed_as_expired_once_the_clock_passes_their_expiry() {
    let app = spawn_app().await;
    use keyward::domain::Clock;
    let at = time::OffsetDateTime::from_unix_timestamp(app.clock.now_ms() / 1000 + 3600).unwrap();
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let k = app
        .create_key(json!({"name": "short-lived", "expires_at": at}))
        .await;
    let id = k["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/keys/{id}")).await.body["status"],
        "active"
    );
    app.clock.advance(3_600_001);
    assert_eq!(
        app.get(&format!("/v1/keys/{id}")).await.body["status"],
        "expired"
    );
    let expired = app.get("/v1/keys?status=expired").await;
    assert_eq!(expired.body["data"][0]["id"], id);
    let res = app.post(&format!("/v1/keys/{id}/rotate"), json!({})).await;
    res.assert_problem(409, "conflict");
    assert!(res.body["detail"].as_str().unwrap().contains("expired"));
    app.post(
        "/v1/keys",
        json!({"name": "past", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn patch_changes_what_is_given_and_keeps_the_rest() {
    let app = spawn_app().await;
    let api = app.create_api("edits", &["a:read", "a:write"]).await;
    let k = app
        .create_key(json!({"name": "before", "api_id": api["id"], "description": "d", "scopes": ["a:read"]}))
        .await;
    let id = k["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/keys/{id}"),
            json!({"name": "after", "description": null, "ip_allowlist": ["2001:db8::/32"],
                   "metadata": {"env": "prod"}, "scopes": ["a:read", "a:write"]}),
        )
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["name"], "after");
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body["ip_allowlist"], json!(["2001:db8::/32"]));
    assert_eq!(body["metadata"], json!({"env": "prod"}));
    assert_eq!(body["scopes"], json!(["a:read", "a:write"]));
    assert_eq!(body["type"], "standard");
    let again = app.get(&format!("/v1/keys/{id}")).await;
    assert_eq!(again.body["name"], "after");
    app.patch(&format!("/v1/keys/{id}"), json!({"scopes": ["nope"]}))
        .await
        .assert_problem(422, "validation_failed");
    app.patch(&format!("/v1/keys/{id}"), json!({"ip_allowlist": ["x"]}))
        .await
        .assert_problem(422, "validation_failed");
    app.patch(&format!("/v1/keys/{id}"), json!({"prefix": "x"}))
        .await
        .assert_problem(422, "validation_failed");
    app.patch("/v1/keys/key_000000000000", json!({"name": "x"}))
        .await
        .assert_problem(404, "not_found");

    // Disabling stops the key; enabling restores it.
    let secret = k["key"].as_str().unwrap();
    app.patch(&format!("/v1/keys/{id}"), json!({"enabled": false}))
        .await
        .assert_status(200);
    assert_eq!(
        app.verify(secret, json!({"ip": "2001:db8::1"})).await["code"],
        "REVOKED"
    );
    app.patch(&format!("/v1/keys/{id}"), json!({"enabled": true}))
        .await
        .assert_status(200);
    assert_eq!(
        app.verify(secret, json!({"ip": "2001:db8::1"})).await["code"],
        "VALID"
    );

    app.post(&format!("/v1/keys/{id}/revoke"), json!({}))
        .await
        .assert_status(200);
    app.patch(&format!("/v1/keys/{id}"), json!({"name": "x"}))
        .await
        .assert_problem(409, "conflict");
}

#[tokio::test]
async fn revoking_is_idempotent_and_the_very_next_verify_answers_revoked() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "to revoke"})).await;
    let (id, secret) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    assert_eq!(
        app.verify(secret, json!({})).await["code"],
        "VALID",
        "cached as valid"
    );
    let first = app
        .post(
            &format!("/v1/keys/{id}/revoke"),
            json!({"reason": "leaked in a log"}),
        )
        .await;
    let first = first.assert_status(200).clone();
    assert_eq!(first["status"], "revoked");
    assert_eq!(first["revoke_reason"], "leaked in a log");
    let verdict = app.verify(secret, json!({})).await;
    assert_eq!(
        (
            verdict["valid"].clone(),
            verdict["code"].clone(),
            verdict["status"].clone()
        ),
        (json!(false), json!("REVOKED"), json!(401))
    );
    let second = app.post(&format!("/v1/keys/{id}/revoke"), json!({})).await;
    assert_eq!(
        second.assert_status(200)["revoked_at"],
        first["revoked_at"],
        "idempotent"
    );
    // Revoking with no body at all works too.
    let bare = app
        .send(
            Method::POST,
            &format!("/v1/keys/{id}/revoke"),
            Some(&app.admin_key),
            None,
        )
        .await;
    bare.assert_status(200);
}

#[tokio::test]
async fn deleting_revokes_hides_and_keeps_the_key_for_the_audit_log() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "to delete"})).await;
    let (id, secret) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    let res = app.delete(&format!("/v1/keys/{id}")).await;
    assert_eq!(res.status, 204);
    assert_eq!(app.verify(secret, json!({})).await["code"], "REVOKED");
    app.get(&format!("/v1/keys/{id}"))
        .await
        .assert_problem(404, "not_found");
    let all = app.get("/v1/keys?status=all").await;
    let shown = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .expect("listed among every status");
    assert_eq!(shown["status"], "deleted");
    assert!(shown["deleted_at"].is_string());
    // Gone for every other operation too; deleting again changes nothing.
    app.patch(&format!("/v1/keys/{id}"), json!({"name": "x"}))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.delete(&format!("/v1/keys/{id}")).await.status, 204);
    let log = app.get(&format!("/v1/audit-log?target_id={id}")).await;
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.deleted", "key.created"]);
    assert_eq!(
        app.delete(&format!("/v1/keys/{id}")).await.status,
        204,
        "idempotent"
    );
    app.delete("/v1/keys/key_ffffffffffff")
        .await
        .assert_problem(404, "not_found");
}

async fn rotation_with_zero_grace_revokes_the_old_key_at_once(db: Db) {
    let app = spawn_app_on(db).await;
    let api = app.create_api("rotation", &["r:read"]).await;
    let old = app
        .create_key(json!({"name": "rotate me", "api_id": api["id"], "scopes": ["r:read"], "type": "realtime",
                           "ip_allowlist": ["127.0.0.1"], "metadata": {"a": 1}}))
        .await;
    let old_id = old["id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/v1/keys/{old_id}/rotate"),
            json!({"grace_period_s": 0}),
        )
        .await;
    let new = res.assert_status(201).clone();
    assert_eq!(res.headers["cache-control"], "no-store");
    assert_eq!(new["replaces"], old_id);
    assert_ne!(new["key"], old["key"]);
    assert!(new["key"].as_str().unwrap().starts_with("tk_live_"));
    for field in [
        "name",
        "scopes",
        "type",
        "ip_allowlist",
        "metadata",
        "api_id",
    ] {
        assert_eq!(new[field], old[field], "{field} carries over");
    }
    let old_verdict = app
        .verify(old["key"].as_str().unwrap(), json!({"ip": "127.0.0.1"}))
        .await;
    assert_eq!(old_verdict["code"], "REVOKED");
    assert_eq!(
        app.verify(new["key"].as_str().unwrap(), json!({"ip": "127.0.0.1"}))
            .await["code"],
        "VALID"
    );
    let old_now = app.get(&format!("/v1/keys/{old_id}")).await;
    assert_eq!(old_now.body["replaced_by"], new["id"]);
    assert_eq!(old_now.body["status"], "revoked");
    app.post(&format!("/v1/keys/{old_id}/rotate"), json!({}))
        .await
        .assert_problem(409, "conflict");
}

#[tokio::test]
async fn rotation_with_zero_grace_revokes_the_old_key_at_once_on_sqlite() {
    rotation_with_zero_grace_revokes_the_old_key_at_once(Db::Sqlite).await;
}

#[tokio::test]
async fn rotation_with_zero_grace_revokes_the_old_key_at_once_on_postgres() {
    rotation_with_zero_grace_revokes_the_old_key_at_once(Db::Postgres).await;
}

#[tokio::test]
async fn rotation_with_a_grace_period_keeps_both_keys_until_it_ends() {
    let app = spawn_app().await;
    let old = app.create_key(json!({"name": "graceful"})).await;
    let old_id = old["id"].as_str().unwrap();
    let new = app
        .post(
            &format!("/v1/keys/{old_id}/rotate"),
            json!({"grace_period_s": 3600}),
        )
        .await;
    let new = new.assert_status(201).clone();
    let (old_secret, new_secret) = (old["key"].as_str().unwrap(), new["key"].as_str().unwrap());
    assert_eq!(app.verify(old_secret, json!({})).await["code"], "VALID");
    assert_eq!(app.verify(new_secret, json!({})).await["code"], "VALID");
    assert_eq!(
        app.get(&format!("/v1/keys/{old_id}")).await.body["status"],
        "active"
    );
    app.clock.advance(3_599_000);
    assert_eq!(
        app.verify(old_secret, json!({})).await["code"],
        "VALID",
        "one second before the end"
    );
    app.clock.advance(1_000);
    assert_eq!(app.verify(old_secret, json!({})).await["code"], "REVOKED");
    assert_eq!(app.verify(new_secret, json!({})).await["code"], "VALID");
    assert_eq!(
        app.get(&format!("/v1/keys/{old_id}")).await.body["status"],
        "revoked"
    );
}

#[tokio::test]
async fn rotation_refuses_grace_periods_out_of_range() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "g"})).await;
    let id = k["id"].as_str().unwrap();
    app.post(
        &format!("/v1/keys/{id}/rotate"),
        json!({"grace_period_s": 1_209_601}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &format!("/v1/keys/{id}/rotate"),
        json!({"grace_period_s": -1}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &format!("/v1/keys/{id}/rotate"),
        json!({"grace_period_s": "1h"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &format!("/v1/keys/{id}/rotate"),
        json!({"grace_period_s": 1_209_600}),
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn last_used_is_visible_at_once_and_written_behind_in_a_batch() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "used"})).await;
    let (id, secret) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    assert!(app.get(&format!("/v1/keys/{id}")).await.body["last_used_at"].is_null());
    app.verify(secret, json!({"ip": "198.51.100.7"})).await;
    let shown = app.get(&format!("/v1/keys/{id}")).await;
    assert!(shown.body["last_used_at"].is_string());
    assert_eq!(shown.body["last_used_ip"], "198.51.100.7");
    // Before the flush, storage has not been written; after it, it has.
    let stored = app.ctx.store.get_key(id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_none());
    let written = app.ctx.verifier.flush().await.unwrap();
    assert!(written >= 1);
    let stored = app.ctx.store.get_key(id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_ip.as_deref(), Some("198.51.100.7"));

    // Used again within five minutes: the API shows it at once, storage catches up five minutes
    // (and up to half that more, depending on the key) after the previous write.
    app.clock.advance(5_000);
    app.verify(secret, json!({"ip": "198.51.100.8"})).await;
    app.ctx.verifier.flush().await.unwrap();
    assert_eq!(stored_ip(&app, id).await.as_deref(), Some("198.51.100.7"));
    assert_eq!(
        app.get(&format!("/v1/keys/{id}")).await.body["last_used_ip"],
        "198.51.100.8"
    );
    app.clock.advance(294_000);
    app.ctx.verifier.flush().await.unwrap();
    assert_eq!(stored_ip(&app, id).await.as_deref(), Some("198.51.100.7"));
    app.clock.advance(151_000);
    app.ctx.verifier.flush().await.unwrap();
    assert_eq!(stored_ip(&app, id).await.as_deref(), Some("198.51.100.8"));
}

#[tokio::test]
async fn an_edit_of_a_key_keeps_its_rate_limit_state_and_pending_last_use() {
    let app = spawn_app().await;
    let k = app
        .create_key(json!({"name": "limited", "rate_limit": {"requests": 2, "per_seconds": 60}}))
        .await;
    let (id, secret) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    let code = |v: serde_json::Value| v["code"].as_str().unwrap().to_owned();
    assert_eq!(
        code(app.verify(secret, json!({"ip": "192.0.2.9"})).await),
        "VALID"
    );
    assert_eq!(
        code(app.verify(secret, json!({"ip": "192.0.2.10"})).await),
        "VALID"
    );
    // Renaming reloads the cached record; the limiter's state and the unwritten use stay.
    app.patch(&format!("/v1/keys/{id}"), json!({"name": "renamed"}))
        .await
        .assert_status(200);
    let v = app.verify(secret, json!({})).await;
    assert_eq!(code(v.clone()), "RATE_LIMITED");
    assert_eq!(v["key"]["name"], "renamed");
    assert!(app.ctx.verifier.flush().await.unwrap() >= 1);
    assert_eq!(stored_ip(&app, id).await.as_deref(), Some("192.0.2.10"));
    // A new limit starts a fresh limiter.
    app.patch(
        &format!("/v1/keys/{id}"),
        json!({"rate_limit": {"requests": 3, "per_seconds": 60}}),
    )
    .await
    .assert_status(200);
    assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
}

#[tokio::test]
async fn a_flush_writes_exactly_the_keys_whose_use_is_due() {
    let app = spawn_app().await;
    let mut keys = Vec::new();
    for i in 0..3 {
        let k = app.create_key(json!({"name": format!("k{i}")})).await;
        keys.push((
            k["id"].as_str().unwrap().to_owned(),
            k["key"].as_str().unwrap().to_owned(),
        ));
    }
    // The management key's own use so far.
    app.ctx.verifier.flush().await.unwrap();
    for (_, secret) in &keys {
        app.verify(secret, json!({"ip": "192.0.2.1"})).await;
    }
    // Three first uses are due at once; the management key, written just now, is not.
    assert_eq!(app.ctx.verifier.flush().await.unwrap(), 3);
    app.clock.advance(10_000);
    app.verify(&keys[0].1, json!({"ip": "192.0.2.2"})).await;
    assert_eq!(app.ctx.verifier.flush().await.unwrap(), 0);
    assert_eq!(
        stored_ip(&app, &keys[0].0).await.as_deref(),
        Some("192.0.2.1")
    );
    // Past any key's interval: the key used again and the management key, nothing else.
    app.clock.advance(451_000);
    assert_eq!(app.ctx.verifier.flush().await.unwrap(), 2);
    assert_eq!(
        stored_ip(&app, &keys[0].0).await.as_deref(),
        Some("192.0.2.2")
    );
    assert_eq!(app.ctx.verifier.flush().await.unwrap(), 0);
    for (id, _) in &keys[1..] {
        assert_eq!(stored_ip(&app, id).await.as_deref(), Some("192.0.2.1"));
    }
}

#[tokio::test]
async fn a_graceful_stop_writes_pending_last_used_times() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "flushed on stop"})).await;
    let id = k["id"].as_str().unwrap().to_owned();
    app.verify(k["key"].as_str().unwrap(), json!({"ip": "192.0.2.44"}))
        .await;
    let url = app.config.database_url.clone();
    let _dir = app.stop().await;
    let store = keyward::store::Store::connect(&url).await.unwrap();
    let stored = store.get_key(&id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_ip.as_deref(), Some("192.0.2.44"));
}

/// The last-used IP storage holds for a key (not what the API overlays from memory).
async fn stored_ip(app: &crate::helpers::TestApp, id: &str) -> Option<String> {
    app.ctx
        .store
        .get_key(id)
        .await
        .unwrap()
        .unwrap()
        .last_used_ip
}
