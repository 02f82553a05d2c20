//! Handlers of the `/v2/` Distribution API, one module per resource.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use axum::body::Body;
use axum::response::Response;
use http::{response::Builder, Method, StatusCode};
use oci::ErrorCode;

use crate::endpoint::Endpoint;
use crate::error::{ApiError, ApiResult};
use crate::request::Req;
use crate::AppState;

/// Routes a parsed endpoint and method to its handler.
pub(crate) async fn handle(state: &AppState, ep: Endpoint, req: Req) -> ApiResult {
    let store = &state.store;
    let m = req.method.clone();
    match (ep, &m) {
        (Endpoint::Base, &Method::GET | &Method::HEAD) => Ok(json(StatusCode::OK, Builder::new(), "{}".into())),
        (Endpoint::Catalog, &Method::GET) => listing::catalog(store, &req).await,
        (Endpoint::Tags(repo), &Method::GET) => listing::tags(store, &repo, &req).await,
        (Endpoint::Referrers(repo, d), &Method::GET) => listing::referrers(store, &repo, &d, &req).await,
        (Endpoint::Blob(repo, d), &Method::GET | &Method::HEAD) => blobs::get(state, &repo, &d, &req).await,
        (Endpoint::Blob(repo, d), &Method::DELETE) => blobs::delete(store, &repo, &d).await,
        (Endpoint::UploadStart(repo), &Method::POST) => uploads::start(store, &repo, req).await,
        (Endpoint::Upload(repo, id), &Method::GET) => uploads::status(store, &repo, &id).await,
        (Endpoint::Upload(repo, id), &Method::PATCH) => uploads::patch(store, &repo, &id, req).await,
        (Endpoint::Upload(repo, id), &Method::PUT) => uploads::finish_upload(store, &repo, &id, req).await,
        (Endpoint::Upload(repo, id), &Method::DELETE) => uploads::cancel(store, &repo, &id).await,
        (Endpoint::Manifest(repo, r), &Method::GET | &Method::HEAD) => manifests::get(store, &repo, &r, &req).await,
        (Endpoint::Manifest(repo, r), &Method::PUT) => manifests::put(store, &repo, &r, req, state.completeness).await,
        (Endpoint::Manifest(repo, r), &Method::DELETE) => manifests::delete(store, &repo, &r).await,
        (ep, m) => {
            Err(ApiError::new(ErrorCode::Unsupported, format!("{m} is not supported on {ep:?}"))
                .with_status(StatusCode::METHOD_NOT_ALLOWED))
        }
    }
}

/// Finishes a response builder. Only our own header values (digests, paths, numbers) are
/// set on builders, so building cannot fail; if it ever did, answer 500 rather than panic.
pub(crate) fn finish(b: Builder, body: Body) -> Response {
    b.body(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "building a response failed");
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, b: Builder, body: String) -> Response {
    finish(b.status(status).header("content-type", "application/json"), Body::from(body))
}

/// The `Range` header value for an upload holding `size` bytes (`0-<last byte>`; `0-0` when
/// empty, as clients expect from the reference registry).
pub(crate) fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}
