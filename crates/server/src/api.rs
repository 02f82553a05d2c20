//! The `/api/v1` management API: stage an app's image, list apps and their stagings.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use oci::{AppId, ImageRef};
use serde::Deserialize;
use stage::{Event, Platform, StageError, StageRequest, Stager};
use store::StagingRecord;
use tokio::sync::mpsc;
use zeroize::Zeroize;

use crate::error::{error_response, json_response as json, stage_status};
use crate::request::BodyError;
use crate::AppState;

/// Largest staging request body: a reference, an app id and credentials fit in far less.
const MAX_STAGING_REQUEST: usize = 64 << 10;

/// The routes of the management API.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stagings", post(create_staging))
        .route("/api/v1/apps", get(list_apps))
        .route("/api/v1/apps/live", put(sync_live))
        .route("/api/v1/apps/{app}", get(show_app).delete(remove_app))
        .route("/api/v1/gc", post(collect))
}

/// A JSON error in the same shape as the registry API's.
fn error(status: u16, code: &str, message: impl std::fmt::Display) -> Response {
    error_response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), code, &message.to_string(), None)
}

fn stage_error(e: &StageError) -> Response {
    let (status, code) = stage_status(e);
    error(status.as_u16(), code, e)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageBody {
    source: String,
    app: String,
    platform: Option<String>,
    credentials: Option<CredentialsBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsBody {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl CredentialsBody {
    /// Moves the secrets into zeroising credentials and wipes the parsed copies.
    fn take(mut self) -> Result<upstream::Credentials, String> {
        let creds = match (&self.username, &self.password, &self.token) {
            (Some(u), Some(p), None) => Ok(upstream::Credentials::basic(u.clone(), p.clone())),
            (None, None, Some(t)) => Ok(upstream::Credentials::token(t.clone())),
            _ => Err("credentials must be {\"username\", \"password\"} or {\"token\"}".to_string()),
        };
        for s in [&mut self.username, &mut self.password, &mut self.token].into_iter().flatten() {
            s.zeroize();
        }
        creds
    }
}

/// The registry host clients reach us by, for the pinned image reference: the request's
/// `Host` when it is a plain `host[:port]`, never anything else a client put there.
fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .filter(|h| oci::is_registry_host(h))
        .unwrap_or_else(|| "localhost".to_string())
}

fn parse_request(body: &[u8]) -> Result<StageRequest, String> {
    let parsed: StageBody = serde_json::from_slice(body).map_err(|e| format!("invalid staging request: {e}"))?;
    let credentials = parsed.credentials.map(CredentialsBody::take).transpose()?;
    Ok(StageRequest {
        source: ImageRef::parse(&parsed.source).map_err(|e| e.to_string())?,
        app: AppId::parse(&parsed.app).map_err(|e| e.to_string())?,
        platform: match parsed.platform.as_deref() {
            Some(p) => Platform::parse(p)?,
            None => Platform::default(),
        },
        credentials,
    })
}

/// POST `/api/v1/stagings`: 201 with the result, or with `Accept: application/x-ndjson` a
/// stream of progress events ending in `{"event":"result",...}` or `{"event":"error",...}`.
async fn create_staging(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(stager) = state.stager.clone() else {
        return error(503, "UNAVAILABLE", "staging is not enabled on this server");
    };
    let body = match crate::request::collect(body, MAX_STAGING_REQUEST).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return error(413, "BAD_REQUEST", format!("a staging request is at most {MAX_STAGING_REQUEST} bytes")),
        Err(BodyError::Incomplete(why)) => return error(400, "BAD_REQUEST", format!("the request body could not be read whole: {why}")),
    };
    // The body may hold a password: parse it from a private copy that is wiped afterwards.
    let mut raw = body.to_vec();
    drop(body);
    let parsed = parse_request(&raw);
    raw.zeroize();
    let req = match parsed {
        Ok(r) => r,
        Err(m) => return error(400, "BAD_REQUEST", m),
    };
    let host = host(&headers);
    let streaming = headers.get("accept").and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("application/x-ndjson"));
    if streaming {
        return stream_staging(stager, req, host, state.metrics.clone());
    }
    // The staging runs in its own task: a client that goes away does not cut it short.
    let outcome = tokio::spawn(async move { stager.stage(req, None).await }).await;
    count_staging(&state.metrics, &outcome);
    match outcome {
        Ok(Ok(r)) => json(StatusCode::CREATED, &record_json(&r, &host)),
        Ok(Err(e)) => stage_error(&e),
        Err(e) => error(500, "INTERNAL", format!("staging task failed: {e}")),
    }
}

type StageOutcome = Result<Result<StagingRecord, StageError>, tokio::task::JoinError>;

fn count_staging(metrics: &crate::Metrics, outcome: &StageOutcome) {
    match outcome {
        Ok(Ok(r)) => metrics.staging(201, Some(r)),
        Ok(Err(e)) => metrics.staging(stage_status(e).0.as_u16(), None),
        Err(_) => metrics.staging(500, None),
    }
}

fn stream_staging(stager: Stager, req: StageRequest, host: String, metrics: crate::Metrics) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let task = tokio::spawn(async move { stager.stage(req, Some(tx)).await });
    let events = tokio_stream_from(rx).map(|e| line(&serde_json::to_value(e).unwrap_or_default()));
    let last = futures::stream::once(async move {
        let outcome = task.await;
        count_staging(&metrics, &outcome);
        let v = match outcome {
            Ok(Ok(r)) => {
                let mut v = record_json(&r, &host);
                v["event"] = "result".into();
                v
            }
            Ok(Err(e)) => {
                let (status, code) = stage_status(&e);
                serde_json::json!({ "event": "error", "status": status.as_u16(), "code": code, "message": e.to_string() })
            }
            Err(e) => serde_json::json!({ "event": "error", "status": 500, "code": "INTERNAL", "message": e.to_string() }),
        };
        line(&v)
    });
    let body = Body::from_stream(events.chain(last).map(Ok::<_, std::convert::Infallible>));
    let mut r = Response::new(body);
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/x-ndjson"));
    r
}

fn line(v: &serde_json::Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> futures::stream::BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

fn record_json(r: &StagingRecord, host: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["image"] = serde_json::Value::String(format!("{host}/{}@{}", r.repository, r.digest));
    v
}

/// GET `/api/v1/apps`: every app with its current staging.
async fn list_apps(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = host(&headers);
    let store = &state.store;
    let apps = match store.apps().await {
        Ok(a) => a,
        Err(e) => return error(503, "STORAGE_UNAVAILABLE", e),
    };
    let mut out = Vec::new();
    for app in apps {
        match app_json(store, &app, &host, false).await {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => return error(503, "STORAGE_UNAVAILABLE", e),
        }
    }
    json(StatusCode::OK, &serde_json::json!({ "apps": out }))
}

/// GET `/api/v1/apps/{app}`: the current staging and the history.
async fn show_app(State(state): State<AppState>, headers: HeaderMap, Path(app): Path<String>) -> Response {
    let app = match AppId::parse(&app) {
        Ok(a) => a,
        Err(e) => return error(400, "BAD_REQUEST", e),
    };
    match app_json(&state.store, &app, &host(&headers), true).await {
        Ok(Some(v)) => json(StatusCode::OK, &v),
        Ok(None) => error(404, "NOT_FOUND", format!("app {app} has no staging")),
        Err(e) => error(503, "STORAGE_UNAVAILABLE", e),
    }
}

async fn app_json(store: &store::Store, app: &AppId, host: &str, history: bool) -> Result<Option<serde_json::Value>, store::StoreError> {
    let stagings = store.stagings(app).await?;
    if stagings.is_empty() {
        return Ok(None);
    }
    let current_id = store.current_staging(app).await?;
    let current = stagings.iter().find(|s| Some(&s.staging_id) == current_id.as_ref()).or(stagings.last());
    let mut v = serde_json::json!({
        "app": app,
        "current": current.map(|c| record_json(c, host)),
    });
    if history {
        v["stagings"] = stagings.iter().rev().map(|s| record_json(s, host)).collect();
    } else {
        v["stagings_count"] = stagings.len().into();
    }
    Ok(Some(v))
}

/// DELETE `/api/v1/apps/{app}`: unpin every staging of the app.
async fn remove_app(State(state): State<AppState>, Path(app): Path<String>) -> Response {
    let app = match AppId::parse(&app) {
        Ok(a) => a,
        Err(e) => return error(400, "BAD_REQUEST", e),
    };
    match state.store.stagings(&app).await {
        Ok(s) if s.is_empty() => return error(404, "NOT_FOUND", format!("app {app} has no staging")),
        Ok(_) => {}
        Err(e) => return error(503, "STORAGE_UNAVAILABLE", e),
    }
    match state.store.unpin_app(&app).await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "app": app, "unpinned_stagings": n })),
        Err(e) => error(503, "STORAGE_UNAVAILABLE", e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveBody {
    apps: Vec<String>,
    #[serde(default)]
    force: bool,
}

/// PUT `/api/v1/apps/live`: the platform's list of apps that still exist; every other app is
/// unpinned. Refuses to unpin more than half of the apps without `force`, since an empty or
/// truncated list from a confused platform would otherwise unpin everything.
async fn sync_live(State(state): State<AppState>, body: Bytes) -> Response {
    let parsed: LiveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(400, "BAD_REQUEST", format!("invalid live list: {e}; expected {{\"apps\": [...], \"force\": false}}")),
    };
    let mut live = std::collections::HashSet::new();
    for a in &parsed.apps {
        match AppId::parse(a) {
            Ok(id) => {
                live.insert(id);
            }
            Err(e) => return error(400, "BAD_REQUEST", e),
        }
    }
    let existing = match state.store.apps().await {
        Ok(a) => a,
        Err(e) => return error(503, "STORAGE_UNAVAILABLE", e),
    };
    let doomed: Vec<&AppId> = existing.iter().filter(|a| !live.contains(*a)).collect();
    if doomed.len() * 2 > existing.len() && !parsed.force {
        return error(
            409,
            "TOO_MANY_UNPINS",
            format!("the live list would unpin {} of {} apps; send \"force\": true if that is intended", doomed.len(), existing.len()),
        );
    }
    let mut unpinned = Vec::new();
    for app in doomed {
        if let Err(e) = state.store.unpin_app(app).await {
            return error(503, "STORAGE_UNAVAILABLE", e);
        }
        unpinned.push(app.clone());
    }
    let kept = existing.len() - unpinned.len();
    json(StatusCode::OK, &serde_json::json!({ "unpinned": unpinned, "kept": kept }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GcBody {
    #[serde(default)]
    dry_run: bool,
}

/// POST `/api/v1/gc`: one garbage collection, answered with what it removed.
async fn collect(State(state): State<AppState>, body: Bytes) -> Response {
    let parsed: GcBody = if body.is_empty() {
        GcBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(400, "BAD_REQUEST", format!("invalid gc request: {e}; expected {{\"dry_run\": bool}}")),
        }
    };
    let opts = store::GcOptions { dry_run: parsed.dry_run, ..state.gc.clone() };
    let store = state.store.clone();
    // Its own task: a client that hangs up does not interrupt a sweep half-way.
    match tokio::spawn(async move { store.collect_garbage(&opts).await }).await {
        Ok(Ok(report)) => {
            state.metrics.gc(&report);
            json(StatusCode::OK, &serde_json::to_value(report).unwrap_or_default())
        }
        Ok(Err(e)) => error(503, "STORAGE_UNAVAILABLE", e),
        Err(e) => error(500, "INTERNAL", format!("gc task failed: {e}")),
    }
}
