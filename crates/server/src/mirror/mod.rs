//! The pull-through mirror: engines that name wharfage as the mirror of a registry get every
//! image they pull cached in the store and served from there, the upstream asked only for
//! what the store lacks and, for tags, at most once per `tag_ttl`.
//!
//! Only configured registries are mirrored ([`MirrorConfig`]); a request naming another
//! opens no connection. Three addressings reach a mirror (`route`): containerd's
//! `?ns=<registry>`, a path prefix `/v2/<registry>/<name>/...`, and, for the default mirror,
//! a name with no registry that no local repository has. Mirrored content is stored under
//! `<registry>/<name>` (a `:` in the registry written `-`), the name `[[access]]` rules use,
//! and is read-only. Manifests are stored verbatim, an index without its children (only
//! what engines ask for is fetched); blobs absent from the store are streamed to the client
//! while they are written, one upstream fetch per digest (`fill.rs`). When the upstream
//! fails in any way, a tag already resolved is served from the store (serve-stale).

pub(crate) mod fill;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use futures::FutureExt;
use http::{response::Builder, Method, StatusCode};
use oci::{Digest, ErrorCode, ImageRef, Reference, RepoName, Tag};
use upstream::{Credentials, Session, UpstreamError};

use crate::endpoint::Endpoint;
use crate::error::{ApiError, ApiResult};
use crate::request::Req;
use crate::AppState;

/// One mirrored registry, as configured.
#[derive(Clone)]
pub struct MirrorConfig {
    /// The name engines use: `docker.io`, `ghcr.io`, `registry.example.com:5000`.
    pub registry: String,
    /// Where to fetch from: `https://registry-1.docker.io`, `http://127.0.0.1:5001`.
    pub url: String,
    /// Upstream credentials for this mirror only; kept in memory.
    pub credentials: Option<Credentials>,
    /// How long a tag's resolution is trusted before the upstream is asked again.
    pub tag_ttl: Duration,
    /// Requests that name no registry go to this mirror (dockerd's `registry-mirrors`).
    pub default: bool,
    /// Serve a stored tag even when the upstream answers that it no longer exists.
    pub stale_on_not_found: bool,
    /// Mirrored manifests not pulled for this long are collected (with what only they use).
    pub retention: Duration,
    /// At most about this many bytes kept; the least recently pulled images go first.
    pub max_size: Option<u64>,
}

impl std::fmt::Debug for MirrorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorConfig")
            .field("registry", &self.registry)
            .field("url", &self.url)
            .field("credentials", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("tag_ttl", &self.tag_ttl)
            .field("default", &self.default)
            .finish()
    }
}

/// The store's name for a mirrored registry: its `host[:port]`, with `:` written `-` (a
/// repository name has no `:`).
pub fn registry_key(registry: &str) -> String {
    registry.to_ascii_lowercase().replace(':', "-")
}

/// Refuses a mirror registry name that is not a plain `host[:port]`.
pub fn check_registry(registry: &str) -> Result<(), String> {
    if oci::is_registry_host(registry) && RepoName::parse(&registry_key(registry)).is_ok() {
        Ok(())
    } else {
        Err(format!("mirror registry {registry:?} is not a host[:port] (e.g. docker.io, registry.example.com:5000)"))
    }
}

/// The upstream registry's `host[:port]` and whether it speaks plain HTTP, from a mirror's URL.
pub fn upstream_host(url: &str) -> Result<(String, bool), String> {
    let parsed: http::Uri = url.parse().map_err(|e| format!("mirror url {url:?}: {e}"))?;
    let plain = match parsed.scheme_str() {
        Some("https") => false,
        Some("http") => true,
        other => return Err(format!("mirror url {url:?}: the scheme must be https or http, not {}", other.unwrap_or("none"))),
    };
    if parsed.path() != "/" && !parsed.path().is_empty() || parsed.query().is_some() {
        return Err(format!("mirror url {url:?}: give the registry's root, without a path"));
    }
    let authority = parsed.authority().ok_or_else(|| format!("mirror url {url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("mirror url {url:?}: put credentials in username and password_file, not in the url"));
    }
    Ok((authority.as_str().to_ascii_lowercase(), plain))
}

/// Every mirror of a server.
pub struct Mirrors {
    mirrors: Vec<Mirror>,
    client: upstream::Client,
    /// Where blobs being fetched are spooled for the clients that follow the fetch.
    spool: PathBuf,
    fills: Arc<fill::Fills>,
}

struct Mirror {
    cfg: MirrorConfig,
    key: String,
    /// The upstream's `host[:port]` as a session names it.
    upstream: String,
    /// Sessions by upstream repository, so tokens are reused across requests.
    sessions: Mutex<HashMap<String, Session>>,
    /// When each tag was last confirmed by the upstream, on this replica.
    resolved: Mutex<HashMap<(RepoName, Tag), Instant>>,
    /// Tags served stale since their last confirmation (logged once each).
    stale: Mutex<HashSet<(RepoName, Tag)>>,
    /// When this replica last recorded a pull of each manifest: at most one store write per
    /// manifest per [`PULL_RECORD_EVERY`], never one per request.
    recorded: Mutex<HashMap<(RepoName, Digest), Instant>>,
    /// The last upstream failure and the last success, on this replica (for `mirror ls`).
    health: Mutex<Health>,
}

/// The last upstream failure (when, why) and the last success.
type Health = (Option<(SystemTime, String)>, Option<SystemTime>);

impl Mirror {
    fn failed(&self, e: &UpstreamError) {
        if let Ok(mut h) = self.health.lock() {
            h.0 = Some((SystemTime::now(), e.to_string()));
        }
    }

    fn succeeded(&self) {
        if let Ok(mut h) = self.health.lock() {
            h.1 = Some(SystemTime::now());
        }
    }
}

/// How often, at most, a pull of one manifest is written down: hourly (retention is days
/// long), or a tenth of a shorter retention.
const PULL_RECORD_EVERY: Duration = Duration::from_secs(3600);

/// Sessions kept per mirror; beyond it the table starts again (tokens are fetched anew).
const MAX_SESSIONS: usize = 1024;

/// Where a `/v2/` request goes.
pub(crate) enum Route {
    /// This registry's own repositories.
    Local,
    /// A mirror: its index, and the path rewritten to name `<key>/<name>`.
    Mirror(usize, String),
    /// `?ns=` names a registry that is not mirrored: 404, no connection.
    Unconfigured(String),
}

impl Mirrors {
    /// The mirrors of `configs`, fetching through `client` (whose host policy guards them).
    pub fn new(configs: Vec<MirrorConfig>, client: upstream::Client, spool: PathBuf) -> Result<Mirrors, String> {
        let mut mirrors: Vec<Mirror> = Vec::new();
        for cfg in configs {
            check_registry(&cfg.registry)?;
            let key = registry_key(&cfg.registry);
            if mirrors.iter().any(|m| m.key == key) {
                return Err(format!("registry {} is mirrored twice", cfg.registry));
            }
            let (upstream, _) = upstream_host(&cfg.url)?;
            mirrors.push(Mirror {
                cfg,
                key,
                upstream,
                sessions: Mutex::default(),
                resolved: Mutex::default(),
                stale: Mutex::default(),
                recorded: Mutex::default(),
                health: Mutex::default(),
            });
        }
        if mirrors.iter().filter(|m| m.cfg.default).count() > 1 {
            return Err("more than one mirror is the default".into());
        }
        Ok(Mirrors { mirrors, client, spool, fills: Arc::default() })
    }

    /// The mirrors' registry names, for the start-up log and `/metrics`.
    pub fn registries(&self) -> Vec<String> {
        self.mirrors.iter().map(|m| m.cfg.registry.clone()).collect()
    }

    /// The first name component of each mirror's repositories.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.mirrors.iter().map(|m| m.key.clone()).collect()
    }

    /// The registry of mirror `i`.
    pub(crate) fn registry(&self, i: usize) -> &str {
        &self.mirrors[i].cfg.registry
    }

    /// Where a `/v2/<rest>` request goes by its path and query (the default mirror is
    /// decided later, once the name is known not to be local).
    pub(crate) fn route(&self, path: &str, query: Option<&str>) -> Route {
        let Some(rest) = path.strip_prefix("/v2/") else { return Route::Local };
        if rest.is_empty() || rest.starts_with('_') {
            return Route::Local;
        }
        if let Some(ns) = query
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "ns").map(|(_, v)| v))
        {
            let key = registry_key(&ns);
            return match self.mirrors.iter().position(|m| m.key == key || m.cfg.registry.eq_ignore_ascii_case(&ns)) {
                // A request already prefixed with the registry keeps its name.
                Some(i) if rest.starts_with(&format!("{key}/")) => Route::Mirror(i, path.to_string()),
                Some(i) => Route::Mirror(i, format!("/v2/{}/{rest}", self.mirrors[i].key)),
                None => Route::Unconfigured(ns),
            };
        }
        let Some((first, after)) = rest.split_once('/') else { return Route::Local };
        let key = registry_key(first);
        match self.mirrors.iter().position(|m| m.key == key) {
            Some(i) => Route::Mirror(i, format!("/v2/{key}/{after}")),
            None => Route::Local,
        }
    }

    /// The default mirror's index and the repository name a request for `repo` maps to.
    pub(crate) fn default_for(&self, repo: &RepoName) -> Option<(usize, RepoName)> {
        let i = self.mirrors.iter().position(|m| m.cfg.default)?;
        let name = RepoName::parse(&format!("{}/{repo}", self.mirrors[i].key)).ok()?;
        Some((i, name))
    }

    /// The upstream repository of a mirrored repository name.
    fn upstream_name(&self, i: usize, repo: &RepoName) -> Result<RepoName, ApiError> {
        let m = &self.mirrors[i];
        let name = repo.as_str().strip_prefix(&format!("{}/", m.key)).unwrap_or(repo.as_str());
        Ok(RepoName::parse(name)?)
    }

    fn session(&self, i: usize, repo: &RepoName) -> Result<Session, ApiError> {
        let m = &self.mirrors[i];
        let name = self.upstream_name(i, repo)?;
        let mut sessions = m.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sessions.get(name.as_str()) {
            return Ok(s.clone());
        }
        let image = ImageRef { registry: m.upstream.clone(), repository: name.clone(), reference: Reference::Tag(latest()) };
        let s = self.client.session(&image, m.cfg.credentials.clone()).map_err(|e| upstream_error(&e, m, None))?;
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(name.to_string(), s.clone());
        Ok(s)
    }
}

fn latest() -> Tag {
    // "latest" is a valid tag: parsing it cannot fail; the session only needs some reference.
    Tag::parse("latest").unwrap_or_else(|_| unreachable!("latest is a tag"))
}

/// Repositories listed per mirror, at most, for `mirror ls` and the console.
const LISTED_REPOSITORIES: usize = 10_000;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Mirrors {
    /// Every mirror with its upstream's state (as this replica saw it) and its tagged images.
    pub(crate) async fn list(&self, store: &store::Store) -> Result<Vec<crate::mgmt::types::MirrorView>, store::StoreError> {
        use crate::mgmt::types::{MirrorError, MirrorView, MirroredImage};
        let mut out = Vec::new();
        for m in &self.mirrors {
            let (last_error, last_success) = m.health.lock().map(|h| h.clone()).unwrap_or_default();
            let mut images = Vec::new();
            let (mut after, mut seen) = (None::<String>, 0);
            loop {
                let page = store.repositories_page(&format!("{}/", m.key), after.as_deref(), 200).await?;
                for name in &page.items {
                    let Ok(repo) = RepoName::parse(name) else { continue };
                    for tag in store.tags(&repo).await?.unwrap_or_default() {
                        let Some(d) = store.resolve_tag(&repo, &tag).await? else { continue };
                        let Some(man) = store.manifest(&repo, &d).await? else { continue };
                        let mut stored_bytes = man.bytes.len() as u64;
                        if let Ok(parsed) = oci::Manifest::parse(&man.bytes, Some(&man.media_type)) {
                            for b in parsed.required_blobs() {
                                if store.blob_linked(&repo, &b.digest).await? {
                                    stored_bytes += b.size;
                                }
                            }
                        }
                        let last_pull_ms = store.mirror_pull_time(&repo, &d).await?.map(unix_ms);
                        images.push(MirroredImage {
                            repository: name.clone(),
                            tag: tag.to_string(),
                            digest: d,
                            stored_bytes,
                            last_pull_ms,
                        });
                    }
                }
                seen += page.items.len();
                match page.next {
                    Some(n) if seen < LISTED_REPOSITORIES => after = Some(n),
                    _ => break,
                }
            }
            out.push(MirrorView {
                registry: m.cfg.registry.clone(),
                url: m.cfg.url.clone(),
                default: m.cfg.default,
                tag_ttl_secs: m.cfg.tag_ttl.as_secs(),
                retention_secs: m.cfg.retention.as_secs(),
                last_error: last_error.map(|(at, message)| MirrorError { at_ms: unix_ms(at), message }),
                last_success_ms: last_success.map(unix_ms),
                images,
            });
        }
        Ok(out)
    }
}

/// Serves a request routed to mirror `i` (after access control on the mirrored name).
pub(crate) async fn handle(state: &AppState, mirrors: &Mirrors, i: usize, ep: Endpoint, req: Req) -> ApiResult {
    let read = matches!(req.method, Method::GET | Method::HEAD);
    match ep {
        Endpoint::Manifest(repo, r) if read => manifest(state, mirrors, i, repo, r, req).await,
        Endpoint::Blob(repo, d) if read => blob(state, mirrors, i, repo, d, req).await,
        // What the mirror holds: tags and referrers as stored here.
        ep @ (Endpoint::Tags(_) | Endpoint::Referrers(..)) if read => crate::v2::handle(state, ep, req).await,
        Endpoint::Base | Endpoint::Catalog => crate::v2::handle(state, ep, req).await,
        ep => {
            let repo = match &ep {
                Endpoint::Manifest(r, _) | Endpoint::Blob(r, _) | Endpoint::UploadStart(r) | Endpoint::Upload(r, _) | Endpoint::Tags(r) => {
                    r.to_string()
                }
                _ => String::new(),
            };
            Err(ApiError::new(
                ErrorCode::Unsupported,
                format!("{repo} is a read-only mirror of {}: push to the upstream registry instead", mirrors.registry(i)),
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED))
        }
    }
}

async fn manifest(state: &AppState, mirrors: &Mirrors, i: usize, repo: RepoName, r: Reference, req: Req) -> ApiResult {
    let m = &mirrors.mirrors[i];
    let store = &state.store;
    let digest = match &r {
        Reference::Digest(d) => {
            if store.manifest(&repo, d).await?.is_none() {
                state.metrics.mirror(&m.cfg.registry, MirrorEvent::Miss);
                fetch_manifest(state, mirrors, i, &repo, &r).await?;
            } else {
                state.metrics.mirror(&m.cfg.registry, MirrorEvent::Hit);
            }
            d.clone()
        }
        Reference::Tag(t) => resolve_tag(state, mirrors, i, &repo, t).await?,
    };
    record_pull(state, m, &repo, &digest);
    crate::v2::handle(state, Endpoint::Manifest(repo, Reference::Digest(digest)), req).await
}

/// Records a pull of a mirrored manifest for retention, off the request path and at most
/// once per [`PULL_RECORD_EVERY`] per manifest on this replica.
fn record_pull(state: &AppState, m: &Mirror, repo: &RepoName, d: &Digest) {
    let key = (repo.clone(), d.clone());
    {
        let mut recorded = m.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let every = PULL_RECORD_EVERY.min(m.cfg.retention / 10);
        if recorded.get(&key).is_some_and(|at| at.elapsed() < every) {
            return;
        }
        if recorded.len() >= 100_000 {
            recorded.clear();
        }
        recorded.insert(key.clone(), Instant::now());
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.record_mirror_pull(&key.0, &key.1).await {
            tracing::warn!(repo = %key.0, digest = %key.1, error = %e, "cannot record a mirror pull");
        }
    });
}

/// The digest a tag names: the stored one while it is younger than `tag_ttl`, else the
/// upstream's (one HEAD; the manifest fetched only when it changed), else, when the
/// upstream fails, the stored one (serve-stale).
async fn resolve_tag(state: &AppState, mirrors: &Mirrors, i: usize, repo: &RepoName, t: &Tag) -> ApiResult<Digest> {
    let m = &mirrors.mirrors[i];
    let store = &state.store;
    let key = (repo.clone(), t.clone());
    let stored = match store.resolve_tag(repo, t).await? {
        Some(d) if store.manifest(repo, &d).await?.is_some() => Some(d),
        _ => None,
    };
    let fresh = m.resolved.lock().unwrap_or_else(|p| p.into_inner()).get(&key).is_some_and(|at| at.elapsed() < m.cfg.tag_ttl);
    if let (Some(d), true) = (&stored, fresh) {
        state.metrics.mirror(&m.cfg.registry, MirrorEvent::Hit);
        return Ok(d.clone());
    }
    let reference = Reference::Tag(t.clone());
    let asked = match mirrors.session(i, repo) {
        Ok(session) => {
            // With a stored copy to fall back on, one try: serve-stale should not wait
            // through the retries of a dead upstream.
            let session = if stored.is_some() { session.without_retries() } else { session };
            session.head_manifest(&reference).await.inspect(|_| m.succeeded()).map_err(|e| {
                state.metrics.mirror_error(&m.cfg.registry, &e);
                m.failed(&e);
                upstream_error(&e, m, Some(ErrorCode::ManifestUnknown))
            })
        }
        Err(e) => Err(e),
    };
    let outcome = match asked {
        Ok(Some(d)) if Some(&d) == stored.as_ref() => Ok(d),
        Ok(Some(d)) => match store.manifest(repo, &d).await? {
            Some(_) => Ok(d),
            None => fetch_manifest(state, mirrors, i, repo, &Reference::Digest(d)).await.map(|f| f.0),
        },
        // No digest in the HEAD answer: the manifest itself says.
        Ok(None) => fetch_manifest(state, mirrors, i, repo, &reference).await.map(|f| f.0),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(d) => {
            if stored.as_ref() != Some(&d) {
                store.set_tag(repo, t, &d).await?;
                state.metrics.mirror(&m.cfg.registry, MirrorEvent::Miss);
            } else {
                state.metrics.mirror(&m.cfg.registry, MirrorEvent::Hit);
            }
            m.resolved.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Instant::now());
            m.stale.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            Ok(d)
        }
        Err(e) => {
            let gone = e.code == ErrorCode::ManifestUnknown;
            match stored {
                Some(d) if !gone || m.cfg.stale_on_not_found => {
                    state.metrics.mirror(&m.cfg.registry, MirrorEvent::Stale);
                    if m.stale.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
                        tracing::warn!(registry = %m.cfg.registry, %repo, tag = %t, error = %e.message, "upstream failed; serving the stored tag");
                    }
                    Ok(d)
                }
                _ => Err(e),
            }
        }
    }
}

/// Fetches a manifest from the upstream (verified against its digest) and stores it
/// verbatim; an image's blobs and an index's children are fetched when asked for.
async fn fetch_manifest(state: &AppState, mirrors: &Mirrors, i: usize, repo: &RepoName, r: &Reference) -> ApiResult<(Digest, ())> {
    let m = &mirrors.mirrors[i];
    let session = mirrors.session(i, repo)?;
    let f = session.manifest(r).await.map_err(|e| {
        state.metrics.mirror_error(&m.cfg.registry, &e);
        m.failed(&e);
        upstream_error(&e, m, Some(ErrorCode::ManifestUnknown))
    })?;
    m.succeeded();
    state.metrics.mirror_bytes(&m.cfg.registry, f.bytes.len() as u64);
    let len = f.bytes.len() as u64;
    let referrer = f.manifest.subject.as_ref().map(|s| (s.digest.clone(), f.manifest.referrer_descriptor(&f.digest, len)));
    let referrer = referrer.as_ref().map(|(s, d)| (s, d));
    if f.manifest.manifests.is_empty() && f.manifest.required_blobs().next().is_some() {
        // Its blobs come when engines ask for them: absent by design until then.
        state.store.put_manifest_with_absent_blobs(repo, &f.digest, &f.media_type, f.bytes, referrer).await?;
    } else {
        state.store.put_manifest(repo, &f.digest, &f.media_type, f.bytes, referrer).await?;
    }
    Ok((f.digest, ()))
}

async fn blob(state: &AppState, mirrors: &Mirrors, i: usize, repo: RepoName, d: Digest, req: Req) -> ApiResult {
    let m = &mirrors.mirrors[i];
    let store = &state.store;
    if store.blob_linked(&repo, &d).await? {
        state.metrics.mirror(&m.cfg.registry, MirrorEvent::Hit);
        return crate::v2::handle(state, Endpoint::Blob(repo, d), req).await;
    }
    let session = mirrors.session(i, &repo)?;
    let unknown = || ApiError::new(ErrorCode::BlobUnknown, format!("blob {d} is not in {repo} upstream"));
    let size = session
        .blob_size(&d)
        .await
        .map_err(|e| {
            state.metrics.mirror_error(&m.cfg.registry, &e);
            m.failed(&e);
            upstream_error(&e, m, Some(ErrorCode::BlobUnknown))
        })?
        .ok_or_else(unknown)?;
    m.succeeded();
    // Stored for someone else: reused once the upstream has shown it holds the blob too.
    if store.blob_size_fresh(&d).await? == Some(size) {
        store.link_blob(&repo, &d).await?;
        state.metrics.mirror(&m.cfg.registry, MirrorEvent::Hit);
        return crate::v2::handle(state, Endpoint::Blob(repo, d), req).await;
    }
    state.metrics.mirror(&m.cfg.registry, MirrorEvent::Miss);
    let head = Builder::new()
        .status(StatusCode::OK)
        .header("docker-content-digest", d.to_string())
        .header("content-type", "application/octet-stream")
        .header("content-length", size);
    if req.method == Method::HEAD {
        return Ok(crate::v2::finish(head, Body::empty()));
    }
    let (registry, metrics) = (m.cfg.registry.clone(), state.metrics.clone());
    let (fill, started) = {
        let (want, session) = (d.clone(), session.clone());
        mirrors
            .fills
            .join_or_start(&d, size, &mirrors.spool, store, &repo, move || {
                async move {
                    session.blob(&want, size).await.map_err(|e| {
                        metrics.mirror_error(&registry, &e);
                        e.to_string()
                    })
                }
                .boxed()
            })
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("cannot spool blob {d}: {e}")))?
    };
    if started {
        state.metrics.mirror_bytes(&m.cfg.registry, size);
    } else {
        state.metrics.mirror(&m.cfg.registry, MirrorEvent::Coalesced);
    }
    match fill.open() {
        Some(stream) => Ok(crate::v2::finish(head, Body::from_stream(stream))),
        // The fetch ended between the two looks: the store has the blob, or it failed.
        None => crate::v2::handle(state, Endpoint::Blob(repo, d), req).await,
    }
}

/// What a mirror request counts in the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MirrorEvent {
    /// Served from the store without asking the upstream for content.
    Hit,
    /// Fetched from the upstream.
    Miss,
    /// A stored tag served because the upstream failed.
    Stale,
    /// A client that followed another's fetch of the same blob.
    Coalesced,
}

/// An upstream failure as a mirror's answer: `unknown` for "the upstream does not have it".
fn upstream_error(e: &UpstreamError, m: &Mirror, unknown: Option<ErrorCode>) -> ApiError {
    let registry = &m.cfg.registry;
    match e {
        UpstreamError::NotFound { what, .. } => {
            ApiError::new(unknown.unwrap_or(ErrorCode::NameUnknown), format!("{what} is not in the upstream of mirror {registry}"))
        }
        UpstreamError::Refused { reason, .. } => {
            ApiError::new(ErrorCode::Denied, format!("the upstream of mirror {registry} is refused by the host policy: {reason}"))
        }
        UpstreamError::Timeout { .. } => ApiError::new(ErrorCode::Unavailable, format!("the upstream of mirror {registry} timed out"))
            .with_status(StatusCode::GATEWAY_TIMEOUT),
        e => ApiError::new(ErrorCode::Unavailable, format!("the upstream of mirror {registry} failed: {e}"))
            .with_status(StatusCode::BAD_GATEWAY),
    }
}
