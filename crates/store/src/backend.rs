//! The two backends behind one [`Store`](crate::Store), as one type. Every operation goes
//! through the `ObjectStore`, except where a backend does better by itself: the filesystem
//! writes durably (`local.rs`), lists folders from directory entries and has temporary files
//! and empty directories to clean up; S3 presigns downloads, has a minimum part size, a
//! rename limit and a clock that is not ours, and may keep a local cache of its blobs. Those
//! fast paths are methods here, so the rest of the store never asks which backend it is on.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::blob_cache::{BlobCache, BlobCacheConfig};
use crate::local::{self, Durability, TempFile};
use crate::s3::Presigner;
use crate::{Result, StoreError};

/// The object store and what the backend does besides it.
pub(crate) struct Backend {
    os: Arc<dyn ObjectStore>,
    /// Description for logs and errors ("filesystem /var/lib/wharfage").
    describe: String,
    kind: Kind,
}

/// Requests in flight at once in [`Backend::ages`] on S3: each is a round trip of a few
/// milliseconds.
const BATCH_CONCURRENCY: usize = 32;

enum Kind {
    /// Owned by this process; `root` is the directory under which keys are paths.
    Filesystem { root: PathBuf },
    /// Shared by every replica on the bucket.
    S3 {
        presigner: Presigner,
        /// A local disk cache of blobs read from the bucket.
        blob_cache: Option<Arc<BlobCache>>,
    },
}

impl Backend {
    /// The filesystem under `root` (created if missing).
    pub(crate) fn filesystem(root: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io(format!("create the storage root {}", root.display()), e))?;
        let root: PathBuf = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        // No automatic cleanup of empty directories: removing a directory while another
        // request creates a file in it fails that request ("Unable to create dir"), e.g. a
        // blob unlink racing a push into the same repository. Upload folders, the one kind
        // that would pile up, are removed when their session ends.
        let os = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Backend { os: Arc::new(os), describe: format!("filesystem {}", root.display()), kind: Kind::Filesystem { root } })
    }

    /// An S3 bucket reached through `os`, with no blob cache yet (opened by `Backend::s3`).
    pub(crate) fn bucket(os: Arc<dyn ObjectStore>, describe: String, presigner: Presigner) -> Self {
        Backend { os, describe, kind: Kind::S3 { presigner, blob_cache: None } }
    }

    /// Adds a local disk cache of the bucket's blobs; refused on the filesystem.
    pub(crate) fn with_blob_cache(mut self, cfg: &BlobCacheConfig) -> Result<Self> {
        match &mut self.kind {
            Kind::S3 { blob_cache, .. } => *blob_cache = Some(Arc::new(BlobCache::open(cfg)?)),
            Kind::Filesystem { .. } => {
                return Err(StoreError::Config(
                    "a blob cache is only for object stores: the filesystem backend already reads local files".into(),
                ))
            }
        }
        Ok(self)
    }

    pub(crate) fn os(&self) -> &dyn ObjectStore {
        self.os.as_ref()
    }

    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether this process owns the store, so that mutable pointers may be cached: only
    /// the filesystem; a bucket is shared by replicas.
    pub(crate) fn exclusive(&self) -> bool {
        matches!(self.kind, Kind::Filesystem { .. })
    }

    /// Bytes per part when streaming into the store: S3 parts must be at least 5 MiB; local
    /// parts have no minimum, and small ones keep a push's memory to a few MiB.
    pub(crate) fn chunk_size(&self) -> usize {
        match self.kind {
            Kind::Filesystem { .. } => 1 << 20,
            Kind::S3 { .. } => 8 << 20,
        }
    }

    /// How much older than it is an object just written may look: object times on S3 have
    /// whole seconds.
    pub(crate) fn clock_slack(&self) -> Duration {
        match self.kind {
            Kind::Filesystem { .. } => Duration::ZERO,
            Kind::S3 { .. } => Duration::from_secs(1),
        }
    }

    /// Whether an object of `size` bytes can be moved by [`Backend::rename`]: always on the
    /// filesystem; on S3 a rename is a server-side copy, limited to 5 GiB.
    pub(crate) fn can_rename(&self, size: u64) -> bool {
        match self.kind {
            Kind::Filesystem { .. } => true,
            Kind::S3 { .. } => size <= 5 << 30,
        }
    }

    pub(crate) fn blob_cache(&self) -> Option<&Arc<BlobCache>> {
        match &self.kind {
            Kind::S3 { blob_cache, .. } => blob_cache.as_ref(),
            Kind::Filesystem { .. } => None,
        }
    }

    /// Writes a small object whole. On the filesystem the write is durable when this returns
    /// (see `local.rs`).
    pub(crate) async fn write_small(&self, key: &Key, bytes: Bytes) -> Result<()> {
        match &self.kind {
            Kind::Filesystem { root } => local::write_file(root, key, bytes, Durability::Synced).await,
            Kind::S3 { .. } => {
                self.os.put(key, bytes.into()).await?;
                Ok(())
            }
        }
    }

    /// Writes a secret whole: as [`Backend::write_small`], and on the filesystem readable by
    /// the owner only (S3 objects have no mode; the bucket's policy guards them).
    pub(crate) async fn write_private(&self, key: &Key, bytes: Bytes) -> Result<()> {
        match &self.kind {
            Kind::Filesystem { root } => local::write_file(root, key, bytes, Durability::Private).await,
            Kind::S3 { .. } => self.write_small(key, bytes).await,
        }
    }

    /// Makes a stored secret readable by its owner only, if it was not; says whether it had to.
    pub(crate) async fn make_private(&self, key: &Key) -> Result<bool> {
        match &self.kind {
            Kind::Filesystem { root } => local::make_private(root, key).await,
            Kind::S3 { .. } => Ok(false),
        }
    }

    /// Writes an empty marker that needs no durability (see `local::Durability::Volatile`).
    pub(crate) async fn write_marker(&self, key: &Key) -> Result<()> {
        self.write_volatile(key, Bytes::new()).await
    }

    /// Writes a small object whole that needs no durability: it only matters while the
    /// process that wrote it runs (on S3, every write is durable anyway).
    pub(crate) async fn write_volatile(&self, key: &Key, bytes: Bytes) -> Result<()> {
        match &self.kind {
            Kind::Filesystem { root } => local::write_file(root, key, bytes, Durability::Volatile).await,
            Kind::S3 { .. } => self.write_small(key, bytes).await,
        }
    }

    /// How long ago each object was written, in the keys' order (`None`: absent).
    pub(crate) async fn ages(&self, keys: &[Key]) -> Result<Vec<Option<Duration>>> {
        match &self.kind {
            Kind::Filesystem { root } => local::each_path(root, keys, local::age_of).await,
            Kind::S3 { .. } => {
                let heads = futures::stream::iter(keys.to_vec()).map(|k: Key| async move {
                    match self.os.head(&k).await {
                        Ok(meta) => Ok(Some(crate::age(&meta))),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(StoreError::from(e)),
                    }
                });
                heads.buffered(BATCH_CONCURRENCY).try_collect().await
            }
        }
    }

    /// Removes the objects at `keys`; absent ones are fine. S3 takes a thousand per request.
    pub(crate) async fn remove_many(&self, keys: &[Key]) -> Result<()> {
        match &self.kind {
            Kind::Filesystem { root } => local::each_path(root, keys, local::remove_path).await.map(drop),
            Kind::S3 { .. } => {
                let keys: Vec<object_store::Result<Key>> = keys.iter().cloned().map(Ok).collect();
                let mut removed = self.os.delete_stream(futures::stream::iter(keys).boxed());
                while let Some(r) = removed.next().await {
                    match r {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
        }
    }

    /// Renames an object; on the filesystem durably (the source is durable already).
    pub(crate) async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        match &self.kind {
            Kind::Filesystem { root } => local::rename(root, from, to).await,
            Kind::S3 { .. } => {
                self.os.rename(from, to).await?;
                Ok(())
            }
        }
    }

    /// A local temporary file to stream a large object into, or `None` where large objects
    /// go through a multipart upload instead.
    pub(crate) async fn temp_file(&self) -> Result<Option<TempFile>> {
        match &self.kind {
            Kind::Filesystem { root } => Ok(Some(TempFile::create(root).await?)),
            Kind::S3 { .. } => Ok(None),
        }
    }

    /// The sub-folders of a folder, sorted (empty when it does not exist).
    pub(crate) async fn folders(&self, dir: &Key) -> Result<Vec<String>> {
        if let Kind::Filesystem { root } = &self.kind {
            // object_store's local listing stats and converts every entry (about 20 µs
            // each: 200 ms for 10,000 apps); the directory entries' own types suffice.
            let path = root.join(dir.as_ref());
            let names = tokio::task::spawn_blocking(move || local_folders(&path))
                .await
                .map_err(|e| StoreError::io("list a folder", std::io::Error::other(e)))?;
            return names.map_err(|e| StoreError::io(format!("list {dir}"), e));
        }
        let listed = match self.os.list_with_delimiter(Some(dir)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let names: std::collections::BTreeSet<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        Ok(names.into_iter().collect())
    }

    /// Removes a folder and its sub-folders, those that are empty, on the filesystem, which
    /// keeps empty directories (an object store has none). For folders only one writer uses.
    pub(crate) async fn remove_empty_folders(&self, dir: &Key) {
        let Kind::Filesystem { root } = &self.kind else { return };
        let dir = local::path_of(root, dir);
        if let Ok(mut subs) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(entry)) = subs.next_entry().await {
                let _ = tokio::fs::remove_dir(entry.path()).await;
            }
        }
        let _ = tokio::fs::remove_dir(&dir).await;
    }

    /// A presigned URL to download the object at `key`, valid for `ttl`; `None` where there
    /// is nothing to presign with.
    pub(crate) async fn presign(&self, key: &Key, ttl: Duration) -> Result<Option<url::Url>> {
        match &self.kind {
            Kind::S3 { presigner, .. } => presigner.url(key, ttl).await,
            Kind::Filesystem { .. } => Ok(None),
        }
    }

    /// Removes the temporary files an interrupted run left; returns how many (see
    /// [`Store::remove_crash_leftovers`](crate::Store::remove_crash_leftovers)).
    pub(crate) fn clear_tmp(&self) -> Result<usize> {
        match &self.kind {
            Kind::Filesystem { root } => local::clear_tmp(root),
            Kind::S3 { .. } => Ok(0),
        }
    }

    /// Temporary files interrupted writes left, with their sizes (none on S3, where
    /// unfinished writes are invisible).
    pub(crate) fn stray_temp_files(&self) -> Vec<(PathBuf, u64)> {
        match &self.kind {
            Kind::Filesystem { root } => local::stray_staging_files(root),
            Kind::S3 { .. } => Vec::new(),
        }
    }
}

fn local_folders(path: &FsPath) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}
