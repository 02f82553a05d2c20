//! Streaming writes: hash bytes in one pass as they go into the store, and make them visible
//! only on `commit`. Bodies shorter than one part go out in a single `put`; longer ones through
//! a multipart upload that the backend publishes atomically on completion (a rename on the
//! filesystem, CompleteMultipartUpload on S3), so a crash never leaves a partial object.
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
    /// Hashed only (the object already exists): nothing to write.
    Discard,
}

impl Store {
    /// Streams `body` towards `key`, hashing with `alg`. When `write` is false the bytes are only
    /// hashed (used when the content is already stored).
    pub(crate) async fn stream_in<S>(&self, key: &Path, body: S, alg: Algorithm, write: bool) -> Result<Pending>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let chunk = self.inner.chunk_size;
        let mut body = std::pin::pin!(body);
        let mut hasher = DigestHasher::new(alg);
        let mut size = 0u64;
        let mut small: Vec<Bytes> = Vec::new();
        let mut small_len = 0usize;
        let mut multipart: Option<Multipart> = None;
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
            if !write {
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
        let body = match (write, multipart) {
            (false, _) => PendingBody::Discard,
            (true, Some(m)) => PendingBody::Multipart(m),
            (true, None) => PendingBody::Small(small.into_iter().collect()),
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
            PendingBody::Discard => {}
        }
        Ok(())
    }

    /// Drops pending bytes; nothing becomes visible.
    pub(crate) async fn abort(&self, p: Pending) {
        if let PendingBody::Multipart(m) = p.body {
            m.abort().await;
        }
    }

    /// Streams `body` into `key` if and only if it hashes to `expected`.
    pub(crate) async fn put_verified<S>(&self, key: &Path, body: S, expected: &Digest, write: bool) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let pending = self.stream_in(key, body, expected.algorithm(), write).await?;
        if &pending.digest != expected {
            let actual = pending.digest.clone();
            self.abort(pending).await;
            return Err(StoreError::DigestMismatch { expected: expected.clone(), actual });
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
