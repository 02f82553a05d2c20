//! Test-only helpers shared by the crates' integration tests: loopback ports, child processes
//! that cannot outlive the test process, and a real SeaweedFS S3 server (`weed server -s3`).
//! Nothing here is a mock: these start the real programs the tests talk to. And one way to
//! run a test on both storage backends ([`both_backends!`]).
//!
//! `process` spawns and signals children, `seaweed` runs SeaweedFS, [`http`] speaks plain
//! HTTP/1.1 to loopback servers; what they offer is re-exported here.

pub mod backends;
pub mod http;
mod process;
pub mod proxy;
mod seaweed;

pub use backends::Backend;
pub use http::{http_put, http_status, wait_http};
pub use process::{signal, spawn, ChildGuard};
pub use proxy::CountingProxy;
pub use seaweed::SeaweedFs;

use std::net::TcpListener;
use std::path::Path;

/// Installs ring as rustls's crypto provider, as the `wharfage` binary's `main` does: the
/// libraries' HTTP clients (reqwest, object_store's S3 client) are built without a default
/// provider and panic when built before one is installed. Call it in every test that builds a
/// `Store::s3`, an upstream client or a reqwest client directly; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` different loopback ports that were free a moment ago (for what must be told its ports
/// up front; whatever can listen on port 0 and report the port it got should).
pub fn free_ports<const N: usize>() -> [u16; N] {
    // All held at once, so the N ports differ.
    let held: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port")).collect();
    std::array::from_fn(|i| held[i].local_addr().expect("a bound socket's address").port())
}

/// A unique name for a bucket or repository in a shared server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Whether a file exists and is executable somewhere on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(program).is_file())).unwrap_or(false)
}
