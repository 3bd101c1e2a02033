#![doc = include_str!("../README.md")]

pub mod cli;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod events;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod observe;
pub mod service;
pub mod store;
pub mod usage;
pub mod verify;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use config::Config;
use domain::key::{Pepper, Peppers};
use domain::{Clock, SystemClock};
use service::Ctx;
use service::bootstrap::Bootstrapped;
use store::Store;
use verify::Verifier;

/// How often `last_used` observations are written behind.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A built server: storage connected and migrated, listeners bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// The gateway's listener and the gateway, its routes read, when `KEYWARD_GATEWAY_LISTEN` is
    /// set.
    gateway: Option<(TcpListener, Arc<gateway::Gateway>)>,
    ctx: Ctx,
    config: Config,
    first_start: Option<Bootstrapped>,
}

/// Builds the context every part shares: storage, peppers, verifier.
pub async fn connect(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Ctx> {
    let pepper = config
        .pepper
        .as_ref()
        .context("no pepper configured (set KEYWARD_PEPPER)")?;
    let peppers = Peppers::new(
        Pepper::new(config.pepper_version, &pepper.0),
        config
            .pepper_previous
            .iter()
            .map(|(v, s)| Pepper::new(*v, &s.0))
            .collect(),
    );
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database at {}",
                config::redact_url(&config.database_url)
            )
        })?;
    let plan_rate_limits: HashMap<String, domain::model::RateLimit> = config
        .plans
        .iter()
        .filter_map(|p| p.rate_limit.map(|rl| (p.name.clone(), rl)))
        .collect();
    let verifier = Arc::new(Verifier::new(
        store.clone(),
        peppers,
        clock.clone(),
        config.plans_without_access(),
        plan_rate_limits,
    ));
    let events = Arc::new(events::Detector::new(config.events, clock.now_ms()));
    let usage = Arc::new(usage::Usage::new(
        store.clone(),
        clock.clone(),
        config.usage,
    ));
    let metrics = Arc::new(metrics::Metrics::new());
    let mut observers: Vec<Arc<dyn observe::Observer>> =
        vec![Arc::new(metrics::Counting(metrics.clone())), events.clone()];
    if config.usage.counting {
        observers.push(Arc::new(usage::Counting(usage.clone())));
    }
    let webhooks = Arc::new(webhooks::Webhooks::new(config.webhooks));
    observers.push(Arc::new(webhooks::QuotaWatch(webhooks.clone())));
    Ok(Ctx {
        store,
        verifier,
        clock,
        sealer: config
            .encryption_key
            .as_ref()
            .map(domain::seal::Sealer::new),
        plans: config.plans.clone().into(),
        throttle: Arc::new(verify::throttle::AuthThrottle::new(
            config.auth_failures.limit,
            config.auth_failures.window,
        )),
        apis_changed: Arc::default(),
        observers: observe::Observers::new(observers),
        events,
        usage,
        metrics,
        webhooks,
    })
}

/// Creates the first organization when the database has none. `Ok(None)` when it already has one.
pub async fn initialize(ctx: &Ctx) -> anyhow::Result<Option<Bootstrapped>> {
    if ctx.store.count_orgs().await? > 0 {
        return Ok(None);
    }
    let b = service::bootstrap::create_org(ctx, "Default organization", "owner@localhost", "pro")
        .await?;
    Ok(Some(b))
}

impl Application {
    /// Connects storage, runs migrations, creates the first organization on an empty database, and
    /// binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let ctx = connect(&config, clock).await?;
        let first_start = initialize(&ctx).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let gateway = match config.gateway_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (KEYWARD_GATEWAY_LISTEN)"))?;
                let gateway = gateway::Gateway::new(ctx.clone(), &config);
                gateway
                    .refresh()
                    .await
                    .context("cannot read the gateway's routes")?;
                Some((listener, gateway))
            }
            None => None,
        };
        Ok(Application {
            listener,
            gateway,
            ctx,
            config,
            first_start,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address the gateway listens on, when it is configured.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The base URL of links Keyward prints: `KEYWARD_PUBLIC_URL`, or else the address the
    /// listener really bound (which differs from the setting when it asked for port 0).
    pub fn public_url(&self) -> String {
        if self.config.public_url == format!("http://{}", self.config.listen) {
            format!("http://{}", self.local_addr())
        } else {
            self.config.public_url.clone()
        }
    }

    /// What the first start created, once: the management key and the setup link to print.
    pub fn take_first_start(&mut self) -> Option<Bootstrapped> {
        self.first_start.take()
    }

    /// Serves until `shutdown` completes; then lets requests in flight finish within the shutdown
    /// timeout, closes what is still open, and writes pending last-use data and usage counts.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let public_url = self.public_url();
        let state = Arc::new(http::AppState {
            ctx: self.ctx.clone(),
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            request_timeout: self.config.timeouts.request,
        });
        let app = http::app(state);
        let ctx = self.ctx.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let stop_rx_hooks = stop_rx.clone();
        let background = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                if let Err(e) = ctx.verifier.flush().await {
                    tracing::warn!(error = %e, "could not write last-used times; will retry");
                }
                if let Err(e) = ctx.verifier.follow_changes().await {
                    tracing::warn!(error = %e, "could not read keys changed by other instances");
                }
                ctx.throttle.prune(ctx.now());
                if let Err(e) = ctx.events.flush(&ctx).await {
                    tracing::warn!(error = %e, "could not write security events; will retry");
                }
            }
        });
        let counting = tokio::spawn(self.ctx.usage.clone().run(stop_tx.subscribe()));
        let deliveries = tokio::spawn(webhooks::worker::run(self.ctx.clone(), stop_rx_hooks));
        // One signal for both listeners.
        let (signal, signalled) = tokio::sync::watch::channel(false);
        let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let signal = async move {
            shutdown.await;
            let _ = signal.send(true);
        };
        let gateway = async {
            if let Some((listener, gateway)) = self.gateway {
                gateway
                    .run(listener, self.config.timeouts, stopping(signalled.clone()))
                    .await;
            }
        };
        tokio::join!(
            signal,
            http::serve(
                self.listener,
                app,
                self.config.timeouts.into(),
                stopping(signalled.clone())
            ),
            gateway
        );
        let _ = stop_tx.send(true);
        let _ = background.await;
        // The counter's own flush, if one is under way, ends before the last one: every count is
        // written once, by one of them.
        let _ = counting.await;
        let usage = self.ctx.usage.flush().await;
        let _ = deliveries.await;
        self.ctx
            .verifier
            .flush_all()
            .await
            .context("final flush of last-used times")?;
        if let Err(e) = self.ctx.events.flush(&self.ctx).await {
            tracing::warn!(error = %e, "could not write the last security events");
        }
        usage.context("final flush of usage counts")?;
        self.ctx.store.close().await;
        Ok(())
    }
}
