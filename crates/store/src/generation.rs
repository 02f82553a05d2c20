//! How replicas on one bucket learn that another one removed a tag or link they may have
//! cached, without talking to each other: the bucket's *generation* object
//! (`cache/generation`, see `keys.rs`).
//!
//! - Whoever removes a tag, a manifest link or a layer link (a DELETE, garbage collection)
//!   first removes it from the bucket, then ends its own cache epoch, then writes a fresh
//!   random value into the generation object, and only then answers. Concurrent removals
//!   share one write, provided it started after their own removal.
//! - A replica reads the generation object at most once per check interval (one second, or
//!   the tag TTL when that is shorter), shared by all requests, and only when a request needs
//!   its caches: a request may use cached pointers only if a read of the generation *started*
//!   less than one interval before the request asked. A value different from the last one
//!   read ends the epoch: every entry read in an older epoch is void.
//!
//! So a request that reaches a replica more than one interval after a removal was
//! acknowledged relies on a generation read that started after the new value was written,
//! which (S3 being read-after-write consistent) saw it: that request reads the removed pointer
//! from the bucket and finds it gone. Entries carry the epoch of *before* their read, so a
//! read that raced a removal is void too. The bound needs no clocks shared between machines.
//!
//! An exclusive store (the filesystem) has one epoch forever: every change passes through
//! its own cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::GetOptions;

use crate::cache::Mode;
use crate::{keys, Result, Store};

/// The longest a replica relies on its last read of the generation.
pub(crate) const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the last read of the generation object found.
#[derive(PartialEq, Eq)]
enum Seen {
    /// Not read yet: the first read always starts a new epoch.
    Unknown,
    Absent,
    Value {
        bytes: Bytes,
        etag: Option<String>,
    },
}

/// A shared store's epoch and what it takes to keep it current.
pub(crate) struct Generation {
    /// `None` on an exclusive store, whose epoch is always 0.
    shared: Option<Shared>,
}

struct Shared {
    interval: Duration,
    /// The origin of the times kept as nanoseconds below.
    origin: Instant,
    epoch: AtomicU64,
    /// When the last completed read of the generation started, in nanoseconds after
    /// `origin`, plus one (0: never).
    checked: AtomicU64,
    /// The last read's result; held across a read, so one read serves every waiting request.
    seen: tokio::sync::Mutex<Seen>,
    /// When the last write of a new generation started; held across the write, so
    /// concurrent removals share one.
    written: tokio::sync::Mutex<Option<Instant>>,
}

impl Shared {
    fn since_origin(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_nanos().min(u64::MAX as u128 - 1) as u64 + 1
    }

    /// Whether a read of the generation that started within one interval before `asked`
    /// completed.
    fn checked_for(&self, asked: Instant) -> bool {
        let checked = self.checked.load(Ordering::Acquire);
        checked != 0 && self.since_origin(asked) < checked.saturating_add(self.interval.as_nanos() as u64)
    }
}

impl Generation {
    pub(crate) fn new(mode: Mode) -> Self {
        let shared = match mode {
            Mode::Exclusive => None,
            Mode::Shared { tag_ttl } => Some(Shared {
                interval: tag_ttl.min(MAX_CHECK_INTERVAL),
                origin: Instant::now(),
                epoch: AtomicU64::new(0),
                checked: AtomicU64::new(0),
                seen: tokio::sync::Mutex::new(Seen::Unknown),
                written: tokio::sync::Mutex::new(None),
            }),
        };
        Generation { shared }
    }

    /// The current epoch, without checking the bucket: what an entry about to be read or
    /// written from the store is recorded with (taken before the store is asked).
    pub(crate) fn now(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.epoch.load(Ordering::Acquire))
    }

    /// Ends the epoch: every entry read before now is void.
    fn end_epoch(&self) {
        if let Some(s) = &self.shared {
            s.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Store {
    /// The epoch whose cached pointers may answer this read, or `None` when they may not:
    /// on an exclusive store always 0 (its cache is the truth); on a shared one only for a
    /// read that accepts the bounded staleness (`cached`), when pointers are cached at all.
    pub(crate) async fn usable_epoch(&self, cached: bool) -> Result<Option<u64>> {
        match self.cache().mode {
            Mode::Exclusive => Ok(Some(0)),
            m if cached && m.caches_pointers() => Ok(Some(self.current_epoch().await?)),
            Mode::Shared { .. } => Ok(None),
        }
    }

    /// The epoch whose cached pointers may answer a request asking now: on a shared store,
    /// after making sure the generation object was read within the check interval.
    pub(crate) async fn current_epoch(&self) -> Result<u64> {
        let Some(s) = &self.inner.generation.shared else { return Ok(0) };
        let asked = Instant::now();
        if s.checked_for(asked) {
            return Ok(s.epoch.load(Ordering::Acquire));
        }
        let mut seen = s.seen.lock().await;
        // A read that started after `asked` minus the interval may have completed meanwhile.
        if s.checked_for(asked) {
            return Ok(s.epoch.load(Ordering::Acquire));
        }
        let started = Instant::now();
        let etag = match &*seen {
            Seen::Value { etag, .. } => etag.clone(),
            _ => None,
        };
        let opts = GetOptions { if_none_match: etag, ..Default::default() };
        let now_seen = match self.os().get_opts(&keys::cache_generation(), opts).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                Some(Seen::Value { bytes: r.bytes().await?, etag })
            }
            Err(object_store::Error::NotModified { .. }) => None,
            Err(object_store::Error::NotFound { .. }) => Some(Seen::Absent),
            Err(e) => return Err(e.into()),
        };
        if let Some(now_seen) = now_seen {
            let changed = match (&*seen, &now_seen) {
                (Seen::Value { bytes: a, .. }, Seen::Value { bytes: b, .. }) => a != b,
                (Seen::Absent, Seen::Absent) => false,
                _ => true,
            };
            if changed {
                self.inner.generation.end_epoch();
                *seen = now_seen;
            }
        }
        s.checked.store(s.since_origin(started), Ordering::Release);
        Ok(s.epoch.load(Ordering::Acquire))
    }

    /// Tells every replica's caches that tags or links were removed from the bucket: ends
    /// this replica's epoch, then writes a new generation (unless a write that started after
    /// this call already completed). Call after the removal, before answering.
    pub(crate) async fn publish_removal(&self) -> Result<()> {
        let Some(s) = &self.inner.generation.shared else { return Ok(()) };
        self.inner.generation.end_epoch();
        let removed = Instant::now();
        let mut written = s.written.lock().await;
        if written.is_some_and(|w| w > removed) {
            return Ok(());
        }
        let started = Instant::now();
        let value = uuid::Uuid::new_v4().simple().to_string();
        self.write_small(&keys::cache_generation(), Bytes::from(value)).await?;
        *written = Some(started);
        Ok(())
    }
}
