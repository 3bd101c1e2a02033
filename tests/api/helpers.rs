//! Spawns a real Keyward server on a loopback port, on a fresh SQLite file or a fresh PostgreSQL
//! schema, with a clock the test moves, and a small typed client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyward::config::{Config, ServerArgs};
use keyward::domain::{Clock, ManualClock, SystemClock};
use keyward::service::Ctx;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const TEST_PEPPER: &str = "test-pepper-0123456789abcdef-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use; CI starts it. Tests fail, never skip, when it is missing.
pub fn postgres_url() -> String {
    std::env::var("KEYWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

static SCHEMA_SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty PostgreSQL schema; dropped when the value is dropped.
pub struct PgSchema {
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        use sqlx::Connection;
        let name = format!(
            "kwt_{}_{}_{}",
            std::process::id(),
            SCHEMA_SEQ.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        let base = postgres_url();
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL must be reachable at {base} for these tests: {e}")
            });
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = postgres_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> String {
    use rand::RngCore;
    let mut b = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub struct TestApp {
    pub base: String,
    /// The gateway's base URL, when the test asked for one (`gateway_listen`).
    pub gateway: Option<String>,
    pub http: reqwest::Client,
    /// The management key printed on the first start (every scope).
    pub admin_key: String,
    pub org_id: String,
    pub owner_id: String,
    pub default_api_id: String,
    pub management_api_id: String,
    /// The owner's one-time dashboard setup link printed on the first start.
    pub setup_url: String,
    pub clock: Arc<ManualClock>,
    pub ctx: Ctx,
    pub config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
    _schema: Option<PgSchema>,
}

pub struct Options {
    pub db: Db,
    pub plans_without_access: Option<String>,
    pub encryption_key: Option<String>,
    pub public_url: Option<String>,
    /// Contents of a TOML configuration file to start with.
    pub toml: Option<String>,
    /// Further settings (timeouts, throttling); the ones above and the test's own (address, data
    /// directory, database, pepper) take precedence.
    pub args: ServerArgs,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            db: Db::Sqlite,
            plans_without_access: None,
            encryption_key: None,
            public_url: None,
            toml: None,
            args: ServerArgs::default(),
        }
    }
}

/// An encryption key for recoverable keys in tests.
pub const TEST_ENCRYPTION_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_app_on(db: Db) -> TestApp {
    spawn_with(Options {
        db,
        ..Default::default()
    })
    .await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = match opts.db {
        Db::Postgres => Some(PgSchema::create().await),
        Db::Sqlite => None,
    };
    let database_url = match &schema {
        Some(s) => s.url.clone(),
        None => format!("sqlite://{}", dir.path().join("keyward.db").display()),
    };
    let config_file = opts.toml.map(|text| {
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let args = ServerArgs {
        config: config_file,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.path().to_owned()),
        database_url: Some(database_url),
        pepper: Some(TEST_PEPPER.into()),
        plans_without_access: opts.plans_without_access,
        encryption_key: opts.encryption_key,
        public_url: opts.public_url,
        ..opts.args
    };
    let config = Config::load(&args).expect("config");
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let mut app = keyward::Application::build_with_clock(config.clone(), clock.clone())
        .await
        .expect("the application builds");
    let first = app
        .take_first_start()
        .expect("a fresh database prints a management key");
    let base = format!("http://{}", app.local_addr());
    let gateway = app.gateway_addr().map(|a| format!("http://{a}"));
    let setup_url = keyward::service::sessions::setup_url(&app.public_url(), &first.setup_token);
    let ctx = app.ctx().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        gateway,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        admin_key: first.secret.expose().to_owned(),
        org_id: first.org.id.clone(),
        owner_id: first.owner.id.clone(),
        default_api_id: first.default_api.id.clone(),
        management_api_id: first.management_api.id.clone(),
        setup_url,
        clock,
        ctx,
        config,
        shutdown: Some(tx),
        server: Some(server),
        dir,
        _schema: schema,
    }
}

/// A response: status, headers and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    /// Asserts a problem+json error with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], "about:blank");
        assert!(
            self.body["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        assert!(!self.body["detail"].as_str().unwrap().is_empty());
        self
    }

    /// The `field` of each entry of a 422's `errors`.
    pub fn error_fields(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.body
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Res {
        let mut req = self.http.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    /// Posts a raw body with a content type, as the admin.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &'static str) -> Res {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, Some(&self.admin_key), None)
            .await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Res {
        self.send(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.send(Method::POST, path, Some(&self.admin_key), Some(&body))
            .await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Res {
        self.send(Method::POST, path, Some(key), Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Res {
        self.send(Method::PATCH, path, Some(&self.admin_key), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.send(Method::DELETE, path, Some(&self.admin_key), None)
            .await
    }

    /// Creates a key with the admin key; returns the created body (with `key`).
    pub async fn create_key(&self, body: Value) -> Value {
        let res = self.post("/v1/keys", body).await;
        res.assert_status(201).clone()
    }

    /// A management key with exactly these scopes, owned by the owner.
    pub async fn management_key(&self, scopes: &[&str]) -> String {
        let created = self
            .create_key(
                json!({"name": "scoped", "api_id": self.management_api_id, "scopes": scopes}),
            )
            .await;
        created["key"].as_str().unwrap().to_owned()
    }

    /// Verifies `key` with the admin key; returns the verdict body.
    pub async fn verify(&self, key: &str, extra: Value) -> Value {
        let mut body = json!({"key": key});
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        self.post("/v1/keys/verify", body)
            .await
            .assert_status(200)
            .clone()
    }

    /// Adds a member with `role` and returns (user id, a management key they own holding every
    /// management scope; it acts within their role).
    pub async fn member(&self, role: &str) -> (String, String) {
        let n = SCHEMA_SEQ.fetch_add(1, Ordering::SeqCst);
        let user = self
            .post("/v1/users", json!({"email": format!("{role}{n}@example.com"), "name": format!("{role} {n}"), "role": role}))
            .await;
        let id = user.assert_status(201)["id"].as_str().unwrap().to_owned();
        let scopes: Vec<&str> = keyward::domain::model::MANAGEMENT_SCOPES
            .iter()
            .map(|(s, _)| *s)
            .collect();
        let key = self
            .create_key(json!({"name": format!("{role} key"), "api_id": self.management_api_id, "scopes": scopes, "owner_id": id}))
            .await;
        (id, key["key"].as_str().unwrap().to_owned())
    }

    pub async fn patch_as(&self, key: &str, path: &str, body: Value) -> Res {
        self.send(Method::PATCH, path, Some(key), Some(&body)).await
    }

    pub async fn delete_as(&self, key: &str, path: &str) -> Res {
        self.send(Method::DELETE, path, Some(key), None).await
    }

    /// Creates an API with a scope catalogue and its own prefixes.
    pub async fn create_api(&self, slug: &str, scopes: &[&str]) -> Value {
        let scopes: Vec<Value> = scopes
            .iter()
            .map(|s| json!({"name": s, "description": format!("{s} access")}))
            .collect();
        self.post(
            "/v1/apis",
            json!({"name": format!("{slug} API"), "slug": slug, "scopes": scopes,
                   "key_prefix": {"live": "tk_live_", "test": "tk_test_"}}),
        )
        .await
        .assert_status(201)
        .clone()
    }

    /// Runs SQL straight on the server's database, behind its back (to break or inspect it).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.config.database_url)
            .await
            .expect("the test database is reachable");
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.expect("the connection closes");
    }

    /// Stops the server gracefully and starts it again on the same database, data directory and
    /// clock, with `change` applied to its configuration (on another free port).
    pub async fn restart_with(mut self, change: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server stops cleanly");
        }
        let mut config = self.config.clone();
        change(&mut config);
        let app = keyward::Application::build_with_clock(config.clone(), self.clock.clone())
            .await
            .expect("the application builds again");
        self.base = format!("http://{}", app.local_addr());
        self.ctx = app.ctx().clone();
        self.config = config;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.server = Some(tokio::spawn(app.run_until(async {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
        self
    }

    /// Stops the server gracefully (drains, flushes write-behind buffers). Returns the data
    /// directory, so that the caller can reopen the database.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server stops cleanly");
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl TestApp {
    /// Stops the server gracefully (drains, flushes write-behind buffers) and starts it again on
    /// the same database, data directory and clock, on new ports.
    pub async fn restart(mut self) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server stops cleanly");
        }
        let app = keyward::Application::build_with_clock(self.config.clone(), self.clock.clone())
            .await
            .expect("the application builds again");
        self.base = format!("http://{}", app.local_addr());
        self.gateway = app.gateway_addr().map(|a| format!("http://{a}"));
        self.ctx = app.ctx().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.server = Some(tokio::spawn(app.run_until(async {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
        self
    }
}

/// The real `keyward` binary, serving on a loopback port of its own. Everything it prints is
/// collected.
pub struct Binary {
    pub child: tokio::process::Child,
    pub base: String,
    stdout: Arc<std::sync::Mutex<String>>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Binary {
    /// Runs `keyward serve` on a free port with `env`; waits until it listens and has printed its
    /// first-start message, if any.
    pub async fn serve(env: &[(&str, &str)]) -> Binary {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.env("KEYWARD_LISTEN", "127.0.0.1:0");
        Binary::start(cmd, env).await
    }

    /// Runs `keyward serve` as a user would: in `dir`, with every setting at its default (no
    /// `KEYWARD_*` variable from this environment).
    pub async fn serve_with_defaults_in(dir: &std::path::Path) -> Binary {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.current_dir(dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("KEYWARD_") {
                cmd.env_remove(k);
            }
        }
        Binary::start(cmd, &[]).await
    }

    async fn start(mut cmd: tokio::process::Command, env: &[(&str, &str)]) -> Binary {
        use std::process::Stdio;
        cmd.arg("serve")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let collect = |pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
            let text = Arc::new(std::sync::Mutex::new(String::new()));
            let into = text.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut t = into.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let started = std::time::Instant::now();
        let addr = loop {
            let text = stderr.lock().unwrap().clone();
            if let Some(i) = text.find("listening on http://") {
                let rest = &text[i + "listening on http://".len()..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the server exited early ({status}): {text}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the server did not listen within 30 s: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        // The first-start message is printed before the server listens; give the pipe a moment.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Binary {
            child,
            base: format!("http://{addr}"),
            stdout,
            stderr,
        }
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The management key printed on the first start.
    pub fn admin_key(&self) -> String {
        self.stdout()
            .lines()
            .find(|l| l.starts_with("kw_live_"))
            .expect("the management key on a line of its own")
            .to_owned()
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit; returns its status and
    /// how long it took.
    pub async fn terminate(
        &mut self,
        within: std::time::Duration,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let started = std::time::Instant::now();
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the process exits in time")
            .unwrap();
        // Let the collectors read the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        (status, started.elapsed())
    }
}
