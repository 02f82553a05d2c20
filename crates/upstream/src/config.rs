//! How to reach upstream registries, and where a redirect may lead.

use std::sync::Arc;
use std::time::Duration;

use crate::hosts::HostPolicy;

/// How to reach upstream registries.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host[:port]` of registries reached over plain HTTP; every other one uses HTTPS.
    pub insecure: Vec<String>,
    /// Extra trusted CA certificates (PEM bundle) on top of the system roots, for
    /// self-signed and private-CA registries.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Attempts per request, including the first.
    pub attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for the next byte of an answer (headers or body) before the request
    /// fails as a timeout; a hung upstream is given up on after this (and the retries).
    pub read_timeout: Duration,
    /// Which hosts stagings may reach.
    pub hosts: HostPolicy,
    /// Blobs of at least twice this size are fetched as concurrent `Range` requests of this
    /// size (see `ranged.rs`); 0 fetches every blob on one connection. Twice, because a blob
    /// that makes a single range gains nothing from asking for it in pieces.
    pub range_size: u64,
    /// Ranges of one blob in flight at once.
    pub range_parallel: usize,
    /// Most bytes of ranges requested and not yet handed to the store, per staging: what a
    /// staging may hold in memory whatever the speed of the store it writes to.
    pub range_budget: u64,
    /// The same bound over every staging of the process.
    pub range_budget_total: u64,
}

/// Default range size: large enough that a request's round trip (tens of milliseconds
/// across a continent) costs little against its transfer, small enough that a 60 MiB layer
/// still splits into several.
pub const DEFAULT_RANGE_SIZE: u64 = 8 << 20;
/// Default ranges in flight per blob: enough to fill the per-staging budget with one blob,
/// since images often have one layer much larger than the rest.
pub const DEFAULT_RANGE_PARALLEL: usize = 8;

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            insecure: Vec::new(),
            extra_ca_pem: None,
            attempts: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            hosts: HostPolicy::default(),
            range_size: DEFAULT_RANGE_SIZE,
            range_parallel: DEFAULT_RANGE_PARALLEL,
            range_budget: 64 << 20,
            range_budget_total: 256 << 20,
        }
    }
}

/// Follows up to 5 redirects, but never from HTTPS down to plain HTTP on a host that is not
/// on the insecure list: private layers must not travel unencrypted because a registry's
/// storage backend said so; and never to an address the host policy refuses, checked before
/// the redirect's connection is opened.
pub(crate) fn redirect_policy(insecure: Vec<String>, hosts: Arc<HostPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let url = attempt.url();
        // The parsed URL, so `0xa9.0xfe.0xa9.0xfe` is judged as the address it is; names
        // are checked address by address when resolved (FilteringResolver).
        if let Err(refused) = hosts.target(url) {
            return attempt.error(refused);
        }
        if url.scheme() == "http" {
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
                None => url.host_str().unwrap_or("").to_string(),
            };
            if !insecure.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                let msg = format!("refusing a redirect to plain-HTTP {host}: it is not an insecure registry");
                return attempt.error(msg);
            }
        }
        attempt.follow()
    })
}
