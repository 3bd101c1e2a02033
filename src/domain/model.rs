//! The entities Keyward keeps: organizations, users, APIs, keys and audit events.
//!
//! Times are Unix milliseconds (`i64`) throughout the core; the HTTP layer formats them as RFC 3339.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::key::KeyHash;

/// Unix time in milliseconds.
pub type Millis = i64;

/// The built-in API whose keys are management keys.
pub const MANAGEMENT_API_SLUG: &str = "keyward";

/// Prefixes of management keys (the built-in API's are fixed).
pub const MANAGEMENT_PREFIXES: [&str; 2] = ["kw_live_", "kw_test_"];

/// Every scope a management key can hold.
pub const MANAGEMENT_SCOPES: &[(&str, &str)] = &[
    ("keys:read", "List and read keys"),
    ("keys:write", "Create, edit and rotate keys"),
    ("keys:delete", "Revoke and delete keys"),
    ("keys:reveal", "Reveal the secret of recoverable keys"),
    ("keys:verify", "Verify keys presented to your services"),
    ("usage:read", "Read usage"),
    ("audit:read", "Read the audit log"),
    ("apis:write", "Create and change protected APIs"),
    ("users:write", "Manage members and roles"),
    ("org:admin", "Change plan, access and key policies"),
];

/// Token types every API may use.
pub const BUILT_IN_TOKEN_TYPES: &[&str] = &["standard", "batch", "realtime"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "developer" => Role::Developer,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    /// Whether a member of this role may ever exercise `scope` (before ownership rules).
    pub fn permits(self, scope: &str) -> bool {
        match self {
            Role::Owner | Role::Admin => true,
            Role::Developer => matches!(
                scope,
                "keys:read"
                    | "keys:write"
                    | "keys:delete"
                    | "keys:verify"
                    | "usage:read"
                    | "audit:read"
            ),
            Role::Viewer => matches!(scope, "keys:read" | "usage:read" | "audit:read"),
        }
    }

    /// Whether the role may act on keys it neither owns nor created.
    pub fn manages_all_keys(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
    Deleted,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        Some(match s {
            "active" => UserStatus::Active,
            "disabled" => UserStatus::Disabled,
            "deleted" => UserStatus::Deleted,
            _ => return None,
        })
    }
}

/// A person signs in; a service account only owns keys (integrations), so that they survive any
/// person leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    #[default]
    Person,
    Service,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Person => "person",
            UserKind::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<UserKind> {
        Some(match s {
            "person" => UserKind::Person,
            "service" => UserKind::Service,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub org_id: String,
    /// Empty for a service account.
    pub email: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub kind: UserKind,
    pub created_at: Millis,
}

impl User {
    /// Whether the member is a service account (never signs in).
    pub fn is_service(&self) -> bool {
        self.kind == UserKind::Service
    }

    /// How the member appears in the audit log and lists: a person by email, a service account
    /// by name.
    pub fn label(&self) -> &str {
        if self.is_service() {
            &self.name
        } else {
            &self.email
        }
    }
}

/// Key policies an organization sets (contract section 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub key_limit: u32,
    pub allowed_expiries: Vec<ExpiryChoice>,
    pub scopes_editable: bool,
    pub single_active_key: bool,
    pub recoverable_keys: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            key_limit: 1000,
            allowed_expiries: ExpiryChoice::ALL.to_vec(),
            scopes_editable: true,
            single_active_key: false,
            recoverable_keys: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryChoice {
    #[serde(rename = "1y")]
    OneYear,
    #[serde(rename = "2y")]
    TwoYears,
    #[serde(rename = "5y")]
    FiveYears,
    #[serde(rename = "never")]
    Never,
}

impl ExpiryChoice {
    pub const ALL: [ExpiryChoice; 4] = [
        ExpiryChoice::OneYear,
        ExpiryChoice::TwoYears,
        ExpiryChoice::FiveYears,
        ExpiryChoice::Never,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "1y" => ExpiryChoice::OneYear,
            "2y" => ExpiryChoice::TwoYears,
            "5y" => ExpiryChoice::FiveYears,
            "never" => ExpiryChoice::Never,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryChoice::OneYear => "1y",
            ExpiryChoice::TwoYears => "2y",
            ExpiryChoice::FiveYears => "5y",
            ExpiryChoice::Never => "never",
        }
    }

    /// Years until expiry; `None` for never.
    pub fn years(self) -> Option<i32> {
        match self {
            ExpiryChoice::OneYear => Some(1),
            ExpiryChoice::TwoYears => Some(2),
            ExpiryChoice::FiveYears => Some(5),
            ExpiryChoice::Never => None,
        }
    }
}

/// A plan an organization can be on (configurable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Whether keys of organizations on this plan may call protected APIs.
    pub api_access: bool,
    /// Applies to keys of protected APIs that set no rate limit (nor their API).
    pub rate_limit: Option<RateLimit>,
}

impl Plan {
    /// `free` (no API access), `pro` and `enterprise`.
    pub fn defaults() -> Vec<Plan> {
        let rl = |requests, per_seconds| {
            Some(RateLimit {
                requests,
                per_seconds,
            })
        };
        vec![
            Plan {
                name: "free".into(),
                api_access: false,
                rate_limit: rl(60, 60),
            },
            Plan {
                name: "pro".into(),
                api_access: true,
                rate_limit: rl(1_000, 60),
            },
            Plan {
                name: "enterprise".into(),
                api_access: true,
                rate_limit: rl(10_000, 60),
            },
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub api_access: bool,
    pub billing_status: String,
    pub policies: Policies,
    pub created_at: Millis,
}

impl Org {
    /// Whether keys of this organization may call protected APIs right now.
    pub fn has_api_access(&self, plans_without_access: &[String]) -> bool {
        self.api_access
            && self.billing_status != "past_due"
            && !plans_without_access.iter().any(|p| p == &self.plan)
    }
}

/// A scope in an API's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    #[schema(value_type = crate::domain::schema::NameToken)]
    pub name: String,
    /// Up to 300 characters.
    #[serde(default)]
    #[schema(max_length = 300)]
    pub description: String,
}

/// A request allowance: `requests` per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// 1 to 1000000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "super::strict::int")]
    pub requests: u32,
    /// 1 to 86400 (a day).
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(deserialize_with = "super::strict::int")]
    pub per_seconds: u32,
}

/// A gateway route: requests whose path starts with `path_prefix` (and whose method matches, when
/// given) need these scopes and token types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[schema(value_type = crate::domain::schema::RoutePath)]
    pub path_prefix: String,
    /// Empty: every method.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schema::HttpMethod>)]
    pub methods: Vec<String>,
    /// From the API's scope catalogue.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schema::NameToken>)]
    pub required_scopes: Vec<String>,
    /// Of the API's token types; empty: any of them.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::schema::NameToken>)]
    pub token_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub slug: String,
    pub prefix_live: String,
    pub prefix_test: String,
    pub scopes: Vec<ScopeDef>,
    pub token_types: Vec<String>,
    pub accept_x_api_key: bool,
    pub default_rate_limit: Option<RateLimit>,
    pub upstream: Option<String>,
    /// Host names the gateway serves this API for; empty: any host.
    pub hosts: Vec<String>,
    pub routes: Vec<Route>,
    pub created_at: Millis,
}

impl Api {
    pub fn is_management(&self) -> bool {
        self.slug == MANAGEMENT_API_SLUG
    }

    pub fn prefix_for(&self, environment: Environment) -> &str {
        match environment {
            Environment::Live => &self.prefix_live,
            Environment::Test => &self.prefix_test,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.name == scope)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Daily,
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    #[serde(deserialize_with = "super::strict::string_enum")]
    pub interval: RefillInterval,
    /// 1 to 1000000000000.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "super::strict::int")]
    pub amount: i64,
}

/// Remaining uses of a key, optionally refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub remaining: i64,
    pub refill: Option<Refill>,
    pub refilled_at: Millis,
}

/// What a key is, in the order its fields are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Disabled,
    Expired,
    Revoked,
    Deleted,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Deleted => "deleted",
        }
    }
}

/// A stored key. Holds only the hash of its secret.
///
/// Laid out in declaration order (`repr(C)`), what every verification reads first: among many keys
/// a record is rarely in the CPU's cache, and these fields then arrive in one or two cache lines
/// instead of one line each.
#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub struct Key {
    pub hash: KeyHash,
    pub pepper_version: i64,
    pub deleted_at: Option<Millis>,
    /// When the key stops (or stopped) working; in the future during a rotation grace period.
    pub revoked_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    pub rate_limit: Option<RateLimit>,
    pub enabled: bool,
    pub ip_allowlist: Vec<IpNet>,
    pub quota: Option<Quota>,
    pub token_type: String,
    pub scopes: Vec<String>,
    /// `key_` followed by the 12 hex characters of the key's public id.
    pub id: String,
    pub org_id: String,
    pub api_id: String,
    pub name: String,
    pub description: Option<String>,
    /// The API prefix the key was issued with, e.g. `kw_live_`.
    pub key_prefix: String,
    pub environment: Environment,
    pub owner_id: String,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_used_at: Option<Millis>,
    pub last_used_ip: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub replaces: Option<String>,
    pub replaced_by: Option<String>,
    pub revoke_reason: Option<String>,
    pub exposed_at: Option<Millis>,
    pub recoverable: bool,
    /// AES-256-GCM ciphertext of the full key, for recoverable keys only.
    pub encrypted_secret: Option<String>,
    /// Named IP ACLs whose entries join the key's own allowlist.
    pub ip_acl_ids: Vec<String>,
    /// Key groups (of the key's API) whose scopes and rate limit the key takes.
    pub group_ids: Vec<String>,
    /// `type:id` patterns of what the key may reach (a trailing `*` matches any suffix); empty:
    /// everything.
    pub resources: Vec<String>,
    /// What the ACLs and groups above resolve to, read with the key: never stored on it.
    pub linked: Linked,
}

/// The resolved ACLs and groups of a key, as they were when the key was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Linked {
    /// Every entry of every ACL the key names.
    pub acl_nets: Vec<IpNet>,
    /// Scopes the key's groups grant beyond its own.
    pub group_scopes: Vec<String>,
    /// The rate limit of the first of the key's groups (in `group_ids` order) that sets one.
    pub group_rate_limit: Option<RateLimit>,
}

/// A named list of networks shared by many keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAcl {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub entries: Vec<IpNet>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Scopes and a rate limit shared by the keys of one API that join the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    pub id: String,
    pub org_id: String,
    pub api_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Key {
    /// The 12 hex characters after `key_`.
    pub fn public_id(&self) -> &str {
        self.id.strip_prefix("key_").unwrap_or(&self.id)
    }

    /// The masked form shown in lists: prefix and public id.
    pub fn display_prefix(&self) -> String {
        format!("{}{}", self.key_prefix, self.public_id())
    }

    pub fn status(&self, now: Millis) -> KeyStatus {
        if self.deleted_at.is_some() {
            KeyStatus::Deleted
        } else if self.revoked_at.is_some_and(|t| t <= now) {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else if !self.enabled {
            KeyStatus::Disabled
        } else {
            KeyStatus::Active
        }
    }

    /// The key's own scopes and those its groups grant.
    pub fn effective_scopes(&self) -> Vec<String> {
        let mut all = self.scopes.clone();
        for s in &self.linked.group_scopes {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }

    /// Whether the key holds `scope`, itself or through a group.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
            || self.linked.group_scopes.iter().any(|s| s == scope)
    }

    /// Whether the key is limited to some addresses: by its own allowlist or by an ACL. A key
    /// naming an ACL is limited even if the ACL could not be read: it fails closed.
    pub fn restricts_ip(&self) -> bool {
        !self.ip_allowlist.is_empty() || !self.ip_acl_ids.is_empty()
    }

    /// Whether the key is neither revoked nor deleted: whether it is still in use, or could be
    /// again.
    pub fn is_live(&self, now: Millis) -> bool {
        !matches!(self.status(now), KeyStatus::Revoked | KeyStatus::Deleted)
    }
}

/// The client address a request came from, normalized so that IPv4-mapped IPv6 matches IPv4 rules.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Who did something recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `user`, `key` or `system`.
    pub kind: &'static str,
    pub id: Option<String>,
    /// A user's email, or a key's masked prefix; never a secret.
    pub label: String,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: "system",
            id: None,
            label: "keyward".into(),
        }
    }
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub org_id: String,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub target_label: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub created_at: Millis,
}

/// Whether a quota refilled at `refilled_at` is due for its next refill at `now` (UTC calendar
/// days and months).
pub fn refill_due(interval: RefillInterval, refilled_at: Millis, now: Millis) -> bool {
    let day = |t: Millis| t.div_euclid(86_400_000);
    match interval {
        RefillInterval::Daily => day(now) > day(refilled_at),
        RefillInterval::Monthly => {
            let month = |t: Millis| {
                let d = time::OffsetDateTime::from_unix_timestamp(t.div_euclid(1000))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                i64::from(d.year()) * 12 + i64::from(u8::from(d.month()))
            };
            month(now) > month(refilled_at)
        }
    }
}
