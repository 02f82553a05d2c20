//! The upstream crate's one error type. Each variant knows whose fault it is and whether a
//! retry may help.

/// What can go wrong talking to an upstream registry. Messages name the registry and the
/// thing requested, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{registry} refused the credentials for {what}: {detail}")]
    Unauthorized { registry: String, what: String, detail: String },
    #[error("{registry} requires credentials for {what}, and none were given")]
    CredentialsRequired { registry: String, what: String },
    #[error("{registry} denied access to {what} (403): the credentials lack pull permission")]
    Denied { registry: String, what: String },
    #[error("{what} does not exist on {registry}")]
    NotFound { registry: String, what: String },
    #[error("{registry} is unreachable: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error(
        "{registry}'s TLS certificate is not trusted ({reason}): give wharfage the CA certificate that signed it \
         (or the certificate itself, when self-signed) as a PEM file with --upstream-ca FILE"
    )]
    Untrusted { registry: String, reason: String },
    #[error(
        "{registry} answered in plain HTTP, not HTTPS: if it is meant to be reached without TLS, allow it with \
         --insecure-registry {registry} (for a mirror, write its URL with http://)"
    )]
    PlainHttp { registry: String },
    #[error("{registry} timed out: {detail}")]
    Timeout { registry: String, detail: String },
    #[error("{registry} answered {status} for {what}: {detail}")]
    Status { registry: String, what: String, status: u16, detail: String },
    #[error("{registry} serves {what} as a Docker schema 1 manifest, which is not supported: push it again with a current client")]
    Schema1 { registry: String, what: String },
    #[error("{registry} sent {what} with digest {actual}, expected {expected}")]
    DigestMismatch { registry: String, what: String, expected: String, actual: String },
    #[error("{registry} sent {what} with {actual} bytes, expected {expected}")]
    SizeMismatch { registry: String, what: String, expected: u64, actual: u64 },
    #[error("{registry} sent an invalid response for {what}: {detail}")]
    Protocol { registry: String, what: String, detail: String },
    #[error("staging from {registry} is not allowed: {reason}")]
    Refused { registry: String, reason: String },
    #[error("upstream client configuration: {0}")]
    Config(String),
}

impl UpstreamError {
    /// Whether trying again (later) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. })
            || matches!(self, UpstreamError::Status { status, .. } if *status == 429 || *status >= 500)
    }
}
