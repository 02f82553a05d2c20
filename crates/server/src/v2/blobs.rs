//! Blob GET/HEAD (with ranges) and DELETE.

use axum::body::Body;
use http::{response::Builder, Method, StatusCode};
use oci::{Digest, ErrorCode, RepoName};
use store::Store;

use super::finish;
use crate::error::{ApiError, ApiResult};
use crate::range::parse_range;
use crate::request::Req;

fn unknown(repo: &RepoName, d: &Digest) -> ApiError {
    ApiError::new(ErrorCode::BlobUnknown, format!("blob {d} is not in repository {repo}"))
        .with_detail(serde_json::json!({ "digest": d.to_string() }))
}

/// GET or HEAD of a blob the repository links.
pub(crate) async fn get(store: &Store, repo: &RepoName, d: &Digest, req: &Req) -> ApiResult {
    if !store.blob_linked(repo, d).await? {
        return Err(unknown(repo, d));
    }
    let size = store.blob_size(d).await?.ok_or_else(|| unknown(repo, d))?;
    let range = match req.header("range") {
        Some(h) => parse_range(h).map_err(|m| ApiError::new(ErrorCode::RangeInvalid, m).with_status(StatusCode::BAD_REQUEST))?,
        None => None,
    };
    let resolved = match range {
        Some(r) => Some(r.resolve(size).ok_or_else(|| {
            ApiError::new(ErrorCode::RangeInvalid, format!("range {r:?} is outside blob {d} of {size} bytes"))
        })?),
        None => None,
    };
    let b = Builder::new()
        .header("docker-content-digest", d.to_string())
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("etag", format!("\"{d}\""));
    let (status, b) = match &resolved {
        Some(r) => (
            StatusCode::PARTIAL_CONTENT,
            b.header("content-range", format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        ),
        None => (StatusCode::OK, b),
    };
    let len = resolved.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    let b = b.status(status).header("content-length", len);
    if req.method == Method::HEAD {
        return Ok(finish(b, Body::empty()));
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
