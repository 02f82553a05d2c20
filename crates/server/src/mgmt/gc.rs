//! `/api/v1/gc`: one garbage collection, answered with what it removed.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use super::json;
use super::types::GcRequest;
use crate::error::MgmtError;
use crate::AppState;

/// Who may collect garbage, through the API and the console alike.
pub(crate) const NEED: crate::access::RoleNeed = crate::access::RoleNeed::Admin;

/// POST `/api/v1/gc` (`{"dry_run": bool}`, or no body).
pub(super) async fn collect(State(state): State<AppState>, body: Bytes) -> Result<Response, MgmtError> {
    let req: GcRequest = if body.is_empty() {
        GcRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| MgmtError::bad_request(format!("invalid gc request: {e}; expected {{\"dry_run\": bool}}")))?
    };
    Ok(json(StatusCode::OK, &run(&state, req.dry_run).await?))
}

/// One collection with the server's options (the API's and the console's).
pub(crate) async fn run(state: &AppState, dry_run: bool) -> Result<store::GcReport, MgmtError> {
    let opts = store::GcOptions { dry_run, ..state.gc.clone() };
    let store = state.store.clone();
    // Its own task: a client that hangs up does not interrupt a sweep half-way.
    let report = tokio::spawn(async move { store.collect_garbage(&opts).await })
        .await
        .map_err(|e| MgmtError::internal(format!("gc task failed: {e}")))??;
    state.metrics.gc(&report);
    Ok(report)
}
