//! The storage model of wharfage over the `object_store` crate, and the only place that
//! touches `object_store` (its API moves every few months). The object store is the single
//! source of truth; key layout is in [`keys`]. Two backends exist behind one [`Store`]:
//! the local filesystem (default) and S3-compatible object stores, as one type whose methods
//! hold what differs between them (`backend.rs`); settings are given to [`StoreBuilder`].
//!
//! Immutable facts (a manifest's bytes, a blob's size) are cached in memory. Mutable pointers
//! (tags, links) are cached for good when the store is `exclusive`, i.e. one process owns it
//! and every change goes through this cache, as with a local root directory. On a shared
//! store (S3) they are cached within bounds: a removal on any replica voids every replica's
//! entries within a second (`generation.rs`), and a tag is revalidated after its TTL. Reads
//! that serve pulls may use those entries (`*_cached` methods); reads that decide what to
//! accept or remove always ask the store.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod apps;
mod backend;
mod blob_cache;
mod blobs;
mod cache;
mod error;
mod fsck;
mod gc;
mod generation;
pub mod growing;
mod health;
pub mod keys;
mod listing;
mod local;
mod manifests;
mod s3;
mod uploads;
mod write;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};

pub use access::{CredentialId, PullCredentialRecord, SigningKeyRecord};
pub use apps::{AppStagings, LiveSync, StagingId, StagingRecord};
pub use blob_cache::{BlobCacheConfig, BlobCacheStats};
pub use blobs::BlobBody;
pub use error::{Result, StoreError};
pub use fsck::{FsckReport, Problem, ProblemKind};
pub use gc::{utc_text, GcOptions, GcReport, GcRun, Kept, KeptBy, MirrorRetention, Removed};
pub use listing::{Page, Usage};
pub use manifests::StoredManifest;
pub use s3::S3Config;
pub use uploads::{UploadId, UploadLimits};

pub use oci::ByteStream;

/// How long ago an object was last written (zero for a clock that went backwards).
pub(crate) fn age(meta: &object_store::ObjectMeta) -> std::time::Duration {
    let modified: std::time::SystemTime = meta.last_modified.into();
    std::time::SystemTime::now().duration_since(modified).unwrap_or_default()
}

/// Handle to the registry's storage; cheap to clone. Opened with [`Store::builder`], or
/// [`Store::filesystem`] and [`Store::s3`] for the default settings.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The object store and the fast paths that depend on which one it is.
    backend: backend::Backend,
    cache: cache::Cache,
    /// The epoch of cached pointers, and on a shared store how it follows other replicas.
    generation: generation::Generation,
    upload_limits: UploadLimits,
    /// The upload sessions this process opened, counted against `upload_limits`.
    sessions: uploads::OpenSessions,
    /// The last write check of [`Store::ready`]: when, and its failure if it failed.
    write_check: tokio::sync::Mutex<Option<(std::time::Instant, Option<String>)>>,
}

/// How long [`Store::ready`] trusts its last write check: probes come every few seconds from
/// every load balancer and kubelet, a disk that fills or turns read-only is rarer.
pub const WRITE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the store keeps its objects.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// The local filesystem under a root directory (created if missing). The caller promises
    /// that only this process writes there.
    Filesystem(PathBuf),
    /// An S3-compatible bucket, possibly shared by several replicas.
    S3(S3Config),
}

/// Settings for a [`Store`], all applied by [`StoreBuilder::build`] before the store can be
/// shared, so none can be skipped for being set too late.
#[must_use]
pub struct StoreBuilder {
    backend: BackendConfig,
    blob_cache: Option<BlobCacheConfig>,
    upload_limits: UploadLimits,
    tag_cache_ttl: std::time::Duration,
}

/// How long a replica on a shared store serves a tag it read without asking the store
/// again, unless set otherwise.
pub const DEFAULT_TAG_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl StoreBuilder {
    /// Adds a local disk cache of the blobs read from an object store; see
    /// [`BlobCacheConfig`]. `build` refuses it on the filesystem.
    pub fn blob_cache(mut self, cfg: BlobCacheConfig) -> Self {
        self.blob_cache = Some(cfg);
        self
    }

    /// Sets the bounds on upload sessions.
    pub fn upload_limits(mut self, limits: UploadLimits) -> Self {
        self.upload_limits = limits;
        self
    }

    /// On a shared store (S3), how long a replica may answer with a tag it read before it
    /// asks the store again (with one conditional request). Zero reads every tag and link
    /// from the store on every request. Removals are seen by every replica within this TTL
    /// or one second, whichever is shorter. Ignored on the filesystem, whose one process sees
    /// every change.
    pub fn tag_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.tag_cache_ttl = ttl;
        self
    }

    /// Opens the store.
    pub fn build(self) -> Result<Store> {
        let mut backend = match &self.backend {
            BackendConfig::Filesystem(root) => backend::Backend::filesystem(root)?,
            BackendConfig::S3(cfg) => backend::Backend::s3(cfg)?,
        };
        if let Some(cfg) = &self.blob_cache {
            backend = backend.with_blob_cache(cfg)?;
        }
        let mode = if backend.exclusive() { cache::Mode::Exclusive } else { cache::Mode::Shared { tag_ttl: self.tag_cache_ttl } };
        Ok(Store {
            inner: Arc::new(Inner {
                cache: cache::Cache::new(mode),
                generation: generation::Generation::new(mode),
                backend,
                upload_limits: self.upload_limits,
                sessions: Default::default(),
                write_check: Default::default(),
            }),
        })
    }
}

impl Store {
    /// Settings for a store on `backend`, opened by [`StoreBuilder::build`].
    pub fn builder(backend: BackendConfig) -> StoreBuilder {
        StoreBuilder { backend, blob_cache: None, upload_limits: UploadLimits::default(), tag_cache_ttl: DEFAULT_TAG_CACHE_TTL }
    }

    /// A store on the local filesystem under `root` (created if missing), with the default
    /// settings. The caller promises that only this process writes to `root`.
    pub fn filesystem(root: &FsPath) -> Result<Self> {
        Self::builder(BackendConfig::Filesystem(root.to_path_buf())).build()
    }

    /// A store in an S3 bucket, with the default settings. Plain HTTP is allowed only for
    /// loopback endpoints.
    pub fn s3(cfg: &S3Config) -> Result<Self> {
        Self::builder(BackendConfig::S3(cfg.clone())).build()
    }

    /// Removes the temporary files an interrupted run left on the filesystem backend (none
    /// exist on S3, where unfinished writes are invisible); returns how many. Call once at
    /// start-up, by the process that owns the root, before it writes: any temporary file then
    /// belongs to a write that can never finish. (Not in [`Store::filesystem`], which `fsck`
    /// also uses while a server runs.)
    pub fn remove_crash_leftovers(&self) -> Result<usize> {
        self.inner.backend.clear_tmp()
    }

    /// The blob cache's contents and counters, if the store has one.
    pub fn blob_cache_stats(&self) -> Option<BlobCacheStats> {
        self.inner.backend.blob_cache().map(|c| c.stats())
    }

    /// What and where this store is, for logs.
    pub fn describe(&self) -> &str {
        self.inner.backend.describe()
    }

    /// Whether the store is shared by several processes (an object store) rather than owned
    /// by this one.
    pub fn is_shared(&self) -> bool {
        !self.inner.cache.exclusive()
    }

    /// Checks the backend answers (for readiness probes and start-up).
    pub async fn ping(&self) -> Result<()> {
        match self.os().head(&keys::ping()).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Readiness: the backend answers ([`Store::ping`]) and takes a write into `blobs/` (a
    /// small object written as every object is, then removed). The write is checked at most
    /// every [`WRITE_CHECK_EVERY`]; in between the last result stands. A store that answers
    /// reads but refuses writes (a full disk, a read-only mount, a bucket policy) is not ready:
    /// every push and staging would fail on it.
    pub async fn ready(&self) -> Result<()> {
        self.ping().await?;
        // Held across the write: concurrent probes wait for one check instead of each writing.
        let mut last = self.inner.write_check.lock().await;
        let failure = match &*last {
            Some((at, failure)) if at.elapsed() < WRITE_CHECK_EVERY => failure.clone(),
            _ => {
                let key = keys::write_probe();
                let written = match self.write_small(&key, Bytes::from_static(b"ready\n")).await {
                    Ok(()) => self.remove(&key).await,
                    Err(e) => Err(e),
                };
                let failure = written.err().map(|e| e.to_string());
                *last = Some((std::time::Instant::now(), failure.clone()));
                failure
            }
        };
        match failure {
            None => Ok(()),
            Some(reason) => Err(StoreError::Io { what: "writing into blobs/".into(), source: std::io::Error::other(reason) }),
        }
    }

    fn os(&self) -> &dyn ObjectStore {
        self.inner.backend.os()
    }

    fn cache(&self) -> &cache::Cache {
        &self.inner.cache
    }

    /// Reads a small object whole; `None` when absent.
    async fn read_small(&self, key: &object_store::path::Path) -> Result<Option<Bytes>> {
        match self.os().get(key).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an object exists.
    async fn exists(&self, key: &object_store::path::Path) -> Result<bool> {
        match self.os().head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; absent objects are fine (deletes are idempotent).
    async fn remove(&self, key: &object_store::path::Path) -> Result<()> {
        match self.os().delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a small object whole.
    /// On the filesystem the write is durable when this returns (see `local.rs`).
    async fn write_small(&self, key: &object_store::path::Path, bytes: Bytes) -> Result<()> {
        self.inner.backend.write_small(key, bytes).await
    }

    /// Writes a secret (a token signing key): owner-only on the filesystem.
    async fn write_private(&self, key: &object_store::path::Path, bytes: Bytes) -> Result<()> {
        self.inner.backend.write_private(key, bytes).await
    }

    /// Writes a marker that needs no durability (see `local::Durability::Volatile`).
    async fn write_marker(&self, key: &object_store::path::Path) -> Result<()> {
        self.inner.backend.write_marker(key).await
    }

    /// Renames an object; on the filesystem durably (the source is durable already).
    async fn rename(&self, from: &object_store::path::Path, to: &object_store::path::Path) -> Result<()> {
        self.inner.backend.rename(from, to).await
    }
}
