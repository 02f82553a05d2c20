//! Blob GET/HEAD (with ranges) and DELETE.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{response::Builder, HeaderValue, Method, StatusCode};
use oci::{Digest, ErrorCode, RepoName};
use store::Store;

use super::finish;
use crate::error::{ApiError, ApiResult};
use crate::range::parse_range;
use crate::request::Req;
use crate::AppState;

fn unknown(repo: &RepoName, d: &Digest) -> ApiError {
    ApiError::new(ErrorCode::BlobUnknown, format!("blob {d} is not in repository {repo}"))
        .with_detail(serde_json::json!({ "digest": d.to_string() }))
}

/// A 416 answer, with the `Content-Range: bytes */<size>` RFC 9110 asks for so a client can
/// retry with a valid range.
fn unsatisfiable(e: ApiError, size: u64) -> Response {
    let mut resp = e.with_status(StatusCode::RANGE_NOT_SATISFIABLE).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
    }
    resp
}

/// GET or HEAD of a blob the repository links (on S3 possibly a link this replica cached,
/// within the bound of `docs/ha.md`).
pub(crate) async fn get(state: &AppState, repo: &RepoName, d: &Digest, req: &Req) -> ApiResult {
    let store = &state.store;
    if !store.blob_linked_cached(repo, d).await? {
        return Err(unknown(repo, d));
    }
    let size = store.blob_size(d).await?.ok_or_else(|| unknown(repo, d))?;
    // A malformed byte range (e.g. `bytes=500-0`) is answered 416 like an unsatisfiable one:
    // the conformance suite expects that, and it is what the reference registry (Go's
    // `http.ServeContent`) does.
    let range = match req.header("range").map(parse_range) {
        Some(Ok(r)) => r,
        Some(Err(m)) => return Ok(unsatisfiable(ApiError::new(ErrorCode::RangeInvalid, m), size)),
        None => None,
    };
    let resolved = match range {
        Some(r) => match r.resolve(size) {
            Some(x) => Some(x),
            None => {
                let e = ApiError::new(ErrorCode::RangeInvalid, format!("range {r:?} is outside blob {d} of {size} bytes"));
                return Ok(unsatisfiable(e, size));
            }
        },
        None => None,
    };
    let b = Builder::new()
        .header("docker-content-digest", d.to_string())
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("etag", format!("\"{d}\""));
    let (status, b) = match &resolved {
        Some(r) => (StatusCode::PARTIAL_CONTENT, b.header("content-range", format!("bytes {}-{}/{size}", r.start, r.end - 1))),
        None => (StatusCode::OK, b),
    };
    let len = resolved.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    let b = b.status(status).header("content-length", len);
    if req.method == Method::HEAD {
        return Ok(finish(b, Body::empty()));
    }
    if let Some(ttl) = state.blob_redirect {
        if let Some(url) = store.presigned_blob_url(d, ttl).await? {
            // The client repeats its Range header on the redirected request.
            let redirect = Builder::new()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", url.as_str())
                .header("docker-content-digest", d.to_string())
                .header("content-length", 0);
            return Ok(finish(redirect, Body::empty()));
        }
    }
    let body = store.read_blob(d, resolved).await?;
    Ok(finish(b, Body::from_stream(body.stream)))
}

/// DELETE: unlinks the blob from the repository (bytes go at garbage collection).
pub(crate) async fn delete(store: &Store, repo: &RepoName, d: &Digest) -> ApiResult {
    if !store.unlink_blob(repo, d).await? {
        return Err(unknown(repo, d));
    }
    Ok(finish(Builder::new().status(StatusCode::ACCEPTED).header("content-length", 0), Body::empty()))
}
