//! The dashboard in a real browser: Debian's Chromium, headless, driven through `chromedriver`
//! (WebDriver) against a real `keyward` server. These tests fail, never skip, when the browser
//! cannot start. Each step saves screenshots (1280, 1024 and 390 px wide) under
//! `target/screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{Options, TEST_ENCRYPTION_KEY, TestApp, spawn_app, spawn_with};

const WAIT: Duration = Duration::from_secs(15);
const DESKTOP: (u32, u32) = (1280, 900);
const LAPTOP: (u32, u32) = (1024, 768);
const MOBILE: (u32, u32) = (390, 844);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A headless Chromium session, with the chromedriver that drives it.
pub struct Browser {
    pub client: Client,
    base: String,
    name: &'static str,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and Chromium; panics (failing the test) when either cannot start.
    pub async fn start(base: &str, name: &'static str) -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {driver_bin}: {e}. Install Debian's chromium and chromium-driver \
                     (./scripts/test does it)"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(r) = http.get(format!("{url}/status")).send().await {
                    if let Ok(v) = r.json::<Value>().await {
                        if v["value"]["ready"] == true {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(WAIT, ready)
            .await
            .expect("chromedriver answers within 15 s");
        let profile = tempfile::tempdir().expect("a profile directory");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-extensions", "--disable-sync", "--no-first-run",
                    "--no-default-browser-check", "--force-device-scale-factor=1",
                    "--hide-scrollbars", "--lang=en-US",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("Chromium ({chromium}) must start headless: {e}"));
        Browser {
            client,
            base: base.to_owned(),
            name,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The element matching `css`, once it is there.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!("no element {css} on {}: {e}", self.path().await),
        }
    }

    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .is_empty()
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the value of a text control.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Runs a script and returns its result.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.expect("text")
    }

    /// Waits until `check` (a script returning a boolean) holds.
    pub async fn until(&self, what: &str, check: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.js(check).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "waited 15 s for {what} on {}; the page says: {}",
                    self.path().await,
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page shows `text` somewhere.
    pub async fn until_text(&self, text: &str) {
        let check = format!(
            "return document.body && document.body.innerText.includes({})",
            serde_json::to_string(text).unwrap()
        );
        self.until(&format!("the text {text:?}"), &check).await;
    }

    /// Waits for the dialog `id` to be open.
    pub async fn until_open(&self, id: &str) {
        self.until(
            &format!("the dialog #{id} to open"),
            &format!("const d = document.getElementById('{id}'); return !!(d && d.open)"),
        )
        .await;
    }

    /// Gives the page a viewport of `width` by `height` CSS pixels.
    pub async fn viewport(&self, (width, height): (u32, u32)) {
        // The window's size includes the browser's own frame; the page gets the rest.
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        let frame = self
            .js("return window.outerHeight - window.innerHeight")
            .await
            .as_u64()
            .unwrap_or(0) as u32;
        self.client
            .set_window_size(width, height + frame)
            .await
            .expect("resize");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Saves the page at 1280, 1024 and 390 px wide: the whole page, or the viewport while a
    /// dialog is open.
    pub async fn shoot(&self, step: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("target/screenshots");
        for (width, height) in [DESKTOP, LAPTOP, MOBILE] {
            self.viewport((width, height)).await;
            let frame = self
                .js("return window.outerHeight - window.innerHeight")
                .await
                .as_u64()
                .unwrap_or(0) as u32;
            let full = self
                .js("return document.querySelector('dialog[open]') ? 0 : document.documentElement.scrollHeight")
                .await
                .as_u64()
                .unwrap_or(0) as u32;
            if full > height {
                self.client
                    .set_window_size(width, full.min(6000) + frame)
                    .await
                    .expect("resize");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{}-{step}-{width}.png", self.name)), png)
                .expect("write screenshot");
        }
        self.viewport(DESKTOP).await;
    }

    /// What the system clipboard holds, read by pasting it (Ctrl+V) into a new text field.
    pub async fn clipboard(&self) -> String {
        self.js(
            "const t = document.createElement('textarea'); t.id = 'clipboard-probe'; \
             document.body.appendChild(t);",
        )
        .await;
        let probe = self.find("#clipboard-probe").await;
        probe.click().await.expect("focus the probe");
        probe.send_keys("\u{E009}v\u{E000}").await.expect("paste");
        let text = probe
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default();
        self.js("document.getElementById('clipboard-probe').remove()")
            .await;
        text
    }

    pub async fn stop(self) {
        let _ = self.client.close().await;
    }
}

/// Signs in through the form.
async fn sign_in(b: &Browser, email: &str, password: &str) {
    b.go("/sign-in").await;
    b.fill("#email", email).await;
    b.fill("#password", password).await;
    b.click("form[action='/sign-in'] button[type=submit]").await;
}

/// Gives the default API a scope catalogue, so that the create dialog offers checkboxes.
async fn add_scopes(app: &TestApp) {
    app.patch(
        &format!("/v1/apis/{}", app.default_api_id),
        json!({"scopes": [
            {"name": "transcripts:read", "description": "Read transcripts"},
            {"name": "transcripts:write", "description": "Upload audio and create transcripts"},
        ]}),
    )
    .await
    .assert_status(200);
}

const OWNER_PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn an_owner_sets_up_signs_in_and_creates_copies_uses_edits_rotates_and_deletes_a_key() {
    let app = spawn_with(Options {
        encryption_key: Some(TEST_ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await;
    add_scopes(&app).await;
    let b = Browser::start(&app.base, "owner").await;
    let api = app.default_api_id.clone();

    // The setup link printed on the first start: choose an email and a password.
    let setup_path = &app.setup_url[app.setup_url.find("/setup/").unwrap()..];
    b.go(setup_path).await;
    b.find("#email").await;
    b.shoot("setup").await;
    b.fill("#email", "olivia@example.com").await;
    b.fill("#name", "Olivia").await;
    b.fill("#password", OWNER_PASSWORD).await;
    b.fill("#password_confirmation", OWNER_PASSWORD).await;
    b.click("form button[type=submit]").await;
    b.until_text("Your password is set").await;
    assert_eq!(b.path().await, "/keys");
    b.shoot("keys-empty").await;
    assert!(b.text().await.contains("An API key lets a program"));

    // Sign out, fail once, sign in.
    b.click("form[action='/sign-out'] button").await;
    b.until_text("You have signed out").await;
    sign_in(&b, "olivia@example.com", "not the password").await;
    b.until_text("The email or password is incorrect").await;
    b.shoot("sign-in-error").await;
    sign_in(&b, "olivia@example.com", OWNER_PASSWORD).await;
    b.find(".page-actions button[data-open='create-key']").await;
    assert_eq!(b.path().await, "/keys");

    // Create a key: the dialog, inline validation of the allowlist, then the key shown once.
    b.click(".page-actions button[data-open='create-key']")
        .await;
    b.until_open("create-key").await;
    b.shoot("create-key").await;
    b.fill("#create-name", "Production integration").await;
    b.click(&format!("#create-type-{api}-batch")).await;
    b.click("label[for='create-expires-1y']").await;
    b.click(&format!("#create-scopes-{api}-0")).await;
    b.fill("#create-ip", "203.0.113.0/24\nnot-an-ip").await;
    b.until(
        "the inline allowlist error",
        "const e = document.getElementById('create-ip-error'); return !e.hidden && e.textContent.includes(\"'not-an-ip'\")",
    )
    .await;
    b.shoot("create-key-invalid").await;
    b.fill("#create-ip", "203.0.113.0/24").await;
    b.until(
        "the error to go",
        "return document.getElementById('create-ip-error').hidden",
    )
    .await;
    b.fill("#create-rate-requests", "100").await;
    // The quota and, under "More options", the metadata.
    b.click("#create-key details.more-options summary").await;
    b.js("document.getElementById('create-metadata').scrollIntoView({block: 'nearest'})")
        .await;
    assert!(b.has("#create-quota-refill").await && b.has("#create-metadata").await);
    b.shoot("create-key-limits").await;
    b.click("#create-key button[type=submit]").await;
    b.until_open("key-created").await;
    b.shoot("key-created").await;
    let secret = b.value("#new-key").await;
    assert!(
        secret.starts_with("kw_live_") && secret.len() == 76,
        "{secret}"
    );
    let id = format!("key_{}", &secret[8..20]);
    b.click("button[data-copy='new-key']").await;
    b.until_text("Copied to the clipboard").await;
    b.click("#key-created .dialog-footer button[data-close]")
        .await;
    b.until(
        "the key dialog to close",
        "return !document.getElementById('key-created')",
    )
    .await;
    let source = b.client.source().await.unwrap();
    assert!(
        !source.contains(&secret),
        "closing the dialog leaves only the masked prefix"
    );
    assert!(source.contains(&format!("kw_live_{}••••", &secret[8..20])));
    assert_eq!(b.path().await, "/keys");
    assert_eq!(
        b.clipboard().await,
        secret,
        "the Copy button put the key on the clipboard"
    );

    // Use it, as a backend would.
    let verdict = app
        .verify(
            &secret,
            json!({"ip": "203.0.113.9", "token_type": "batch", "required_scopes": ["transcripts:read"]}),
        )
        .await;
    assert_eq!(verdict["code"], "VALID", "{verdict}");
    b.go("/keys").await;
    let row = b.find(&format!("tr[data-key-id='{id}']")).await;
    let row_text = row.text().await.unwrap();
    for expected in [
        "Production integration",
        "batch",
        "transcripts:read",
        "203.0.113.0/24",
        "just now",
        "Active",
    ] {
        assert!(row_text.contains(expected), "{expected} in {row_text}");
    }
    b.shoot("keys").await;

    // Edit from the row's menu.
    b.click(&format!("tr[data-key-id='{id}'] details.menu summary"))
        .await;
    b.click(&format!("a[href='/keys/{id}?dialog=edit']")).await;
    b.until_open("edit-key").await;
    b.shoot("edit-key").await;
    b.fill("#edit-name", "Nightly export").await;
    b.fill("#edit-ip", "203.0.113.0/24\n198.51.100.7").await;
    b.click("#edit-key button[type=submit]").await;
    b.until_text("Saved the changes to Nightly export").await;
    assert_eq!(b.path().await, format!("/keys/{id}"));
    assert!(b.text().await.contains("198.51.100.7/32"));
    b.shoot("key-detail").await;

    // Rotate with no grace period: the new key is shown once, the old one stops.
    b.click(".page-actions button[data-open='rotate-key']")
        .await;
    b.until_open("rotate-key").await;
    b.find("#rotate-grace")
        .await
        .select_by_value("0")
        .await
        .unwrap();
    b.shoot("rotate-key").await;
    b.click("#rotate-key button[type=submit]").await;
    b.until_open("key-created").await;
    assert!(b.text().await.contains("Key rotated"));
    let rotated = b.value("#new-key").await;
    assert!(rotated.starts_with("kw_live_") && rotated != secret);
    let new_id = format!("key_{}", &rotated[8..20]);
    b.shoot("key-rotated").await;
    b.click("#key-created .dialog-footer button[data-close]")
        .await;
    b.until(
        "the key dialog to close",
        "return !document.getElementById('key-created')",
    )
    .await;
    assert_eq!(b.path().await, format!("/keys/{new_id}"));
    assert_eq!(app.verify(&secret, json!({})).await["code"], "REVOKED");
    let verdict = app
        .verify(
            &rotated,
            json!({"ip": "198.51.100.7", "token_type": "batch"}),
        )
        .await;
    assert_eq!(verdict["code"], "VALID", "{verdict}");

    // Delete from the list, after a confirmation that names the key.
    b.go("/keys").await;
    b.click(&format!("tr[data-key-id='{new_id}'] details.menu summary"))
        .await;
    b.click(&format!(
        "tr[data-key-id='{new_id}'] button[data-open='delete-key']"
    ))
    .await;
    b.until_open("delete-key").await;
    let confirm = b.find("#delete-key").await.text().await.unwrap();
    assert!(confirm.contains("Nightly export"), "{confirm}");
    assert!(
        confirm.contains(&format!("{}••••", &rotated[..20])),
        "{confirm}"
    );
    b.shoot("delete-key").await;
    b.click("#delete-key button.danger").await;
    b.until_text("Deleted Nightly export").await;
    assert!(!b.has(&format!("tr[data-key-id='{new_id}']")).await);
    assert_eq!(app.verify(&rotated, json!({})).await["code"], "REVOKED");

    // Every step is in the audit log.
    b.go("/audit").await;
    b.find(".audit-table").await;
    b.shoot("audit").await;
    let log = b.text().await;
    for step in [
        "Password set",
        "Signed out",
        "Failed sign-in",
        "Signed in",
        "Key created",
        "Key edited",
        "Key rotated",
        "Key deleted",
    ] {
        assert!(log.contains(step), "the audit log shows {step:?}");
    }
    assert!(!log.contains(&secret) && !log.contains(&rotated));

    // The old key's page: revoked, with its history.
    b.go(&format!("/keys/{id}")).await;
    b.until_text("Recent activity").await;
    assert!(b.text().await.contains("Revoked"));

    // A recoverable key can be revealed again, and the reveal is audited.
    app.patch("/v1/org", json!({"policies": {"recoverable_keys": true}}))
        .await
        .assert_status(200);
    let recoverable = app
        .create_key(json!({"name": "Recoverable", "recoverable": true}))
        .await;
    let rec_id = recoverable["id"].as_str().unwrap();
    b.go("/keys").await;
    b.click(&format!("tr[data-key-id='{rec_id}'] a.icon-link"))
        .await;
    b.until_open("reveal-key").await;
    b.click("#reveal-key button[data-reveal]").await;
    b.until(
        "the revealed key",
        "return document.getElementById('revealed-key').value.length === 76",
    )
    .await;
    assert_eq!(
        b.value("#revealed-key").await,
        recoverable["key"].as_str().unwrap()
    );
    b.shoot("reveal-key").await;
    b.click("#reveal-key .dialog-footer button[data-close]")
        .await;
    // The dialog clears the field as it closes; wait for that rather than race it.
    b.until(
        "closing forgets the key",
        "return document.getElementById('revealed-key').value === ''",
    )
    .await;
    assert_eq!(b.value("#revealed-key").await, "");
    let revealed = app
        .get(&format!(
            "/v1/audit-log?action=key.revealed&target_id={rec_id}"
        ))
        .await;
    assert_eq!(
        revealed.body["data"][0]["actor"]["label"],
        "olivia@example.com"
    );

    // Members: invite one, and get their one-time link.
    b.go("/members").await;
    b.click(".page-actions button[data-open='invite-member']")
        .await;
    b.until_open("invite-member").await;
    b.fill("#invite-email", "dev@example.com").await;
    b.fill("#invite-name", "Dana Developer").await;
    b.find("#invite-role")
        .await
        .select_by_value("developer")
        .await
        .unwrap();
    b.shoot("invite-member").await;
    b.click("#invite-member button[type=submit]").await;
    b.until_open("member-link").await;
    let link = b.value("#member-link-url").await;
    assert!(link.contains("/setup/"), "{link}");
    b.shoot("member-link").await;
    b.click("#member-link .dialog-footer button[data-close]")
        .await;
    b.until_text("dev@example.com").await;
    // Until they set a password, they are invited, not active.
    let invited = b
        .js(
            "return [...document.querySelectorAll('.members-table tbody tr')] \
             .find(r => r.innerText.includes('dev@example.com')).innerText",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        invited.contains("Invited") && invited.contains("Link expires in 7 days"),
        "{invited}"
    );
    assert!(!invited.contains("Active"), "{invited}");
    b.shoot("members").await;

    // Organization and APIs.
    b.go("/org").await;
    b.until_text("Key policies").await;
    b.shoot("org").await;
    b.click(".page-actions button[data-open='edit-org']").await;
    b.until_open("edit-org").await;
    b.shoot("org-edit").await;
    b.go("/apis").await;
    b.until_text("transcripts:write").await;
    b.shoot("apis").await;
    b.click(".page-actions button[data-open='create-api']")
        .await;
    b.until_open("create-api").await;
    b.fill("#create-api-name", "Search API").await;
    b.fill("#create-api-slug", "search").await;
    b.fill("#create-api-live", "sk_live_").await;
    b.fill("#create-api-test", "sk_test_").await;
    // Token types are checkboxes; scopes are rows of a name and a description, added and removed
    // in place.
    b.click("#create-api-types-realtime").await;
    let rows = "#create-api .scope-rows .scope-row";
    b.fill(
        &format!("{rows}:nth-child(1) input[name=scope_name]"),
        "search:query",
    )
    .await;
    b.fill(
        &format!("{rows}:nth-child(1) input[name=scope_description]"),
        "Run searches",
    )
    .await;
    b.click("#create-api [data-scope-add]").await;
    b.until(
        "a second row, focused",
        "return document.activeElement.name === 'scope_name' &&          document.querySelectorAll('#create-api .scope-row').length === 2",
    )
    .await;
    b.fill(
        &format!("{rows}:nth-child(2) input[name=scope_name]"),
        "search:admin",
    )
    .await;
    b.click("#create-api [data-scope-add]").await;
    b.fill(
        &format!("{rows}:nth-child(3) input[name=scope_name]"),
        "search:index",
    )
    .await;
    b.fill(
        &format!("{rows}:nth-child(3) input[name=scope_description]"),
        "Add documents",
    )
    .await;
    b.shoot("api-create").await;
    b.click(&format!("{rows}:nth-child(2) [data-scope-remove]"))
        .await;
    b.click("#create-api button[type=submit]").await;
    b.until_text("search:query").await;
    assert_eq!(b.path().await, "/apis");
    assert!(b.text().await.contains("sk_live_3f9a0c1e7b2d"));
    b.shoot("api-created").await;
    let search = app.get("/v1/apis").await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "search")
        .unwrap()
        .clone();
    assert_eq!(
        search["scopes"],
        json!([
            {"name": "search:query", "description": "Run searches"},
            {"name": "search:index", "description": "Add documents"},
        ]),
        "the removed row is gone, the others kept in order"
    );
    assert_eq!(
        search["token_types"],
        json!(["standard", "batch"]),
        "realtime was unchecked"
    );
    let search_id = search["id"].as_str().unwrap().to_owned();
    b.click(&format!("button[data-open='edit-api-{search_id}']"))
        .await;
    b.until_open(&format!("edit-api-{search_id}")).await;
    b.shoot("api-edit").await;

    // The profile: name, and the password with the current one.
    b.go("/profile").await;
    b.until_text("Your profile").await;
    b.shoot("profile").await;
    b.fill("#profile-name", "Olivia Owner").await;
    b.click("form[action='/profile'] button[type=submit]").await;
    b.until_text("Your name is saved").await;

    // An address the dashboard does not have: a page, with the way back.
    b.go("/keys/nope/nothing").await;
    b.until_text("Page not found").await;
    assert!(b.has("a[href='/docs']").await && b.has(".sidebar").await);
    b.shoot("not-found").await;
    b.stop().await;
}

#[tokio::test]
async fn a_viewer_is_offered_no_create_edit_or_delete_and_the_server_refuses_them_anyway() {
    let app = spawn_app().await;
    let created = app.create_key(json!({"name": "Owner's integration"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.post(
        "/v1/users",
        json!({"email": "vera@example.com", "name": "Vera Viewer", "role": "viewer",
               "password": "viewer password 123"}),
    )
    .await
    .assert_status(201);
    let b = Browser::start(&app.base, "viewer").await;
    sign_in(&b, "vera@example.com", "viewer password 123").await;
    b.find(&format!("tr[data-key-id='{id}']")).await;
    assert!(
        !b.has("button[data-open='create-key']").await,
        "no create button"
    );
    b.click(&format!("tr[data-key-id='{id}'] details.menu summary"))
        .await;
    let menu = b
        .find(&format!("tr[data-key-id='{id}'] .menu-items"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(menu.trim(), "View details", "a viewer may only look");
    assert!(!b.has("#create-key").await && !b.has("[data-open='delete-key']").await);
    b.shoot("keys").await;

    b.go(&format!("/keys/{id}")).await;
    b.until_text("Owner's integration").await;
    for action in ["edit-key", "rotate-key", "revoke-key", "delete-key"] {
        assert!(
            !b.has(&format!("[data-open='{action}']")).await,
            "{action} is not offered"
        );
    }
    b.shoot("key-detail").await;

    // The server refuses what the page does not offer, for the same session and CSRF token.
    let statuses = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('meta[name=csrf-token]').content;
             const body = new URLSearchParams({csrf, name: 'sneaky'});
             Promise.all([
               fetch('/v1/keys', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify({name: 'sneaky'})}),
               fetch(arguments[0], {method: 'POST', body}),
               fetch('/keys', {method: 'POST', body}),
             ]).then(rs => done(rs.map(r => r.status)));",
            vec![json!(format!("/keys/{id}/delete"))],
        )
        .await
        .unwrap();
    assert_eq!(statuses, json!([403, 403, 403]));
    assert_eq!(
        app.get(&format!("/v1/keys/{id}")).await.body["status"],
        "active"
    );
    b.stop().await;
}

/// Adds an owner with a password through the API and signs them in.
async fn signed_in_owner(app: &TestApp, name: &'static str) -> Browser {
    app.post(
        "/v1/users",
        json!({"email": "ada@example.com", "name": "Ada", "role": "owner", "password": OWNER_PASSWORD}),
    )
    .await
    .assert_status(201);
    let b = Browser::start(&app.base, name).await;
    sign_in(&b, "ada@example.com", OWNER_PASSWORD).await;
    b.find(".page-actions button[data-open='create-key']").await;
    b
}

/// The names of the keys the API lists (deleted ones aside), with their status.
async fn listed(app: &TestApp) -> Vec<(String, String)> {
    app.get("/v1/keys?limit=100").await.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether the error element `id` is shown with a message containing `text`.
fn shows_error(id: &str, text: &str) -> String {
    format!(
        "const e = document.getElementById('{id}'); \
         return !!e && !e.hidden && e.textContent.includes({})",
        serde_json::to_string(text).unwrap()
    )
}

#[tokio::test]
async fn an_out_of_range_value_is_explained_and_once_fixed_the_key_is_created() {
    let app = spawn_app().await;
    let b = signed_in_owner(&app, "create-errors").await;
    let before = listed(&app).await.len();
    b.click(".page-actions button[data-open='create-key']")
        .await;
    b.until_open("create-key").await;
    b.fill("#create-name", "Billing export").await;
    let submit = "#create-key button[type=submit]";

    // A rate limit of -5, then 0: said next to the field, and nothing is sent.
    b.fill("#create-rate-requests", "-5").await;
    b.click(submit).await;
    b.until(
        "the rate limit's error",
        &shows_error("create-rate-error", "Must be between 1 and 1000000"),
    )
    .await;
    b.shoot("create-key-rate-error").await;
    assert_eq!(
        b.js("return document.activeElement.id").await,
        "create-rate-requests"
    );
    b.fill("#create-rate-requests", "0").await;
    b.click(submit).await;
    b.until(
        "the rate limit's error",
        &shows_error("create-rate-error", "Must be between 1 and 1000000"),
    )
    .await;

    // A negative quota and a date in the past, each explained at its field.
    b.fill("#create-rate-requests", "100").await;
    b.until(
        "the fixed rate limit's error to go",
        "return document.getElementById('create-rate-error').hidden",
    )
    .await;
    b.fill("#create-quota-remaining", "-1").await;
    b.click("label[for='create-expires-date']").await;
    b.js("const d = document.getElementById('create-expires-on'); \
          d.value = '2001-01-01'; d.dispatchEvent(new Event('input', {bubbles: true}));")
        .await;
    b.click(submit).await;
    b.until(
        "the quota's error",
        &shows_error("create-quota-error", "Must be 0 or more"),
    )
    .await;
    b.until(
        "the date's error",
        &shows_error("create-expires-error", "Choose a date after today"),
    )
    .await;
    b.shoot("create-key-errors").await;
    assert_eq!(listed(&app).await.len(), before, "nothing was sent");

    // Fixed, every error goes, and Create works: nothing the script set stays behind.
    b.fill("#create-quota-remaining", "500").await;
    b.click("label[for='create-expires-1y']").await;
    b.until(
        "every error to go",
        "return [...document.querySelectorAll('#create-key .field-error')].every(e => e.hidden)",
    )
    .await;
    b.click(submit).await;
    b.until_open("key-created").await;
    let created = listed(&app).await;
    assert_eq!(created.len(), before + 1);
    assert!(created.contains(&("Billing export".into(), "active".into())));
    b.stop().await;
}

#[tokio::test]
async fn the_keys_table_fits_the_page_at_1024_and_1280_px_with_long_names_scopes_and_badges() {
    let app = spawn_app().await;
    let many: Vec<Value> = (1..=8)
        .map(|i| json!({"name": format!("transcripts:scope-number-{i}"), "description": "x"}))
        .collect();
    app.patch(
        &format!("/v1/apis/{}", app.default_api_id),
        json!({"scopes": many}),
    )
    .await
    .assert_status(200);
    let scopes: Vec<String> = (1..=8)
        .map(|i| format!("transcripts:scope-number-{i}"))
        .collect();
    let now = keyward::domain::Clock::now_ms(app.clock.as_ref());
    let soon = time::OffsetDateTime::from_unix_timestamp(now / 1000 + 5 * 86_400)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let long_name = "production-integration-for-the-eu-west-1-nightly-export-of-every-transcript";
    let exposed = app
        .create_key(
            json!({"name": long_name, "scopes": scopes, "expires_at": soon,
                           "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]}),
        )
        .await;
    // Seen whole in a URL: the key is marked exposed.
    let seen = app
        .http
        .get(app.url(&format!("/healthz?k={}", exposed["key"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 400);
    let disabled = app
        .create_key(json!({"name": "A disabled test key with a long, wordy name that wraps", "environment": "test"}))
        .await;
    app.patch(
        &format!("/v1/keys/{}", disabled["id"].as_str().unwrap()),
        json!({"enabled": false}),
    )
    .await
    .assert_status(200);
    let rotated = app
        .create_key(json!({"name": "Rotated with a grace period"}))
        .await;
    app.post(
        &format!("/v1/keys/{}/rotate", rotated["id"].as_str().unwrap()),
        json!({"grace_period_s": 86_400}),
    )
    .await
    .assert_status(201);
    let b = signed_in_owner(&app, "keys-width").await;
    let exposed_id = exposed["id"].as_str().unwrap();
    let row = b
        .find(&format!("tr[data-key-id='{exposed_id}']"))
        .await
        .text()
        .await
        .unwrap();
    for badge in ["Exposed", "Active", "Expires soon"] {
        assert!(row.contains(badge), "{badge} in {row}");
    }
    let row = b
        .find(&format!(
            "tr[data-key-id='{}']",
            disabled["id"].as_str().unwrap()
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("Disabled") && row.contains("test"), "{row}");
    let row = b
        .find(&format!(
            "tr[data-key-id='{}']",
            rotated["id"].as_str().unwrap()
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("Stops in 1 day"), "{row}");

    let fits = "const w = window.innerWidth; \
        const wrap = document.querySelector('.table-wrap'); \
        const cells = [...document.querySelectorAll('.keys-table th, .keys-table td')]; \
        return document.documentElement.scrollWidth <= w && wrap.scrollWidth <= wrap.clientWidth \
          && wrap.getBoundingClientRect().right <= w \
          && cells.every(c => c.getBoundingClientRect().right <= w + 0.5) \
          && [...document.querySelectorAll('.keys-table .row-actions summary')] \
               .every(s => s.getBoundingClientRect().right <= w);";
    for width in [1280, 1024] {
        b.viewport((width, 800)).await;
        let scroll = b
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        assert_eq!(
            b.js(fits).await,
            Value::Bool(true),
            "at {width} px every column is on the page (scroll width, viewport: {scroll})"
        );
    }
    b.shoot("keys-badges").await;
    b.stop().await;
}

#[tokio::test]
async fn reloading_after_a_create_or_a_rotation_creates_nothing_and_shows_no_secret() {
    let app = spawn_app().await;
    let b = signed_in_owner(&app, "reload").await;
    let before = listed(&app).await.len();
    b.click(".page-actions button[data-open='create-key']")
        .await;
    b.until_open("create-key").await;
    b.fill("#create-name", "Reloaded").await;
    b.click("#create-key button[type=submit]").await;
    b.until_open("key-created").await;
    let secret = b.value("#new-key").await;
    assert!(secret.starts_with("kw_live_"), "{secret}");
    let id = format!("key_{}", &secret[8..20]);
    assert_eq!(listed(&app).await.len(), before + 1);

    // The browser's reload, with the dialog still open.
    b.client.refresh().await.expect("reload");
    b.until_text("was shown once and is not shown again").await;
    assert!(!b.has("#key-created").await);
    assert!(!b.client.source().await.unwrap().contains(&secret));
    assert_eq!(listed(&app).await.len(), before + 1, "no second key");
    b.shoot("create-reloaded").await;

    // Rotate from the key's page, then reload the page it leads to.
    b.go(&format!("/keys/{id}?dialog=rotate")).await;
    b.until_open("rotate-key").await;
    b.click("#rotate-key button[type=submit]").await;
    b.until_open("key-created").await;
    let rotated = b.value("#new-key").await;
    assert!(rotated.starts_with("kw_live_") && rotated != secret);
    let new_id = format!("key_{}", &rotated[8..20]);
    assert_eq!(b.path().await, format!("/keys/{new_id}"));
    b.client.refresh().await.expect("reload");
    b.until_text("was shown once and is not shown again").await;
    assert!(!b.client.source().await.unwrap().contains(&rotated));
    assert_eq!(
        listed(&app).await.len(),
        before + 2,
        "one rotation, one new key"
    );
    let new = app.get(&format!("/v1/keys/{new_id}")).await;
    assert_eq!(
        new.body["replaced_by"],
        Value::Null,
        "the new key was not rotated again"
    );
    b.shoot("rotate-reloaded").await;

    // The old key's rotation sent again (a form kept from before): the key's page says why not.
    b.js(&format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/keys/{id}/rotate'; \
         const c = document.createElement('input'); c.name = 'csrf'; \
         c.value = document.querySelector('meta[name=csrf-token]').content; f.append(c); \
         document.body.append(f); f.submit();"
    ))
    .await;
    b.until_text("Nothing was changed.").await;
    assert!(b.text().await.contains("This key was already rotated"));
    assert!(b.has(&format!("a[href='/keys/{new_id}']")).await);
    b.shoot("rotate-refused").await;
    assert_eq!(listed(&app).await.len(), before + 2);
    b.stop().await;
}

#[tokio::test]
async fn search_finds_a_key_by_name_and_by_prefix() {
    let app = spawn_app().await;
    let mut made = Vec::new();
    for name in [
        "Nightly export",
        "Mobile app",
        "Partner: Acme",
        "Nightly backup",
    ] {
        made.push(app.create_key(json!({"name": name})).await);
    }
    let b = signed_in_owner(&app, "search").await;
    let rows = || async {
        let mut names: Vec<String> = Vec::new();
        for row in b
            .client
            .find_all(Locator::Css(".keys-table tbody tr .key-name"))
            .await
            .unwrap()
        {
            names.push(row.text().await.unwrap());
        }
        names.sort();
        names
    };
    b.fill("#filter-q", "nightly").await;
    b.click("form[role=search] button[type=submit]").await;
    b.until_text("2 keys").await;
    assert_eq!(rows().await, ["Nightly backup", "Nightly export"]);
    b.shoot("keys-search").await;

    // The masked prefix as the page shows it, copied with its dots.
    let mobile = &made[1];
    let prefix = format!("{}••••", mobile["prefix"].as_str().unwrap());
    b.fill("#filter-q", &prefix).await;
    b.click("form[role=search] button[type=submit]").await;
    b.until_text("1 key").await;
    assert_eq!(rows().await, ["Mobile app"]);
    // And by its id.
    b.fill("#filter-q", mobile["id"].as_str().unwrap()).await;
    b.click("form[role=search] button[type=submit]").await;
    b.until_text("1 key").await;
    assert_eq!(rows().await, ["Mobile app"]);
    // A whole key pasted by mistake searches by its prefix and never reaches the address.
    b.fill("#filter-q", made[2]["key"].as_str().unwrap()).await;
    b.click("form[role=search] button[type=submit]").await;
    b.until_text("1 key").await;
    assert_eq!(rows().await, ["Partner: Acme"]);
    assert_eq!(
        app.get(&format!("/v1/keys/{}", made[2]["id"].as_str().unwrap()))
            .await
            .body["exposed_at"],
        Value::Null
    );
    b.fill("#filter-q", "no such key").await;
    b.click("form[role=search] button[type=submit]").await;
    b.until_text("No keys match").await;
    b.shoot("keys-search-empty").await;
    b.stop().await;
}

#[tokio::test]
async fn bulk_revoke_revokes_exactly_the_selected_keys_after_one_confirmation() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["Alpha", "Bravo", "Charlie", "Delta"] {
        ids.push(
            app.create_key(json!({"name": name})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let b = signed_in_owner(&app, "bulk").await;
    let bulk = "button[data-bulk-open='bulk-revoke']";
    assert_eq!(
        b.find(bulk)
            .await
            .prop("disabled")
            .await
            .unwrap()
            .as_deref(),
        Some("true"),
        "nothing selected yet"
    );
    for id in [&ids[1], &ids[3]] {
        b.click(&format!("tr[data-key-id='{id}'] input[data-bulk-item]"))
            .await;
    }
    b.until_text("2 selected").await;
    b.shoot("keys-selected").await;
    b.click(bulk).await;
    b.until_open("bulk-revoke").await;
    let confirm = b.find("#bulk-revoke").await.text().await.unwrap();
    assert!(confirm.contains("Revoke 2 keys"), "{confirm}");
    assert!(
        confirm.contains("Bravo") && confirm.contains("Delta") && !confirm.contains("Alpha"),
        "{confirm}"
    );
    b.fill("#bulk-reason", "rotation drill").await;
    b.shoot("bulk-revoke").await;
    b.click("#bulk-revoke button[type=submit]").await;
    b.until_text("Revoked 2 keys.").await;
    let mut statuses = listed(&app).await;
    statuses.retain(|(n, _)| ["Alpha", "Bravo", "Charlie", "Delta"].contains(&n.as_str()));
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("Alpha".into(), "active".into()),
            ("Bravo".into(), "revoked".into()),
            ("Charlie".into(), "active".into()),
            ("Delta".into(), "revoked".into()),
        ]
    );
    // Select all, on this page, leaves out what cannot be revoked any more.
    b.click("input[data-bulk-all]").await;
    b.until_text("selected").await;
    let selected = b
        .js("return document.querySelectorAll('[data-bulk-item]:checked').length")
        .await;
    let revocable = b
        .js("return document.querySelectorAll('[data-bulk-item]').length")
        .await;
    assert_eq!(selected, revocable);
    assert!(
        !b.has(&format!(
            "tr[data-key-id='{}'] input[data-bulk-item]",
            ids[1]
        ))
        .await,
        "a revoked key is not offered"
    );
    b.find("#filter-status")
        .await
        .select_by_value("revoked")
        .await
        .unwrap();
    b.until_text("2 keys").await;
    b.shoot("keys-revoked").await;
    // Without the script, a selection is confirmed on a page of its own.
    b.go(&format!("/keys/revoke?id={}&id={}", ids[0], ids[2]))
        .await;
    b.until_text("Revoke 2 keys?").await;
    b.shoot("bulk-revoke-page").await;
    b.stop().await;
}

#[tokio::test]
async fn security_events_are_listed_with_badges_filtered_by_type_and_key_paged_and_linked_to_keys()
{
    let app = spawn_app().await;
    // 26 keys seen in URLs (one more than a page) and a burst of refused keys.
    let mut exposed = Vec::new();
    for i in 0..26 {
        let k = app
            .create_key(json!({"name": format!("Leaked integration {i}")}))
            .await;
        let secret = k["key"].as_str().unwrap();
        app.get(&format!("/v1/keys?token={secret}"))
            .await
            .assert_status(400);
        exposed.push((
            k["id"].as_str().unwrap().to_owned(),
            k["prefix"].as_str().unwrap().to_owned(),
        ));
    }
    for _ in 0..20 {
        app.verify("kw_live_000000000000", json!({"ip": "198.51.100.7"}))
            .await;
    }
    let started = std::time::Instant::now();
    while app.get("/v1/security-events?type=auth_failures").await.body["data"]
        .as_array()
        .is_none_or(|d| d.is_empty())
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let b = signed_in_owner(&app, "security-events").await;
    b.click("nav a[href='/security-events']").await;
    b.until_text("20 refused keys from 198.51.100.7").await;
    assert_eq!(b.path().await, "/security-events");
    assert!(
        b.has("a[aria-current='page'][href='/security-events']")
            .await
    );
    assert!(b.has(".events-table .badge.danger").await);
    let rows = b
        .client
        .find_all(Locator::Css(".events-table tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 25, "a page of 25");
    b.shoot("list").await;

    // The next page holds the oldest exposed key.
    b.click(".pager a[href*='cursor=']").await;
    b.until_text(&exposed[0].1).await;
    let rows = b
        .client
        .find_all(Locator::Css(".events-table tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);

    // Filtered by type (the select submits itself).
    b.go("/security-events").await;
    b.find("#events-type").await;
    b.js(
        "const s = document.getElementById('events-type'); s.value = 'auth_failures'; \
          s.dispatchEvent(new Event('change', {bubbles: true}));",
    )
    .await;
    b.until(
        "the list filtered by type",
        "return location.search.includes('type=auth_failures') && \
         document.querySelectorAll('.events-table tbody tr').length === 1",
    )
    .await;
    assert!(b.text().await.contains("198.51.100.7"));
    b.shoot("by-type").await;

    // Filtered by key, and linked to it.
    let (id, prefix) = exposed[3].clone();
    b.go("/security-events").await;
    b.fill("#events-key", &id).await;
    b.click(".filters button[type=submit]").await;
    b.until(
        "the list filtered by key",
        "return document.querySelectorAll('.events-table tbody tr').length === 1",
    )
    .await;
    assert!(b.text().await.contains(&prefix));
    assert!(b.has(".events-table .badge.danger").await, "critical");
    b.click(&format!(".events-table a[href='/keys/{id}']"))
        .await;
    b.until_text("Leaked integration 3").await;
    assert_eq!(b.path().await, format!("/keys/{id}"));

    // An unknown key says so.
    b.go("/security-events?key=key_000000000000").await;
    b.until_text("There is no key with this id in your organization.")
        .await;
    b.shoot("unknown-key").await;
    b.stop().await;
}
