//! The operations the management API (`mgmt/`) and the console (`ui/`) share: staging,
//! unpinning, pull credentials, garbage collection and the app listings, with their
//! preconditions (an app must have a staging, staging must be enabled). They take parsed
//! input and return domain values and a [`ServiceError`]; the API answers JSON and the
//! console pages, and both map a `ServiceError` through `crate::error` only, so they always
//! agree on what a failure is.

use std::collections::HashSet;

use auth::AuthError;
use bytes::Bytes;
use oci::{AppId, ImageRef, ParseError};
use stage::{Event, Platform, StageError, StageRequest};
use store::{AppStagings, StagingRecord, StoreError};
use tokio::sync::mpsc;
use zeroize::Zeroize;

use crate::mgmt::types::{AppDetail, AppSummary, LiveSyncAnswer, StagingFailure, StagingOutcome, StagingRequest, StagingView};
use crate::AppState;

/// Why an operation could not be done, said in the domain's terms.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("app {0} has no staging")]
    NoStaging(AppId),
    #[error("staging is not enabled on this server")]
    StagingDisabled,
    /// The request is wrong; the message names what.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Something of ours failed (a task that panicked).
    #[error("{0}")]
    Internal(String),
}

pub(crate) type Result<T> = std::result::Result<T, ServiceError>;

/// Who may collect garbage, through the API and the console alike.
pub(crate) const GC_NEED: crate::access::RoleNeed = crate::access::RoleNeed::Admin;

/// A staging record as the API and the console show it, with the image reference
/// scale-ups pull from `host`.
pub(crate) fn view(record: StagingRecord, host: &str) -> StagingView {
    let image = format!("{host}/{}@{}", record.repository, record.digest);
    StagingView { record, image, pull_credentials: None }
}

/// An app's stagings; [`ServiceError::NoStaging`] when it has none.
pub(crate) async fn stagings(state: &AppState, app: &AppId) -> Result<AppStagings> {
    state.store.app_stagings(app).await?.ok_or_else(|| ServiceError::NoStaging(app.clone()))
}

/// Every app with its current staging.
pub(crate) async fn apps(state: &AppState, host: &str) -> Result<Vec<AppSummary>> {
    let mut apps = Vec::new();
    for app in state.store.apps().await? {
        if let Some(s) = state.store.app_stagings(&app).await? {
            let stagings_count = s.history.len();
            apps.push(AppSummary { app, current: view(s.current().clone(), host), stagings_count });
        }
    }
    Ok(apps)
}

/// One app: the current staging and the history, newest first.
pub(crate) async fn app(state: &AppState, app: &AppId, host: &str) -> Result<AppDetail> {
    let s = stagings(state, app).await?;
    let current = view(s.current().clone(), host);
    let stagings = s.history.into_iter().map(|r| view(r, host)).collect();
    Ok(AppDetail { app: app.clone(), current, stagings })
}

/// Every mirror, its upstream's state and its tagged images (none when nothing is mirrored).
pub(crate) async fn mirrors(state: &AppState) -> Result<Vec<crate::mgmt::types::MirrorView>> {
    match &state.mirrors {
        Some(m) => Ok(m.list(&state.store).await?),
        None => Ok(Vec::new()),
    }
}

/// Unpins every staging of an app; returns how many ([`ServiceError::NoStaging`] for none).
pub(crate) async fn unpin(state: &AppState, app: &AppId) -> Result<u64> {
    unpin_by(state, app, "request").await
}

/// [`unpin`], with what asked for it in the audit line (`request`: an unpin of that app;
/// `live_sync`: the app was missing from a live list).
async fn unpin_by(state: &AppState, app: &AppId, via: &'static str) -> Result<u64> {
    // Unpinning counts the records it removes: none means the app had no staging (reading
    // every record first only to see whether there is one would list and parse them twice).
    let unpinned_stagings = state.store.unpin_app(app).await?;
    forget(state, app);
    if unpinned_stagings == 0 {
        return Err(ServiceError::NoStaging(app.clone()));
    }
    tracing::info!(target: "wharfage::audit", event = "app_unpinned", app = %app, unpinned_stagings, via, "app unpinned; its pull credentials are revoked");
    Ok(unpinned_stagings)
}

/// Unpins every app not in `live` (the store refuses more than half without `force`).
pub(crate) async fn sync_live(state: &AppState, live: &[String], force: bool) -> Result<LiveSyncAnswer> {
    let live = live.iter().map(|a| AppId::parse(a)).collect::<std::result::Result<HashSet<_>, _>>()?;
    let plan = state.store.live_sync_plan(&live, force).await?;
    let mut unpinned = Vec::with_capacity(plan.unpinned.len());
    for app in plan.unpinned {
        match unpin_by(state, &app, "live_sync").await {
            Ok(_) => unpinned.push(app),
            // Unpinned meanwhile by another request, which logged it.
            Err(ServiceError::NoStaging(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(LiveSyncAnswer { unpinned, kept: plan.kept })
}

/// Drops what this replica remembers of an app's credentials, so a revocation holds at once.
fn forget(state: &AppState, app: &AppId) {
    if let Some(auth) = &state.access.auth {
        auth.forget_app(app);
    }
}

/// A fresh pull credential for the app's current staging.
pub(crate) async fn mint(state: &AppState, app: &AppId) -> Result<auth::PullCredentials> {
    let s = stagings(state, app).await?;
    Ok(auth::mint(&state.store, app, &s.current().staging_id).await?)
}

/// Revokes every pull credential of the app; returns how many there were.
pub(crate) async fn revoke(state: &AppState, app: &AppId) -> Result<u64> {
    revoke_except(state, app, None).await
}

/// Revokes every pull credential of the app but `keep` (a rotation's new one).
pub(crate) async fn revoke_except(state: &AppState, app: &AppId, keep: Option<&store::CredentialId>) -> Result<u64> {
    let revoked_credentials = state.store.revoke_pull_credentials_except(app, keep).await?;
    forget(state, app);
    tracing::info!(target: "wharfage::audit", event = "credentials_revoked", app = %app, revoked_credentials, "pull credentials revoked");
    Ok(revoked_credentials)
}

/// One garbage collection with the server's options.
pub(crate) async fn collect_garbage(state: &AppState, dry_run: bool) -> Result<store::GcReport> {
    let opts = store::GcOptions { dry_run, ..state.gc.clone() };
    let store = state.store.clone();
    // Its own task: a client that hangs up does not interrupt a sweep half-way.
    let report = tokio::spawn(async move { store.collect_garbage(&opts).await })
        .await
        .map_err(|e| ServiceError::Internal(format!("gc task failed: {e}")))??;
    state.metrics.gc(&report);
    Ok(report)
}

/// Reads a body that may hold a secret with `read`, then wipes it (a buffer still shared
/// elsewhere, which a collected body never is, is copied and the copy wiped).
pub(crate) fn read_and_wipe<T>(body: Bytes, read: impl FnOnce(&[u8]) -> T) -> T {
    let mut raw = body.try_into_mut().unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
    let parsed = read(&raw);
    raw.as_mut().zeroize();
    parsed
}

/// A staging request read (the API's JSON or the console's form), checked: the reference,
/// app id, platform and credentials parse.
pub(crate) fn stage_request(mut req: StagingRequest) -> Result<StageRequest> {
    let credentials = req.credentials.take().map(|c| c.take()).transpose().map_err(ServiceError::BadRequest)?;
    Ok(StageRequest {
        source: ImageRef::parse(&req.source)?,
        app: AppId::parse(&req.app)?,
        platform: req.platform.as_deref().map(Platform::parse).transpose().map_err(ServiceError::BadRequest)?,
        referrers: req.referrers.unwrap_or_default(),
        credentials,
    })
}

/// What notes a staging's failure for the console's overview (a failed staging leaves no
/// record in the store), passing the result on.
fn failure_note(
    state: &AppState,
    req: &StageRequest,
) -> impl FnOnce(std::result::Result<StagingRecord, StageError>) -> std::result::Result<StagingRecord, StageError> {
    let (console, app, source) = (state.console.clone(), req.app.to_string(), req.source.to_string());
    move |r| {
        if let Err(e) = &r {
            console.staging_failed(app, source, e.to_string());
        }
        r
    }
}

/// A staging running in its own task.
pub(crate) type Running = tokio::task::JoinHandle<std::result::Result<StagingRecord, StageError>>;

/// How a staging task ended.
pub(crate) type Outcome = std::result::Result<std::result::Result<StagingRecord, StageError>, tokio::task::JoinError>;

/// Starts a staging in its own task (a client that goes away does not cut it short), with
/// its progress events on the returned channel.
pub(crate) fn start(state: &AppState, req: StageRequest) -> Result<(mpsc::Receiver<Event>, Running)> {
    let stager = state.stager.clone().ok_or(ServiceError::StagingDisabled)?;
    let (tx, rx) = mpsc::channel::<Event>(64);
    let failed = failure_note(state, &req);
    Ok((rx, tokio::spawn(async move { failed(stager.stage(req, Some(tx)).await) })))
}

/// Runs a staging to its end in its own task, without progress events.
pub(crate) async fn stage(state: &AppState, req: StageRequest) -> Result<Outcome> {
    let stager = state.stager.clone().ok_or(ServiceError::StagingDisabled)?;
    let failed = failure_note(state, &req);
    Ok(tokio::spawn(async move { failed(stager.stage(req, None).await) }).await)
}

/// How a staging ended, counted in the metrics: its view with a fresh pull credential, or
/// the status, code and message the request answers (mapped in `crate::error`).
pub(crate) async fn finish(state: &AppState, outcome: Outcome, host: &str) -> StagingOutcome {
    let failure = |(status, code, message): (http::StatusCode, _, String)| {
        StagingOutcome::Error(StagingFailure { status: status.as_u16(), code, message })
    };
    let (status, record) = match &outcome {
        Ok(Ok(r)) => (201, Some(r)),
        Ok(Err(e)) => (crate::error::stage_status(e).0.as_u16(), None),
        Err(_) => (500, None),
    };
    state.metrics.staging(status, record);
    match outcome {
        Ok(Ok(r)) => match with_credentials(state, r, host).await {
            Ok(v) => StagingOutcome::Result(Box::new(v)),
            Err(e) => failure(crate::error::failure_parts(e)),
        },
        Ok(Err(e)) => failure(crate::error::stage_failure_parts(&e)),
        Err(e) => failure(crate::error::failure_parts(ServiceError::Internal(format!("staging task failed: {e}")))),
    }
}

/// The answer to a successful staging: its view with a fresh pull credential.
async fn with_credentials(state: &AppState, r: StagingRecord, host: &str) -> Result<StagingView> {
    // A new staging may retire an old one, and with it the old one's credentials.
    forget(state, &r.app);
    let creds = auth::mint(&state.store, &r.app, &r.staging_id).await?;
    let mut v = view(r, host);
    v.pull_credentials = Some(creds);
    Ok(v)
}

/// A channel's receiving end as a stream (progress events into a response body).
pub(crate) fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> futures::stream::BoxStream<'static, T> {
    use futures::StreamExt;
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
