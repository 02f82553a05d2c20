//! Bounded in-memory caches. Immutable facts are always cached; mutable pointers only for an
//! exclusive store (see the crate docs), and every write path updates or evicts them.

use std::sync::Arc;

use bytes::Bytes;
use oci::{Digest, RepoName, Tag};
use quick_cache::sync::Cache as Qc;
use quick_cache::Weighter;

#[derive(Clone)]
pub(crate) struct ByLen;

impl Weighter<Digest, Bytes> for ByLen {
    fn weight(&self, _: &Digest, v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

pub(crate) struct Cache {
    /// Manifest bytes by digest (immutable), bounded to 32 MiB.
    pub manifests: Qc<Digest, Bytes, ByLen>,
    /// Blob sizes by digest (immutable while the blob exists).
    pub blob_sizes: Qc<Digest, u64>,
    /// Exclusive stores only: tag -> digest.
    pub tags: Qc<(RepoName, Tag), Digest>,
    /// Exclusive stores only: manifest links -> media type.
    pub manifest_links: Qc<(RepoName, Digest), Arc<str>>,
    /// Exclusive stores only: layer links known to exist.
    pub layer_links: Qc<(RepoName, Digest), ()>,
}

impl Cache {
    pub(crate) fn new() -> Self {
        Cache {
            // Capacities are entry counts; tables are allocated up front, so they stay modest
            // to keep an idle registry small.
            manifests: Qc::with_weighter(4096, 32 << 20, ByLen),
            blob_sizes: Qc::new(16384),
            tags: Qc::new(4096),
            manifest_links: Qc::new(4096),
            layer_links: Qc::new(16384),
        }
    }
}
