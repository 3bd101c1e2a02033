//! One integration test binary: every test talks to a real server over loopback HTTP.

mod apis;
mod atomic;
mod auth;
mod browser;
mod cli;
mod dashboard;
mod governance;
mod helpers;
mod keys;
mod logs;
mod operations;
mod storage;
mod tenancy;
mod verify;
