#![doc = include_str!("../README.md")]

pub mod domain;
pub mod http;
pub mod store;
pub mod service;
pub mod verify;
