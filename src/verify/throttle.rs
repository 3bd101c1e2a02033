//! Failed-auth throttling: a client address that presents many refused credentials (management
//! keys, session cookies; later the gateway's keys) within a window is answered 429 until that
//! window ends, whatever it presents meanwhile, so that guessing keys costs a window per few
//! dozen guesses. Other clients are unaffected.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use dashmap::DashMap;
use foldhash::fast::RandomState;

use crate::domain::model::{Millis, normalize_ip};

/// Refusals counted for one client since its window began.
#[derive(Clone, Copy)]
struct Window {
    started: Millis,
    failures: u32,
}

/// Counts refused credentials per client address.
pub struct AuthThrottle {
    limit: u32,
    window_ms: i64,
    clients: DashMap<IpAddr, Window, RandomState>,
}

/// The client a refusal counts against: its address, or for IPv6 its /64, which one host
/// usually holds whole (so that walking through its addresses does not reset the count).
fn client(ip: IpAddr) -> IpAddr {
    match normalize_ip(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl AuthThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        AuthThrottle {
            limit: limit.max(1),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            clients: DashMap::default(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// When `ip` is throttled at `now`: the time until its window ends, in milliseconds.
    pub fn blocked(&self, ip: IpAddr, now: Millis) -> Option<i64> {
        let w = *self.clients.get(&client(ip))?;
        let ends = w.started.saturating_add(self.window_ms);
        (w.failures >= self.limit && now >= w.started && now < ends).then_some(ends - now)
    }

    /// Counts a refused credential from `ip`; `true` for the one that reaches the limit, so that
    /// the throttling is reported once per window.
    pub fn failed(&self, ip: IpAddr, now: Millis) -> bool {
        let mut w = self.clients.entry(client(ip)).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now < w.started || now >= w.started.saturating_add(self.window_ms) {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
        w.failures == self.limit
    }

    /// Forgets clients whose window has ended; run now and then so the table stays small.
    pub fn prune(&self, now: Millis) {
        self.clients
            .retain(|_, w| now >= w.started && now < w.started.saturating_add(self.window_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_throttled_from_the_limit_until_its_window_ends() {
        let t = AuthThrottle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!t.failed(ip, 1_000));
        assert!(!t.failed(ip, 2_000));
        assert_eq!(t.blocked(ip, 2_000), None);
        assert!(t.failed(ip, 3_000), "the third refusal reaches the limit");
        assert_eq!(t.blocked(ip, 3_000), Some(58_000));
        assert!(!t.failed(ip, 4_000), "reported once per window");
        assert_eq!(t.blocked(ip, 60_999), Some(1));
        assert_eq!(t.blocked(ip, 61_000), None, "the window has passed");
        assert!(!t.failed(ip, 61_000), "a new window counts from one");
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(t.blocked(other, 3_000), None, "others are unaffected");
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_mapped_ipv4_as_ipv4() {
        let t = AuthThrottle::new(2, Duration::from_secs(60));
        t.failed("2001:db8:1:2::1".parse().unwrap(), 0);
        t.failed("2001:db8:1:2::ffff".parse().unwrap(), 0);
        assert!(t.blocked("2001:db8:1:2::9".parse().unwrap(), 1).is_some());
        assert!(t.blocked("2001:db8:1:3::1".parse().unwrap(), 1).is_none());
        t.failed("::ffff:203.0.113.5".parse().unwrap(), 0);
        t.failed("203.0.113.5".parse().unwrap(), 0);
        assert!(t.blocked("203.0.113.5".parse().unwrap(), 1).is_some());
    }

    #[test]
    fn pruning_keeps_only_open_windows() {
        let t = AuthThrottle::new(2, Duration::from_secs(60));
        t.failed("198.51.100.1".parse().unwrap(), 0);
        t.failed("198.51.100.2".parse().unwrap(), 50_000);
        t.prune(70_000);
        assert_eq!(t.clients.len(), 1);
    }
}
