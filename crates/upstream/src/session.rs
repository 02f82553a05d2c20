//! One staging's conversation with one upstream repository: authentication state (bearer
//! tokens earned with the staging's credentials, never shared), retries, manifests.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use oci::media;
use oci::{Descriptor, Digest, Manifest, Reference};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use zeroize::Zeroizing;

use crate::auth::{parse_challenge, CachedToken, Challenge, TokenResponse};
use crate::budget::Budget;
use crate::client::{error_chain, Client, Fetched, Http};
use crate::hosts::TargetRefused;
use crate::retry::parse_retry_after;
use crate::{Credentials, UpstreamError};
use oci::MAX_MANIFEST_BYTES;

/// The `Authorization` a session has earned.
#[derive(Clone)]
pub(crate) enum Auth {
    Bearer(CachedToken),
    Basic(Zeroizing<String>),
}

/// Talks to one repository of one upstream registry for one staging. Dropping the last clone
/// zeroises the credentials and any token obtained with them.
#[derive(Clone)]
pub struct Session {
    pub(crate) client: Client,
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) base: String,
    pub(crate) credentials: Option<Arc<Credentials>>,
    pub(crate) auth: Arc<Mutex<Option<Auth>>>,
    /// Memory for ranges fetched ahead, this staging's share (`budget.rs`).
    pub(crate) budget: Budget,
    /// Attempts per request instead of the client's policy (`without_retries`).
    pub(crate) attempts: Option<u32>,
}

impl Session {
    /// The same session, trying each request once: for a caller that has an answer of its
    /// own to give when the upstream fails (a mirror serving its stored copy), for whom
    /// waiting through retries only delays it.
    pub fn without_retries(&self) -> Session {
        Session { attempts: Some(1), ..self.clone() }
    }

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

    /// A transport error, named by its cause (`tls::Failure`): an untrusted certificate and
    /// a plain-HTTP answer are configuration to fix, not worth a retry; a refusal by the host
    /// policy (a redirect to, or a name resolving to, a refused address), raised before
    /// connecting, is reported as such.
    fn unreachable(&self, e: &reqwest::Error) -> UpstreamError {
        if let Some(refused) = TargetRefused::find(e) {
            return self.target_refused(refused);
        }
        // The error's Display may include the URL, never our headers; its causes say why.
        let detail = error_chain(e);
        let registry = self.registry.clone();
        match crate::tls::Failure::of(e) {
            crate::tls::Failure::Untrusted(reason) => UpstreamError::Untrusted { registry, reason },
            crate::tls::Failure::PlainHttp => UpstreamError::PlainHttp { registry },
            crate::tls::Failure::Refused => {
                UpstreamError::Unreachable { registry, detail: format!("connection refused: nothing listens at that address ({detail})") }
            }
            crate::tls::Failure::Timeout => UpstreamError::Timeout { registry, detail },
            crate::tls::Failure::NotHttp | crate::tls::Failure::Other => UpstreamError::Unreachable { registry, detail },
        }
    }

    /// [`Session::unreachable`], for the other modules of the crate.
    pub(crate) fn unreachable_error(&self, e: &reqwest::Error) -> UpstreamError {
        self.unreachable(e)
    }

    fn target_refused(&self, refused: &TargetRefused) -> UpstreamError {
        UpstreamError::Refused { registry: self.registry.clone(), reason: refused.to_string() }
    }

    /// Sends a request, retrying transport errors, 429 and 5xx with backoff; answers a 401
    /// challenge once by authenticating. Only 2xx responses are returned.
    pub(crate) async fn send(&self, method: Method, url: &str, extra: HeaderMap, what: &str) -> Result<Response, UpstreamError> {
        self.send_on(&self.client.inner.http, method, url, extra, what).await
    }

    /// [`Session::send`] on the client `http`.
    pub(crate) async fn send_on(
        &self,
        http: &Http,
        method: Method,
        url: &str,
        extra: HeaderMap,
        what: &str,
    ) -> Result<Response, UpstreamError> {
        let mut policy = self.client.inner.policy;
        if let Some(a) = self.attempts {
            policy.attempts = a;
        }
        let url = reqwest::Url::parse(url).map_err(|e| UpstreamError::Protocol {
            registry: self.registry.clone(),
            what: what.into(),
            detail: format!("URL {url:?}: {e}"),
        })?;
        let mut attempt = 0u32;
        // Answers to 401 so far, and whether one fetched a token without the anonymous cache.
        let (mut authentications, mut fetched_fresh) = (0u8, false);
        loop {
            attempt += 1;
            let mut req = http.request(method.clone(), url.clone()).map_err(|r| self.target_refused(&r))?.headers(extra.clone());
            let sent_auth = self.auth_header();
            if let Some(a) = sent_auth.clone() {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_redirect() => {
                    // A refused or looping redirect does not get better by retrying.
                    if let Some(refused) = TargetRefused::find(&e) {
                        return Err(self.target_refused(refused));
                    }
                    return Err(UpstreamError::Protocol { registry: self.registry.clone(), what: what.into(), detail: error_chain(&e) });
                }
                Err(e) => {
                    let err = self.unreachable(&e);
                    if attempt < policy.attempts && err.is_retryable() {
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
                http.request(Method::POST, url)
                    .map_err(|r| self.target_refused(&r))?
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.as_str().to_string())
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let req = http.request(Method::GET, url).map_err(|r| self.target_refused(&r))?;
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

    /// The manifests whose `subject` is `subject`, from the registry's referrers API. `None`
    /// when the registry has no such API (it answers 404, or another client error, or
    /// something that is not an image index): the caller then falls back to the tag schema.
    pub async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Descriptor>>, UpstreamError> {
        let what = format!("referrers of {}@{subject}", self.repository);
        let mut accept = HeaderMap::new();
        accept.insert(ACCEPT, HeaderValue::from_static(media::OCI_INDEX));
        let resp = match self.send(Method::GET, &format!("{}/referrers/{subject}", self.base), accept, &what).await {
            Ok(r) => r,
            Err(UpstreamError::NotFound { .. }) => return Ok(None),
            Err(UpstreamError::Status { status, .. }) if (400..500).contains(&status) => return Ok(None),
            Err(e) => return Err(e),
        };
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if !content_type.starts_with(media::OCI_INDEX) {
            return Ok(None);
        }
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(UpstreamError::Protocol {
                registry: self.registry.clone(),
                what,
                detail: "referrers list larger than 4 MiB".into(),
            });
        }
        match Manifest::parse(&bytes, Some(media::OCI_INDEX)) {
            Ok(index) => Ok(Some(index.manifests)),
            Err(_) => Ok(None),
        }
    }
}
