//! The staging engine's one error type, with the HTTP status and code a platform acts on.

use store::StoreError;
use upstream::UpstreamError;

/// Why a staging failed. Nothing half-staged is visible after any of these.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("the image {image} has no manifest for platform {wanted}; it has: {available}")]
    NoPlatform { image: String, wanted: String, available: String },
    #[error("{image} is not usable: {reason}")]
    Unusable { image: String, reason: String },
    #[error("upstream bytes of {what} do not match their digest: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("storage: {0}")]
    Store(StoreError),
    /// The failure of a download shared with another staging.
    #[error("{message}")]
    Shared { status: u16, message: String },
}

impl StageError {
    /// The HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            StageError::BadRequest(_) => 400,
            StageError::NoPlatform { .. } => 404,
            StageError::Unusable { .. } | StageError::Corrupt { .. } => 422,
            StageError::Upstream(e) => match e {
                UpstreamError::Unauthorized { .. } | UpstreamError::CredentialsRequired { .. } => 401,
                UpstreamError::Denied { .. } | UpstreamError::Refused { .. } => 403,
                UpstreamError::NotFound { .. } => 404,
                UpstreamError::Timeout { .. } => 504,
                UpstreamError::DigestMismatch { .. } | UpstreamError::SizeMismatch { .. } | UpstreamError::Schema1 { .. } => 422,
                UpstreamError::Config(_) => 500,
                UpstreamError::Unreachable { .. } | UpstreamError::Status { .. } | UpstreamError::Protocol { .. } => 502,
            },
            StageError::Shared { status, .. } => *status,
            StageError::Store(e) if e.is_client_error() => 500,
            StageError::Store(_) => 503,
        }
    }

    /// Whether the staging lost a race with garbage collection: it relied on a blob that a
    /// collection was removing (or removed between two looks). Nobody's fault; a new attempt
    /// succeeds once that collection is done.
    pub fn is_gc_race(&self) -> bool {
        matches!(self, StageError::Store(StoreError::BeingCollected(_) | StoreError::BlobUnknown(_)))
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        if let StageError::Upstream(UpstreamError::Refused { .. }) = self {
            return "SOURCE_REFUSED";
        }
        match self.status() {
            400 => "BAD_REQUEST",
            401 => "UPSTREAM_UNAUTHORIZED",
            403 => "UPSTREAM_DENIED",
            404 => "NOT_FOUND",
            422 => "UPSTREAM_CONTENT_INVALID",
            502 => "UPSTREAM_UNREACHABLE",
            504 => "UPSTREAM_TIMEOUT",
            503 => "STORAGE_UNAVAILABLE",
            _ => "INTERNAL",
        }
    }
}

impl From<StoreError> for StageError {
    /// A store error may carry an upstream failure that happened while streaming a blob in.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Body(io) => match io.into_inner().map(|inner| inner.downcast::<UpstreamError>()) {
                Some(Ok(up)) => StageError::Upstream(*up),
                Some(Err(other)) => StageError::Upstream(UpstreamError::Unreachable { registry: "upstream".into(), detail: other.to_string() }),
                None => StageError::Upstream(UpstreamError::Unreachable { registry: "upstream".into(), detail: "transfer failed".into() }),
            },
            StoreError::DigestMismatch { expected, actual } => {
                StageError::Corrupt { what: format!("blob {expected}"), detail: format!("the bytes received hash to {actual}") }
            }
            other => StageError::Store(other),
        }
    }
}
