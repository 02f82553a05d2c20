//! Progress events of a staging, streamed to clients as NDJSON.

use oci::Digest;
use serde::{Deserialize, Serialize};

/// One step of a staging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The image is resolved and the plan made.
    Planned { digest: Digest, download: u64, reuse: u64 },
    /// A blob download started.
    BlobStarted { digest: Digest, size: u64 },
    /// Bytes of a blob received so far.
    BlobProgress { digest: Digest, bytes: u64 },
    /// A blob is stored and verified.
    BlobDone { digest: Digest, size: u64 },
    /// A blob was already stored (or downloaded by a concurrent staging).
    BlobReused { digest: Digest, size: u64 },
    /// Something the staging left out without failing (referrers it could not copy).
    Warning { message: String },
}
