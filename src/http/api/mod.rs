//! Management API handlers, one module per resource; each exposes `router()`.

pub mod apis;
pub mod audit;
pub mod docs;
pub mod health;
pub mod keys;
pub mod org;
pub mod users;
pub mod verify;
pub mod webhooks;
