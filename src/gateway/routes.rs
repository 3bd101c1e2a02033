//! The routing table: which API, and which of its routes, a request is for (contract section 8).
//! Rebuilt from storage whenever the APIs with an upstream change; read by every request.
//!
//! The API is chosen by the request's host: APIs that list it, else APIs that list no host.
//! Among those, the route with the longest prefix that covers the path on a segment boundary and
//! allows the method wins; an API without routes covers every path, below any route. A tie goes
//! to the API created first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderValue, Method};

use crate::domain::model::{Api, Route};
use crate::domain::path;

/// Where an API's requests go.
#[derive(Debug)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The upstream URL's path, prepended to each request's path; no trailing `/`.
    pub base: String,
}

impl Upstream {
    /// `url` as validated by the service (`http(s)://host[:port][/path]`).
    fn parse(url: &str) -> Option<Upstream> {
        let uri: axum::http::Uri = url.parse().ok()?;
        Some(Upstream {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// An API the gateway serves, with what every forwarded request of it carries.
#[derive(Debug)]
pub struct Entry {
    pub api: Arc<Api>,
    pub upstream: Upstream,
    /// Routes from the longest prefix to the shortest.
    routes: Vec<Route>,
    pub api_id: HeaderValue,
    pub org_id: HeaderValue,
}

/// What a request matched.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub entry: &'a Entry,
    /// `None`: the API has no routes and forwards every path.
    pub route: Option<&'a Route>,
}

#[derive(Debug, Default)]
pub struct Table {
    entries: Vec<Entry>,
    /// Entries (by index, in creation order) that list each host.
    by_host: HashMap<String, Vec<usize>>,
    /// Entries that list no host.
    any_host: Vec<usize>,
}

impl Table {
    /// The table of `apis` (each with an upstream), in creation order. An API whose stored
    /// upstream cannot be read is left out, with a warning.
    pub fn build(apis: Vec<Api>) -> Table {
        let mut table = Table::default();
        for api in apis {
            let Some(upstream) = api.upstream.as_deref().and_then(Upstream::parse) else {
                tracing::warn!(api_id = %api.id, "the gateway skips an API whose upstream it cannot read");
                continue;
            };
            let (Ok(api_id), Ok(org_id)) = (
                HeaderValue::from_str(&api.id),
                HeaderValue::from_str(&api.org_id),
            ) else {
                continue;
            };
            let mut routes = api.routes.clone();
            routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
            let i = table.entries.len();
            if api.hosts.is_empty() {
                table.any_host.push(i);
            }
            for h in &api.hosts {
                table.by_host.entry(h.clone()).or_default().push(i);
            }
            table.entries.push(Entry {
                api: Arc::new(api),
                upstream,
                routes,
                api_id,
                org_id,
            });
        }
        table
    }

    /// The APIs in the table, in creation order.
    pub fn apis(&self) -> impl Iterator<Item = &Api> {
        self.entries.iter().map(|e| &*e.api)
    }

    /// What a request for `host` (without port, any case; `None` when it sent none) and the
    /// normalized `path` with `method` is for.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<Matched<'_>> {
        let listed = host.and_then(|h| {
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                self.by_host.get(&h.to_ascii_lowercase())
            } else {
                self.by_host.get(h)
            }
        });
        let candidates = listed.unwrap_or(&self.any_host);
        // The best match so far, by prefix length (-1: an API without routes).
        let mut best: Option<(isize, Matched<'_>)> = None;
        for &i in candidates {
            let entry = &self.entries[i];
            let found = if entry.routes.is_empty() {
                Some((-1, None))
            } else {
                entry
                    .routes
                    .iter()
                    .find(|r| {
                        path::under(&r.path_prefix, path)
                            && (r.methods.is_empty()
                                || r.methods.iter().any(|m| m == method.as_str()))
                    })
                    .map(|r| (r.path_prefix.len() as isize, Some(r)))
            };
            if let Some((len, route)) = found {
                if best.as_ref().is_none_or(|(b, _)| len > *b) {
                    best = Some((len, Matched { entry, route }));
                }
            }
        }
        best.map(|(_, m)| m)
    }
}

/// The host of a `Host` header value or an authority, without its port.
pub fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(id: &str, hosts: &[&str], routes: &[(&str, &[&str])]) -> Api {
        Api {
            id: id.into(),
            org_id: "org_1".into(),
            name: id.into(),
            slug: id.into(),
            prefix_live: "kw_live_".into(),
            prefix_test: "kw_test_".into(),
            scopes: vec![],
            token_types: vec!["standard".into()],
            accept_x_api_key: false,
            default_rate_limit: None,
            upstream: Some("http://127.0.0.1:9000/base/".into()),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            routes: routes
                .iter()
                .map(|(p, m)| Route {
                    path_prefix: p.to_string(),
                    methods: m.iter().map(|s| s.to_string()).collect(),
                    required_scopes: vec![],
                    token_types: vec![],
                })
                .collect(),
            created_at: 0,
        }
    }

    fn find<'a>(
        t: &'a Table,
        host: &str,
        path: &str,
        method: Method,
    ) -> Option<(&'a str, &'a str)> {
        t.find(Some(host), path, &method).map(|m| {
            (
                m.entry.api.id.as_str(),
                m.route.map_or("*", |r| r.path_prefix.as_str()),
            )
        })
    }

    #[test]
    fn the_longest_prefix_on_a_segment_boundary_with_the_method_wins() {
        let t = Table::build(vec![api(
            "a",
            &[],
            &[
                ("/api/v3/stream", &["GET"]),
                ("/api", &[]),
                ("/api/v3/documents", &["GET"]),
            ],
        )]);
        assert_eq!(
            find(&t, "x", "/api/v3/stream/abc", Method::GET),
            Some(("a", "/api/v3/stream"))
        );
        assert_eq!(
            find(&t, "x", "/api/v3/streams", Method::GET),
            Some(("a", "/api"))
        );
        assert_eq!(
            find(&t, "x", "/api/v3/stream", Method::POST),
            Some(("a", "/api"))
        );
        assert_eq!(find(&t, "x", "/other", Method::GET), None);
        assert_eq!(t.entries[0].upstream.base, "/base");
    }

    #[test]
    fn an_api_listing_the_host_beats_one_listing_none() {
        let t = Table::build(vec![
            api("catch-all", &[], &[]),
            api("listed", &["api.example.com"], &[("/v1", &[])]),
            api("other", &["other.example.com"], &[]),
        ]);
        assert_eq!(
            find(&t, "api.example.com", "/v1/x", Method::GET),
            Some(("listed", "/v1"))
        );
        assert_eq!(
            find(&t, "API.Example.com", "/v1", Method::GET),
            Some(("listed", "/v1"))
        );
        assert_eq!(
            find(&t, "api.example.com", "/v2", Method::GET),
            None,
            "the listed API decides"
        );
        assert_eq!(
            find(&t, "unknown.example", "/v2", Method::GET),
            Some(("catch-all", "*"))
        );
        assert_eq!(
            find(&t, "other.example.com", "/", Method::GET),
            Some(("other", "*"))
        );
        assert_eq!(
            t.find(None, "/x", &Method::GET).unwrap().entry.api.id,
            "catch-all"
        );
    }

    #[test]
    fn among_apis_of_one_host_a_route_beats_an_api_without_routes_and_ties_go_to_the_first() {
        let t = Table::build(vec![
            api("first", &[], &[]),
            api("second", &[], &[("/", &[])]),
            api("third", &[], &[("/", &[])]),
        ]);
        assert_eq!(find(&t, "h", "/x", Method::GET), Some(("second", "/")));
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("api.example.com:8081"), "api.example.com");
        assert_eq!(host_name("api.example.com"), "api.example.com");
        assert_eq!(host_name("[::1]:8081"), "[::1]");
    }
}
