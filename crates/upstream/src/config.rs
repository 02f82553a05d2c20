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
}

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
        }
    }
}

/// Follows up to 5 redirects, but never from HTTPS down to plain HTTP on a host that is not
/// on the insecure list: private layers must not travel unencrypted because a registry's
/// storage backend said so.
pub(crate) fn redirect_policy(insecure: Vec<String>, hosts: Arc<HostPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let url = attempt.url();
        // Names are checked when resolved (FilteringResolver); literal addresses here.
        if !hosts.redirect_allowed(url.host_str().unwrap_or("")) {
            let msg = format!(
                "refusing a redirect to {}: link-local and cloud metadata addresses are not reachable",
                url.host_str().unwrap_or("")
            );
            return attempt.error(msg);
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
