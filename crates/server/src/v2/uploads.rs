//! Blob upload sessions: POST (monolithic, session, or cross-repository mount), PATCH chunks,
//! PUT to finish, GET status, DELETE to cancel.

use axum::body::Body;
use axum::response::Response;
use http::{response::Builder, StatusCode};
use oci::{Digest, ErrorCode, RepoName};
use store::{Store, UploadId};

use super::{finish, upload_range};
use crate::error::{ApiError, ApiResult};
use crate::range::parse_content_range;
use crate::request::Req;

fn created(repo: &RepoName, d: &Digest) -> Response {
    let b = Builder::new()
        .status(StatusCode::CREATED)
        .header("location", format!("/v2/{repo}/blobs/{d}"))
        .header("docker-content-digest", d.to_string())
        .header("content-length", 0);
    finish(b, Body::empty())
}

fn session(status: StatusCode, repo: &RepoName, id: &UploadId, size: u64) -> Response {
    let b = Builder::new()
        .status(status)
        .header("location", format!("/v2/{repo}/blobs/uploads/{id}"))
        .header("docker-upload-uuid", id.as_str())
        .header("range", upload_range(size))
        .header("content-length", 0);
    finish(b, Body::empty())
}

fn digest_param(req: &Req, name: &str) -> ApiResult<Option<Digest>> {
    req.query(name).map(|v| Digest::parse(v).map_err(ApiError::from)).transpose()
}

/// POST `/blobs/uploads/`.
pub(crate) async fn start(store: &Store, repo: &RepoName, req: Req) -> ApiResult {
    if let Some(d) = digest_param(&req, "mount")? {
        let from = req.query("from").map(RepoName::parse).transpose()?;
        // A mount reads its source: only a repository the caller may pull. Without `from`,
        // any blob for a caller who reads everything, else one linked in a repository the
        // caller may pull (searched, within bounds), so no digest is an oracle on content
        // the caller could not read. A refused mount is a plain upload, as the spec says.
        let source = match from {
            Some(src) => req.caller.actions(src.as_str()).contains(auth::Actions::PULL).then_some(MountSource::Repo(src)),
            None if req.caller.reads_everything() => Some(MountSource::Anywhere),
            None => pullable_source(store, &req.caller, &d).await?.map(MountSource::Repo),
        };
        // A cheap look first, so mounts of digests nobody has write no protection; then
        // protected before the authoritative check, so garbage collection cannot remove the
        // blob between our "yes, mounted" and the client's manifest.
        let plausible = match &source {
            Some(MountSource::Repo(src)) => store.blob_linked(src, &d).await?,
            Some(MountSource::Anywhere) => store.blob_size(&d).await?.is_some(),
            None => false,
        };
        let mountable = plausible && {
            store.protect(std::slice::from_ref(&d)).await?;
            match &source {
                Some(MountSource::Repo(src)) => store.blob_linked(src, &d).await? && store.blob_size_fresh(&d).await?.is_some(),
                _ => store.blob_size_fresh(&d).await?.is_some(),
            }
        };
        if mountable {
            store.link_blob(repo, &d).await?;
            return Ok(created(repo, &d));
        }
    }
    if let Some(d) = digest_param(&req, "digest")? {
        let body = req.into_stream();
        store.put_blob(&d, body).await?;
        store.link_blob(repo, &d).await?;
        return Ok(created(repo, &d));
    }
    let id = store.start_upload(repo).await?;
    Ok(session(StatusCode::ACCEPTED, repo, &id, 0))
}

/// Where a mount may take its blob from.
enum MountSource {
    /// This repository, which the caller may pull.
    Repo(RepoName),
    /// Any repository: the caller reads them all.
    Anywhere,
}

/// Repositories looked at, at most, for a mount without `from` by a caller who does not read
/// everything: the search is bounded work per request, and a miss is only an upload.
const MOUNT_SEARCH_REPOSITORIES: usize = 1024;

/// A repository the caller may pull that links `d`, for a mount that names no source.
async fn pullable_source(store: &Store, caller: &crate::access::Caller, d: &Digest) -> ApiResult<Option<RepoName>> {
    let (mut after, mut seen) = (None::<String>, 0);
    loop {
        let page = store.repositories_page("", after.as_deref(), 128).await?;
        for name in &page.items {
            seen += 1;
            if !caller.actions(name).contains(auth::Actions::PULL) {
                continue;
            }
            let Ok(r) = RepoName::parse(name) else { continue };
            if store.blob_linked(&r, d).await? {
                return Ok(Some(r));
            }
        }
        if seen >= MOUNT_SEARCH_REPOSITORIES {
            return Ok(None);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(None),
        }
    }
}

/// GET: how much the session holds.
pub(crate) async fn status(store: &Store, repo: &RepoName, id: &UploadId) -> ApiResult {
    let size = store.upload_size(repo, id).await?;
    Ok(session(StatusCode::NO_CONTENT, repo, id, size))
}

/// The start offset of a chunk from its `Content-Range`, checked against `Content-Length`.
fn chunk_offset(req: &Req) -> ApiResult<Option<u64>> {
    let Some(h) = req.header("content-range") else {
        return Ok(None);
    };
    let (a, b) = parse_content_range(h).map_err(|m| ApiError::new(ErrorCode::RangeInvalid, m))?;
    // `b >= a` (parsed), but `b - a + 1` overflows for 0-18446744073709551615.
    let covers = (b - a)
        .checked_add(1)
        .ok_or_else(|| ApiError::new(ErrorCode::RangeInvalid, format!("Content-Range {h:?} covers more bytes than a blob can hold")))?;
    if let Some(len) = req.content_length() {
        if covers != len {
            return Err(ApiError::new(
                ErrorCode::SizeInvalid,
                format!("Content-Range {h:?} covers {covers} bytes but Content-Length is {len}"),
            ));
        }
    }
    Ok(Some(a))
}

/// PATCH: append a chunk (streamed or with `Content-Range`).
pub(crate) async fn patch(store: &Store, repo: &RepoName, id: &UploadId, req: Req) -> ApiResult {
    let offset = chunk_offset(&req)?;
    let size = store.append_upload(repo, id, offset, req.into_stream()).await?;
    Ok(session(StatusCode::ACCEPTED, repo, id, size))
}

/// PUT `?digest=`: finish, with an optional last chunk.
pub(crate) async fn finish_upload(store: &Store, repo: &RepoName, id: &UploadId, req: Req) -> ApiResult {
    let d = digest_param(&req, "digest")?
        .ok_or_else(|| ApiError::new(ErrorCode::DigestInvalid, "the digest query parameter is required to finish an upload"))?;
    if let Some(offset) = chunk_offset(&req)? {
        let held = store.upload_size(repo, id).await?;
        if offset != held {
            return Err(store::StoreError::UploadOffset { id: id.to_string(), expected: held, got: offset }.into());
        }
    }
    let body = req.into_stream();
    store.finish_upload(repo, id, &d, Some(body)).await?;
    Ok(created(repo, &d))
}

/// DELETE: cancel the session and drop its data.
pub(crate) async fn cancel(store: &Store, repo: &RepoName, id: &UploadId) -> ApiResult {
    store.cancel_upload(repo, id).await?;
    Ok(finish(Builder::new().status(StatusCode::NO_CONTENT).header("content-length", 0), Body::empty()))
}
