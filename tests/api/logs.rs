//! Runs the real binary through a full session and proves that no secret reaches its logs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const PEPPER: &str = "log-test-pepper-fedcba9876543210-fedcba9876543210";

#[tokio::test]
async fn no_key_or_pepper_appears_in_the_server_output_across_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("serve")
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .env("KEYWARD_DATA_DIR", dir.path())
        .env("KEYWARD_PEPPER", PEPPER)
        .env("KEYWARD_LOG", "debug")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Read stderr until the server says where it listens.
    let mut err_text = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).await.unwrap() == 0 {
                panic!("the server exited early: {err_text}");
            }
            err_text.push_str(&line);
            if let Some(i) = line.find("listening on http://") {
                let rest = &line[i + "listening on http://".len()..];
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
    })
    .await
    .expect("the server starts within 30 s");
    let base = format!("http://{addr}");
    // stdout holds the first-start message; read what is there so far.
    let mut out_buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut out_buf))
        .await
        .unwrap()
        .unwrap();
    let first_out = String::from_utf8_lossy(&out_buf[..n]).to_string();
    let admin = first_out
        .lines()
        .find(|l| l.starts_with("kw_live_"))
        .expect("the management key on a line of its own")
        .to_owned();

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

    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0");
    stderr.read_to_string(&mut err_text).await.unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    let all_out = format!("{first_out}{rest}");

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
