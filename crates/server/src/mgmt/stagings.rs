//! `/api/v1/stagings`: stage an app's image, answered whole (201) or as an NDJSON stream of
//! progress ending in the result or the error.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use oci::{AppId, ImageRef};
use stage::{Event, Platform, StageError, StageRequest, Stager};
use store::StagingRecord;
use tokio::sync::mpsc;
use zeroize::Zeroize;

use super::types::{StagingFailure, StagingLine, StagingOutcome, StagingRequest, StagingView};
use super::{json, view};
use crate::error::{stage_status, MgmtError};
use crate::request::BodyError;
use crate::AppState;

/// Largest staging request body: a reference, an app id and credentials fit in far less.
const MAX_STAGING_REQUEST: usize = 64 << 10;

/// Parses a staging request. The body may hold a password: it is parsed in place and wiped
/// afterwards, and the parsed credentials wipe themselves when dropped.
fn parse(body: Bytes) -> Result<StageRequest, MgmtError> {
    let parsed = read_and_wipe(body, |b| serde_json::from_slice::<StagingRequest>(b));
    request(parsed.map_err(|e| MgmtError::bad_request(format!("invalid staging request: {e}")))?)
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
pub(crate) fn request(mut req: StagingRequest) -> Result<StageRequest, MgmtError> {
    let credentials = req.credentials.take().map(|c| c.take()).transpose().map_err(MgmtError::bad_request)?;
    Ok(StageRequest {
        source: ImageRef::parse(&req.source)?,
        app: AppId::parse(&req.app)?,
        platform: match req.platform.as_deref() {
            Some(p) => Platform::parse(p).map_err(MgmtError::bad_request)?,
            None => Platform::default(),
        },
        referrers: req.referrers.unwrap_or_default(),
        credentials,
    })
}

/// POST `/api/v1/stagings`: 201 with the result, or with `Accept: application/x-ndjson` a
/// stream of progress events ending in `{"event":"result",...}` or `{"event":"error",...}`.
pub(super) async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, MgmtError> {
    let stager = state
        .stager
        .clone()
        .ok_or_else(|| MgmtError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "staging is not enabled on this server"))?;
    let body = crate::request::collect(body, MAX_STAGING_REQUEST).await.map_err(|e| match e {
        BodyError::TooLarge => MgmtError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_REQUEST",
            format!("a staging request is at most {MAX_STAGING_REQUEST} bytes"),
        ),
        BodyError::Incomplete(why) => MgmtError::bad_request(format!("the request body could not be read whole: {why}")),
    })?;
    let req = parse(body)?;
    let host = state.access.registry_host(&headers);
    let streaming = headers.get("accept").and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("application/x-ndjson"));
    if streaming {
        return Ok(stream(stager, req, host, state.clone()));
    }
    // The staging runs in its own task: a client that goes away does not cut it short.
    let outcome = tokio::spawn(async move { stager.stage(req, None).await }).await;
    count(&state.metrics, &outcome);
    match outcome {
        Ok(Ok(r)) => Ok(json(StatusCode::CREATED, &with_credentials(&state, r, &host).await?)),
        Ok(Err(e)) => Err(MgmtError::from(&e)),
        Err(e) => Err(MgmtError::internal(format!("staging task failed: {e}"))),
    }
}

pub(crate) type Outcome = Result<Result<StagingRecord, StageError>, tokio::task::JoinError>;

fn count(metrics: &crate::Metrics, outcome: &Outcome) {
    match outcome {
        Ok(Ok(r)) => metrics.staging(201, Some(r)),
        Ok(Err(e)) => metrics.staging(stage_status(e).0.as_u16(), None),
        Err(_) => metrics.staging(500, None),
    }
}

/// The answer to a successful staging: its view with a fresh pull credential.
async fn with_credentials(state: &AppState, r: StagingRecord, host: &str) -> Result<StagingView, MgmtError> {
    // A new staging may retire an old one, and with it the old one's credentials.
    if let Some(auth) = &state.access.auth {
        auth.forget_app(&r.app);
    }
    let creds = auth::mint(&state.store, &r.app, &r.staging_id).await?;
    let mut v = view(r, host);
    v.pull_credentials = Some(creds);
    Ok(v)
}

/// Starts a staging in its own task (a client that goes away does not cut it short), with
/// its progress events on the returned channel.
pub(crate) fn start(
    stager: Stager,
    req: StageRequest,
) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<Result<StagingRecord, StageError>>) {
    let (tx, rx) = mpsc::channel::<Event>(64);
    (rx, tokio::spawn(async move { stager.stage(req, Some(tx)).await }))
}

/// How a started staging ended, counted in the metrics: its view with a fresh pull
/// credential, or the status, code and message the request would have answered.
pub(crate) async fn finish(state: &AppState, outcome: Outcome, host: &str) -> StagingOutcome {
    count(&state.metrics, &outcome);
    match outcome {
        Ok(Ok(r)) => match with_credentials(state, r, host).await {
            Ok(v) => StagingOutcome::Result(Box::new(v)),
            Err(e) => {
                let (status, code, message) = e.parts();
                StagingOutcome::Error(StagingFailure { status: status.as_u16(), code: code.into(), message: message.into() })
            }
        },
        Ok(Err(e)) => {
            let (status, code) = stage_status(&e);
            StagingOutcome::Error(StagingFailure { status: status.as_u16(), code: code.to_string(), message: e.to_string() })
        }
        Err(e) => StagingOutcome::Error(StagingFailure { status: 500, code: "INTERNAL".into(), message: e.to_string() }),
    }
}

fn stream(stager: Stager, req: StageRequest, host: String, state: AppState) -> Response {
    let (rx, task) = start(stager, req);
    let events = receiver_stream(rx).map(|e| line(&StagingLine::Progress(e)));
    let last = futures::stream::once(async move { line(&StagingLine::Outcome(finish(&state, task.await, &host).await)) });
    let body = Body::from_stream(events.chain(last).map(Ok::<_, std::convert::Infallible>));
    let mut r = body.into_response();
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/x-ndjson"));
    r
}

fn line(v: &StagingLine) -> Bytes {
    // Our own types always serialize; an empty object keeps the stream's framing if not.
    let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    Bytes::from(s)
}

pub(crate) fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> futures::stream::BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
