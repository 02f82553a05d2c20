//! The operator console at `/ui/`: server-rendered HTML (askama templates compiled into the
//! binary), usable without JavaScript; `ui.js` only adds progress bars and copy buttons.
//! Pages call the same operations as the management API (`crate::service`) and the same store
//! listings; errors become pages in `error.rs` only. Every answer carries a strict
//! Content-Security-Policy (no inline script or style), `nosniff` and no referrer; every
//! request passes `session::guard` (viewer, CSRF, roles). See `docs/ui.md`.

mod actions;
mod assets;
mod error;
mod pages;
mod repos;
mod session;
mod stage;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use askama::Template;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue};
use store::Usage;

pub(crate) use error::UiError;
pub(crate) use session::Viewer;

use crate::access::{RoleNeed, Routes};

/// How long the overview's usage figures are reused before they are computed again.
const USAGE_TTL: Duration = Duration::from_secs(60);
/// How long the overview waits for figures it has never computed (a small store answers in
/// time; a large one shows "being computed" and the figures on the next visit).
const USAGE_WAIT: Duration = Duration::from_secs(2);

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; \
                    frame-ancestors 'none'; base-uri 'none'";

/// The console's own state: the usage figures of the overview, computed off the request
/// path and cached (walking a large store takes seconds).
#[derive(Clone, Default)]
pub struct Console {
    usage: Arc<Mutex<Option<(SystemTime, Instant, Usage)>>>,
    refreshing: Arc<AtomicBool>,
    /// The latest failed stagings of this replica (app, source, why, when), newest last: a
    /// failure leaves no record in the store, and the overview must still show it.
    failures: Arc<Mutex<std::collections::VecDeque<FailedStaging>>>,
}

/// A failed staging: app, source, why, when.
pub(crate) type FailedStaging = (String, String, String, SystemTime);

/// Failed stagings the overview remembers.
const FAILURES_KEPT: usize = 10;

impl Console {
    /// Remembers a failed staging for the overview.
    pub(crate) fn staging_failed(&self, app: String, source: String, why: String) {
        // A poisoned lock only means a panic elsewhere held it; the list stays consistent.
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.push_back((app, source, why, SystemTime::now()));
        while f.len() > FAILURES_KEPT {
            f.pop_front();
        }
    }

    /// The remembered failed stagings, newest first.
    pub(crate) fn failed_stagings(&self) -> Vec<FailedStaging> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).iter().rev().cloned().collect()
    }

    /// The cached figures and when they were computed; starts a refresh when they are
    /// missing or stale, and waits a little for it when there are none yet.
    async fn usage(&self, store: &store::Store, mirrored: Vec<String>) -> Option<(SystemTime, Usage)> {
        let cached = self.cached();
        let stale = cached.as_ref().is_none_or(|(_, at, _)| at.elapsed() > USAGE_TTL);
        if stale && !self.refreshing.swap(true, Ordering::SeqCst) {
            let (me, store) = (self.clone(), store.clone());
            let task = tokio::spawn(async move {
                let fresh = store.usage_with_mirrors(&mirrored).await;
                match fresh {
                    Ok(u) => {
                        if let Ok(mut slot) = me.usage.lock() {
                            *slot = Some((SystemTime::now(), Instant::now(), u));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot compute the store's usage for the console"),
                }
                me.refreshing.store(false, Ordering::SeqCst);
            });
            if cached.is_none() {
                let _ = tokio::time::timeout(USAGE_WAIT, task).await;
            }
        }
        self.cached().map(|(t, _, u)| (t, u))
    }

    fn cached(&self) -> Option<(SystemTime, Instant, Usage)> {
        self.usage.lock().ok().and_then(|u| u.clone())
    }

    /// Marks the figures stale after a change made here (a staging, an unpin, a collection).
    fn invalidate(&self) {
        if let Ok(mut slot) = self.usage.lock() {
            if let Some((_, at, _)) = slot.as_mut() {
                *at = Instant::now().checked_sub(USAGE_TTL * 2).unwrap_or(*at);
            }
        }
    }
}

/// The console's routes (`/ui/...`, and `/` for browsers), each with the role it needs; the
/// session guard identifies the viewer (and checks every form's CSRF token) before the need
/// is checked.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let guarded = Routes::console(&state)
        .route("/ui/", RoleNeed::Staging, get(pages::overview))
        .route("/ui/apps", RoleNeed::Staging, get(pages::apps))
        .route("/ui/apps/{app}", RoleNeed::Staging, get(pages::app))
        .route("/ui/apps/{app}/unpin", RoleNeed::Staging, get(actions::unpin_page).post(actions::unpin))
        .route("/ui/apps/{app}/credentials", RoleNeed::Staging, post(actions::credentials))
        .route("/ui/stage", RoleNeed::Staging, get(stage::form).post(stage::run))
        .route("/ui/repositories", RoleNeed::Staging, get(repos::catalog))
        .route("/ui/mirrors", RoleNeed::Staging, get(pages::mirrors))
        .route("/ui/repositories/{*path}", RoleNeed::Staging, get(repos::repository))
        .route("/ui/gc", crate::service::GC_NEED, get(actions::gc_page).post(actions::gc))
        .route("/ui/login", RoleNeed::Anyone, get(session::login_page).post(session::login))
        .route("/ui/logout", RoleNeed::Anyone, post(session::logout))
        .into_router()
        .route_layer(axum::middleware::from_fn_with_state(state, session::guard));
    Router::new()
        .merge(guarded)
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .layer(axum::middleware::from_fn(security_headers))
}

use crate::AppState;

/// `/`: browsers go to the console; anything else gets the registry's answer.
pub(crate) async fn root(State(state): State<AppState>, req: Request) -> Response {
    let html = req.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if html {
        return Redirect::to("/ui/").into_response();
    }
    crate::dispatch(State(state), req).await
}

/// The headers of every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show live state and may hold a freshly minted credential.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// An HTML answer.
fn html(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// Renders a page.
fn render(t: &impl Template) -> Result<Response, UiError> {
    t.render().map(html).map_err(|e| UiError::internal(format!("cannot render the page: {e}")))
}
