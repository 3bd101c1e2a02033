//! Management API handlers, one module per resource; each exposes `router()`.

pub mod apis;
pub mod audit;
pub mod docs;
pub mod events;
pub mod health;
pub mod ip_acls;
pub mod key_groups;
pub mod keys;
pub mod metrics;
pub mod org;
pub mod usage;
pub mod users;
pub mod verify;
pub mod webhooks;
