//! Application services: the operations of the management API and the dashboard, with their
//! authorization, policies, audit records and cache invalidation in one place. HTTP handlers and
//! dashboard pages are thin adapters over these functions.

pub mod acls;
pub mod apis;
pub mod audit;
pub mod authz;
pub mod bootstrap;
pub mod groups;
pub mod keys;
pub mod org;
pub mod passwords;
pub mod sessions;
pub mod users;
pub mod webhooks;

use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::Clock;
use crate::domain::model::{Actor, Millis, User};
use crate::domain::validate::FieldError;
use crate::store::{Store, StoreError};
use crate::verify::{Verifier, VerifyError};

/// Errors of the service layer; the HTTP layer maps each to a contract code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    /// The caller lacks a management scope; `who` says whether the key or the role lacks it.
    #[error("{}", missing_scope_message(scope, who))]
    MissingScope { scope: String, who: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<VerifyError> for ServiceError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Store(s) => ServiceError::Store(s),
        }
    }
}

impl From<Vec<FieldError>> for ServiceError {
    fn from(errors: Vec<FieldError>) -> Self {
        ServiceError::Validation(errors)
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// What a 403 for a missing management scope says.
pub fn missing_scope_message(scope: &str, who: &str) -> String {
    format!("This action needs the scope '{scope}', which {who} does not grant.")
}

/// What the services need: storage, the verifier's cache, the clock, and configuration.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub verifier: Arc<Verifier>,
    pub clock: Arc<dyn Clock>,
    /// Encrypts recoverable keys; `None` without `KEYWARD_ENCRYPTION_KEY`.
    pub sealer: Option<crate::domain::seal::Sealer>,
    pub plans: Arc<[crate::domain::model::Plan]>,
    /// Counts refused credentials per client address (failed-auth throttling).
    pub throttle: Arc<crate::verify::throttle::AuthThrottle>,
    /// Counts the changes of APIs made through this instance, so that its gateway reads its
    /// routes again before the next request it routes.
    pub apis_changed: Arc<std::sync::atomic::AtomicU64>,
    /// Told of every verification by the verify endpoint and the gateway (usage, events).
    pub observers: crate::observe::Observers,
    /// The security-event detectors (one of the observers), flushed by the background task.
    pub events: Arc<crate::events::Detector>,
    /// Usage counts: written behind by the counter, read by the usage endpoints.
    pub usage: Arc<crate::usage::Usage>,
    /// The Prometheus metrics of this process.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Webhook settings, the delivery worker's wake-up, the quota watcher's notes.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

impl Ctx {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }
}

/// How a caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A management key: acts with its own scopes, never beyond its owner's role.
    Key(Arc<crate::verify::CachedKey>),
    /// A signed-in dashboard session: acts with its member's role.
    Session,
}

/// An authenticated member of an organization, and where the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    pub user: Arc<User>,
    pub via: Via,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Caller {
    /// The management key the caller authenticated with, if any.
    fn key(&self) -> Option<&crate::domain::model::Key> {
        match &self.via {
            Via::Key(cached) => Some(&cached.key),
            Via::Session => None,
        }
    }

    /// Whether the caller holds `scope`: the key has it (if a key) and the member's role permits it.
    pub fn can(&self, scope: &str) -> bool {
        permits(self.key(), &self.user, scope)
    }

    pub fn require(&self, scope: &str) -> Result<()> {
        require(self.key(), &self.user, scope)
    }

    /// The audit log's view of the caller: never a secret.
    pub fn actor(&self) -> Actor {
        match &self.via {
            Via::Key(key) => Actor {
                kind: "key",
                id: Some(key.id.clone()),
                label: format!("{}••••", key.display_prefix()),
            },
            Via::Session => Actor {
                kind: "user",
                id: Some(self.user.id.clone()),
                label: self.user.email.clone(),
            },
        }
    }
}

/// Whether a member acting through `key` (or a session, `None`) holds `scope`: the key has it and
/// the member's role permits it.
pub fn permits(key: Option<&crate::domain::model::Key>, user: &User, scope: &str) -> bool {
    key.is_none_or(|k| k.scopes.iter().any(|s| s == scope)) && user.role.permits(scope)
}

/// [`permits`], or the 403 naming the scope and what lacks it.
pub fn require(key: Option<&crate::domain::model::Key>, user: &User, scope: &str) -> Result<()> {
    if permits(key, user, scope) {
        return Ok(());
    }
    let who = match key {
        Some(k) if !k.scopes.iter().any(|s| s == scope) => "this management key",
        _ => "your role",
    };
    Err(ServiceError::MissingScope {
        scope: scope.to_owned(),
        who,
    })
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, T, D>(de: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}
