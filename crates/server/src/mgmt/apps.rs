//! `/api/v1/apps`: list apps, show one app's stagings, unpin an app, sync the live list.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use oci::AppId;

use super::types::{AppDetail, AppList, AppSummary, LiveSyncAnswer, LiveSyncRequest, Revoked, Unpinned};
use super::{json, view};
use crate::error::MgmtError;
use crate::AppState;

/// GET `/api/v1/apps`: every app with its current staging.
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, MgmtError> {
    let host = state.access.registry_host(&headers);
    let mut apps = Vec::new();
    for app in state.store.apps().await? {
        if let Some(s) = state.store.app_stagings(&app).await? {
            let stagings_count = s.history.len();
            let current = view(s.current().clone(), &host);
            apps.push(AppSummary { app, current, stagings_count });
        }
    }
    Ok(json(StatusCode::OK, &AppList { apps }))
}

fn no_staging(app: &AppId) -> MgmtError {
    MgmtError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("app {app} has no staging"))
}

/// GET `/api/v1/apps/{app}`: the current staging and the history, newest first.
pub(super) async fn show(State(state): State<AppState>, headers: HeaderMap, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    let s = state.store.app_stagings(&app).await?.ok_or_else(|| no_staging(&app))?;
    let host = state.access.registry_host(&headers);
    let current = view(s.current().clone(), &host);
    let stagings = s.history.into_iter().map(|r| view(r, &host)).collect();
    Ok(json(StatusCode::OK, &AppDetail { app, current, stagings }))
}

/// DELETE `/api/v1/apps/{app}`: unpin every staging of the app.
pub(super) async fn remove(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    let unpinned_stagings = unpin(&state, &app).await?;
    Ok(json(StatusCode::OK, &Unpinned { app, unpinned_stagings }))
}

/// Unpins every staging of an app (the API's DELETE and the console's unpin); returns how
/// many; 404 when the app had none.
pub(crate) async fn unpin(state: &AppState, app: &AppId) -> Result<u64, MgmtError> {
    // Unpinning counts the records it removes: none means the app had no staging (reading
    // every record first only to see whether there is one would list and parse them twice).
    let unpinned_stagings = state.store.unpin_app(app).await?;
    forget(state, app);
    if unpinned_stagings == 0 {
        return Err(no_staging(app));
    }
    tracing::info!(target: "wharfage::audit", event = "app_unpinned", app = %app, unpinned_stagings, "app unpinned; its pull credentials are revoked");
    Ok(unpinned_stagings)
}

/// PUT `/api/v1/apps/live`: the platform's list of apps that still exist; every other app is
/// unpinned (the store refuses more than half without `force`).
pub(super) async fn sync_live(State(state): State<AppState>, body: Bytes) -> Result<Response, MgmtError> {
    let req: LiveSyncRequest = serde_json::from_slice(&body)
        .map_err(|e| MgmtError::bad_request(format!("invalid live list: {e}; expected {{\"apps\": [...], \"force\": false}}")))?;
    let live = req.apps.iter().map(|a| AppId::parse(a)).collect::<Result<HashSet<_>, _>>()?;
    let done = state.store.sync_live(&live, req.force).await?;
    for app in &done.unpinned {
        forget(&state, app);
    }
    Ok(json(StatusCode::OK, &LiveSyncAnswer { unpinned: done.unpinned, kept: done.kept }))
}

/// Drops what this replica remembers of an app's credentials, so a revocation holds at once.
fn forget(state: &AppState, app: &AppId) {
    if let Some(auth) = &state.access.auth {
        auth.forget_app(app);
    }
}

/// POST `/api/v1/apps/{app}/credentials`: a fresh pull credential for the current staging
/// (for a platform that lost the one its staging returned).
pub(super) async fn mint_credentials(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    Ok(json(StatusCode::CREATED, &mint(&state, &app).await?))
}

/// A fresh pull credential for the app's current staging.
pub(crate) async fn mint(state: &AppState, app: &AppId) -> Result<auth::PullCredentials, MgmtError> {
    let s = state.store.app_stagings(app).await?.ok_or_else(|| no_staging(app))?;
    Ok(auth::mint(&state.store, app, &s.current().staging_id).await?)
}

/// DELETE `/api/v1/apps/{app}/credentials`: revokes every pull credential of the app.
pub(super) async fn revoke_credentials(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    let revoked_credentials = revoke(&state, &app).await?;
    Ok(json(StatusCode::OK, &Revoked { app, revoked_credentials }))
}

/// Revokes every pull credential of the app; returns how many there were.
pub(crate) async fn revoke(state: &AppState, app: &AppId) -> Result<u64, MgmtError> {
    let revoked_credentials = state.store.revoke_pull_credentials(app).await?;
    forget(state, app);
    tracing::info!(target: "wharfage::audit", event = "credentials_revoked", app = %app, revoked_credentials, "pull credentials revoked");
    Ok(revoked_credentials)
}
