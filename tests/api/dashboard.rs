//! Dashboard sign-in over plain HTTP: setup links, sessions, CSRF, throttling, and the JSON API
//! used with a session cookie.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{Db, Options, TestApp, spawn_app, spawn_app_on, spawn_with};

const PASSWORD: &str = "correct horse battery staple";

/// An HTTP answer of the dashboard.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| {
            c[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    cookies: &str,
    form: Option<&[(&str, &str)]>,
) -> Page {
    let mut req = app.http.request(method, app.url(path));
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    if let Some(f) = form {
        req = req.form(f);
    }
    let res = req.send().await.expect("the server answers");
    Page {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

async fn get(app: &TestApp, path: &str, cookies: &str) -> Page {
    request(app, Method::GET, path, cookies, None).await
}

/// The page a 303 leads to, with the notice it left for it.
async fn follow(app: &TestApp, redirect: &Page, cookies: &str) -> Page {
    assert_eq!(redirect.status, 303, "{}", redirect.text);
    let cookies = match redirect.cookie("keyward_flash") {
        Some(flash) => format!("{cookies}; keyward_flash={flash}"),
        None => cookies.to_owned(),
    };
    get(app, redirect.location(), &cookies).await
}

/// The secret a page shows once (in the dialog of a new key).
fn secret_in(html: &str) -> &str {
    let start = html.find("id=\"new-key\"").expect("the new key's dialog");
    let secret_start = html[start..].find("kw_live_").unwrap() + start;
    &html[secret_start..secret_start + 76]
}

async fn post(app: &TestApp, path: &str, cookies: &str, form: &[(&str, &str)]) -> Page {
    request(app, Method::POST, path, cookies, Some(form)).await
}

/// The CSRF token of pages shown before sign-in (a double-submit cookie).
async fn pre_session_csrf(app: &TestApp) -> String {
    get(app, "/sign-in", "")
        .await
        .cookie("keyward_csrf")
        .expect("the sign-in page sets a CSRF cookie")
}

/// A signed-in session: its cookie header and its CSRF token.
struct Session {
    token: String,
    csrf: String,
}

impl Session {
    fn cookie(&self) -> String {
        format!("keyward_session={}", self.token)
    }
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker).expect("a csrf meta tag") + marker.len();
    html[start..start + 64].to_owned()
}

async fn session_of(app: &TestApp, signed_in: &Page) -> Session {
    let token = signed_in
        .cookie("keyward_session")
        .expect("a session cookie");
    let page = get(app, "/keys", &format!("keyward_session={token}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    Session {
        csrf: csrf_in(&page.text),
        token,
    }
}

fn setup_path(app: &TestApp) -> String {
    app.setup_url[app.setup_url.find("/setup/").unwrap()..].to_owned()
}

/// Uses the first start's setup link: the owner becomes `owner@example.com`.
async fn set_up_owner(app: &TestApp) -> Page {
    let csrf = pre_session_csrf(app).await;
    post(
        app,
        &setup_path(app),
        &format!("keyward_csrf={csrf}"),
        &[
            ("csrf", &csrf),
            ("email", "Owner@Example.com"),
            ("name", "Olivia"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ],
    )
    .await
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Page {
    let csrf = pre_session_csrf(app).await;
    post(
        app,
        "/sign-in",
        &format!("keyward_csrf={csrf}"),
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// The text of the error element of the field `id` in a page.
fn field_error(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}-error\" role=\"alert\">"))
        .unwrap_or_else(|| panic!("no error element {id}"));
    let text = &html[at..];
    let start = text.find('>').unwrap() + 1;
    let end = text.find('<').unwrap();
    text[start..end].to_owned()
}

async fn audit_actions(app: &TestApp) -> Vec<Value> {
    app.get("/v1/audit-log?limit=100").await.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_setup_link_sets_the_owners_email_and_password_once_and_signs_them_in() {
    let app = spawn_app().await;
    let path = setup_path(&app);
    let page = get(&app, &path, "").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Set up your account"));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let csrf = page.cookie("keyward_csrf").unwrap();
    let cookie = format!("keyward_csrf={csrf}");

    let no_csrf = post(&app, &path, &cookie, &[("email", "a@example.com")]).await;
    assert_eq!(
        no_csrf.status, 403,
        "a form without its CSRF token is refused"
    );
    let mismatch = post(
        &app,
        &path,
        &cookie,
        &[
            ("csrf", &csrf),
            ("email", "not an email"),
            ("password", PASSWORD),
            ("password_confirmation", "something else"),
        ],
    )
    .await;
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.text.contains("Must be an email address"));
    assert!(mismatch.text.contains("Does not match the password"));

    let done = set_up_owner(&app).await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/keys");
    let set = done.set_cookie("keyward_session").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http: no Secure flag");
    let token = done.cookie("keyward_session").unwrap();
    assert_eq!(token.len(), 64);

    let again = get(&app, &path, "").await;
    assert_eq!(again.status, 404, "the link works once");
    assert!(again.text.contains("expired or was already used"));
    assert_eq!(
        sign_in(&app, "owner@example.com", PASSWORD).await.status,
        303
    );

    // Only a digest of the session token is stored.
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        app.dir.path().join("keyward.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(!stored.contains(&token));
    assert!(stored.contains(&hex::encode(sha2::Sha256::digest(token.as_bytes()))));

    let actions: Vec<String> = audit_actions(&app)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(actions.contains(&"user.password_set".to_owned()));
    assert!(actions.contains(&"user.signed_in".to_owned()));
}

#[tokio::test]
async fn setup_links_expire_after_a_day() {
    let app = spawn_app().await;
    app.clock.advance(24 * 3600 * 1000 + 1);
    let page = get(&app, &setup_path(&app), "").await;
    assert_eq!(page.status, 404);
    assert_eq!(set_up_owner(&app).await.status, 404);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_email_with_a_clear_message_and_audited() {
    let app = spawn_app().await;
    assert_eq!(set_up_owner(&app).await.status, 303);
    let unknown = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.text.contains("The email or password is incorrect."));
    for _ in 0..5 {
        let wrong = sign_in(&app, "owner@example.com", "wrong password!").await;
        assert_eq!(wrong.status, 401);
        assert!(wrong.text.contains("The email or password is incorrect."));
    }
    let throttled = sign_in(&app, "owner@example.com", PASSWORD).await;
    assert_eq!(throttled.status, 429, "even the right password waits");
    assert!(
        throttled
            .text
            .contains("Too many failed sign-ins. Try again in 15 minute(s)."),
        "{}",
        throttled.text
    );
    assert!(throttled.headers.contains_key("retry-after"));
    assert!(throttled.cookie("keyward_session").is_none());

    let failed: Vec<Value> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "user.sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0]["details"]["reason"], "wrong password");
    assert_eq!(failed[0]["actor"]["label"], "owner@example.com");
    assert!(!failed[0].to_string().contains("wrong password!"));

    app.clock.advance(15 * 60 * 1000);
    assert_eq!(
        sign_in(&app, "owner@example.com", PASSWORD).await.status,
        303
    );
}

#[tokio::test]
async fn the_json_api_takes_a_session_cookie_and_needs_the_csrf_header_to_change_anything() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let call = |method: Method, path: &'static str, csrf: Option<String>, body: Option<Value>| {
        let mut req = app
            .http
            .request(method, app.url(path))
            .header("cookie", s.cookie());
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, list) = call(Method::GET, "/v1/keys", None, None).await;
    assert_eq!(status, 200, "{list}");
    let body = json!({"name": "from the dashboard's script"});
    let (status, refused) = call(Method::POST, "/v1/keys", None, Some(body.clone())).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = call(
        Method::POST,
        "/v1/keys",
        Some("0".repeat(64)),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, created) = call(Method::POST, "/v1/keys", Some(s.csrf.clone()), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    // A signed-in member can verify a key too (the same endpoint backends call with a key).
    let check = json!({"key": created["key"]});
    let (status, verdict) = call(
        Method::POST,
        "/v1/keys/verify",
        Some(s.csrf.clone()),
        Some(check),
    )
    .await;
    assert_eq!((status, verdict["code"].as_str()), (200, Some("VALID")));
    let event = audit_actions(&app)
        .await
        .into_iter()
        .find(|e| e["action"] == "key.created")
        .unwrap();
    assert_eq!(event["actor"]["kind"], "user");
    assert_eq!(event["actor"]["label"], "owner@example.com");

    // Signing out ends the session everywhere.
    let out = post(&app, "/sign-out", &s.cookie(), &[("csrf", &s.csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(
        out.set_cookie("keyward_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, after) = call(Method::GET, "/v1/keys", None, None).await;
    assert_eq!(
        (status, after["code"].as_str()),
        (401, Some("missing_credentials"))
    );
    let page = get(&app, "/keys?status=active", &s.cookie()).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/sign-in?next=%2Fkeys%3Fstatus%3Dactive");
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let app = spawn_with(Options {
        public_url: Some("https://keys.example.com".into()),
        ..Default::default()
    })
    .await;
    assert!(app.setup_url.starts_with("https://keys.example.com/setup/"));
    let page = get(&app, "/sign-in", "").await;
    assert!(
        page.set_cookie("keyward_csrf")
            .unwrap()
            .ends_with("; Secure")
    );
    let done = set_up_owner(&app).await;
    assert_eq!(done.status, 303, "{}", done.text);
    let set = done.set_cookie("keyward_session").unwrap();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
}

#[tokio::test]
async fn dashboard_forms_need_the_csrf_token_and_show_each_error_next_to_its_field() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let cookie = s.cookie();
    let api = format!("type:{}", app.default_api_id);
    let refused = post(&app, "/keys", &cookie, &[("name", "x")]).await;
    assert_eq!(refused.status, 403);
    let wrong = post(
        &app,
        "/keys",
        &cookie,
        &[("csrf", &"a".repeat(64)), ("name", "x")],
    )
    .await;
    assert_eq!(wrong.status, 403);

    let invalid = post(
        &app,
        "/keys",
        &cookie,
        &[
            ("csrf", &s.csrf),
            ("name", "Nightly"),
            (&api, "batch"),
            ("expires", "1y"),
            ("ip_allowlist", "10.0.0.0/8\nnope"),
            ("rate_requests", "0"),
            ("rate_per", "60"),
        ],
    )
    .await;
    assert_eq!(invalid.status, 422);
    let html = &invalid.text;
    let ip_error = html
        .find("id=\"create-ip-error\"")
        .expect("the allowlist's error");
    assert!(
        html[ip_error..].starts_with(
            "id=\"create-ip-error\" role=\"alert\">Entry 2: must be an IPv4 or IPv6 address or CIDR block"
        ),
        "{}",
        &html[ip_error..ip_error + 200]
    );
    assert!(html.contains("id=\"create-rate-error\" role=\"alert\">Must be between 1 and 1000000"));
    assert!(
        html.contains("data-autoopen=\"true\""),
        "the dialog opens again"
    );
    assert!(html.contains("Nightly"), "what was typed is kept");

    let created = post(
        &app,
        "/keys",
        &cookie,
        &[
            ("csrf", &s.csrf),
            ("name", "Nightly"),
            (&api, "batch"),
            ("expires", "1y"),
            ("ip_allowlist", "10.0.0.0/8"),
        ],
    )
    .await;
    let created = follow(&app, &created, &cookie).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let keys = app.get("/v1/keys").await.assert_status(200).clone();
    let key = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Nightly")
        .unwrap()
        .clone();
    assert_eq!(key["type"], "batch");
    assert_eq!(key["ip_allowlist"], json!(["10.0.0.0/8"]));
    let secret = secret_in(&created.text);
    assert_eq!(
        app.verify(secret, json!({"ip": "10.1.2.3", "token_type": "batch"}))
            .await["code"],
        "VALID"
    );
    let listed = get(&app, "/keys", &cookie).await;
    assert!(
        !listed.text.contains(secret),
        "the list shows only the masked key"
    );
    assert!(
        listed
            .text
            .contains(&format!("{}••••", key["prefix"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn the_dashboard_sets_a_keys_quota_and_metadata_and_keeps_what_was_typed_when_wrong() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let cookie = s.cookie();
    let form = |quota: &'static str,
                refill: &'static str,
                amount: &'static str,
                metadata: &'static str| {
        vec![
            ("csrf", s.csrf.clone()),
            ("name", "Metered".to_owned()),
            ("expires", "1y".to_owned()),
            ("quota_remaining", quota.to_owned()),
            ("quota_refill", refill.to_owned()),
            ("quota_refill_amount", amount.to_owned()),
            ("metadata", metadata.to_owned()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, "/keys", &cookie, &fields).await
        }
    };

    // Bad input: each error next to its field, and what was typed kept.
    let wrong = send(form("lots", "", "", "[1, 2]")).await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert_eq!(
        field_error(&wrong.text, "create-quota"),
        "The number of uses must be a whole number"
    );
    assert_eq!(
        field_error(&wrong.text, "create-metadata"),
        "Must be a JSON object, such as {&quot;customer&quot;: &quot;acme&quot;}"
    );
    assert!(
        wrong.text.contains("value=\"lots\""),
        "the quota typed is kept"
    );
    assert!(
        wrong.text.contains(">[1, 2]</textarea>"),
        "the metadata typed is kept"
    );
    let refill_alone = send(form("", "daily", "", "")).await;
    assert_eq!(refill_alone.status, 422);
    assert_eq!(
        field_error(&refill_alone.text, "create-quota"),
        "Set the number of uses to refill, or choose no refill"
    );
    let not_json = send(form("", "", "", "{customer: acme}")).await;
    assert_eq!(not_json.status, 422);
    assert!(
        field_error(&not_json.text, "create-metadata").starts_with("Is not valid JSON"),
        "{}",
        field_error(&not_json.text, "create-metadata")
    );
    let negative = send(form("-1", "", "", "")).await;
    assert_eq!(negative.status, 422);
    assert_eq!(
        field_error(&negative.text, "create-quota"),
        "Must be between 0 and 1000000000000"
    );
    let keys = app.get("/v1/keys").await.assert_status(200).clone();
    assert!(
        !keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "Metered"),
        "nothing was created by a refused form"
    );

    // A quota of 2 refilled monthly to 5, and metadata.
    let created = send(form(
        "2",
        "monthly",
        "5",
        "{\"customer\": \"acme\", \"tier\": 2}",
    ))
    .await;
    let created = follow(&app, &created, &cookie).await;
    let keys = app.get("/v1/keys").await.assert_status(200).clone();
    let key = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Metered")
        .unwrap()
        .clone();
    assert_eq!(
        key["quota"],
        json!({"remaining": 2, "refill": {"interval": "monthly", "amount": 5}})
    );
    assert_eq!(key["metadata"], json!({"customer": "acme", "tier": 2}));
    let secret = secret_in(&created.text);
    for _ in 0..2 {
        let verdict = app.verify(secret, json!({})).await;
        assert_eq!(verdict["code"], "VALID");
        assert_eq!(verdict["key"]["metadata"]["customer"], "acme");
    }
    assert_eq!(
        app.verify(secret, json!({})).await["code"],
        "QUOTA_EXCEEDED"
    );
    let page = get(
        &app,
        &format!("/keys/{}", key["id"].as_str().unwrap()),
        &cookie,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("0 uses left, refilled monthly to 5"),
        "{}",
        page.text
    );
    assert!(page.text.contains("&quot;customer&quot;: &quot;acme&quot;"));

    // The metadata is edited on the key's page; an empty field clears it.
    let id = key["id"].as_str().unwrap();
    let edit = |metadata: &'static str| {
        let app = &app;
        let cookie = cookie.clone();
        let csrf = s.csrf.clone();
        async move {
            let fields = [
                ("csrf", csrf.as_str()),
                ("name", "Metered"),
                ("enabled", "true"),
                ("metadata", metadata),
            ];
            post(app, &format!("/keys/{id}/edit"), &cookie, &fields).await
        }
    };
    let metadata_of = || async {
        app.get(&format!("/v1/keys/{id}")).await.assert_status(200)["metadata"].clone()
    };
    let refused = edit("\"globex\"").await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        field_error(&refused.text, "edit-metadata"),
        "Must be a JSON object, such as {&quot;customer&quot;: &quot;acme&quot;}"
    );
    assert!(refused.text.contains(">&quot;globex&quot;</textarea>"));
    assert_eq!(metadata_of().await, json!({"customer": "acme", "tier": 2}));
    assert_eq!(edit("{\"customer\": \"globex\"}").await.status, 303);
    assert_eq!(metadata_of().await, json!({"customer": "globex"}));
    assert_eq!(edit("  ").await.status, 303);
    assert_eq!(metadata_of().await, json!({}));

    // With a refill but no amount, it refills to the uses allowed.
    let defaulted = send(form("7", "daily", "", "")).await;
    assert_eq!(defaulted.status, 303, "{}", defaulted.text);
    let keys = app.get("/v1/keys").await.assert_status(200).clone();
    let quotas: Vec<Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "Metered")
        .map(|k| k["quota"].clone())
        .collect();
    assert!(
        quotas.contains(&json!({"remaining": 7, "refill": {"interval": "daily", "amount": 7}})),
        "{quotas:?}"
    );
}

#[tokio::test]
async fn apis_are_created_and_edited_in_the_dashboard_with_each_error_at_its_field() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let cookie = s.cookie();
    let page = get(&app, "/apis", &cookie).await;
    assert!(page.text.contains("data-open=\"create-api\""));
    assert_eq!(
        page.text.matches("<dialog id=\"edit-api-").count(),
        1,
        "the default API is editable, the built-in management API is not"
    );
    let form = |fields: &[(&'static str, &'static str)]| {
        let mut all = vec![("csrf", s.csrf.clone())];
        all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        all
    };
    let send = |path: String, fields: Vec<(&'static str, String)>| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, &path, &cookie, &fields).await
        }
    };
    let apis = || async { app.get("/v1/apis").await.assert_status(200)["data"].clone() };
    let count = apis().await.as_array().unwrap().len();

    let wrong = send(
        "/apis".into(),
        form(&[
            ("name", "Transcription"),
            ("slug", "Bad Slug"),
            ("key_prefix.live", "TK"),
            ("key_prefix.test", "tk_test_"),
            ("token_types", "standard"),
            ("rate_requests", "0"),
            ("rate_per", "60"),
            ("scope_name", "transcripts:read"),
            ("scope_description", "Read transcripts"),
            ("scope_name", "Bad Scope"),
            ("scope_description", ""),
        ]),
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert!(field_error(&wrong.text, "create-api-slug").starts_with("Lowercase letters"));
    assert!(!field_error(&wrong.text, "create-api-live").is_empty());
    assert!(
        wrong
            .text
            .contains("id=\"create-api-test-error\" role=\"alert\" hidden>"),
        "a right field shows no error"
    );
    assert_eq!(
        field_error(&wrong.text, "create-api-rate"),
        "Must be between 1 and 1000000"
    );
    assert!(
        !field_error(&wrong.text, "create-api-scopes-1").is_empty(),
        "the second scope's row says what is wrong with it"
    );
    assert!(
        wrong
            .text
            .contains("id=\"create-api-scopes-0-error\" role=\"alert\" hidden>")
    );
    assert!(
        wrong.text.contains("value=\"Bad Slug\""),
        "what was typed is kept"
    );
    assert!(
        wrong.text.contains("data-autoopen=\"true\""),
        "the dialog opens again"
    );
    assert_eq!(
        apis().await.as_array().unwrap().len(),
        count,
        "nothing created"
    );

    let fields = form(&[
        ("name", "Transcription"),
        ("slug", "transcription"),
        ("key_prefix.live", "tk_live_"),
        ("key_prefix.test", "tk_test_"),
        ("token_types", "standard"),
        ("token_types", "batch"),
        ("accept_x_api_key", "true"),
        ("rate_requests", "100"),
        ("rate_per", "60"),
        ("scope_name", "transcripts:read"),
        ("scope_description", "Read transcripts"),
        ("scope_name", ""),
        ("scope_description", ""),
        ("scope_name", "transcripts:write"),
        ("scope_description", "Upload audio"),
    ]);
    let created = send("/apis".into(), fields.clone()).await;
    assert_eq!(created.status, 303, "{}", created.text);
    assert_eq!(created.location(), "/apis");
    let api = apis()
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "transcription")
        .unwrap()
        .clone();
    assert_eq!(api["name"], "Transcription");
    assert_eq!(
        api["key_prefix"],
        json!({"live": "tk_live_", "test": "tk_test_"})
    );
    assert_eq!(api["token_types"], json!(["standard", "batch"]));
    assert_eq!(api["accept_x_api_key"], true);
    assert_eq!(
        api["default_rate_limit"],
        json!({"requests": 100, "per_seconds": 60})
    );
    assert_eq!(
        api["scopes"],
        json!([
            {"name": "transcripts:read", "description": "Read transcripts"},
            {"name": "transcripts:write", "description": "Upload audio"}
        ])
    );
    let id = api["id"].as_str().unwrap().to_owned();
    let key = app
        .create_key(json!({"name": "t", "api_id": id, "scopes": ["transcripts:read"]}))
        .await;
    assert!(key["key"].as_str().unwrap().starts_with("tk_live_"));

    let again = send("/apis".into(), fields).await;
    assert_eq!(again.status, 422);
    assert_eq!(
        field_error(&again.text, "create-api-slug"),
        "An API with the slug 'transcription' already exists."
    );

    // Editing: what changed is saved (and audited), the rest stays.
    let edit_path = format!("/apis/{id}/edit");
    let bad_types = send(
        edit_path.clone(),
        form(&[
            ("name", "Transcription"),
            ("key_prefix.live", "tk_live_"),
            ("key_prefix.test", "tk_test_"),
            ("token_types", "standard"),
            ("token_types_other", "Big Batch"),
            ("scope_name", "transcripts:read"),
            ("scope_description", "Read transcripts"),
        ]),
    )
    .await;
    assert_eq!(bad_types.status, 422);
    assert!(!field_error(&bad_types.text, &format!("edit-api-{id}-types")).is_empty());
    assert!(bad_types.text.contains("value=\"Big, Batch\""));
    let saved = send(
        edit_path,
        form(&[
            ("name", "Transcripts"),
            ("key_prefix.live", "tk_live_"),
            ("key_prefix.test", "tk_test_"),
            ("token_types", "standard"),
            ("token_types", "batch"),
            ("accept_x_api_key", "true"),
            ("scope_name", "transcripts:read"),
            ("scope_description", "Read transcripts"),
        ]),
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let api = app
        .get(&format!("/v1/apis/{id}"))
        .await
        .assert_status(200)
        .clone();
    assert_eq!(api["name"], "Transcripts");
    assert_eq!(api["default_rate_limit"], Value::Null);
    assert_eq!(
        api["scopes"],
        json!([{"name": "transcripts:read", "description": "Read transcripts"}])
    );
    assert_eq!(api["token_types"], json!(["standard", "batch"]));
    let updated = audit_actions(&app)
        .await
        .into_iter()
        .find(|e| e["action"] == "api.updated")
        .unwrap();
    let mut fields: Vec<&str> = updated["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["default_rate_limit", "name", "scopes"],
        "only what changed"
    );

    // A developer may not change APIs: no button, and the server refuses.
    app.post(
        "/v1/users",
        json!({"email": "dev@example.com", "name": "Dev", "role": "developer", "password": PASSWORD}),
    )
    .await
    .assert_status(201);
    let dev = session_of(&app, &sign_in(&app, "dev@example.com", PASSWORD).await).await;
    let page = get(&app, "/apis", &dev.cookie()).await;
    assert!(!page.text.contains("create-api") && !page.text.contains("edit-api-"));
    let refused = post(
        &app,
        "/apis",
        &dev.cookie(),
        &[("csrf", &dev.csrf), ("name", "Mine"), ("slug", "mine")],
    )
    .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn pages_without_a_session_go_to_sign_in_and_a_disabled_members_session_ends() {
    let app = spawn_app().await;
    for path in ["/keys", "/audit", "/members", "/org", "/apis"] {
        let page = get(&app, path, "").await;
        assert_eq!(page.status, 303, "{path}");
        assert!(page.location().starts_with("/sign-in?next=%2F"), "{path}");
    }
    let created = app
        .post(
            "/v1/users",
            json!({"email": "dev@example.com", "name": "Dev", "role": "developer", "password": PASSWORD}),
        )
        .await
        .assert_status(201)
        .clone();
    let dev = session_of(&app, &sign_in(&app, "dev@example.com", PASSWORD).await).await;
    let page = get(&app, "/keys", &dev.cookie()).await;
    assert!(
        page.text.contains("data-open=\"create-key\""),
        "a developer may create"
    );
    let members = get(&app, "/members", &dev.cookie()).await;
    assert!(
        !members.text.contains("invite-member"),
        "but not invite members"
    );
    let org = get(&app, "/org", &dev.cookie()).await;
    assert!(
        !org.text.contains("edit-org"),
        "nor change the organization"
    );
    let refused = post(
        &app,
        "/org",
        &dev.cookie(),
        &[("csrf", &dev.csrf), ("name", "Mine")],
    )
    .await;
    assert_eq!(refused.status, 403, "and the server refuses it anyway");
    app.patch(
        &format!("/v1/users/{}", created["id"].as_str().unwrap()),
        json!({"status": "disabled"}),
    )
    .await
    .assert_status(200);
    assert_eq!(get(&app, "/keys", &dev.cookie()).await.status, 303);
    assert_eq!(sign_in(&app, "dev@example.com", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn setup_links_sessions_and_throttling_work_the_same_on_postgresql() {
    let app = spawn_app_on(Db::Postgres).await;
    assert_eq!(set_up_owner(&app).await.status, 303);
    assert_eq!(get(&app, &setup_path(&app), "").await.status, 404);
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, "owner@example.com", "wrong password!")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        sign_in(&app, "owner@example.com", PASSWORD).await.status,
        429
    );
    app.clock.advance(15 * 60 * 1000);
    let idle = session_of(&app, &sign_in(&app, "owner@example.com", PASSWORD).await).await;
    app.clock.advance(12 * 3600 * 1000);
    assert_eq!(
        get(&app, "/keys", &idle.cookie()).await.status,
        303,
        "12 hours without a request end a session"
    );
    let s = session_of(&app, &sign_in(&app, "owner@example.com", PASSWORD).await).await;
    let out = post(&app, "/sign-out", &s.cookie(), &[("csrf", &s.csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(get(&app, "/keys", &s.cookie()).await.status, 303);
}

/// The `<tr>` of key `id` in the list.
fn key_row<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-key-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row of {id}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

/// Which of a key page's buttons (and their dialogs) it shows.
fn key_page_actions(html: &str) -> Vec<&'static str> {
    ["edit-key", "rotate-key", "revoke-key", "delete-key"]
        .into_iter()
        .filter(|d| {
            let button = html.contains(&format!("data-open=\"{d}\""));
            let dialog = html.contains(&format!("<dialog id=\"{d}\""));
            assert_eq!(
                button, dialog,
                "{d}: a button without its dialog, or the reverse"
            );
            button
        })
        .collect()
}

#[tokio::test]
async fn a_developer_is_offered_changes_to_their_own_keys_only_and_no_second_rotation() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for email in ["dev@example.com", "other@example.com"] {
        let user = app
            .post(
                "/v1/users",
                json!({"email": email, "name": "Dev", "role": "developer", "password": PASSWORD}),
            )
            .await
            .assert_status(201)
            .clone();
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let key_of = |owner: &str, name: &str| {
        let body = json!({"name": name, "owner_id": owner});
        let app = &app;
        async move {
            app.create_key(body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let own = key_of(&ids[0], "Mine").await;
    let theirs = key_of(&ids[1], "Theirs").await;
    let dev = session_of(&app, &sign_in(&app, "dev@example.com", PASSWORD).await).await;
    let cookie = dev.cookie();

    let page = get(&app, &format!("/keys/{own}"), &cookie).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        key_page_actions(&page.text),
        ["edit-key", "rotate-key", "revoke-key", "delete-key"]
    );
    let page = get(&app, &format!("/keys/{theirs}"), &cookie).await;
    assert_eq!(page.status, 200, "a developer may read every key");
    assert!(key_page_actions(&page.text).is_empty(), "{}", page.text);
    let list = get(&app, "/keys", &cookie).await;
    for dialog in ["edit", "rotate", "revoke"] {
        let link = format!("?dialog={dialog}\"");
        assert!(key_row(&list.text, &own).contains(&link), "{dialog}");
        assert!(!key_row(&list.text, &theirs).contains(&link), "{dialog}");
    }
    assert!(!key_row(&list.text, &theirs).contains("data-open=\"delete-key\""));
    // What is not offered is refused anyway.
    let refused = post(
        &app,
        &format!("/keys/{theirs}/rotate"),
        &cookie,
        &[("csrf", &dev.csrf), ("grace_period_s", "0")],
    )
    .await;
    assert_eq!(refused.status, 403);

    // Rotated with a grace period, the old key still works and may be edited, revoked or deleted,
    // but not rotated again: its replacement is.
    let rotated = post(
        &app,
        &format!("/keys/{own}/rotate"),
        &cookie,
        &[("csrf", &dev.csrf), ("grace_period_s", "86400")],
    )
    .await;
    assert_eq!(rotated.status, 303, "{}", rotated.text);
    let page = get(&app, &format!("/keys/{own}"), &cookie).await;
    assert!(page.text.contains("Replaced by"));
    assert_eq!(
        key_page_actions(&page.text),
        ["edit-key", "revoke-key", "delete-key"]
    );
    let list = get(&app, "/keys", &cookie).await;
    let old_row = key_row(&list.text, &own);
    assert!(old_row.contains("?dialog=edit\"") && !old_row.contains("?dialog=rotate\""));
    let next = app.get(&format!("/v1/keys/{own}")).await.assert_status(200)["replaced_by"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key_row(&list.text, &next).contains("?dialog=rotate\""));
    let again = post(
        &app,
        &format!("/keys/{own}/rotate"),
        &cookie,
        &[("csrf", &dev.csrf), ("grace_period_s", "0")],
    )
    .await;
    assert_eq!(again.status, 409, "the server refuses what the page hides");
    assert!(again.text.contains("This key was already rotated"));
    // A page of the dashboard that says so, with the way on: the replacement.
    assert!(
        again.text.contains("Nothing was changed."),
        "{}",
        again.text
    );
    assert!(again.text.contains(&format!("href=\"/keys/{next}\"")));
    assert!(again.text.contains("class=\"sidebar\""));
}

/// The ids of the key rows of a list page, in order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("<tr data-key-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

/// A GET the way a browser sends it: asking for HTML.
async fn get_html(app: &TestApp, path: &str, cookies: &str) -> Page {
    let mut req = app
        .http
        .get(app.url(path))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    let res = req.send().await.expect("the server answers");
    Page {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

#[tokio::test]
async fn the_keys_list_searches_filters_sorts_and_pages_with_a_total_on_the_server() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let cookie = s.cookie();
    let mut batch = Vec::new();
    for i in 0..30 {
        let k = app
            .create_key(json!({"name": format!("Batch key {i:02}")}))
            .await;
        batch.push(k["id"].as_str().unwrap().to_owned());
        app.clock.advance(1000);
    }
    let sandbox = app
        .create_key(json!({"name": "Sandbox", "environment": "test"}))
        .await;
    let paused = app.create_key(json!({"name": "Paused"})).await;
    let paused_id = paused["id"].as_str().unwrap();
    app.patch(&format!("/v1/keys/{paused_id}"), json!({"enabled": false}))
        .await
        .assert_status(200);
    // 30 + 2, and the management key printed on the first start.
    let first = get(&app, "/keys?per_page=25", &cookie).await;
    assert_eq!(first.status, 200);
    assert!(first.text.contains("1–25 of 33 keys"), "{}", first.text);
    assert!(first.text.contains("Page 1 of 2"));
    assert_eq!(row_ids(&first.text).len(), 25);
    assert!(
        first
            .text
            .contains("href=\"/keys?per_page=25&amp;page=2\" rel=\"next\"")
    );
    let second = get(&app, "/keys?per_page=25&page=2", &cookie).await;
    assert!(second.text.contains("26–33 of 33 keys"));
    assert!(
        second
            .text
            .contains("href=\"/keys?per_page=25\" rel=\"prev\"")
    );
    let mut both = row_ids(&first.text);
    both.extend(row_ids(&second.text));
    both.sort();
    both.dedup();
    assert_eq!(both.len(), 33, "every key once, on one page or the other");
    let past = get(&app, "/keys?per_page=25&page=99", &cookie).await;
    assert_eq!(
        row_ids(&past.text),
        row_ids(&second.text),
        "past the end: the last page"
    );

    // Search by name (any case), by prefix, by id.
    let found = get(&app, "/keys?q=BATCH+KEY+0", &cookie).await;
    assert!(found.text.contains("10 keys"), "{}", found.text);
    let prefix = sandbox["prefix"].as_str().unwrap();
    let by_prefix = get(&app, &format!("/keys?q={prefix}"), &cookie).await;
    assert_eq!(row_ids(&by_prefix.text), [sandbox["id"].as_str().unwrap()]);
    let by_id = get(&app, &format!("/keys?q={}", batch[7]), &cookie).await;
    assert_eq!(row_ids(&by_id.text), [batch[7].clone()]);
    assert!(
        get(&app, "/keys?q=%25", &cookie)
            .await
            .text
            .contains("No keys match"),
        "% is looked for as a character, not a wildcard"
    );

    // The environment and the disabled status are filters of their own.
    let test = get(&app, "/keys?env=test", &cookie).await;
    assert_eq!(row_ids(&test.text), [sandbox["id"].as_str().unwrap()]);
    let disabled = get(&app, "/keys?status=disabled", &cookie).await;
    assert_eq!(row_ids(&disabled.text), [paused_id]);
    assert!(
        disabled
            .text
            .contains("<option value=\"disabled\" selected>Disabled</option>")
    );
    let active = get(&app, "/keys?status=active&per_page=100", &cookie).await;
    assert!(!row_ids(&active.text).contains(&paused_id.to_owned()));

    // Sorting: by a column of a fixed list, either way; anything else is the default order.
    let by_name = get(&app, "/keys?q=batch&sort=name", &cookie).await;
    assert_eq!(
        row_ids(&by_name.text)[..2],
        [batch[0].clone(), batch[1].clone()]
    );
    assert!(by_name.text.contains("aria-sort=\"ascending\""));
    let desc = get(&app, "/keys?q=batch&sort=name&dir=desc", &cookie).await;
    assert_eq!(row_ids(&desc.text)[0], batch[29]);
    assert!(desc.text.contains("aria-sort=\"descending\""));
    let newest = get(&app, "/keys?q=batch", &cookie).await;
    for hostile in [
        "name;DROP TABLE keys",
        "created_at DESC--",
        "1",
        "hash",
        "name%20desc",
    ] {
        let page = get(
            &app,
            &format!("/keys?q=batch&sort={hostile}&dir=sideways"),
            &cookie,
        )
        .await;
        assert_eq!(page.status, 200, "{hostile}");
        assert_eq!(
            row_ids(&page.text),
            row_ids(&newest.text),
            "{hostile}: the default order, newest first"
        );
    }
    assert_eq!(row_ids(&newest.text)[0], batch[29]);
    assert_eq!(
        app.get("/v1/keys?limit=100").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        33,
        "and every key is still there"
    );
}

#[tokio::test]
async fn bulk_revoke_revokes_every_key_named_or_none_and_a_developer_only_their_own() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for email in ["dev@example.com", "other@example.com"] {
        let user = app
            .post(
                "/v1/users",
                json!({"email": email, "name": "Dev", "role": "developer", "password": PASSWORD}),
            )
            .await
            .assert_status(201)
            .clone();
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let key_of = |owner: &str, name: &str| {
        let body = json!({"name": name, "owner_id": owner});
        let app = &app;
        async move {
            app.create_key(body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let mine = key_of(&ids[0], "Mine").await;
    let mine_too = key_of(&ids[0], "Mine too").await;
    let theirs = key_of(&ids[1], "Theirs").await;
    let status = |id: String| {
        let app = &app;
        async move {
            app.get(&format!("/v1/keys/{id}")).await.body["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let dev = session_of(&app, &sign_in(&app, "dev@example.com", PASSWORD).await).await;
    let cookie = dev.cookie();

    // The list offers to select only what the developer may revoke.
    let list = get(&app, "/keys", &cookie).await;
    assert!(key_row(&list.text, &mine).contains("data-bulk-item"));
    assert!(!key_row(&list.text, &theirs).contains("data-bulk-item"));

    // Someone else's key among the selection: refused, and nothing is revoked.
    let refused = post(
        &app,
        "/keys/revoke",
        &cookie,
        &[
            ("csrf", &dev.csrf),
            ("id", &mine),
            ("id", &theirs),
            ("return", "/keys"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused
            .text
            .contains("None of the selected keys was revoked.")
    );
    assert_eq!(status(mine.clone()).await, "active");
    assert_eq!(status(theirs.clone()).await, "active");
    // An unknown key: nothing either.
    let unknown = post(
        &app,
        "/keys/revoke",
        &cookie,
        &[
            ("csrf", &dev.csrf),
            ("id", &mine),
            ("id", "key_000000000000"),
        ],
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(status(mine.clone()).await, "active");
    // Without the CSRF token: refused.
    let forged = post(&app, "/keys/revoke", &cookie, &[("id", &mine)]).await;
    assert_eq!(forged.status, 403);

    // The confirmation without the script names the keys and how many.
    let confirm = get(
        &app,
        &format!("/keys/revoke?id={mine}&id={mine_too}&return=%2Fkeys%3Fq%3Dmine"),
        &cookie,
    )
    .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.text.contains("Revoke 2 keys?"));
    assert!(confirm.text.contains("Mine too"));

    // Their own keys: revoked, each with its own audit event, and back to the list they were on.
    let done = post(
        &app,
        "/keys/revoke",
        &cookie,
        &[
            ("csrf", &dev.csrf),
            ("id", &mine),
            ("id", &mine_too),
            ("reason", "drill"),
            ("return", "/keys?q=mine"),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/keys?q=mine");
    assert_eq!(status(mine.clone()).await, "revoked");
    assert_eq!(status(mine_too.clone()).await, "revoked");
    assert_eq!(status(theirs.clone()).await, "active");
    let events = app.get("/v1/audit-log?action=key.revoked").await;
    let events = events.body["data"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!(e["details"]["reason"], "drill");
        assert_eq!(e["details"]["revoked_together"], 2);
        assert_eq!(e["actor"]["label"], "dev@example.com");
    }
    let notice = follow(&app, &done, &cookie).await;
    assert!(notice.text.contains("Revoked 2 keys."));
    // Again: nothing more to do, and said so.
    let again = post(
        &app,
        "/keys/revoke",
        &cookie,
        &[("csrf", &dev.csrf), ("id", &mine)],
    )
    .await;
    assert_eq!(again.status, 303);
    assert!(
        follow(&app, &again, &cookie)
            .await
            .text
            .contains("Revoked 0 keys. 1 key had already stopped working.")
    );
}

#[tokio::test]
async fn a_new_keys_secret_is_shown_once_after_a_redirect_and_only_to_the_session_that_made_it() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let other = session_of(&app, &sign_in(&app, "owner@example.com", PASSWORD).await).await;
    let count = || async {
        app.get("/v1/keys?limit=100").await.body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = count().await;
    let created = post(
        &app,
        "/keys",
        &s.cookie(),
        &[("csrf", &s.csrf), ("name", "Once"), ("expires", "1y")],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.text);
    let to = created.location().to_owned();
    assert!(to.starts_with("/keys?new=key_"), "{to}");
    assert!(!created.text.contains("kw_live_"));
    assert_eq!(count().await, before + 1);

    // Another session of the same member gets nothing, and takes nothing.
    let elsewhere = get(&app, &to, &other.cookie()).await;
    assert!(!elsewhere.text.contains("id=\"new-key\""));
    assert!(elsewhere.text.contains("was shown once"));
    let shown = get(&app, &to, &s.cookie()).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.headers["cache-control"], "no-store");
    let secret = secret_in(&shown.text).to_owned();
    assert_eq!(app.verify(&secret, json!({})).await["code"], "VALID");
    let reloaded = get(&app, &to, &s.cookie()).await;
    assert!(!reloaded.text.contains(&secret));
    assert!(
        reloaded
            .text
            .contains("was shown once and is not shown again")
    );
    assert_eq!(count().await, before + 1, "a reload creates nothing");

    // Rotation: the same, on the new key's page.
    let id = format!("key_{}", &secret[8..20]);
    let rotated = post(
        &app,
        &format!("/keys/{id}/rotate"),
        &s.cookie(),
        &[("csrf", &s.csrf), ("grace_period_s", "3600")],
    )
    .await;
    assert_eq!(rotated.status, 303, "{}", rotated.text);
    let to = rotated.location().to_owned();
    assert!(
        to.starts_with("/keys/key_") && to.ends_with("?new=1"),
        "{to}"
    );
    let shown = get(&app, &to, &s.cookie()).await;
    assert!(shown.text.contains("Key rotated"));
    assert!(shown.text.contains("The old key keeps working until"));
    let new_secret = secret_in(&shown.text).to_owned();
    assert_ne!(new_secret, secret);
    let reloaded = get(&app, &to, &s.cookie()).await;
    assert!(!reloaded.text.contains(&new_secret));
    assert!(reloaded.text.contains("was shown once"));
    assert_eq!(count().await, before + 2);

    // A held secret is gone with its session, and after ten minutes.
    let held = post(
        &app,
        "/keys",
        &s.cookie(),
        &[
            ("csrf", &s.csrf),
            ("name", "Never shown"),
            ("expires", "1y"),
        ],
    )
    .await;
    app.clock.advance(10 * 60 * 1000 + 1);
    let late = get(&app, held.location(), &s.cookie()).await;
    assert!(!late.text.contains("id=\"new-key\""));
    assert!(late.text.contains("was shown once"));
}

#[tokio::test]
async fn unknown_dashboard_addresses_answer_a_page_and_the_json_api_keeps_problem_json() {
    let app = spawn_app().await;
    let anonymous = get_html(&app, "/nothing/here", "").await;
    assert_eq!(anonymous.status, 404);
    assert!(
        anonymous.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(anonymous.text.contains("Page not found"));
    assert!(anonymous.text.contains("href=\"/sign-in\""));
    assert!(anonymous.text.contains("href=\"/docs\""));
    assert_eq!(anonymous.headers["cache-control"], "no-store");
    assert!(
        anonymous.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let signed_in = get_html(&app, "/keys/key_000000000000/nope", &s.cookie()).await;
    assert_eq!(signed_in.status, 404);
    assert!(signed_in.text.contains("Page not found"));
    assert!(signed_in.text.contains("class=\"sidebar\""), "in the shell");
    // A form's address opened as a page.
    let form_url = get_html(&app, "/keys/key_000000000000/rotate", &s.cookie()).await;
    assert_eq!(form_url.status, 405);
    assert!(form_url.text.contains("This address takes a form"));
    // The JSON API, and clients that do not ask for HTML, keep problem+json.
    for (path, accept) in [
        ("/v1/nothing-here", "text/html"),
        ("/v1", "text/html"),
        ("/nothing/here", "application/json"),
        ("/nothing/here", "*/*"),
    ] {
        let res = app
            .http
            .get(app.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path} {accept}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path} {accept}"
        );
    }
    // Every page links to the API reference.
    assert!(
        get(&app, "/keys", &s.cookie())
            .await
            .text
            .contains("href=\"/docs\"")
    );
}

#[tokio::test]
async fn a_member_changes_their_password_only_with_the_current_one_and_their_other_sessions_end() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let other = session_of(&app, &sign_in(&app, "owner@example.com", PASSWORD).await).await;
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        let app = &app;
        let cookie = s.cookie();
        let csrf = s.csrf.clone();
        async move {
            post(
                app,
                "/profile/password",
                &cookie,
                &[
                    ("csrf", csrf.as_str()),
                    ("current_password", current),
                    ("new_password", new),
                    ("new_password_confirmation", again),
                ],
            )
            .await
        }
    };
    let page = get(&app, "/profile", &s.cookie()).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("autocomplete=\"current-password\""));
    let forged = post(
        &app,
        "/profile/password",
        &s.cookie(),
        &[("current_password", PASSWORD), ("new_password", "x")],
    )
    .await;
    assert_eq!(forged.status, 403);

    let wrong = change("not the password", "a new passphrase", "a new passphrase").await;
    assert_eq!(wrong.status, 422);
    assert_eq!(
        field_error(&wrong.text, "current-password"),
        "Is not your current password"
    );
    let mismatch = change(PASSWORD, "a new passphrase", "another one here").await;
    assert_eq!(mismatch.status, 422);
    assert_eq!(
        field_error(&mismatch.text, "new-password-confirmation"),
        "Does not match the new password"
    );
    let short = change(PASSWORD, "short", "short").await;
    assert_eq!(short.status, 422);
    assert!(field_error(&short.text, "new-password").starts_with("Must be 10 to 256"));
    assert_eq!(
        get(&app, "/keys", &other.cookie()).await.status,
        200,
        "nothing changed yet"
    );

    let done = change(PASSWORD, "a new passphrase", "a new passphrase").await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert!(
        follow(&app, &done, &s.cookie())
            .await
            .text
            .contains("Your password is changed. Your one other session has ended.")
    );
    assert_eq!(
        get(&app, "/keys", &s.cookie()).await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        get(&app, "/keys", &other.cookie()).await.status,
        303,
        "the other one ended"
    );
    assert_eq!(
        sign_in(&app, "owner@example.com", PASSWORD).await.status,
        401
    );
    assert_eq!(
        sign_in(&app, "owner@example.com", "a new passphrase")
            .await
            .status,
        303
    );
    let actions: Vec<Value> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "user.password_changed")
        .collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["details"]["other_sessions_ended"], 1);

    // Wrong current passwords count as failed sign-ins: guessing through a session is throttled.
    for _ in 0..5 {
        change(
            "guess guess guess",
            "a newer passphrase",
            "a newer passphrase",
        )
        .await;
    }
    let throttled = change(
        "a new passphrase",
        "a newer passphrase",
        "a newer passphrase",
    )
    .await;
    assert_eq!(throttled.status, 422);
    assert!(field_error(&throttled.text, "current-password").contains("try again in"));

    // A viewer renames themself, and nobody else.
    app.post(
        "/v1/users",
        json!({"email": "vera@example.com", "name": "Vera", "role": "viewer", "password": PASSWORD}),
    )
    .await
    .assert_status(201);
    let viewer = session_of(&app, &sign_in(&app, "vera@example.com", PASSWORD).await).await;
    let renamed = post(
        &app,
        "/profile",
        &viewer.cookie(),
        &[("csrf", &viewer.csrf), ("name", "Vera Viewer")],
    )
    .await;
    assert_eq!(renamed.status, 303, "{}", renamed.text);
    let users = app.get("/v1/users").await;
    let names: Vec<&str> = users.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Vera Viewer") && names.contains(&"Olivia"),
        "{names:?}"
    );
    let blank = post(
        &app,
        "/profile",
        &viewer.cookie(),
        &[("csrf", &viewer.csrf), ("name", "   ")],
    )
    .await;
    assert_eq!(blank.status, 422);
    assert!(!field_error(&blank.text, "profile-name").is_empty());
}

#[tokio::test]
async fn recoverable_keys_are_not_offered_without_an_encryption_key_and_the_server_refuses_them() {
    let app = spawn_app().await;
    // A policy set while the server had an encryption key, which it no longer has.
    app.execute_sql(
        "UPDATE orgs SET policies = REPLACE(policies, '\"recoverable_keys\":false', '\"recoverable_keys\":true')",
    )
    .await;
    app.ctx.verifier.invalidate_org(&app.org_id);
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let keys = get(&app, "/keys", &s.cookie()).await;
    assert!(keys.text.contains("id=\"create-key\""));
    assert!(
        !keys.text.contains("name=\"recoverable\""),
        "the option is not offered"
    );
    let org = get(&app, "/org", &s.cookie()).await;
    assert!(org.text.contains("new keys cannot be recoverable"));
    assert!(org.text.contains("Not available on this server"));
    // Sent anyway: refused at its field, and nothing is created.
    let refused = post(
        &app,
        "/keys",
        &s.cookie(),
        &[
            ("csrf", &s.csrf),
            ("name", "Recoverable"),
            ("expires", "1y"),
            ("recoverable", "true"),
        ],
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("KEYWARD_ENCRYPTION_KEY"));
    let api = app
        .post("/v1/keys", json!({"name": "r", "recoverable": true}))
        .await;
    api.assert_problem(422, "validation_failed");
    assert_eq!(api.error_fields(), ["recoverable"]);
    assert!(
        !app.get("/v1/keys").await.text.contains("Recoverable"),
        "nothing was created"
    );
    // With a new organization's policy off, the org form does not offer to switch it on.
    app.execute_sql(
        "UPDATE orgs SET policies = REPLACE(policies, '\"recoverable_keys\":true', '\"recoverable_keys\":false')",
    )
    .await;
    app.ctx.verifier.invalidate_org(&app.org_id);
    let org = get(&app, "/org", &s.cookie()).await;
    let at = org.text.find("id=\"org-recoverable\"").unwrap();
    let control = &org.text[at..at + org.text[at..].find('>').unwrap()];
    assert!(control.contains("disabled"), "{control}");
}

#[tokio::test]
async fn invited_members_are_shown_as_invited_until_they_set_a_password() {
    let app = spawn_app().await;
    let s = session_of(&app, &set_up_owner(&app).await).await;
    let invited = post(
        &app,
        "/members",
        &s.cookie(),
        &[
            ("csrf", &s.csrf),
            ("email", "new@example.com"),
            ("name", "Newcomer"),
            ("role", "developer"),
        ],
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let at = invited.text.find("/setup/").unwrap();
    let link = invited.text[at..at + 7 + 64].to_owned();
    let row = |html: &str| {
        let at = html.find("new@example.com").unwrap();
        let end = html[at..].find("</tr>").unwrap() + at;
        html[at..end].to_owned()
    };
    let members = get(&app, "/members", &s.cookie()).await;
    let pending = row(&members.text);
    assert!(pending.contains(">Invited<"), "{pending}");
    assert!(pending.contains("Link expires in 7 days"), "{pending}");
    assert!(pending.contains("New invitation link"));
    // Once the link is past, the row says so.
    app.clock.advance(8 * 86_400_000);
    let s = session_of(&app, &sign_in(&app, "owner@example.com", PASSWORD).await).await;
    let expired = row(&get(&app, "/members", &s.cookie()).await.text);
    assert!(expired.contains("Link expired or used"), "{expired}");
    // A new link, used: active.
    let again = post(
        &app,
        &format!(
            "/members/{}/invite",
            app.get("/v1/users").await.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["email"] == "new@example.com")
                .unwrap()["id"]
                .as_str()
                .unwrap()
        ),
        &s.cookie(),
        &[("csrf", &s.csrf)],
    )
    .await;
    let at = again.text.find("/setup/").unwrap();
    let fresh_link = again.text[at..at + 7 + 64].to_owned();
    assert_ne!(fresh_link, link);
    let csrf = pre_session_csrf(&app).await;
    let set = post(
        &app,
        &fresh_link,
        &format!("keyward_csrf={csrf}"),
        &[
            ("csrf", &csrf),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ],
    )
    .await;
    assert_eq!(set.status, 303, "{}", set.text);
    let active = row(&get(&app, "/members", &s.cookie()).await.text);
    assert!(
        active.contains(">Active<") && !active.contains("Invited"),
        "{active}"
    );
}
