//! The command line: `serve`, `init`, `migrate`, `orgs`, the `keys`, `apis`, `acls`, `groups`,
//! `webhooks`, `verify`, `events` and `usage` commands
//! that talk HTTP to a running server, and `scan`, which finds keys in files offline. `anyhow` lives here, at
//! the edge; a missing or wrong setting is a one-line error naming it.

mod access;
mod apis;
mod client;
mod events;
mod scan;
mod table;
mod usage;
mod webhooks;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ServerArgs, unknown_variables};
use crate::domain::SystemClock;
use crate::service::sessions::{self, Purpose, Token};
use client::Client;

#[derive(Debug, Parser)]
#[command(name = "keyward", version, about = "Self-hosted API key service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: management API, dashboard, and the gateway if configured.
    Serve(ServerArgs),
    /// Create the first organization and print its management key; refuses if one exists.
    Init(ServerArgs),
    /// Run database migrations and exit.
    Migrate(ServerArgs),
    /// Organizations (operator commands, run against the database directly).
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Manage keys through a running server (`create-management` works on the database instead).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage protected APIs and their gateway routes through a running server.
    #[command(subcommand)]
    Apis(apis::ApisCommand),
    /// Manage named IP ACLs (shared allowlists) through a running server.
    #[command(subcommand)]
    Acls(access::AclsCommand),
    /// Manage key groups (shared scopes and rate limits) through a running server.
    #[command(subcommand)]
    Groups(access::GroupsCommand),
    /// Manage webhook endpoints and their deliveries through a running server.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Verify a key through a running server.
    Verify(VerifyArgs),
    /// List the organization's security events through a running server, newest first.
    Events(events::EventsArgs),
    /// Verifications counted for the organization, or one key (`--key`), through a running
    /// server: totals, by code, top keys and a series by minute, hour or day.
    Usage(usage::UsageArgs),
    /// Find Keyward keys in files (checksum-valid only), e.g. before a commit.
    Scan(ScanArgs),
    /// Print a new one-time link where a member sets their dashboard email and password (a
    /// lost password, or an expired first-start link); earlier links of theirs stop working.
    SetupLink {
        /// The member's current email (the first owner's is owner@localhost until set).
        #[arg(long)]
        email: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organization and print its owner's management key once.
    Create {
        #[arg(long)]
        name: String,
        /// Email of the owner. Default owner@<slug of name>.
        #[arg(long)]
        owner_email: Option<String>,
        #[arg(long, default_value = "pro")]
        plan: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How to reach a running server.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the Keyward server.
    #[arg(
        long,
        env = "KEYWARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// A management key.
    #[arg(long, env = "KEYWARD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Who owns a new key and the shared rules it takes.
#[derive(Debug, Clone, Args)]
pub struct KeyAccessArgs {
    /// The member who owns the key, e.g. a service account (usr_...); default: the caller.
    #[arg(long)]
    owner: Option<String>,
    /// A named IP ACL (acl_...) whose entries join the allowlist; repeat for more.
    #[arg(long = "acl")]
    acls: Vec<String>,
    /// A key group (grp_...) of the key's API; repeat for more.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A resource pattern, type:id with an optional trailing '*'; repeat for more.
    #[arg(long = "resource")]
    resources: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a management key (every scope, acting within the member's role) for an active member,
    /// against the database directly, like `setup-link`: the way back in when every management key
    /// is lost or revoked. Prints it once.
    CreateManagement {
        /// The member's email (the first owner's is owner@localhost until set).
        #[arg(long)]
        email: String,
        #[command(flatten)]
        server: Box<ServerArgs>,
    },
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// API id (default: the organization's default API).
        #[arg(long)]
        api: Option<String>,
        #[arg(long = "type")]
        token_type: Option<String>,
        /// A scope from the API's catalogue; repeat for more.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An IP address or CIDR allowed to use the key; repeat for more.
        #[arg(long = "ip")]
        ips: Vec<String>,
        /// 1y, 2y, 5y, never, or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// live or test.
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// REQUESTS/SECONDS, e.g. 100/60.
        #[arg(long)]
        rate_limit: Option<String>,
        #[command(flatten)]
        access: Box<KeyAccessArgs>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys.
    List {
        #[arg(long)]
        api: Option<String>,
        /// active, revoked, expired or all.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one key.
    Show {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a key; the old one keeps working for the grace period.
    Rotate {
        id: String,
        /// Seconds the old key keeps working (0 to 1209600).
        #[arg(long, default_value_t = 0)]
        grace: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key now.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key and hide it from listings.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The key to check.
    pub key: String,
    /// A scope the key must have; repeat for more.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    #[arg(long)]
    pub api: Option<String>,
    /// Client IP to check against the key's allowlist.
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(long = "type")]
    pub token_type: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan.
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => serve(args).await.map(|_| 0),
        Command::Init(args) => init(args).await.map(|_| 0),
        Command::Migrate(args) => {
            let config = server_config(&args)?;
            crate::connect(&config, Arc::new(SystemClock)).await?;
            println!("Migrations are up to date.");
            Ok(0)
        }
        Command::Orgs(OrgsCommand::Create {
            name,
            owner_email,
            plan,
            server,
        }) => {
            let config = server_config(&server)?;
            let ctx = crate::connect(&config, Arc::new(SystemClock)).await?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("--name must be 1 to 100 characters");
            }
            let email = owner_email.unwrap_or_else(|| {
                let slug: String = name
                    .to_lowercase()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                format!("owner@{}.localhost", slug.trim_matches('-'))
            });
            let b = crate::service::bootstrap::create_org(&ctx, name, &email, &plan)
                .await
                .context("could not create the organization")?;
            println!(
                "Created organization {} ({}), owner {}.",
                b.org.name, b.org.id, b.owner.email
            );
            print_management_key(b.secret.expose());
            print_setup_link(&config.public_url, &b.setup_token);
            Ok(0)
        }
        Command::SetupLink { email, server } => {
            let config = server_config(&server)?;
            let ctx = crate::connect(&config, Arc::new(SystemClock)).await?;
            let email = sessions::normalize_email(&email);
            let (user, _) = ctx
                .store
                .get_user_by_email(&email)
                .await?
                .with_context(|| format!("no member has the email {email}"))?;
            if user.status != crate::domain::model::UserStatus::Active {
                bail!(
                    "the member {email} is {}; enable them first",
                    user.status.as_str()
                );
            }
            let token = sessions::create_setup_link(&ctx, &user, Purpose::Setup).await?;
            print_setup_link_for(&format!("{email}'s"), &config.public_url, &token);
            Ok(0)
        }
        Command::Keys(cmd) => keys(cmd).await,
        Command::Apis(cmd) => apis::run(cmd).await,
        Command::Acls(cmd) => access::acls(cmd).await,
        Command::Groups(cmd) => access::groups(cmd).await,
        Command::Webhooks(cmd) => webhooks::run(cmd).await,
        Command::Verify(args) => verify(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Usage(args) => usage::run(args).await,
        Command::Scan(args) => scan::run(&args.paths),
    }
}

fn server_config(args: &ServerArgs) -> anyhow::Result<Config> {
    for var in unknown_variables() {
        tracing::warn!("ignoring unknown setting {var}: not a Keyward variable (typo?)");
    }
    let mut config = Config::load(args)?;
    if config.ensure_pepper()? {
        tracing::warn!(
            "generated a development pepper in {}; set KEYWARD_PEPPER (and KEYWARD_ENV=production) for real use",
            config.data_dir.join("pepper").display()
        );
    }
    Ok(config)
}

fn print_management_key(key: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Management key (holds every scope; it will not be shown again):"
    );
    let _ = writeln!(out, "{key}");
    let _ = out.flush();
}

fn print_setup_link(public_url: &str, token: &Token) {
    print_setup_link_for("the owner's", public_url, token);
}

/// Prints the link on a line of its own, below a line that says what it is for.
fn print_setup_link_for(whose: &str, public_url: &str, token: &Token) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Dashboard: set {whose} email and password at this one-time link (valid {}):",
        Purpose::Setup.ttl_text()
    );
    let _ = writeln!(out, "{}", sessions::setup_url(public_url, token));
    let _ = out.flush();
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = server_config(&args)?;
    if config.redis_url.is_some() {
        tracing::warn!(
            "KEYWARD_REDIS_URL is set, but this version does not use Redis yet; limits and revocations stay per instance"
        );
    }
    let mut app = crate::Application::build(config).await?;
    if let Some(b) = app.take_first_start() {
        println!(
            "Keyward created the organization '{}' on its first start.",
            b.org.name
        );
        print_management_key(b.secret.expose());
        print_setup_link(&app.public_url(), &b.setup_token);
    }
    tracing::info!(
        address = %app.local_addr(),
        database = %crate::config::redact_url(&app.config().database_url),
        "Keyward is listening on http://{}",
        app.local_addr()
    );
    if let Some(addr) = app.gateway_addr() {
        tracing::info!(address = %addr, "the gateway is listening on http://{addr}");
    }
    app.run_until(shutdown_signal()).await
}

async fn init(args: ServerArgs) -> anyhow::Result<()> {
    let config = server_config(&args)?;
    let ctx = crate::connect(&config, Arc::new(SystemClock)).await?;
    match crate::initialize(&ctx).await? {
        Some(b) => {
            println!("Initialized the organization '{}'.", b.org.name);
            print_management_key(b.secret.expose());
            print_setup_link(&config.public_url, &b.setup_token);
            Ok(())
        }
        None => bail!(
            "this database is already initialized; use `keyward orgs create` for another organization"
        ),
    }
}

/// `keyward keys create-management`: against the database, not through a server.
async fn create_management(email: String, server: Box<ServerArgs>) -> anyhow::Result<i32> {
    let config = server_config(&server)?;
    let ctx = crate::connect(&config, Arc::new(SystemClock)).await?;
    let (key, secret) = crate::service::bootstrap::create_management_key(&ctx, &email)
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::NotFound(_) => {
                anyhow::anyhow!("no active member has the email {email}")
            }
            e => e.into(),
        })?;
    println!("Created {} for {email}.", key.id);
    print_management_key(secret.expose());
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining connections and flushing usage");
}

fn parse_rate_limit(s: &str) -> anyhow::Result<serde_json::Value> {
    let (r, p) = s
        .split_once('/')
        .context("--rate-limit must look like REQUESTS/SECONDS, e.g. 100/60")?;
    let requests: u32 = r
        .trim()
        .parse()
        .context("--rate-limit: REQUESTS must be a number")?;
    let per_seconds: u32 = p
        .trim()
        .parse()
        .context("--rate-limit: SECONDS must be a number")?;
    Ok(serde_json::json!({"requests": requests, "per_seconds": per_seconds}))
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<i32> {
    match cmd {
        KeysCommand::CreateManagement { email, server } => create_management(email, server).await,
        KeysCommand::Create {
            name,
            api,
            token_type,
            scopes,
            ips,
            expires,
            environment,
            description,
            rate_limit,
            access,
            client,
        } => {
            let KeyAccessArgs {
                owner,
                acls,
                groups,
                resources,
            } = *access;
            let c = Client::new(&client)?;
            let mut body = serde_json::json!({"name": name});
            let obj = body.as_object_mut().expect("an object");
            if let Some(a) = api {
                obj.insert("api_id".into(), a.into());
            }
            if let Some(t) = token_type {
                obj.insert("type".into(), t.into());
            }
            if !scopes.is_empty() {
                obj.insert("scopes".into(), scopes.into());
            }
            if !ips.is_empty() {
                obj.insert("ip_allowlist".into(), ips.into());
            }
            if let Some(e) = expires {
                if crate::domain::model::ExpiryChoice::parse(&e).is_some() {
                    obj.insert("expires".into(), e.into());
                } else {
                    obj.insert("expires_at".into(), e.into());
                }
            }
            if let Some(e) = environment {
                obj.insert("environment".into(), e.into());
            }
            if let Some(d) = description {
                obj.insert("description".into(), d.into());
            }
            if let Some(r) = rate_limit {
                obj.insert("rate_limit".into(), parse_rate_limit(&r)?);
            }
            if let Some(o) = owner {
                obj.insert("owner_id".into(), o.into());
            }
            if !acls.is_empty() {
                obj.insert("ip_acl_ids".into(), acls.into());
            }
            if !groups.is_empty() {
                obj.insert("group_ids".into(), groups.into());
            }
            if !resources.is_empty() {
                obj.insert("resources".into(), resources.into());
            }
            let key = c.post("/v1/keys", &body).await?;
            if client.json {
                table::print_json(&key);
            } else {
                table::print_key(&key);
                println!();
                println!("Key (store it now; it will not be shown again):");
                println!("{}", key["key"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        KeysCommand::List {
            api,
            status,
            owner,
            limit,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if let Some(a) = api {
                query.push(("api_id", a));
            }
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(o) = owner {
                query.push(("owner_id", o));
            }
            let page = c.get_query("/v1/keys", &query).await?;
            if client.json {
                table::print_json(&page);
            } else {
                table::print_key_list(&page);
            }
            Ok(0)
        }
        KeysCommand::Show { id, client } => {
            let c = Client::new(&client)?;
            let key = c
                .get(&format!("/v1/keys/{}", client::path_segment(&id)))
                .await?;
            if client.json {
                table::print_json(&key);
            } else {
                table::print_key(&key);
            }
            Ok(0)
        }
        KeysCommand::Rotate { id, grace, client } => {
            let c = Client::new(&client)?;
            let key = c
                .post(
                    &format!("/v1/keys/{}/rotate", client::path_segment(&id)),
                    &serde_json::json!({"grace_period_s": grace}),
                )
                .await?;
            if client.json {
                table::print_json(&key);
            } else {
                table::print_key(&key);
                println!();
                if grace > 0 {
                    println!("The old key {id} keeps working for {grace} s.");
                } else {
                    println!("The old key {id} is revoked.");
                }
                println!("New key (store it now; it will not be shown again):");
                println!("{}", key["key"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        KeysCommand::Revoke { id, reason, client } => {
            let c = Client::new(&client)?;
            let key = c
                .post(
                    &format!("/v1/keys/{}/revoke", client::path_segment(&id)),
                    &serde_json::json!({"reason": reason}),
                )
                .await?;
            if client.json {
                table::print_json(&key);
            } else {
                println!(
                    "Revoked {} ({}).",
                    key["id"].as_str().unwrap_or_default(),
                    key["prefix"].as_str().unwrap_or_default()
                );
            }
            Ok(0)
        }
        KeysCommand::Delete { id, client } => {
            let c = Client::new(&client)?;
            c.delete(&format!("/v1/keys/{}", client::path_segment(&id)))
                .await?;
            if client.json {
                table::print_json(&serde_json::json!({"deleted": id}));
            } else {
                println!("Deleted {id}.");
            }
            Ok(0)
        }
    }
}

/// Exit code 0 when the key is valid, 2 when it is refused (so scripts can branch on it).
async fn verify(args: VerifyArgs) -> anyhow::Result<i32> {
    let c = Client::new(&args.client)?;
    let mut body = serde_json::json!({"key": args.key});
    let obj = body.as_object_mut().expect("an object");
    if !args.scopes.is_empty() {
        obj.insert("required_scopes".into(), args.scopes.into());
    }
    if let Some(a) = args.api {
        obj.insert("api_id".into(), a.into());
    }
    if let Some(ip) = args.ip {
        obj.insert("ip".into(), ip.into());
    }
    if let Some(t) = args.token_type {
        obj.insert("token_type".into(), t.into());
    }
    let verdict = c.post("/v1/keys/verify", &body).await?;
    let valid = verdict["valid"].as_bool().unwrap_or(false);
    if args.client.json {
        table::print_json(&verdict);
    } else {
        let code = verdict["code"].as_str().unwrap_or_default();
        let status = verdict["status"].as_u64().unwrap_or_default();
        match verdict["key"]["prefix"].as_str() {
            Some(p) => println!("{code} ({status}) {p}••••"),
            None => println!("{code} ({status})"),
        }
        if let Some(d) = verdict["detail"].as_str() {
            println!("{d}");
        }
    }
    Ok(if valid { 0 } else { 2 })
}
