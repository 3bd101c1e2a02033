//! The gateway (contract section 8): a reverse proxy in front of every API that has an upstream.
//! Each request is matched to an API and route ([`routes`]), its key checked by the same
//! [`Verifier::check`](crate::verify::Verifier::check) as the verify endpoint's, in the contract's
//! order, and only then forwarded ([`proxy`]), its bodies streamed both ways ([`body`]) and
//! WebSocket upgrades spliced ([`websocket`]).
//!
//! The routing table is read again every second on every instance, and on the instance where an
//! API changed before its next request is routed, so that a change applies there at once and
//! everywhere within a second, without a restart.
//! Connections are served by the management API's accept loop, with the same header timeout,
//! shutdown and problem+json answers to what hyper cannot parse; where the management API reads a
//! body whole within a limit, the gateway streams it and instead cuts off a request whose bodies
//! stall.

mod body;
pub mod client_ip;
mod error;
mod proxy;
pub mod routes;
mod websocket;

pub use error::GatewayError;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use parking_lot::RwLock;
use tokio::net::TcpListener;

use crate::config::{Config, Timeouts};
use crate::service::Ctx;
use crate::store::StoreError;
use crate::verify::throttle::AuthThrottle;
use body::Upload;
use routes::Table;

/// How often each instance reads the APIs again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Idle upstream connections kept per upstream host.
const POOL_IDLE_PER_HOST: usize = 256;

pub struct Gateway {
    ctx: Ctx,
    table: RwLock<Arc<Table>>,
    /// The count of this instance's API changes (`Ctx::apis_changed`) the table includes.
    includes: AtomicU64,
    /// Held while the table is read again, so that requests that find it behind read it once.
    refreshing: tokio::sync::Mutex<()>,
    client: Client<HttpsConnector<HttpConnector>, Upload>,
    /// Refused keys per client address. Apart from the management API's count, so that keys
    /// guessed at the gateway do not lock a client out of managing its organization, and the
    /// other way round.
    throttle: AuthThrottle,
    trusted_proxies: Vec<IpNet>,
    upstream_timeout: Duration,
    sessions: websocket::Sessions,
}

impl Gateway {
    /// A gateway over `ctx`'s storage and verifier, configured by `config`, with an empty routing
    /// table (see [`Gateway::refresh`]).
    pub fn new(ctx: Ctx, config: &Config) -> Arc<Gateway> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.gateway_upstream_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .build(connector);
        Arc::new(Gateway {
            ctx,
            table: RwLock::default(),
            includes: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
            client,
            throttle: AuthThrottle::new(config.auth_failures.limit, config.auth_failures.window),
            trusted_proxies: config.trusted_proxies.clone(),
            upstream_timeout: config.gateway_upstream_timeout,
            sessions: websocket::Sessions::default(),
        })
    }

    /// Reads the APIs with an upstream and rebuilds the routing table if they changed; the
    /// verifier then forgets its copy of each API that changed, so that both agree.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _one = self.refreshing.lock().await;
        let changes = self.ctx.apis_changed.load(Ordering::SeqCst);
        let apis = self.ctx.store.list_gateway_apis().await?;
        self.includes.fetch_max(changes, Ordering::SeqCst);
        let current = self.table.read().clone();
        if current.apis().eq(apis.iter()) {
            return Ok(false);
        }
        let changed = current.apis().filter(|old| !apis.contains(old)).chain(
            apis.iter()
                .filter(|new| !current.apis().any(|old| old == *new)),
        );
        for api in changed {
            self.ctx.verifier.invalidate_api(&api.id);
        }
        *self.table.write() = Arc::new(Table::build(apis));
        Ok(true)
    }

    /// The routing table, read again first if an API changed through this instance since.
    async fn table(&self) -> Arc<Table> {
        let changes = self.ctx.apis_changed.load(Ordering::SeqCst);
        if self.includes.load(Ordering::SeqCst) < changes {
            let _one = self.refreshing.lock().await;
            if self.includes.load(Ordering::SeqCst) < changes {
                drop(_one);
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "could not read the gateway's routes; keeping the previous ones");
                }
            }
        }
        self.table.read().clone()
    }

    /// Serves `listener` until `shutdown` completes, following API changes meanwhile; then lets
    /// requests in flight and WebSocket sessions finish within the shutdown timeout.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        timeouts: Timeouts,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(self.clone().follow(stop.subscribe()));
        // A request whose bodies move nothing for this long is cut off: longer than an upstream
        // may take to answer, and than a client may pause its upload.
        let stall = timeouts.request.max(self.upstream_timeout) + Duration::from_secs(1);
        let limits = crate::http::Limits {
            header: timeouts.header,
            stall: Some(stall),
            shutdown: timeouts.shutdown,
        };
        let signal = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        let sessions = async {
            let _ = stopped.wait_for(|s| *s).await;
            self.sessions.close(timeouts.shutdown).await;
        };
        tokio::join!(
            crate::http::serve(listener, self.clone(), limits, signal),
            sessions
        );
        // Sessions upgraded while the last requests were finishing.
        self.sessions.close(Duration::ZERO).await;
        let _ = follower.await;
    }

    /// Refreshes the routing table every second until `stop`.
    async fn follow(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not read the gateway's routes; keeping the previous ones");
            }
            self.throttle.prune(self.ctx.now());
        }
    }
}
