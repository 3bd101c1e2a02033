//! Named IP ACLs, key groups, resource patterns and service accounts, over HTTP on SQLite and
//! PostgreSQL: the verify endpoint and the gateway follow a change of an ACL or a group on the
//! very next request; what is in use cannot be deleted; resources are checked right after scope;
//! a service account's keys outlive the person who made them, and it never signs in.

use keyward::config::ServerArgs;
use serde_json::{Value, json};

use crate::gateway::{gateway_app, get_with, key_of, protected_api, through, upstream};
use crate::helpers::{Db, TestApp, spawn_app_on};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn verdict(app: &TestApp, key: &str, extra: Value) -> String {
    app.verify(key, extra).await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn audit_of(app: &TestApp, target: &str) -> Vec<Value> {
    app.get("/v1/audit-log?limit=100").await.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"]["id"] == target || e["target_id"] == target)
        .cloned()
        .collect()
}

async fn a_key_whose_only_allowlist_is_an_acl_follows_every_edit_of_it(db: Db) {
    let app = spawn_app_on(db).await;
    let acl = app
        .post(
            "/v1/ip-acls",
            json!({"name": "Office", "entries": ["203.0.113.0/24", "2001:db8::/48"]}),
        )
        .await;
    let acl = acl.assert_status(201).clone();
    let acl_id = id(&acl);
    assert!(acl_id.starts_with("acl_"), "{acl}");
    assert_eq!(acl["entries"], json!(["203.0.113.0/24", "2001:db8::/48"]));

    // Bad input: each field named, nothing stored.
    let bad = app
        .post(
            "/v1/ip-acls",
            json!({"name": "Bad", "entries": ["203.0.113.0/33", "nope"]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["entries[0]", "entries[1]"]);
    app.post("/v1/ip-acls", json!({"name": "Empty", "entries": []}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(
        "/v1/ip-acls",
        json!({"name": "Office", "entries": ["192.0.2.1"]}),
    )
    .await
    .assert_problem(409, "conflict");
    app.get("/v1/ip-acls/acl_0000000000000000")
        .await
        .assert_problem(404, "not_found");
    // Writing needs org:admin; a developer reads, but does not write.
    let (_, dev) = app.member("developer").await;
    app.post_as(
        &dev,
        "/v1/ip-acls",
        json!({"name": "Dev", "entries": ["192.0.2.1"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    let listed = app.get_as(&dev, "/v1/ip-acls").await;
    assert_eq!(listed.assert_status(200)["data"][0]["id"], acl_id);

    // Keys name it; unknown or malformed ids are a 422.
    let unknown = app
        .post(
            "/v1/keys",
            json!({"name": "k", "ip_acl_ids": ["acl_0000000000000000", "office"]}),
        )
        .await;
    unknown.assert_problem(422, "validation_failed");
    assert_eq!(unknown.error_fields(), ["ip_acl_ids[1]"]);
    let unknown = app
        .post(
            "/v1/keys",
            json!({"name": "k", "ip_acl_ids": ["acl_0000000000000000"]}),
        )
        .await;
    unknown.assert_problem(422, "validation_failed");
    assert_eq!(unknown.error_fields(), ["ip_acl_ids[0]"]);

    let created = app
        .create_key(json!({"name": "office only", "ip_acl_ids": [acl_id]}))
        .await;
    assert_eq!(created["ip_acl_ids"], json!([acl_id]));
    assert_eq!(created["ip_allowlist"], json!([]));
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = id(&created);
    assert_eq!(
        verdict(&app, &key, json!({"ip": "198.51.100.7"})).await,
        "IP_NOT_ALLOWED"
    );
    assert_eq!(verdict(&app, &key, json!({})).await, "IP_NOT_ALLOWED");
    assert_eq!(
        verdict(&app, &key, json!({"ip": "203.0.113.9"})).await,
        "VALID"
    );
    assert_eq!(
        verdict(&app, &key, json!({"ip": "2001:db8:0:1::5"})).await,
        "VALID"
    );

    // An edit flips the verdict on the very next request, cached or not.
    app.patch(
        &format!("/v1/ip-acls/{acl_id}"),
        json!({"entries": ["198.51.100.0/24"]}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        verdict(&app, &key, json!({"ip": "198.51.100.7"})).await,
        "VALID"
    );
    assert_eq!(
        verdict(&app, &key, json!({"ip": "203.0.113.9"})).await,
        "IP_NOT_ALLOWED"
    );

    // The key's own allowlist and its ACLs add up.
    app.patch(
        &format!("/v1/keys/{key_id}"),
        json!({"ip_allowlist": ["192.0.2.1"]}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        verdict(&app, &key, json!({"ip": "192.0.2.1"})).await,
        "VALID"
    );
    assert_eq!(
        verdict(&app, &key, json!({"ip": "198.51.100.7"})).await,
        "VALID"
    );
    assert_eq!(
        verdict(&app, &key, json!({"ip": "192.0.2.2"})).await,
        "IP_NOT_ALLOWED"
    );

    // An edit that changes nothing is not recorded.
    let before = audit_of(&app, &acl_id).await.len();
    app.patch(&format!("/v1/ip-acls/{acl_id}"), json!({}))
        .await
        .assert_status(200);
    assert_eq!(audit_of(&app, &acl_id).await.len(), before);

    // In use: 409, and nothing changes.
    app.delete(&format!("/v1/ip-acls/{acl_id}"))
        .await
        .assert_problem(409, "conflict");
    app.get(&format!("/v1/ip-acls/{acl_id}"))
        .await
        .assert_status(200);
    // Once no key names it, it goes.
    let edited = app
        .patch(&format!("/v1/keys/{key_id}"), json!({"ip_acl_ids": []}))
        .await;
    assert_eq!(edited.assert_status(200)["ip_acl_ids"], json!([]));
    let key_events = audit_of(&app, &key_id).await;
    assert!(
        key_events.iter().any(|e| e["action"] == "key.updated"
            && e["details"] == json!({"fields": ["ip_acl_ids"], "ip_acl_ids": []})),
        "{key_events:?}"
    );
    app.delete(&format!("/v1/ip-acls/{acl_id}"))
        .await
        .assert_status(204);
    app.get(&format!("/v1/ip-acls/{acl_id}"))
        .await
        .assert_problem(404, "not_found");

    // Every change is audited with what changed.
    let events = audit_of(&app, &acl_id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"ip_acl.created"), "{actions:?}");
    assert!(actions.contains(&"ip_acl.deleted"), "{actions:?}");
    let updated = events
        .iter()
        .find(|e| e["action"] == "ip_acl.updated")
        .expect("the edit is audited");
    assert_eq!(
        updated["details"]["entries"],
        json!({"added": ["198.51.100.0/24"], "removed": ["203.0.113.0/24", "2001:db8::/48"]})
    );
    assert_eq!(updated["details"]["keys_affected"], 1);
    assert!(!app.get("/v1/audit-log?limit=100").await.text.contains(&key));
}

async fn deleting_an_acl_and_naming_it_at_once_never_leaves_a_key_without_it(db: Db) {
    let app = spawn_app_on(db).await;
    for round in 0..4 {
        let acl = app
            .post(
                "/v1/ip-acls",
                json!({"name": format!("race {round}"), "entries": ["203.0.113.0/24"]}),
            )
            .await;
        let acl_id = id(acl.assert_status(201));
        let path = format!("/v1/ip-acls/{acl_id}");
        let (created, deleted) = tokio::join!(
            app.post("/v1/keys", json!({"name": "racer", "ip_acl_ids": [acl_id]})),
            app.delete(&path),
        );
        match (created.status.as_u16(), deleted.status.as_u16()) {
            // The key came first: the ACL stays.
            (201, 409) => {
                app.get(&path).await.assert_status(200);
                let key = created.body["key"].as_str().unwrap();
                assert_eq!(
                    verdict(&app, key, json!({"ip": "203.0.113.1"})).await,
                    "VALID"
                );
            }
            // The deletion came first: the key names nothing that is gone.
            (422, 204) => {
                app.get(&path).await.assert_problem(404, "not_found");
            }
            other => panic!("{other:?}: {} / {}", created.text, deleted.text),
        }
    }
}

async fn a_key_gains_and_loses_scopes_and_its_rate_limit_through_its_group(db: Db) {
    let app = spawn_app_on(db).await;
    let api = app
        .create_api("transcripts", &["transcripts:read", "transcripts:write"])
        .await;
    let api_id = id(&api);
    let bad = app
        .post(
            "/v1/key-groups",
            json!({"name": "g", "api_id": api_id, "scopes": ["transcripts:read", "billing:read"]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["scopes[1]"]);
    let bad = app
        .post(
            "/v1/key-groups",
            json!({"name": "g", "api_id": app.management_api_id, "scopes": ["keys:read"]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["api_id"]);
    let bad = app
        .post(
            "/v1/key-groups",
            json!({"name": "g", "api_id": api_id, "rate_limit": {"requests": 0, "per_seconds": 60}}),
        )
        .await;
    assert_eq!(bad.error_fields(), ["rate_limit.requests"]);

    let group = app
        .post(
            "/v1/key-groups",
            json!({"name": "Read-only integrations", "api_id": api_id, "scopes": ["transcripts:read"]}),
        )
        .await;
    let group = group.assert_status(201).clone();
    let group_id = id(&group);
    assert!(group_id.starts_with("grp_"));
    assert_eq!(group["rate_limit"], Value::Null);

    // Only keys of the group's API join it.
    let other_api = app
        .post("/v1/keys", json!({"name": "k", "group_ids": [group_id]}))
        .await;
    other_api.assert_problem(422, "validation_failed");
    assert_eq!(other_api.error_fields(), ["group_ids[0]"]);

    let created = app
        .create_key(json!({"name": "member", "api_id": api_id, "group_ids": [group_id]}))
        .await;
    assert_eq!(created["scopes"], json!([]));
    assert_eq!(created["group_ids"], json!([group_id]));
    assert_eq!(created["effective_scopes"], json!(["transcripts:read"]));
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = id(&created);
    let read = json!({"required_scopes": ["transcripts:read"]});
    let write = json!({"required_scopes": ["transcripts:write"]});
    assert_eq!(verdict(&app, &key, read.clone()).await, "VALID");
    assert_eq!(
        verdict(&app, &key, write.clone()).await,
        "INSUFFICIENT_SCOPE"
    );

    // The group changes: every member key follows on its next verification.
    app.patch(
        &format!("/v1/key-groups/{group_id}"),
        json!({"scopes": ["transcripts:write"]}),
    )
    .await
    .assert_status(200);
    assert_eq!(
        verdict(&app, &key, read.clone()).await,
        "INSUFFICIENT_SCOPE"
    );
    assert_eq!(verdict(&app, &key, write.clone()).await, "VALID");
    let shown = app.get(&format!("/v1/keys/{key_id}")).await;
    assert_eq!(
        shown.assert_status(200)["effective_scopes"],
        json!(["transcripts:write"])
    );
    let listed = app.get(&format!("/v1/keys?api_id={api_id}")).await;
    assert_eq!(
        listed.assert_status(200)["data"][0]["effective_scopes"],
        json!(["transcripts:write"])
    );

    // Its rate limit applies to member keys without their own.
    app.patch(
        &format!("/v1/key-groups/{group_id}"),
        json!({"rate_limit": {"requests": 2, "per_seconds": 60}}),
    )
    .await
    .assert_status(200);
    assert_eq!(verdict(&app, &key, json!({})).await, "VALID");
    assert_eq!(verdict(&app, &key, json!({})).await, "VALID");
    let limited = app.verify(&key, json!({})).await;
    assert_eq!(limited["code"], "RATE_LIMITED");
    assert_eq!(limited["ratelimit"]["limit"], 2);
    // The key's own limit wins over the group's.
    app.patch(
        &format!("/v1/keys/{key_id}"),
        json!({"rate_limit": {"requests": 100, "per_seconds": 60}}),
    )
    .await
    .assert_status(200);
    assert_eq!(app.verify(&key, json!({})).await["ratelimit"]["limit"], 100);

    // In use: 409; leaving the group takes its scopes away.
    app.delete(&format!("/v1/key-groups/{group_id}"))
        .await
        .assert_problem(409, "conflict");
    let left = app
        .patch(&format!("/v1/keys/{key_id}"), json!({"group_ids": []}))
        .await;
    assert_eq!(left.assert_status(200)["effective_scopes"], json!([]));
    assert_eq!(verdict(&app, &key, write).await, "INSUFFICIENT_SCOPE");
    app.delete(&format!("/v1/key-groups/{group_id}"))
        .await
        .assert_status(204);
    let events = audit_of(&app, &group_id).await;
    let scopes_changed = events
        .iter()
        .find(|e| e["action"] == "key_group.updated" && !e["details"]["scopes"].is_null())
        .expect("the scope change is audited");
    assert_eq!(
        scopes_changed["details"]["scopes"],
        json!({"from": ["transcripts:read"], "to": ["transcripts:write"]})
    );
}

async fn resource_patterns_match_and_refuse_after_the_scope_check(db: Db) {
    let app = spawn_app_on(db).await;
    let api = app
        .create_api("projects", &["transcripts:read", "transcripts:write"])
        .await;
    let api_id = id(&api);
    let bad = app
        .post(
            "/v1/keys",
            json!({"name": "k", "api_id": api_id, "resources": ["project:acme-*", "project", "Project:x", "project:a*b"]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(
        bad.error_fields(),
        ["resources[1]", "resources[2]", "resources[3]"]
    );
    let many: Vec<String> = (0..51).map(|i| format!("project:p{i}")).collect();
    let bad = app
        .post(
            "/v1/keys",
            json!({"name": "k", "api_id": api_id, "resources": many}),
        )
        .await;
    assert_eq!(bad.error_fields(), ["resources"]);

    let created = app
        .create_key(
            json!({"name": "scoped to acme", "api_id": api_id, "scopes": ["transcripts:read"],
                           "resources": ["project:acme-*", "team:core"]}),
        )
        .await;
    assert_eq!(created["resources"], json!(["project:acme-*", "team:core"]));
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = id(&created);
    for (resource, code) in [
        ("project:acme-web", "VALID"),
        ("project:acme-", "VALID"),
        ("team:core", "VALID"),
        ("team:core2", "RESOURCE_NOT_ALLOWED"),
        ("project:globex", "RESOURCE_NOT_ALLOWED"),
        ("dataset:acme-web", "RESOURCE_NOT_ALLOWED"),
    ] {
        let v = app.verify(&key, json!({"resource": resource})).await;
        assert_eq!(v["code"], code, "{resource}");
        if code != "VALID" {
            assert_eq!(v["status"], 403);
            assert_eq!(v["valid"], false);
        }
    }
    // Scope answers before resource.
    assert_eq!(
        verdict(
            &app,
            &key,
            json!({"required_scopes": ["transcripts:write"], "resource": "project:globex"})
        )
        .await,
        "INSUFFICIENT_SCOPE"
    );
    // A request that names no resource is not refused for one.
    assert_eq!(verdict(&app, &key, json!({})).await, "VALID");
    // The requested resource must be well-formed, and is never repeated back.
    let bad = app
        .post(
            "/v1/keys/verify",
            json!({"key": key, "resource": "project:acme-*"}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["resource"]);
    // A key without resources reaches every resource.
    let open = app
        .create_key(json!({"name": "open", "api_id": api_id}))
        .await;
    assert_eq!(
        verdict(
            &app,
            open["key"].as_str().unwrap(),
            json!({"resource": "project:globex"})
        )
        .await,
        "VALID"
    );
    // Emptying the list lifts the restriction on the next request.
    app.patch(&format!("/v1/keys/{key_id}"), json!({"resources": []}))
        .await
        .assert_status(200);
    assert_eq!(
        verdict(&app, &key, json!({"resource": "project:globex"})).await,
        "VALID"
    );
}

async fn the_gateway_enforces_acls_and_forwards_resources_and_group_scopes(db: Db) {
    let app = gateway_app(db, ServerArgs::default()).await;
    let up = upstream().await;
    let api_id = protected_api(&app, "speech", json!({"upstream": up.base})).await;
    let acl = app
        .post(
            "/v1/ip-acls",
            json!({"name": "Elsewhere", "entries": ["10.0.0.0/8"]}),
        )
        .await;
    let acl_id = id(acl.assert_status(201));
    let group = app
        .post(
            "/v1/key-groups",
            json!({"name": "Readers", "api_id": api_id, "scopes": ["transcripts:read"]}),
        )
        .await;
    let group_id = id(group.assert_status(201));
    let (key, _) = key_of(
        &app,
        &api_id,
        json!({"ip_acl_ids": [acl_id], "group_ids": [group_id], "scopes": ["transcripts:write"],
               "resources": ["project:acme-*", "team:core"]}),
    )
    .await;
    // The gateway's client is 127.0.0.1, outside the ACL.
    get_with(&app, "/api/v3/documents", &key)
        .await
        .assert_problem(403, "ip_not_allowed");
    app.patch(
        &format!("/v1/ip-acls/{acl_id}"),
        json!({"entries": ["10.0.0.0/8", "127.0.0.0/8"]}),
    )
    .await
    .assert_status(200);
    let auth = format!("Bearer {key}");
    let res = through(
        &app,
        reqwest::Method::GET,
        "/api/v3/documents",
        &[
            ("authorization", &auth),
            ("x-keyward-resources", "project:*"),
        ],
    )
    .await;
    let echoed = res.assert_status(200);
    assert_eq!(
        echoed["headers"]["x-keyward-resources"],
        json!(["project:acme-* team:core"]),
        "the key's resources, the client's copy stripped"
    );
    assert_eq!(
        echoed["headers"]["x-keyward-scopes"],
        json!(["transcripts:write transcripts:read"])
    );

    // A key without resources sends none, whatever the client claims.
    let (open, _) = key_of(&app, &api_id, json!({})).await;
    let auth = format!("Bearer {open}");
    let res = through(
        &app,
        reqwest::Method::GET,
        "/api/v3/documents",
        &[
            ("authorization", &auth),
            ("x-keyward-resources", "project:*"),
        ],
    )
    .await;
    assert!(
        res.assert_status(200)["headers"]
            .get("x-keyward-resources")
            .is_none(),
        "{}",
        res.text
    );

    // Route scopes count the group's: a route needing transcripts:read admits the key.
    app.patch(
        &format!("/v1/apis/{api_id}"),
        json!({"routes": [{"path_prefix": "/api/v3", "required_scopes": ["transcripts:read"]}]}),
    )
    .await
    .assert_status(200);
    let mut ok = false;
    for _ in 0..40 {
        if get_with(&app, "/api/v3/documents", &key).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the group's scope satisfies the route");
    get_with(&app, "/api/v3/documents", &open)
        .await
        .assert_problem(403, "insufficient_scope");
}

async fn a_service_accounts_keys_outlive_the_person_who_made_them(db: Db) {
    let app = spawn_app_on(db).await;
    // Bad input.
    for (body, field) in [
        (
            json!({"kind": "service", "name": "CI", "email": "ci@example.com"}),
            "email",
        ),
        (
            json!({"kind": "service", "name": "CI", "password": "a long enough password"}),
            "password",
        ),
        (json!({"kind": "robot", "name": "CI"}), "kind"),
        (json!({"name": "Nobody", "role": "developer"}), "email"),
    ] {
        let res = app.post("/v1/users", body).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.error_fields(), [field]);
    }
    // Only owners and admins manage members, service accounts included.
    let (_, dev) = app.member("developer").await;
    app.post_as(&dev, "/v1/users", json!({"kind": "service", "name": "CI"}))
        .await
        .assert_problem(403, "forbidden");

    let svc = app
        .post(
            "/v1/users",
            json!({"kind": "service", "name": "CI integration"}),
        )
        .await;
    let svc = svc.assert_status(201).clone();
    assert_eq!(svc["kind"], "service");
    assert_eq!(svc["email"], Value::Null);
    assert_eq!(svc["role"], "developer");
    let svc_id = id(&svc);
    // Two service accounts may exist: none has an email to clash.
    app.post(
        "/v1/users",
        json!({"kind": "service", "name": "Nightly export"}),
    )
    .await
    .assert_status(201);

    // An admin (a person) sets up the integration: its keys belong to the service account.
    let (admin_id, admin_key) = app.member("admin").await;
    let integration = app
        .post_as(
            &admin_key,
            "/v1/keys",
            json!({"name": "integration", "owner_id": svc_id}),
        )
        .await;
    let integration = integration.assert_status(201).clone();
    assert_eq!(integration["owner_id"], svc_id);
    assert_eq!(integration["created_by"], admin_id);
    let integration_key = integration["key"].as_str().unwrap().to_owned();
    // A management key owned by the service account acts within its role.
    let svc_mgmt = app
        .post_as(
            &admin_key,
            "/v1/keys",
            json!({"name": "svc mgmt", "api_id": app.management_api_id, "owner_id": svc_id,
                   "scopes": ["keys:read", "users:write"]}),
        )
        .await;
    let svc_mgmt = svc_mgmt.assert_status(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get_as(&svc_mgmt, "/v1/keys").await.assert_status(200);
    app.post_as(
        &svc_mgmt,
        "/v1/users",
        json!({"kind": "service", "name": "x"}),
    )
    .await
    .assert_problem(403, "forbidden");
    let admins_own = app
        .post_as(&admin_key, "/v1/keys", json!({"name": "admin's own"}))
        .await;
    let admins_own = admins_own.assert_status(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The person leaves: their keys stop, the service account's do not.
    app.delete(&format!("/v1/users/{admin_id}"))
        .await
        .assert_status(204);
    assert_eq!(verdict(&app, &integration_key, json!({})).await, "VALID");
    assert_eq!(
        verdict(&app, &admins_own, json!({})).await,
        "OWNER_DISABLED"
    );
    app.get_as(&svc_mgmt, "/v1/keys").await.assert_status(200);
    let listed = app.get("/v1/users").await;
    let svc_listed = listed.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == svc_id)
        .cloned()
        .expect("listed");
    assert_eq!(svc_listed["status"], "active");
    assert_eq!(svc_listed["kind"], "service");
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["kind"] == "person")
            .all(|u| u["email"].is_string())
    );

    // It never signs in: no password can be set, no sign-in link made, an empty email finds
    // nobody.
    let user = app
        .ctx
        .store
        .get_user(&svc_id)
        .await
        .unwrap()
        .expect("stored");
    assert!(
        keyward::service::sessions::create_setup_link(
            &app.ctx,
            &user,
            keyward::service::sessions::Purpose::Invite
        )
        .await
        .is_err()
    );
    assert!(app.ctx.store.get_user_by_email("").await.unwrap().is_none());
    let csrf = app
        .http
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("keyward_csrf="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a csrf cookie");
    let signed_in = app
        .http
        .post(app.url("/sign-in"))
        .header("cookie", format!("keyward_csrf={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("email", ""), ("password", "")])
        .send()
        .await
        .unwrap();
    assert!(
        !signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("keyward_session=")),
        "no session for a service account"
    );
}

async fn another_instance_follows_acl_and_group_changes_within_seconds(db: Db) {
    let app = spawn_app_on(db).await;
    let api = app
        .create_api("shared", &["transcripts:read", "transcripts:write"])
        .await;
    let api_id = id(&api);
    let acl = app
        .post(
            "/v1/ip-acls",
            json!({"name": "Office", "entries": ["203.0.113.0/24"]}),
        )
        .await;
    let acl_id = id(acl.assert_status(201));
    let group = app
        .post(
            "/v1/key-groups",
            json!({"name": "Readers", "api_id": api_id, "scopes": ["transcripts:read"]}),
        )
        .await;
    let group_id = id(group.assert_status(201));
    let key = app
        .create_key(json!({"name": "shared", "api_id": api_id, "ip_acl_ids": [acl_id], "group_ids": [group_id]}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second instance on the same database: a fresh process reads what the first stored.
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let second = keyward::Application::build(config).await.unwrap();
    let second_base = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let on_second = |extra: Value| {
        let (http, base, admin, key) = (
            app.http.clone(),
            second_base.clone(),
            app.admin_key.clone(),
            key.clone(),
        );
        async move {
            let mut body = json!({"key": key});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let v: Value = http
                .post(format!("{base}/v1/keys/verify"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["code"].as_str().unwrap_or_default().to_owned()
        }
    };
    let inside = json!({"ip": "203.0.113.5", "required_scopes": ["transcripts:read"]});
    let moved = json!({"ip": "198.51.100.5", "required_scopes": ["transcripts:read"]});
    // Cached on the second instance.
    assert_eq!(on_second(inside.clone()).await, "VALID");
    assert_eq!(on_second(moved.clone()).await, "IP_NOT_ALLOWED");
    app.patch(
        &format!("/v1/ip-acls/{acl_id}"),
        json!({"entries": ["198.51.100.0/24"]}),
    )
    .await
    .assert_status(200);
    let changed = std::time::Instant::now();
    while on_second(moved.clone()).await != "VALID" {
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(3),
            "the ACL edit reaches the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(on_second(inside.clone()).await, "IP_NOT_ALLOWED");
    app.patch(
        &format!("/v1/key-groups/{group_id}"),
        json!({"scopes": ["transcripts:write"]}),
    )
    .await
    .assert_status(200);
    let changed = std::time::Instant::now();
    while on_second(moved.clone()).await != "INSUFFICIENT_SCOPE" {
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(3),
            "the group change reaches the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

async fn another_organization_sees_and_uses_none_of_them(db: Db) {
    let app = spawn_app_on(db).await;
    let other =
        keyward::service::bootstrap::create_org(&app.ctx, "Other", "owner@other.example", "pro")
            .await
            .unwrap();
    let b = other.secret.expose().to_owned();
    let api = app.create_api("mine", &["transcripts:read"]).await;
    let acl_id = id(app
        .post(
            "/v1/ip-acls",
            json!({"name": "Office", "entries": ["203.0.113.0/24"]}),
        )
        .await
        .assert_status(201));
    let group_id = id(app
        .post(
            "/v1/key-groups",
            json!({"name": "Readers", "api_id": id(&api), "scopes": ["transcripts:read"]}),
        )
        .await
        .assert_status(201));
    // Same names in another organization: no conflict.
    app.post_as(
        &b,
        "/v1/ip-acls",
        json!({"name": "Office", "entries": ["192.0.2.0/24"]}),
    )
    .await
    .assert_status(201);
    for path in [
        format!("/v1/ip-acls/{acl_id}"),
        format!("/v1/key-groups/{group_id}"),
    ] {
        app.get_as(&b, &path).await.assert_problem(404, "not_found");
        app.patch_as(&b, &path, json!({"name": "taken"}))
            .await
            .assert_problem(404, "not_found");
        app.delete_as(&b, &path)
            .await
            .assert_problem(404, "not_found");
    }
    let listed = app.get_as(&b, "/v1/ip-acls").await;
    assert!(!listed.text.contains(&acl_id));
    assert_eq!(
        app.get_as(&b, "/v1/key-groups").await.assert_status(200)["data"],
        json!([])
    );
    // Its keys cannot name them.
    let refused = app
        .post_as(&b, "/v1/keys", json!({"name": "k", "ip_acl_ids": [acl_id]}))
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["ip_acl_ids[0]"]);
    // Nor may a developer of this one write them.
    let (_, dev) = app.member("developer").await;
    app.post_as(
        &dev,
        "/v1/key-groups",
        json!({"name": "Mine", "api_id": id(&api)}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.delete_as(&dev, &format!("/v1/key-groups/{group_id}"))
        .await
        .assert_problem(403, "forbidden");
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
    a_key_whose_only_allowlist_is_an_acl_follows_every_edit_of_it,
    deleting_an_acl_and_naming_it_at_once_never_leaves_a_key_without_it,
    a_key_gains_and_loses_scopes_and_its_rate_limit_through_its_group,
    resource_patterns_match_and_refuse_after_the_scope_check,
    the_gateway_enforces_acls_and_forwards_resources_and_group_scopes,
    a_service_accounts_keys_outlive_the_person_who_made_them,
    another_instance_follows_acl_and_group_changes_within_seconds,
    another_organization_sees_and_uses_none_of_them,
);

/// The dashboard in a real browser: the IP ACL and key group pages, picking an ACL and a group in
/// the create dialog and seeing them on the key's page, and the members page with its service
/// accounts; screenshots at 1280, 1024 and 390 px.
#[tokio::test]
async fn an_owner_picks_an_acl_and_a_group_in_the_browser_and_sees_them_on_the_keys_page() {
    use crate::browser::Browser;

    let app = crate::helpers::spawn_app().await;
    let api = app.default_api_id.clone();
    app.patch(
        &format!("/v1/apis/{api}"),
        json!({"scopes": [
            {"name": "transcripts:read", "description": "Read transcripts"},
            {"name": "transcripts:write", "description": "Upload audio"},
        ]}),
    )
    .await
    .assert_status(200);
    app.post(
        "/v1/key-groups",
        json!({"name": "Readers", "api_id": api, "scopes": ["transcripts:read"],
               "rate_limit": {"requests": 100, "per_seconds": 60}}),
    )
    .await
    .assert_status(201);
    app.post(
        "/v1/users",
        json!({"kind": "service", "name": "CI integration"}),
    )
    .await
    .assert_status(201);

    let b = Browser::start(&app.base, "access").await;
    let setup_path = &app.setup_url[app.setup_url.find("/setup/").unwrap()..];
    b.go(setup_path).await;
    b.fill("#email", "olivia@example.com").await;
    b.fill("#name", "Olivia").await;
    b.fill("#password", "correct horse battery staple").await;
    b.fill("#password_confirmation", "correct horse battery staple")
        .await;
    b.click("form button[type=submit]").await;
    b.until_text("Your password is set").await;

    // An IP ACL made on its page.
    b.go("/ip-acls").await;
    b.until_text("No IP ACLs yet").await;
    b.click(".page-actions button[data-open='create-acl']")
        .await;
    b.until_open("create-acl").await;
    b.fill("#create-acl-name", "Office").await;
    b.fill("#create-acl-entries", "203.0.113.0/24\n2001:db8::/48")
        .await;
    b.shoot("ip-acl-create").await;
    b.click("#create-acl button[type=submit]").await;
    b.until_text("Created Office.").await;
    assert!(b.text().await.contains("203.0.113.0/24"));
    b.shoot("ip-acls").await;

    b.go("/key-groups").await;
    b.until_text("Readers").await;
    b.shoot("key-groups").await;

    // The create dialog: the ACL and the group picked beside the allowlist.
    b.go("/keys").await;
    b.click(".page-actions button[data-open='create-key']")
        .await;
    b.until_open("create-key").await;
    b.fill("#create-name", "Partner integration").await;
    b.click("label[for='create-acls-0']").await;
    b.click(&format!("label[for='create-groups-{api}-0']"))
        .await;
    b.fill("#create-resources", "project:acme-*").await;
    b.click("#create-key details.more-options summary").await;
    b.js("document.getElementById('create-acls-0').scrollIntoView({block: 'center'})")
        .await;
    b.shoot("create-key-access").await;
    b.click("#create-key button[type=submit]").await;
    b.until_open("key-created").await;
    let secret = b.value("#new-key").await;
    let id = format!("key_{}", &secret[8..20]);
    b.click("#key-created .dialog-footer button[data-close]")
        .await;
    b.find(&format!("tr[data-key-id='{id}']")).await;
    assert!(b.text().await.contains("Groups: Readers"));
    b.shoot("keys-with-groups").await;

    // The key's page shows its ACLs, groups, resources and effective scopes.
    b.go(&format!("/keys/{id}")).await;
    let acls = b.find("#key-acls").await.text().await.unwrap();
    assert!(
        acls.contains("Office") && acls.contains("203.0.113.0/24"),
        "{acls}"
    );
    let groups = b.find("#key-groups").await.text().await.unwrap();
    assert!(groups.contains("Readers"), "{groups}");
    let effective = b.find("#effective-scopes").await.text().await.unwrap();
    assert!(effective.contains("transcripts:read"), "{effective}");
    let resources = b.find("#key-resources").await.text().await.unwrap();
    assert!(resources.contains("project:acme-*"), "{resources}");
    b.shoot("key-access").await;

    // What the browser made is what the API enforces.
    assert_eq!(
        verdict(
            &app,
            &secret,
            json!({"ip": "203.0.113.4", "required_scopes": ["transcripts:read"],
                                      "resource": "project:acme-web"})
        )
        .await,
        "VALID"
    );
    assert_eq!(
        verdict(&app, &secret, json!({"ip": "198.51.100.4"})).await,
        "IP_NOT_ALLOWED"
    );

    // Members: service accounts apart from people; a new one from its dialog.
    b.go("/members").await;
    b.click("#service-accounts button[data-open='new-service-account']")
        .await;
    b.until_open("new-service-account").await;
    b.fill("#service-name", "Nightly export").await;
    b.click("#new-service-account button[type=submit]").await;
    b.until_text("Created the service account Nightly export.")
        .await;
    let services = b.find("#service-accounts").await.text().await.unwrap();
    assert!(
        services.contains("CI integration") && services.contains("Nightly export"),
        "{services}"
    );
    assert!(!services.contains("olivia@example.com"));
    b.shoot("members-service-accounts").await;
    b.stop().await;
}

/// `keyward acls`, `keyward groups` and `keyward keys create --owner --acl --group --resource`
/// against a running server, as tables and as JSON.
#[tokio::test]
async fn acls_groups_and_service_owned_keys_are_managed_from_the_command_line() {
    let app = crate::helpers::spawn_app().await;
    let kw = |args: Vec<String>| {
        let (base, key) = (app.base.clone(), app.admin_key.clone());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
                .args(&args)
                .env("KEYWARD_URL", base)
                .env("KEYWARD_API_KEY", key)
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let api = app
        .create_api("cli", &["transcripts:read", "transcripts:write"])
        .await;
    let api_id = id(&api);

    let out = kw(args(&[
        "acls",
        "create",
        "--name",
        "Office",
        "--entry",
        "203.0.113.0/24",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acl: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acl_id = id(&acl);
    let out = kw(args(&[
        "acls",
        "edit",
        &acl_id,
        "--entry",
        "198.51.100.0/24",
        "--entry",
        "192.0.2.1",
    ]))
    .await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.starts_with("ID") && table.contains("198.51.100.0/24,192.0.2.1/32"),
        "{table}"
    );
    let bad = kw(args(&["acls", "edit", &acl_id, "--entry", "nope"])).await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("422 validation_failed") && err.contains("entries[0]"),
        "{err}"
    );

    let out = kw(args(&[
        "groups",
        "create",
        "--name",
        "Readers",
        "--api",
        &api_id,
        "--scope",
        "transcripts:read",
        "--rate-limit",
        "100/60",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let group_id = id(&serde_json::from_slice::<Value>(&out.stdout).unwrap());
    let list = String::from_utf8_lossy(&kw(args(&["groups", "list"])).await.stdout).into_owned();
    assert!(
        list.contains("Readers") && list.contains("100/60s"),
        "{list}"
    );

    let svc = app
        .post("/v1/users", json!({"kind": "service", "name": "CI"}))
        .await;
    let svc_id = id(svc.assert_status(201));
    let out = kw(args(&[
        "keys",
        "create",
        "--name",
        "ci",
        "--api",
        &api_id,
        "--owner",
        &svc_id,
        "--acl",
        &acl_id,
        "--group",
        &group_id,
        "--resource",
        "project:acme-*",
        "--json",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["owner_id"], svc_id);
    assert_eq!(key["ip_acl_ids"], json!([acl_id]));
    assert_eq!(key["group_ids"], json!([group_id]));
    assert_eq!(key["effective_scopes"], json!(["transcripts:read"]));
    assert_eq!(key["resources"], json!(["project:acme-*"]));

    // In use: the server's 409 comes through; once free, deleted.
    let busy = kw(args(&["acls", "delete", &acl_id])).await;
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("409"));
    app.patch(
        &format!("/v1/keys/{}", id(&key)),
        json!({"ip_acl_ids": [], "group_ids": []}),
    )
    .await
    .assert_status(200);
    assert!(
        kw(args(&["acls", "delete", &acl_id]))
            .await
            .status
            .success()
    );
    assert!(
        kw(args(&["groups", "delete", &group_id]))
            .await
            .status
            .success()
    );
    let left = kw(args(&["acls", "list", "--json"])).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&left.stdout).unwrap()["data"],
        json!([])
    );
}
