//! Manifest GET/HEAD/PUT/DELETE by tag or digest.

use axum::body::Body;
use bytes::Bytes;
use http::{response::Builder, Method, StatusCode};
use oci::media::{self, EMPTY_JSON};
use oci::{Algorithm, Descriptor, Digest, ErrorCode, Manifest, Reference, RepoName, Tag, MAX_MANIFEST_BYTES};
use store::Store;

use super::finish;
use crate::error::{ApiError, ApiResult};
use crate::request::{BodyError, Req};
use crate::ManifestCompleteness;

/// Most blobs and child manifests one manifest may reference, which bounds the protections
/// against garbage collection one request writes. Images have at most a few hundred layers
/// (overlay filesystems stop at 128) and indexes a few dozen platforms.
pub(super) const MAX_REFERENCES: usize = 4096;

fn unknown(repo: &RepoName, r: &Reference) -> ApiError {
    ApiError::new(ErrorCode::ManifestUnknown, format!("manifest {r} is not in repository {repo}"))
}

/// A pull's resolution of a tag: on S3 possibly a tag this replica read within the tag cache
/// TTL (see `store::Store::resolve_tag_cached`).
async fn resolve(store: &Store, repo: &RepoName, r: &Reference) -> ApiResult<Digest> {
    match r {
        Reference::Digest(d) => Ok(d.clone()),
        Reference::Tag(t) => store.resolve_tag_cached(repo, t).await?.ok_or_else(|| unknown(repo, r)),
    }
}

/// GET or HEAD: the bytes exactly as pushed, under the pushed media type. Served from the
/// replica's caches within their bounds (`docs/ha.md`): a pull costs at most one store
/// request on S3.
pub(crate) async fn get(store: &Store, repo: &RepoName, r: &Reference, req: &Req) -> ApiResult {
    let d = resolve(store, repo, r).await?;
    let m = store.manifest_cached(repo, &d).await?.ok_or_else(|| unknown(repo, r))?;
    let b = Builder::new()
        .status(StatusCode::OK)
        .header("content-type", m.media_type.as_ref())
        .header("docker-content-digest", d.to_string())
        .header("etag", format!("\"{d}\""))
        .header("content-length", m.bytes.len());
    let body = if req.method == Method::HEAD { Body::empty() } else { Body::from(m.bytes) };
    Ok(finish(b, body))
}

/// PUT by tag or digest (with optional `?tag=` parameters). What the manifest may name
/// that the repository lacks is `completeness`'s to say (see [`ManifestCompleteness`]).
pub(crate) async fn put(store: &Store, repo: &RepoName, r: &Reference, req: Req, completeness: ManifestCompleteness) -> ApiResult {
    let too_big = || {
        ApiError::new(ErrorCode::ManifestInvalid, format!("manifest is larger than the {} MiB limit", MAX_MANIFEST_BYTES >> 20))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if req.content_length().is_some_and(|l| l > MAX_MANIFEST_BYTES as u64) {
        return Err(too_big());
    }
    let content_type = req.header("content-type").map(str::to_string);
    let mut tags: Vec<Tag> = req.query_all("tag").map(Tag::parse).collect::<Result<_, _>>()?;
    let bytes = req.into_bytes(MAX_MANIFEST_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge => too_big(),
        BodyError::Incomplete(why) => {
            ApiError::new(ErrorCode::ManifestInvalid, format!("the manifest body could not be read whole: {why}"))
        }
    })?;
    let manifest = Manifest::parse(&bytes, content_type.as_deref())?;
    let digest = match r {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if &actual != expected {
                return Err(ApiError::new(
                    ErrorCode::DigestInvalid,
                    format!("manifest content has digest {actual}, not {expected} as the URL says"),
                ));
            }
            actual
        }
        Reference::Tag(t) => {
            tags.push(t.clone());
            Digest::of(Algorithm::Sha256, &bytes)
        }
    };
    let absent_blobs = check_references(store, repo, &manifest, completeness).await?;
    let referrer = manifest.subject.as_ref().map(|s| (s.digest.clone(), manifest.referrer_descriptor(&digest, bytes.len() as u64)));
    let referrer = referrer.as_ref().map(|(s, d)| (s, d));
    if absent_blobs {
        store.put_manifest_with_absent_blobs(repo, &digest, &manifest.media_type, bytes, referrer).await?;
    } else {
        store.put_manifest(repo, &digest, &manifest.media_type, bytes, referrer).await?;
    }
    for t in &tags {
        store.set_tag(repo, t, &digest).await?;
    }
    let mut b = Builder::new()
        .status(StatusCode::CREATED)
        .header("location", format!("/v2/{repo}/manifests/{digest}"))
        .header("docker-content-digest", digest.to_string())
        .header("content-length", 0);
    if let Some(s) = &manifest.subject {
        b = b.header("oci-subject", s.digest.to_string());
    }
    // One `OCI-Tag` per tag applied, so a client pushing by digest with `?tag=` parameters
    // (the conformance suite's tag-param tests) can see which tags the registry honoured.
    for t in &tags {
        b = b.header("oci-tag", t.as_str());
    }
    Ok(finish(b, Body::empty()))
}

/// Refuses a manifest that names blobs or children with the wrong size, or that names
/// blobs or children the repository lacks where `completeness` requires them. Present ones
/// are checked and protected; absent ones, where allowed, are absent by design (a sparse
/// index, what a one-platform staging or mirror holds; under `Any`, an image manifest whose
/// layers come later). Answers whether any blob (not child manifest) is absent.
async fn check_references(store: &Store, repo: &RepoName, m: &Manifest, completeness: ManifestCompleteness) -> ApiResult<bool> {
    let missing = |kind: &str, d: &Descriptor| {
        ApiError::new(ErrorCode::ManifestBlobUnknown, format!("manifest references {kind} {} which is not in repository {repo}", d.digest))
            .with_detail(serde_json::json!({ "digest": d.digest.to_string() }))
    };
    // Collected first: an iterator with closures held across awaits is not `Send` enough.
    let named: Vec<&Descriptor> = m.required_blobs().collect();
    let count = named.len() + m.manifests.len();
    if count > MAX_REFERENCES {
        return Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest references {count} blobs and manifests, more than the {MAX_REFERENCES} one manifest may"),
        ));
    }
    // Cheap checks before anything is written: a manifest naming what the repository lacks
    // is refused without leaving a garbage-collection protection behind for each name.
    let mut required: Vec<&Descriptor> = Vec::with_capacity(named.len());
    for desc in named {
        if is_empty_json(desc) || store.blob_linked(repo, &desc.digest).await? {
            required.push(desc);
        } else if completeness != ManifestCompleteness::Any {
            return Err(missing("blob", desc));
        }
    }
    let absent_blobs = required.len() < m.required_blobs().count();
    let mut children: Vec<&Descriptor> = Vec::with_capacity(m.manifests.len());
    for child in &m.manifests {
        if store.manifest(repo, &child.digest).await?.is_some() {
            children.push(child);
        } else if completeness == ManifestCompleteness::Complete {
            return Err(missing("manifest", child));
        }
    }
    // Protected before they are checked (again, now authoritatively), so a concurrent garbage collection cannot remove
    // what this manifest is accepted with; a digest it is removing counts as missing.
    let digests: Vec<Digest> = required.iter().chain(children.iter()).map(|d| d.digest.clone()).collect();
    match store.protect(&digests).await {
        Err(store::StoreError::BeingCollected(d)) => {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest references {d}, which garbage collection is removing: push it again"),
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() })));
        }
        other => other?,
    }
    for desc in required {
        if !store.blob_linked(repo, &desc.digest).await? {
            if is_empty_json(desc) {
                // The empty JSON config of artifacts: the registry can produce it itself.
                store.put_blob(&desc.digest, futures::stream::iter([Ok(Bytes::from_static(EMPTY_JSON))])).await?;
                store.link_blob(repo, &desc.digest).await?;
                continue;
            }
            return Err(missing("blob", desc));
        }
        let size = store.blob_size_fresh(&desc.digest).await?.ok_or_else(|| missing("blob", desc))?;
        if size != desc.size {
            return Err(ApiError::new(
                ErrorCode::ManifestInvalid,
                format!("descriptor of {} says {} bytes but the blob has {size}", desc.digest, desc.size),
            ));
        }
    }
    for child in children {
        let Some(stored) = store.manifest(repo, &child.digest).await? else {
            return Err(missing("manifest", child));
        };
        if stored.bytes.len() as u64 != child.size {
            return Err(ApiError::new(
                ErrorCode::ManifestInvalid,
                format!("descriptor of {} says {} bytes but the manifest has {}", child.digest, child.size, stored.bytes.len()),
            ));
        }
    }
    Ok(absent_blobs)
}

fn is_empty_json(d: &Descriptor) -> bool {
    d.size == EMPTY_JSON.len() as u64
        && d.digest == Digest::of(d.digest.algorithm(), EMPTY_JSON)
        && (d.media_type == media::OCI_EMPTY || d.media_type.ends_with("+json") || d.media_type.ends_with("json"))
}

/// DELETE: by tag removes the tag; by digest removes the manifest and tags pointing at it.
pub(crate) async fn delete(store: &Store, repo: &RepoName, r: &Reference) -> ApiResult {
    let existed = match r {
        Reference::Tag(t) => store.delete_tag(repo, t).await?,
        Reference::Digest(d) => store.delete_manifest(repo, d).await?,
    };
    if !existed {
        return Err(unknown(repo, r));
    }
    Ok(finish(Builder::new().status(StatusCode::ACCEPTED).header("content-length", 0), Body::empty()))
}
