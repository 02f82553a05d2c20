//! Blob downloads that resume with `Range` after an interrupted transfer.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci::Digest;
use reqwest::header::{HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};

use crate::client::ByteStream;
use crate::ranged::Target;
use crate::session::Session;
use crate::UpstreamError;

impl Session {
    /// Streams a blob of `size` bytes. Interrupted transfers resume with `Range` from the
    /// last byte received; the stream fails if the upstream sends more than `size` bytes or
    /// cannot finish. The digest is verified by whoever stores the stream, in the same pass.
    /// A blob of at least two ranges is fetched by concurrent ranges (`ranged.rs`).
    pub async fn blob(&self, digest: &Digest, size: u64) -> Result<ByteStream, UpstreamError> {
        let what = format!("blob {digest} of {}", self.repository);
        let url = format!("{}/blobs/{digest}", self.base);
        let range = self.client.inner.cfg.range_size;
        if range > 0 && size >= range.saturating_mul(2) {
            return self.ranged_blob(Target { session: self.clone(), url, what, size }).await;
        }
        let resp = self.send(Method::GET, &url, HeaderMap::new(), &what).await?;
        self.check_length(&resp, size, &what)?;
        Ok(BlobDownload::stream(self.clone(), url, what, size, resp))
    }

    /// `len` bytes of a blob from byte `start` (one `Range` request): what the registry holds
    /// there, to compare with a copy stored for someone else. `None` when the registry
    /// ignores the range (answers 200 with the whole blob, which is not read).
    pub async fn blob_range(&self, digest: &Digest, start: u64, len: u64) -> Result<Option<Bytes>, UpstreamError> {
        let what = format!("blob {digest} of {}", self.repository);
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{}", start + len.max(1) - 1)) {
            h.insert(RANGE, v);
        }
        let resp = self.send(Method::GET, &format!("{}/blobs/{digest}", self.base), h, &what).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Ok(None);
        }
        let first = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(parse_content_range).map(|(f, _, _)| f);
        if first != Some(start) {
            return Err(UpstreamError::Protocol {
                registry: self.registry.clone(),
                what,
                detail: format!("asked for bytes from {start}, got Content-Range starting at {first:?}"),
            });
        }
        let mut out = bytes::BytesMut::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.unreachable_error(&e))?;
            out.extend_from_slice(&chunk);
            if out.len() as u64 >= len {
                break;
            }
        }
        out.truncate(len as usize);
        Ok(Some(out.freeze()))
    }

    /// The size of a blob as the registry states it (HEAD): `None` when it does not hold
    /// the blob. A mirror asks before fetching (to know the length it answers with) and
    /// before reusing a copy stored for someone else (the upstream must hold it too).
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, UpstreamError> {
        let what = format!("blob {digest} of {}", self.repository);
        match self.send(Method::HEAD, &format!("{}/blobs/{digest}", self.base), HeaderMap::new(), &what).await {
            // The header itself: a HEAD answer's body is empty, whatever its length says.
            Ok(resp) => match resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
                Some(len) => Ok(Some(len)),
                None => Err(UpstreamError::Protocol { registry: self.registry.clone(), what, detail: "no Content-Length".into() }),
            },
            Err(UpstreamError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Parses `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let (range, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (first.trim().parse::<u64>().ok()?, last.trim().parse::<u64>().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    (first <= last).then_some((first, last, total))
}

impl Session {
    /// A whole-blob answer whose `Content-Length` is not the descriptor's size can never
    /// match it: fail now as corrupt, rather than read it, resume past its end (416) and
    /// report the upstream unreachable after the retries.
    pub(crate) fn check_length(&self, resp: &Response, size: u64, what: &str) -> Result<(), UpstreamError> {
        match resp.content_length() {
            Some(len) if resp.status() == StatusCode::OK && len != size => {
                Err(UpstreamError::SizeMismatch { registry: self.registry.clone(), what: what.into(), expected: size, actual: len })
            }
            _ => Ok(()),
        }
    }
}

/// State of one resumable blob download.
pub(crate) struct BlobDownload {
    session: Session,
    url: String,
    what: String,
    size: u64,
    received: u64,
    /// Bytes to drop from a body that restarted at 0 (the upstream ignored our Range).
    skip: u64,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    resumes: u32,
    done: bool,
}

impl BlobDownload {
    /// The blob as one stream, from `resp` (a whole-blob answer) on.
    pub(crate) fn stream(session: Session, url: String, what: String, size: u64, resp: Response) -> ByteStream {
        let state = BlobDownload {
            session,
            url,
            what,
            size,
            received: 0,
            skip: 0,
            body: Some(resp.bytes_stream().boxed()),
            resumes: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move { st.next().await.map(|item| (item, st)) }).boxed()
    }

    fn fail(&mut self, e: UpstreamError) -> Option<std::io::Result<Bytes>> {
        self.done = true;
        Some(Err(std::io::Error::other(e)))
    }

    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                if let Err(e) = self.resume().await {
                    return self.fail(e);
                }
                continue;
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let drop = self.skip.min(chunk.len() as u64) as usize;
                        self.skip -= drop as u64;
                        chunk = chunk.slice(drop..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.received += chunk.len() as u64;
                    if self.received > self.size {
                        let (registry, what) = (self.session.registry.clone(), self.what.clone());
                        return self.fail(UpstreamError::SizeMismatch { registry, what, expected: self.size, actual: self.received });
                    }
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    tracing::warn!(registry = %self.session.registry, what = %self.what, received = self.received, error = %e, "blob download interrupted; resuming");
                    self.body = None;
                }
                None if self.received == self.size => {
                    self.done = true;
                    return None;
                }
                None => {
                    tracing::warn!(registry = %self.session.registry, what = %self.what, received = self.received, "blob body ended early; resuming");
                    self.body = None;
                }
            }
        }
    }

    /// Re-requests the rest of the blob with `Range`, after a backoff.
    async fn resume(&mut self) -> Result<(), UpstreamError> {
        let policy = self.session.client.inner.policy;
        self.resumes += 1;
        if self.resumes >= policy.attempts {
            return Err(UpstreamError::Unreachable {
                registry: self.session.registry.clone(),
                detail: format!("{} interrupted {} times, {} of {} bytes received", self.what, self.resumes, self.received, self.size),
            });
        }
        tokio::time::sleep(policy.delay(self.resumes, None)).await;
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-", self.received)) {
            h.insert(RANGE, v);
        }
        let resp = self.session.send(Method::GET, &self.url, h, &self.what).await?;
        self.session.check_length(&resp, self.size, &self.what)?;
        self.skip = if resp.status() == StatusCode::PARTIAL_CONTENT {
            let start =
                resp.headers().get("content-range").and_then(|v| v.to_str().ok()).and_then(parse_content_range).map(|(first, _, _)| first);
            if start != Some(self.received) {
                return Err(UpstreamError::Protocol {
                    registry: self.session.registry.clone(),
                    what: self.what.clone(),
                    detail: format!("asked to resume at byte {}, got Content-Range starting at {start:?}", self.received),
                });
            }
            0
        } else {
            self.received
        };
        self.body = Some(resp.bytes_stream().boxed());
        Ok(())
    }
}
