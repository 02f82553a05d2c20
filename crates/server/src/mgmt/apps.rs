//! `/api/v1/apps`: list apps, show one app's stagings, unpin an app, sync the live list,
//! an app's pull credentials. The operations are `crate::service`'s, shared with the console.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use oci::AppId;

use super::json;
use super::types::{AppList, LiveSyncRequest, Revoked, Unpinned};
use crate::error::MgmtError;
use crate::{service, AppState};

/// GET `/api/v1/apps`: every app with its current staging.
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, MgmtError> {
    let apps = service::apps(&state, &state.access.registry_host(&headers)).await?;
    Ok(json(StatusCode::OK, &AppList { apps }))
}

/// GET `/api/v1/apps/{app}`: the current staging and the history, newest first.
pub(super) async fn show(State(state): State<AppState>, headers: HeaderMap, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    Ok(json(StatusCode::OK, &service::app(&state, &app, &state.access.registry_host(&headers)).await?))
}

/// DELETE `/api/v1/apps/{app}`: unpin every staging of the app.
pub(super) async fn remove(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    let unpinned_stagings = service::unpin(&state, &app).await?;
    Ok(json(StatusCode::OK, &Unpinned { app, unpinned_stagings }))
}

/// PUT `/api/v1/apps/live`: the platform's list of apps that still exist; every other app is
/// unpinned (the store refuses more than half without `force`).
pub(super) async fn sync_live(State(state): State<AppState>, body: Bytes) -> Result<Response, MgmtError> {
    let req: LiveSyncRequest = serde_json::from_slice(&body)
        .map_err(|e| MgmtError::bad_request(format!("invalid live list: {e}; expected {{\"apps\": [...], \"force\": false}}")))?;
    Ok(json(StatusCode::OK, &service::sync_live(&state, &req.apps, req.force).await?))
}

/// POST `/api/v1/apps/{app}/credentials`: a fresh pull credential for the current staging
/// (for a platform that lost the one its staging returned).
pub(super) async fn mint_credentials(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    Ok(json(StatusCode::CREATED, &service::mint(&state, &app).await?))
}

/// DELETE `/api/v1/apps/{app}/credentials`: revokes every pull credential of the app.
pub(super) async fn revoke_credentials(State(state): State<AppState>, Path(app): Path<String>) -> Result<Response, MgmtError> {
    let app = AppId::parse(&app)?;
    let revoked_credentials = service::revoke(&state, &app).await?;
    Ok(json(StatusCode::OK, &Revoked { app, revoked_credentials }))
}
