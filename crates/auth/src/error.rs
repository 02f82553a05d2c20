//! The auth crate's one error type. It knows no HTTP; the server maps it.

/// Why a caller was not let in, or why access control could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or a pull credential that is revoked or whose staging
    /// is no longer kept. One variant for all: the answer must not tell which.
    #[error("invalid user name or password")]
    BadCredentials,
    /// Too many failed logins from this client address.
    #[error("too many failed logins from this address; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// A bearer or refresh token that is malformed, forged, expired or not for us.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A request to the token endpoint that is malformed (names the bad part).
    #[error("{0}")]
    BadRequest(String),
    /// Configuration that cannot work (names the file, line or key).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
