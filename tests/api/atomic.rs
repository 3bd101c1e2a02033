//! Each change and its audit events are one transaction, on SQLite and PostgreSQL.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::{Db, Options, Res, TestApp, spawn_with};

async fn app_on(db: Db) -> Arc<TestApp> {
    Arc::new(
        spawn_with(Options {
            db,
            ..Default::default()
        })
        .await,
    )
}

fn data(res: &Res) -> &Vec<Value> {
    res.body["data"].as_array().expect("a list")
}

/// Makes every later audit insert fail, as a full disk or a broken log table would.
async fn break_the_audit_log(app: &TestApp, db: Db) {
    let sql = match db {
        Db::Sqlite => {
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit log refused the write'); END;"
        }
        Db::Postgres => {
            "CREATE FUNCTION audit_refused() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit log refused the write'; END $$; \
             CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION audit_refused();"
        }
    };
    app.execute_sql(sql).await;
}

async fn repair_the_audit_log(app: &TestApp, db: Db) {
    let sql = match db {
        Db::Sqlite => "DROP TRIGGER audit_refused",
        Db::Postgres => "DROP TRIGGER audit_refused ON audit_events",
    };
    app.execute_sql(sql).await;
}

#[track_caller]
fn assert_reveals_nothing(res: &Res) {
    res.assert_problem(500, "internal_error");
    for word in ["audit", "refused", "trigger", "database", "sql"] {
        assert!(
            !res.text.to_lowercase().contains(word),
            "the answer says {word:?}: {}",
            res.text
        );
    }
}

async fn a_change_whose_audit_event_fails_leaves_nothing_behind(db: Db) {
    let app = app_on(db).await;
    let (member, _) = app.member("developer").await;
    let member_key = app
        .create_key(json!({"name": "member's", "owner_id": member}))
        .await;
    let key = app.create_key(json!({"name": "kept"})).await;
    let id = key["id"].as_str().unwrap();
    let secret = key["key"].as_str().unwrap();
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");
    let keys_before = data(&app.get("/v1/keys?limit=100").await).len();
    let events_before = data(&app.get("/v1/audit-log?limit=100").await).len();
    break_the_audit_log(&app, db).await;

    let res = app
        .post(
            &format!("/v1/keys/{id}/revoke"),
            json!({"reason": "leaked"}),
        )
        .await;
    assert_reveals_nothing(&res);
    let shown = app.get(&format!("/v1/keys/{id}")).await;
    assert_eq!(shown.assert_status(200)["status"], "active");
    assert_eq!(app.verify(secret, json!({})).await["code"], "VALID");

    assert_reveals_nothing(&app.post("/v1/keys", json!({"name": "unaudited"})).await);
    assert_eq!(
        data(&app.get("/v1/keys?limit=100").await).len(),
        keys_before
    );

    // Several writes and several events: the member, their keys, and the log stay as they were.
    assert_reveals_nothing(&app.delete(&format!("/v1/users/{member}")).await);
    let shown = app.get(&format!("/v1/users/{member}")).await;
    assert_eq!(shown.assert_status(200)["status"], "active");
    let member_secret = member_key["key"].as_str().unwrap();
    assert_eq!(app.verify(member_secret, json!({})).await["code"], "VALID");

    assert_reveals_nothing(
        &app.patch("/v1/org", json!({"policies": {"key_limit": 7}}))
            .await,
    );
    let org = app.get("/v1/org").await;
    assert_ne!(org.assert_status(200)["policies"]["key_limit"], 7);

    repair_the_audit_log(&app, db).await;
    assert_eq!(
        data(&app.get("/v1/audit-log?limit=100").await).len(),
        events_before
    );
    app.post(
        &format!("/v1/keys/{id}/revoke"),
        json!({"reason": "leaked"}),
    )
    .await
    .assert_status(200);
    assert_eq!(app.verify(secret, json!({})).await["code"], "REVOKED");
    let log = app
        .get(&format!("/v1/audit-log?target_id={id}&action=key.revoked"))
        .await;
    assert_eq!(data(&log).len(), 1);
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

on_both_backends!(a_change_whose_audit_event_fails_leaves_nothing_behind);
