//! Prometheus metrics (contract section 9), served as text at `GET /metrics`.
//!
//! Counters on the verification path are resolved once, at start, for every source and code, so
//! that counting one is an atomic add: no label lookup, no allocation. Gauges that mirror state
//! kept elsewhere (cached keys, pending writes) and the verifier's cache lookups are read when
//! the metrics are scraped. Labels never hold a key, a path or anything a client chose: routes
//! are templates (`/v1/keys/{id}`), codes and kinds come from fixed lists.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::observe::{Observation, Observer, Source};

/// The verdict codes counted without a label lookup; any other is counted through one.
pub const CODES: [&str; 13] = [
    "VALID",
    "MALFORMED",
    "NOT_FOUND",
    "REVOKED",
    "EXPIRED",
    "OWNER_DISABLED",
    "PLAN_INACTIVE",
    "IP_NOT_ALLOWED",
    "WRONG_TOKEN_TYPE",
    "INSUFFICIENT_SCOPE",
    "RESOURCE_NOT_ALLOWED",
    "RATE_LIMITED",
    "QUOTA_EXCEEDED",
];

/// The route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The verify endpoint's route, whose answers are counted without a label lookup.
pub const VERIFY_ROUTE: &str = "/v1/keys/verify";

/// Why the gateway could not get an upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Refused, reset, or broke off its answer (502).
    Unreachable,
    /// No answer within the upstream timeout (504).
    Timeout,
}

impl UpstreamError {
    fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Timeout => "timeout",
        }
    }
}

/// State the metrics mirror, read at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub cached_keys: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub write_behind_pending: usize,
}

/// The metrics of this process. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    verifications: IntCounterVec,
    /// `verifications{source, code}` for each source (verify, gateway) and each of [`CODES`].
    verifications_known: [Vec<IntCounter>; 2],
    verify_duration: Histogram,
    gateway_duration: Histogram,
    upstream_errors: IntCounterVec,
    cache_keys: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    write_behind_pending: IntGauge,
    webhook_queue_depth: IntGauge,
    http_requests: IntCounterVec,
    /// `http_requests{route="/v1/keys/verify", status="200"}`, the hot one.
    verify_ok: IntCounter,
    /// One scrape at a time: mirrored counters are brought up to date by difference.
    scrape: Mutex<()>,
}

/// Latency buckets, in seconds: from 100 µs (a cached verification) to 30 s (the request and
/// upstream timeouts).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone()))
                .expect("metric names are unique");
            m
        }
        let verifications = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "keyward_verifications_total",
                    "Verifications by the verify endpoint and the gateway, by source and verdict code",
                ),
                &["source", "code"],
            )
            .expect("valid metric"),
        );
        let known = |source: Source| {
            CODES
                .iter()
                .map(|code| verifications.with_label_values(&[source.as_str(), code]))
                .collect::<Vec<_>>()
        };
        let verifications_known = [known(Source::Verify), known(Source::Gateway)];
        let histogram = |name: &str, help: &str| {
            register(
                &registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
                    .expect("valid metric"),
            )
        };
        let verify_duration = histogram(
            "keyward_verify_duration_seconds",
            "Time to answer POST /v1/keys/verify, from its request's arrival to its answer",
        );
        let gateway_duration = histogram(
            "keyward_gateway_request_duration_seconds",
            "Time for the gateway to answer a request, until the answer's headers (bodies stream after)",
        );
        let upstream_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "keyward_gateway_upstream_errors_total",
                    "Upstream faults seen by the gateway: unreachable (502) or timeout (504)",
                ),
                &["kind"],
            )
            .expect("valid metric"),
        );
        for kind in [UpstreamError::Unreachable, UpstreamError::Timeout] {
            upstream_errors.with_label_values(&[kind.as_str()]);
        }
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let cache_keys = gauge(
            "keyward_cache_keys",
            "Keys held in the verifier's cache (records and rate-limit state)",
        );
        let cache_lookups = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "keyward_cache_lookups_total",
                    "Lookups of presented keys in the verifier's cache: hit, or miss (read from storage or known unknown)",
                ),
                &["result"],
            )
            .expect("valid metric"),
        );
        let write_behind_pending = gauge(
            "keyward_write_behind_pending",
            "Records waiting to be written behind: keys' last use and usage counts",
        );
        let webhook_queue_depth = gauge(
            "keyward_webhook_queue_depth",
            "Webhook deliveries waiting to be sent",
        );
        let http_requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "keyward_http_requests_total",
                    "Requests answered by the management API, dashboard and operations endpoints, by route template and status",
                ),
                &["route", "status"],
            )
            .expect("valid metric"),
        );
        let verify_ok = http_requests.with_label_values(&[VERIFY_ROUTE, "200"]);
        Metrics {
            verifications_known,
            verifications,
            verify_duration,
            gateway_duration,
            upstream_errors,
            cache_keys,
            cache_hits: cache_lookups.with_label_values(&["hit"]),
            cache_misses: cache_lookups.with_label_values(&["miss"]),
            write_behind_pending,
            webhook_queue_depth,
            http_requests,
            verify_ok,
            registry,
            scrape: Mutex::new(()),
        }
    }

    /// Counts one verification.
    pub fn verification(&self, source: Source, code: &str) {
        let by_source = match source {
            Source::Verify => &self.verifications_known[0],
            Source::Gateway => &self.verifications_known[1],
        };
        match CODES.iter().position(|c| *c == code) {
            Some(i) => by_source[i].inc(),
            None => self
                .verifications
                .with_label_values(&[source.as_str(), code])
                .inc(),
        }
    }

    /// Records how long a verify request took.
    pub fn verify_duration(&self, seconds: f64) {
        self.verify_duration.observe(seconds);
    }

    /// Records how long the gateway took to answer.
    pub fn gateway_duration(&self, seconds: f64) {
        self.gateway_duration.observe(seconds);
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// Counts an answer of the HTTP application by its route template.
    pub fn http_request(&self, route: &str, status: axum::http::StatusCode) {
        if route == VERIFY_ROUTE && status == axum::http::StatusCode::OK {
            self.verify_ok.inc();
        } else {
            self.http_requests
                .with_label_values(&[route, status.as_str()])
                .inc();
        }
    }

    /// Sets the number of webhook deliveries waiting (fed by the webhook worker).
    pub fn set_webhook_queue_depth(&self, depth: usize) {
        self.webhook_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The metrics in Prometheus's text format, with mirrored state as of `snapshot`.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let _one = self.scrape.lock();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.cache_keys.set(gauge(snapshot.cached_keys));
        self.write_behind_pending
            .set(gauge(snapshot.write_behind_pending));
        for (counter, total) in [
            (&self.cache_hits, snapshot.cache_hits),
            (&self.cache_misses, snapshot.cache_misses),
        ] {
            let shown = counter.get();
            if total > shown {
                counter.inc_by(total - shown);
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Counts verifications as they are observed.
pub struct Counting(pub Arc<Metrics>);

impl Observer for Counting {
    fn observe(&self, o: &Observation<'_>) {
        self.0.verification(o.source, o.code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_metric_is_exposed_and_counters_move() {
        let m = Metrics::new();
        m.verification(Source::Verify, "VALID");
        m.verification(Source::Gateway, "SOMETHING_NEW");
        m.http_request(VERIFY_ROUTE, axum::http::StatusCode::OK);
        m.http_request("/v1/keys/{id}", axum::http::StatusCode::NOT_FOUND);
        m.set_webhook_queue_depth(3);
        let text = m.render(Snapshot {
            cached_keys: 2,
            cache_hits: 5,
            cache_misses: 1,
            write_behind_pending: 4,
        });
        for line in [
            "keyward_verifications_total{code=\"VALID\",source=\"verify\"} 1",
            "keyward_verifications_total{code=\"SOMETHING_NEW\",source=\"gateway\"} 1",
            "keyward_http_requests_total{route=\"/v1/keys/verify\",status=\"200\"} 1",
            "keyward_http_requests_total{route=\"/v1/keys/{id}\",status=\"404\"} 1",
            "keyward_webhook_queue_depth 3",
            "keyward_cache_keys 2",
            "keyward_cache_lookups_total{result=\"hit\"} 5",
            "keyward_write_behind_pending 4",
            "keyward_gateway_upstream_errors_total{kind=\"timeout\"} 0",
            "keyward_verify_duration_seconds_count 0",
            "keyward_gateway_request_duration_seconds_count 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let again = m.render(Snapshot {
            cache_hits: 7,
            ..Snapshot::default()
        });
        assert!(again.contains("keyward_cache_lookups_total{result=\"hit\"} 7"));
    }
}
