//! `/api/v1/gc`: one garbage collection, answered with what it removed.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use super::json;
use super::types::GcRequest;
use crate::error::MgmtError;
use crate::AppState;

/// POST `/api/v1/gc` (`{"dry_run": bool}`, or no body).
pub(super) async fn collect(State(state): State<AppState>, body: Bytes) -> Result<Response, MgmtError> {
    let req: GcRequest = if body.is_empty() {
        GcRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| MgmtError::bad_request(format!("invalid gc request: {e}; expected {{\"dry_run\": bool}}")))?
    };
    Ok(json(StatusCode::OK, &crate::service::collect_garbage(&state, req.dry_run).await?))
}
