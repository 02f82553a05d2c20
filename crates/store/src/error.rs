//! The store's one error type. Each variant says whose fault it is (`is_client_error`).

use oci::{Digest, ErrorCode};

/// Anything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} is not stored")]
    BlobUnknown(Digest),
    #[error("upload session {0} does not exist (finished, cancelled or never started)")]
    UploadUnknown(String),
    #[error("upload session {id}: chunk starts at byte {got} but the session holds {expected} bytes")]
    UploadOffset { id: String, expected: u64, got: u64 },
    #[error("too many open upload sessions {scope} (at most {limit}): finish or cancel some, or wait for idle ones to expire")]
    TooManyUploads { scope: String, limit: usize },
    #[error("content does not match digest {expected}: its digest is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content length is {actual} bytes but {expected} were declared")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("reading the request body failed: {0}")]
    Body(std::io::Error),
    #[error("stored object {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("blob {0} is being removed by garbage collection: push it again")]
    BeingCollected(Digest),
    #[error("local storage: {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the live list would unpin {unpin} of {of} apps; send \"force\": true if that is intended")]
    TooManyUnpins { unpin: usize, of: usize },
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("storage backend error: {0}")]
    Backend(#[from] object_store::Error),
}

impl StoreError {
    /// The OCI error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::BlobUnknown(_) | StoreError::BeingCollected(_) => ErrorCode::BlobUnknown,
            StoreError::UploadUnknown(_) => ErrorCode::BlobUploadUnknown,
            StoreError::UploadOffset { .. } => ErrorCode::RangeInvalid,
            StoreError::TooManyUploads { .. } => ErrorCode::TooManyRequests,
            StoreError::TooManyUnpins { .. } => ErrorCode::Denied,
            StoreError::DigestMismatch { .. } => ErrorCode::DigestInvalid,
            StoreError::SizeMismatch { .. } => ErrorCode::SizeInvalid,
            StoreError::Body(_) => ErrorCode::BlobUploadInvalid,
            StoreError::Corrupt { .. } | StoreError::Io { .. } | StoreError::Config(_) | StoreError::Backend(_) => ErrorCode::Unavailable,
        }
    }

    /// True when the client sent something wrong; false when the store itself failed.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, StoreError::Corrupt { .. } | StoreError::Io { .. } | StoreError::Config(_) | StoreError::Backend(_))
    }
}

impl StoreError {
    /// A local file operation that failed, naming what was being done.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io { what: what.into(), source }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
