//! JSON shapes of the resources, as contract section 5 shows them.

use std::io::Write as _;
use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::model::{Api, Key, Millis, RateLimit, Refill, Route, ScopeDef};

/// RFC 3339 in UTC, e.g. `2028-11-22T10:00:00Z` (milliseconds when not whole seconds). Written
/// by hand because keys are rendered on every verification; checked against `time` in tests.
pub fn rfc3339(ms: Millis) -> String {
    let mut buf = [0u8; 24];
    match rfc3339_into(ms, &mut buf) {
        Some(len) => std::str::from_utf8(&buf[..len])
            .expect("ASCII digits and separators")
            .to_owned(),
        None => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default(),
    }
}

thread_local! {
    /// The instant this thread wrote last, as [`rfc3339_into`] wrote it: verdicts answered one
    /// after another mostly carry the same millisecond (their requests' time, as last use).
    static LAST_WRITTEN: std::cell::Cell<(Millis, [u8; 24], usize)> =
        const { std::cell::Cell::new((Millis::MIN, [0; 24], 0)) };
}

/// Writes [`rfc3339`] of `ms` into `buf` and returns its length, for years 0 to 9999.
fn rfc3339_into(ms: Millis, buf: &mut [u8; 24]) -> Option<usize> {
    let (last, text, len) = LAST_WRITTEN.get();
    if last == ms && len > 0 {
        *buf = text;
        return Some(len);
    }
    let len = rfc3339_compute(ms, buf)?;
    LAST_WRITTEN.set((ms, *buf, len));
    Some(len)
}

fn rfc3339_compute(ms: Millis, buf: &mut [u8; 24]) -> Option<usize> {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, m, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    // Digits written straight into the buffer: no formatting machinery on the hot path.
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, h, 2);
    put(14, m, 2);
    put(17, s, 2);
    let len = match millis {
        0 => 19,
        ms if ms % 100 == 0 => {
            put(20, ms / 100, 1);
            21
        }
        ms if ms % 10 == 0 => {
            put(20, ms / 10, 2);
            22
        }
        ms => {
            put(20, ms, 3);
            23
        }
    };
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[len] = b'Z';
    Some(len + 1)
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

/// A key as returned: never its hash; `key` only on creation and rotation. Borrows the stored
/// key, so that rendering one (on every verification) allocates only its timestamps.
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

/// Fields of [`KeyView`] that change from one request to the next.
const DYNAMIC_FIELDS: [&str; 4] = ["status", "last_used_at", "last_used_ip", "quota"];

/// The JSON object of a key's [`KeyView`] without the fields that change per request. Rendered
/// once per cached key record (see [`crate::verify::CachedKey::rendered`]), so that a verification
/// does not serialize the whole key every time.
pub fn render_fixed(k: &Key) -> String {
    let mut value = serde_json::to_value(KeyView::new(k, 0)).expect("a key view serializes");
    if let Some(map) = value.as_object_mut() {
        for f in DYNAMIC_FIELDS {
            map.remove(f);
        }
    }
    value.to_string()
}

/// Appends the JSON of [`KeyView::with_usage`] to `out`: `fixed` (from [`render_fixed`]) plus the
/// fields that change per request, written directly (this runs on every verification).
/// `quota_remaining` overrides the stored quota (spent just now).
pub fn write_key_json(
    out: &mut Vec<u8>,
    fixed: &[u8],
    k: &Key,
    now: Millis,
    usage: Option<(Millis, Option<IpAddr>)>,
    quota_remaining: Option<i64>,
) {
    // `fixed` is a JSON object with at least one field: continue it.
    out.extend_from_slice(&fixed[..fixed.len() - 1]);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(k.status(now).as_str().as_bytes());
    out.extend_from_slice(b"\",\"last_used_at\":");
    match usage {
        Some((at, ip)) if k.last_used_at.is_none_or(|t| t < at) => {
            push_time(out, Some(at));
            out.extend_from_slice(b",\"last_used_ip\":");
            match ip {
                Some(ip) => {
                    // An address's text needs no escaping.
                    out.push(b'"');
                    push_ip(out, ip);
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        _ => {
            push_time(out, k.last_used_at);
            out.extend_from_slice(b",\"last_used_ip\":");
            match &k.last_used_ip {
                Some(ip) => push_str(out, ip),
                None => out.extend_from_slice(b"null"),
            }
        }
    }
    out.extend_from_slice(b",\"quota\":{\"remaining\":");
    push_opt_int(out, quota_remaining.or(k.quota.map(|q| q.remaining)));
    if let Some(refill) = k.quota.and_then(|q| q.refill) {
        out.extend_from_slice(b",\"refill\":");
        serde_json::to_writer(&mut *out, &refill).expect("plain data serializes");
    }
    out.extend_from_slice(b"}}");
}

/// Appends an address as text: IPv4 digit by digit (the common case, on every verification),
/// IPv6 through its `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, octet);
            }
        }
        IpAddr::V6(v6) => write!(out, "{v6}").expect("writing to a Vec cannot fail"),
    }
}

/// Appends `s` as a JSON string.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

/// Appends an integer.
pub fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends an integer, or `null`.
fn push_opt_int(out: &mut Vec<u8>, n: Option<i64>) {
    match n {
        Some(n) => push_int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an instant as an RFC 3339 JSON string, or `null`.
fn push_time(out: &mut Vec<u8>, ms: Option<Millis>) {
    let Some(ms) = ms else {
        out.extend_from_slice(b"null");
        return;
    };
    let mut buf = [0u8; 24];
    match rfc3339_into(ms, &mut buf) {
        Some(len) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..len]);
            out.push(b'"');
        }
        None => push_str(out, &rfc3339(ms)),
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

pub fn decode_cursor(c: &str) -> Option<(Millis, String)> {
    let raw = String::from_utf8(hex::decode(c).ok()?).ok()?;
    let (t, id) = raw.split_once('|')?;
    Some((t.parse().ok()?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_key_equals_the_full_view_in_every_state() {
        use crate::domain::key::KeyHash;
        use crate::domain::model::{Environment, Quota, Refill, RefillInterval};
        let mut k = Key {
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
        };
        let fixed = render_fixed(&k);
        let cases = [
            (1_700, None, None),
            (
                1_700,
                Some((1_800, Some("192.0.2.1".parse().unwrap()))),
                Some(4),
            ),
            (
                1_700,
                Some((1_800, Some("2001:db8::1".parse().unwrap()))),
                None,
            ),
            (2_500_000, Some((1_000, None)), None),
            (3_500_000, None, None),
        ];
        for (now, usage, quota) in cases {
            let spliced = written(&fixed, &k, now, usage, quota);
            let usage = usage.map(|(at, ip)| (at, ip.map(|ip: IpAddr| ip.to_string())));
            let mut view = KeyView::with_usage(&k, now, usage);
            if let Some(q) = quota {
                view.quota.remaining = Some(q);
            }
            assert_eq!(spliced, serde_json::to_value(view).unwrap(), "at {now}");
        }
        k.quota = None;
        k.last_used_at = None;
        let fixed = render_fixed(&k);
        let spliced = written(&fixed, &k, 5, None, None);
        assert_eq!(spliced, serde_json::to_value(KeyView::new(&k, 5)).unwrap());
    }

    fn written(
        fixed: &str,
        k: &Key,
        now: Millis,
        usage: Option<(Millis, Option<IpAddr>)>,
        quota: Option<i64>,
    ) -> serde_json::Value {
        let mut out = Vec::new();
        write_key_json(&mut out, fixed.as_bytes(), k, now, usage, quota);
        serde_json::from_slice(&out).expect("the written key is JSON")
    }

    #[test]
    fn addresses_are_written_as_their_display() {
        for ip in [
            "0.0.0.0",
            "10.0.255.7",
            "192.0.2.1",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn the_fast_rfc3339_formatter_agrees_with_the_time_crate() {
        let reference = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap()
                .format(&Rfc3339)
                .unwrap()
        };
        let mut ms: i64 = -2_208_988_800_000; // 1900-01-01
        while ms < 4_102_444_800_000 {
            // 2100-01-01
            assert_eq!(rfc3339(ms), reference(ms), "{ms}");
            ms += 86_399_123 * 7 + 1;
        }
        for ms in [
            0,
            951_782_400_000,
            1_709_208_000_000,
            1_795_000_000_001,
            253_402_300_799_999,
        ] {
            assert_eq!(rfc3339(ms), reference(ms), "{ms}");
        }
        // The same instant again (answered from the thread's last one), and then others.
        for ms in [
            1_795_000_000_120,
            1_795_000_000_120,
            1_795_000_000_121,
            0,
            0,
        ] {
            assert_eq!(rfc3339(ms), reference(ms), "{ms}");
        }
    }
}
