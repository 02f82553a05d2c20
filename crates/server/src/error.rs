//! The server's error type and the one place errors become OCI JSON error responses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use oci::{ErrorCode, ParseError};
use store::StoreError;

/// An error answered to a client in the spec's JSON form.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Overrides the code's usual status (e.g. 413 for an oversized manifest).
    pub status: Option<StatusCode>,
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), status: None, detail: None }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        error_response(status, self.code.as_str(), &self.message, self.detail)
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

/// Handler result.
pub type ApiResult<T = Response> = Result<T, ApiError>;
