//! Streaming writes: hash bytes in one pass as they go into the store, and make them visible
//! only on `commit`. Bodies shorter than one part go out in a single `put`; longer ones through
//! a multipart upload that the backend publishes atomically on completion (a rename on the
//! filesystem, CompleteMultipartUpload on S3), so a crash never leaves a partial object.
//!
//! On the filesystem, bytes go to a temporary file that is fsynced and renamed into place on
//! commit (`local.rs`), so a commit is durable when it returns.
//!
//! A multipart upload that is started but neither completed nor aborted stays in an S3
//! bucket, invisible but billed, until a lifecycle rule removes it. Every way out of a write
//! therefore aborts it: a client that disconnects (the body stream fails), a part the store
//! refused, a digest mismatch, and also the write's future being dropped midway (cancelled).

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use oci::{Algorithm, Digest, DigestHasher};

use crate::local::TempFile;
use crate::{Result, Store, StoreError};

/// How many parts may be in flight to the backend per write; bounds memory per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes that were streamed and hashed, not yet visible.
pub(crate) struct Pending {
    pub size: u64,
    pub digest: Digest,
    key: Path,
    body: PendingBody,
}

enum PendingBody {
    Small(PutPayload),
    Multipart(Multipart),
    /// Written to a temporary file on the filesystem backend.
    Local(TempFile),
}

impl Store {
    /// Streams `body` towards `key`, hashing with `alg`.
    pub(crate) async fn stream_in<S>(&self, key: &Path, body: S, alg: Algorithm) -> Result<Pending>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let chunk = self.inner.backend.chunk_size();
        let mut body = std::pin::pin!(body);
        let mut hasher = DigestHasher::new(alg);
        let mut size = 0u64;
        let mut small: Vec<Bytes> = Vec::new();
        let mut small_len = 0usize;
        let mut multipart: Option<Multipart> = None;
        let mut local = self.inner.backend.temp_file().await?;
        while let Some(next) = body.next().await {
            let bytes = match next {
                Ok(b) => b,
                Err(e) => {
                    if let Some(m) = multipart {
                        m.abort().await;
                    }
                    return Err(StoreError::Body(e));
                }
            };
            hasher.update(&bytes);
            size += bytes.len() as u64;
            if let Some(file) = local.as_mut() {
                small_len += bytes.len();
                small.push(bytes);
                if small_len >= chunk {
                    small_len = 0;
                    file.write(std::mem::take(&mut small)).await?;
                }
                continue;
            }
            match multipart.as_mut() {
                Some(m) => {
                    if let Err(e) = m.put(bytes).await {
                        if let Some(m) = multipart {
                            m.abort().await;
                        }
                        return Err(e);
                    }
                }
                None => {
                    small_len += bytes.len();
                    small.push(bytes);
                    if small_len >= chunk {
                        let upload = self.os().put_multipart(key).await?;
                        let mut m = WriteMultipart::new_with_chunk_size(upload, chunk);
                        for b in small.drain(..) {
                            m.put(b);
                        }
                        multipart = Some(Multipart { write: Some(m), key: key.clone() });
                    }
                }
            }
        }
        let body = match (local, multipart) {
            (Some(mut file), _) => {
                if !small.is_empty() {
                    file.write(small).await?;
                }
                PendingBody::Local(file)
            }
            (None, Some(m)) => PendingBody::Multipart(m),
            (None, None) => PendingBody::Small(small.into_iter().collect()),
        };
        Ok(Pending { size, digest: hasher.finish(), key: key.clone(), body })
    }

    /// Makes pending bytes visible under their key.
    pub(crate) async fn commit(&self, p: Pending) -> Result<()> {
        match p.body {
            PendingBody::Small(payload) => {
                self.os().put(&p.key, payload).await?;
            }
            PendingBody::Multipart(m) => m.finish().await?,
            PendingBody::Local(file) => file.persist(&p.key).await?,
        }
        Ok(())
    }

    /// Drops pending bytes; nothing becomes visible (a temporary file is removed on drop).
    pub(crate) async fn abort(&self, p: Pending) {
        if let PendingBody::Multipart(m) = p.body {
            m.abort().await;
        }
    }

    /// Streams the blob `expected` into `key` if and only if it hashes to `expected`. The
    /// digest is protected from garbage collection only once verified, so bytes that turn out
    /// to be something else never leave a protection behind.
    pub(crate) async fn put_verified<S>(&self, key: &Path, body: S, expected: &Digest) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let pending = self.stream_in(key, body, expected.algorithm()).await?;
        if &pending.digest != expected {
            let actual = pending.digest.clone();
            self.abort(pending).await;
            return Err(StoreError::DigestMismatch { expected: expected.clone(), actual });
        }
        if let Err(e) = self.protect(std::slice::from_ref(expected)).await {
            self.abort(pending).await;
            return Err(e);
        }
        let size = pending.size;
        self.commit(pending).await?;
        Ok(size)
    }
}

/// A multipart write in progress, aborted if dropped before [`Multipart::finish`] or
/// [`Multipart::abort`] (see the module doc).
struct Multipart {
    /// `None` once finished or aborted.
    write: Option<WriteMultipart>,
    key: Path,
}

impl Multipart {
    /// Queues bytes, waiting while too many parts are in flight.
    async fn put(&mut self, bytes: Bytes) -> Result<()> {
        if let Some(m) = self.write.as_mut() {
            m.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            m.put(bytes);
        }
        Ok(())
    }

    /// Sends the last part and completes the upload (object_store aborts it if that fails).
    async fn finish(mut self) -> Result<()> {
        if let Some(m) = self.write.take() {
            m.finish().await?;
        }
        Ok(())
    }

    /// Aborts now, waiting for the store's answer; a failure is only logged, since the bytes
    /// were never visible (a lifecycle rule on the bucket removes what an outage left).
    async fn abort(mut self) {
        if let Some(m) = self.write.take() {
            if let Err(e) = m.abort().await {
                tracing::warn!(key = %self.key, error = %e, "aborting a multipart write failed");
            }
        }
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        let Some(m) = self.write.take() else { return };
        let key = std::mem::replace(&mut self.key, Path::from(""));
        // Dropped midway (the request's future was cancelled): abort in the background, since
        // drop cannot wait. Outside a runtime (never in the server) there is nothing to run it on.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    match m.abort().await {
                        Ok(()) => tracing::debug!(%key, "aborted an abandoned multipart write"),
                        Err(e) => tracing::warn!(%key, error = %e, "aborting an abandoned multipart write failed"),
                    }
                });
            }
            Err(_) => tracing::warn!(%key, "a multipart write was dropped outside a runtime and is not aborted"),
        }
    }
}
