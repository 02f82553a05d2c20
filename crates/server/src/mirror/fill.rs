//! One upstream fetch per absent blob, however many clients ask for it at once, streamed
//! to all of them while it is written.
//!
//! The fetch task spools the upstream's bytes into a file of its own while the store writes
//! and hashes the same bytes in one pass; every client reads the spool from its start as it
//! grows, so the first byte reaches the first client long before the blob is complete and
//! a client that comes later follows the same fetch instead of starting another. The last
//! byte of the blob is withheld from every client until the store has verified the digest:
//! on a mismatch nothing is stored and every stream ends in an error before its last byte,
//! so no engine accepts the layer. The spool file is removed when the fetch ends; clients
//! still reading hold it open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci::{ByteStream, Digest, RepoName};
use store::growing::{self, Progress};
use store::Store;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// A fetch in progress, shared by every client of one digest.
pub(crate) struct Fill {
    pub(crate) size: u64,
    spool: PathBuf,
    progress: watch::Receiver<Progress>,
}

/// The fetches in progress, by digest.
#[derive(Default)]
pub(crate) struct Fills {
    running: Mutex<HashMap<Digest, Arc<Fill>>>,
}

impl Fills {
    /// The fetch of `digest` in progress, or a new one, whose task calls `open` for the
    /// upstream's stream (so only the first of many concurrent clients causes a download):
    /// `(fill, true)` when this call started it.
    pub(crate) fn join_or_start(
        self: &Arc<Self>,
        digest: &Digest,
        size: u64,
        spool_dir: &Path,
        store: &Store,
        repo: &RepoName,
        open: impl FnOnce() -> BoxFuture<'static, Result<ByteStream, String>>,
    ) -> std::io::Result<(Arc<Fill>, bool)> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = running.get(digest) {
            return Ok((f.clone(), false));
        }
        std::fs::create_dir_all(spool_dir)?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spool = spool_dir.join(format!("fill-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new().create_new(true).write(true).open(&spool)?;
        let (tx, rx) = watch::channel(Progress::Running(0));
        let fill = Arc::new(Fill { size, spool: spool.clone(), progress: rx });
        running.insert(digest.clone(), fill.clone());
        let (me, digest, store, repo) = (self.clone(), digest.clone(), store.clone(), repo.clone());
        let source = open();
        tokio::spawn(async move {
            let end = match source.await {
                Ok(source) => run(tokio::fs::File::from_std(file), source, &store, &digest, &repo, size, &tx).await,
                Err(e) => Err(e),
            };
            // Out of the table before the end is announced: a client arriving now finds the
            // blob stored (or, after a failure, starts a new fetch).
            me.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&digest);
            let _ = std::fs::remove_file(&spool);
            let _ = tx.send(match end {
                Ok(()) => Progress::Done,
                Err(e) => Progress::Failed(e),
            });
        });
        Ok((fill, true))
    }
}

/// Copies `source` into the spool file and the store at once; the store verifies the
/// digest in the same pass, and the blob is linked into `repo` once it is stored.
async fn run(
    mut file: tokio::fs::File,
    mut source: ByteStream,
    store: &Store,
    digest: &Digest,
    repo: &RepoName,
    size: u64,
    progress: &watch::Sender<Progress>,
) -> Result<(), String> {
    let (to_store, from_fetch) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let body = futures::stream::unfold(from_fetch, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let write = {
        let (store, digest) = (store.clone(), digest.clone());
        tokio::spawn(async move { store.put_blob(&digest, body).await })
    };
    let mut written = 0u64;
    let mut failure = None;
    while let Some(chunk) = source.next().await {
        let chunk = match chunk {
            Ok(b) => b,
            Err(e) => {
                failure = Some(format!("the upstream download failed: {e}"));
                let _ = to_store.send(Err(e)).await;
                break;
            }
        };
        written += chunk.len() as u64;
        if written > size {
            failure = Some(format!("the upstream sent more than the {size} bytes it announced"));
            let _ = to_store.send(Err(std::io::Error::other("too many bytes"))).await;
            break;
        }
        // Written through to the file before it is announced: readers open the same file.
        if let Err(e) = async {
            file.write_all(&chunk).await?;
            file.flush().await
        }
        .await
        {
            failure = Some(format!("cannot spool the blob: {e}"));
            let _ = to_store.send(Err(std::io::Error::other("spool failed"))).await;
            break;
        }
        let _ = progress.send(Progress::Running(written));
        if to_store.send(Ok(chunk)).await.is_err() {
            // The store's write ended early; its result says why.
            break;
        }
    }
    drop(to_store);
    let stored = write.await.map_err(|e| format!("the store's write failed: {e}"))?;
    if let Some(f) = failure {
        return Err(f);
    }
    match stored {
        Ok(n) if n == size => store.link_blob(repo, digest).await.map_err(|e| e.to_string()),
        Ok(n) => Err(format!("the upstream announced {size} bytes for {digest} and sent {n}")),
        Err(e) => Err(e.to_string()),
    }
}

impl Fill {
    /// The blob's bytes for one client: what the spool holds, as it grows, the last byte
    /// only once the store has verified the digest; an error ends the stream if the fetch
    /// fails (`store::growing`, which the blob cache's fills share). `None` when the fetch
    /// has already ended and removed its spool (the blob is then stored, or the fetch
    /// failed): the caller looks at the store again.
    pub(crate) fn open(&self) -> Option<BoxStream<'static, std::io::Result<Bytes>>> {
        let file = std::fs::File::open(&self.spool).ok()?;
        Some(growing::follow(Arc::new(file), 0..self.size, self.progress.clone()))
    }
}
