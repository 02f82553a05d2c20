//! A thin client for upstream registries, written for staging: resolve a manifest, stream
//! blobs. It speaks the Docker token flow (anonymous and credentialed bearer tokens, identity
//! tokens) and basic auth, retries what is worth retrying with backoff and jitter, resumes
//! interrupted blob downloads with `Range`, fetches big blobs as concurrent ranges, follows redirects without carrying the upstream's
//! `Authorization` to another host, and trusts an extra CA bundle for private registries.
//! Plain HTTP is used only for hosts on an allow-list.
//!
//! Credentials live in a [`Session`] (one staging) and are zeroised when it is dropped;
//! tokens obtained with them are cached only in that session. Anonymous tokens are cached
//! per registry and scope in the [`Client`].

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod blob;
mod budget;
mod client;
mod config;
mod credentials;
mod error;
mod hosts;
mod ranged;
mod retry;
mod session;
#[cfg(test)]
mod ssrf_tests;
pub mod tls;

pub use client::{ByteStream, Client, Fetched};
pub use config::{UpstreamConfig, DEFAULT_RANGE_PARALLEL, DEFAULT_RANGE_SIZE};
pub use credentials::Credentials;
pub use error::UpstreamError;
pub use hosts::HostPolicy;
pub use session::Session;
