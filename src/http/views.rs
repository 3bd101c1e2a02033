//! JSON shapes of the resources, as contract section 5 shows them.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::model::{Api, Key, Millis, RateLimit, Refill, Route, ScopeDef};

/// RFC 3339 in UTC, e.g. `2028-11-22T10:00:00Z` (fractions of a second when not whole seconds).
pub fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn opt_time(ms: Option<Millis>) -> Option<String> {
    ms.map(rfc3339)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    /// Uses left; `null` for no quota.
    pub remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

/// A key as returned: never its hash; `key` only on creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView<'a> {
    pub id: &'a str,
    pub api_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// The masked form: API prefix and public id.
    pub prefix: String,
    #[serde(rename = "type")]
    pub token_type: &'a str,
    pub environment: &'static str,
    pub scopes: &'a [String],
    #[schema(value_type = Vec<String>)]
    pub ip_allowlist: &'a [ipnet::IpNet],
    pub expires_at: Option<String>,
    /// `active`, `disabled`, `expired`, `revoked` or `deleted`.
    pub status: &'static str,
    pub enabled: bool,
    pub owner_id: &'a str,
    pub created_by: &'a str,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub rate_limit: Option<RateLimit>,
    pub quota: QuotaView,
    #[schema(value_type = Object)]
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
    pub replaces: Option<&'a str>,
    pub replaced_by: Option<&'a str>,
    /// When the key stopped (or, during a rotation grace period, will stop) working.
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<&'a str>,
    pub deleted_at: Option<String>,
    /// When the key was seen in a URL and flagged as exposed.
    pub exposed_at: Option<String>,
    pub recoverable: bool,
}

impl<'a> KeyView<'a> {
    pub fn new(k: &'a Key, now: Millis) -> Self {
        Self::with_usage(k, now, None)
    }

    /// `usage` overrides the stored `last_used` when it is newer (not yet written behind).
    pub fn with_usage(k: &'a Key, now: Millis, usage: Option<(Millis, Option<String>)>) -> Self {
        let (last_used_at, last_used_ip) = match usage {
            Some((at, ip)) if k.last_used_at.is_none_or(|t| t < at) => (Some(at), ip),
            _ => (k.last_used_at, k.last_used_ip.clone()),
        };
        KeyView {
            id: &k.id,
            api_id: &k.api_id,
            name: &k.name,
            description: k.description.as_deref(),
            prefix: k.display_prefix(),
            token_type: &k.token_type,
            environment: k.environment.as_str(),
            scopes: &k.scopes,
            ip_allowlist: &k.ip_allowlist,
            expires_at: opt_time(k.expires_at),
            status: k.status(now).as_str(),
            enabled: k.enabled,
            owner_id: &k.owner_id,
            created_by: &k.created_by,
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
            last_used_at: opt_time(last_used_at),
            last_used_ip,
            rate_limit: k.rate_limit,
            quota: QuotaView {
                remaining: k.quota.map(|q| q.remaining),
                refill: k.quota.and_then(|q| q.refill),
            },
            metadata: &k.metadata,
            replaces: k.replaces.as_deref(),
            replaced_by: k.replaced_by.as_deref(),
            revoked_at: opt_time(k.revoked_at),
            revoke_reason: k.revoke_reason.as_deref(),
            deleted_at: opt_time(k.deleted_at),
            exposed_at: opt_time(k.exposed_at),
            recoverable: k.recoverable,
        }
    }
}

/// A new key: everything above plus the full `key`, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyView<'a> {
    /// The full key. Store it now: it is not shown again.
    pub key: &'a str,
    #[serde(flatten)]
    pub data: KeyView<'a>,
    /// Keys revoked because the organization allows one active key per user per API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked_keys: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList<'a> {
    pub data: Vec<KeyView<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPrefixes {
    pub live: String,
    pub test: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiView {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub key_prefix: KeyPrefixes,
    pub scopes: Vec<ScopeDef>,
    pub token_types: Vec<String>,
    pub accept_x_api_key: bool,
    pub default_rate_limit: Option<RateLimit>,
    pub upstream: Option<String>,
    pub routes: Vec<Route>,
    pub created_at: String,
}

impl From<&Api> for ApiView {
    fn from(a: &Api) -> Self {
        ApiView {
            id: a.id.clone(),
            name: a.name.clone(),
            slug: a.slug.clone(),
            key_prefix: KeyPrefixes {
                live: a.prefix_live.clone(),
                test: a.prefix_test.clone(),
            },
            scopes: a.scopes.clone(),
            token_types: a.token_types.clone(),
            accept_x_api_key: a.accept_x_api_key,
            default_rate_limit: a.default_rate_limit,
            upstream: a.upstream.clone(),
            routes: a.routes.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiList {
    pub data: Vec<ApiView>,
}

/// Encodes a (time, id) position as an opaque cursor.
pub fn encode_cursor(t: Millis, id: &str) -> String {
    hex::encode(format!("{t}|{id}"))
}

/// The position [`encode_cursor`] wrote, or `None` for anything else (lowercase hex of up to 18
/// digits, `|`, and an id of lowercase letters, digits and `_`, as documented).
pub fn decode_cursor(c: &str) -> Option<(Millis, String)> {
    if !c
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let raw = String::from_utf8(hex::decode(c).ok()?).ok()?;
    let (t, id) = raw.split_once('|')?;
    let t_ok = (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (t_ok && id_ok).then(|| Some((t.parse().ok()?, id.to_owned())))?
}
