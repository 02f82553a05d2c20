//! Tag list, catalog and referrers: the listing endpoints, with `n`/`last` pagination.

use http::{response::Builder, StatusCode};
use oci::media::OCI_INDEX;
use oci::{Digest, ErrorCode, RepoName};
use store::Store;

use super::json;
use crate::error::{ApiError, ApiResult};
use crate::request::Req;

/// One page of a sorted list, and the `Link` to the next page when there is one.
fn page(all: Vec<String>, req: &Req, base: &str) -> ApiResult<(Vec<String>, Option<String>)> {
    let n = match req.query("n") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| ApiError::new(ErrorCode::PaginationNumberInvalid, format!("n={v:?} is not a non-negative integer")))?,
        ),
        None => None,
    };
    let last = req.query("last");
    let mut items: Vec<String> = all.into_iter().filter(|t| last.is_none_or(|l| t.as_str() > l)).collect();
    let mut link = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(l) = items.last() {
                link = Some(format!("<{base}?n={n}&last={l}>; rel=\"next\""));
            }
        }
    }
    Ok((items, link))
}

fn with_link(b: Builder, link: Option<String>) -> Builder {
    match link {
        Some(l) => b.header("link", l),
        None => b,
    }
}

/// GET `/v2/<name>/tags/list`.
pub(crate) async fn tags(store: &Store, repo: &RepoName, req: &Req) -> ApiResult {
    let all = store.tags(repo).await?.ok_or_else(|| ApiError::new(ErrorCode::NameUnknown, format!("repository {repo} is not known")))?;
    let all = all.into_iter().map(|t| t.to_string()).collect();
    let (tags, link) = page(all, req, &format!("/v2/{repo}/tags/list"))?;
    let body = serde_json::json!({ "name": repo.as_str(), "tags": tags }).to_string();
    Ok(json(StatusCode::OK, with_link(Builder::new(), link), body))
}

/// GET `/v2/_catalog`.
pub(crate) async fn catalog(store: &Store, req: &Req) -> ApiResult {
    let (repos, link) = page(store.repositories().await?, req, "/v2/_catalog")?;
    let body = serde_json::json!({ "repositories": repos }).to_string();
    Ok(json(StatusCode::OK, with_link(Builder::new(), link), body))
}

/// GET `/v2/<name>/referrers/<digest>` with the optional `artifactType` filter.
pub(crate) async fn referrers(store: &Store, repo: &RepoName, subject: &Digest, req: &Req) -> ApiResult {
    let mut list = store.referrers(repo, subject).await?;
    let mut b = Builder::new();
    if let Some(t) = req.query("artifactType") {
        list.retain(|d| d.artifact_type.as_deref() == Some(t));
        b = b.header("oci-filters-applied", "artifactType");
    }
    let body = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list }).to_string();
    Ok(super::finish(b.status(StatusCode::OK).header("content-type", OCI_INDEX), axum::body::Body::from(body)))
}
