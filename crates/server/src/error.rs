//! The server's error type and the one place errors become OCI JSON error responses.

use auth::AuthError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use oci::{ErrorCode, ParseError};
use stage::StageError;
use store::StoreError;
use upstream::UpstreamError;

use crate::mgmt::types::{MgmtCode, StagingFailure};
use crate::service::ServiceError;

/// An error answered to a client in the spec's JSON form.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Overrides the code's usual status (e.g. 413 for an oversized manifest).
    pub status: Option<StatusCode>,
    pub detail: Option<serde_json::Value>,
    /// Headers the answer needs (`WWW-Authenticate` on a 401, `Retry-After` on a 429); a
    /// list, not a `HeaderMap`, to keep the error small on every `Result` path.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), status: None, detail: None, headers: Vec::new() }
    }

    /// Adds a header to the answer (values we build; one that is not a valid header is left out).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// Same, answered with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds machine-readable detail (e.g. the missing digest).
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if !e.is_client_error() {
            tracing::error!(error = %e, "storage failure");
        }
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let e = match e {
            AuthError::Store(e) => return ApiError::from(e),
            e => e,
        };
        let (status, code) = auth_status(&e);
        let err = ApiError::new(code, e.to_string()).with_status(status);
        match e {
            AuthError::Throttled { retry_after } => err.with_header(header::RETRY_AFTER, &retry_after.to_string()),
            _ => err,
        }
    }
}

/// The status and OCI code of an access-control failure.
pub(crate) fn auth_status(e: &AuthError) -> (StatusCode, ErrorCode) {
    match e {
        AuthError::BadCredentials | AuthError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
        AuthError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests),
        AuthError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::Unsupported),
        AuthError::Store(e) => (StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), e.code()),
        AuthError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Unavailable),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = error_response(status, self.code.as_str(), &self.message, self.detail);
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// The one renderer of error bodies, `{"errors":[{"code","message","detail"?}]}`, for the
/// registry API (OCI codes) and the management API (its own codes) alike. A 503 carries
/// `Retry-After`, since it always means "the store or a collection is in the way; try again".
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str, detail: Option<serde_json::Value>) -> Response {
    let mut entry = serde_json::json!({ "code": code, "message": message });
    if let Some(d) = detail {
        entry["detail"] = d;
    }
    let mut resp = json_response(status, &serde_json::json!({ "errors": [entry] }));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

/// A JSON body with its content type.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

/// An error of the management API, which has codes of its own (not OCI's) and the same body.
#[derive(Debug)]
pub(crate) struct MgmtError {
    status: StatusCode,
    code: MgmtCode,
    message: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl MgmtError {
    pub(crate) fn new(status: StatusCode, code: MgmtCode, message: impl Into<String>) -> Self {
        MgmtError { status, code, message: message.into(), headers: Vec::new() }
    }

    /// Status, code and message, for an error reported inside a stream.
    pub(crate) fn parts(&self) -> (StatusCode, MgmtCode, &str) {
        (self.status, self.code, &self.message)
    }

    /// The caller did not prove who it is: asks for credentials.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = MgmtError::new(StatusCode::UNAUTHORIZED, MgmtCode::Unauthorized, message);
        e.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"wharfage\"")));
        e
    }

    /// The caller is known and may not do this.
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        MgmtError::new(StatusCode::FORBIDDEN, MgmtCode::Denied, message)
    }

    /// The request itself is wrong; the message names what.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        MgmtError::new(StatusCode::BAD_REQUEST, MgmtCode::BadRequest, message)
    }

    /// Something of ours failed.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        MgmtError::new(StatusCode::INTERNAL_SERVER_ERROR, MgmtCode::Internal, message)
    }
}

impl From<ParseError> for MgmtError {
    fn from(e: ParseError) -> Self {
        MgmtError::bad_request(e.to_string())
    }
}

impl From<StoreError> for MgmtError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooManyUnpins { .. } => MgmtError::new(StatusCode::CONFLICT, MgmtCode::TooManyUnpins, e.to_string()),
            e => {
                tracing::error!(error = %e, "storage failure");
                MgmtError::new(StatusCode::SERVICE_UNAVAILABLE, MgmtCode::StorageUnavailable, e.to_string())
            }
        }
    }
}

impl From<AuthError> for MgmtError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials | AuthError::InvalidToken(_) => MgmtError::unauthorized(e.to_string()),
            AuthError::Throttled { retry_after } => {
                let mut m = MgmtError::new(StatusCode::TOO_MANY_REQUESTS, MgmtCode::TooManyRequests, e.to_string());
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    m.headers.push((header::RETRY_AFTER, v));
                }
                m
            }
            AuthError::Store(e) => MgmtError::from(e),
            AuthError::BadRequest(m) => MgmtError::bad_request(m),
            AuthError::Config(m) => MgmtError::internal(m),
        }
    }
}

impl From<ServiceError> for MgmtError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NoStaging(_) => MgmtError::new(StatusCode::NOT_FOUND, MgmtCode::NotFound, e.to_string()),
            ServiceError::StagingDisabled => MgmtError::new(StatusCode::SERVICE_UNAVAILABLE, MgmtCode::Unavailable, e.to_string()),
            ServiceError::BadRequest(m) => MgmtError::bad_request(m),
            ServiceError::Parse(e) => MgmtError::from(e),
            ServiceError::Store(e) => MgmtError::from(e),
            ServiceError::Auth(e) => MgmtError::from(e),
            ServiceError::Internal(m) => MgmtError::internal(m),
        }
    }
}

impl From<StagingFailure> for MgmtError {
    fn from(f: StagingFailure) -> Self {
        MgmtError::new(StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), f.code, f.message)
    }
}

/// Status, code and message of an operation's failure, for a streamed staging's last line.
pub(crate) fn failure_parts(e: ServiceError) -> (StatusCode, MgmtCode, String) {
    let m = MgmtError::from(e);
    (m.status, m.code, m.message)
}

/// Status, code and message of a failed staging, for a streamed staging's last line.
pub(crate) fn stage_failure_parts(e: &StageError) -> (StatusCode, MgmtCode, String) {
    let (status, code) = stage_status(e);
    (status, code, e.to_string())
}

impl From<&StageError> for MgmtError {
    fn from(e: &StageError) -> Self {
        let (status, code) = stage_status(e);
        MgmtError::new(status, code, e.to_string())
    }
}

impl IntoResponse for MgmtError {
    fn into_response(self) -> Response {
        let mut resp = error_response(self.status, self.code.as_str(), &self.message, None);
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// The status and code a platform acts on for a failed staging: whose fault it was, and
/// whether trying again may help.
pub(crate) fn stage_status(e: &StageError) -> (StatusCode, MgmtCode) {
    // A staging that relied on a blob a concurrent garbage collection was removing (or
    // removed between two looks) failed for no fault of anyone and succeeds when retried.
    if e.is_gc_race() {
        return (StatusCode::SERVICE_UNAVAILABLE, MgmtCode::StorageUnavailable);
    }
    match e.cause() {
        StageError::NoPlatform { .. } => (StatusCode::NOT_FOUND, MgmtCode::NotFound),
        StageError::Unusable { .. } | StageError::Corrupt { .. } => (StatusCode::UNPROCESSABLE_ENTITY, MgmtCode::UpstreamContentInvalid),
        StageError::Upstream(u) => upstream_status(u),
        StageError::Store(s) if s.is_client_error() => (StatusCode::INTERNAL_SERVER_ERROR, MgmtCode::Internal),
        StageError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, MgmtCode::StorageUnavailable),
        // `cause()` never returns a Shared.
        StageError::Shared(_) => (StatusCode::INTERNAL_SERVER_ERROR, MgmtCode::Internal),
    }
}

fn upstream_status(e: &UpstreamError) -> (StatusCode, MgmtCode) {
    match e {
        UpstreamError::Unauthorized { .. } | UpstreamError::CredentialsRequired { .. } => {
            (StatusCode::UNAUTHORIZED, MgmtCode::UpstreamUnauthorized)
        }
        UpstreamError::Denied { .. } => (StatusCode::FORBIDDEN, MgmtCode::UpstreamDenied),
        UpstreamError::Refused { .. } => (StatusCode::FORBIDDEN, MgmtCode::SourceRefused),
        UpstreamError::NotFound { .. } => (StatusCode::NOT_FOUND, MgmtCode::NotFound),
        UpstreamError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, MgmtCode::UpstreamTimeout),
        UpstreamError::DigestMismatch { .. } | UpstreamError::SizeMismatch { .. } | UpstreamError::Schema1 { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, MgmtCode::UpstreamContentInvalid)
        }
        UpstreamError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, MgmtCode::Internal),
        // Not "retry later": the message names the setting that fixes it.
        UpstreamError::Untrusted { .. } | UpstreamError::PlainHttp { .. } => (StatusCode::BAD_GATEWAY, MgmtCode::UpstreamTls),
        UpstreamError::Unreachable { .. } | UpstreamError::Status { .. } | UpstreamError::Protocol { .. } => {
            (StatusCode::BAD_GATEWAY, MgmtCode::UpstreamUnreachable)
        }
    }
}

/// Handler result.
pub type ApiResult<T = Response> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn digest() -> oci::Digest {
        oci::Digest::of(oci::Algorithm::Sha256, b"x")
    }

    fn up(kind: &str) -> UpstreamError {
        let (registry, what, detail) = ("r.io".to_string(), "a:b".to_string(), "d".to_string());
        match kind {
            "unauthorized" => UpstreamError::Unauthorized { registry, what, detail },
            "required" => UpstreamError::CredentialsRequired { registry, what },
            "denied" => UpstreamError::Denied { registry, what },
            "refused" => UpstreamError::Refused { registry, reason: detail },
            "notfound" => UpstreamError::NotFound { registry, what },
            "timeout" => UpstreamError::Timeout { registry, detail },
            "digest" => UpstreamError::DigestMismatch { registry, what, expected: detail.clone(), actual: detail },
            "size" => UpstreamError::SizeMismatch { registry, what, expected: 1, actual: 2 },
            "schema1" => UpstreamError::Schema1 { registry, what },
            "config" => UpstreamError::Config(detail),
            "unreachable" => UpstreamError::Unreachable { registry, detail },
            "status" => UpstreamError::Status { registry, what, status: 500, detail },
            "untrusted" => UpstreamError::Untrusted { registry, reason: detail },
            "plainhttp" => UpstreamError::PlainHttp { registry },
            _ => UpstreamError::Protocol { registry, what, detail },
        }
    }

    #[test]
    fn every_upstream_failure_has_its_status() {
        for (kind, status, code) in [
            ("unauthorized", 401, "UPSTREAM_UNAUTHORIZED"),
            ("required", 401, "UPSTREAM_UNAUTHORIZED"),
            ("denied", 403, "UPSTREAM_DENIED"),
            ("refused", 403, "SOURCE_REFUSED"),
            ("notfound", 404, "NOT_FOUND"),
            ("timeout", 504, "UPSTREAM_TIMEOUT"),
            ("digest", 422, "UPSTREAM_CONTENT_INVALID"),
            ("size", 422, "UPSTREAM_CONTENT_INVALID"),
            ("schema1", 422, "UPSTREAM_CONTENT_INVALID"),
            ("config", 500, "INTERNAL"),
            ("unreachable", 502, "UPSTREAM_UNREACHABLE"),
            ("status", 502, "UPSTREAM_UNREACHABLE"),
            ("protocol", 502, "UPSTREAM_UNREACHABLE"),
            ("untrusted", 502, "UPSTREAM_TLS"),
            ("plainhttp", 502, "UPSTREAM_TLS"),
        ] {
            let (s, c) = stage_status(&StageError::Upstream(up(kind)));
            assert_eq!((s.as_u16(), c.as_str()), (status, code), "{kind}");
        }
    }

    #[test]
    fn staging_failures_have_their_status() {
        let cases = [
            (StageError::NoPlatform { image: "i".into(), wanted: "w".into(), available: "a".into() }, 404, "NOT_FOUND"),
            (StageError::Unusable { image: "i".into(), reason: "r".into() }, 422, "UPSTREAM_CONTENT_INVALID"),
            (StageError::Corrupt { what: "w".into(), detail: "d".into() }, 422, "UPSTREAM_CONTENT_INVALID"),
            (StageError::Store(StoreError::Config("c".into())), 503, "STORAGE_UNAVAILABLE"),
            (StageError::Store(StoreError::SizeMismatch { expected: 1, actual: 2 }), 500, "INTERNAL"),
            (StageError::Store(StoreError::BeingCollected(digest())), 503, "STORAGE_UNAVAILABLE"),
            (StageError::Store(StoreError::BlobUnknown(digest())), 503, "STORAGE_UNAVAILABLE"),
        ];
        for (e, status, code) in cases {
            let (s, c) = stage_status(&e);
            assert_eq!((s.as_u16(), c.as_str()), (status, code), "{e}");
        }
    }

    #[test]
    fn management_errors_have_their_status() {
        let cases = [
            (MgmtError::from(StoreError::TooManyUnpins { unpin: 3, of: 4 }), 409, "TOO_MANY_UNPINS"),
            (MgmtError::from(StoreError::Config("down".into())), 503, "STORAGE_UNAVAILABLE"),
            (MgmtError::from(oci::AppId::parse("A/B").unwrap_err()), 400, "BAD_REQUEST"),
            (MgmtError::from(&StageError::Upstream(up("refused"))), 403, "SOURCE_REFUSED"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status.as_u16(), e.code.as_str()), (status, code), "{}", e.message);
        }
    }

    #[test]
    fn a_shared_download_keeps_its_cause() {
        let lost_race = StageError::Shared(Arc::new(StageError::Store(StoreError::BeingCollected(digest()))));
        assert!(lost_race.is_gc_race(), "a shared download that lost a GC race is retried");
        assert_eq!(stage_status(&lost_race).0.as_u16(), 503);
        let timeout = StageError::Shared(Arc::new(StageError::Upstream(up("timeout"))));
        assert_eq!(stage_status(&timeout), (StatusCode::GATEWAY_TIMEOUT, MgmtCode::UpstreamTimeout));
    }

    #[test]
    fn access_errors_have_their_status_and_headers() {
        let cases = [
            (AuthError::BadCredentials, 401, "UNAUTHORIZED"),
            (AuthError::InvalidToken("expired".into()), 401, "UNAUTHORIZED"),
            (AuthError::Throttled { retry_after: 7 }, 429, "TOOMANYREQUESTS"),
            (AuthError::BadRequest("malformed Basic credentials".into()), 400, "UNSUPPORTED"),
            (AuthError::Store(StoreError::Config("down".into())), 503, "UNAVAILABLE"),
            (AuthError::Config("no key".into()), 500, "UNAVAILABLE"),
        ];
        for (e, status, code) in cases {
            let what = e.to_string();
            let api = ApiError::from(e);
            let mapped = api.code.as_str();
            let r = api.into_response();
            assert_eq!((r.status().as_u16(), mapped), (status, code), "{what}");
        }
        let r = ApiError::from(AuthError::Throttled { retry_after: 7 }).into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "7");
        let m = MgmtError::from(AuthError::BadCredentials);
        assert_eq!((m.status.as_u16(), m.code.as_str()), (401, "UNAUTHORIZED"));
        let r = m.into_response();
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_some(), "a 401 asks for credentials");
        let m = MgmtError::from(AuthError::Throttled { retry_after: 3 });
        assert_eq!((m.status.as_u16(), m.code.as_str()), (429, "TOO_MANY_REQUESTS"));
        assert_eq!(MgmtError::denied("no").status.as_u16(), 403);
    }
}
