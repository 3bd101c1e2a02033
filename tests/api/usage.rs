//! Usage counting and the usage endpoints: a scripted mix of every verdict code, a graceful
//! restart in the middle, and every number of both endpoints checked against what was sent; two
//! instances counting one key at once; counting switched off; and the unhappy paths.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use keyward::config::ServerArgs;
use keyward::domain::Clock;
use keyward::http::views::rfc3339;
use serde_json::{Value, json};

use crate::helpers::{Db, Options, TestApp, spawn_app, spawn_app_on, spawn_with};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn floor(t: i64, len: i64) -> i64 {
    t - t.rem_euclid(len)
}

/// What the test sent: verifications by (key id or "", minute, code), and each key's last valid
/// use.
#[derive(Default)]
struct Sent {
    cells: BTreeMap<(String, i64, String), i64>,
    last_valid: HashMap<String, i64>,
    prefixes: HashMap<String, String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    requests: i64,
    valid: i64,
    by_code: BTreeMap<String, i64>,
}

impl Counts {
    fn add(&mut self, code: &str, n: i64) {
        self.requests += n;
        if code == "VALID" {
            self.valid += n;
        }
        *self.by_code.entry(code.to_owned()).or_default() += n;
    }

    /// Checks an answer's `requests`, `valid`, `refused` and `by_code`.
    #[track_caller]
    fn assert_in(&self, v: &Value, what: &str) {
        assert_eq!(v["requests"], self.requests, "{what}: {v}");
        assert_eq!(v["valid"], self.valid, "{what}: {v}");
        assert_eq!(v["refused"], self.requests - self.valid, "{what}: {v}");
        let by_code: BTreeMap<String, i64> = v["by_code"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: by_code in {v}"))
            .iter()
            .map(|(c, n)| (c.clone(), n.as_i64().unwrap()))
            .collect();
        assert_eq!(by_code, self.by_code, "{what}: {v}");
    }
}

impl Sent {
    fn counts(&self, key: Option<&str>, from: i64, to: i64) -> Counts {
        let mut c = Counts::default();
        for ((k, minute, code), n) in &self.cells {
            if key.is_none_or(|key| key == k) && (from..to).contains(minute) {
                c.add(code, *n);
            }
        }
        c
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cells
            .keys()
            .map(|(k, _, _)| k.clone())
            .filter(|k| !k.is_empty())
            .collect();
        keys.dedup();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Verifies `key` through the verify endpoint, asserts the verdict's code, and records it for
/// `counted_for` (the key it is attributed to, or none).
async fn verify(
    app: &TestApp,
    sent: &mut Sent,
    key: &str,
    extra: Value,
    code: &str,
    counted_for: Option<&str>,
) {
    let verdict = app.verify(key, extra).await;
    assert_eq!(verdict["code"], code, "{verdict}");
    let at = app.clock.now_ms();
    *sent
        .cells
        .entry((
            counted_for.unwrap_or_default().to_owned(),
            floor(at, MINUTE),
            code.to_owned(),
        ))
        .or_default() += 1;
    if code == "VALID" {
        sent.last_valid.insert(counted_for.unwrap().to_owned(), at);
    }
}

/// Creates a key of `api` with `extra` fields; returns (secret, id).
async fn key(app: &TestApp, sent: &mut Sent, api: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "counted", "api_id": api});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let k = app.create_key(body).await;
    let id = k["id"].as_str().unwrap().to_owned();
    sent.prefixes
        .insert(id.clone(), k["prefix"].as_str().unwrap().to_owned());
    (k["key"].as_str().unwrap().to_owned(), id)
}

fn query(from: i64, to: i64, granularity: &str) -> String {
    format!(
        "from={}&to={}&granularity={granularity}",
        rfc3339(from),
        rfc3339(to)
    )
}

/// Checks every number of both endpoints against `sent`, for the minutes `[from, to)`. The
/// keys listed are exactly the keys verified: the management key that made every request is not
/// among them, since the management API's own authentication is not counted.
async fn check_everything(app: &TestApp, sent: &Sent, from: i64, to: i64) {
    // By minute: totals, every bucket, every key.
    let r = app
        .get(&format!("/v1/account/usage?{}", query(from, to, "minute")))
        .await;
    let body = r.assert_status(200);
    assert_eq!(body["from"], rfc3339(from));
    assert_eq!(body["to"], rfc3339(to));
    assert_eq!(body["granularity"], "minute");
    sent.counts(None, from, to)
        .assert_in(&body["totals"], "totals by minute");
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len() as i64, (to - from) / MINUTE);
    for (i, point) in series.iter().enumerate() {
        let start = from + i as i64 * MINUTE;
        assert_eq!(point["start"], rfc3339(start));
        sent.counts(None, start, start + MINUTE)
            .assert_in(point, "a minute");
    }
    let listed: HashMap<String, &Value> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key_id"].as_str().unwrap().to_owned(), k))
        .collect();
    assert_eq!(
        {
            let mut ids: Vec<&String> = listed.keys().collect();
            ids.sort();
            ids
        },
        sent.keys().iter().collect::<Vec<_>>(),
        "{body}"
    );
    let requests: Vec<i64> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["requests"].as_i64().unwrap())
        .collect();
    assert!(
        requests.windows(2).all(|w| w[0] >= w[1]),
        "most used first: {requests:?}"
    );
    for id in sent.keys() {
        let line = listed[&id];
        let c = sent.counts(Some(&id), from, to);
        assert_eq!(line["requests"], c.requests, "{line}");
        assert_eq!(line["valid"], c.valid, "{line}");
        assert_eq!(line["refused"], c.requests - c.valid, "{line}");
        assert_eq!(line["prefix"], sent.prefixes[&id].as_str(), "{line}");
        let last = sent.last_valid.get(&id).map(|t| rfc3339(*t));
        assert_eq!(line["last_used_at"].as_str(), last.as_deref(), "{line}");
        // The key's own record agrees.
        let shown = app.get(&format!("/v1/keys/{id}")).await;
        assert_eq!(
            shown.assert_status(200)["last_used_at"].as_str(),
            last.as_deref()
        );
        // The key's own report, by minute.
        let own = app
            .get(&format!(
                "/v1/keys/{id}/usage?{}",
                query(from, to, "minute")
            ))
            .await;
        let own = own.assert_status(200);
        assert_eq!(own["key_id"], id.as_str());
        assert!(own.get("keys").is_none(), "{own}");
        c.assert_in(&own["totals"], "a key's totals");
        for (i, point) in own["series"].as_array().unwrap().iter().enumerate() {
            let start = from + i as i64 * MINUTE;
            sent.counts(Some(&id), start, start + MINUTE)
                .assert_in(point, "a key's minute");
        }
    }
    // By hour, the default range: the last 24 hours, ending with the current one.
    let body = app.get("/v1/account/usage").await;
    let body = body.assert_status(200);
    assert_eq!(body["granularity"], "hour");
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    let now = app.clock.now_ms();
    let first = floor(now, HOUR) - 23 * HOUR;
    assert_eq!(body["from"], rfc3339(first));
    assert_eq!(body["to"], rfc3339(floor(now, HOUR) + HOUR));
    sent.counts(None, first, first + 24 * HOUR)
        .assert_in(&body["totals"], "totals by hour");
    for (i, point) in series.iter().enumerate() {
        let start = first + i as i64 * HOUR;
        assert_eq!(point["start"], rfc3339(start));
        sent.counts(None, start, start + HOUR)
            .assert_in(point, "an hour");
    }
    // By day.
    let body = app.get("/v1/account/usage?granularity=day").await;
    let body = body.assert_status(200);
    assert_eq!(body["series"].as_array().unwrap().len(), 30);
    sent.counts(None, i64::MIN, i64::MAX)
        .assert_in(&body["totals"], "totals by day");
    for id in sent.keys() {
        let own = app
            .get(&format!("/v1/keys/{id}/usage?granularity=day"))
            .await;
        sent.counts(Some(&id), i64::MIN, i64::MAX)
            .assert_in(&own.assert_status(200)["totals"], "a key's days");
    }
}

/// Waits (at most 5 s, the contract's bound) until the organization's total is `requests`.
async fn until_counted(app: &TestApp, requests: i64) {
    let started = Instant::now();
    loop {
        let r = app.get("/v1/account/usage?granularity=day").await;
        let total = r.assert_status(200)["totals"]["requests"].as_i64().unwrap();
        assert!(total <= requests, "counted {total}, sent {requests}");
        if total == requests {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "counted {total} of {requests} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn every_code_is_counted_exactly_once_across_a_graceful_restart(db: Db) {
    let mut app = spawn_app_on(db).await;
    let mut sent = Sent::default();
    let t0 = app.clock.now_ms();
    let api = app
        .create_api("speech", &["transcripts:read", "transcripts:write"])
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (valid, valid_id) = key(
        &app,
        &mut sent,
        &api,
        json!({"scopes": ["transcripts:read"]}),
    )
    .await;
    let (revoked, revoked_id) = key(&app, &mut sent, &api, json!({})).await;
    app.post(&format!("/v1/keys/{revoked_id}/revoke"), json!({}))
        .await
        .assert_status(200);
    let (fenced, fenced_id) = key(
        &app,
        &mut sent,
        &api,
        json!({"ip_allowlist": ["203.0.113.0/24"]}),
    )
    .await;
    let (batch, batch_id) = key(&app, &mut sent, &api, json!({"type": "batch"})).await;
    let (limited, limited_id) = key(
        &app,
        &mut sent,
        &api,
        json!({"rate_limit": {"requests": 2, "per_seconds": 60}}),
    )
    .await;
    let (quota, quota_id) = key(&app, &mut sent, &api, json!({"quota": {"remaining": 1}})).await;
    let (expiring, expiring_id) = key(
        &app,
        &mut sent,
        &api,
        json!({"expires_at": rfc3339(t0 + 30 * MINUTE)}),
    )
    .await;
    let (member, _) = app.member("developer").await;
    let (owned, owned_id) = key(&app, &mut sent, &api, json!({"owner_id": member})).await;
    let unknown = keyward::domain::key::generate("tk_live_", &mut rand::rngs::OsRng);

    // The first hour: every code but the two that need time or a disabled owner.
    let v = Some(valid_id.as_str());
    for _ in 0..3 {
        verify(
            &app,
            &mut sent,
            &valid,
            json!({"ip": "192.0.2.10"}),
            "VALID",
            v,
        )
        .await;
    }
    verify(&app, &mut sent, "not-a-key", json!({}), "MALFORMED", None).await;
    verify(&app, &mut sent, "tk_live_zz", json!({}), "MALFORMED", None).await;
    verify(
        &app,
        &mut sent,
        unknown.expose(),
        json!({}),
        "NOT_FOUND",
        None,
    )
    .await;
    // Another API's keys are not found either, and count for no key.
    let other_api = app.default_api_id.clone();
    let scoped = json!({"api_id": other_api});
    verify(&app, &mut sent, &valid, scoped, "NOT_FOUND", None).await;
    let r = Some(revoked_id.as_str());
    verify(&app, &mut sent, &revoked, json!({}), "REVOKED", r).await;
    let away = json!({"ip": "198.51.100.7"});
    let f = Some(fenced_id.as_str());
    verify(&app, &mut sent, &fenced, away, "IP_NOT_ALLOWED", f).await;
    let realtime = json!({"token_type": "realtime"});
    let b = Some(batch_id.as_str());
    verify(&app, &mut sent, &batch, realtime, "WRONG_TOKEN_TYPE", b).await;
    let write = json!({"required_scopes": ["transcripts:write"]});
    verify(&app, &mut sent, &valid, write, "INSUFFICIENT_SCOPE", v).await;
    let l = Some(limited_id.as_str());
    verify(&app, &mut sent, &limited, json!({}), "VALID", l).await;
    verify(&app, &mut sent, &limited, json!({}), "VALID", l).await;
    verify(&app, &mut sent, &limited, json!({}), "RATE_LIMITED", l).await;
    let q = Some(quota_id.as_str());
    verify(&app, &mut sent, &quota, json!({}), "VALID", q).await;
    verify(&app, &mut sent, &quota, json!({}), "QUOTA_EXCEEDED", q).await;
    app.patch("/v1/org", json!({"api_access": false}))
        .await
        .assert_status(200);
    verify(&app, &mut sent, &valid, json!({}), "PLAN_INACTIVE", v).await;
    app.patch("/v1/org", json!({"api_access": true}))
        .await
        .assert_status(200);
    // A graceful restart, with counts still in memory.
    app = app.restart().await;

    // An hour later, on the restarted server.
    app.clock.advance(HOUR + MINUTE);
    for _ in 0..2 {
        verify(
            &app,
            &mut sent,
            &valid,
            json!({"ip": "192.0.2.11"}),
            "VALID",
            v,
        )
        .await;
    }
    let e = Some(expiring_id.as_str());
    verify(&app, &mut sent, &expiring, json!({}), "EXPIRED", e).await;
    app.execute_sql(&format!(
        "UPDATE users SET status = 'disabled' WHERE id = '{member}'"
    ))
    .await;
    app.ctx.verifier.invalidate_user(&member);
    let o = Some(owned_id.as_str());
    verify(&app, &mut sent, &owned, json!({}), "OWNER_DISABLED", o).await;
    verify(&app, &mut sent, "", json!({}), "MALFORMED", None).await;

    let codes: std::collections::BTreeSet<&str> =
        sent.cells.keys().map(|(_, _, c)| c.as_str()).collect();
    assert_eq!(
        codes.len(),
        12,
        "every verdict code at least once: {codes:?}"
    );
    let total = sent.counts(None, i64::MIN, i64::MAX).requests;
    until_counted(&app, total).await;
    let (from, to) = (
        floor(t0, MINUTE),
        floor(app.clock.now_ms(), MINUTE) + MINUTE,
    );
    check_everything(&app, &sent, from, to).await;

    // Another restart right after a flush: nothing is added twice.
    app = app.restart().await;
    until_counted(&app, total).await;
    check_everything(&app, &sent, from, to).await;
}

async fn two_instances_counting_one_key_at_once_add_up(db: Db) {
    let app = spawn_app_on(db).await;
    let k = app.create_key(json!({"name": "busy"})).await;
    let (secret, id) = (
        k["key"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    );
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let second = keyward::Application::build_with_clock(config, app.clock.clone())
        .await
        .unwrap();
    let second_base = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            second_base.clone()
        };
        let (http, admin, secret) = (app.http.clone(), app.admin_key.clone(), secret.clone());
        let key = if i % 3 == 0 {
            "not-a-key".to_owned()
        } else {
            secret
        };
        tasks.push(tokio::spawn(async move {
            let v: Value = http
                .post(format!("{base}/v1/keys/verify"))
                .bearer_auth(admin)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["code"].as_str().unwrap().to_owned()
        }));
    }
    for t in tasks {
        let code = t.await.unwrap();
        assert!(code == "VALID" || code == "MALFORMED", "{code}");
    }
    // The second instance stops (its final flush), the first flushes every second.
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    until_counted(&app, 60).await;
    let body = app.get("/v1/account/usage").await;
    let body = body.assert_status(200);
    assert_eq!(
        body["totals"]["by_code"],
        json!({"VALID": 40, "MALFORMED": 20})
    );
    assert_eq!(body["keys"][0]["key_id"], id.as_str());
    assert_eq!(body["keys"][0]["requests"], 40);
    let own = app.get(&format!("/v1/keys/{id}/usage")).await;
    assert_eq!(own.assert_status(200)["totals"]["valid"], 40);
}

async fn counts_wait_out_a_storage_failure_and_are_written_once_after_it(db: Db) {
    let app = spawn_app_on(db).await;
    let k = app.create_key(json!({"name": "patient"})).await;
    let secret = k["key"].as_str().unwrap();
    // Every flush fails while the batches' table is away.
    app.execute_sql("ALTER TABLE usage_batches RENAME TO usage_batches_away")
        .await;
    for _ in 0..3 {
        app.verify(secret, json!({})).await;
    }
    assert!(app.ctx.usage.flush().await.is_err());
    app.verify("junk", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let r = app.get("/v1/account/usage").await;
    assert_eq!(r.assert_status(200)["totals"]["requests"], 0);
    app.execute_sql("ALTER TABLE usage_batches_away RENAME TO usage_batches")
        .await;
    until_counted(&app, 4).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let body = app.get("/v1/account/usage").await;
    assert_eq!(
        body.assert_status(200)["totals"]["by_code"],
        json!({"VALID": 3, "MALFORMED": 1})
    );
}

async fn a_batch_written_twice_is_added_once(db: Db) {
    let app = spawn_app_on(db).await;
    let k = app.create_key(json!({"name": "retried"})).await;
    let id = k["id"].as_str().unwrap();
    let now = app.clock.now_ms();
    let counts = [keyward::store::UsageCount {
        org_id: app.org_id.clone(),
        key_id: id.to_owned(),
        minute: floor(now, MINUTE),
        code: "VALID",
        count: 7,
    }];
    // A retry of a batch whose commit went through although the client saw an error.
    assert!(
        app.ctx
            .store
            .add_usage("ub_test", &counts, now)
            .await
            .unwrap()
    );
    assert!(
        !app.ctx
            .store
            .add_usage("ub_test", &counts, now)
            .await
            .unwrap()
    );
    assert!(
        app.ctx
            .store
            .add_usage("ub_other", &counts, now)
            .await
            .unwrap()
    );
    let own = app
        .get(&format!("/v1/keys/{id}/usage?granularity=minute"))
        .await;
    assert_eq!(own.assert_status(200)["totals"]["valid"], 14);
    for g in ["hour", "day"] {
        let own = app
            .get(&format!("/v1/keys/{id}/usage?granularity={g}"))
            .await;
        assert_eq!(own.assert_status(200)["totals"]["valid"], 14, "{g}");
    }
}

async fn counts_past_their_retention_are_pruned_per_granularity(db: Db) {
    let app = spawn_app_on(db).await;
    let now = app.clock.now_ms();
    let at = |ago: i64| keyward::store::UsageCount {
        org_id: app.org_id.clone(),
        key_id: String::new(),
        minute: floor(now - ago, MINUTE),
        code: "NOT_FOUND",
        count: 1,
    };
    // Three days old: past the minutes' 48 hours, within the hours' 90 days. A year old: within
    // the days' 730 only. An hour old: kept everywhere.
    let counts = [at(3 * 24 * HOUR), at(365 * 24 * HOUR), at(HOUR)];
    assert!(
        app.ctx
            .store
            .add_usage("ub_old", &counts, now)
            .await
            .unwrap()
    );
    app.ctx.usage.prune().await.unwrap();
    let stored = |g| {
        let store = app.ctx.store.clone();
        let org = app.org_id.clone();
        async move {
            let q = keyward::store::UsageQuery {
                org_id: &org,
                key_id: None,
                granularity: g,
                from: i64::MIN / 2,
                to: i64::MAX / 2,
            };
            store
                .usage_series(&q)
                .await
                .unwrap()
                .iter()
                .map(|(_, _, n)| n)
                .sum::<i64>()
        }
    };
    use keyward::store::Granularity::{Day, Hour, Minute};
    assert_eq!(stored(Minute).await, 1);
    assert_eq!(stored(Hour).await, 2);
    assert_eq!(stored(Day).await, 3);
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
    every_code_is_counted_exactly_once_across_a_graceful_restart,
    two_instances_counting_one_key_at_once_add_up,
    counts_wait_out_a_storage_failure_and_are_written_once_after_it,
    a_batch_written_twice_is_added_once,
    counts_past_their_retention_are_pruned_per_granularity,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_counting_off_nothing_is_counted_and_reports_still_answer() {
    let app = spawn_with(Options {
        args: ServerArgs {
            usage_counting: Some("off".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let k = app.create_key(json!({"name": "uncounted"})).await;
    let verdict = app.verify(k["key"].as_str().unwrap(), json!({})).await;
    assert_eq!(verdict["code"], "VALID");
    let flushed = app.ctx.usage.flush().await.unwrap();
    assert_eq!(flushed, 0);
    let body = app.get("/v1/account/usage").await;
    let body = body.assert_status(200);
    assert_eq!(body["totals"]["requests"], 0);
    assert_eq!(body["keys"], json!([]));
    assert_eq!(body["series"].as_array().unwrap().len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_are_422s_that_name_the_field_and_the_rule() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "k"})).await;
    let id = k["id"].as_str().unwrap();
    for path in [
        "/v1/account/usage".to_owned(),
        format!("/v1/keys/{id}/usage"),
    ] {
        for (q, field, says) in [
            ("granularity=week", "granularity", "minute, hour, day"),
            ("granularity=", "granularity", "minute, hour, day"),
            ("from=yesterday", "from", "RFC 3339"),
            ("to=2026-13-40T00:00:00Z", "to", "RFC 3339"),
            (
                "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
                "to",
                "after 'from'",
            ),
            (
                "from=2026-01-01T00:00:00Z&to=2026-03-05T00:00:00Z",
                "from",
                "at most 1440",
            ),
            (
                "from=2000-01-01T00:00:00Z&to=2000-01-01T01:00:00Z&granularity=minute",
                "from",
                "kept for 2 days",
            ),
        ] {
            let r = app.get(&format!("{path}?{q}")).await;
            r.assert_problem(422, "validation_failed");
            assert_eq!(r.error_fields(), [field], "{q}: {}", r.text);
            assert!(r.text.contains(says), "{q}: {}", r.text);
        }
        app.get(&format!("{path}?fro=2026-01-01T00:00:00Z"))
            .await
            .assert_problem(400, "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_key_is_not_found_and_usage_read_is_required() {
    let app = spawn_app().await;
    let other = keyward::service::bootstrap::create_org(&app.ctx, "Other", "o@example.com", "pro")
        .await
        .unwrap();
    let theirs = app.create_key(json!({"name": "theirs"})).await;
    let foreign = app
        .post_as(
            other.secret.expose(),
            "/v1/keys",
            json!({"name": "foreign"}),
        )
        .await;
    let foreign_id = foreign.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&format!("/v1/keys/{foreign_id}/usage"))
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/keys/key_000000000000/usage")
        .await
        .assert_problem(404, "not_found");
    // The other organization sees its own key, not ours, and counts of neither leak across.
    let id = theirs["id"].as_str().unwrap();
    app.get_as(other.secret.expose(), &format!("/v1/keys/{id}/usage"))
        .await
        .assert_problem(404, "not_found");
    app.get_as(
        other.secret.expose(),
        &format!("/v1/keys/{foreign_id}/usage"),
    )
    .await
    .assert_status(200);
    // A management key without usage:read is refused on both, before anything is looked up.
    let reader = app.management_key(&["keys:read"]).await;
    for path in [
        "/v1/account/usage".to_owned(),
        format!("/v1/keys/{id}/usage"),
        "/v1/keys/key_000000000000/usage".to_owned(),
        "/v1/account/usage?granularity=week".to_owned(),
    ] {
        let r = app.get_as(&reader, &path).await;
        r.assert_problem(403, "forbidden");
        assert!(r.text.contains("usage:read"), "{}", r.text);
    }
    let counter = app.management_key(&["usage:read"]).await;
    app.get_as(&counter, "/v1/account/usage")
        .await
        .assert_status(200);
    // No credentials at all.
    app.send(reqwest::Method::GET, "/v1/account/usage", None, None)
        .await
        .assert_problem(401, "missing_credentials");
}

/// Runs the `keyward` binary against `app` as its owner.
async fn kw(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_URL", &app.base)
        .env("KEYWARD_API_KEY", &app.admin_key)
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_usage_as_a_table_or_json_and_names_bad_options() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "cli"})).await;
    let (secret, id) = (k["key"].as_str().unwrap(), k["id"].as_str().unwrap());
    app.verify(secret, json!({})).await;
    app.verify(secret, json!({})).await;
    app.verify("junk", json!({})).await;
    until_counted(&app, 3).await;

    let out = kw(&app, &["usage"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("Organization, ")
            && text.contains("by hour: 3 requests, 2 valid, 1 refused."),
        "{text}"
    );
    assert!(
        text.contains("CODE") && text.contains("MALFORMED"),
        "{text}"
    );
    let key_line = text
        .lines()
        .find(|l| l.starts_with(id))
        .expect("the key's row");
    assert!(
        key_line.contains("••••") && !key_line.contains(secret),
        "{key_line}"
    );
    assert!(
        text.contains("(23 of 24 buckets had no requests)"),
        "{text}"
    );

    let out = kw(
        &app,
        &["usage", "--key", id, "--granularity", "minute", "--json"],
    )
    .await;
    assert!(out.status.success());
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["key_id"], id);
    assert_eq!(body["granularity"], "minute");
    assert_eq!(body["totals"]["by_code"], json!({"VALID": 2}));
    assert_eq!(body["series"].as_array().unwrap().len(), 60);

    let out = kw(&app, &["usage", "--granularity", "week", "--from", "soon"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("422 validation_failed")
            && err.contains("granularity: must be one of minute, hour, day")
            && err.contains("from: must be an RFC 3339 time"),
        "{err}"
    );
    let out = kw(&app, &["usage", "--key", "key_000000000000"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("404 not_found"));
}

/// Signs an owner in through the form; returns the browser on the keys list.
async fn owner_in_browser(app: &TestApp, name: &'static str) -> crate::browser::Browser {
    const PASSWORD: &str = "correct horse battery staple";
    app.post(
        "/v1/users",
        json!({"email": "uma@example.com", "name": "Uma", "role": "owner", "password": PASSWORD}),
    )
    .await
    .assert_status(201);
    let b = crate::browser::Browser::start(&app.base, name).await;
    b.go("/sign-in").await;
    b.fill("#email", "uma@example.com").await;
    b.fill("#password", PASSWORD).await;
    b.click("form[action='/sign-in'] button[type=submit]").await;
    b.find(".page-actions button[data-open='create-key']").await;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_charts_usage_and_the_keys_list_shows_a_use_without_a_reload() {
    let app = spawn_app().await;
    let mut sent = Sent::default();
    let api = app.default_api_id.clone();
    let (busy, busy_id) = key(&app, &mut sent, &api, json!({"name": "Billing sync"})).await;
    let (old, old_id) = key(&app, &mut sent, &api, json!({"name": "Old importer"})).await;
    let (idle, idle_id) = key(&app, &mut sent, &api, json!({"name": "Nightly report"})).await;
    app.post(&format!("/v1/keys/{old_id}/revoke"), json!({}))
        .await
        .assert_status(200);
    let b_ = Some(busy_id.as_str());
    for _ in 0..5 {
        verify(&app, &mut sent, &busy, json!({}), "VALID", b_).await;
    }
    let o = Some(old_id.as_str());
    for _ in 0..2 {
        verify(&app, &mut sent, &old, json!({}), "REVOKED", o).await;
    }
    verify(&app, &mut sent, "garbage", json!({}), "MALFORMED", None).await;
    until_counted(&app, 8).await;

    let b = owner_in_browser(&app, "usage").await;
    // The list's last-use column follows uses made elsewhere, without a reload.
    let cell = format!("[data-last-used='{idle_id}']");
    assert!(b.find(&cell).await.text().await.unwrap().contains("Never"));
    b.js("window.notReloaded = true").await;
    app.verify(&idle, json!({})).await;
    b.until(
        "the idle key's use to show",
        &format!(
            "const c = document.querySelector(\"{cell}\"); \
             return !!c && c.textContent.includes('just now') && window.notReloaded === true"
        ),
    )
    .await;
    b.shoot("keys-live-last-used").await;

    // The organization's usage: totals, the chart, verdicts, keys used most.
    b.click("nav a[href='/usage']").await;
    b.find(".usage-chart svg").await;
    let figure = |what: &str| {
        format!("return document.querySelector(\"[data-usage='{what}']\").textContent")
    };
    assert_eq!(b.js(&figure("requests")).await, "9");
    assert_eq!(b.js(&figure("valid")).await, "6");
    assert_eq!(b.js(&figure("refused")).await, "3");
    let bars = b
        .js("return document.querySelectorAll('.usage-chart .bar').length")
        .await;
    assert_eq!(bars, 1, "one busy hour");
    let tooltip = b
        .js("return document.querySelector('.usage-chart .bar title').textContent")
        .await;
    let tooltip = tooltip.as_str().unwrap();
    assert!(
        tooltip.contains("9 requests, 6 valid") && tooltip.contains("2 REVOKED"),
        "{tooltip}"
    );
    for code in ["VALID", "REVOKED", "MALFORMED"] {
        assert!(b.has(&format!(".usage-codes tr[data-code='{code}']")).await);
    }
    let top = b
        .js("return Array.from(document.querySelectorAll('.usage-keys tbody tr')).map(r => r.textContent)")
        .await;
    let top: Vec<String> = serde_json::from_value(top).unwrap();
    assert_eq!(top.len(), 3, "{top:?}");
    assert!(
        top[0].contains(&sent.prefixes[&busy_id]) && top[0].contains('5'),
        "{top:?}"
    );
    b.shoot("usage-org").await;

    // By minute, from the range menu.
    b.js("const s = document.getElementById('usage-range'); s.value = 'minute'; s.form.submit();")
        .await;
    b.until(
        "the minute view",
        "return location.search.includes('granularity=minute')",
    )
    .await;
    b.find(".usage-chart svg").await;
    assert_eq!(b.js(&figure("requests")).await, "9");
    b.shoot("usage-by-minute").await;

    // A key's page: its own figures and chart.
    b.go(&format!("/keys/{busy_id}")).await;
    b.find("#usage .usage-chart svg").await;
    assert_eq!(
        b.js("return document.querySelector(\"#usage [data-usage='requests']\").textContent")
            .await,
        "5"
    );
    b.shoot("key-usage").await;
    b.stop().await;
}
