//! The OCI distribution error codes and the parse error shared by this crate's parsers.

/// Why a string is not a valid digest, name, tag or manifest. Messages name the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid digest {input:?}: {reason}")]
    Digest { input: String, reason: &'static str },
    #[error("unsupported digest algorithm {0:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm(String),
    #[error("invalid repository name {input:?}: {reason}")]
    Name { input: String, reason: &'static str },
    #[error("invalid tag {input:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag { input: String },
    #[error("invalid image reference {input:?}: {reason}")]
    ImageRef { input: String, reason: &'static str },
    #[error("invalid app id {input:?}: use lowercase letters and digits separated by '.', '_' or '-' (at most 128)")]
    AppId { input: String },
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

impl ParseError {
    /// The OCI error code a registry answers with when a client sends this input.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Digest { .. } | ParseError::UnsupportedAlgorithm(_) => ErrorCode::DigestInvalid,
            ParseError::Name { .. } => ErrorCode::NameInvalid,
            ParseError::Tag { .. } => ErrorCode::ManifestInvalid,
            ParseError::Manifest(_) => ErrorCode::ManifestInvalid,
            ParseError::ImageRef { .. } | ParseError::AppId { .. } => ErrorCode::NameInvalid,
        }
    }
}

/// Error codes of the OCI distribution spec (plus the Docker ones clients rely on), each with
/// the HTTP status the spec pairs it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    RangeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unavailable,
    PaginationNumberInvalid,
}

impl ErrorCode {
    /// The code string as it appears in the JSON error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
        }
    }

    /// The HTTP status the spec pairs with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown | ErrorCode::BlobUploadUnknown | ErrorCode::ManifestUnknown | ErrorCode::NameUnknown => 404,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable => 503,
            _ => 400,
        }
    }
}
