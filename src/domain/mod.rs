//! The core of Keyward: key format, entities, the check order and validation. Pure: no I/O, no
//! async, no HTTP or SQL types, so every rule here is unit-tested without a server.

pub mod check;
pub mod key;
pub mod model;
pub mod path;
pub mod resource;
pub mod schema;
pub mod seal;
pub mod security;
pub mod strict;
pub mod validate;

/// A source of the current time, injected so that tests can move it.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> model::Millis;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> model::Millis {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_millis() as model::Millis
    }
}

/// A clock that moves only when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(start: model::Millis) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(start))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set(&self, ms: model::Millis) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> model::Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A random public identifier: `<kind>_` and 16 hex characters.
pub fn new_id(kind: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{kind}_{}", hex::encode(bytes))
}
