//! The repositories: the catalog a page at a time, a repository's tags, and a manifest's
//! page (media type, an index's platforms, layers, config, referrers, the apps pinning it).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use oci::{AppId, Digest, Manifest, RepoName, RunMetadata, Tag};

use super::error::UiError;
use super::pages::{metadata_rows, ListQuery, PAGE};
use super::session::Viewer;
use super::view::{Chrome, ShortDigest, Size};
use super::{render, AppState};

/// Tags shown on a repository's page (each is one read to resolve).
const TAGS_SHOWN: usize = 200;

#[derive(Template)]
#[template(path = "ui/repositories.html")]
struct CatalogPage {
    chrome: Chrome,
    q: String,
    names: Vec<String>,
    next: Option<String>,
    first: bool,
}

/// GET `/ui/repositories?q=&after=`: a page of repository names, searched by prefix.
pub(super) async fn catalog(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let (names, next) = pullable_page(&state, &viewer, q.q.trim(), q.after.as_deref()).await?;
    render(&CatalogPage {
        chrome: Chrome::new(&viewer, "Repositories", "repositories"),
        next: q.next_link("/ui/repositories", next),
        first: q.after.is_none(),
        q: q.q,
        names,
    })
}

/// Store pages read, at most, to fill one console page for a viewer who may pull only some
/// repositories; past it the page is shorter and its "next" link goes on from there.
const PAGES_SCANNED: usize = 20;

/// A page of the repository names under `prefix` (after `after`) that the viewer may pull,
/// and where the next page starts. The whole catalog is for those who read everything.
async fn pullable_page(
    state: &AppState,
    viewer: &Viewer,
    prefix: &str,
    after: Option<&str>,
) -> Result<(Vec<String>, Option<String>), UiError> {
    let mut names = Vec::new();
    let mut after = after.map(str::to_string);
    for _ in 0..PAGES_SCANNED {
        let page = state.store.repositories_page(prefix, after.as_deref(), PAGE).await?;
        for name in page.items {
            if names.len() == PAGE {
                return Ok((names.clone(), names.last().cloned()));
            }
            if viewer.may_pull(state, &name) {
                names.push(name.clone());
            }
            after = Some(name);
        }
        if page.next.is_none() {
            return Ok((names, None));
        }
    }
    Ok((names, after))
}

/// The repository, if the viewer may pull it; otherwise the same answer as a repository that
/// does not exist, so the console does not tell which names exist either.
fn visible(state: &AppState, viewer: &Viewer, repo: &RepoName) -> Result<(), UiError> {
    if viewer.may_pull(state, repo.as_str()) {
        Ok(())
    } else {
        tracing::info!(target: "wharfage::audit", event = "denied", principal = viewer.user.as_deref().unwrap_or("-"), %repo, "console repository page denied");
        Err(UiError::not_found(format!("repository {repo} does not exist")))
    }
}

/// GET `/ui/repositories/{name}` and `/ui/repositories/{name}/manifests/{digest}` (names
/// have slashes, so the path is split at its last `/manifests/`).
pub(super) async fn repository(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(path): Path<String>,
) -> Result<Response, UiError> {
    match path.rsplit_once("/manifests/") {
        Some((name, digest)) => {
            let repo = RepoName::parse(name)?;
            visible(&state, &viewer, &repo)?;
            manifest(&state, &viewer, &repo, &Digest::parse(digest)?).await
        }
        None => {
            let repo = RepoName::parse(&path)?;
            visible(&state, &viewer, &repo)?;
            tags(&state, &viewer, &repo).await
        }
    }
}

#[derive(Template)]
#[template(path = "ui/repository.html")]
struct RepoPage {
    chrome: Chrome,
    name: String,
    tags: Vec<(Tag, Option<ShortDigest>)>,
    more_tags: usize,
    /// For `apps/<app>`: the app.
    app: Option<String>,
    /// For `apps/<app>`: its pinned images (its stagings, newest first): digest, source,
    /// whether current. Staged images are pinned by digest, so the tags alone show none.
    pins: Vec<(ShortDigest, String, bool)>,
}

async fn tags(state: &AppState, viewer: &Viewer, repo: &RepoName) -> Result<Response, UiError> {
    let all = state.store.tags(repo).await?.ok_or_else(|| UiError::not_found(format!("repository {repo} does not exist")))?;
    let mut tags = Vec::new();
    for t in all.iter().take(TAGS_SHOWN) {
        tags.push((t.clone(), state.store.resolve_tag(repo, t).await?.map(|d| ShortDigest::new(&d))));
    }
    let mut pins = Vec::new();
    if let Some(app) = AppId::of_repository(repo) {
        if let Some(s) = state.store.app_stagings(&app).await? {
            for (i, r) in s.history.iter().enumerate() {
                pins.push((ShortDigest::new(&r.digest), r.source.clone(), i == s.current));
            }
        }
    }
    render(&RepoPage {
        pins,
        chrome: Chrome::new(viewer, repo.to_string(), "repositories"),
        name: repo.to_string(),
        more_tags: all.len().saturating_sub(TAGS_SHOWN),
        tags,
        app: AppId::of_repository(repo).map(|a| a.to_string()),
    })
}

/// A descriptor as a row: what it is, its digest and size, and for an index entry its
/// platform.
struct DescRow {
    media_type: String,
    digest: ShortDigest,
    size: Size,
    platform: String,
    /// Whether the repository holds it: an index's absent children are absent by design
    /// (a sparse index), not missing data.
    present: bool,
}

impl DescRow {
    fn new(d: &oci::Descriptor) -> Self {
        let platform = d.platform.as_ref().map_or(String::new(), |p| {
            let f = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
            [f("os"), f("architecture"), f("variant")].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join("/")
        });
        DescRow {
            media_type: d.artifact_type.clone().unwrap_or_else(|| d.media_type.clone()),
            digest: ShortDigest::new(&d.digest),
            size: Size(d.size),
            platform,
            present: true,
        }
    }
}

#[derive(Template)]
#[template(path = "ui/manifest.html")]
struct ManifestPage {
    chrome: Chrome,
    name: String,
    digest: ShortDigest,
    media_type: String,
    size: Size,
    children: Vec<DescRow>,
    layers: Vec<DescRow>,
    total: Size,
    config: Option<DescRow>,
    platform: String,
    metadata: Vec<(&'static str, String)>,
    referrers: Vec<DescRow>,
    /// Apps whose stagings pin this manifest: app, and whether it is the current one.
    pinned_by: Vec<(String, bool)>,
}

async fn manifest(state: &AppState, viewer: &Viewer, repo: &RepoName, digest: &Digest) -> Result<Response, UiError> {
    let stored = state.store.manifest(repo, digest).await?.ok_or_else(|| UiError::not_found(format!("{repo} has no manifest {digest}")))?;
    let m = Manifest::parse(&stored.bytes, Some(&stored.media_type))?;
    let (mut platform, mut metadata) = (String::new(), Vec::new());
    if let Some(c) = &m.config {
        // A config that is not an image's (an artifact's) simply has no run metadata.
        if let Ok(bytes) = state.store.read_blob_bytes(&c.digest).await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let f = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                platform = [f("os"), f("architecture"), f("variant")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
            }
            if let Ok(run) = RunMetadata::from_config(&bytes) {
                metadata = metadata_rows(&run);
            }
        }
    }
    let mut pinned_by = Vec::new();
    if let Some(app) = AppId::of_repository(repo) {
        if let Some(s) = state.store.app_stagings(&app).await? {
            if s.history.iter().any(|r| r.digest == *digest) {
                pinned_by.push((app.to_string(), s.current().digest == *digest));
            }
        }
    }
    let referrers = state.store.referrers(repo, digest).await?.iter().map(DescRow::new).collect();
    let mut children = Vec::with_capacity(m.manifests.len());
    for c in &m.manifests {
        let mut row = DescRow::new(c);
        row.present = state.store.manifest(repo, &c.digest).await?.is_some();
        children.push(row);
    }
    // A layer the repository lacks belongs to a manifest accepted before its blobs were
    // pushed (`--manifest-completeness any`): shown as absent rather than linked to a 404.
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in &m.layers {
        let mut row = DescRow::new(l);
        row.present = state.store.blob_linked(repo, &l.digest).await?;
        layers.push(row);
    }
    render(&ManifestPage {
        chrome: Chrome::new(viewer, format!("{repo}@{}", ShortDigest::new(digest).short), "repositories"),
        name: repo.to_string(),
        digest: ShortDigest::new(digest),
        media_type: stored.media_type.to_string(),
        size: Size(stored.bytes.len() as u64),
        children,
        total: Size(m.layers.iter().map(|l| l.size).sum()),
        layers,
        config: m.config.as_ref().map(DescRow::new),
        platform,
        metadata,
        referrers,
        pinned_by,
    })
}
