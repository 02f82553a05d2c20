//! The overview, the apps list and an app's page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use http::HeaderMap;
use oci::AppId;
use serde::Deserialize;
use store::{GcRun, StagingRecord, Usage};

use super::error::UiError;
use super::session::Viewer;
use super::view::{Chrome, ShortDigest, Size, When};
use super::{render, AppState};

/// Rows per list page.
pub(super) const PAGE: usize = 50;

/// `?q=<prefix>&after=<last key of the previous page>` of the list pages.
#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    pub q: String,
    pub after: Option<String>,
}

impl ListQuery {
    /// The link to the page after `last`, keeping the search.
    pub(super) fn next_link(&self, base: &str, last: Option<String>) -> Option<String> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        last.map(|l| format!("{base}?q={}&after={}", enc(&self.q), enc(&l)))
    }
}

/// A staging as a row of a table.
pub(super) struct StagingRow {
    pub app: String,
    pub id: String,
    pub source: String,
    pub digest: ShortDigest,
    pub when: When,
    pub size: Size,
    pub downloaded: Size,
    pub reused: Size,
    pub seconds: String,
    pub current: bool,
    /// The platforms present when the pinned digest is an index (a sparse one unless all).
    pub platforms: String,
    /// Signatures, SBOMs and attestations copied with it.
    pub referrers: u64,
    /// What the staging left out (referrers it could not copy).
    pub warnings: Vec<String>,
}

impl StagingRow {
    pub(super) fn new(r: &StagingRecord, current: bool) -> Self {
        StagingRow {
            app: r.app.to_string(),
            id: r.staging_id.to_string(),
            source: r.source.clone(),
            digest: ShortDigest::new(&r.digest),
            when: When::from_ms(r.created_ms),
            size: Size(r.bytes_downloaded + r.bytes_reused),
            downloaded: Size(r.bytes_downloaded),
            reused: Size(r.bytes_reused),
            seconds: format!("{:.1} s", r.seconds),
            current,
            platforms: r.platforms.join(", "),
            referrers: r.referrers,
            warnings: r.warnings.clone(),
        }
    }
}

/// A past collection as a row.
pub(super) struct GcRow {
    pub when: When,
    pub blobs: u64,
    pub freed: Size,
    pub manifests: u64,
    pub stagings: u64,
    pub seconds: String,
}

impl GcRow {
    pub(super) fn new(run: &GcRun) -> Self {
        let r = &run.report;
        GcRow {
            when: When::from_ms(run.ended_ms),
            blobs: r.blobs.count,
            freed: Size(r.blobs.bytes + r.uploads.bytes + r.temp_files.bytes),
            manifests: r.manifests.count,
            stagings: r.stagings.count,
            seconds: format!("{:.1} s", r.seconds),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct Overview {
    chrome: Chrome,
    usage: Option<(When, Usage)>,
    stored: Size,
    logical: Size,
    saved: Size,
    mirrored: Option<Size>,
    recent: Vec<StagingRow>,
    /// Failed stagings of this replica, newest first: app, source, why, when.
    failed: Vec<(String, String, String, When)>,
    last_gc: Option<GcRow>,
    health: Result<(), String>,
    store: String,
}

/// GET `/ui/`.
pub(super) async fn overview(State(state): State<AppState>, Extension(viewer): Extension<Viewer>) -> Result<Response, UiError> {
    let mirrored = state.mirrors.as_deref().map(|m| m.keys()).unwrap_or_default();
    let usage = state.console.usage(&state.store, mirrored).await;
    let health = state.store.ready().await.map_err(|e| e.to_string());
    let failed = state.console.failed_stagings().into_iter().map(|(a, s, w, t)| (a, s, w, When::from_system(t))).collect();
    let last_gc = state.store.gc_history(1).await.ok().and_then(|h| h.first().map(GcRow::new));
    let (stored, logical, saved) =
        usage.as_ref().map_or_else(Default::default, |(_, u)| (Size(u.stored_bytes), Size(u.logical_bytes), Size(u.saved_bytes())));
    let recent = usage.as_ref().map(|(_, u)| u.recent.iter().map(|r| StagingRow::new(r, false)).collect()).unwrap_or_default();
    let usage_mirrored = usage.as_ref().map(|(_, u)| Size(u.mirrored_bytes));
    let page = Overview {
        chrome: Chrome::new(&viewer, "Overview", "overview"),
        usage: usage.map(|(t, u)| (When::from_system(t), u)),
        stored,
        logical,
        saved,
        mirrored: state.mirrors.as_ref().and(usage_mirrored),
        recent,
        failed,
        last_gc,
        health,
        store: state.store.describe().to_string(),
    };
    render(&page)
}

#[derive(Template)]
#[template(path = "ui/apps.html")]
struct AppsPage {
    chrome: Chrome,
    q: String,
    rows: Vec<StagingRow>,
    next: Option<String>,
    first: bool,
}

/// GET `/ui/apps?q=&after=`: a page of apps, searched by id prefix.
pub(super) async fn apps(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let page = state.store.apps_page(q.q.trim(), q.after.as_deref(), PAGE).await?;
    let rows = page.items.iter().map(|s| StagingRow::new(s.current(), true)).collect();
    let html = AppsPage {
        chrome: Chrome::new(&viewer, "Apps", "apps"),
        next: q.next_link("/ui/apps", page.next),
        first: q.after.is_none(),
        q: q.q,
        rows,
    };
    render(&html)
}

/// The run metadata of a staging, as label and value pairs.
pub(super) fn metadata_rows(m: &oci::RunMetadata) -> Vec<(&'static str, String)> {
    let list = |v: &[String]| if v.is_empty() { "—".to_string() } else { v.join(" ") };
    let or_dash = |s: &str| if s.is_empty() { "—".to_string() } else { s.to_string() };
    vec![
        ("Entrypoint", list(&m.entrypoint)),
        ("Command", list(&m.cmd)),
        ("User", or_dash(&m.user)),
        ("Working directory", or_dash(&m.working_dir)),
        (
            "Ports",
            if m.ports.is_empty() {
                "—".into()
            } else {
                m.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol)).collect::<Vec<_>>().join(", ")
            },
        ),
        ("Lowest port", m.lowest_port.map_or("—".into(), |p| p.to_string())),
    ]
}

#[derive(Template)]
#[template(path = "ui/app.html")]
pub(super) struct AppPage {
    pub chrome: Chrome,
    pub app: String,
    pub current: StagingRow,
    pub metadata: Vec<(&'static str, String)>,
    pub env: Vec<String>,
    pub pull: String,
    pub repository: String,
    pub history: Vec<StagingRow>,
    /// A credential minted by this request, shown once.
    pub minted: Option<auth::PullCredentials>,
    /// What the last action did.
    pub notice: Option<String>,
    /// A revocation to confirm: the credential to keep (a rotation's new one), or empty to
    /// revoke them all.
    pub confirm_revoke: Option<String>,
}

/// The page of an app, with what an action on it did.
pub(super) async fn app_page(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    app: &AppId,
    minted: Option<auth::PullCredentials>,
    notice: Option<String>,
) -> Result<AppPage, UiError> {
    let s = crate::service::stagings(state, app).await?;
    let current = s.current();
    let view = crate::service::view(current.clone(), &state.access.registry_host(headers));
    Ok(AppPage {
        chrome: Chrome::new(viewer, app.to_string(), "apps"),
        app: app.to_string(),
        metadata: metadata_rows(&current.metadata),
        env: current.metadata.env.clone(),
        pull: format!("docker pull {}", view.image),
        repository: current.repository.clone(),
        history: s.history.iter().enumerate().map(|(i, r)| StagingRow::new(r, i == s.current)).collect(),
        current: StagingRow::new(current, true),
        minted,
        notice,
        confirm_revoke: None,
    })
}

/// GET `/ui/apps/{app}`.
pub(super) async fn app(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> Result<Response, UiError> {
    let app = AppId::parse(&app)?;
    render(&app_page(&state, &viewer, &headers, &app, None, None).await?)
}

/// One mirror as the Mirrors page shows it.
struct MirrorRow {
    registry: String,
    url: String,
    default: bool,
    tag_ttl: String,
    retention: String,
    /// The last failure (when, why), when it is newer than the last success.
    error: Option<(When, String)>,
    ok: Option<When>,
    images: Vec<MirrorImageRow>,
    total: Size,
}

struct MirrorImageRow {
    name: String,
    digest: ShortDigest,
    size: Size,
    pulled: Option<When>,
}

#[derive(Template)]
#[template(path = "ui/mirrors.html")]
struct MirrorsPage {
    chrome: Chrome,
    mirrors: Vec<MirrorRow>,
}

/// A duration in the largest whole unit that fits.
fn span(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// GET `/ui/mirrors`: each mirrored registry, its upstream's state and what it holds (the
/// images only to viewers who may pull them).
pub(super) async fn mirrors(State(state): State<AppState>, Extension(viewer): Extension<Viewer>) -> Result<Response, UiError> {
    let rows = crate::service::mirrors(&state)
        .await?
        .into_iter()
        .map(|m| {
            let images: Vec<MirrorImageRow> = m
                .images
                .iter()
                .filter(|i| viewer.may_pull(&state, &i.repository))
                .map(|i| MirrorImageRow {
                    name: format!("{}:{}", i.repository, i.tag),
                    digest: ShortDigest::new(&i.digest),
                    size: Size(i.stored_bytes),
                    pulled: i.last_pull_ms.map(When::from_ms),
                })
                .collect();
            let failing = m.last_error.as_ref().filter(|e| m.last_success_ms.is_none_or(|ok| e.at_ms > ok));
            MirrorRow {
                registry: m.registry,
                url: m.url,
                default: m.default,
                tag_ttl: span(m.tag_ttl_secs),
                retention: span(m.retention_secs),
                error: failing.map(|e| (When::from_ms(e.at_ms), e.message.clone())),
                ok: m.last_success_ms.map(When::from_ms),
                total: Size(images.iter().map(|i| i.size.0).sum()),
                images,
            }
        })
        .collect();
    render(&MirrorsPage { chrome: Chrome::new(&viewer, "Mirrors", "mirrors"), mirrors: rows })
}
