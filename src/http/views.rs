//! JSON shapes of the resources, as contract section 5 shows them.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::model::{Api, IpAcl, Key, KeyGroup, Millis, RateLimit, Refill, Route, ScopeDef};

/// RFC 3339 in UTC, e.g. `2028-11-22T10:00:00Z` (fractions of a second when not whole seconds).
pub fn rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An instant, serialized as [`rfc3339`] without building a string first: a key view carries
/// several, and one is rendered on every verification.
#[derive(Debug, Clone, Copy)]
pub struct Instant(pub Millis);

impl Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 40];
        let mut out = std::io::Cursor::new(&mut buf[..]);
        let written = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format_into(&mut out, &Rfc3339).ok());
        match written {
            Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
            None => s.serialize_str(""),
        }
    }
}

fn opt_time(ms: Option<Millis>) -> Option<Instant> {
    ms.map(Instant)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    /// Uses left; `null` for no quota.
    pub remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

/// A key as returned: never its hash; `key` only on creation and rotation. Its fields are those of
/// the record, which change only when the key does, and those of its state now.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView<'a> {
    #[serde(flatten)]
    pub record: KeyRecordView<'a>,
    #[serde(flatten)]
    pub state: KeyStateView,
}

/// The fields of a key that change only when the key does.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRecordView<'a> {
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
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Instant>,
    pub enabled: bool,
    pub owner_id: &'a str,
    pub created_by: &'a str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Instant,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Instant,
    pub rate_limit: Option<RateLimit>,
    #[schema(value_type = Object)]
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
    pub replaces: Option<&'a str>,
    pub replaced_by: Option<&'a str>,
    /// When the key stopped (or, during a rotation grace period, will stop) working.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Instant>,
    pub revoke_reason: Option<&'a str>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Instant>,
    /// When the key was seen in a URL and flagged as exposed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub exposed_at: Option<Instant>,
    pub recoverable: bool,
    /// Named IP ACLs whose entries join `ip_allowlist`.
    pub ip_acl_ids: &'a [String],
    /// Key groups the key belongs to.
    pub group_ids: &'a [String],
    /// Its own scopes plus those of its groups.
    pub effective_scopes: Vec<String>,
    /// `type:id` patterns of what the key may reach; empty: everything.
    pub resources: &'a [String],
}

/// The fields of a key that change with time and use.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyStateView {
    /// `active`, `disabled`, `expired`, `revoked` or `deleted`.
    pub status: &'static str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Instant>,
    pub last_used_ip: Option<String>,
    pub quota: QuotaView,
}

impl<'a> KeyRecordView<'a> {
    pub fn new(k: &'a Key) -> Self {
        KeyRecordView {
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
            enabled: k.enabled,
            owner_id: &k.owner_id,
            created_by: &k.created_by,
            created_at: Instant(k.created_at),
            updated_at: Instant(k.updated_at),
            rate_limit: k.rate_limit,
            metadata: &k.metadata,
            replaces: k.replaces.as_deref(),
            replaced_by: k.replaced_by.as_deref(),
            revoked_at: opt_time(k.revoked_at),
            revoke_reason: k.revoke_reason.as_deref(),
            deleted_at: opt_time(k.deleted_at),
            exposed_at: opt_time(k.exposed_at),
            recoverable: k.recoverable,
            ip_acl_ids: &k.ip_acl_ids,
            group_ids: &k.group_ids,
            effective_scopes: k.effective_scopes(),
            resources: &k.resources,
        }
    }

    /// The record's JSON object, as a key's rendering for [`key_json`].
    pub fn render(k: &Key) -> String {
        serde_json::to_string(&KeyRecordView::new(k)).expect("a key record serializes")
    }
}

impl KeyStateView {
    /// The state of `k` at `now`; `usage` overrides the stored `last_used` when it is newer (not
    /// yet written behind).
    pub fn new(k: &Key, now: Millis, usage: Option<(Millis, Option<String>)>) -> Self {
        let (last_used_at, last_used_ip) = match usage {
            Some((at, ip)) if k.last_used_at.is_none_or(|t| t < at) => (Some(at), ip),
            _ => (k.last_used_at, k.last_used_ip.clone()),
        };
        KeyStateView {
            status: k.status(now).as_str(),
            last_used_at: opt_time(last_used_at),
            last_used_ip,
            quota: QuotaView {
                remaining: k.quota.map(|q| q.remaining),
                refill: k.quota.and_then(|q| q.refill),
            },
        }
    }
}

impl<'a> KeyView<'a> {
    pub fn new(k: &'a Key, now: Millis) -> Self {
        Self::with_usage(k, now, None)
    }

    /// `usage` overrides the stored `last_used` when it is newer (not yet written behind).
    pub fn with_usage(k: &'a Key, now: Millis, usage: Option<(Millis, Option<String>)>) -> Self {
        KeyView {
            record: KeyRecordView::new(k),
            state: KeyStateView::new(k, now, usage),
        }
    }
}

/// The JSON of a key's [`KeyView`], from its record's rendering ([`KeyRecordView::render`], made
/// once per cached record) and its state now: the same object, without serializing the record on
/// every verification.
pub fn key_json(record: &str, state: &KeyStateView) -> String {
    let state = serde_json::to_string(state).expect("a key's state serializes");
    let record = record.strip_suffix('}').unwrap_or(record);
    let mut out = String::with_capacity(record.len() + state.len() + 1);
    out.push_str(record);
    out.push(',');
    out.push_str(state.strip_prefix('{').unwrap_or(&state));
    out
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
    pub hosts: Vec<String>,
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
            hosts: a.hosts.clone(),
            routes: a.routes.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiList {
    pub data: Vec<ApiView>,
}

/// A named IP ACL as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct IpAclView {
    pub id: String,
    pub name: String,
    pub entries: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&IpAcl> for IpAclView {
    fn from(a: &IpAcl) -> Self {
        IpAclView {
            id: a.id.clone(),
            name: a.name.clone(),
            entries: a.entries.iter().map(|n| n.to_string()).collect(),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IpAclList {
    pub data: Vec<IpAclView>,
}

/// A key group as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyGroupView {
    pub id: String,
    pub name: String,
    pub api_id: String,
    pub scopes: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&KeyGroup> for KeyGroupView {
    fn from(g: &KeyGroup) -> Self {
        KeyGroupView {
            id: g.id.clone(),
            name: g.name.clone(),
            api_id: g.api_id.clone(),
            scopes: g.scopes.clone(),
            rate_limit: g.rate_limit,
            created_at: rfc3339(g.created_at),
            updated_at: rfc3339(g.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyGroupList {
    pub data: Vec<KeyGroupView>,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::key::KeyHash;
    use crate::domain::model::{Environment, Quota, RefillInterval};

    /// A key with every optional field set, and text that needs escaping.
    pub(crate) fn sample_key() -> Key {
        Key {
            id: "key_3f9a0c1e7b2d".into(),
            org_id: "org_1".into(),
            api_id: "api_1".into(),
            name: "Quote \" and ünïcode".into(),
            description: Some("line\nbreak".into()),
            key_prefix: "kw_live_".into(),
            token_type: "batch".into(),
            environment: Environment::Live,
            scopes: vec!["a:read".into()],
            ip_allowlist: vec!["203.0.113.0/24".parse().unwrap()],
            expires_at: Some(2_000_000),
            enabled: true,
            hash: KeyHash([0; 32]),
            pepper_version: 1,
            owner_id: "usr_1".into(),
            created_by: "usr_1".into(),
            created_at: 1_000,
            updated_at: 1_500,
            last_used_at: Some(1_600),
            last_used_ip: Some("198.51.100.1".into()),
            rate_limit: Some(RateLimit {
                requests: 5,
                per_seconds: 60,
            }),
            quota: Some(Quota {
                remaining: 9,
                refill: Some(Refill {
                    interval: RefillInterval::Daily,
                    amount: 10,
                }),
                refilled_at: 0,
            }),
            metadata: serde_json::json!({"team": "x", "n": 1})
                .as_object()
                .unwrap()
                .clone(),
            replaces: Some("key_000000000000".into()),
            replaced_by: None,
            revoked_at: Some(3_000_000),
            revoke_reason: Some("rotated".into()),
            deleted_at: None,
            exposed_at: None,
            recoverable: false,
            encrypted_secret: None,
            ip_acl_ids: Vec::new(),
            group_ids: Vec::new(),
            resources: Vec::new(),
            linked: Default::default(),
        }
    }

    /// The verify endpoint's spliced key is the documented key object, field for field.
    #[test]
    fn a_key_from_its_rendered_record_equals_its_whole_view() {
        let mut k = sample_key();
        let cases = [
            (1_700, None),
            (1_700, Some((1_800, Some("192.0.2.1".to_owned())))),
            (2_500_000, Some((1_000, None))),
            (3_500_000, None),
        ];
        for (now, usage) in cases {
            let spliced = key_json(
                &KeyRecordView::render(&k),
                &KeyStateView::new(&k, now, usage.clone()),
            );
            let spliced: serde_json::Value = serde_json::from_str(&spliced).unwrap();
            let whole = serde_json::to_value(KeyView::with_usage(&k, now, usage)).unwrap();
            assert_eq!(spliced, whole, "at {now}");
            assert_eq!(whole["status"].as_str().unwrap(), k.status(now).as_str());
        }
        k.quota = None;
        k.last_used_at = None;
        let spliced = key_json(&KeyRecordView::render(&k), &KeyStateView::new(&k, 5, None));
        let spliced: serde_json::Value = serde_json::from_str(&spliced).unwrap();
        assert_eq!(spliced, serde_json::to_value(KeyView::new(&k, 5)).unwrap());
    }

    #[test]
    fn instants_are_written_as_rfc3339() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_795_000_000_120, "2026-11-18T11:06:40.12Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(serde_json::to_value(Instant(ms)).unwrap(), text);
            assert_eq!(rfc3339(ms), text);
        }
    }
}
