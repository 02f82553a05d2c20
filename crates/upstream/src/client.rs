//! Requests to one upstream registry: authentication, retries, manifests and blob streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci::media;
use oci::{Digest, ImageRef, Manifest, Reference};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use zeroize::Zeroizing;

use crate::auth::{parse_challenge, CachedToken, Challenge, TokenResponse};
use crate::hosts::{FilteringResolver, HostPolicy};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::{Credentials, UpstreamError};

/// Largest manifest accepted from an upstream.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

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

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Follows up to 5 redirects, but never from HTTPS down to plain HTTP on a host that is not
/// on the insecure list: private layers must not travel unencrypted because a registry's
/// storage backend said so.
fn redirect_policy(insecure: Vec<String>, hosts: Arc<HostPolicy>) -> reqwest::redirect::Policy {
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

/// A client for every upstream registry; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    cfg: UpstreamConfig,
    policy: RetryPolicy,
    /// Anonymous tokens by (registry, scope): they carry no secret of any user.
    anonymous: Mutex<HashMap<(String, String), CachedToken>>,
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
        // reqwest is built without a default TLS provider; ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hosts = Arc::new(cfg.hosts.clone());
        let mut builder = reqwest::Client::builder()
            .dns_resolver(Arc::new(FilteringResolver { policy: hosts.clone() }))
            .user_agent(concat!("wharfage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            // reqwest drops Authorization when a redirect leaves the host (blob storage URLs).
            .redirect(redirect_policy(cfg.insecure.clone(), hosts));
        if let Some(pem) = &cfg.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| UpstreamError::Config(format!("extra CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(UpstreamError::Config("extra CA bundle holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| UpstreamError::Config(format!("HTTP client: {e}")))?;
        let policy = RetryPolicy { attempts: cfg.attempts.max(1), base: cfg.base_backoff, max: cfg.max_backoff };
        Ok(Client { inner: Arc::new(ClientInner { http, cfg, policy, anonymous: Mutex::new(HashMap::new()) }) })
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
        Ok(Session {
            client: self.clone(),
            registry: image.registry.clone(),
            repository: image.repository.to_string(),
            base: format!("{scheme}://{host}/v2/{}", image.repository),
            credentials: credentials.map(Arc::new),
            auth: Arc::new(Mutex::new(None)),
        })
    }
}

/// The `Authorization` a session has earned.
#[derive(Clone)]
enum Auth {
    Bearer(CachedToken),
    Basic(Zeroizing<String>),
}

/// Talks to one repository of one upstream registry for one staging. Dropping the last clone
/// zeroises the credentials and any token obtained with them.
#[derive(Clone)]
pub struct Session {
    client: Client,
    registry: String,
    repository: String,
    base: String,
    credentials: Option<Arc<Credentials>>,
    auth: Arc<Mutex<Option<Auth>>>,
}

impl Session {
    /// The registry this session talks to (for messages).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn auth_header(&self) -> Option<HeaderValue> {
        let guard = self.auth.lock().ok()?;
        let value = match guard.as_ref()? {
            Auth::Bearer(t) if t.valid_until > Instant::now() => format!("Bearer {}", t.token),
            Auth::Bearer(_) => return None,
            Auth::Basic(b) => format!("Basic {}", b.as_str()),
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    fn unreachable(&self, e: &reqwest::Error) -> UpstreamError {
        // The error's Display may include the URL, never our headers; its causes say why.
        let detail = error_chain(e);
        if e.is_timeout() {
            UpstreamError::Timeout { registry: self.registry.clone(), detail }
        } else {
            UpstreamError::Unreachable { registry: self.registry.clone(), detail }
        }
    }

    /// Sends a request, retrying transport errors, 429 and 5xx with backoff; answers a 401
    /// challenge once by authenticating. Only 2xx responses are returned.
    async fn send(&self, method: Method, url: &str, extra: HeaderMap, what: &str) -> Result<Response, UpstreamError> {
        let policy = self.client.inner.policy;
        let mut attempt = 0u32;
        // Answers to 401 so far, and whether one fetched a token without the anonymous cache.
        let (mut authentications, mut fetched_fresh) = (0u8, false);
        loop {
            attempt += 1;
            let mut req = self.client.inner.http.request(method.clone(), url).headers(extra.clone());
            let sent_auth = self.auth_header();
            if let Some(a) = sent_auth.clone() {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_redirect() => {
                    // A refused or looping redirect does not get better by retrying.
                    return Err(UpstreamError::Protocol { registry: self.registry.clone(), what: what.into(), detail: error_chain(&e) });
                }
                Err(e) => {
                    let err = self.unreachable(&e);
                    if attempt < policy.attempts {
                        tracing::warn!(registry = %self.registry, %what, attempt, error = %err, "retrying");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            match status {
                // Once; and once more when the token refused came from the anonymous cache,
                // which a registry may stop taking before the time it was said to last (its
                // clock or its idea of the lifetime differs): that one is never offered again.
                StatusCode::UNAUTHORIZED
                    if authentications == 0 || (authentications == 1 && self.credentials.is_none() && !fetched_fresh) =>
                {
                    authentications += 1;
                    attempt -= 1;
                    let challenge = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(parse_challenge);
                    let refused = sent_auth.is_some();
                    fetched_fresh |= refused;
                    self.authenticate(challenge, what, refused).await?;
                }
                StatusCode::UNAUTHORIZED => {
                    // Say which: a basic-auth registry issued no token, the password was wrong.
                    let basic = self.auth.lock().ok().is_some_and(|a| matches!(*a, Some(Auth::Basic(_))));
                    let detail =
                        if basic { "the registry rejected the username and password" } else { "the registry rejected the token it issued" };
                    return Err(self.refused(what, detail));
                }
                StatusCode::FORBIDDEN => return Err(UpstreamError::Denied { registry: self.registry.clone(), what: what.into() }),
                StatusCode::NOT_FOUND => return Err(UpstreamError::NotFound { registry: self.registry.clone(), what: what.into() }),
                s if (s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()) && attempt < policy.attempts => {
                    let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
                    tracing::warn!(registry = %self.registry, %what, attempt, status = s.as_u16(), "retrying");
                    tokio::time::sleep(policy.delay(attempt, after)).await;
                }
                s => {
                    let detail = resp.text().await.unwrap_or_default().chars().take(300).collect();
                    return Err(UpstreamError::Status { registry: self.registry.clone(), what: what.into(), status: s.as_u16(), detail });
                }
            }
        }
    }

    fn refused(&self, what: &str, detail: &str) -> UpstreamError {
        match &self.credentials {
            Some(c) => UpstreamError::Unauthorized { registry: self.registry.clone(), what: what.into(), detail: format!("{c}: {detail}") },
            None => UpstreamError::CredentialsRequired { registry: self.registry.clone(), what: what.into() },
        }
    }

    /// Answers a challenge: basic credentials directly, or a bearer token from the realm.
    async fn authenticate(&self, challenge: Option<Challenge>, what: &str, refused: bool) -> Result<(), UpstreamError> {
        let auth = match challenge {
            None => return Err(self.refused(what, "401 without a usable WWW-Authenticate challenge")),
            Some(Challenge::Basic) => match self.credentials.as_deref() {
                Some(Credentials::Basic { username, password }) => {
                    let raw = Zeroizing::new(format!("{}:{}", username.as_str(), password.as_str()));
                    Auth::Basic(Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())))
                }
                Some(Credentials::Token(_)) => return Err(self.refused(what, "the registry wants a username and password, not a token")),
                None => return Err(self.refused(what, "")),
            },
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                Auth::Bearer(self.token(&realm, service.as_deref(), &scope, what, refused).await?)
            }
        };
        if let Ok(mut guard) = self.auth.lock() {
            *guard = Some(auth);
        }
        Ok(())
    }

    /// A bearer token for `scope`: a cached anonymous one unless `refused` (the registry just
    /// turned one down), else a new one from the realm.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        what: &str,
        refused: bool,
    ) -> Result<CachedToken, UpstreamError> {
        let key = (self.registry.clone(), scope.to_string());
        if self.credentials.is_none() && !refused {
            if let Some(t) = self.client.inner.anonymous.lock().ok().and_then(|m| m.get(&key).cloned()) {
                if t.valid_until > Instant::now() {
                    return Ok(t);
                }
            }
        }
        let mut url = reqwest::Url::parse(realm).map_err(|e| UpstreamError::Protocol {
            registry: self.registry.clone(),
            what: what.into(),
            detail: format!("token realm {realm:?}: {e}"),
        })?;
        let http = &self.client.inner.http;
        let req = match self.credentials.as_deref() {
            Some(Credentials::Token(token)) => {
                // OAuth2 refresh-token grant, as docker does with identity tokens.
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token.as_str())
                    .append_pair("client_id", "wharfage")
                    .append_pair("scope", scope);
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                let body = Zeroizing::new(form.finish());
                http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body.as_str().to_string())
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let req = http.get(url);
                match creds {
                    Some(Credentials::Basic { username, password }) => req.basic_auth(username.as_str(), Some(password.as_str())),
                    _ => req,
                }
            }
        };
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused(what, &format!("the token service answered {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                registry: self.registry.clone(),
                what: format!("a token for {what}"),
                status: status.as_u16(),
                detail: resp.text().await.unwrap_or_default().chars().take(300).collect(),
            });
        }
        let parsed: TokenResponse = resp.json().await.map_err(|e| UpstreamError::Protocol {
            registry: self.registry.clone(),
            what: format!("a token for {what}"),
            detail: e.to_string(),
        })?;
        let token = parsed.into_cached().ok_or_else(|| UpstreamError::Protocol {
            registry: self.registry.clone(),
            what: format!("a token for {what}"),
            detail: "the answer has neither token nor access_token".into(),
        })?;
        if self.credentials.is_none() {
            if let Ok(mut m) = self.client.inner.anonymous.lock() {
                m.insert(key, token.clone());
            }
        }
        Ok(token)
    }

    fn accept() -> HeaderMap {
        let mut h = HeaderMap::new();
        let list = media::MANIFEST_TYPES.join(", ");
        if let Ok(v) = HeaderValue::from_str(&list) {
            h.insert(ACCEPT, v);
        }
        h
    }

    /// HEAD of a manifest: its digest without downloading it (HEADs do not count against
    /// Docker Hub's pull limit). `None` when the registry sends no digest header.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, UpstreamError> {
        let what = format!("manifest {}:{reference}", self.repository);
        let resp = self.send(Method::HEAD, &format!("{}/manifests/{reference}", self.base), Self::accept(), &what).await?;
        Ok(resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| Digest::parse(v).ok()))
    }

    /// GETs a manifest, checks it is no schema 1, parses it and verifies its digest.
    pub async fn manifest(&self, reference: &Reference) -> Result<Fetched, UpstreamError> {
        let what = format!("manifest {}:{reference}", self.repository);
        let resp = self.send(Method::GET, &format!("{}/manifests/{reference}", self.base), Self::accept(), &what).await?;
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let header_digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| Digest::parse(v).ok());
        if matches!(content_type.as_deref(), Some(media::DOCKER_SCHEMA1) | Some(media::DOCKER_SCHEMA1_SIGNED)) {
            return Err(UpstreamError::Schema1 { registry: self.registry.clone(), what });
        }
        let mut body = resp.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(&e))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_MANIFEST_BYTES {
                return Err(UpstreamError::Protocol { registry: self.registry.clone(), what, detail: "manifest larger than 4 MiB".into() });
            }
        }
        // The digest first: bytes that are not the ones asked for are corrupt (422), whether
        // or not they still parse; only the right bytes can be an invalid manifest.
        let expected = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => header_digest,
        };
        let digest = match &expected {
            Some(e) => Digest::of(e.algorithm(), &bytes),
            None => Digest::of(oci::Algorithm::Sha256, &bytes),
        };
        if let Some(e) = expected {
            if e != digest {
                return Err(UpstreamError::DigestMismatch {
                    registry: self.registry.clone(),
                    what,
                    expected: e.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let manifest = Manifest::parse(&bytes, content_type.as_deref()).map_err(|e| {
            if bytes.windows(17).any(|w| w == b"\"schemaVersion\":1") || bytes.windows(18).any(|w| w == b"\"schemaVersion\": 1") {
                UpstreamError::Schema1 { registry: self.registry.clone(), what: what.clone() }
            } else {
                UpstreamError::Protocol { registry: self.registry.clone(), what: what.clone(), detail: e.to_string() }
            }
        })?;
        Ok(Fetched { digest, media_type: manifest.media_type.clone(), bytes: Bytes::from(bytes), manifest })
    }

    /// Streams a blob of `size` bytes. Interrupted transfers resume with `Range` from the
    /// last byte received; the stream fails if the upstream sends more than `size` bytes or
    /// cannot finish. The digest is verified by whoever stores the stream, in the same pass.
    pub async fn blob(&self, digest: &Digest, size: u64) -> Result<ByteStream, UpstreamError> {
        let what = format!("blob {digest} of {}", self.repository);
        let url = format!("{}/blobs/{digest}", self.base);
        let resp = self.send(Method::GET, &url, HeaderMap::new(), &what).await?;
        self.check_length(&resp, size, &what)?;
        let state = BlobDownload {
            session: self.clone(),
            url,
            what,
            size,
            received: 0,
            skip: 0,
            body: Some(resp.bytes_stream().boxed()),
            resumes: 0,
            done: false,
        };
        Ok(futures::stream::unfold(state, |mut st| async move { st.next().await.map(|item| (item, st)) }).boxed())
    }
}

impl Session {
    /// A whole-blob answer whose `Content-Length` is not the descriptor's size can never
    /// match it: fail now as corrupt, rather than read it, resume past its end (416) and
    /// report the upstream unreachable after the retries.
    fn check_length(&self, resp: &Response, size: u64, what: &str) -> Result<(), UpstreamError> {
        match resp.content_length() {
            Some(len) if resp.status() == StatusCode::OK && len != size => {
                Err(UpstreamError::SizeMismatch { registry: self.registry.clone(), what: what.into(), expected: size, actual: len })
            }
            _ => Ok(()),
        }
    }
}

/// State of one resumable blob download.
struct BlobDownload {
    session: Session,
    url: String,
    what: String,
    size: u64,
    received: u64,
    /// Bytes to drop from a body that restarted at 0 (the upstream ignored our Range).
    skip: u64,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    resumes: u32,
    done: bool,
}

impl BlobDownload {
    fn fail(&mut self, e: UpstreamError) -> Option<std::io::Result<Bytes>> {
        self.done = true;
        Some(Err(std::io::Error::other(e)))
    }

    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                if let Err(e) = self.resume().await {
                    return self.fail(e);
                }
                continue;
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let drop = self.skip.min(chunk.len() as u64) as usize;
                        self.skip -= drop as u64;
                        chunk = chunk.slice(drop..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.received += chunk.len() as u64;
                    if self.received > self.size {
                        let (registry, what) = (self.session.registry.clone(), self.what.clone());
                        return self.fail(UpstreamError::SizeMismatch { registry, what, expected: self.size, actual: self.received });
                    }
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    tracing::warn!(registry = %self.session.registry, what = %self.what, received = self.received, error = %e, "blob download interrupted; resuming");
                    self.body = None;
                }
                None if self.received == self.size => {
                    self.done = true;
                    return None;
                }
                None => {
                    tracing::warn!(registry = %self.session.registry, what = %self.what, received = self.received, "blob body ended early; resuming");
                    self.body = None;
                }
            }
        }
    }

    /// Re-requests the rest of the blob with `Range`, after a backoff.
    async fn resume(&mut self) -> Result<(), UpstreamError> {
        let policy = self.session.client.inner.policy;
        self.resumes += 1;
        if self.resumes >= policy.attempts {
            return Err(UpstreamError::Unreachable {
                registry: self.session.registry.clone(),
                detail: format!("{} interrupted {} times, {} of {} bytes received", self.what, self.resumes, self.received, self.size),
            });
        }
        tokio::time::sleep(policy.delay(self.resumes, None)).await;
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-", self.received)) {
            h.insert(RANGE, v);
        }
        let resp = self.session.send(Method::GET, &self.url, h, &self.what).await?;
        self.session.check_length(&resp, self.size, &self.what)?;
        self.skip = if resp.status() == StatusCode::PARTIAL_CONTENT {
            let start = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim_start_matches("bytes ").split('-').next().and_then(|s| s.trim().parse::<u64>().ok()));
            if start != Some(self.received) {
                return Err(UpstreamError::Protocol {
                    registry: self.session.registry.clone(),
                    what: self.what.clone(),
                    detail: format!("asked to resume at byte {}, got Content-Range starting at {start:?}", self.received),
                });
            }
            0
        } else {
            self.received
        };
        self.body = Some(resp.bytes_stream().boxed());
        Ok(())
    }
}
