//! Server configuration: defaults, then an optional TOML file, then `KEYWARD_*` variables, then
//! flags (clap reads the last two). Each setting is documented once, here and in the table of `docs/CONFIGURATION.md`.
//! Secrets may also come from a file named by the `_FILE` variant of their variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::domain::model::{Plan, RateLimit};

/// Settings of `keyward serve`, `init`, `migrate` and `orgs`; flags, variables, or the TOML file.
#[derive(Debug, Default, Clone, Args)]
pub struct ServerArgs {
    /// TOML file with any of the settings below (keys in lowercase, e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, env = "KEYWARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address of the management API and dashboard. Default 127.0.0.1:8080.
    #[arg(long, env = "KEYWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database and the development pepper. Default ./keyward-data.
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://...` or `postgres://...`. Default: a SQLite file in the data directory.
    #[arg(long, env = "KEYWARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// `development` (default) or `production`.
    #[arg(long = "env", env = "KEYWARD_ENV")]
    pub environment: Option<String>,
    /// Secret for HMAC-SHA256 of keys, at least 32 bytes. Required in production.
    #[arg(long, env = "KEYWARD_PEPPER", hide_env_values = true)]
    pub pepper: Option<String>,
    /// File holding the pepper (instead of KEYWARD_PEPPER).
    #[arg(long, env = "KEYWARD_PEPPER_FILE")]
    pub pepper_file: Option<PathBuf>,
    /// Version number of the current pepper, stored beside each hash. Default 1.
    #[arg(long, env = "KEYWARD_PEPPER_VERSION")]
    pub pepper_version: Option<i64>,
    /// Older peppers still needed to check existing keys: `VERSION:SECRET,...`.
    #[arg(long, env = "KEYWARD_PEPPER_PREVIOUS", hide_env_values = true)]
    pub pepper_previous: Option<String>,
    /// Address of the reverse-proxy gateway; off unless set.
    #[arg(long, env = "KEYWARD_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// How long the gateway waits for an upstream's answer (and for each part of its body)
    /// before answering 504. Default 30 s.
    #[arg(long, env = "KEYWARD_GATEWAY_UPSTREAM_TIMEOUT")]
    pub gateway_upstream_timeout: Option<String>,
    /// Proxies in front of the gateway whose `X-Forwarded-For` is believed: addresses or CIDR
    /// blocks, comma-separated. Default none: the client is the connection's peer.
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Redis URL, to share rate limits and revocations between instances.
    #[arg(long, env = "KEYWARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// 32 bytes as 64 hex characters: the AES-256-GCM key for recoverable keys.
    #[arg(long, env = "KEYWARD_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// File holding the encryption key.
    #[arg(long, env = "KEYWARD_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Base URL people reach this server at, for links it prints. Default http://<listen>.
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Plans whose organizations have no API access, comma-separated. Default `free`.
    #[arg(long, env = "KEYWARD_PLANS_WITHOUT_ACCESS")]
    pub plans_without_access: Option<String>,
    /// How long a client may take to send a request's headers, counted from the connection's
    /// start or the end of its previous request (so also how long an idle keep-alive connection
    /// stays open). Seconds, or with a unit: `10`, `10s`, `500ms`, `2m`. Default 10 s.
    #[arg(long, env = "KEYWARD_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// How long a request may take once its headers are in: reading its body and answering it.
    /// Default 30 s.
    #[arg(long, env = "KEYWARD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// After SIGTERM or Ctrl-C, how long requests in flight may take before the remaining
    /// connections are closed, pending last-use data is written and the process exits. Default
    /// 30 s.
    #[arg(long, env = "KEYWARD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Refused credentials (management keys, session cookies) one client IP may present within
    /// the window before it is answered 429 until the window ends. Default 50.
    #[arg(long, env = "KEYWARD_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: Option<u32>,
    /// The window of KEYWARD_AUTH_FAILURE_LIMIT. Default 60 s.
    #[arg(long, env = "KEYWARD_AUTH_FAILURE_WINDOW")]
    pub auth_failure_window: Option<String>,
    /// Security event `auth_failures`: refused keys (verdicts answered 401) from one client IP
    /// (IPv6: its /64), or against one key, within KEYWARD_EVENTS_AUTH_FAILURES_WINDOW. Default 20.
    #[arg(long, env = "KEYWARD_EVENTS_AUTH_FAILURES")]
    pub events_auth_failures: Option<u32>,
    /// The window of KEYWARD_EVENTS_AUTH_FAILURES, and the quiet spell that ends a burst of
    /// refusals. Default 60 s.
    #[arg(long, env = "KEYWARD_EVENTS_AUTH_FAILURES_WINDOW")]
    pub events_auth_failures_window: Option<String>,
    /// Security event `new_ip`: a key used before is used from a network (/24 for IPv4, /64 for
    /// IPv6) it has not used within this long. Default 30 days (`30d`).
    #[arg(long, env = "KEYWARD_EVENTS_NEW_IP_WINDOW")]
    pub events_new_ip_window: Option<String>,
    /// Security event `usage_spike`: the requests a key must make in one minute. Default 100.
    #[arg(long, env = "KEYWARD_EVENTS_SPIKE_REQUESTS")]
    pub events_spike_requests: Option<u32>,
    /// Security event `usage_spike`: how many times its average minute over the previous hour
    /// a key's minute must exceed. Default 10.
    #[arg(long, env = "KEYWARD_EVENTS_SPIKE_FACTOR")]
    pub events_spike_factor: Option<u32>,
    /// Security event `grace_period_use`: at most one event per old key within this long.
    /// Default 1 h (`1h`).
    #[arg(long, env = "KEYWARD_EVENTS_GRACE_USE_INTERVAL")]
    pub events_grace_use_interval: Option<String>,
    /// `on` (default) or `off`: whether verifications are counted for the usage endpoints and the
    /// dashboard's charts. Off, what was counted before stays readable and nothing is added.
    #[arg(long, env = "KEYWARD_USAGE_COUNTING")]
    pub usage_counting: Option<String>,
    /// How long per-minute usage counts are kept: a duration with a unit (`48h`, `7d`, `90m`).
    /// Default 48 h.
    #[arg(long, env = "KEYWARD_USAGE_MINUTE_RETENTION")]
    pub usage_minute_retention: Option<String>,
    /// How long hourly usage counts are kept. Default 90 days.
    #[arg(long, env = "KEYWARD_USAGE_HOUR_RETENTION")]
    pub usage_hour_retention: Option<String>,
    /// How long daily usage counts are kept. Default 730 days.
    #[arg(long, env = "KEYWARD_USAGE_DAY_RETENTION")]
    pub usage_day_retention: Option<String>,
    /// Whether webhook endpoints may resolve to loopback, private or link-local addresses
    /// (`true` or `false`), checked when an endpoint is saved and before every delivery. Default:
    /// true in development, false in production.
    #[arg(long, env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: Option<String>,
    /// How long a webhook receiver may take to answer a delivery before it counts as failed.
    /// Default 10 s.
    #[arg(long, env = "KEYWARD_WEBHOOK_TIMEOUT")]
    pub webhook_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    env: Option<String>,
    pepper: Option<String>,
    pepper_file: Option<PathBuf>,
    pepper_version: Option<i64>,
    pepper_previous: Option<String>,
    gateway_listen: Option<SocketAddr>,
    gateway_upstream_timeout: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    redis_url: Option<String>,
    encryption_key: Option<String>,
    encryption_key_file: Option<PathBuf>,
    public_url: Option<String>,
    plans_without_access: Option<Vec<String>>,
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    auth_failure_limit: Option<u32>,
    auth_failure_window: Option<String>,
    events_auth_failures: Option<u32>,
    events_auth_failures_window: Option<String>,
    events_new_ip_window: Option<String>,
    events_spike_requests: Option<u32>,
    events_spike_factor: Option<u32>,
    events_grace_use_interval: Option<String>,
    usage_counting: Option<String>,
    usage_minute_retention: Option<String>,
    usage_hour_retention: Option<String>,
    usage_day_retention: Option<String>,
    webhook_allow_private: Option<bool>,
    webhook_timeout: Option<String>,
    plans: Option<std::collections::BTreeMap<String, FilePlan>>,
}

/// `[plans.NAME]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlan {
    api_access: bool,
    rate_limit: Option<RateLimit>,
}

/// Why the configuration cannot be used; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid configuration: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

/// A secret setting; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub mode: Mode,
    /// `None` in development until [`Config::ensure_pepper`] generates or reads one.
    pub pepper: Option<Secret>,
    pub pepper_version: i64,
    pub pepper_previous: Vec<(i64, Secret)>,
    pub gateway_listen: Option<SocketAddr>,
    /// How long the gateway waits for an upstream (see [`ServerArgs`]).
    pub gateway_upstream_timeout: Duration,
    /// Peers whose `X-Forwarded-For` the gateway believes.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub redis_url: Option<String>,
    pub encryption_key: Option<[u8; 32]>,
    pub public_url: String,
    /// Plans organizations can be on, with their API access and default rate limit.
    pub plans: Vec<Plan>,
    pub timeouts: Timeouts,
    pub auth_failures: AuthFailures,
    pub events: EventSettings,
    pub usage: UsageSettings,
    /// Webhook deliveries (see [`ServerArgs`]).
    pub webhooks: crate::webhooks::Settings,
}

/// How long clients may take (see [`ServerArgs`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub request: Duration,
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            request: Duration::from_secs(30),
            shutdown: Duration::from_secs(30),
        }
    }
}

/// Failed-auth throttling: at most `limit` refused credentials per client IP within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailures {
    pub limit: u32,
    pub window: Duration,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures {
            limit: 50,
            window: Duration::from_secs(60),
        }
    }
}

/// The thresholds of the security-event detectors (see [`ServerArgs`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSettings {
    pub auth_failures: u32,
    pub auth_failures_window: Duration,
    pub new_ip_window: Duration,
    pub spike_requests: u32,
    pub spike_factor: u32,
    pub grace_use_interval: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            auth_failures: 20,
            auth_failures_window: Duration::from_secs(60),
            new_ip_window: Duration::from_secs(30 * 86_400),
            spike_requests: 100,
            spike_factor: 10,
            grace_use_interval: Duration::from_secs(3_600),
        }
    }
}

/// Usage counting (see [`ServerArgs`] for each setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSettings {
    /// Whether verifications are counted.
    pub counting: bool,
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    pub day_retention: Duration,
}

impl Default for UsageSettings {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        UsageSettings {
            counting: true,
            minute_retention: Duration::from_secs(2 * DAY),
            hour_retention: Duration::from_secs(90 * DAY),
            day_retention: Duration::from_secs(730 * DAY),
        }
    }
}

impl UsageSettings {
    /// How long counts of `granularity` are kept.
    pub fn retention(&self, granularity: crate::store::Granularity) -> Duration {
        match granularity {
            crate::store::Granularity::Minute => self.minute_retention,
            crate::store::Granularity::Hour => self.hour_retention,
            crate::store::Granularity::Day => self.day_retention,
        }
    }
}

/// A retention setting: a duration (see [`parse_duration`]) from one hour to ten years.
pub fn parse_retention(name: &str, text: &str) -> Result<Duration, ConfigError> {
    let invalid = || {
        ConfigError::Invalid(format!(
            "{name} must be a duration from 1h to 3650d (like 7d, 48h)"
        ))
    };
    let retention = parse_duration(name, text).map_err(|_| invalid())?;
    if !(3_600..=3_650 * 86_400).contains(&retention.as_secs()) {
        return Err(invalid());
    }
    Ok(retention)
}

/// A duration setting: whole seconds (`10`), or a number with `ms`, `s`, `m`, `h` or `d` (`500ms`,
/// `2m`, `30d`).
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        ConfigError::Invalid(format!(
            "{name} must be a number of seconds, or a number with ms, s, m, h or d (like 10, 500ms, 2m, 30d)"
        ))
    };
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(invalid)?),
        "h" => Duration::from_secs(n.checked_mul(3_600).ok_or_else(invalid)?),
        "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(invalid)?),
        _ => return Err(invalid()),
    };
    if d.is_zero() {
        return Err(ConfigError::Invalid(format!(
            "{name} must be more than zero"
        )));
    }
    Ok(d)
}

impl Config {
    /// Names of plans without API access.
    pub fn plans_without_access(&self) -> Vec<String> {
        self.plans
            .iter()
            .filter(|p| !p.api_access)
            .map(|p| p.name.clone())
            .collect()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("mode", &self.mode)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("pepper_version", &self.pepper_version)
            .field("gateway_listen", &self.gateway_listen)
            .field("gateway_upstream_timeout", &self.gateway_upstream_timeout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("encryption_key", &self.encryption_key.map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .field("timeouts", &self.timeouts)
            .field("auth_failures", &self.auth_failures)
            .field("events", &self.events)
            .field("usage", &self.usage)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Every `KEYWARD_*` variable Keyward reads (server and CLI).
pub const KNOWN_VARIABLES: &[&str] = &[
    "KEYWARD_CONFIG",
    "KEYWARD_LISTEN",
    "KEYWARD_DATA_DIR",
    "KEYWARD_DATABASE_URL",
    "KEYWARD_ENV",
    "KEYWARD_PEPPER",
    "KEYWARD_PEPPER_FILE",
    "KEYWARD_PEPPER_VERSION",
    "KEYWARD_PEPPER_PREVIOUS",
    "KEYWARD_GATEWAY_LISTEN",
    "KEYWARD_GATEWAY_UPSTREAM_TIMEOUT",
    "KEYWARD_TRUSTED_PROXIES",
    "KEYWARD_REDIS_URL",
    "KEYWARD_ENCRYPTION_KEY",
    "KEYWARD_ENCRYPTION_KEY_FILE",
    "KEYWARD_PUBLIC_URL",
    "KEYWARD_PLANS_WITHOUT_ACCESS",
    "KEYWARD_HEADER_TIMEOUT",
    "KEYWARD_REQUEST_TIMEOUT",
    "KEYWARD_SHUTDOWN_TIMEOUT",
    "KEYWARD_AUTH_FAILURE_LIMIT",
    "KEYWARD_AUTH_FAILURE_WINDOW",
    "KEYWARD_EVENTS_AUTH_FAILURES",
    "KEYWARD_EVENTS_AUTH_FAILURES_WINDOW",
    "KEYWARD_EVENTS_NEW_IP_WINDOW",
    "KEYWARD_EVENTS_SPIKE_REQUESTS",
    "KEYWARD_EVENTS_SPIKE_FACTOR",
    "KEYWARD_EVENTS_GRACE_USE_INTERVAL",
    "KEYWARD_USAGE_COUNTING",
    "KEYWARD_USAGE_MINUTE_RETENTION",
    "KEYWARD_USAGE_HOUR_RETENTION",
    "KEYWARD_USAGE_DAY_RETENTION",
    "KEYWARD_WEBHOOK_ALLOW_PRIVATE",
    "KEYWARD_WEBHOOK_TIMEOUT",
    "KEYWARD_LOG",
    "KEYWARD_URL",
    "KEYWARD_API_KEY",
];

/// Names of set `KEYWARD_*` variables that Keyward does not know (likely typos).
pub fn unknown_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("KEYWARD_") && !KNOWN_VARIABLES.contains(&k.as_str()))
        .collect()
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

fn pepper_secret(value: String, source: &str) -> Result<Secret, ConfigError> {
    if value.len() < 32 {
        return Err(ConfigError::Invalid(format!(
            "{source} must be at least 32 bytes; generate one with: openssl rand -hex 32"
        )));
    }
    Ok(Secret(value.into_bytes()))
}

impl Config {
    /// Resolves the settings: defaults < TOML file < variables and flags.
    pub fn load(args: &ServerArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Toml {
                    path: path.clone(),
                    message: e.message().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("keyward-data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("keyward.db").display()));
        let mode = match args.environment.clone().or(file.env).as_deref() {
            None | Some("development") => Mode::Development,
            Some("production") => Mode::Production,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "KEYWARD_ENV must be 'development' or 'production', not '{other}'"
                )));
            }
        };
        let pepper = match (
            args.pepper.clone().or(file.pepper),
            args.pepper_file.clone().or(file.pepper_file),
        ) {
            (Some(p), _) => Some(pepper_secret(p, "KEYWARD_PEPPER")?),
            (None, Some(path)) => Some(pepper_secret(
                read_secret_file(&path)?,
                "KEYWARD_PEPPER_FILE",
            )?),
            (None, None) => None,
        };
        if mode == Mode::Production && pepper.is_none() {
            return Err(ConfigError::Invalid(
                "KEYWARD_PEPPER (or KEYWARD_PEPPER_FILE) is required when KEYWARD_ENV=production; \
                 generate one with: openssl rand -hex 32"
                    .into(),
            ));
        }
        let pepper_version = args.pepper_version.or(file.pepper_version).unwrap_or(1);
        let mut pepper_previous = Vec::new();
        if let Some(list) = args.pepper_previous.clone().or(file.pepper_previous) {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (v, s) = item.split_once(':').ok_or_else(|| {
                    ConfigError::Invalid(
                        "KEYWARD_PEPPER_PREVIOUS entries must look like VERSION:SECRET".into(),
                    )
                })?;
                let v = v.parse::<i64>().map_err(|_| {
                    ConfigError::Invalid(
                        "KEYWARD_PEPPER_PREVIOUS: the version must be a number".into(),
                    )
                })?;
                pepper_previous.push((
                    v,
                    pepper_secret(s.to_owned(), "a KEYWARD_PEPPER_PREVIOUS secret")?,
                ));
            }
        }
        let encryption_key = match (
            args.encryption_key.clone().or(file.encryption_key),
            args.encryption_key_file
                .clone()
                .or(file.encryption_key_file),
        ) {
            (Some(k), _) => Some(parse_encryption_key(&k)?),
            (None, Some(path)) => Some(parse_encryption_key(&read_secret_file(&path)?)?),
            (None, None) => None,
        };
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let mut plans = match file.plans {
            Some(map) if !map.is_empty() => map
                .into_iter()
                .map(|(name, p)| Plan {
                    name,
                    api_access: p.api_access,
                    rate_limit: p.rate_limit,
                })
                .collect(),
            _ => Plan::defaults(),
        };
        let without = match (&args.plans_without_access, file.plans_without_access) {
            (Some(s), _) => Some(
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>(),
            ),
            (None, list) => list,
        };
        if let Some(without) = without {
            for p in &mut plans {
                p.api_access = !without.contains(&p.name);
            }
        }
        let duration = |name: &str, flag: &Option<String>, file: Option<String>, default| match flag
            .clone()
            .or(file)
        {
            Some(text) => parse_duration(name, &text),
            None => Ok(default),
        };
        let defaults = Timeouts::default();
        let timeouts = Timeouts {
            header: duration(
                "KEYWARD_HEADER_TIMEOUT",
                &args.header_timeout,
                file.header_timeout,
                defaults.header,
            )?,
            request: duration(
                "KEYWARD_REQUEST_TIMEOUT",
                &args.request_timeout,
                file.request_timeout,
                defaults.request,
            )?,
            shutdown: duration(
                "KEYWARD_SHUTDOWN_TIMEOUT",
                &args.shutdown_timeout,
                file.shutdown_timeout,
                defaults.shutdown,
            )?,
        };
        let auth_failures = AuthFailures {
            limit: args
                .auth_failure_limit
                .or(file.auth_failure_limit)
                .unwrap_or(AuthFailures::default().limit),
            window: duration(
                "KEYWARD_AUTH_FAILURE_WINDOW",
                &args.auth_failure_window,
                file.auth_failure_window,
                AuthFailures::default().window,
            )?,
        };
        let gateway_upstream_timeout = duration(
            "KEYWARD_GATEWAY_UPSTREAM_TIMEOUT",
            &args.gateway_upstream_timeout,
            file.gateway_upstream_timeout,
            Duration::from_secs(30),
        )?;
        let proxies: Vec<String> = match (&args.trusted_proxies, file.trusted_proxies) {
            (Some(list), _) => list.split(',').map(|p| p.trim().to_owned()).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        let trusted_proxies = proxies
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                crate::domain::validate::parse_ip_or_net(p).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "KEYWARD_TRUSTED_PROXIES: '{p}' is not an IP address or CIDR block (like 10.0.0.0/8)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let event_defaults = EventSettings::default();
        let events = EventSettings {
            auth_failures: args
                .events_auth_failures
                .or(file.events_auth_failures)
                .unwrap_or(event_defaults.auth_failures),
            auth_failures_window: duration(
                "KEYWARD_EVENTS_AUTH_FAILURES_WINDOW",
                &args.events_auth_failures_window,
                file.events_auth_failures_window,
                event_defaults.auth_failures_window,
            )?,
            new_ip_window: duration(
                "KEYWARD_EVENTS_NEW_IP_WINDOW",
                &args.events_new_ip_window,
                file.events_new_ip_window,
                event_defaults.new_ip_window,
            )?,
            spike_requests: args
                .events_spike_requests
                .or(file.events_spike_requests)
                .unwrap_or(event_defaults.spike_requests),
            spike_factor: args
                .events_spike_factor
                .or(file.events_spike_factor)
                .unwrap_or(event_defaults.spike_factor),
            grace_use_interval: duration(
                "KEYWARD_EVENTS_GRACE_USE_INTERVAL",
                &args.events_grace_use_interval,
                file.events_grace_use_interval,
                event_defaults.grace_use_interval,
            )?,
        };
        for (name, value) in [
            ("KEYWARD_EVENTS_AUTH_FAILURES", events.auth_failures),
            ("KEYWARD_EVENTS_SPIKE_REQUESTS", events.spike_requests),
            ("KEYWARD_EVENTS_SPIKE_FACTOR", events.spike_factor),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        let usage = {
            let defaults = UsageSettings::default();
            let retention =
                |name: &str, flag: &Option<String>, file: Option<String>, default| match flag
                    .clone()
                    .or(file)
                {
                    Some(text) => parse_retention(name, &text),
                    None => Ok(default),
                };
            let counting = match args
                .usage_counting
                .clone()
                .or(file.usage_counting)
                .as_deref()
            {
                None | Some("on") => true,
                Some("off") => false,
                Some(_) => {
                    return Err(ConfigError::Invalid(
                        "KEYWARD_USAGE_COUNTING must be 'on' or 'off'".into(),
                    ));
                }
            };
            let usage = UsageSettings {
                counting,
                minute_retention: retention(
                    "KEYWARD_USAGE_MINUTE_RETENTION",
                    &args.usage_minute_retention,
                    file.usage_minute_retention,
                    defaults.minute_retention,
                )?,
                hour_retention: retention(
                    "KEYWARD_USAGE_HOUR_RETENTION",
                    &args.usage_hour_retention,
                    file.usage_hour_retention,
                    defaults.hour_retention,
                )?,
                day_retention: retention(
                    "KEYWARD_USAGE_DAY_RETENTION",
                    &args.usage_day_retention,
                    file.usage_day_retention,
                    defaults.day_retention,
                )?,
            };
            if usage.minute_retention > usage.hour_retention
                || usage.hour_retention > usage.day_retention
            {
                return Err(ConfigError::Invalid(
                    "usage retention must not shrink with the granularity: \
                     KEYWARD_USAGE_MINUTE_RETENTION <= KEYWARD_USAGE_HOUR_RETENTION <= KEYWARD_USAGE_DAY_RETENTION"
                        .into(),
                ));
            }
            usage
        };
        let allow_private = match (&args.webhook_allow_private, file.webhook_allow_private) {
            (Some(text), _) => match text.trim() {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => {
                    return Err(ConfigError::Invalid(
                        "KEYWARD_WEBHOOK_ALLOW_PRIVATE must be true or false".into(),
                    ));
                }
            },
            (None, Some(b)) => b,
            (None, None) => mode == Mode::Development,
        };
        let webhooks = crate::webhooks::Settings {
            allow_private,
            timeout: duration(
                "KEYWARD_WEBHOOK_TIMEOUT",
                &args.webhook_timeout,
                file.webhook_timeout,
                crate::webhooks::Settings::default().timeout,
            )?,
        };
        if auth_failures.limit == 0 {
            return Err(ConfigError::Invalid(
                "KEYWARD_AUTH_FAILURE_LIMIT must be at least 1".into(),
            ));
        }
        Ok(Config {
            listen,
            data_dir,
            database_url,
            mode,
            pepper,
            pepper_version,
            pepper_previous,
            gateway_listen: args.gateway_listen.or(file.gateway_listen),
            gateway_upstream_timeout,
            trusted_proxies,
            redis_url: args.redis_url.clone().or(file.redis_url),
            encryption_key,
            public_url,
            plans,
            timeouts,
            auth_failures,
            events,
            usage,
            webhooks,
        })
    }

    /// In development, reads the pepper from the data directory, generating it (mode 0600) on the
    /// first start. Returns whether a new pepper was generated.
    pub fn ensure_pepper(&mut self) -> Result<bool, ConfigError> {
        if self.pepper.is_some() {
            return Ok(false);
        }
        let path = self.data_dir.join("pepper");
        if path.exists() {
            self.pepper = Some(pepper_secret(
                read_secret_file(&path)?,
                "the pepper file in the data directory",
            )?);
            return Ok(false);
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|source| ConfigError::Read {
            path: self.data_dir.clone(),
            source,
        })?;
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let secret = hex::encode(bytes);
        write_private(&path, &secret).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        self.pepper = Some(Secret(secret.into_bytes()));
        Ok(true)
    }
}

fn parse_encryption_key(s: &str) -> Result<[u8; 32], ConfigError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| {
        ConfigError::Invalid(
            "KEYWARD_ENCRYPTION_KEY must be 64 hex characters (32 bytes); generate one with: openssl rand -hex 32".into(),
        )
    })?;
    Ok(out)
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_a_unit_and_refuse_anything_else() {
        let d = |s: &str| parse_duration("X", s);
        assert_eq!(d("10").unwrap(), Duration::from_secs(10));
        assert_eq!(d(" 10s ").unwrap(), Duration::from_secs(10));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(d("1h").unwrap(), Duration::from_secs(3_600));
        assert_eq!(d("30d").unwrap(), Duration::from_secs(30 * 86_400));
        for bad in ["", "0", "ten", "10y", "-1", "1.5", "s", "0d"] {
            let err = d(bad).unwrap_err().to_string();
            assert!(err.starts_with("X must be"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://kw:s3cret@db.internal:5432/keyward"),
            "postgres://kw:<redacted>@db.internal:5432/keyward"
        );
        assert_eq!(
            redact_url("postgres://kw@db/keyward"),
            "postgres://kw@db/keyward"
        );
        assert_eq!(
            redact_url("sqlite://data/keyward.db"),
            "sqlite://data/keyward.db"
        );
    }

    #[test]
    fn production_without_a_pepper_is_refused_with_a_fix() {
        let args = ServerArgs {
            environment: Some("production".into()),
            ..Default::default()
        };
        let err = Config::load(&args).err().unwrap().to_string();
        assert!(
            err.contains("KEYWARD_PEPPER") && err.contains("openssl rand"),
            "{err}"
        );
    }

    #[test]
    fn toml_then_flags_override_defaults_and_debug_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\npepper = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let args = ServerArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(Config::load(&args).unwrap().listen.port(), 9001);
    }

    #[test]
    fn development_pepper_is_generated_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let mut c = Config::load(&args).unwrap();
        assert!(c.ensure_pepper().unwrap());
        let first = c.pepper.clone();
        let mut again = Config::load(&args).unwrap();
        assert!(!again.ensure_pepper().unwrap());
        assert_eq!(again.pepper, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("pepper"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn unknown_toml_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServerArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(
            Config::load(&args)
                .err()
                .unwrap()
                .to_string()
                .contains("lisen")
        );
        let args = ServerArgs {
            encryption_key: Some("zz".into()),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn usage_settings_take_days_hours_or_minutes_within_bounds() {
        let c = Config::load(&ServerArgs::default()).unwrap();
        assert_eq!(c.usage, UsageSettings::default());
        let args = ServerArgs {
            usage_counting: Some("off".into()),
            usage_minute_retention: Some("90m".into()),
            usage_hour_retention: Some("36h".into()),
            usage_day_retention: Some("30d".into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert!(!c.usage.counting);
        assert_eq!(c.usage.minute_retention, Duration::from_secs(5_400));
        assert_eq!(c.usage.hour_retention, Duration::from_secs(36 * 3_600));
        assert_eq!(c.usage.day_retention, Duration::from_secs(30 * 86_400));
        for bad in ["", "7", "0d", "59m", "3651d", "1w", "d", "-1d"] {
            let err = parse_retention("X", bad).unwrap_err().to_string();
            assert!(err.starts_with("X must be"), "{bad:?}: {err}");
        }
        let args = ServerArgs {
            usage_counting: Some("maybe".into()),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
        let args = ServerArgs {
            usage_minute_retention: Some("100d".into()),
            ..Default::default()
        };
        let err = Config::load(&args).err().unwrap().to_string();
        assert!(err.contains("must not shrink"), "{err}");
    }

    #[test]
    fn private_webhook_addresses_are_refused_by_default_in_production_only() {
        let prod = ServerArgs {
            environment: Some("production".into()),
            pepper: Some("0123456789abcdef0123456789abcdef".into()),
            ..Default::default()
        };
        assert!(!Config::load(&prod).unwrap().webhooks.allow_private);
        let on = ServerArgs {
            webhook_allow_private: Some("true".into()),
            ..prod.clone()
        };
        assert!(Config::load(&on).unwrap().webhooks.allow_private);
        let dev_off = ServerArgs {
            webhook_allow_private: Some("false".into()),
            webhook_timeout: Some("2s".into()),
            ..Default::default()
        };
        let c = Config::load(&dev_off).unwrap();
        assert!(!c.webhooks.allow_private);
        assert_eq!(c.webhooks.timeout, Duration::from_secs(2));
        let bad = ServerArgs {
            webhook_allow_private: Some("maybe".into()),
            ..Default::default()
        };
        let err = Config::load(&bad).err().unwrap().to_string();
        assert!(err.contains("KEYWARD_WEBHOOK_ALLOW_PRIVATE"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let args = ServerArgs {
            trusted_proxies: Some("10.0.0.0/8, 192.0.2.7,,2001:db8::/32".into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(c.gateway_upstream_timeout, Duration::from_secs(30));
        assert!(c.webhooks.allow_private, "on by default in development");
        let args = ServerArgs {
            trusted_proxies: Some("10.0.0.0/8,proxy.local".into()),
            ..Default::default()
        };
        let err = Config::load(&args).err().unwrap().to_string();
        assert!(err.contains("KEYWARD_TRUSTED_PROXIES"), "{err}");
    }
}
