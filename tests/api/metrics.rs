//! `GET /metrics`, read with a Prometheus text-format parser: every metric of the contract is
//! there, and the counters move with the traffic sent through the verify endpoint and the gateway.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use keyward::config::ServerArgs;
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

use crate::helpers::{Db, Options, TestApp, spawn_with};

/// An upstream that answers every request 200.
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// The metrics as text and parsed; no credentials sent.
async fn scrape(app: &TestApp) -> (String, Scrape) {
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    (text, parsed)
}

/// The value of the sample `metric` with exactly `labels` (a histogram's count), or 0.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map_or(0.0, |x| match &x.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Sample::Summary(_) => f64::NAN,
        })
}

async fn gateway(app: &TestApp, host: &str, key: Option<&str>) -> u16 {
    let mut req = app
        .http
        .get(format!("{}/anything", app.gateway.as_ref().unwrap()))
        .header("host", host);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_verifications_through_both_surfaces_and_hold_no_secret() {
    let app = spawn_with(Options {
        db: Db::Sqlite,
        args: ServerArgs {
            gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let up = upstream().await;
    // An upstream that refuses connections: a port bound, then let go.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut keys = Vec::new();
    for (slug, upstream) in [("metered", &up), ("broken", &dead)] {
        let api = app.create_api(slug, &["transcripts:read"]).await;
        let id = api["id"].as_str().unwrap();
        app.patch(
            &format!("/v1/apis/{id}"),
            json!({"upstream": upstream, "hosts": [format!("{slug}.example")]}),
        )
        .await
        .assert_status(200);
        let k = app.create_key(json!({"name": slug, "api_id": id})).await;
        keys.push((
            k["key"].as_str().unwrap().to_owned(),
            k["id"].as_str().unwrap().to_owned(),
        ));
    }
    let (metered, metered_id) = keys[0].clone();
    let (broken, _) = keys[1].clone();
    // The gateway reads its routes every second.
    let started = Instant::now();
    while gateway(&app, "metered.example", Some(&metered)).await != 200 {
        assert!(started.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (before_text, before) = scrape(&app).await;
    for _ in 0..3 {
        assert_eq!(app.verify(&metered, json!({})).await["code"], "VALID");
    }
    for _ in 0..2 {
        assert_eq!(app.verify("nonsense", json!({})).await["code"], "MALFORMED");
    }
    for _ in 0..2 {
        assert_eq!(gateway(&app, "metered.example", Some(&metered)).await, 200);
    }
    assert_eq!(gateway(&app, "metered.example", None).await, 401);
    assert_eq!(gateway(&app, "broken.example", Some(&broken)).await, 502);
    app.get(&format!("/v1/keys/{metered_id}"))
        .await
        .assert_status(200);
    app.get("/v1/no-such-thing")
        .await
        .assert_problem(404, "not_found");
    let (text, after) = scrape(&app).await;

    let delta = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let verifications = "keyward_verifications_total";
    assert_eq!(
        delta(verifications, &[("source", "verify"), ("code", "VALID")]),
        3.0
    );
    assert_eq!(
        delta(
            verifications,
            &[("source", "verify"), ("code", "MALFORMED")]
        ),
        2.0
    );
    // Two forwarded, one to the broken upstream: the key was valid all three times.
    assert_eq!(
        delta(verifications, &[("source", "gateway"), ("code", "VALID")]),
        3.0
    );
    assert_eq!(
        delta(
            verifications,
            &[("source", "gateway"), ("code", "MALFORMED")]
        ),
        1.0
    );
    assert_eq!(delta("keyward_verify_duration_seconds", &[]), 5.0);
    assert_eq!(delta("keyward_verify_duration_seconds_count", &[]), 5.0);
    assert_eq!(
        delta("keyward_gateway_request_duration_seconds_count", &[]),
        4.0
    );
    assert_eq!(
        delta(
            "keyward_gateway_upstream_errors_total",
            &[("kind", "unreachable")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "keyward_gateway_upstream_errors_total",
            &[("kind", "timeout")]
        ),
        0.0
    );
    let http = "keyward_http_requests_total";
    assert_eq!(
        delta(http, &[("route", "/v1/keys/verify"), ("status", "200")]),
        5.0
    );
    // prometheus-parse cuts a label value at its first `}`, which route templates hold: this
    // sample is read from the text itself.
    let templated = |text: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"keyward_http_requests_total{route="/v1/keys/{id}",status="200"} "#,
                )
            })
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    assert_eq!(templated(&text) - templated(&before_text), 1.0, "{text}");
    assert_eq!(
        delta(http, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    assert!(value(&after, "keyward_cache_keys", &[]) >= 3.0, "{text}");
    assert!(
        delta("keyward_cache_lookups_total", &[("result", "hit")]) >= 5.0,
        "{text}"
    );
    assert!(value(&after, "keyward_cache_lookups_total", &[("result", "miss")]) >= 1.0);
    // No endpoint is subscribed: nothing waits (the webhooks' tests see it move).
    assert_eq!(value(&after, "keyward_webhook_queue_depth", &[]), 0.0);
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "keyward_write_behind_pending"),
        "{text}"
    );
    // Routes are templates: no id, no key, no raw path.
    for secret in [&metered, &broken, &app.admin_key, &metered_id] {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
    assert!(!text.contains("no-such-thing"), "{text}");

    // The gateway's verifications are counted in usage too, beside the verify endpoint's: three
    // verified there (the first when the routes were read), three here.
    let started = Instant::now();
    loop {
        let r = app.get(&format!("/v1/keys/{metered_id}/usage")).await;
        let body: Value = r.assert_status(200).clone();
        if body["totals"]["valid"] == 6 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
