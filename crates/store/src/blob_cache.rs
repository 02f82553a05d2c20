//! A replica's local disk cache of blobs read from an object store.
//!
//! Why: pulls through a registry on S3 are bound by the object store (every byte crosses it
//! and then the registry), while scale-ups pull the same few layers again and again. Blobs
//! are immutable per digest, so a verified local copy can serve every later pull at local-disk
//! speed without asking the store for the bytes, and without any invalidation protocol between
//! replicas. Whether a repository may serve a blob is still decided by its link in the store,
//! which garbage collection removes before the blob, so a copy outliving its blob on another
//! replica is never reachable through a repository that no longer links it.
//!
//! Filling: a whole-blob read streamed from the store is also written, off the request path, to
//! a temporary file by a blocking task that hashes as it writes; the file is renamed into place
//! only when its size and digest match. A client that disconnects drops its fill. Only one
//! fill per digest runs at a time.
//!
//! Layout: `<dir>/<algorithm>/<hex>` for entries and `<dir>/tmp/` for fills in progress, which
//! are deleted at start-up. Eviction is least recently used, by bytes, to stay within the
//! configured size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures::StreamExt;
use oci::{Algorithm, Digest, DigestHasher};
use tokio_util::sync::PollSender;

use crate::{ByteStream, Result, StoreError};

/// Chunks a fill may have queued for its writer (chunks from the store are at most a few
/// hundred KiB, so this bounds a fill's memory to a few MiB).
const FILL_QUEUE: usize = 64;

/// Fills running at once; a blob read while this many run is streamed without filling (a
/// later read fills it), which bounds the threads and memory that filling takes.
const MAX_FILLS: usize = 4;

/// Where the cache lives and how big it may grow.
#[derive(Debug, Clone)]
pub struct BlobCacheConfig {
    pub dir: PathBuf,
    /// Total size of the cached blobs; a blob larger than a quarter of it is never cached, so
    /// one huge blob cannot flush everything else.
    pub max_bytes: u64,
}

pub(crate) struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    counters: Counters,
    /// An exclusive lock on `<dir>/lock`, held while the cache is open: two processes on one
    /// folder would delete each other's fills.
    _lock: std::fs::File,
}

/// Since start-up, for metrics.
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    dropped: AtomicU64,
}

/// What the cache holds and has done since start-up (see `Store::blob_cache_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobCacheStats {
    pub blobs: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the store.
    pub misses: u64,
    /// Blobs written into the cache.
    pub fills: u64,
    /// Fills given up: the client went away, the store's bytes did not verify, or the disk failed.
    pub fills_dropped: u64,
}

#[derive(Default)]
struct State {
    /// digest -> (size, last use)
    entries: HashMap<Digest, (u64, u64)>,
    /// last use -> digest, oldest first
    by_use: BTreeMap<u64, Digest>,
    used: u64,
    clock: u64,
    filling: HashSet<Digest>,
}

impl State {
    fn touch(&mut self, d: &Digest) {
        self.clock += 1;
        let clock = self.clock;
        if let Some((_, used_at)) = self.entries.get_mut(d) {
            self.by_use.remove(used_at);
            *used_at = clock;
            self.by_use.insert(clock, d.clone());
        }
    }

    fn insert(&mut self, d: Digest, size: u64) {
        self.remove(&d);
        self.clock += 1;
        self.entries.insert(d.clone(), (size, self.clock));
        self.by_use.insert(self.clock, d);
        self.used += size;
    }

    fn remove(&mut self, d: &Digest) -> bool {
        match self.entries.remove(d) {
            Some((size, used_at)) => {
                self.by_use.remove(&used_at);
                self.used -= size;
                true
            }
            None => false,
        }
    }

    /// Drops least recently used entries until `extra` more bytes fit; returns them.
    fn evict_for(&mut self, extra: u64, max: u64) -> Vec<Digest> {
        let mut out = Vec::new();
        while self.used + extra > max {
            let Some((_, d)) = self.by_use.pop_first() else { break };
            if let Some((size, _)) = self.entries.remove(&d) {
                self.used -= size;
            }
            out.push(d);
        }
        out
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::io(format!("blob cache {}: cannot {what}", path.display()), e)
}

impl BlobCache {
    /// Opens (creating) the cache directory, drops unfinished fills and indexes what is there,
    /// oldest files first, evicting down to the budget if it shrank since the last run.
    pub(crate) fn open(cfg: &BlobCacheConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| io_error(&cfg.dir, "create the directory", e))?;
        let lock_path = cfg.dir.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| io_error(&lock_path, "create the lock file", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Config(format!(
                    "blob cache {}: another process uses this folder; give every replica a folder of its own",
                    cfg.dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, "lock", e)),
        }
        let tmp = cfg.dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io_error(&tmp, "clear unfinished fills", e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, "create the directory", e))?;
        let mut found = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = cfg.dir.join(alg.as_str());
            let Ok(listing) = std::fs::read_dir(&dir) else { continue };
            for entry in listing.flatten() {
                let name = entry.file_name();
                let meta = entry.metadata().map_err(|e| io_error(&entry.path(), "read", e))?;
                match name.to_str().and_then(|hex| Digest::parse(&format!("{}:{hex}", alg.as_str())).ok()) {
                    Some(d) if meta.is_file() => found.push((meta.modified().ok(), d, meta.len())),
                    // Not ours: leave it alone rather than delete what we did not write.
                    _ => tracing::warn!(path = %entry.path().display(), "blob cache: ignoring a file that is not a cached blob"),
                }
            }
        }
        found.sort_by_key(|(mtime, _, _)| *mtime);
        let cache = BlobCache {
            dir: cfg.dir.clone(),
            max_bytes: cfg.max_bytes,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            _lock: lock,
        };
        let evicted = {
            let mut state = cache.lock();
            for (_, d, size) in found {
                state.insert(d, size);
            }
            state.evict_for(0, cache.max_bytes)
        };
        cache.delete_files(&evicted);
        let state = cache.lock();
        tracing::info!(dir = %cfg.dir.display(), blobs = state.entries.len(), bytes = state.used, max_bytes = cfg.max_bytes, "blob cache ready");
        drop(state);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every change is one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.algorithm().as_str()).join(d.hex())
    }

    fn delete_files(&self, digests: &[Digest]) {
        for d in digests {
            // Readers that already opened the file keep reading it: unlinking is safe.
            if let Err(e) = std::fs::remove_file(self.path(d)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(digest = %d, error = %e, "blob cache: cannot delete an evicted blob");
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> BlobCacheStats {
        let (blobs, bytes) = {
            let state = self.lock();
            (state.entries.len() as u64, state.used)
        };
        let c = &self.counters;
        BlobCacheStats {
            blobs,
            bytes,
            max_bytes: self.max_bytes,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            fills: c.fills.load(Ordering::Relaxed),
            fills_dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Counts a read that had to go to the store.
    pub(crate) fn count_miss(&self) {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Size of a cached blob.
    pub(crate) fn size(&self, d: &Digest) -> Option<u64> {
        self.lock().entries.get(d).map(|(size, _)| *size)
    }

    /// Opens the cached copy of a blob, marking it used; returns it with its size.
    pub(crate) fn open_blob(&self, d: &Digest) -> Option<(std::fs::File, u64)> {
        let size = self.size(d)?;
        let opened = std::fs::File::open(self.path(d)).and_then(|f| Ok((f.metadata()?.len(), f)));
        match opened {
            Ok((len, f)) if len == size => {
                self.lock().touch(d);
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some((f, size))
            }
            Ok((len, _)) => {
                // Changed behind our back: never serve it; the store has the blob.
                tracing::warn!(digest = %d, len, size, "blob cache: a cached file has the wrong size; dropping it");
                self.remove(d);
                None
            }
            Err(e) => {
                // Deleted behind our back (or evicted just now): forget it, read the store.
                tracing::debug!(digest = %d, error = %e, "blob cache: entry vanished");
                self.lock().remove(d);
                None
            }
        }
    }

    /// Forgets and deletes a blob's copy (garbage collection removed the blob).
    pub(crate) fn remove(&self, d: &Digest) {
        if self.lock().remove(d) {
            self.delete_files(std::slice::from_ref(d));
        }
    }

    /// Wraps the store's stream of a whole blob so that it also fills the cache, when the blob
    /// is not cached, fits, and no other fill of it runs.
    pub(crate) fn fill_while_streaming(self: &Arc<Self>, d: &Digest, size: u64, stream: ByteStream) -> ByteStream {
        {
            let mut state = self.lock();
            if size > self.max_bytes / 4
                || state.entries.contains_key(d)
                || state.filling.len() >= MAX_FILLS
                || !state.filling.insert(d.clone())
            {
                return stream;
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Fill>(FILL_QUEUE);
        let writer = Writer { cache: self.clone(), digest: d.clone(), size };
        tokio::task::spawn_blocking(move || writer.run(rx));
        Filling { inner: stream, feed: Some(PollSender::new(tx)), left: size }.boxed()
    }
}

/// What a fill's writer receives. Its channel closing without `End` means: discard.
enum Fill {
    Data(Bytes),
    End,
}

/// The store's stream, passing each chunk on to the fill's writer as it goes by. It waits
/// for room in the writer's queue before taking the next chunk from the store, so a fill is
/// never dropped for speed: the one pull that fills runs at the pace of the disk and hashing
/// if that is slower than the client.
struct Filling {
    inner: ByteStream,
    feed: Option<PollSender<Fill>>,
    /// Bytes still to come. The fill ends with the last of them, not with the end of the
    /// stream: an HTTP server stops polling a body once its Content-Length has been sent.
    left: u64,
}

impl futures::Stream for Filling {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(feed) = &mut this.feed {
            match feed.poll_reserve(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                // The writer gave up (a disk error): stream on without it.
                Poll::Ready(Err(_)) => this.feed = None,
            }
        }
        let polled = this.inner.poll_next_unpin(cx);
        if let (Poll::Ready(item), Some(feed)) = (&polled, &mut this.feed) {
            let keep = match item {
                Some(Ok(chunk)) if (chunk.len() as u64) < this.left => {
                    this.left -= chunk.len() as u64;
                    feed.send_item(Fill::Data(chunk.clone())).is_ok()
                }
                Some(Ok(chunk)) => {
                    // The last chunk (or more than the blob's size, which the writer refuses).
                    let _ = feed.send_item(Fill::Data(chunk.clone()));
                    finish(feed);
                    false
                }
                Some(Err(_)) => false,
                // Ended short: the writer finds the size wrong and publishes nothing.
                None => {
                    finish(feed);
                    false
                }
            };
            if !keep {
                this.feed = None;
            }
        }
        polled
    }
}

/// Sends `End` after the item just sent, waiting for room on a thread of its own if the queue
/// is full (this is the end of the stream: nobody polls it again).
fn finish(feed: &mut PollSender<Fill>) {
    if let Some(tx) = feed.get_ref().cloned() {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(end)) = tx.try_send(Fill::End) {
            tokio::spawn(async move { tx.send(end).await });
        }
    }
}

/// Writes one fill to a temporary file, hashing as it goes, and publishes it if it verifies.
struct Writer {
    cache: Arc<BlobCache>,
    digest: Digest,
    size: u64,
}

impl Writer {
    fn run(self, rx: tokio::sync::mpsc::Receiver<Fill>) {
        let tmp = self.cache.dir.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
        let outcome = self.write(&tmp, rx);
        let mut state = self.cache.lock();
        state.filling.remove(&self.digest);
        match outcome {
            Ok(true) => {
                let evicted = state.evict_for(self.size, self.cache.max_bytes);
                match std::fs::rename(&tmp, self.cache.path(&self.digest)) {
                    Ok(()) => {
                        state.insert(self.digest.clone(), self.size);
                        self.cache.counters.fills.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(digest = %self.digest, error = %e, "blob cache: cannot publish a fill");
                        self.cache.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(state);
                self.cache.delete_files(&evicted);
                tracing::debug!(digest = %self.digest, size = self.size, evicted = evicted.len(), "blob cache: filled");
            }
            Ok(false) => {
                self.cache.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(digest = %self.digest, error = %e, "blob cache: fill failed");
                self.cache.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = std::fs::remove_file(&tmp);
    }

    /// Whether a complete, verified copy is in `tmp`.
    fn write(&self, tmp: &Path, mut rx: tokio::sync::mpsc::Receiver<Fill>) -> std::io::Result<bool> {
        std::fs::create_dir_all(self.cache.path(&self.digest).parent().unwrap_or(&self.cache.dir))?;
        let mut file = std::fs::File::create(tmp)?;
        let mut hasher = DigestHasher::new(self.digest.algorithm());
        let mut written = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Fill::Data(chunk)) => {
                    hasher.update(&chunk);
                    file.write_all(&chunk)?;
                    written += chunk.len() as u64;
                }
                Some(Fill::End) => break,
                // The client went away or the store's stream failed: nothing to publish.
                None => return Ok(false),
            }
        }
        if written != self.size || hasher.finish() != self.digest {
            tracing::warn!(digest = %self.digest, written, size = self.size, "blob cache: the store sent other bytes than the digest; not cached");
            return Ok(false);
        }
        // Durable before it is visible: after a crash, an entry is whole or absent.
        file.sync_data()?;
        Ok(true)
    }
}
