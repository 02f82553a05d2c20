//! Bounded in-memory caches. Immutable facts (manifest bytes, blob sizes) are always cached.
//! Mutable pointers (tags, links) are cached according to the store's [`Mode`]:
//! - an *exclusive* store (the filesystem: one process, every change passes through here)
//!   caches them for as long as they fit, and every write path updates or evicts them;
//! - a *shared* store (S3: replicas) caches links and tags too, but each entry carries the
//!   cache *epoch* it was read in (`generation.rs`): deletes on any replica end the epoch
//!   within a bound, and tags also expire after their TTL. With a TTL of zero a shared store
//!   caches no pointer at all.
//!
//! Only positive facts are cached ("linked", "points at"); an absent link or tag is always
//! read from the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// What a pointer entry costs in memory, roughly: its repository name, plus a digest or tag
/// (up to 128 characters) and the entry's own fields.
#[derive(Clone)]
pub(crate) struct ByKey;

impl<K, V> Weighter<(RepoName, K), V> for ByKey {
    fn weight(&self, key: &(RepoName, K), _: &V) -> u64 {
        key.0.as_str().len() as u64 + 200
    }
}

/// How the store may cache mutable pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One process owns the store: pointers are cached until evicted.
    Exclusive,
    /// Replicas share the store: pointers are cached per epoch, tags at most `tag_ttl`
    /// (zero: nothing is cached).
    Shared { tag_ttl: Duration },
}

impl Mode {
    /// Whether tags and links are cached at all.
    pub(crate) fn caches_pointers(self) -> bool {
        match self {
            Mode::Exclusive => true,
            Mode::Shared { tag_ttl } => !tag_ttl.is_zero(),
        }
    }
}

/// One cached pointer: the value, the epoch it was read in, and when its read started.
#[derive(Clone)]
pub(crate) struct Entry<V> {
    pub value: V,
    pub epoch: u64,
    pub read_at: Instant,
}

/// A cache of mutable pointers (tags, links), bounded by bytes. Empty by construction when
/// the mode caches nothing, so every call is then a no-op and no code path can forget it.
pub(crate) struct PointerCache<K, V>(Option<Qc<K, Entry<V>, ByKey>>);

impl<K: Eq + std::hash::Hash + Clone, V: Clone> PointerCache<K, V>
where
    ByKey: Weighter<K, Entry<V>>,
{
    fn new(enabled: bool, items: usize, bytes: u64) -> Self {
        PointerCache(enabled.then(|| Qc::with_weighter(items, bytes, ByKey)))
    }

    /// The entry for `k`, of whatever epoch and age: the caller decides whether it may answer.
    pub(crate) fn entry(&self, k: &K) -> Option<Entry<V>> {
        self.0.as_ref()?.get(k)
    }

    /// The value for `k` if it was read in `epoch`.
    pub(crate) fn get(&self, k: &K, epoch: u64) -> Option<V> {
        self.entry(k).filter(|e| e.epoch == epoch).map(|e| e.value)
    }

    /// Records `v`, read (or written) by an operation that started at `read_at` when the
    /// epoch was `epoch`: taken *before* the store was asked, so that a delete that ends the
    /// epoch meanwhile makes the entry void rather than current.
    pub(crate) fn insert(&self, k: K, v: V, epoch: u64, read_at: Instant) {
        if let Some(c) = &self.0 {
            c.insert(k, Entry { value: v, epoch, read_at });
        }
    }

    pub(crate) fn remove(&self, k: &K) {
        if let Some(c) = &self.0 {
            c.remove(k);
        }
    }
}

/// A tag as cached: its digest, and the tag object's ETag for a conditional revalidation.
#[derive(Clone)]
pub(crate) struct TagEntry {
    pub digest: Digest,
    pub etag: Option<Arc<str>>,
}

pub(crate) struct Cache {
    /// Manifest bytes by digest (immutable), bounded to 32 MiB.
    pub manifests: Qc<Digest, Bytes, ByLen>,
    /// Blob sizes by digest (immutable while the blob exists).
    pub blob_sizes: Qc<Digest, u64>,
    /// tag -> digest.
    pub tags: PointerCache<(RepoName, Tag), TagEntry>,
    /// Manifest links -> media type.
    pub manifest_links: PointerCache<(RepoName, Digest), Arc<str>>,
    /// Layer links known to exist.
    pub layer_links: PointerCache<(RepoName, Digest), ()>,
    pub mode: Mode,
}

impl Cache {
    pub(crate) fn new(mode: Mode) -> Self {
        let pointers = mode.caches_pointers();
        Cache {
            // Item counts size the tables allocated up front, so they stay modest to keep an
            // idle registry small; the byte bounds are what the caches may grow to.
            manifests: Qc::with_weighter(4096, 32 << 20, ByLen),
            blob_sizes: Qc::new(16384),
            tags: PointerCache::new(pointers, 4096, 4 << 20),
            manifest_links: PointerCache::new(pointers, 4096, 4 << 20),
            layer_links: PointerCache::new(pointers, 16384, 16 << 20),
            mode,
        }
    }

    /// Whether this process owns the store, so that its cached pointers are the truth.
    pub(crate) fn exclusive(&self) -> bool {
        self.mode == Mode::Exclusive
    }

    /// How long a cached tag may answer: forever on an exclusive store.
    pub(crate) fn tag_ttl(&self) -> Duration {
        match self.mode {
            Mode::Exclusive => Duration::MAX,
            Mode::Shared { tag_ttl } => tag_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_store_with_no_ttl_caches_no_pointer() {
        let key = (RepoName::parse("a/b").unwrap(), Tag::parse("v1").unwrap());
        let d = Digest::of(oci::Algorithm::Sha256, b"x");
        let entry = TagEntry { digest: d.clone(), etag: None };
        let now = Instant::now();
        let uncached = Cache::new(Mode::Shared { tag_ttl: Duration::ZERO });
        uncached.tags.insert(key.clone(), entry.clone(), 0, now);
        assert!(uncached.tags.entry(&key).is_none(), "--tag-cache-ttl 0 must read every tag from the store");
        let shared = Cache::new(Mode::Shared { tag_ttl: Duration::from_secs(1) });
        shared.tags.insert(key.clone(), entry.clone(), 3, now);
        assert_eq!(shared.tags.get(&key, 3).map(|e| e.digest), Some(d.clone()));
        assert!(shared.tags.get(&key, 4).is_none(), "an entry of an ended epoch must not answer");
        let exclusive = Cache::new(Mode::Exclusive);
        exclusive.tags.insert(key.clone(), entry, 0, now);
        assert_eq!(exclusive.tags.get(&key, 0).map(|e| e.digest), Some(d));
        exclusive.tags.remove(&key);
        assert!(exclusive.tags.get(&key, 0).is_none());
    }
}
