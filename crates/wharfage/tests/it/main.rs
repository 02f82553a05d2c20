//! End-to-end tests of the `wharfage` binary with real peers, never mocks: the built binary is
//! started on a free loopback port over a temporary root, and skopeo (or raw HTTP where
//! skopeo cannot express the case) talks to it. Covers the skopeo round trips
//! (multi-layer image and multi-arch index in and out byte-exactly, inspect, delete), the same
//! across a graceful restart and a `kill -9`, chunked, cancelled and resumed uploads, and
//! configuration through a file, the environment and flags, and graceful shutdown.
//!
//! On S3 (a real SeaweedFS): skopeo round trips, the store going away and coming
//! back, a 2 GiB blob with bounded memory, abandoned multipart uploads, presigned redirects
//! (`s3.rs`); two replicas on one bucket, directly and behind nginx running
//! `deploy/nginx/wharfage.conf` (`ha.rs`). What careless or hostile clients cannot do:
//! acknowledge before fsync, hold connections, fill the store with sessions or protections,
//! reach metadata addresses (`hardening.rs`).
//!
//! skopeo, weed (SeaweedFS) and nginx must be installed: `scripts/test.sh` installs them.
//! These tests fail (never skip) when one is missing.

mod access;
mod certs;
mod client;
mod config;
mod container;
mod engines;
mod fixtures;
mod gc;
mod ha;
mod hardening;
mod harness;
mod lifecycle;
mod mirror;
mod mirror_engines;
mod newcomer;
mod platform;
mod restart;
mod round_trip;
mod s3;
mod skopeo;
mod staging;
mod ui;
mod uploads;
