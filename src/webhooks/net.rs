//! Where a webhook may be sent: the URL's form, and (unless private addresses are allowed) the
//! addresses its host resolves to, checked when the endpoint is saved and again before every
//! attempt, since DNS can change in between.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Longest endpoint URL, in bytes.
pub const URL_MAX: usize = 2000;

/// Why a URL cannot be an endpoint; each message states the rule, never repeats the URL.
pub fn check_url(text: &str) -> Result<Url, &'static str> {
    if text.len() > URL_MAX {
        return Err("must be at most 2000 characters");
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters");
    }
    let url = Url::parse(text).map_err(|_| "must be an absolute http:// or https:// URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an absolute http:// or https:// URL");
    }
    if url.host().is_none() {
        return Err("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (user:password@)");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#...)");
    }
    Ok(url)
}

/// Whether `ip` is an address a webhook must not reach unless private addresses are allowed:
/// loopback, private (RFC 1918, unique local), link-local, shared (CGNAT), unspecified,
/// broadcast, multicast, documentation and benchmarking ranges, and IPv6 forms of those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 of any IPv4 address
                || (s[0] == 0x2002) // 6to4, which embeds an IPv4 address
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// Why an endpoint's host cannot be reached as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("the host does not resolve")]
    NoAddress,
    #[error(
        "the host resolves to a loopback, private or link-local address, which this server does not send webhooks to"
    )]
    Private,
}

/// The addresses the URL's host resolves to, all of them public unless `allow_private`.
/// A connection is then made to exactly these addresses, so that a second lookup cannot swap in
/// another one.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, Unreachable> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map(|it| it.collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if addrs.is_empty() {
        return Err(Unreachable::NoAddress);
    }
    if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
        return Err(Unreachable::Private);
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_without_credentials() {
        for ok in [
            "https://hooks.example.com/keyward",
            "http://127.0.0.1:9000/hook?token=abc",
            "https://[2001:db8::1]/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "example.com/hook",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            "mailto:a@example.com",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(URL_MAX))).is_err());
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_recognized() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn resolution_refuses_private_addresses_unless_allowed() {
        let url = check_url("http://127.0.0.1:1/x").unwrap();
        assert_eq!(resolve(&url, false).await, Err(Unreachable::Private));
        assert_eq!(resolve(&url, true).await.unwrap().len(), 1);
        let url = check_url("http://localhost:1/x").unwrap();
        assert_eq!(resolve(&url, false).await, Err(Unreachable::Private));
    }
}
