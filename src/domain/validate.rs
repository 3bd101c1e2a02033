//! Field validation shared by the API, the dashboard and the CLI. Every problem is collected, so
//! a 422 lists all invalid fields at once.

use ipnet::IpNet;
use serde::Serialize;
use time::OffsetDateTime;

use super::model::{ExpiryChoice, Millis, Policies, RateLimit, Refill};

/// One invalid field, reported in a 422's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Collects field errors.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was added.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 500;
pub const METADATA_MAX_BYTES: usize = 4096;
pub const IP_ALLOWLIST_MAX: usize = 100;
pub const SCOPES_MAX: usize = 100;

/// A display name: 1 to `max` characters, not all spaces, no control characters; stored trimmed.
pub fn text(errors: &mut Errors, field: &str, value: &str, max: usize) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
    trimmed.to_owned()
}

/// Free text that may be empty (a reason): at most `max` characters, no control characters.
pub fn free_text(errors: &mut Errors, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
}

/// Parses addresses and CIDR blocks; a bare address becomes a /32 or /128.
pub fn ip_allowlist(errors: &mut Errors, field: &str, entries: &[String]) -> Vec<IpNet> {
    if entries.len() > IP_ALLOWLIST_MAX {
        errors.add(
            field,
            format!("must have at most {IP_ALLOWLIST_MAX} entries"),
        );
        return Vec::new();
    }
    let mut nets = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match parse_ip_or_net(entry) {
            Some(net) => {
                if !nets.contains(&net) {
                    nets.push(net)
                }
            }
            None => errors.add(
                format!("{field}[{i}]"),
                "must be an IPv4 or IPv6 address or CIDR block (like 203.0.113.7 or 203.0.113.0/24)",
            ),
        }
    }
    nets
}

/// One allowlist entry: `203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`, exactly (the documented
/// form: no spaces, a prefix length without leading zeros).
pub fn parse_ip_or_net(entry: &str) -> Option<IpNet> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let Some(prefix) = prefix else {
        return Some(IpNet::from(addr));
    };
    let canonical = prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && (prefix == "0" || !prefix.starts_with('0'));
    if !canonical {
        return None;
    }
    IpNet::new(addr, prefix.parse().ok()?)
        .ok()
        .map(|n| n.trunc())
}

/// An upstream URL as documented: `http://` or `https://`, a host (a name of letters, digits, `.`
/// and `-` that starts and ends with a letter or digit, or a bracketed IPv6 address), an optional
/// port (0 to 65535, no leading zeros), an optional path of URL path characters; nothing else.
pub fn is_valid_upstream(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        let b = h.as_bytes();
        (1..=253).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    });
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'))
            && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
    });
    host_ok && port_ok && (path.is_empty() || is_url_path(path))
}

/// Most host names one API may list.
pub const HOSTS_MAX: usize = 50;

/// A host name as the gateway matches it: lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit, 1 to 253 characters, no port.
pub fn is_valid_host(host: &str) -> bool {
    let b = host.as_bytes();
    (1..=253).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `/` followed by URL path characters (unreserved, sub-delims, `:`, `@`, `/`, and `%` with two hex
/// digits).
pub fn is_url_path(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// A metadata object of at most 4 KiB once serialized.
pub fn metadata(errors: &mut Errors, value: &serde_json::Map<String, serde_json::Value>) {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > METADATA_MAX_BYTES {
        errors.add(
            "metadata",
            format!("must be at most {METADATA_MAX_BYTES} bytes as JSON (is {size})"),
        );
    }
}

pub fn rate_limit(errors: &mut Errors, field: &str, rl: &RateLimit) {
    if !(1..=1_000_000).contains(&rl.requests) {
        errors.add(format!("{field}.requests"), "must be between 1 and 1000000");
    }
    if !(1..=86_400).contains(&rl.per_seconds) {
        errors.add(
            format!("{field}.per_seconds"),
            "must be between 1 and 86400",
        );
    }
}

pub fn quota(errors: &mut Errors, remaining: i64, refill: Option<&Refill>) {
    if !(0..=1_000_000_000_000).contains(&remaining) {
        errors.add("quota.remaining", "must be between 0 and 1000000000000");
    }
    if let Some(r) = refill {
        if !(1..=1_000_000_000_000).contains(&r.amount) {
            errors.add("quota.refill.amount", "must be between 1 and 1000000000000");
        }
    }
}

/// What [`is_valid_name_token`] asks, for error messages.
pub const NAME_TOKEN_RULE: &str = "must be lowercase letters, digits and ':', '_', '-', '.', 1 to 64 characters, starting with a letter or digit";

/// A scope or token type name: lowercase letters, digits and `:_-.`, 1 to 64 characters.
pub fn is_valid_name_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'_' | b'-' | b'.')
        })
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// An API slug: lowercase letters, digits and `-`, 1 to 63 characters, starting alphanumeric.
pub fn is_valid_slug(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// Adds calendar years, moving 29 February to 28 February in non-leap years.
pub fn add_years(now: Millis, years: i32) -> Millis {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let year = t.year() + years;
    let moved = t.replace_year(year).unwrap_or_else(|_| {
        t.replace_day(28)
            .and_then(|t| t.replace_year(year))
            .unwrap_or(t)
    });
    (moved.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Resolves the create body's `expires`/`expires_at` against the organization's policy.
///
/// Omitted: `never` where allowed, else the longest allowed choice. A date is allowed when `never`
/// is, or when it is no later than the longest allowed choice.
pub fn expiry(
    errors: &mut Errors,
    expires: Option<&str>,
    expires_at: Option<Millis>,
    policies: &Policies,
    now: Millis,
) -> Option<Millis> {
    let allowed = &policies.allowed_expiries;
    let longest = || {
        if allowed.contains(&ExpiryChoice::Never) {
            None
        } else {
            allowed
                .iter()
                .filter_map(|c| c.years())
                .max()
                .map(|y| add_years(now, y))
        }
    };
    let names = || {
        allowed
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (expires, expires_at) {
        (Some(_), Some(_)) => {
            errors.add("expires", "give either 'expires' or 'expires_at', not both");
            None
        }
        (Some(choice), None) => match ExpiryChoice::parse(choice) {
            Some(c) if allowed.contains(&c) => c.years().map(|y| add_years(now, y)),
            Some(c) => {
                errors.add(
                    "expires",
                    format!(
                        "'{}' is not allowed by the organization's policy; allowed: {}",
                        c.as_str(),
                        names()
                    ),
                );
                None
            }
            None => {
                errors.add(
                    "expires",
                    "must be one of 1y, 2y, 5y, never (or use expires_at)",
                );
                None
            }
        },
        (None, Some(at)) => {
            if at <= now {
                errors.add("expires_at", "must be in the future");
            } else if let Some(limit) = longest() {
                if at > limit {
                    errors.add(
                        "expires_at",
                        format!(
                            "must not be later than the longest expiry the policy allows ({})",
                            names()
                        ),
                    );
                }
            }
            Some(at)
        }
        (None, None) => longest(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_entries_are_taken_in_their_documented_form_only() {
        for ok in [
            "203.0.113.7",
            "203.0.113.0/24",
            "10.1.2.3/8",
            "::/0",
            "2001:db8::/32",
            "::ffff:1.2.3.4/128",
            "0.0.0.0/0",
        ] {
            assert!(parse_ip_or_net(ok).is_some(), "{ok}");
        }
        for bad in [
            " 203.0.113.7",
            "203.0.113.7 ",
            "203.0.113.0/33",
            "203.0.113.0/08",
            "203.0.113.0/",
            "203.0.113.0/+8",
            "::/129",
            "01.2.3.4",
            "fe80::1%eth0",
            "x",
        ] {
            assert!(parse_ip_or_net(bad).is_none(), "{bad}");
        }
        assert_eq!(
            parse_ip_or_net("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn upstreams_are_absolute_http_urls_without_user_query_or_fragment() {
        for ok in [
            "http://127.0.0.1:9000",
            "https://api.example.com",
            "http://a",
            "http://upstream.internal:8080/base/v1",
            "http://[::1]:9000/x",
            "http://h/%2Fpath",
            "https://x-y.z:0",
        ] {
            assert!(is_valid_upstream(ok), "{ok}");
        }
        for bad in [
            "ftp://a",
            "http://",
            "http://-a",
            "http://a-",
            "http://a:65536",
            "http://a:080",
            "http://a:",
            "http://a/b c",
            "http://a?q",
            "http://a#f",
            "http://u@a",
            "http://[::1",
            "http://[x]",
            "http://a/%zz",
            "http://a/é",
            "//a",
        ] {
            assert!(!is_valid_upstream(bad), "{bad}");
        }
    }

    const NOW: Millis = 1_795_000_000_000; // 2026-11-18

    #[test]
    fn allowlists_accept_addresses_and_blocks_and_name_each_bad_entry() {
        let mut e = Errors::default();
        let nets = ip_allowlist(
            &mut e,
            "ip_allowlist",
            &[
                "203.0.113.7".into(),
                "203.0.113.9/24".into(),
                "2001:db8::/32".into(),
                "nope".into(),
                "10.0.0.0/33".into(),
            ],
        );
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[1].to_string(), "203.0.113.0/24");
        let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["ip_allowlist[3]", "ip_allowlist[4]"]);
    }

    #[test]
    fn expiry_defaults_to_never_or_the_longest_allowed_choice() {
        let mut p = Policies::default();
        let mut e = Errors::default();
        assert_eq!(expiry(&mut e, None, None, &p, NOW), None);
        p.allowed_expiries = vec![ExpiryChoice::OneYear, ExpiryChoice::TwoYears];
        assert_eq!(expiry(&mut e, None, None, &p, NOW), Some(add_years(NOW, 2)));
        assert!(e.is_empty());
        expiry(&mut e, Some("never"), None, &p, NOW);
        expiry(&mut e, None, Some(add_years(NOW, 3)), &p, NOW);
        expiry(&mut e, None, Some(NOW - 1), &p, NOW);
        expiry(&mut e, Some("3y"), None, &p, NOW);
        assert_eq!(e.0.len(), 4);
        assert!(e.0[0].message.contains("not allowed"));
    }

    #[test]
    fn years_are_calendar_years() {
        // 2024-02-29T12:00:00Z plus one year is 2025-02-28T12:00:00Z.
        let leap = 1_709_208_000_000;
        assert_eq!(add_years(leap, 1), 1_740_744_000_000);
        assert_eq!(add_years(leap, 4), 1_835_438_400_000);
    }

    #[test]
    fn names_and_metadata_have_limits() {
        let mut e = Errors::default();
        assert_eq!(
            text(&mut e, "name", "  Production  ", NAME_MAX),
            "Production"
        );
        text(&mut e, "name", "   ", NAME_MAX);
        text(&mut e, "name", &"x".repeat(101), NAME_MAX);
        let mut big = serde_json::Map::new();
        big.insert("blob".into(), "y".repeat(5000).into());
        metadata(&mut e, &big);
        assert_eq!(e.0.len(), 3);
    }

    #[test]
    fn name_tokens_and_slugs() {
        assert!(is_valid_name_token("transcripts:read"));
        assert!(!is_valid_name_token("Transcripts"));
        assert!(!is_valid_name_token(":x"));
        assert!(is_valid_slug("transcription-api"));
        assert!(!is_valid_slug("-x"));
        assert!(!is_valid_slug("a_b"));
    }
}
