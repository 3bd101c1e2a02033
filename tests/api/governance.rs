//! Plans, key policies, members and recoverable keys, end to end on SQLite and PostgreSQL.

use serde_json::{Value, json};

use keyward::domain::Clock;

use crate::helpers::{Db, Options, TEST_ENCRYPTION_KEY, spawn_with};

async fn plan_status_gates_keys_without_touching_them(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let k = app.create_key(json!({"name": "customer"})).await;
    let secret = k["key"].as_str().unwrap();
    let code = |v: Value| v["code"].as_str().unwrap().to_owned();
    assert_eq!(code(app.verify(secret, json!({})).await), "VALID");
    for change in [
        json!({"plan": "free"}),
        json!({"api_access": false}),
        json!({"billing_status": "past_due"}),
    ] {
        let org = app.patch("/v1/org", change.clone()).await;
        assert_eq!(
            org.assert_status(200)["api_access_effective"],
            false,
            "{change}"
        );
        let v = app.verify(secret, json!({})).await;
        assert_eq!(
            (v["code"].as_str(), v["status"].as_u64()),
            (Some("PLAN_INACTIVE"), Some(403)),
            "{change}"
        );
        // The organization can always manage itself.
        app.get("/v1/keys").await.assert_status(200);
        app.patch(
            "/v1/org",
            json!({"plan": "pro", "api_access": true, "billing_status": "active"}),
        )
        .await
        .assert_status(200);
        assert_eq!(
            code(app.verify(secret, json!({})).await),
            "VALID",
            "fixed after {change}"
        );
    }
    let shown = app
        .get(&format!("/v1/keys/{}", k["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        shown.body["status"], "active",
        "the key itself was never touched"
    );
    let res = app
        .patch(
            "/v1/org",
            json!({"plan": "platinum", "billing_status": "late"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"].as_array().unwrap().len(), 2);
    let log = app.get("/v1/audit-log?action=org.updated").await;
    assert_eq!(log.body["data"].as_array().unwrap().len(), 6);
}

async fn key_policies_are_enforced(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    // Key limit: the initial management key counts; revoked keys do not.
    let org = app
        .patch("/v1/org", json!({"policies": {"key_limit": 3}}))
        .await;
    assert_eq!(org.assert_status(200)["policies"]["key_limit"], 3);
    let a = app.create_key(json!({"name": "a"})).await;
    app.create_key(json!({"name": "b"})).await;
    let res = app.post("/v1/keys", json!({"name": "c"})).await;
    res.assert_problem(409, "conflict");
    assert!(res.body["detail"].as_str().unwrap().contains('3'));
    app.post(
        &format!("/v1/keys/{}/revoke", a["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .assert_status(200);
    app.create_key(json!({"name": "c"})).await;

    // Allowed expiries.
    app.patch(
        "/v1/org",
        json!({"policies": {"key_limit": 100, "allowed_expiries": ["1y", "2y"]}}),
    )
    .await
    .assert_status(200);
    app.post("/v1/keys", json!({"name": "forever", "expires": "never"}))
        .await
        .assert_problem(422, "validation_failed");
    let default = app.create_key(json!({"name": "default expiry"})).await;
    assert!(
        default["expires_at"].is_string(),
        "the longest allowed choice applies"
    );
    app.patch("/v1/org", json!({"policies": {"allowed_expiries": []}}))
        .await
        .assert_problem(422, "validation_failed");

    // Scopes not editable after creation.
    let api = app.create_api("policy", &["p:read", "p:write"]).await;
    let k = app
        .create_key(
            json!({"name": "scoped", "api_id": api["id"], "scopes": ["p:read"], "expires": "1y"}),
        )
        .await;
    let path = format!("/v1/keys/{}", k["id"].as_str().unwrap());
    app.patch("/v1/org", json!({"policies": {"scopes_editable": false}}))
        .await
        .assert_status(200);
    let res = app
        .patch(&path, json!({"scopes": ["p:read", "p:write"]}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "scopes");
    app.patch(&path, json!({"name": "still editable"}))
        .await
        .assert_status(200);
}

async fn one_active_key_per_user_per_api_revokes_the_previous_one(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    app.patch("/v1/org", json!({"policies": {"single_active_key": true}}))
        .await
        .assert_status(200);
    let first = app.create_key(json!({"name": "first"})).await;
    let other_api = app.create_api("other", &[]).await;
    let elsewhere = app
        .create_key(json!({"name": "other api", "api_id": other_api["id"]}))
        .await;
    let second = app.post("/v1/keys", json!({"name": "second"})).await;
    let second = second.assert_status(201).clone();
    assert_eq!(
        second["revoked_keys"],
        json!([first["id"]]),
        "the response says which key it replaced"
    );
    assert_eq!(
        app.verify(first["key"].as_str().unwrap(), json!({})).await["code"],
        "REVOKED"
    );
    assert_eq!(
        app.verify(second["key"].as_str().unwrap(), json!({})).await["code"],
        "VALID"
    );
    assert_eq!(
        app.verify(elsewhere["key"].as_str().unwrap(), json!({}))
            .await["code"],
        "VALID",
        "other APIs keep theirs"
    );
    let log = app
        .get(&format!(
            "/v1/audit-log?target_id={}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(log.body["data"][0]["action"], "key.revoked");
}

async fn disabling_and_deleting_members_revoke_their_keys(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let code = |v: Value| {
        (
            v["code"].as_str().unwrap().to_owned(),
            v["status"].as_u64().unwrap(),
        )
    };
    // Disabling: every key of the member is revoked at once; while the member stays disabled the
    // answer names the owner, and enabling them again does not bring the keys back.
    let (dev_id, dev_mgmt) = app.member("developer").await;
    let k = app
        .create_key(json!({"name": "dev's service key", "owner_id": dev_id}))
        .await;
    let secret = k["key"].as_str().unwrap();
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    app.get_as(&dev_mgmt, "/v1/keys").await.assert_status(200);
    let res = app
        .patch(
            &format!("/v1/users/{dev_id}"),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(res.assert_status(200)["status"], "disabled");
    assert_eq!(
        code(app.verify(secret, json!({})).await),
        ("OWNER_DISABLED".into(), 401)
    );
    app.get_as(&dev_mgmt, "/v1/keys")
        .await
        .assert_problem(401, "owner_disabled");
    let shown = app
        .get(&format!("/v1/keys/{}", k["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (
            shown.body["status"].as_str(),
            shown.body["revoke_reason"].as_str()
        ),
        (Some("revoked"), Some("owner disabled"))
    );
    app.patch(&format!("/v1/users/{dev_id}"), json!({"status": "active"}))
        .await
        .assert_status(200);
    assert_eq!(
        code(app.verify(secret, json!({})).await),
        ("REVOKED".into(), 401)
    );
    let log = app.get(&format!("/v1/audit-log?target_id={dev_id}")).await;
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.enabled", "user.disabled", "user.created"]);
    assert_eq!(
        log.body["data"][1]["details"]["keys_revoked"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let key_log = app
        .get(&format!(
            "/v1/audit-log?target_id={}",
            k["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(key_log.body["data"][0]["action"], "key.revoked");
    assert!(
        key_log.body["data"][0]["target"]["label"]
            .as_str()
            .unwrap()
            .ends_with("••••")
    );

    // Deleting: the same, and the member is gone.
    let (gone_id, gone_mgmt) = app.member("developer").await;
    let g = app
        .create_key(json!({"name": "gone's key", "owner_id": gone_id}))
        .await;
    let res = app.delete(&format!("/v1/users/{gone_id}")).await;
    assert_eq!(res.status, 204);
    assert_eq!(
        code(app.verify(g["key"].as_str().unwrap(), json!({})).await),
        ("OWNER_DISABLED".into(), 401)
    );
    app.get_as(&gone_mgmt, "/v1/keys")
        .await
        .assert_problem(401, "owner_disabled");
    app.get(&format!("/v1/users/{gone_id}"))
        .await
        .assert_problem(404, "not_found");
    let log = app
        .get(&format!(
            "/v1/audit-log?target_id={gone_id}&action=user.deleted"
        ))
        .await;
    assert_eq!(
        log.body["data"][0]["details"]["keys_revoked"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The email can be invited again.
    let users_email = log.body["data"][0]["target"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/v1/users",
        json!({"email": users_email, "name": "Back", "role": "viewer"}),
    )
    .await
    .assert_status(201);
}

async fn there_is_always_an_owner_and_only_owners_make_owners(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let me = format!("/v1/users/{}", app.owner_id);
    app.patch(&me, json!({"role": "admin"}))
        .await
        .assert_problem(409, "conflict");
    app.patch(&me, json!({"status": "disabled"}))
        .await
        .assert_problem(409, "conflict");
    app.delete(&me).await.assert_problem(409, "conflict");
    let (_, admin) = app.member("admin").await;
    app.patch_as(&admin, &me, json!({"role": "viewer"}))
        .await
        .assert_problem(403, "forbidden");
    let second = app.post("/v1/users", json!({"email": "second@example.com", "name": "Second", "role": "owner", "password": "a long password"})).await;
    let second_id = second.assert_status(201)["id"].as_str().unwrap().to_owned();
    app.patch(&me, json!({"role": "admin"}))
        .await
        .assert_status(200);
    let users = app.get("/v1/users").await;
    let owners = users.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "owner")
        .count();
    assert_eq!(owners, 1);
    assert_eq!(
        users.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == second_id.as_str())
            .unwrap()["role"],
        "owner"
    );
    // Validation and duplicates.
    let res = app
        .post(
            "/v1/users",
            json!({"email": "not-an-email", "name": "", "role": "boss", "password": "short"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"].as_array().unwrap().len(), 4);
    app.post(
        "/v1/users",
        json!({"email": "SECOND@example.com", "name": "Dup", "role": "viewer"}),
    )
    .await
    .assert_problem(409, "conflict");
}

async fn recoverable_keys_are_revealed_only_with_the_scope_and_every_reveal_is_audited(db: Db) {
    let app = spawn_with(Options {
        db,
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    app.post("/v1/keys", json!({"name": "r", "recoverable": true}))
        .await
        .assert_problem(422, "validation_failed");
    app.patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await
        .assert_status(200);
    let k = app
        .create_key(json!({"name": "recoverable", "recoverable": true}))
        .await;
    assert_eq!(k["recoverable"], true);
    let id = k["id"].as_str().unwrap();
    let res = app.get(&format!("/v1/keys/{id}/secret")).await;
    assert_eq!(res.assert_status(200)["key"], k["key"]);
    assert_eq!(res.headers["cache-control"], "no-store");
    let stored = app.ctx.store.get_key(id).await.unwrap().unwrap();
    assert!(
        !stored
            .encrypted_secret
            .unwrap()
            .contains(&k["key"].as_str().unwrap()[20..])
    );

    let reader = app.management_key(&["keys:read"]).await;
    app.get_as(&reader, &format!("/v1/keys/{id}/secret"))
        .await
        .assert_problem(403, "forbidden");
    let plain = app.create_key(json!({"name": "plain"})).await;
    app.get(&format!(
        "/v1/keys/{}/secret",
        plain["id"].as_str().unwrap()
    ))
    .await
    .assert_problem(409, "conflict");
    let rotated = app
        .post(&format!("/v1/keys/{id}/rotate"), json!({}))
        .await
        .assert_status(201)
        .clone();
    let revealed = app
        .get(&format!(
            "/v1/keys/{}/secret",
            rotated["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(revealed.body["key"], rotated["key"]);
    app.get(&format!("/v1/keys/{id}/secret"))
        .await
        .assert_problem(409, "conflict");
    let log = app.get("/v1/audit-log?action=key.revealed").await;
    assert_eq!(log.body["data"].as_array().unwrap().len(), 2);
    assert!(!log.text.contains(k["key"].as_str().unwrap()));
}

async fn recoverable_keys_are_refused_without_an_encryption_key(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let res = app
        .patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert!(
        res.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("KEYWARD_ENCRYPTION_KEY")
    );
}

async fn plan_default_rate_limits_apply_to_keys_without_their_own(db: Db) {
    let toml = "[plans.tiny]\napi_access = true\nrate_limit = { requests = 2, per_seconds = 60 }\n\
                [plans.pro]\napi_access = true\n";
    let app = spawn_with(Options {
        db,
        toml: Some(toml.into()),
        ..Default::default()
    })
    .await;
    let k = app.create_key(json!({"name": "plan limited"})).await;
    let own = app
        .create_key(json!({"name": "own limit", "rate_limit": {"requests": 5, "per_seconds": 60}}))
        .await;
    let secret = k["key"].as_str().unwrap();
    assert!(
        app.verify(secret, json!({}))
            .await
            .get("ratelimit")
            .is_none(),
        "pro has no default limit here"
    );
    app.patch("/v1/org", json!({"plan": "tiny"}))
        .await
        .assert_status(200);
    assert_eq!(app.verify(secret, json!({})).await["ratelimit"]["limit"], 2);
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    assert_eq!(app.verify(secret, json!({})).await["code"], "RATE_LIMITED");
    assert_eq!(
        app.verify(own["key"].as_str().unwrap(), json!({})).await["ratelimit"]["limit"],
        5
    );
    for _ in 0..5 {
        app.get("/v1/keys").await.assert_status(200);
    }
}

async fn the_audit_log_records_every_governed_action_and_no_secret(db: Db) {
    let app = spawn_with(Options {
        db,
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    app.patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await
        .assert_status(200);
    let (dev_id, _) = app.member("developer").await;
    let k = app
        .create_key(json!({"name": "audited", "recoverable": true}))
        .await;
    let id = k["id"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_period_s": 60}),
        )
        .await
        .assert_status(201)
        .clone();
    let rid = rotated["id"].as_str().unwrap();
    app.patch(&format!("/v1/keys/{rid}"), json!({"name": "edited"}))
        .await
        .assert_status(200);
    app.get(&format!("/v1/keys/{rid}/secret"))
        .await
        .assert_status(200);
    app.post(&format!("/v1/keys/{rid}/revoke"), json!({}))
        .await
        .assert_status(200);
    app.delete(&format!("/v1/keys/{rid}")).await;
    let api = app.create_api("audited", &[]).await;
    app.patch(
        &format!("/v1/apis/{}", api["id"].as_str().unwrap()),
        json!({"name": "x"}),
    )
    .await
    .assert_status(200);
    app.patch(&format!("/v1/users/{dev_id}"), json!({"role": "viewer"}))
        .await
        .assert_status(200);
    app.delete(&format!("/v1/users/{dev_id}")).await;
    let log = app.get("/v1/audit-log?limit=100").await;
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "org.updated",
        "user.created",
        "key.created",
        "key.rotated",
        "key.updated",
        "key.revealed",
        "key.revoked",
        "key.deleted",
        "api.created",
        "api.updated",
        "user.role_changed",
        "user.deleted",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    for e in log.body["data"].as_array().unwrap() {
        assert!(
            e["created_at"].is_string() && e["actor"]["label"].is_string(),
            "{e}"
        );
    }
    for secret in [
        k["key"].as_str().unwrap(),
        rotated["key"].as_str().unwrap(),
        app.admin_key.as_str(),
    ] {
        assert!(!log.text.contains(secret), "a key appears in the audit log");
        assert!(
            !log.text.contains(&secret[20..60]),
            "part of a key's secret appears in the audit log"
        );
    }
}

/// Another instance sharing the database revokes a key, renames another and flags a third as
/// exposed: this instance, which has them cached, sees the changes once it follows the database's
/// changes (every second when serving), not only when its cache expires.
async fn changes_made_by_another_instance_are_followed(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let revoked = app.create_key(json!({"name": "revoked elsewhere"})).await;
    let renamed = app.create_key(json!({"name": "renamed elsewhere"})).await;
    let code = |v: Value| v["code"].as_str().unwrap().to_owned();
    for k in [&revoked, &renamed] {
        assert_eq!(
            code(app.verify(k["key"].as_str().unwrap(), json!({})).await),
            "VALID"
        );
    }
    let (revoked_id, renamed_id) = (
        revoked["id"].as_str().unwrap(),
        renamed["id"].as_str().unwrap(),
    );
    app.clock.advance(1_000);
    let at = app.clock.now_ms();
    // Written straight to storage, as the other instance would: this one is not told.
    assert!(
        app.ctx
            .store
            .revoke_key(&app.org_id, revoked_id, at, "manual")
            .await
            .unwrap()
    );
    let mut other = app.ctx.store.get_key(renamed_id).await.unwrap().unwrap();
    other.name = "new name".into();
    other.updated_at = at;
    app.ctx.store.update_key(&other).await.unwrap();
    let exposed = app.create_key(json!({"name": "exposed elsewhere"})).await;
    let exposed_id = exposed["id"].as_str().unwrap();
    assert_eq!(
        app.verify(exposed["key"].as_str().unwrap(), json!({}))
            .await["key"]["exposed_at"],
        Value::Null
    );
    assert!(
        app.ctx
            .store
            .mark_key_exposed(exposed_id, at)
            .await
            .unwrap()
    );
    let secret = revoked["key"].as_str().unwrap();
    assert_eq!(
        code(app.verify(secret, json!({})).await),
        "VALID",
        "still cached"
    );

    assert_eq!(app.ctx.verifier.follow_changes().await.unwrap(), 3);
    assert_eq!(code(app.verify(secret, json!({})).await), "REVOKED");
    let v = app
        .verify(exposed["key"].as_str().unwrap(), json!({}))
        .await;
    assert!(v["key"]["exposed_at"].is_string(), "{v}");
    let v = app
        .verify(renamed["key"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(
        (code(v.clone()), &v["key"]["name"]),
        ("VALID".into(), &json!("new name"))
    );
    // Followed once: nothing is dropped again for the same versions.
    assert_eq!(app.ctx.verifier.follow_changes().await.unwrap(), 0);
}

/// A change of more keys than one page of followed changes, all at one version (every key of a
/// member disabled on another instance), is followed in full, and once.
async fn a_change_of_many_keys_at_once_is_followed_in_full(db: Db) {
    use keyward::domain::check::Requirements;
    use keyward::domain::key;
    use keyward::verify::{Presented, Scope};
    let app = spawn_with(Options {
        db,
        ..Default::default()
    })
    .await;
    let (member, _) = app.member("developer").await;
    let template = app
        .create_key(json!({"name": "template", "owner_id": member}))
        .await;
    let template = app
        .ctx
        .store
        .get_key(template["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let pepper = app.ctx.verifier.peppers().current().clone();
    let mut secrets = Vec::new();
    let mut keys = Vec::new();
    for i in 0..1_005 {
        let secret = key::generate(&template.key_prefix, &mut rand::rngs::OsRng);
        let mut k = template.clone();
        k.id = format!("key_{}", key::parse(secret.expose()).unwrap().id);
        k.name = format!("bulk {i}");
        k.hash = pepper.hash(secret.expose());
        keys.push(k);
        secrets.push(secret);
    }
    app.ctx.store.create_keys(&keys).await.unwrap();
    let verifier = &app.ctx.verifier;
    let scope = Scope {
        org_id: Some(&app.org_id),
        ..Default::default()
    };
    let req = Requirements::default();
    let code = |outcome: keyward::verify::Outcome| match outcome {
        Ok(_) => "VALID",
        Err(r) => r.denial.verify_code(),
    };
    for s in &secrets {
        let presented = Presented {
            token: s.expose(),
            scope,
            req: req.clone(),
            cost: 1,
        };
        let outcome = verifier.check(&presented).await.unwrap();
        assert_eq!(code(outcome), "VALID");
    }
    app.clock.advance(1_000);
    // Written straight to storage, as the other instance would: this one is not told.
    let revoked = app
        .ctx
        .store
        .revoke_keys_of_owner(&app.org_id, &member, app.clock.now_ms(), "member disabled")
        .await
        .unwrap();
    assert_eq!(
        revoked.len(),
        1_007,
        "the template and the member's management key too"
    );

    // Every cached one (all but the template) is dropped, and each answers as revoked.
    assert_eq!(verifier.follow_changes().await.unwrap(), 1_005);
    for s in &secrets {
        let presented = Presented {
            token: s.expose(),
            scope,
            req: req.clone(),
            cost: 1,
        };
        let outcome = verifier.check(&presented).await.unwrap();
        assert_eq!(code(outcome), "REVOKED");
    }
    assert_eq!(verifier.follow_changes().await.unwrap(), 0);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(crate::helpers::Db::Sqlite).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(crate::helpers::Db::Postgres).await; })*
        }
    };
}

on_both_backends!(
    plan_status_gates_keys_without_touching_them,
    key_policies_are_enforced,
    one_active_key_per_user_per_api_revokes_the_previous_one,
    disabling_and_deleting_members_revoke_their_keys,
    there_is_always_an_owner_and_only_owners_make_owners,
    recoverable_keys_are_revealed_only_with_the_scope_and_every_reveal_is_audited,
    recoverable_keys_are_refused_without_an_encryption_key,
    plan_default_rate_limits_apply_to_keys_without_their_own,
    the_audit_log_records_every_governed_action_and_no_secret,
    changes_made_by_another_instance_are_followed,
    a_change_of_many_keys_at_once_is_followed_in_full,
);
