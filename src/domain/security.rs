//! Security events: what they are, how severe, and the networks the `new_ip` detector compares.
//! Pure: the detectors that raise them live in `crate::events`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::{Millis, normalize_ip};

/// The kinds of security event (contract section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Many refused keys from one client address, or against one key.
    AuthFailures,
    /// A key used before is used from a network it has not used lately.
    NewIp,
    /// A key makes far more requests in a minute than its average minute.
    UsageSpike,
    /// The old key of a rotation is still used during its grace period.
    GracePeriodUse,
    /// A key's whole secret was seen in a URL.
    KeyExposed,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::AuthFailures,
        EventType::NewIp,
        EventType::UsageSpike,
        EventType::GracePeriodUse,
        EventType::KeyExposed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AuthFailures => "auth_failures",
            EventType::NewIp => "new_ip",
            EventType::UsageSpike => "usage_spike",
            EventType::GracePeriodUse => "grace_period_use",
            EventType::KeyExposed => "key_exposed",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// How severe an event of this type is: a leaked secret is critical; an attack on keys is
    /// high; unusual use of a working key is medium; an old key still in use during the grace
    /// period its rotation granted is low.
    pub fn severity(self) -> Severity {
        match self {
            EventType::KeyExposed => Severity::Critical,
            EventType::AuthFailures => Severity::High,
            EventType::NewIp | EventType::UsageSpike => Severity::Medium,
            EventType::GracePeriodUse => Severity::Low,
        }
    }

    /// Words for people, e.g. in the dashboard's filter.
    pub fn label(self) -> &'static str {
        match self {
            EventType::AuthFailures => "Refused keys",
            EventType::NewIp => "New network",
            EventType::UsageSpike => "Usage spike",
            EventType::GracePeriodUse => "Old key used in grace period",
            EventType::KeyExposed => "Key exposed",
        }
    }
}

/// How urgent an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A recorded security event. It names a key by its id and public prefix, never by its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// `sev_` and 16 hex characters.
    pub id: String,
    pub org_id: String,
    pub kind: EventType,
    pub severity: Severity,
    pub key_id: Option<String>,
    /// The key's public prefix (`kw_live_3f9a0c1e7b2d`).
    pub prefix: Option<String>,
    pub ip: Option<String>,
    /// How many requests the event covers (refused keys, uses, requests in the spike).
    pub count: i64,
    pub detail: String,
    pub created_at: Millis,
    /// The last request the event covers.
    pub last_seen_at: Millis,
}

/// The network an address belongs to for the `new_ip` detector, as its first address: its /24
/// for IPv4, its /64 for IPv6 (one site, or one customer of a provider). IPv4-mapped IPv6 counts
/// as IPv4. A plain address, so that the detector compares networks without allocating.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match normalize_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// A network of [`network_of`] as text: `198.51.100.0/24`, `2001:db8:1:2::/64`.
pub fn network_text(network: IpAddr) -> String {
    match network {
        IpAddr::V4(v4) => format!("{v4}/24"),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// Reads [`network_text`] back.
pub fn parse_network(text: &str) -> Option<IpAddr> {
    let (addr, bits) = text.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    match (ip, bits) {
        (IpAddr::V4(_), "24") | (IpAddr::V6(_), "64") => Some(network_of(ip)),
        _ => None,
    }
}

/// The client an `auth_failures` count is kept for: its address, or for IPv6 its /64, which one
/// host can change at will.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match normalize_ip(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_a_24_for_ipv4_and_a_64_for_ipv6() {
        let n = |s: &str| network_text(network_of(s.parse().unwrap()));
        assert_eq!(n("198.51.100.7"), "198.51.100.0/24");
        assert_eq!(n("198.51.100.200"), "198.51.100.0/24");
        assert_ne!(n("198.51.101.7"), n("198.51.100.7"));
        assert_eq!(n("::ffff:198.51.100.7"), "198.51.100.0/24");
        assert_eq!(n("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(n("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_ne!(n("2001:db8:1:3::1"), n("2001:db8:1:2::1"));
        for text in ["198.51.100.0/24", "2001:db8:1:2::/64"] {
            assert_eq!(parse_network(text).map(network_text).as_deref(), Some(text));
        }
        assert_eq!(parse_network("198.51.100.0/64"), None);
        assert_eq!(parse_network("nonsense"), None);
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let c = |s: &str| client_of(s.parse().unwrap());
        assert_eq!(c("2001:db8::1"), c("2001:db8::ffff:2"));
        assert_ne!(c("198.51.100.7"), c("198.51.100.8"));
    }

    #[test]
    fn types_and_severities_read_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(Severity::parse(t.severity().as_str()), Some(t.severity()));
        }
        assert_eq!(EventType::parse("auth_failure"), None);
    }
}
