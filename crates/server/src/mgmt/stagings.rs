//! `/api/v1/stagings`: stage an app's image, answered whole (201) or as an NDJSON stream of
//! progress ending in the result or the error.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use stage::StageRequest;

use super::json;
use super::types::{MgmtCode, StagingLine, StagingOutcome, StagingRequest};
use crate::error::MgmtError;
use crate::request::BodyError;
use crate::{service, AppState};

/// Largest staging request body: a reference, an app id and credentials fit in far less.
const MAX_STAGING_REQUEST: usize = 64 << 10;

/// Parses a staging request. The body may hold a password: it is parsed in place and wiped
/// afterwards, and the parsed credentials wipe themselves when dropped.
fn parse(body: Bytes) -> Result<StageRequest, MgmtError> {
    let parsed = service::read_and_wipe(body, |b| serde_json::from_slice::<StagingRequest>(b));
    Ok(service::stage_request(parsed.map_err(|e| MgmtError::bad_request(format!("invalid staging request: {e}")))?)?)
}

/// POST `/api/v1/stagings`: 201 with the result, or with `Accept: application/x-ndjson` a
/// stream of progress events ending in `{"event":"result",...}` or `{"event":"error",...}`.
pub(super) async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, MgmtError> {
    let body = crate::request::collect(body, MAX_STAGING_REQUEST).await.map_err(|e| match e {
        BodyError::TooLarge => MgmtError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            MgmtCode::BadRequest,
            format!("a staging request is at most {MAX_STAGING_REQUEST} bytes"),
        ),
        BodyError::Incomplete(why) => MgmtError::bad_request(format!("the request body could not be read whole: {why}")),
    })?;
    let req = parse(body)?;
    let host = state.access.registry_host(&headers);
    let streaming = headers.get("accept").and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("application/x-ndjson"));
    if streaming {
        return stream(&state, req, host);
    }
    let outcome = service::stage(&state, req).await?;
    match service::finish(&state, outcome, &host).await {
        StagingOutcome::Result(v) => Ok(json(StatusCode::CREATED, &v)),
        StagingOutcome::Error(f) => Err(MgmtError::from(f)),
    }
}

fn stream(state: &AppState, req: StageRequest, host: String) -> Result<Response, MgmtError> {
    let (rx, task) = service::start(state, req)?;
    let state = state.clone();
    let events = service::receiver_stream(rx).map(|e| line(&StagingLine::Progress(e)));
    let last = futures::stream::once(async move { line(&StagingLine::Outcome(service::finish(&state, task.await, &host).await)) });
    let body = Body::from_stream(events.chain(last).map(Ok::<_, std::convert::Infallible>));
    let mut r = body.into_response();
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/x-ndjson"));
    Ok(r)
}

fn line(v: &StagingLine) -> Bytes {
    // Our own types always serialize; an empty object keeps the stream's framing if not.
    let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    Bytes::from(s)
}
