//! Big blobs fetched as several concurrent `Range` requests, handed on as one ordered stream.
//!
//! Behind a wide-area link one connection is often capped (per-connection rate limits, long
//! round trips), so a big layer on one connection takes as long as that cap says. A blob of
//! at least two ranges (`UpstreamConfig::range_size`) is asked for in pieces, as containerd
//! does: the first range alone, and if the upstream answers 206 with the expected
//! `Content-Range`, the next ones while their memory is available (`budget.rs`), up to
//! `range_parallel` at a time. An upstream that answers 200 ignores `Range`: that answer
//! is the whole blob, streamed on one connection as before (`blob.rs`).
//!
//! Each range is a task of its own, so ranges keep arriving while the store writes; the
//! stream yields the first outstanding range as its bytes arrive and the later ones once
//! it is done, so the store still hashes and writes the blob in order in one pass. A range
//! that is cut resumes alone from its last byte received, at most `attempts` times; the
//! requests go to the registry's URL, so redirects to blob storage and token refreshes work
//! as for any request. Dropping the stream (a failed or cancelled staging) aborts them all.
//! Ranges speak HTTP/1.1 (`ClientInner::http_ranges`): each needs a connection of its own,
//! which HTTP/2 would not give them.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::blob::{parse_content_range, BlobDownload};
use crate::budget::Held;
use crate::client::ByteStream;
use crate::session::Session;
use crate::UpstreamError;

/// A blob to fetch by ranges.
#[derive(Clone)]
pub(crate) struct Target {
    pub session: Session,
    pub url: String,
    pub what: String,
    pub size: u64,
}

impl Target {
    fn protocol(&self, detail: String) -> UpstreamError {
        UpstreamError::Protocol { registry: self.session.registry.clone(), what: self.what.clone(), detail }
    }

    /// `GET` of bytes `start..end` (`end` exclusive).
    async fn request(&self, start: u64, end: u64) -> Result<Response, UpstreamError> {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{}", end - 1)) {
            h.insert(RANGE, v);
        }
        self.session.send_on(&self.session.client.inner.http_ranges, Method::GET, &self.url, h, &self.what).await
    }

    /// Where the body of `resp`, asked for from `start`, begins: `start` for a 206 whose
    /// `Content-Range` says so, 0 for a 200 (the whole blob, `Range` ignored).
    fn body_offset(&self, resp: &Response, start: u64) -> Result<u64, UpstreamError> {
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            self.session.check_length(resp, self.size, &self.what)?;
            return Ok(0);
        }
        let header = resp.headers().get("content-range").and_then(|v| v.to_str().ok());
        match header.and_then(parse_content_range) {
            Some((_, _, Some(total))) if total != self.size => Err(UpstreamError::SizeMismatch {
                registry: self.session.registry.clone(),
                what: self.what.clone(),
                expected: self.size,
                actual: total,
            }),
            Some((first, _, _)) if first == start => Ok(start),
            _ => Err(self.protocol(format!("asked for bytes from {start}, got Content-Range {header:?}"))),
        }
    }
}

impl Session {
    /// Streams a blob of `size` bytes by ranges (the module's doc says how). The first
    /// range is asked for here, so that a missing blob or refused credentials fail this call
    /// as they do for a whole-blob download.
    pub(crate) async fn ranged_blob(&self, target: Target) -> Result<ByteStream, UpstreamError> {
        let cfg = &self.client.inner.cfg;
        let (range, parallel) = (cfg.range_size, cfg.range_parallel.max(1));
        let first_end = range.min(target.size);
        let held = self.budget.acquire(first_end).await.ok_or_else(|| target.protocol("range budget closed".into()))?;
        let resp = target.request(0, first_end).await?;
        target.body_offset(&resp, 0)?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            tracing::info!(registry = %self.registry, what = %target.what, "the upstream ignores Range: one stream");
            drop(held);
            return Ok(BlobDownload::stream(self.clone(), target.url, target.what, target.size, resp));
        }
        let mut state = Ranged { target, range, parallel, next: 0, pending: VecDeque::new(), received: 0, done: false };
        state.launch(held, Some(resp));
        Ok(futures::stream::unfold(state, |mut st| async move { st.next().await.map(|item| (item, st)) }).boxed())
    }
}

/// One range launched: its bytes as they arrive, its task and its memory.
struct Launched {
    /// Exclusive end of the range in the blob.
    end: u64,
    rx: mpsc::UnboundedReceiver<Result<Bytes, UpstreamError>>,
    _task: AbortOnDrop,
    /// Given back when the store has taken the range's last byte (the entry is dropped).
    _held: Held,
}

/// Aborts a range's task when the download no longer wants it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// State of one ranged download, as the store consumes it.
struct Ranged {
    target: Target,
    range: u64,
    parallel: usize,
    /// Start of the next range to launch.
    next: u64,
    /// Launched ranges, in blob order; the first is the one being yielded.
    pending: VecDeque<Launched>,
    /// Bytes yielded so far.
    received: u64,
    done: bool,
}

impl Ranged {
    /// Length of the range starting at `next`.
    fn next_len(&self) -> u64 {
        self.range.min(self.target.size - self.next)
    }

    /// Starts the range at `next` with its memory held; `first` is its answer if the
    /// request was already sent.
    fn launch(&mut self, held: Held, first: Option<Response>) {
        let (start, end) = (self.next, self.next + self.next_len());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(fetch(self.target.clone(), start, end, first, tx));
        self.pending.push_back(Launched { end, rx, _task: AbortOnDrop(task), _held: held });
        self.next = end;
    }

    /// Launches further ranges while there are slots and memory free now; a range with
    /// nothing launched ahead of it waits for memory.
    async fn launch_more(&mut self) -> Result<(), UpstreamError> {
        while self.pending.len() < self.parallel && self.next < self.target.size {
            let len = self.next_len();
            let held = match self.budget().try_acquire(len) {
                Some(h) => h,
                None if self.pending.is_empty() => {
                    self.budget().acquire(len).await.ok_or_else(|| self.target.protocol("range budget closed".into()))?
                }
                None => break,
            };
            self.launch(held, None);
        }
        Ok(())
    }

    fn budget(&self) -> &crate::budget::Budget {
        &self.target.session.budget
    }

    fn fail(&mut self, e: UpstreamError) -> Option<std::io::Result<Bytes>> {
        self.done = true;
        self.pending.clear();
        Some(Err(std::io::Error::other(e)))
    }

    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            if let Err(e) = self.launch_more().await {
                return self.fail(e);
            }
            let Some(head) = self.pending.front_mut() else {
                self.done = true;
                return None;
            };
            match head.rx.recv().await {
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => return self.fail(e),
                None if self.received == head.end => {
                    self.pending.pop_front();
                }
                None => {
                    let detail = format!("the task fetching bytes up to {} stopped at {}", head.end, self.received);
                    let e = self.target.protocol(detail);
                    return self.fail(e);
                }
            }
        }
    }
}

/// Why one attempt at a range ended early.
enum Stop {
    /// Worth resuming: the connection broke or the body ended short.
    Interrupted(String),
    /// Not worth resuming: the upstream said no, or the consumer went away.
    Fatal(Option<UpstreamError>),
}

/// Fetches bytes `start..end` into `tx`, resuming alone from the last byte received when
/// cut, at most `attempts` times in all (with the retry policy's backoff).
async fn fetch(target: Target, start: u64, end: u64, mut first: Option<Response>, tx: mpsc::UnboundedSender<Result<Bytes, UpstreamError>>) {
    let policy = target.session.client.inner.policy;
    let mut pos = start;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let attempt = async {
            let resp = match first.take() {
                Some(r) => r,
                None => target.request(pos, end).await.map_err(|e| Stop::Fatal(Some(e)))?,
            };
            let offset = target.body_offset(&resp, pos).map_err(|e| Stop::Fatal(Some(e)))?;
            receive(resp.bytes_stream(), offset, &mut pos, end, &tx).await
        };
        let detail = match attempt.await {
            Ok(()) => return,
            Err(Stop::Fatal(e)) => {
                if let Some(e) = e {
                    let _ = tx.send(Err(e));
                }
                return;
            }
            Err(Stop::Interrupted(detail)) => detail,
        };
        let session = &target.session;
        if tries >= policy.attempts {
            let detail = format!("{}: bytes {start}-{} interrupted {tries} times, last at {pos}: {detail}", target.what, end - 1);
            let _ = tx.send(Err(UpstreamError::Unreachable { registry: session.registry.clone(), detail }));
            return;
        }
        tracing::warn!(registry = %session.registry, what = %target.what, start, end, received = pos - start, error = %detail, "range interrupted; resuming");
        tokio::time::sleep(policy.delay(tries, None)).await;
    }
}

/// Sends the body's bytes from `*pos` to `end` on, the body starting at blob offset `offset`.
async fn receive<E: std::error::Error>(
    mut body: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
    offset: u64,
    pos: &mut u64,
    end: u64,
    tx: &mpsc::UnboundedSender<Result<Bytes, UpstreamError>>,
) -> Result<(), Stop> {
    let mut at = offset;
    while *pos < end {
        let chunk = match body.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(Stop::Interrupted(crate::client::error_chain(&e))),
            None => return Err(Stop::Interrupted(format!("the body ended at byte {at}"))),
        };
        let (from, to) = (at, at + chunk.len() as u64);
        at = to;
        // The part of this chunk in `pos..end` (all of it, but for a whole-blob answer).
        let (lo, hi) = ((*pos).clamp(from, to), end.clamp(from, to));
        if lo >= hi {
            continue;
        }
        let part = chunk.slice((lo - from) as usize..(hi - from) as usize);
        if tx.send(Ok(part)).is_err() {
            return Err(Stop::Fatal(None));
        }
        *pos = hi;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks`, then `end` (an error, or a clean end if `None`).
    fn body(chunks: &[&'static [u8]], end: Option<&str>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let mut items: Vec<Result<Bytes, std::io::Error>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        items.extend(end.map(|e| Err(std::io::Error::other(e.to_string()))));
        futures::stream::iter(items)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Result<Bytes, UpstreamError>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(Ok(b)) = rx.try_recv() {
            out.extend_from_slice(&b);
        }
        out
    }

    #[tokio::test]
    async fn a_whole_blob_answer_gives_only_the_range_asked_for() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pos = 5;
        let r = receive(body(&[b"0123", b"4567", b"89ab", b"cdef"], None), 0, &mut pos, 11, &tx).await;
        assert!(r.is_ok());
        assert_eq!((pos, drain(&mut rx)), (11, b"56789a".to_vec()));
    }

    #[tokio::test]
    async fn a_cut_range_says_where_it_stopped_and_resumes_there() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut pos = 8;
        let r = receive(body(&[b"89", b"ab"], Some("connection reset")), 8, &mut pos, 16, &tx).await;
        assert!(matches!(r, Err(Stop::Interrupted(ref d)) if d.contains("reset")));
        assert_eq!(pos, 12);
        let r = receive(body(&[b"cd", b"ef"], None), 12, &mut pos, 16, &tx).await;
        assert!(r.is_ok());
        assert_eq!((pos, drain(&mut rx)), (16, b"89abcdef".to_vec()));
        let r = receive(body(&[b"01"], None), 0, &mut 0, 4, &tx).await;
        assert!(matches!(r, Err(Stop::Interrupted(_))), "a body that ends short is interrupted");
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, Some(1000))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 9-5/1000"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }
}
