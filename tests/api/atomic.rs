//! Each change and its audit events are one transaction, and the rules that count before they
//! write (the key limit, the last active owner) hold under concurrent requests, on SQLite and
//! PostgreSQL.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

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

/// Sends every request at once; answers in the order of `requests`.
async fn concurrently(
    app: &Arc<TestApp>,
    requests: Vec<(Method, String, String, Option<Value>)>,
) -> Vec<Res> {
    let mut set = JoinSet::new();
    for (i, (method, path, key, body)) in requests.into_iter().enumerate() {
        let app = app.clone();
        set.spawn(async move { (i, app.send(method, &path, Some(&key), body.as_ref()).await) });
    }
    let mut answers: Vec<(usize, Res)> = set.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, res)| res).collect()
}

fn data(res: &Res) -> &Vec<Value> {
    res.body["data"].as_array().expect("a list")
}

async fn active_owners(app: &TestApp, observer: &str) -> Vec<String> {
    data(&app.get_as(observer, "/v1/users").await)
        .iter()
        .filter(|u| u["role"] == "owner" && u["status"] == "active")
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_key_limit_holds_under_parallel_creates(db: Db) {
    let app = app_on(db).await;
    // The initial management key is live: a limit of 6 leaves exactly 5 free slots.
    app.patch("/v1/org", json!({"policies": {"key_limit": 6}}))
        .await
        .assert_status(200);
    let requests = (0..20)
        .map(|i| {
            let body = json!({"name": format!("parallel {i}")});
            (
                Method::POST,
                "/v1/keys".to_owned(),
                app.admin_key.clone(),
                Some(body),
            )
        })
        .collect();
    let answers = concurrently(&app, requests).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    for refused in answers.iter().filter(|r| r.status != 201) {
        refused.assert_problem(409, "conflict");
    }
    assert_eq!(created, 5, "exactly the free slots are filled");
    let keys = app.get("/v1/keys?status=active&limit=100").await;
    assert_eq!(data(&keys).len(), 6);
    let log = app.get("/v1/audit-log?action=key.created&limit=100").await;
    assert_eq!(data(&log).len(), 5, "one event per key created");
}

async fn the_one_active_key_policy_holds_under_parallel_creates(db: Db) {
    let app = app_on(db).await;
    app.patch("/v1/org", json!({"policies": {"single_active_key": true}}))
        .await
        .assert_status(200);
    let requests = (0..10)
        .map(|i| {
            let body = json!({"name": format!("parallel {i}")});
            (
                Method::POST,
                "/v1/keys".to_owned(),
                app.admin_key.clone(),
                Some(body),
            )
        })
        .collect();
    for res in concurrently(&app, requests).await {
        res.assert_status(201);
    }
    let active = app
        .get(&format!(
            "/v1/keys?status=active&api_id={}",
            app.default_api_id
        ))
        .await;
    assert_eq!(data(&active).len(), 1, "one active key remains");
    let log = app.get("/v1/audit-log?action=key.revoked&limit=100").await;
    assert_eq!(data(&log).len(), 9, "each replaced key is audited once");
}

/// Two owners change each other at once: one wins, the other is refused, and the organization
/// keeps an active owner. The loser is refused by the last-owner rule (409) when both requests
/// were authorized before either changed anything; when the winner's change lands before the
/// loser is even authenticated, the loser no longer is an owner (403) or no longer has keys
/// (401), which keeps the owner as well.
async fn two_owners_removing_each_other_leave_an_active_owner(db: Db) {
    let app = app_on(db).await;
    // Reads with a key neither owner can take away.
    let (_, observer) = app.member("admin").await;
    let (b_id, b_key) = app.member("owner").await;
    let mut keys = [(app.owner_id.clone(), app.admin_key.clone()), (b_id, b_key)];
    let mut refused_by_the_rule = 0;
    for round in 0..8 {
        let change = if round % 2 == 0 {
            json!({"role": "admin"})
        } else {
            json!({"status": "disabled"})
        };
        let requests = vec![
            (
                Method::PATCH,
                format!("/v1/users/{}", keys[1].0),
                keys[0].1.clone(),
                Some(change.clone()),
            ),
            (
                Method::PATCH,
                format!("/v1/users/{}", keys[0].0),
                keys[1].1.clone(),
                Some(change.clone()),
            ),
        ];
        let answers = concurrently(&app, requests).await;
        let owners = active_owners(&app, &observer).await;
        assert_eq!(owners.len(), 1, "round {round}: {owners:?}");
        let won: Vec<usize> = (0..2).filter(|&i| answers[i].status == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one change lands");
        let winner = won[0];
        let loser = &answers[1 - winner];
        match loser.status.as_u16() {
            409 => {
                loser.assert_problem(409, "conflict");
                refused_by_the_rule += 1;
            }
            403 => {
                loser.assert_problem(403, "forbidden");
            }
            401 => assert!(round % 2 == 1, "only a disabled owner loses its keys"),
            other => panic!("round {round}: {other} {}", loser.text),
        }
        assert_eq!(owners[0], keys[winner].0);
        // The winner restores the loser as an active owner, with a fresh key if theirs went.
        let (loser_id, _) = keys[1 - winner].clone();
        app.patch_as(
            &keys[winner].1,
            &format!("/v1/users/{loser_id}"),
            json!({"role": "owner", "status": "active"}),
        )
        .await
        .assert_status(200);
        if round % 2 == 1 {
            let scopes: Vec<&str> = keyward::domain::model::MANAGEMENT_SCOPES
                .iter()
                .map(|(s, _)| *s)
                .collect();
            let fresh = app
                .post_as(
                    &keys[winner].1,
                    "/v1/keys",
                    json!({"name": "again", "api_id": app.management_api_id, "scopes": scopes, "owner_id": loser_id}),
                )
                .await;
            keys[1 - winner].1 = fresh.assert_status(201)["key"].as_str().unwrap().to_owned();
        }
    }
    assert!(
        refused_by_the_rule > 0,
        "at least one round raced up to the rule itself"
    );
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

on_both_backends!(
    the_key_limit_holds_under_parallel_creates,
    the_one_active_key_policy_holds_under_parallel_creates,
    two_owners_removing_each_other_leave_an_active_owner,
    a_change_whose_audit_event_fails_leaves_nothing_behind,
);
