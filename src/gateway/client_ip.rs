//! The client's address: the connection's peer, unless that peer is a trusted proxy
//! (`KEYWARD_TRUSTED_PROXIES`); then the rightmost `X-Forwarded-For` entry that is not one. Entries
//! left of the first untrusted one were written by the client itself and prove nothing.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::domain::model::normalize_ip;

pub static X_FORWARDED_FOR: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-forwarded-for");

/// Whether `ip` is one of the `trusted` proxies.
pub fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = normalize_ip(ip);
    proxies.iter().any(|net| net.contains(&ip))
}

/// The client of a request that came from `peer` with `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let mut client = normalize_ip(peer);
    if proxies.is_empty() || !trusted(client, proxies) {
        return client;
    }
    let entries = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|&b| b == b','));
    for entry in entries {
        let Some(ip) = parse_entry(entry) else {
            // Garbage from beyond the trusted hops: the last trusted hop is all that is known.
            return client;
        };
        client = ip;
        if !trusted(ip, proxies) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, an IPv6 address in brackets, or either with a port.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(normalize_ip(ip));
    }
    let host = match text.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => text.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(normalize_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client_only_behind_a_trusted_peer() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = headers(&["6.6.6.6, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &spoofed, &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("203.0.113.5"), &spoofed, &proxies),
            ip("203.0.113.5"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(resolve(ip("10.0.0.1"), &spoofed, &[]), ip("10.0.0.1"));
        let split = headers(&["6.6.6.6", "198.51.100.7", "10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &split, &proxies),
            ip("198.51.100.7")
        );
        let all_trusted = headers(&["10.0.0.3, 10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &all_trusted, &proxies),
            ip("10.0.0.3")
        );
        let garbage = headers(&["198.51.100.7, nonsense, 10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &garbage, &proxies), ip("10.0.0.2"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers(&[]), &proxies),
            ip("10.0.0.1")
        );
        let ported = headers(&["[2001:db8::1]:4711, 198.51.100.9:80"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &ported, &proxies),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve(ip("::ffff:10.0.0.1"), &headers(&["198.51.100.7"]), &proxies),
            ip("198.51.100.7"),
            "an IPv4-mapped peer is its IPv4 address"
        );
    }
}
