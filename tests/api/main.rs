//! One integration test binary: every test talks to a real server over loopback HTTP.

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
mod operations;
mod readme;
mod storage;
mod tenancy;
mod verify;
mod webhooks;
