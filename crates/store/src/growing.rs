//! Reading a file while one writer appends a blob to it: the follower shared by the blob
//! cache's fills (`blob_cache.rs`) and the mirror's upstream fetches (the server's
//! `mirror/fill.rs`).
//!
//! Why: when many clients ask at once for a blob that one task is still downloading, each
//! should stream from that one download instead of starting its own. The writer announces
//! how many bytes the file holds through a `watch` channel; every reader sends what is there
//! and waits for more. The last byte a reader is to send is held back until the writer has
//! verified the whole blob's digest: if the bytes turn out wrong, the stream ends in an error
//! one byte short, so no client (an engine checks length and digest) accepts them.

use std::ops::Range;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;

use crate::blobs::{map_next, FileStreamSlot};
use crate::ByteStream;

/// Bytes a reader waits for before sending, unless the blob's end comes first.
const MIN_CHUNK: u64 = 256 << 10;

/// How far the writer of a growing file has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// This many bytes are in the file (written through: a reader opening it sees them).
    Running(u64),
    /// Every byte is in the file and the digest matched.
    Done,
    /// The download or its verification failed: readers end in this error.
    Failed(String),
}

/// Streams `range` of `file`, a blob being written as `progress` reports: bytes as soon as
/// they are written, except the range's last byte, which waits for [`Progress::Done`].
///
/// The file must only ever be appended to and never truncated (it may be renamed or
/// unlinked): chunks are mapped from it (see `blobs::map_next`).
pub fn follow(file: Arc<std::fs::File>, range: Range<u64>, progress: watch::Receiver<Progress>) -> ByteStream {
    let end = range.end;
    let slot = FileStreamSlot::open();
    futures::stream::try_unfold((range.start, progress), move |(pos, mut progress)| {
        let _counted = &slot;
        let file = file.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            // Wait until there is something to send: bytes short of the last one, or the
            // last one once verified.
            let limit = loop {
                let state = progress.borrow_and_update().clone();
                match state {
                    Progress::Done => break end,
                    Progress::Failed(why) => return Err(std::io::Error::other(why)),
                    // A batch at a time (or all but the last byte): a chunk per few KiB
                    // that the writer adds would cost a mapping and a wake-up each.
                    Progress::Running(n) if n.min(end - 1) >= (pos + MIN_CHUNK).min(end - 1) && n.min(end - 1) > pos => {
                        break n.min(end - 1)
                    }
                    Progress::Running(_) => {}
                }
                if progress.changed().await.is_err() {
                    return Err(std::io::Error::other("the download of the blob ended without a result"));
                }
            };
            let chunk = map_next(file, pos, limit).await?;
            let next = pos + chunk.len() as u64;
            Ok(Some((chunk, (next, progress))))
        }
    })
    .boxed()
}
