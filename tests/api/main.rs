//! One integration test binary: every test talks to a real server over loopback HTTP.

mod access;
mod apis;
mod atomic;
mod auth;
mod browser;
mod cli;
mod dashboard;
mod gateway;
mod governance;
mod hardening;
mod helpers;
mod keys;
mod logs;
mod metrics;
mod operations;
mod readme;
mod security_events;
mod storage;
mod tenancy;
mod usage;
mod verify;
mod webhooks;
