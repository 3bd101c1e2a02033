//! Roles against every management action, and isolation between organizations.

use serde_json::{Value, json};

use crate::helpers::{Options, TEST_ENCRYPTION_KEY, TestApp, spawn_with};

const ROLES: [&str; 4] = ["owner", "admin", "developer", "viewer"];

#[derive(Clone, Copy, Debug)]
enum Action {
    ListKeys,
    CreateOwnKey,
    CreateKeyForOther,
    UpdateOwnKey,
    UpdateOthersKey,
    RotateOthersKey,
    RevokeOthersKey,
    DeleteOwnKey,
    DeleteOthersKey,
    RevealRecoverableKey,
    VerifyKey,
    ReadAuditLog,
    CreateApi,
    ReadOrg,
    UpdateOrg,
    ListMembers,
    InviteDeveloper,
    InviteOwner,
    ChangeDevelopersRole,
    DisableDeveloper,
}

/// (action, expected status for owner, admin, developer, viewer)
const TABLE: &[(Action, [u16; 4])] = &[
    (Action::ListKeys, [200, 200, 200, 200]),
    (Action::CreateOwnKey, [201, 201, 201, 403]),
    (Action::CreateKeyForOther, [201, 201, 403, 403]),
    (Action::UpdateOwnKey, [200, 200, 200, 403]),
    (Action::UpdateOthersKey, [200, 200, 403, 403]),
    (Action::RotateOthersKey, [201, 201, 403, 403]),
    (Action::RevokeOthersKey, [200, 200, 403, 403]),
    (Action::DeleteOwnKey, [204, 204, 204, 403]),
    (Action::DeleteOthersKey, [204, 204, 403, 403]),
    (Action::RevealRecoverableKey, [200, 200, 403, 403]),
    (Action::VerifyKey, [200, 200, 200, 403]),
    (Action::ReadAuditLog, [200, 200, 200, 200]),
    (Action::CreateApi, [201, 201, 403, 403]),
    (Action::ReadOrg, [200, 200, 200, 200]),
    (Action::UpdateOrg, [200, 200, 403, 403]),
    (Action::ListMembers, [200, 200, 200, 200]),
    (Action::InviteDeveloper, [201, 201, 403, 403]),
    (Action::InviteOwner, [201, 403, 403, 403]),
    (Action::ChangeDevelopersRole, [200, 200, 403, 403]),
    (Action::DisableDeveloper, [200, 200, 403, 403]),
];

async fn perform(app: &TestApp, action: Action, actor_id: &str, key: &str, n: usize) -> u16 {
    // A key the acting member owns, and one the organization's owner owns.
    let own = app
        .create_key(json!({"name": "own", "owner_id": actor_id, "recoverable": true}))
        .await;
    let others = app
        .create_key(json!({"name": "others", "recoverable": true}))
        .await;
    let (own_id, others_id) = (own["id"].as_str().unwrap(), others["id"].as_str().unwrap());
    let status = match action {
        Action::ListKeys => app.get_as(key, "/v1/keys").await.status,
        Action::CreateOwnKey => {
            app.post_as(key, "/v1/keys", json!({"name": "mine"}))
                .await
                .status
        }
        Action::CreateKeyForOther => {
            app.post_as(
                key,
                "/v1/keys",
                json!({"name": "theirs", "owner_id": app.owner_id}),
            )
            .await
            .status
        }
        Action::UpdateOwnKey => {
            app.patch_as(
                key,
                &format!("/v1/keys/{own_id}"),
                json!({"name": "renamed"}),
            )
            .await
            .status
        }
        Action::UpdateOthersKey => {
            app.patch_as(
                key,
                &format!("/v1/keys/{others_id}"),
                json!({"name": "renamed"}),
            )
            .await
            .status
        }
        Action::RotateOthersKey => {
            app.post_as(key, &format!("/v1/keys/{others_id}/rotate"), json!({}))
                .await
                .status
        }
        Action::RevokeOthersKey => {
            app.post_as(key, &format!("/v1/keys/{others_id}/revoke"), json!({}))
                .await
                .status
        }
        Action::DeleteOwnKey => {
            app.delete_as(key, &format!("/v1/keys/{own_id}"))
                .await
                .status
        }
        Action::DeleteOthersKey => {
            app.delete_as(key, &format!("/v1/keys/{others_id}"))
                .await
                .status
        }
        Action::RevealRecoverableKey => {
            app.get_as(key, &format!("/v1/keys/{others_id}/secret"))
                .await
                .status
        }
        Action::VerifyKey => {
            app.post_as(key, "/v1/keys/verify", json!({"key": others["key"]}))
                .await
                .status
        }
        Action::ReadAuditLog => app.get_as(key, "/v1/audit-log").await.status,
        Action::CreateApi => {
            app.post_as(
                key,
                "/v1/apis",
                json!({"name": "x", "slug": format!("api-{n}")}),
            )
            .await
            .status
        }
        Action::ReadOrg => app.get_as(key, "/v1/org").await.status,
        Action::UpdateOrg => {
            app.patch_as(key, "/v1/org", json!({"policies": {"key_limit": 5000}}))
                .await
                .status
        }
        Action::ListMembers => app.get_as(key, "/v1/users").await.status,
        Action::InviteDeveloper => {
            let body = json!({"email": format!("dev-invite-{n}@example.com"), "name": "D", "role": "developer"});
            app.post_as(key, "/v1/users", body).await.status
        }
        Action::InviteOwner => {
            let body = json!({"email": format!("owner-invite-{n}@example.com"), "name": "O", "role": "owner"});
            app.post_as(key, "/v1/users", body).await.status
        }
        Action::ChangeDevelopersRole | Action::DisableDeveloper => {
            let (dev_id, _) = app.member("developer").await;
            let body = if matches!(action, Action::DisableDeveloper) {
                json!({"status": "disabled"})
            } else {
                json!({"role": "viewer"})
            };
            app.patch_as(key, &format!("/v1/users/{dev_id}"), body)
                .await
                .status
        }
    };
    status.as_u16()
}

#[tokio::test]
async fn every_role_is_allowed_or_refused_each_management_action() {
    let app = spawn_with(Options {
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    app.patch(
        "/v1/org",
        json!({"policies": {"recoverable_keys": true, "key_limit": 100000}}),
    )
    .await
    .assert_status(200);
    let mut members = Vec::new();
    for role in ROLES {
        let (id, key) = if role == "owner" {
            (app.owner_id.clone(), app.admin_key.clone())
        } else {
            app.member(role).await
        };
        members.push((role, id, key));
    }
    let mut failures = Vec::new();
    let mut n = 0;
    for (action, expected) in TABLE {
        for (i, (role, id, key)) in members.iter().enumerate() {
            n += 1;
            let got = perform(&app, *action, id, key, n).await;
            if got != expected[i] {
                failures.push(format!(
                    "{action:?} as {role}: expected {}, got {got}",
                    expected[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "role matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn refusals_for_roles_use_the_forbidden_code_and_say_why() {
    let app = spawn_with(Options::default()).await;
    let (_, viewer) = app.member("viewer").await;
    let res = app
        .post_as(&viewer, "/v1/keys", json!({"name": "nope"}))
        .await;
    res.assert_problem(403, "forbidden");
    assert!(res.body["detail"].as_str().unwrap().contains("your role"));
    let (_, dev) = app.member("developer").await;
    let others = app.create_key(json!({"name": "owner's"})).await;
    let res = app
        .patch_as(
            &dev,
            &format!("/v1/keys/{}", others["id"].as_str().unwrap()),
            json!({"name": "x"}),
        )
        .await;
    res.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_developer_may_delete_a_key_they_created_for_nobody_else_but_may_not_edit_others() {
    let app = spawn_with(Options::default()).await;
    let (dev_id, dev) = app.member("developer").await;
    let k = app.post_as(&dev, "/v1/keys", json!({"name": "mine"})).await;
    let id = k.assert_status(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(k.body["owner_id"], dev_id.as_str());
    assert_eq!(k.body["created_by"], dev_id.as_str());
    // The owner takes the key over; the developer, its creator, may still delete it but not edit it.
    let mut key = app.ctx.store.get_key(&id).await.unwrap().unwrap();
    key.owner_id = app.owner_id.clone();
    app.ctx.store.update_key(&key).await.unwrap();
    app.patch_as(&dev, &format!("/v1/keys/{id}"), json!({"name": "x"}))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.delete_as(&dev, &format!("/v1/keys/{id}")).await.status,
        204
    );
}

/// Every endpoint, called by organization B's owner with organization A's ids, answers 404 (or,
/// for ids inside a body, a 422 naming the field), and lists show only B's own data.
#[tokio::test]
async fn organizations_with_the_same_key_names_see_nothing_of_each_other() {
    let app = spawn_with(Options {
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    app.patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await
        .assert_status(200);
    let other =
        keyward::service::bootstrap::create_org(&app.ctx, "Other", "owner@other.example", "pro")
            .await
            .unwrap();
    let b = other.secret.expose().to_owned();
    app.patch_as(
        &b,
        "/v1/org",
        json!({"policies": {"recoverable_keys": true}}),
    )
    .await
    .assert_status(200);
    let a_key = app
        .create_key(json!({"name": "Production", "recoverable": true}))
        .await;
    let b_key = app
        .post_as(&b, "/v1/keys", json!({"name": "Production"}))
        .await
        .assert_status(201)
        .clone();
    let a_api = app.create_api("shared-slug", &["x:read"]).await;
    app.post_as(&b, "/v1/apis", json!({"name": "B", "slug": "shared-slug"}))
        .await
        .assert_status(201);
    let (a_user, _) = app.member("developer").await;

    let a_key_id = a_key["id"].as_str().unwrap();
    let a_api_id = a_api["id"].as_str().unwrap();
    let not_found = [
        app.get_as(&b, &format!("/v1/keys/{a_key_id}")).await,
        app.patch_as(&b, &format!("/v1/keys/{a_key_id}"), json!({"name": "x"}))
            .await,
        app.post_as(&b, &format!("/v1/keys/{a_key_id}/rotate"), json!({}))
            .await,
        app.post_as(&b, &format!("/v1/keys/{a_key_id}/revoke"), json!({}))
            .await,
        app.get_as(&b, &format!("/v1/keys/{a_key_id}/secret")).await,
        app.delete_as(&b, &format!("/v1/keys/{a_key_id}")).await,
        app.get_as(&b, &format!("/v1/apis/{a_api_id}")).await,
        app.patch_as(&b, &format!("/v1/apis/{a_api_id}"), json!({"name": "x"}))
            .await,
        app.get_as(&b, &format!("/v1/users/{a_user}")).await,
        app.patch_as(
            &b,
            &format!("/v1/users/{a_user}"),
            json!({"role": "viewer"}),
        )
        .await,
        app.delete_as(&b, &format!("/v1/users/{a_user}")).await,
        app.get_as(&b, &format!("/v1/users/{}", app.owner_id)).await,
    ];
    for res in &not_found {
        res.assert_problem(404, "not_found");
    }
    let res = app
        .post_as(&b, "/v1/keys", json!({"name": "x", "api_id": a_api_id}))
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "api_id");
    let res = app
        .post_as(&b, "/v1/keys", json!({"name": "x", "owner_id": a_user}))
        .await;
    res.assert_problem(422, "validation_failed");
    let v = app
        .post_as(&b, "/v1/keys/verify", json!({"key": a_key["key"]}))
        .await;
    assert_eq!(v.assert_status(200)["code"], "NOT_FOUND");

    // A's key is untouched by all of the above.
    assert_eq!(
        app.verify(a_key["key"].as_str().unwrap(), json!({})).await["code"],
        "VALID"
    );
    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let b_keys = ids(&app.get_as(&b, "/v1/keys").await.body);
    assert!(
        b_keys.contains(&b_key["id"].as_str().unwrap().to_owned())
            && !b_keys.contains(&a_key_id.to_owned())
    );
    let b_users = app.get_as(&b, "/v1/users").await;
    assert_eq!(b_users.body["data"].as_array().unwrap().len(), 1);
    let b_audit = app.get_as(&b, "/v1/audit-log?limit=100").await;
    assert!(!b_audit.text.contains(a_key_id) && !b_audit.text.contains(&app.org_id));
    let a_audit = app.get("/v1/audit-log?limit=100").await;
    assert!(!a_audit.text.contains(b_key["id"].as_str().unwrap()));
    let b_org = app.get_as(&b, "/v1/org").await;
    assert_eq!(b_org.body["id"], other.org.id.as_str());
    let b_apis = app.get_as(&b, "/v1/apis").await;
    assert!(!b_apis.text.contains(a_api_id));
}

#[tokio::test]
async fn an_admin_cannot_act_as_an_owner_through_management_keys() {
    let app = spawn_with(Options {
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    app.patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await
        .assert_status(200);
    let (admin_id, admin) = app.member("admin").await;
    // Creating a management key owned by the owner would let the admin act as the owner.
    let res = app
        .post_as(
            &admin,
            "/v1/keys",
            json!({"name": "as owner", "api_id": app.management_api_id,
                                              "owner_id": app.owner_id, "scopes": ["users:write"]}),
        )
        .await;
    res.assert_problem(403, "forbidden");
    // Nor may the admin rotate, reveal or re-scope the owner's management keys.
    let owners = app
        .create_key(json!({"name": "owner's", "api_id": app.management_api_id, "scopes": ["users:write"], "recoverable": true}))
        .await;
    let id = owners["id"].as_str().unwrap();
    app.post_as(&admin, &format!("/v1/keys/{id}/rotate"), json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.get_as(&admin, &format!("/v1/keys/{id}/secret"))
        .await
        .assert_problem(403, "forbidden");
    app.patch_as(
        &admin,
        &format!("/v1/keys/{id}"),
        json!({"scopes": ["users:write", "org:admin"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    // The promotion the escalation would have allowed stays refused.
    app.patch_as(
        &admin,
        &format!("/v1/users/{admin_id}"),
        json!({"role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Protected-API keys of the owner remain manageable by admins, as before.
    let service_key = app.create_key(json!({"name": "service"})).await;
    app.post_as(
        &admin,
        &format!("/v1/keys/{}/rotate", service_key["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .assert_status(201);
}
