//! What the parts downstream of the verifier learn of each verification.
//!
//! A verdict flows one way: the verify endpoint and the gateway hand every verification they
//! make to the [`Observers`] (usage counting, security-event detectors, metrics), which never
//! reach back into the verifier. Observers run on the request's task, so they only record in
//! memory and leave any I/O to their own background work.

use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::model::Millis;
use crate::verify::CachedKey;

/// Which surface verified the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `POST /v1/keys/verify`.
    Verify,
    /// A request through the gateway.
    Gateway,
}

impl Source {
    /// The `source` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Verify => "verify",
            Source::Gateway => "gateway",
        }
    }
}

/// One verification as its observers see it. It never holds the presented token.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub source: Source,
    /// The organization it counts for, when known: the verify endpoint's caller's, or the
    /// organization of the API the gateway matched.
    pub org_id: Option<&'a str>,
    /// The key, when it was identified (valid, or refused after it was found).
    pub key: Option<&'a CachedKey>,
    /// The verdict's code, as the verify endpoint answers it (`VALID`, `REVOKED`, ...).
    pub code: &'static str,
    /// The client's address: the verify body's `ip`, or the gateway's client.
    pub client_ip: Option<IpAddr>,
    /// When the verification happened.
    pub at: Millis,
}

impl Observation<'_> {
    pub fn valid(&self) -> bool {
        self.code == "VALID"
    }
}

/// Something that watches verifications.
pub trait Observer: Send + Sync {
    fn observe(&self, o: &Observation<'_>);
}

/// The observers of this process, called in the order they were added.
#[derive(Clone, Default)]
pub struct Observers(Arc<[Arc<dyn Observer>]>);

impl Observers {
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Observers(observers.into())
    }

    pub fn observe(&self, o: &Observation<'_>) {
        for observer in self.0.iter() {
            observer.observe(o);
        }
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}
