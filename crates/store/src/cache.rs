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

/// A cache of mutable pointers (tags, links). It holds anything only for an exclusive store:
/// on a shared one it is empty by construction and every call is a no-op, so no code path,
/// nor a pointer kind added later, can forget to check that the store is exclusive.
pub(crate) struct PointerCache<K, V>(Option<Qc<K, V>>);

impl<K: Eq + std::hash::Hash + Clone, V: Clone> PointerCache<K, V> {
    fn new(exclusive: bool, capacity: usize) -> Self {
        PointerCache(exclusive.then(|| Qc::new(capacity)))
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.0.as_ref()?.get(k)
    }

    pub(crate) fn insert(&self, k: K, v: V) {
        if let Some(c) = &self.0 {
            c.insert(k, v);
        }
    }

    pub(crate) fn remove(&self, k: &K) {
        if let Some(c) = &self.0 {
            c.remove(k);
        }
    }
}

pub(crate) struct Cache {
    /// Manifest bytes by digest (immutable), bounded to 32 MiB.
    pub manifests: Qc<Digest, Bytes, ByLen>,
    /// Blob sizes by digest (immutable while the blob exists).
    pub blob_sizes: Qc<Digest, u64>,
    /// Exclusive stores only: tag -> digest.
    pub tags: PointerCache<(RepoName, Tag), Digest>,
    /// Exclusive stores only: manifest links -> media type.
    pub manifest_links: PointerCache<(RepoName, Digest), Arc<str>>,
    /// Exclusive stores only: layer links known to exist.
    pub layer_links: PointerCache<(RepoName, Digest), ()>,
    /// Whether this process owns the store (the pointer caches hold anything).
    pub exclusive: bool,
}

impl Cache {
    pub(crate) fn new(exclusive: bool) -> Self {
        Cache {
            // Capacities are entry counts; tables are allocated up front, so they stay modest
            // to keep an idle registry small.
            manifests: Qc::with_weighter(4096, 32 << 20, ByLen),
            blob_sizes: Qc::new(16384),
            tags: PointerCache::new(exclusive, 4096),
            manifest_links: PointerCache::new(exclusive, 4096),
            layer_links: PointerCache::new(exclusive, 16384),
            exclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_caches_hold_nothing_for_a_shared_store() {
        let key = (RepoName::parse("a/b").unwrap(), Tag::parse("v1").unwrap());
        let d = Digest::of(oci::Algorithm::Sha256, b"x");
        let shared = Cache::new(false);
        shared.tags.insert(key.clone(), d.clone());
        assert_eq!(shared.tags.get(&key), None, "a replica must read tags from the store");
        let exclusive = Cache::new(true);
        exclusive.tags.insert(key.clone(), d.clone());
        assert_eq!(exclusive.tags.get(&key), Some(d));
        exclusive.tags.remove(&key);
        assert_eq!(exclusive.tags.get(&key), None);
    }
}
