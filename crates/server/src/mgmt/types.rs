//! The management API's request and response bodies, defined once: the server builds its
//! answers from them and the CLI (`wharfage stage/apps/gc`) and the tests read answers into
//! them, so a renamed field is a compile error on both sides, not a silent `null`.

use std::fmt;

use oci::AppId;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

pub use auth::PullCredentials;
pub use stage::Event as StagingProgress;
pub use store::{GcReport, Removed, StagingRecord};

/// `POST /api/v1/stagings`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingRequest {
    /// The image to stage, as users write it (`ghcr.io/o/app:v1`).
    pub source: String,
    /// The platform's id of the app; the image is pinned under `apps/<app>`.
    pub app: String,
    /// `os/arch[/variant]`, or `all` to keep every platform of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Signatures, SBOMs and attestations of the image: `copy` them when found (the
    /// default; a failure becomes a warning), `require` them to be copied, or `skip` them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<stage::ReferrersPolicy>,
    /// For this staging only: never stored, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UpstreamCredentials>,
}

/// Credentials for the upstream registry: `{"username", "password"}` or `{"token"}`. Wiped
/// from memory when dropped; `Debug` shows no secret.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl UpstreamCredentials {
    /// Moves the secrets into the upstream client's zeroising credentials.
    pub fn take(mut self) -> Result<upstream::Credentials, String> {
        match (self.username.take(), self.password.take(), self.token.take()) {
            (Some(u), Some(p), None) => Ok(upstream::Credentials::basic(u, p)),
            (None, None, Some(t)) => Ok(upstream::Credentials::token(t)),
            (u, p, t) => {
                for mut s in [u, p, t].into_iter().flatten() {
                    s.zeroize();
                }
                Err("credentials must be {\"username\", \"password\"} or {\"token\"}".to_string())
            }
        }
    }
}

impl Drop for UpstreamCredentials {
    fn drop(&mut self) {
        for s in [&mut self.username, &mut self.password, &mut self.token].into_iter().flatten() {
            s.zeroize();
        }
    }
}

impl fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamCredentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A staging as the API shows it: the stored record and the pinned image reference that
/// scale-ups pull (`<registry host>/apps/<app>@<digest>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingView {
    #[serde(flatten)]
    pub record: StagingRecord,
    pub image: String,
    /// Only in the answer to the staging that minted them: `pull` on this app's repository,
    /// for the platform to keep beside `image`. Never stored in the clear, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_credentials: Option<PullCredentials>,
}

/// One line of the NDJSON stream of `POST /api/v1/stagings` with
/// `Accept: application/x-ndjson`: progress, then exactly one result or error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StagingLine {
    Progress(StagingProgress),
    Outcome(StagingOutcome),
}

/// How a streamed staging ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StagingOutcome {
    /// Boxed: a view is large beside the other lines of the stream.
    Result(Box<StagingView>),
    Error(StagingFailure),
}

/// A streamed staging's failure: the status and code the same request would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingFailure {
    pub status: u16,
    pub code: MgmtCode,
    pub message: String,
}

/// The codes of the management API's errors (`{"errors":[{"code",...}]}`, and a streamed
/// staging's failure): what a platform or the CLI acts on, besides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MgmtCode {
    BadRequest,
    Unauthorized,
    Denied,
    NotFound,
    TooManyUnpins,
    TooManyRequests,
    /// The store is down, or a collection kept removing what a staging needed: retry.
    StorageUnavailable,
    /// A feature this server does not offer (staging without a stager).
    Unavailable,
    Internal,
    /// The upstream host policy refuses the source.
    SourceRefused,
    UpstreamUnauthorized,
    UpstreamDenied,
    UpstreamTimeout,
    UpstreamContentInvalid,
    UpstreamUnreachable,
    /// The upstream's TLS does not work for wharfage: an untrusted certificate, or plain HTTP
    /// where HTTPS was expected. Retrying does not help; the message names the setting.
    UpstreamTls,
    /// A code this client does not know (a newer server's).
    #[serde(other)]
    Other,
}

impl MgmtCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MgmtCode::BadRequest => "BAD_REQUEST",
            MgmtCode::Unauthorized => "UNAUTHORIZED",
            MgmtCode::Denied => "DENIED",
            MgmtCode::NotFound => "NOT_FOUND",
            MgmtCode::TooManyUnpins => "TOO_MANY_UNPINS",
            MgmtCode::TooManyRequests => "TOO_MANY_REQUESTS",
            MgmtCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            MgmtCode::Unavailable => "UNAVAILABLE",
            MgmtCode::Internal => "INTERNAL",
            MgmtCode::SourceRefused => "SOURCE_REFUSED",
            MgmtCode::UpstreamUnauthorized => "UPSTREAM_UNAUTHORIZED",
            MgmtCode::UpstreamDenied => "UPSTREAM_DENIED",
            MgmtCode::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            MgmtCode::UpstreamContentInvalid => "UPSTREAM_CONTENT_INVALID",
            MgmtCode::UpstreamUnreachable => "UPSTREAM_UNREACHABLE",
            MgmtCode::UpstreamTls => "UPSTREAM_TLS",
            MgmtCode::Other => "OTHER",
        }
    }
}

impl fmt::Display for MgmtCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app in `GET /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSummary {
    pub app: AppId,
    pub current: StagingView,
    pub stagings_count: usize,
}

/// `GET /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppSummary>,
}

/// `GET /api/v1/apps/{app}`: the current staging and every staging, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppDetail {
    pub app: AppId,
    pub current: StagingView,
    pub stagings: Vec<StagingView>,
}

/// `DELETE /api/v1/apps/{app}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpinned {
    pub app: AppId,
    pub unpinned_stagings: u64,
}

/// `DELETE /api/v1/apps/{app}/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub app: AppId,
    pub revoked_credentials: u64,
}

/// `PUT /api/v1/apps/live`: the apps that still exist; every other app is unpinned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSyncRequest {
    pub apps: Vec<String>,
    /// Allow unpinning more than half of the apps.
    #[serde(default)]
    pub force: bool,
}

/// The answer to a live sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSyncAnswer {
    pub unpinned: Vec<AppId>,
    pub kept: usize,
}

/// `POST /api/v1/gc`; its answer is a [`GcReport`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    #[serde(default)]
    pub dry_run: bool,
}

/// Every error body of both APIs: `{"errors": [{"code", "message", "detail"?}]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub errors: Vec<ErrorEntry>,
}

/// One error of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug() {
        let c = UpstreamCredentials { username: Some("ci".into()), password: Some("hunter2".into()), token: None };
        let shown = format!("{c:?}");
        assert!(shown.contains("ci") && !shown.contains("hunter2"), "{shown}");
        let t = UpstreamCredentials { username: None, password: None, token: Some("s3cret".into()) };
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(UpstreamCredentials { username: Some("u".into()), password: None, token: None }.take().is_err());
    }

    #[test]
    fn stream_lines_read_back() {
        let progress: StagingLine = serde_json::from_str(
            r#"{"event":"blob_progress","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","bytes":5}"#,
        )
        .unwrap();
        assert!(matches!(progress, StagingLine::Progress(StagingProgress::BlobProgress { bytes: 5, .. })));
        let failure: StagingLine =
            serde_json::from_str(r#"{"event":"error","status":504,"code":"UPSTREAM_TIMEOUT","message":"m"}"#).unwrap();
        assert!(matches!(failure, StagingLine::Outcome(StagingOutcome::Error(StagingFailure { status: 504, .. }))));
    }
}

/// `GET /api/v1/mirrors`: every mirrored registry, its upstream's state and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorList {
    pub mirrors: Vec<MirrorView>,
}

/// One mirrored registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorView {
    pub registry: String,
    pub url: String,
    pub default: bool,
    pub tag_ttl_secs: u64,
    pub retention_secs: u64,
    /// The last upstream failure seen by this replica, if any since it started.
    pub last_error: Option<MirrorError>,
    /// When this replica last fetched from the upstream successfully (Unix ms).
    pub last_success_ms: Option<u64>,
    /// The images held, by tag.
    pub images: Vec<MirroredImage>,
}

/// An upstream failure of a mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorError {
    pub at_ms: u64,
    pub message: String,
}

/// A tagged image a mirror holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredImage {
    /// The repository as stored and named in access rules (`docker.io/library/redis`).
    pub repository: String,
    pub tag: String,
    pub digest: oci::Digest,
    /// Bytes stored for it: the manifest and the blobs of it that were pulled.
    pub stored_bytes: u64,
    /// The last recorded pull (Unix ms; recorded at most hourly).
    pub last_pull_ms: Option<u64>,
}
