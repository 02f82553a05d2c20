//! Blobs: content-addressed bytes under `blobs/`, and the per-repository links that make a
//! blob readable through a repository.

use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStoreExt};
use oci::{Digest, RepoName};

use crate::blob_cache::Miss;
use crate::{keys, ByteStream, Result, Store, StoreError};

/// How much of a local blob file one response frame maps, at most: large enough that mapping
/// costs nothing beside the transfer, small enough that mapped pages barely show in the RSS
/// of many parallel pulls (each is unmapped once the connection has written it). Measured on
/// 8 parallel pulls: 4 MiB chunks were no faster and peaked at 52 MiB RSS, 1 MiB at 21.
pub(crate) const FILE_CHUNK: u64 = 1 << 20;

/// Mapped bytes that all streams of local files share, roughly: each maps chunks of this
/// over the number of such streams open (between [`MIN_FILE_CHUNK`] and [`FILE_CHUNK`]).
/// Why: a mapped chunk counts in the RSS while its connection writes it, and a storm opens
/// hundreds of them per replica (measured: 200 nodes, about 200 connections per replica,
/// peaked at 154-167 MiB with 1 MiB chunks each, 118-124 MiB with 32 MiB shared, at the
/// cost of about 60% more CPU for the smaller chunks). A few pulls still get 1 MiB chunks.
const MAPPED_BUDGET: u64 = 24 << 20;

/// Smallest chunk mapped (unless the range ends first): below this, mapping and waking a
/// blocking thread per chunk costs more CPU than the memory is worth.
const MIN_FILE_CHUNK: u64 = 64 << 10;

/// Streams of local files open now (cached blobs, fills followed), for [`chunk_len`].
static FILE_STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts a stream of a local file among [`FILE_STREAMS`] while it lives.
pub(crate) struct FileStreamSlot(());

impl FileStreamSlot {
    pub(crate) fn open() -> Self {
        FILE_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        FileStreamSlot(())
    }
}

impl Drop for FileStreamSlot {
    fn drop(&mut self) {
        FILE_STREAMS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Bytes the next chunk of a local file stream maps: [`MAPPED_BUDGET`] shared by the
/// streams open now, whole pages, between [`MIN_FILE_CHUNK`] and [`FILE_CHUNK`].
fn chunk_len() -> u64 {
    let open = FILE_STREAMS.load(std::sync::atomic::Ordering::Relaxed).max(1);
    (MAPPED_BUDGET / open).clamp(MIN_FILE_CHUNK, FILE_CHUNK) & !4095
}

/// The parts a blob cache fill reads from the store, and how many it has asked for at once:
/// one GET stream from an object store is slower than several, and small ranges are slower
/// still (measured on SeaweedFS with a plain client, 256 MiB: one GET 507-664 MiB/s; 2 MiB
/// ranges 332 MiB/s one at a time and 393 three at a time; 8 MiB ranges 550 and 804).
const FILL_PART: u64 = 8 << 20;
const FILL_PARTS: usize = 4;

/// Parts read ahead into memory, for all fills together: the part a fill is writing streams,
/// and a part after it is read whole into memory, in parallel with it, only if it can take
/// one of these (otherwise it streams in its turn, its bytes waiting in the socket). So
/// fills hold at most this many parts beside their streams however many run at once (a
/// storm fills every layer of an image at once on every replica).
const FILL_BUFFERS: usize = 2;

/// See [`FILL_BUFFERS`].
static FILL_BUFFER_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(FILL_BUFFERS);

/// A blob (or a range of it) ready to stream to a client.
pub struct BlobBody {
    /// Size of the whole blob.
    pub total: u64,
    /// The bytes `stream` yields.
    pub range: Range<u64>,
    pub stream: ByteStream,
}

impl Store {
    /// Size of a stored blob, or `None` when it is not stored. Cached: blobs are immutable.
    pub async fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        if let Some(size) = self.cache().blob_sizes.get(d) {
            return Ok(Some(size));
        }
        if let Some(size) = self.inner.backend.blob_cache().and_then(|c| c.size(d)) {
            return Ok(Some(size));
        }
        match self.os().head(&keys::blob(d)).await {
            Ok(meta) => {
                self.cache().blob_sizes.insert(d.clone(), meta.size);
                Ok(Some(meta.size))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Size of a stored blob asked of the backend itself, bypassing the cache: for decisions
    /// that skip writing bytes or accept a reference, since garbage collection (possibly on
    /// another replica) may have removed a blob this process still has cached.
    pub async fn blob_size_fresh(&self, d: &Digest) -> Result<Option<u64>> {
        match self.os().head(&keys::blob(d)).await {
            Ok(meta) => {
                self.cache().blob_sizes.insert(d.clone(), meta.size);
                Ok(Some(meta.size))
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.cache().blob_sizes.remove(d);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a blob for streaming, whole or a byte range of it (already checked against its size).
    pub async fn read_blob(&self, d: &Digest, range: Option<Range<u64>>) -> Result<BlobBody> {
        let cache = self.inner.backend.blob_cache();
        let mut starter = None;
        if let Some(c) = cache {
            if let Some((file, total)) = c.open_blob(d) {
                let range = range.unwrap_or(0..total);
                return Ok(BlobBody { total, range: range.clone(), stream: file_stream(file, range) });
            }
            // Only a whole read starts a fill: it needs the size up front to know whether the
            // blob fits (a cached fact almost always, the handler has just asked for it).
            let size = match range {
                None => Some(self.blob_size(d).await?.ok_or_else(|| StoreError::BlobUnknown(d.clone()))?),
                Some(_) => None,
            };
            match c.on_miss(d, size) {
                Miss::Follow(fill) => {
                    let (range, stream) = fill.follow(range);
                    return Ok(BlobBody { total: fill.size, range, stream });
                }
                Miss::Start(s) => starter = Some(s),
                Miss::Store => {}
            }
        }
        // A fill reads the blob in parts, several at once (see `fill_parts`); its first part
        // is asked for here, so that a blob gone from the store is a 404 and not a broken body.
        let asked = match &starter {
            Some(s) => Some(0..s.fill.size.min(FILL_PART)),
            None => range.clone(),
        };
        let opts = GetOptions { range: asked.map(GetRange::Bounded), ..Default::default() };
        // A failure here drops the starter, which fails the fill for whoever joined it.
        let got = match self.os().get_opts(&keys::blob(d), opts).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                self.cache().blob_sizes.remove(d);
                return Err(StoreError::BlobUnknown(d.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let total = got.meta.size;
        let range = got.range.clone();
        let stream: ByteStream = match got.payload {
            GetResultPayload::File(file, _) => file_stream(file, range.clone()),
            GetResultPayload::Stream(s) => s.map_err(std::io::Error::other).boxed(),
        };
        match starter {
            Some(s) if total == s.fill.size => {
                let stream = s.run(fill_parts(self.clone(), d.clone(), total, stream));
                Ok(BlobBody { total, range: 0..total, stream })
            }
            // The store holds another size than it said a moment ago: read it as it is now
            // and cache nothing (dropping the starter fails the fill).
            Some(_) => {
                drop(starter);
                Box::pin(self.read_blob(d, None)).await
            }
            None => Ok(BlobBody { total, range, stream }),
        }
    }

    /// Reads a small blob (a manifest or config) whole.
    pub async fn read_blob_bytes(&self, d: &Digest) -> Result<Bytes> {
        self.read_small(&keys::blob(d)).await?.ok_or_else(|| StoreError::BlobUnknown(d.clone()))
    }

    /// Stores a blob streamed in one piece, verifying its digest on the fly; nothing is kept
    /// on a mismatch. Returns the size. The verified bytes are published even when the digest
    /// is stored already, so a full push restores a damaged copy rather than trusting it.
    pub async fn put_blob<S>(&self, d: &Digest, body: S) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let size = self.put_verified(&keys::blob(d), body, d).await?;
        self.cache().blob_sizes.insert(d.clone(), size);
        Ok(size)
    }

    /// Makes a stored blob readable through `repo`.
    pub async fn link_blob(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        self.protect(std::slice::from_ref(d)).await?;
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        self.write_small(&keys::layer_link(repo, d), Bytes::new()).await?;
        self.cache().layer_links.insert((repo.clone(), d.clone()), (), epoch, at);
        Ok(())
    }

    /// Whether `repo` links the blob (and so may serve it), as the store says now: for
    /// decisions (accepting a manifest, a mount, a delete). On a shared store this reads the
    /// link from the bucket.
    pub async fn blob_linked(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        self.linked(repo, d, false).await
    }

    /// Whether `repo` links the blob, for serving it: on a shared store the answer may be a
    /// cached "linked" that another replica removed up to the generation check interval ago
    /// (see `generation.rs`). "Not linked" is always read from the store.
    pub async fn blob_linked_cached(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        self.linked(repo, d, true).await
    }

    async fn linked(&self, repo: &RepoName, d: &Digest, cached: bool) -> Result<bool> {
        let key = (repo.clone(), d.clone());
        if let Some(epoch) = self.usable_epoch(cached).await? {
            if self.cache().layer_links.get(&key, epoch).is_some() {
                return Ok(true);
            }
        }
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        let linked = self.exists(&keys::layer_link(repo, d)).await?;
        if linked {
            self.cache().layer_links.insert(key, (), epoch, at);
        } else {
            self.cache().layer_links.remove(&key);
        }
        Ok(linked)
    }

    /// Removes a repository's link to a blob. The bytes stay until garbage collection, since
    /// other repositories may link them. Returns whether a link existed.
    pub async fn unlink_blob(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        let existed = self.blob_linked(repo, d).await?;
        self.cache().layer_links.remove(&(repo.clone(), d.clone()));
        self.remove(&keys::layer_link(repo, d)).await?;
        self.publish_removal().await?;
        Ok(existed)
    }
}

/// The whole blob for a cache fill, from `first` (the stream of its first part) and the
/// other parts, asked for `FILL_PARTS` at a time and read in order; a part ahead of the
/// one being read is read into memory meanwhile when it can take one of [`FILL_BUFFERS`].
fn fill_parts(store: Store, d: Digest, size: u64, first: ByteStream) -> ByteStream {
    let parts = (1..size.div_ceil(FILL_PART)).map(move |i| {
        let r = i * FILL_PART..((i + 1) * FILL_PART).min(size);
        let (store, key) = (store.clone(), keys::blob(&d));
        // A task of its own, so that it runs while the parts before it are read.
        AbortOnDrop(tokio::spawn(async move {
            let opts = GetOptions { range: Some(GetRange::Bounded(r.clone())), ..Default::default() };
            let got = store.os().get_opts(&key, opts).await.map_err(std::io::Error::other)?;
            if got.range != r {
                return Err(std::io::Error::other(format!("the object store answered bytes {:?} for {r:?}", got.range)));
            }
            let stream: ByteStream = got.into_stream().map_err(std::io::Error::other).boxed();
            match FILL_BUFFER_PERMITS.try_acquire() {
                Ok(permit) => {
                    let chunks = stream.try_collect::<Vec<Bytes>>().await?;
                    // Given back once the part has been handed on, when its stream ends.
                    Ok(futures::stream::iter(chunks.into_iter().map(Ok))
                        .chain(futures::stream::once(async move {
                            drop(permit);
                            Ok(Bytes::new())
                        }))
                        .boxed())
                }
                Err(_) => Ok(stream),
            }
        }))
        .map(|joined| joined.map_err(std::io::Error::other).and_then(|part| part))
        .boxed()
    });
    let first = futures::future::ready(Ok(first)).boxed();
    futures::stream::iter(std::iter::once(first).chain(parts)).buffered(FILL_PARTS).try_flatten().boxed()
}

/// A spawned task that is cancelled when its handle is dropped: the parts read ahead of a
/// fill that failed are not read to their end.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Streams a byte range of a local file as mapped chunks of the page cache: the bytes are
/// copied once, into the socket (or the TLS record), instead of read into a buffer first.
/// Each chunk is mapped on the blocking pool (mapping may read from disk) and unmapped when
/// the connection drops it, so memory stays bounded by the frames in flight.
fn file_stream(file: std::fs::File, range: Range<u64>) -> ByteStream {
    let file = Arc::new(file);
    let end = range.end;
    let slot = FileStreamSlot::open();
    futures::stream::try_unfold(range.start, move |pos| {
        let _counted = &slot;
        let file = file.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            let chunk = map_next(file, pos, end).await?;
            let next = pos + chunk.len() as u64;
            Ok(Some((chunk, next)))
        }
    })
    .boxed()
}

/// Maps the next chunk of a local file stream, from `pos` and short of `limit`, on the
/// blocking pool (mapping may read from disk); its length is [`chunk_len`] at most.
pub(crate) async fn map_next(file: Arc<std::fs::File>, pos: u64, limit: u64) -> std::io::Result<Bytes> {
    let len = (limit - pos).min(chunk_len());
    tokio::task::spawn_blocking(move || map_chunk(&file, pos, len)).await.map_err(std::io::Error::other)?
}

/// Maps `len` bytes of `file` from `offset`, and asks the kernel to read the next chunk ahead.
#[allow(unsafe_code)]
fn map_chunk(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Bytes> {
    // A mapping past the end of the file faults (SIGBUS) when read: refuse it instead.
    let size = file.metadata()?.len();
    if offset + len > size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("blob file holds {size} bytes, {} were to be sent", offset + len),
        ));
    }
    // SAFETY: the mapping is read-only and blob files are never written, truncated or
    // resized in place: every write goes to a temporary file renamed into place
    // (`local.rs`, the blob cache's fills), and removal is an unlink, which leaves an open
    // mapping valid. So the mapped bytes stay the verified bytes for as long as they are held.
    // A file still being filled (`growing.rs`) is only appended to, and only the part already
    // written (checked just above) is mapped, so those bytes never change either.
    let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(len as usize).populate().map(file)? };
    let next = offset + len;
    if next < size {
        // Readahead of the next chunk, so a cold blob streams at the disk's pace. Advice only:
        // its result does not matter.
        // SAFETY: posix_fadvise(2) takes integers only and touches no memory of ours; the
        // descriptor stays open because `file` is borrowed for the whole call.
        let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), next as libc::off_t, len as libc::off_t, libc::POSIX_FADV_WILLNEED) };
    }
    Ok(Bytes::from_owner(map))
}
