//! Runs the real binary through a full session and proves that no secret reaches its logs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::Binary;

const PEPPER: &str = "log-test-pepper-fedcba9876543210-fedcba9876543210";

#[tokio::test]
async fn no_key_or_pepper_appears_in_the_server_output_across_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = Binary::serve(&[
        ("KEYWARD_DATA_DIR", data),
        ("KEYWARD_PEPPER", PEPPER),
        ("KEYWARD_LOG", "debug"),
    ])
    .await;
    let base = server.base.clone();
    let first_out = server.stdout();
    let admin = server.admin_key();

    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>, key: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut r = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(key);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let res = r.send().await.unwrap();
            res.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    use reqwest::Method;
    let created = call(
        Method::POST,
        "/v1/keys".into(),
        Some(json!({"name": "logged"})),
        admin.clone(),
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    call(
        Method::POST,
        "/v1/keys/verify".into(),
        Some(json!({"key": secret})),
        admin.clone(),
    )
    .await;
    call(Method::GET, "/v1/keys".into(), None, secret.clone()).await; // refused: not a management key
    let mut typo = secret.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    call(Method::GET, "/v1/keys".into(), None, typo.clone()).await;
    let rotated = call(
        Method::POST,
        format!("/v1/keys/{id}/rotate"),
        Some(json!({"grace_period_s": 60})),
        admin.clone(),
    )
    .await;
    let rotated_secret = rotated["key"].as_str().unwrap().to_owned();
    call(
        Method::PATCH,
        format!("/v1/keys/{id}"),
        Some(json!({"name": "renamed"})),
        admin.clone(),
    )
    .await;
    http.get(format!("{base}/v1/keys?key={rotated_secret}"))
        .send()
        .await
        .unwrap();
    http.get(format!("{base}/v1/keys"))
        .header("authorization", format!("Basic {secret}"))
        .send()
        .await
        .unwrap();
    call(
        Method::POST,
        format!("/v1/keys/{id}/revoke"),
        Some(json!({})),
        admin.clone(),
    )
    .await;
    call(Method::GET, "/v1/audit-log".into(), None, admin.clone()).await;

    // The dashboard: the setup link, a password, a session, its CSRF token, a sign-out.
    let link = first_out
        .lines()
        .find(|l| l.contains("/setup/"))
        .expect("the setup link")
        .to_owned();
    let setup_token = link.rsplit('/').next().unwrap().to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |res: &reqwest::Response, name: &str| {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .unwrap()
    };
    let page = browser.get(format!("{base}/sign-in")).send().await.unwrap();
    let pre_csrf = cookie_of(&page, "keyward_csrf");
    let password = "a passphrase nobody logs";
    let done = browser
        .post(format!("{base}/setup/{setup_token}"))
        .header("cookie", format!("keyward_csrf={pre_csrf}"))
        .form(&[
            ("csrf", pre_csrf.as_str()),
            ("email", "owner@example.com"),
            ("password", password),
            ("password_confirmation", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let session = cookie_of(&done, "keyward_session");
    let csrf = keyward::service::sessions::csrf_token(&session);
    let keys_page = browser
        .get(format!("{base}/keys"))
        .header("cookie", format!("keyward_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(keys_page.status(), 200);
    browser
        .post(format!("{base}/sign-out"))
        .header("cookie", format!("keyward_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();

    let (exit, _) = server.terminate(Duration::from_secs(20)).await;
    assert!(exit.success(), "graceful shutdown exits 0");
    let err_text = server.stderr();
    let all_out = server.stdout();

    assert!(
        err_text.contains("shutting down"),
        "the log is really captured: {err_text}"
    );
    assert!(
        err_text.lines().count() >= 5,
        "debug logging produced output"
    );
    for (what, s) in [
        ("key", &secret),
        ("rotated key", &rotated_secret),
        ("mistyped key", &typo),
        ("admin key", &admin),
    ] {
        assert!(
            !err_text.contains(s.as_str()),
            "the {what} appears in the log"
        );
        // Not even its secret part.
        assert!(
            !err_text.contains(&s[20..60]),
            "part of the {what} appears in the log"
        );
    }
    assert!(
        !err_text.contains(PEPPER) && !all_out.contains(PEPPER),
        "the pepper appears in the output"
    );
    for (what, s) in [
        ("password", password),
        ("session token", session.as_str()),
        ("setup link token", setup_token.as_str()),
        ("CSRF token", csrf.as_str()),
        ("pre-session CSRF token", pre_csrf.as_str()),
    ] {
        assert!(!err_text.contains(s), "the {what} appears in the log");
    }
    assert!(!all_out.contains(password) && !all_out.contains(&session));
    assert_eq!(
        all_out.matches(admin.as_str()).count(),
        1,
        "the management key is printed exactly once"
    );
    assert!(!all_out.contains(&secret) && !all_out.contains(&rotated_secret));
}
