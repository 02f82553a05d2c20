//! The `/api/v1` management API: stage an app's image, list and unpin apps, sync the live
//! list, collect garbage. Bodies are the typed contract in [`types`], shared with the CLI;
//! handlers return `Result<_, MgmtError>` and errors become HTTP in `crate::error` only.

pub(crate) mod apps;
pub(crate) mod gc;
pub(crate) mod stagings;
pub mod types;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use http::StatusCode;
use serde::Serialize;

use crate::access::{RoleNeed, Routes};
use crate::error::json_response;
use crate::AppState;

/// The routes of the management API, each with the role it needs.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Routes::api(state)
        .route("/api/v1/stagings", RoleNeed::Staging, post(stagings::create))
        .route("/api/v1/apps", RoleNeed::Staging, get(apps::list))
        .route("/api/v1/apps/live", RoleNeed::Staging, put(apps::sync_live))
        .route("/api/v1/apps/{app}", RoleNeed::Staging, get(apps::show).delete(apps::remove))
        .route("/api/v1/apps/{app}/credentials", RoleNeed::Staging, post(apps::mint_credentials).delete(apps::revoke_credentials))
        .route("/api/v1/gc", crate::service::GC_NEED, post(gc::collect))
        .route("/api/v1/mirrors", RoleNeed::Staging, get(mirrors))
        .route("/metrics", RoleNeed::Admin, get(crate::metrics::metrics))
        .into_router()
}

/// GET `/api/v1/mirrors`: every mirror, its upstream's state and its tagged images.
async fn mirrors(axum::extract::State(state): axum::extract::State<AppState>) -> Result<Response, crate::error::MgmtError> {
    let mirrors = crate::service::mirrors(&state).await?;
    Ok(json(StatusCode::OK, &types::MirrorList { mirrors }))
}

/// A typed body as JSON with its status.
fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_value(body) {
        Ok(v) => json_response(status, &v),
        // Our own types always serialize; should one ever fail, say so rather than send null.
        Err(e) => crate::error::MgmtError::internal(format!("cannot encode the answer: {e}")).into_response(),
    }
}
