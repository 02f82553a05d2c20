//! The staging engine's one error type. It knows whose fault a failure is, not HTTP: the
//! server maps it to statuses and codes (`server/src/error.rs`).

use store::StoreError;
use upstream::UpstreamError;

/// Why a staging failed. Nothing half-staged is visible after any of these.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
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
    /// The failure of a download shared by several stagings (each sees the same error).
    #[error("{0}")]
    Shared(std::sync::Arc<StageError>),
}

impl StageError {
    /// Whether the staging lost a race with garbage collection: it relied on a blob that a
    /// collection was removing (or removed between two looks). Nobody's fault; a new attempt
    /// succeeds once that collection is done. Seen through a shared download's failure too.
    pub fn is_gc_race(&self) -> bool {
        match self {
            StageError::Store(StoreError::BeingCollected(_) | StoreError::BlobUnknown(_)) => true,
            StageError::Shared(inner) => inner.is_gc_race(),
            _ => false,
        }
    }

    /// The error itself, looking through a shared download's failure.
    pub fn cause(&self) -> &StageError {
        match self {
            StageError::Shared(inner) => inner.cause(),
            other => other,
        }
    }
}

impl From<StoreError> for StageError {
    /// A store error may carry an upstream failure that happened while streaming a blob in.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Body(io) => match io.into_inner().map(|inner| inner.downcast::<UpstreamError>()) {
                Some(Ok(up)) => StageError::Upstream(*up),
                Some(Err(other)) => {
                    StageError::Upstream(UpstreamError::Unreachable { registry: "upstream".into(), detail: other.to_string() })
                }
                None => StageError::Upstream(UpstreamError::Unreachable { registry: "upstream".into(), detail: "transfer failed".into() }),
            },
            StoreError::DigestMismatch { expected, actual } => {
                StageError::Corrupt { what: format!("blob {expected}"), detail: format!("the bytes received hash to {actual}") }
            }
            other => StageError::Store(other),
        }
    }
}
