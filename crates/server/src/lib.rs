//! wharfage's HTTP front: the OCI Distribution `/v2/` API over the store, and the `/api/v1`
//! management API (stagings, apps), the operator console at `/ui/`, and `/metrics`, `/healthz`, `/readyz`. `/v2/` routing goes through one typed parser
//! ([`endpoint::Endpoint`]); errors become JSON errors in one place ([`error::ApiError`]).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod endpoint;
pub mod error;
mod listen;
mod metrics;
pub mod mgmt;
pub mod mirror;
pub mod range;
mod request;
mod service;
pub mod tls;
mod ui;
mod v2;

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{HeaderValue, Method, Request, StatusCode};
use oci::ErrorCode;
use store::Store;

use endpoint::{Endpoint, RouteError};
use error::ApiError;
pub use listen::{bind, serve, ConnectionLimits};
pub use metrics::Metrics;
use request::Req;
pub use ui::Console;

/// Which of the blobs and child manifests a pushed manifest names must already be in the
/// repository. The spec allows a registry to accept or refuse a manifest whose references are
/// absent; copies of one platform, mirrors and the conformance suite's sparse data set need
/// acceptance, an operator who wants every push whole needs refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ManifestCompleteness {
    /// Every child manifest and blob must be present (`MANIFEST_BLOB_UNKNOWN` otherwise).
    Complete,
    /// Indexes may name absent children (a *sparse* index); image manifests must be complete.
    #[default]
    Indexes,
    /// Image manifests may name absent blobs too: they are absent by design until pushed.
    Any,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// When set, blob GETs answer with a redirect to a presigned object-store URL valid this
    /// long, so clients download straight from the store.
    pub blob_redirect: Option<std::time::Duration>,
    /// The staging engine behind `/api/v1/stagings`; `None` answers 503 there.
    pub stager: Option<stage::Stager>,
    /// Grace period and retention for `/api/v1/gc` (its `dry_run` comes with each request).
    pub gc: store::GcOptions,
    /// What `/metrics` reports.
    pub metrics: metrics::Metrics,
    /// Who may do what; open by default.
    pub access: access::Access,
    /// What a pushed manifest must reference that the repository already holds
    /// (`--manifest-completeness`); by default *sparse* indexes are accepted, as the spec
    /// allows, and image manifests must be complete.
    pub completeness: ManifestCompleteness,
    /// The operator console's cached figures.
    pub console: ui::Console,
    /// The pull-through mirrors, when any registry is mirrored.
    pub mirrors: Option<std::sync::Arc<mirror::Mirrors>>,
}

impl AppState {
    /// State over a store, with every option at its default (no staging engine).
    pub fn new(store: Store) -> Self {
        let metrics = metrics::Metrics::new(store.clone());
        AppState {
            store,
            blob_redirect: None,
            stager: None,
            gc: store::GcOptions::default(),
            metrics,
            access: access::Access::default(),
            completeness: ManifestCompleteness::default(),
            console: ui::Console::default(),
            mirrors: None,
        }
    }
}

/// The registry's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(mgmt::routes(&state))
        .merge(metrics::routes())
        .merge(access::token::routes())
        .merge(ui::routes(state.clone()))
        .route("/", axum::routing::any(ui::root))
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count))
        .with_state(state)
}

/// Identifies the caller of a `/v2/` request and checks it may do what the endpoint does.
async fn authorize(state: &AppState, ep: &Endpoint, parts: &http::request::Parts) -> Result<access::Caller, ApiError> {
    if state.access.auth.is_none() {
        return Ok(access::Caller::open());
    }
    let client = parts.extensions.get::<access::ClientAddr>().copied();
    let headers = &parts.headers;
    let caller = access::identify(state, headers, client).await.map_err(|e| access::identify_error(state, headers, e))?;
    let mount_from = parts.uri.query().and_then(mount_source);
    access::check(state, &caller, &access::need(ep, &parts.method, mount_from.as_deref()), headers)?;
    Ok(caller)
}

/// The `from` of a query that asks for a mount (`mount=…&from=…`), if it does.
fn mount_source(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs.iter().any(|(k, _)| k == "mount").then(|| pairs.into_iter().find(|(k, _)| k == "from").map(|(_, v)| v))?
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // A mirrored registry's requests are routed by the name they are stored under.
    let (routed, mut mirror) = match state.mirrors.as_deref().map(|m| m.route(&path, request.uri().query())) {
        None | Some(mirror::Route::Local) => (path.clone(), None),
        Some(mirror::Route::Mirror(i, p)) => (p, Some(i)),
        Some(mirror::Route::Unconfigured(ns)) => {
            return finish_dispatch(
                ApiError::new(ErrorCode::NameUnknown, format!("registry {ns} is not mirrored here")).into_response(),
                &method,
                &path,
                started,
            );
        }
    };
    let resp = match Endpoint::parse(&routed) {
        Ok(mut ep) => {
            if mirror.is_none() {
                if let Some((i, renamed)) = default_mirror(&state, &ep, request.method()).await {
                    mirror = Some(i);
                    ep = renamed;
                }
            }
            // The body stays aside while the caller is checked (a body is not `Sync`).
            let (parts, body) = request.into_parts();
            match authorize(&state, &ep, &parts).await {
                Ok(caller) => {
                    let req = Req::new(Request::from_parts(parts, body), caller);
                    let answer = match (mirror, state.mirrors.as_deref()) {
                        (Some(i), Some(m)) => mirror::handle(&state, m, i, ep, req).await,
                        _ => v2::handle(&state, ep, req).await,
                    };
                    match answer {
                        Ok(r) => r,
                        Err(e) => e.into_response(),
                    }
                }
                Err(e) => e.into_response(),
            }
        }
        Err(RouteError::NotFound) => ApiError::new(ErrorCode::NameUnknown, format!("no registry endpoint at {path}"))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
        Err(RouteError::Invalid(e)) => ApiError::from(e).into_response(),
        Err(RouteError::UnknownUpload(id)) => {
            ApiError::new(ErrorCode::BlobUploadUnknown, format!("upload session {id:?} does not exist")).into_response()
        }
    };
    finish_dispatch(resp, &method, &path, started)
}

/// A read of a repository that is not here, sent to the default mirror (dockerd's
/// `registry-mirrors` names no registry): the mirrored endpoint and the mirror. Local
/// repositories win, and pinned apps (`apps/`) are never looked up upstream.
async fn default_mirror(state: &AppState, ep: &Endpoint, method: &Method) -> Option<(usize, Endpoint)> {
    let mirrors = state.mirrors.as_deref()?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let repo = match ep {
        Endpoint::Manifest(r, _) | Endpoint::Blob(r, _) | Endpoint::Tags(r) | Endpoint::Referrers(r, _) => r,
        _ => return None,
    };
    if repo.as_str().starts_with("apps/") || state.store.repository_exists(repo).await.unwrap_or(true) {
        return None;
    }
    let (i, renamed) = mirrors.default_for(repo)?;
    Some((i, ep.clone().with_repository(renamed)))
}

/// The headers and the log line of every `/v2/` answer.
fn finish_dispatch(mut resp: Response, method: &Method, path: &str, started: Instant) -> Response {
    resp.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    let status = resp.status();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), ms, "request failed");
    } else if method == Method::GET || method == Method::HEAD {
        tracing::debug!(%method, %path, status = status.as_u16(), ms, "request");
    } else {
        tracing::info!(%method, %path, status = status.as_u16(), ms, "request");
    }
    resp
}
