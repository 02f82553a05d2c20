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
//! Filling: a whole-blob read of a blob not cached starts a fill, a task of its own that
//! writes the store's stream to a temporary file, hashing as it goes; the file is renamed into
//! place only when its size and digest match. The read that started it, and every read of the
//! blob (whole or a range) while it runs, stream from that file as it grows (`growing.rs`), so
//! a storm of pulls reads each blob from the store once per replica. The last byte of each
//! read waits until the digest matched: if it does not, every read ends in an error instead.
//! A fill runs to its end even if its readers go away (they should not fail each other).
//!
//! Layout: `<dir>/<algorithm>/<hex>` for entries and `<dir>/tmp/` for fills in progress, which
//! are deleted at start-up. Eviction is least recently used, by bytes, to stay within the
//! configured size.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use oci::{Algorithm, Digest, DigestHasher};
use tokio::sync::{mpsc, watch};

use crate::growing::{self, Progress};
use crate::{ByteStream, Result, StoreError};

/// Batches a fill may have queued for its writer: with [`BATCH`], at most 2 MiB per fill.
const FILL_QUEUE: usize = 8;

/// Bytes of the store's stream handed to a fill's writer at once.
const BATCH: usize = 256 << 10;

/// Batches the reader that started a fill may fall behind the store before it reads from
/// the file instead (see [`FillStarter::run`]). The batches are shared with the writer's
/// queue, so this costs memory only while that reader is slower than the writer.
const DIRECT_QUEUE: usize = 8;

/// Bytes a fill's writer writes between two announcements to its followers, at most: when
/// it falls behind the store, its queue is never empty, and followers must not wait for it
/// to drain (nor for the whole blob) before they send anything.
const ANNOUNCE_EVERY: u64 = 1 << 20;

/// Fills running at once; a blob read while this many run is streamed without filling (a
/// later read fills it), which bounds the threads and memory that filling takes. Enough for
/// every layer of a few images pulled at once: a storm of nodes pulling one image must find
/// a fill for each of its layers, or each node reads the store.
const MAX_FILLS: usize = 16;

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
    joins: AtomicU64,
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
    /// Reads that followed a fill in progress instead of going to the store.
    pub fill_joins: u64,
    /// Blobs written into the cache.
    pub fills: u64,
    /// Fills given up: the store's read failed, its bytes did not verify, or the disk failed.
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
    /// Fills in progress, followed by every read of their blob.
    filling: HashMap<Digest, Arc<Fill>>,
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
            fill_joins: c.joins.load(Ordering::Relaxed),
            fills: c.fills.load(Ordering::Relaxed),
            fills_dropped: c.dropped.load(Ordering::Relaxed),
        }
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

    /// What a read of a blob that is not cached does: follow the fill of it in progress, or
    /// (a whole read, `size` known) start one when the blob fits and fewer than
    /// [`MAX_FILLS`] run, or else read the store without filling. Counts the read.
    pub(crate) fn on_miss(self: &Arc<Self>, d: &Digest, size: Option<u64>) -> Miss {
        let mut state = self.lock();
        if let Some(fill) = state.filling.get(d) {
            self.counters.joins.fetch_add(1, Ordering::Relaxed);
            return Miss::Follow(fill.clone());
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let Some(size) = size else { return Miss::Store };
        if size > self.max_bytes / 4 || state.entries.contains_key(d) || state.filling.len() >= MAX_FILLS {
            return Miss::Store;
        }
        let tmp = self.dir.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
        let opened = std::fs::File::create(&tmp).and_then(|w| Ok((w, std::fs::File::open(&tmp)?)));
        let (writer, reader) = match opened {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(path = %tmp.display(), error = %e, "blob cache: cannot start a fill");
                let _ = std::fs::remove_file(&tmp);
                return Miss::Store;
            }
        };
        let (tx, rx) = watch::channel(Progress::Running(0));
        let fill = Arc::new(Fill { size, file: Arc::new(reader), progress: rx });
        state.filling.insert(d.clone(), fill.clone());
        let job = Job { cache: self.clone(), digest: d.clone(), size, tmp, file: writer, progress: tx };
        Miss::Start(FillStarter { job: Some(job), fill })
    }
}

/// See [`BlobCache::on_miss`].
pub(crate) enum Miss {
    Follow(Arc<Fill>),
    /// This read fills the cache: it opens the store's stream of the whole blob and hands
    /// it to [`FillStarter::run`], then follows the fill like every other reader.
    Start(FillStarter),
    Store,
}

/// A fill in progress: its temporary file, readable while it grows, and how far it is.
pub(crate) struct Fill {
    pub(crate) size: u64,
    file: Arc<std::fs::File>,
    progress: watch::Receiver<Progress>,
}

impl Fill {
    /// `range` of the blob (the whole of it by default) as the fill writes it, the last byte
    /// only once the digest matched; an error ends the stream if the fill fails.
    pub(crate) fn follow(&self, range: Option<Range<u64>>) -> (Range<u64>, ByteStream) {
        let range = range.unwrap_or(0..self.size);
        (range.clone(), growing::follow(self.file.clone(), range, self.progress.clone()))
    }
}

/// A fill registered but not yet fed. Dropped without [`FillStarter::run`] (the store's
/// read failed, or the request went away while opening it), it ends the fill as failed, so
/// that its followers see an error and the next read starts afresh.
pub(crate) struct FillStarter {
    job: Option<Job>,
    pub(crate) fill: Arc<Fill>,
}

impl Drop for FillStarter {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            job.finish(Err("the object store's read of the blob did not start".into()));
        }
    }
}

impl FillStarter {
    /// Copies the store's stream of the whole blob into the fill, on a task of its own: the
    /// fill runs to its end at the store's pace whoever follows it, so that a reader going
    /// away (the first one included) never fails the others, and the blob is read from the
    /// store once however many ask for it while it fills.
    ///
    /// Returns the stream of the reader that started the fill. It gets the store's bytes as
    /// they arrive, while the writer writes them, instead of reading them back from the file
    /// once written and announced: the fill's first pull then costs one copy fewer and does
    /// not wait for the writer. If it lags [`DIRECT_QUEUE`] batches behind the store, it is
    /// cut loose and reads the rest from the file like every other follower, so a slow first
    /// client never slows the fill. Its last byte still waits for the digest to match.
    pub(crate) fn run(mut self, mut stream: ByteStream) -> ByteStream {
        let fill = self.fill.clone();
        let Some(job) = self.job.take() else { return fill.follow(None).1 };
        let (tx, rx) = mpsc::channel::<Chunk>(FILL_QUEUE);
        let (direct_tx, direct_rx) = mpsc::channel::<Vec<Bytes>>(DIRECT_QUEUE);
        tokio::task::spawn_blocking(move || {
            let outcome = job.write(rx);
            job.finish(outcome);
        });
        tokio::spawn(async move {
            let mut direct = Some(direct_tx);
            // Handed over in batches: the store's stream yields a few KiB at a time, and a
            // hand-over to an idle writer thread is a wake-up (two context switches) each.
            let mut batch = Vec::new();
            let mut batched = 0usize;
            loop {
                let item = stream.next().await;
                let end = item.is_none();
                let failed = match item {
                    Some(Ok(b)) => {
                        batched += b.len();
                        batch.push(b);
                        if batched < BATCH {
                            continue;
                        }
                        None
                    }
                    Some(Err(e)) => Some(format!("reading the blob from the object store failed: {e}")),
                    None => None,
                };
                let end = end || failed.is_some();
                if failed.is_some() {
                    // The first reader learns of the failure from the fill, like the others.
                    direct = None;
                }
                if !batch.is_empty() {
                    // Shares the buffers (reference counts), copies no bytes.
                    if direct.as_ref().is_some_and(|d| d.try_send(batch.clone()).is_err()) {
                        direct = None; // lagging or gone: it follows the file from here
                    }
                    if tx.send(Chunk::Data(std::mem::take(&mut batch))).await.is_err() {
                        break; // the writer stops early only when the fill has failed already
                    }
                }
                batched = 0;
                if let Some(why) = failed {
                    let _ = tx.send(Chunk::Failed(why)).await;
                }
                if end {
                    break;
                }
            }
        });
        direct_stream(fill, direct_rx)
    }
}

/// The first reader's stream (see [`FillStarter::run`]): the batches handed to it while it
/// keeps up, then the rest of the blob from the file; the last byte always from the file,
/// once the fill has verified the digest.
fn direct_stream(fill: Arc<Fill>, rx: mpsc::Receiver<Vec<Bytes>>) -> ByteStream {
    struct State {
        fill: Arc<Fill>,
        rx: Option<mpsc::Receiver<Vec<Bytes>>>,
        queued: std::collections::VecDeque<Bytes>,
        pos: u64,
        rest: Option<ByteStream>,
    }
    let state = State { fill, rx: Some(rx), queued: Default::default(), pos: 0, rest: None };
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(rest) = s.rest.as_mut() {
                return match rest.next().await {
                    Some(Ok(b)) => Ok(Some((b, s))),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                };
            }
            let size = s.fill.size;
            if s.pos >= size {
                return Ok(None); // an empty blob
            }
            if let Some(mut b) = s.queued.pop_front() {
                let end = s.pos + b.len() as u64;
                if end >= size {
                    // The writer refuses a longer stream too, and fails the fill: so does
                    // the last byte's wait below.
                    b.truncate((size - 1 - s.pos) as usize);
                    s.pos = size - 1;
                    s.rx = None;
                    s.queued.clear();
                    s.rest = Some(s.fill.follow(Some(size - 1..size)).1);
                } else {
                    s.pos = end;
                }
                if b.is_empty() {
                    continue;
                }
                return Ok(Some((b, s)));
            }
            let batch = match s.rx.as_mut() {
                Some(rx) => rx.recv().await,
                None => None,
            };
            match batch {
                Some(batch) => s.queued.extend(batch),
                None => {
                    // Cut loose (or the store's stream ended short or failed): the file has
                    // every byte the fill received, in order, and the fill's outcome.
                    s.rx = None;
                    s.rest = Some(s.fill.follow(Some(s.pos..size)).1);
                }
            }
        }
    })
    .boxed()
}

/// Writes every byte of `chunks` to `file`, in as few system calls as the kernel allows.
fn write_all_vectored(mut file: &std::fs::File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = chunks.iter().filter(|c| !c.is_empty()).map(|c| std::io::IoSlice::new(c)).collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a fill's writer receives; its channel closing means the store's stream ended.
enum Chunk {
    Data(Vec<Bytes>),
    Failed(String),
}

/// One fill: writes the store's bytes to a temporary file, hashing as it goes, announces
/// them to the followers, and publishes the file if it verifies.
struct Job {
    cache: Arc<BlobCache>,
    digest: Digest,
    size: u64,
    tmp: PathBuf,
    file: std::fs::File,
    progress: watch::Sender<Progress>,
}

impl Job {
    /// Runs on a blocking thread; `Ok` when the file holds the verified blob.
    fn write(&self, mut rx: mpsc::Receiver<Chunk>) -> std::result::Result<(), String> {
        let mut hasher = DigestHasher::new(self.digest.algorithm());
        let mut written = 0u64;
        let mut announced = 0u64;
        let mut next = rx.blocking_recv();
        while let Some(chunk) = next {
            let chunks = match chunk {
                Chunk::Data(b) => b,
                Chunk::Failed(why) => return Err(why),
            };
            for chunk in &chunks {
                written += chunk.len() as u64;
                if written > self.size {
                    return Err(format!("the object store sent more than the {} bytes of blob {}", self.size, self.digest));
                }
                hasher.update(chunk);
            }
            // One system call per batch rather than per chunk of a few KiB.
            write_all_vectored(&self.file, &chunks).map_err(|e| format!("blob cache {}: cannot write: {e}", self.tmp.display()))?;
            // Announced once per batch of what is queued, not per chunk of a few KiB (every
            // announcement wakes every follower), and at least every ANNOUNCE_EVERY bytes.
            // Written (to the page cache) before announced: followers map what is announced.
            next = match rx.try_recv() {
                Ok(more) => {
                    if written - announced >= ANNOUNCE_EVERY {
                        self.progress.send_replace(Progress::Running(written));
                        announced = written;
                    }
                    Some(more)
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    self.progress.send_replace(Progress::Running(written));
                    announced = written;
                    rx.blocking_recv()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        self.progress.send_replace(Progress::Running(written));
        if written != self.size {
            return Err(format!("the object store sent {written} of the {} bytes of blob {}", self.size, self.digest));
        }
        if hasher.finish() != self.digest {
            return Err(format!("the object store sent other bytes than blob {}", self.digest));
        }
        Ok(())
    }

    /// Ends the fill: on success the followers get their last byte at once, then the file
    /// is made durable and renamed into place; on failure they get the error and the file
    /// goes. Either way the fill leaves the table in the same step as the entry arrives,
    /// so a read never finds neither.
    fn finish(self, outcome: std::result::Result<(), String>) {
        let cache = &self.cache;
        let published = outcome.and_then(|()| {
            self.progress.send_replace(Progress::Done);
            // Durable before it is visible: after a crash, an entry is whole or absent.
            self.file.sync_data().map_err(|e| format!("blob cache {}: cannot sync: {e}", self.tmp.display()))
        });
        let mut state = cache.lock();
        state.filling.remove(&self.digest);
        let outcome = published.and_then(|()| {
            let evicted = state.evict_for(self.size, cache.max_bytes);
            let path = cache.path(&self.digest);
            let renamed = std::fs::create_dir_all(path.parent().unwrap_or(&cache.dir)).and_then(|()| std::fs::rename(&self.tmp, &path));
            if renamed.is_ok() {
                state.insert(self.digest.clone(), self.size);
            }
            drop(state);
            cache.delete_files(&evicted);
            renamed.map_err(|e| format!("blob cache: cannot publish a fill: {e}"))
        });
        match outcome {
            Ok(()) => {
                cache.counters.fills.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(digest = %self.digest, size = self.size, "blob cache: filled");
            }
            Err(why) => {
                cache.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(digest = %self.digest, error = %why, "blob cache: fill failed; nothing cached");
                // Followers that were sent Done already have every verified byte.
                self.progress.send_if_modified(|p| {
                    if *p == Progress::Done {
                        return false;
                    }
                    *p = Progress::Failed(why);
                    true
                });
                let _ = std::fs::remove_file(&self.tmp);
            }
        }
    }
}
