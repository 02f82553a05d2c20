//! The client for every upstream registry: one HTTP client (TLS roots, resolver, redirect
//! policy) and the anonymous-token cache; each staging talks through a `Session`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oci::{Digest, ImageRef, Manifest};

use tokio::sync::Semaphore;

use crate::auth::CachedToken;
use crate::budget::{permits, Budget};
use crate::config::{redirect_policy, UpstreamConfig};
use crate::hosts::{FilteringResolver, HostPolicy, TargetRefused};
use crate::retry::RetryPolicy;
use crate::session::Session;
use crate::{Credentials, UpstreamError};

pub use oci::ByteStream;

/// An error and its causes, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The HTTP client with the host policy in its connection path: requests are built only
/// here, from parsed URLs whose host the policy has accepted, and the same policy object
/// judges every redirect (`redirect_policy`) and every resolved address
/// (`FilteringResolver`), so nothing reaches a refused address whoever uses the client
/// (stagings, a token realm an upstream names, a mirror).
pub(crate) struct Http {
    client: reqwest::Client,
    hosts: Arc<HostPolicy>,
}

impl Http {
    /// A request to `url`, or the policy's refusal, before any connection is opened.
    pub(crate) fn request(&self, method: reqwest::Method, url: reqwest::Url) -> Result<reqwest::RequestBuilder, TargetRefused> {
        self.hosts.target(&url)?;
        Ok(self.client.request(method, url))
    }
}

/// The HTTP client: system roots plus the extra CA bundle (`tls.rs`), the filtering
/// resolver, the redirect policy; HTTP/1.1 only if `http1`.
fn http_client(cfg: &UpstreamConfig, hosts: &Arc<HostPolicy>, http1: bool) -> Result<Http, UpstreamError> {
    let hosts = hosts.clone();
    let mut builder = reqwest::Client::builder()
        .dns_resolver(Arc::new(FilteringResolver { policy: hosts.clone() }))
        .user_agent(concat!("wharfage/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        // reqwest drops Authorization when a redirect leaves the host (blob storage URLs).
        .redirect(redirect_policy(cfg.insecure.clone(), hosts.clone()));
    if http1 {
        builder = builder.http1_only();
    }
    let extra = match &cfg.extra_ca_pem {
        Some(pem) => crate::tls::pem_certificates(pem).map_err(|e| UpstreamError::Config(format!("extra CA bundle: {e}")))?,
        None => Vec::new(),
    };
    let tls = crate::tls::client_config(extra, http1).map_err(|e| UpstreamError::Config(format!("TLS: {e}")))?;
    builder = builder.tls_backend_preconfigured(tls);
    let client = builder.build().map_err(|e| UpstreamError::Config(format!("HTTP client: {e}")))?;
    Ok(Http { client, hosts })
}

/// A client for every upstream registry; cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) http: Http,
    /// The same, but HTTP/1.1 only: for the ranges of one blob (`ranged.rs`), which must
    /// travel on connections of their own to beat a per-connection limit, where HTTP/2
    /// would multiplex them onto one.
    pub(crate) http_ranges: Http,
    pub(crate) cfg: UpstreamConfig,
    pub(crate) policy: RetryPolicy,
    /// Bytes of ranges fetched ahead over every staging (`budget.rs`).
    pub(crate) range_total: Arc<Semaphore>,
    /// Anonymous tokens by (registry, scope): they carry no secret of any user.
    pub(crate) anonymous: Mutex<HashMap<(String, String), CachedToken>>,
}

/// A manifest fetched from an upstream.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    pub manifest: Manifest,
}

impl Client {
    /// Builds the HTTP client (system roots plus the extra CA bundle, if any).
    pub fn new(cfg: UpstreamConfig) -> Result<Self, UpstreamError> {
        // One policy object for both clients, the redirect policy and the resolver.
        let hosts = Arc::new(cfg.hosts.clone());
        let http = http_client(&cfg, &hosts, false)?;
        let http_ranges = http_client(&cfg, &hosts, true)?;
        let policy = RetryPolicy { attempts: cfg.attempts.max(1), base: cfg.base_backoff, max: cfg.max_backoff };
        // A range larger than a budget could never be given memory: its download would wait forever.
        if cfg.range_size > cfg.range_budget.min(cfg.range_budget_total).min(u64::from(u32::MAX)) {
            return Err(UpstreamError::Config(format!(
                "a range of {} bytes does not fit the range budgets ({} per staging, {} in all)",
                cfg.range_size, cfg.range_budget, cfg.range_budget_total
            )));
        }
        let range_total = Arc::new(Semaphore::new(permits(cfg.range_budget_total)));
        let anonymous = Mutex::new(HashMap::new());
        Ok(Client { inner: Arc::new(ClientInner { http, http_ranges, cfg, policy, range_total, anonymous }) })
    }

    /// A session for one image, holding the credentials (if any) for its lifetime only.
    /// Refused when the host policy does not let stagings reach the image's registry.
    pub fn session(&self, image: &ImageRef, credentials: Option<Credentials>) -> Result<Session, UpstreamError> {
        self.inner.cfg.hosts.check(&image.registry)?;
        let host = image.api_host().to_string();
        let scheme = if self.inner.cfg.insecure.iter().any(|h| h.eq_ignore_ascii_case(&image.registry) || h.eq_ignore_ascii_case(&host)) {
            "http"
        } else {
            "https"
        };
        let base = format!("{scheme}://{host}/v2/{}", image.repository);
        // The registry as the URL parser reads it: a spelling of a refused address that got
        // past `check` (which judges the string) is refused here, before any request.
        if let Ok(url) = reqwest::Url::parse(&base) {
            self.inner
                .cfg
                .hosts
                .target(&url)
                .map_err(|r| UpstreamError::Refused { registry: image.registry.clone(), reason: r.to_string() })?;
        }
        Ok(Session {
            client: self.clone(),
            registry: image.registry.clone(),
            repository: image.repository.to_string(),
            base,
            credentials: credentials.map(Arc::new),
            budget: Budget::new(self.inner.cfg.range_budget, self.inner.range_total.clone()),
            auth: Arc::new(Mutex::new(None)),
            attempts: None,
        })
    }
}
