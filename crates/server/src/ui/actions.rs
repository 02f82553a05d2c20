//! What the console changes: unpinning an app (after a confirmation page), rotating or
//! revoking its pull credentials, and garbage collection (a dry run first, then the run).
//! Each calls the management API's own function, so both do exactly the same thing. The
//! CSRF field of every form was checked by `session::guard` before these run.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use http::HeaderMap;
use oci::AppId;
use serde::Deserialize;
use store::GcReport;

use super::error::UiError;
use super::pages::{app_page, GcRow};
use super::session::Viewer;
use super::view::{Chrome, Size};
use super::{render, AppState};
use crate::service;

#[derive(Template)]
#[template(path = "ui/unpin.html")]
struct UnpinPage {
    chrome: Chrome,
    app: String,
    stagings: usize,
}

/// GET `/ui/apps/{app}/unpin`: what unpinning would do, and the button that does it.
pub(super) async fn unpin_page(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(app): Path<String>,
) -> Result<Response, UiError> {
    let app = AppId::parse(&app)?;
    let s = service::stagings(&state, &app).await?;
    render(&UnpinPage { chrome: Chrome::new(&viewer, format!("Unpin {app}"), "apps"), app: app.to_string(), stagings: s.history.len() })
}

/// POST `/ui/apps/{app}/unpin`: unpins, then back to the apps list.
pub(super) async fn unpin(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, UiError> {
    let app = AppId::parse(&app)?;
    service::unpin(&state, &app).await?;
    state.console.invalidate();
    Ok(Redirect::to("/ui/apps").into_response())
}

#[derive(Deserialize)]
struct CredentialsForm {
    action: String,
    /// `yes` on the confirmation form; without it a revocation only asks.
    #[serde(default)]
    confirm: Option<String>,
    /// The credential a rotation minted, which "revoke the old ones" keeps (its user name).
    #[serde(default)]
    keep: Option<String>,
}

/// POST `/ui/apps/{app}/credentials`. Nothing is revoked without a second, confirming POST:
/// - `action=rotate` mints a new credential and shows it once, with a form to revoke the old
///   ones: the order docs/auth.md recommends (give the platform the new one first);
/// - `action=revoke` answers with a confirmation form; `action=revoke&confirm=yes` revokes
///   every credential (but `keep`, a rotation's new one, when given).
pub(super) async fn credentials(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let app = AppId::parse(&app)?;
    let form: CredentialsForm = serde_urlencoded::from_bytes(&body).map_err(|e| UiError::bad_request(format!("invalid form: {e}")))?;
    let keep = match form.keep.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(user) => {
            let id = user
                .strip_prefix(&format!("{app}+"))
                .ok_or_else(|| UiError::bad_request(format!("{user:?} is no pull credential of {app}")))?;
            Some(store::CredentialId::parse(id).map_err(UiError::bad_request)?)
        }
    };
    let confirmed = form.confirm.as_deref() == Some("yes");
    match form.action.as_str() {
        "rotate" => {
            let minted = service::mint(&state, &app).await?;
            let notice =
                "Minted a new pull credential. The old ones still work: give the platform the new one, then revoke them.".to_string();
            let keep = minted.username.clone();
            let mut page = app_page(&state, &viewer, &headers, &app, Some(minted), Some(notice)).await?;
            page.confirm_revoke = Some(keep);
            render(&page)
        }
        "revoke" if confirmed => {
            let revoked = service::revoke_except(&state, &app, keep.as_ref()).await?;
            let notice = match keep {
                Some(_) => format!("Revoked {revoked} old pull credentials; the new one stays."),
                None => format!("Revoked {revoked} pull credentials."),
            };
            render(&app_page(&state, &viewer, &headers, &app, None, Some(notice)).await?)
        }
        "revoke" => {
            let mut page = app_page(&state, &viewer, &headers, &app, None, None).await?;
            page.confirm_revoke = Some(form.keep.unwrap_or_default());
            render(&page)
        }
        other => Err(UiError::bad_request(format!("unknown action {other:?}"))),
    }
}

/// One kind of object a collection removes, as a row.
struct KindRow {
    kind: &'static str,
    count: u64,
    bytes: Size,
}

fn kinds(r: &GcReport) -> Vec<KindRow> {
    let row = |kind, x: &store::Removed| KindRow { kind, count: x.count, bytes: Size(x.bytes) };
    vec![
        row("Blobs", &r.blobs),
        row("Manifests", &r.manifests),
        row("Layer links", &r.layer_links),
        row("Staging records", &r.stagings),
        row("Upload sessions", &r.uploads),
        row("Temporary files", &r.temp_files),
    ]
}

/// What a collection kept for one reason, as a row.
struct KeptRow {
    why: String,
    manifests: u64,
    blobs: u64,
    bytes: Size,
    /// When it may be collected; empty for reasons that do not expire.
    when: String,
}

#[derive(Template)]
#[template(path = "ui/gc.html")]
struct GcPage {
    chrome: Chrome,
    /// The dry run or run this request made.
    report: Option<(bool, Vec<KindRow>, Size, String)>,
    /// What it kept, and why.
    kept: Vec<KeptRow>,
    history: Vec<GcRow>,
}

async fn gc_answer(state: &AppState, viewer: &Viewer, report: Option<GcReport>) -> Result<Response, UiError> {
    let history = state.store.gc_history(20).await?.iter().map(GcRow::new).collect();
    let kept = report
        .iter()
        .flat_map(|r| &r.kept)
        .map(|k| KeptRow {
            why: k.why.clone(),
            manifests: k.manifests,
            blobs: k.blobs,
            bytes: Size(k.bytes),
            when: k.when().unwrap_or_default(),
        })
        .collect();
    let report = report.map(|r| {
        let total = Size(r.blobs.bytes + r.uploads.bytes + r.temp_files.bytes);
        (r.dry_run, kinds(&r), total, format!("{:.1} s", r.seconds))
    });
    render(&GcPage { chrome: Chrome::new(viewer, "Garbage collection", "gc"), report, kept, history })
}

/// GET `/ui/gc`: the history and the dry-run button.
pub(super) async fn gc_page(State(state): State<AppState>, Extension(viewer): Extension<Viewer>) -> Result<Response, UiError> {
    gc_answer(&state, &viewer, None).await
}

#[derive(Deserialize)]
struct GcForm {
    mode: String,
}

/// POST `/ui/gc` (`mode=dry-run|run`).
pub(super) async fn gc(State(state): State<AppState>, Extension(viewer): Extension<Viewer>, body: Bytes) -> Result<Response, UiError> {
    let form: GcForm = serde_urlencoded::from_bytes(&body).map_err(|e| UiError::bad_request(format!("invalid form: {e}")))?;
    let dry_run = match form.mode.as_str() {
        "dry-run" => true,
        "run" => false,
        other => return Err(UiError::bad_request(format!("unknown mode {other:?}"))),
    };
    let report = service::collect_garbage(&state, dry_run).await?;
    if !dry_run {
        state.console.invalidate();
    }
    gc_answer(&state, &viewer, Some(report)).await
}
