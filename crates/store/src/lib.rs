//! The storage model of wharfage over the `object_store` crate, and the only place that
//! touches `object_store` (its API moves every few months). The object store is the single
//! source of truth; key layout is in [`keys`]. Two backends exist behind one [`Store`]:
//! the local filesystem (default) and S3-compatible object stores.
//!
//! Immutable facts (a manifest's bytes, a blob's size) are cached in memory. Mutable pointers
//! (tags, links) are cached only when the store is `exclusive`, i.e. one process owns it and
//! every change goes through this cache, as with a local root directory.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod apps;
mod blob_cache;
mod blobs;
mod cache;
mod error;
mod fsck;
mod gc;
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
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

pub use access::{CredentialId, PullCredentialRecord, SigningKeyRecord};
pub use apps::{AppStagings, LiveSync, StagingId, StagingRecord};
pub use blob_cache::{BlobCacheConfig, BlobCacheStats};
pub use blobs::BlobBody;
pub use error::{Result, StoreError};
pub use fsck::{FsckReport, Problem, ProblemKind};
pub use gc::{GcOptions, GcReport, GcRun, MirrorRetention, Removed};
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

/// Handle to the registry's storage; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    os: Arc<dyn ObjectStore>,
    /// Description for logs and errors ("filesystem /var/lib/wharfage").
    describe: String,
    /// Bytes per part when streaming into the store (S3 parts must be at least 5 MiB).
    chunk_size: usize,
    cache: cache::Cache,
    /// Set for the S3 backend.
    s3: Option<s3::S3Extra>,
    /// The root directory of the filesystem backend.
    local_root: Option<PathBuf>,
    /// A local disk cache of blobs read from a remote store.
    blob_cache: Option<Arc<blob_cache::BlobCache>>,
    upload_limits: UploadLimits,
    /// The upload sessions this process opened, counted against `upload_limits`.
    sessions: uploads::OpenSessions,
}

impl Store {
    /// A store on the local filesystem under `root` (created if missing). The caller promises
    /// that only this process writes to `root`.
    pub fn filesystem(root: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io(format!("create the storage root {}", root.display()), e))?;
        let root: PathBuf = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        // No automatic cleanup of empty directories: removing a directory while another
        // request creates a file in it fails that request ("Unable to create dir"), e.g. a
        // blob unlink racing a push into the same repository. Upload folders, the one kind
        // that would pile up, are removed when their session ends.
        let os = LocalFileSystem::new_with_prefix(&root)?;
        let mut store = Self::from_parts(Arc::new(os), format!("filesystem {}", root.display()), true);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            // Local parts have no minimum size; small ones keep a push's memory to a few MiB.
            inner.chunk_size = 1 << 20;
            inner.local_root = Some(root.clone());
        }
        Ok(store)
    }

    fn from_parts(os: Arc<dyn ObjectStore>, describe: String, exclusive: bool) -> Self {
        Store {
            inner: Arc::new(Inner {
                os,
                describe,
                chunk_size: 8 << 20,
                cache: cache::Cache::new(exclusive),
                s3: None,
                local_root: None,
                blob_cache: None,
                upload_limits: UploadLimits::default(),
                sessions: Default::default(),
            }),
        }
    }

    /// Removes the temporary files an interrupted run left on the filesystem backend (none
    /// exist on S3, where unfinished writes are invisible); returns how many. Call once at
    /// start-up, by the process that owns the root, before it writes: any temporary file then
    /// belongs to a write that can never finish. (Not in [`Store::filesystem`], which `fsck`
    /// also uses while a server runs.)
    pub fn remove_crash_leftovers(&self) -> Result<usize> {
        match &self.inner.local_root {
            Some(root) => local::clear_tmp(root),
            None => Ok(0),
        }
    }

    /// Adds a local disk cache of the blobs read from a shared (object) store; see
    /// [`BlobCacheConfig`]. Call right after opening the store.
    pub fn with_blob_cache(mut self, cfg: &BlobCacheConfig) -> Result<Self> {
        if !self.is_shared() {
            return Err(StoreError::Config(
                "a blob cache is only for object stores: the filesystem backend already reads local files".into(),
            ));
        }
        let cache = Arc::new(blob_cache::BlobCache::open(cfg)?);
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| StoreError::Config("the blob cache must be set before the store is shared".into()))?;
        inner.blob_cache = Some(cache);
        Ok(self)
    }

    /// Sets the bounds on upload sessions. Call right after opening the store.
    pub fn with_upload_limits(mut self, limits: UploadLimits) -> Result<Self> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| StoreError::Config("upload limits must be set before the store is shared".into()))?;
        inner.upload_limits = limits;
        Ok(self)
    }

    /// The blob cache's contents and counters, if the store has one.
    pub fn blob_cache_stats(&self) -> Option<BlobCacheStats> {
        self.inner.blob_cache.as_ref().map(|c| c.stats())
    }

    /// What and where this store is, for logs.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Whether the store is shared by several processes (an object store) rather than owned
    /// by this one.
    pub fn is_shared(&self) -> bool {
        !self.inner.cache.exclusive
    }

    /// Checks the backend answers (for readiness probes and start-up).
    pub async fn ping(&self) -> Result<()> {
        match self.os().head(&keys::ping()).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn os(&self) -> &dyn ObjectStore {
        self.inner.os.as_ref()
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
        match &self.inner.local_root {
            Some(root) => local::write_file(root, key, bytes, local::Durability::Synced).await,
            None => {
                self.os().put(key, bytes.into()).await?;
                Ok(())
            }
        }
    }

    /// Writes a marker that needs no durability (see `local::Durability::Volatile`).
    async fn write_marker(&self, key: &object_store::path::Path) -> Result<()> {
        match &self.inner.local_root {
            Some(root) => local::write_file(root, key, Bytes::new(), local::Durability::Volatile).await,
            None => self.write_small(key, Bytes::new()).await,
        }
    }

    /// Renames an object; on the filesystem durably (the source is durable already).
    async fn rename(&self, from: &object_store::path::Path, to: &object_store::path::Path) -> Result<()> {
        match &self.inner.local_root {
            Some(root) => local::rename(root, from, to).await,
            None => {
                self.os().rename(from, to).await?;
                Ok(())
            }
        }
    }
}
