//! The command line against a running server, and its offline commands.

use std::process::Output;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{TestApp, spawn_app};

async fn kw(app: Option<&TestApp>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env_remove("KEYWARD_API_KEY")
        .env_remove("KEYWARD_URL");
    if let Some(app) = app {
        cmd.env("KEYWARD_URL", &app.base)
            .env("KEYWARD_API_KEY", &app.admin_key);
    }
    cmd.output().await.expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn keys_can_be_created_listed_shown_rotated_revoked_and_deleted_from_the_command_line() {
    let app = spawn_app().await;
    let out = kw(
        Some(&app),
        &[
            "keys",
            "create",
            "--name",
            "from cli",
            "--type",
            "batch",
            "--ip",
            "10.0.0.0/8",
            "--expires",
            "1y",
            "--rate-limit",
            "10/60",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["rate_limit"]["requests"], 10);

    let list = kw(Some(&app), &["keys", "list"]).await;
    let text = stdout(&list);
    assert!(text.starts_with("ID"), "a table with a header: {text}");
    assert!(text.contains(&id) && text.contains("from cli") && !text.contains(&secret));

    let show = kw(Some(&app), &["keys", "show", &id]).await;
    assert!(stdout(&show).contains("10.0.0.0/8"));

    let verify = kw(Some(&app), &["verify", &secret]).await;
    assert_eq!(
        verify.status.code(),
        Some(2),
        "outside the allowlist: {}",
        stdout(&verify)
    );
    assert!(stdout(&verify).contains("IP_NOT_ALLOWED"));
    let verify = kw(
        Some(&app),
        &["verify", &secret, "--ip", "10.1.2.3", "--type", "batch"],
    )
    .await;
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    assert!(stdout(&verify).starts_with("VALID (200)"));

    let rotate = kw(Some(&app), &["keys", "rotate", &id, "--grace", "0"]).await;
    assert!(rotate.status.success());
    let new_key = stdout(&rotate).lines().last().unwrap().to_owned();
    assert!(new_key.starts_with("kw_live_") && new_key != secret);
    let old = kw(Some(&app), &["verify", &secret, "--json"]).await;
    let old: Value = serde_json::from_str(&stdout(&old)).unwrap();
    assert_eq!(old["code"], "REVOKED");

    let new_id = format!("key_{}", &new_key[8..20]);
    let revoke = kw(Some(&app), &["keys", "revoke", &new_id, "--reason", "done"]).await;
    assert!(stdout(&revoke).starts_with("Revoked"));
    let delete = kw(Some(&app), &["keys", "delete", &new_id]).await;
    assert!(delete.status.success());
    let missing = kw(Some(&app), &["keys", "show", "key_000000000000"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 not_found"));
}

#[tokio::test]
async fn a_missing_or_wrong_setting_is_a_one_line_error_naming_it() {
    let out = kw(None, &["keys", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("KEYWARD_API_KEY"));
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["keys", "list"])
        .env("KEYWARD_API_KEY", "x")
        .env("KEYWARD_URL", "http://127.0.0.1:9")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve"])
        .env("KEYWARD_ENV", "production")
        .env_remove("KEYWARD_PEPPER")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYWARD_PEPPER"));
}

#[tokio::test]
async fn init_prints_a_key_once_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("init")
            .env("KEYWARD_DATA_DIR", dir.path())
            .env_remove("KEYWARD_PEPPER")
            .env_remove("KEYWARD_DATABASE_URL")
            .output()
    };
    let first = run().await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = stdout(&first);
    let key = text
        .lines()
        .find(|l| l.starts_with("kw_live_"))
        .expect("a key line");
    assert_eq!(key.len(), 76);
    assert!(text.contains("will not be shown again"));
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| *l == key).unwrap();
    assert!(
        lines[at + 1].contains("one-time link")
            && lines[at + 2].starts_with("http://127.0.0.1:8080/setup/"),
        "the setup link follows the key, on a line of its own: {text}"
    );
    let link = lines[at + 2];
    assert_eq!(link.len(), "http://127.0.0.1:8080/setup/".len() + 64);
    let again = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["setup-link", "--email", "owner@localhost"])
        .env("KEYWARD_DATA_DIR", dir.path())
        .env_remove("KEYWARD_PEPPER")
        .env_remove("KEYWARD_DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let fresh = stdout(&again);
    let fresh = fresh.lines().last().unwrap();
    assert!(
        fresh.contains("/setup/") && fresh != link,
        "a new link: {fresh}"
    );
    assert!(
        dir.path().join("pepper").exists(),
        "a development pepper was generated"
    );
    let second = run().await.unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already initialized"));
    assert!(!stdout(&second).contains("kw_live_"));
}

#[tokio::test]
async fn scan_finds_real_keys_in_files_and_ignores_look_alikes() {
    let dir = tempfile::tempdir().unwrap();
    let key = keyward::domain::key::generate("sk_live_", &mut rand::rngs::OsRng);
    let mut fake = key.expose().to_owned();
    fake.replace_range(30..31, if &fake[30..31] == "a" { "b" } else { "a" });
    std::fs::write(
        dir.path().join("config.env"),
        format!("A=1\nAPI_KEY={}\nOTHER={fake}\n", key.expose()),
    )
    .unwrap();
    std::fs::write(dir.path().join("clean.txt"), "nothing here\n").unwrap();
    let out = kw(None, &["scan", dir.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("config.env:2:"));
    assert!(
        !text.contains(key.expose()),
        "the scanner prints only the masked prefix"
    );
    let clean = kw(
        None,
        &["scan", dir.path().join("clean.txt").to_str().unwrap()],
    )
    .await;
    assert_eq!(clean.status.code(), Some(0));
}

#[tokio::test]
async fn a_revoked_last_management_key_is_replaced_from_the_command_line() {
    let app = spawn_app().await;
    let admin_id = format!("key_{}", &app.admin_key[8..20]);
    // The only management key revokes itself: the API is closed to it from now on.
    app.post(
        &format!("/v1/keys/{admin_id}/revoke"),
        serde_json::json!({}),
    )
    .await
    .assert_status(200);
    app.get("/v1/keys").await.assert_problem(401, "key_revoked");
    let database = format!("sqlite://{}", app.dir.path().join("keyward.db").display());
    let run = |email: &'static str| {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["keys", "create-management", "--email", email])
            .env("KEYWARD_DATABASE_URL", &database)
            .env("KEYWARD_PEPPER", crate::helpers::TEST_PEPPER)
            .env_remove("KEYWARD_DATA_DIR")
            .output()
    };
    let out = run("Owner@Localhost").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let key = text
        .lines()
        .find(|l| l.starts_with("kw_live_"))
        .expect("the new key on a line of its own")
        .to_owned();
    assert!(text.contains("will not be shown again"), "{text}");
    // The running server accepts it at once, for the owner.
    let keys = app.get_as(&key, "/v1/keys").await;
    keys.assert_status(200);
    let events = app.get_as(&key, "/v1/audit-log?action=key.created").await;
    let newest = &events.body["data"][0];
    assert_eq!(newest["actor"]["kind"], "system", "{newest}");
    assert_eq!(newest["target"]["id"], format!("key_{}", &key[8..20]));
    // An address nobody has is refused, with a one-line reason.
    let out = run("nobody@example.com").await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no active member has the email"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout(&out).contains("kw_live_"));
}

#[tokio::test]
async fn apis_and_their_gateway_routes_are_managed_from_the_command_line() {
    let app = spawn_app().await;
    let out = kw(
        Some(&app),
        &[
            "apis",
            "create",
            "--name",
            "Speech",
            "--slug",
            "speech",
            "--live-prefix",
            "sp_live_",
            "--scope",
            "transcripts:read=Read transcripts",
            "--token-type",
            "batch",
            "--token-type",
            "realtime",
            "--upstream",
            "http://127.0.0.1:9000/base",
            "--host",
            "api.example.com",
            "--route",
            "/api/v3/stream methods=GET types=realtime",
            "--route",
            "/api/v3/documents methods=GET scopes=transcripts:read",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = api["id"].as_str().unwrap().to_owned();
    assert_eq!(api["hosts"], serde_json::json!(["api.example.com"]));
    assert_eq!(
        api["routes"][0]["token_types"],
        serde_json::json!(["realtime"])
    );
    assert_eq!(
        api["routes"][1]["required_scopes"],
        serde_json::json!(["transcripts:read"])
    );

    let list = stdout(&kw(Some(&app), &["apis", "list"]).await);
    assert!(list.starts_with("ID"), "{list}");
    assert!(
        list.contains("speech") && list.contains("http://127.0.0.1:9000/base"),
        "{list}"
    );
    let show = stdout(&kw(Some(&app), &["apis", "show", &id]).await);
    assert!(
        show.contains("/api/v3/stream") && show.contains("realtime"),
        "{show}"
    );

    let out = kw(
        Some(&app),
        &[
            "apis",
            "update",
            &id,
            "--no-routes",
            "--no-hosts",
            "--accept-x-api-key",
            "true",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = app.get(&format!("/v1/apis/{id}")).await;
    assert_eq!(stored.body["routes"], serde_json::json!([]));
    assert_eq!(stored.body["hosts"], serde_json::json!([]));
    assert_eq!(stored.body["accept_x_api_key"], true);
    let out = kw(Some(&app), &["apis", "update", &id, "--no-upstream"]).await;
    assert!(out.status.success());
    assert_eq!(
        app.get(&format!("/v1/apis/{id}")).await.body["upstream"],
        Value::Null
    );

    // The server's refusal, field by field.
    let bad = kw(Some(&app), &["apis", "update", &id, "--host", "Not A Host"]).await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("422 validation_failed") && err.contains("hosts[0]"),
        "{err}"
    );
}
