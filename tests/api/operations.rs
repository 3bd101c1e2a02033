//! Health, OpenAPI, docs, request ids, unknown routes and the key-in-URL guard.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let h = app
        .send(reqwest::Method::GET, "/healthz", None, None)
        .await
        .body;
    assert_eq!(h["status"], "ok");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn readiness_fails_when_storage_is_gone() {
    let app = spawn_app().await;
    app.ctx.store.close().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let generated = keyward::http::api::docs::openapi_json();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .unwrap_or_default();
    if std::env::var_os("KEYWARD_UPDATE_OPENAPI").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"),
            format!("{generated}\n"),
        )
        .unwrap();
        return;
    }
    assert!(
        committed.trim_end() == generated,
        "openapi.json is out of date: run `KEYWARD_UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[tokio::test]
async fn openapi_describes_every_route_and_the_problem_shape() {
    let app = spawn_app().await;
    let doc = app
        .send(reqwest::Method::GET, "/openapi.json", None, None)
        .await
        .body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/rotate",
        "/v1/keys/{id}/revoke",
        "/v1/keys/verify",
        "/v1/apis",
        "/v1/apis/{id}",
        "/v1/audit-log",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for f in [
        "type",
        "title",
        "status",
        "code",
        "detail",
        "request_id",
        "errors",
    ] {
        assert!(problem.get(f).is_some(), "Problem.{f} missing");
    }
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("/v1/keys/{id}/rotate") && html.contains("Problem"));
}

#[tokio::test]
async fn every_response_has_a_request_id_and_unknown_routes_are_problem_json() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        r.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let res = app.get("/v1/nothing-here").await;
    res.assert_problem(404, "not_found");
    assert_eq!(
        res.headers["x-request-id"].to_str().unwrap(),
        res.body["request_id"]
    );
    let put = app
        .send(
            reqwest::Method::PUT,
            "/v1/keys",
            Some(&app.admin_key),
            Some(&json!({})),
        )
        .await;
    put.assert_problem(405, "bad_request");
}

#[tokio::test]
async fn a_key_in_the_url_is_refused_and_flagged_as_exposed() {
    let app = spawn_app().await;
    let k = app.create_key(json!({"name": "careless"})).await;
    let (id, secret) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    let r = app
        .http
        .get(app.url(&format!("/v1/keys?api_key={secret}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "key_in_url");
    assert!(!body.to_string().contains(secret));
    let shown = app.get(&format!("/v1/keys/{id}")).await;
    assert!(shown.body["exposed_at"].is_string());
    let log = app
        .get(&format!("/v1/audit-log?action=key.exposed&target_id={id}"))
        .await;
    assert_eq!(log.body["data"].as_array().unwrap().len(), 1);
    assert!(!log.text.contains(secret));
    // A well-formed key that is not really ours is refused too, but flags nothing.
    let fake = keyward::domain::key::generate("kw_live_", &mut rand::rngs::OsRng);
    let r = app
        .http
        .get(app.url(&format!("/anything/{}", fake.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_audit_log_filters_and_pages() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_key(json!({"name": format!("k{i}")})).await;
    }
    let page = app.get("/v1/audit-log?action=key.created&limit=2").await;
    let page = page.assert_status(200).clone();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let e = &page["data"][0];
    assert_eq!(e["actor"]["kind"], "key");
    assert!(e["actor"]["label"].as_str().unwrap().ends_with("••••"));
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["target"]["type"], "key");
    let next = app
        .get(&format!(
            "/v1/audit-log?action=key.created&limit=2&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(next.body["data"].as_array().unwrap().len(), 1);
    assert!(next.body["next_cursor"].is_null());
    let future = app.get("/v1/audit-log?from=2999-01-01T00:00:00Z").await;
    assert_eq!(future.body["data"].as_array().unwrap().len(), 0);
    app.get("/v1/audit-log?from=yesterday")
        .await
        .assert_problem(400, "bad_request");
}

/// A stop lets a request already begun finish (its body still arriving), closes idle keep-alive
/// connections, and refuses new ones.
#[tokio::test]
async fn a_stop_finishes_requests_begun_and_closes_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = json!({"key": "kw_live_garbage"}).to_string();
    let head = format!(
        "POST /v1/keys/verify HTTP/1.1\r\nhost: keyward\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.admin_key,
        body.len()
    );
    // Idle: one request answered, the connection kept open.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let answered = read_response(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    // Begun: the head and half the body sent before the stop.
    let mut begun = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    begun
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let stopped = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !stopped.is_finished(),
        "the stop waits for the request begun"
    );
    begun.write_all(rest.as_bytes()).await.unwrap();
    let finished = read_response(&mut begun).await;
    assert!(finished.starts_with("HTTP/1.1 200"), "{finished}");
    assert!(finished.contains("\"code\":\"MALFORMED\""), "{finished}");
    let _dir = tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
        .await
        .expect("the stop completes once the request is answered")
        .unwrap();
    // Both connections are closed by the server, and nothing new is accepted.
    for mut conn in [idle, begun] {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.read_to_end(&mut rest),
        )
        .await
        .expect("the server closes the connection")
        .unwrap_or(0);
        assert_eq!(n, 0, "nothing more after the answer");
    }
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}

/// Reads one response with a `content-length` body from `conn`.
async fn read_response(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if body.len() >= len {
                return text;
            }
        }
    }
}
