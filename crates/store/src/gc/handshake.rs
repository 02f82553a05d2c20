//! The two-flag handshake between writers and collectors (see the module docs of `gc`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectMeta;
use oci::{CompactDigest, Digest};

use super::marks::WhyMap;
use super::{GcOptions, DELETING_STALE};
use crate::age;
use crate::keys;
use crate::{Result, Store, StoreError};

// A collection's deletion flags live in a folder of its own run (`keys::deleting`): a run
// releasing its flags can never unflag a digest that another run (on this replica or
// another) is still removing, and a run's flags share one folder (a folder per digest would
// cost a directory creation and removal per digest on the filesystem).

/// One run's parameters for the handshake.
#[derive(Clone)]
pub(super) struct Run {
    /// Numbers this run's batches of flags.
    pub(super) batches: Arc<AtomicU64>,
    /// Names this run's deletion flags.
    pub(super) id: String,
    pub(super) dry_run: bool,
    pub(super) started: Instant,
    pub(super) protect_window: Duration,
    /// Extra age a protection may have and still count: object times on S3 have whole
    /// seconds, so a protection written just now can look up to a second old.
    pub(super) slack: Duration,
}

impl Run {
    /// How old a protection may be and still count for this run.
    pub(super) fn max_age(&self) -> Duration {
        self.started.elapsed() + self.protect_window + self.slack
    }
}

/// A batch of this run's deletion flags, held until released.
#[must_use = "flags stay (and writers are refused) until released"]
pub(super) struct Flags {
    /// `None` in a dry run.
    key: Option<Path>,
}

/// The text of a batch of flags: one digest per line.
fn flag_lines<'a>(digests: impl Iterator<Item = &'a Digest>) -> Bytes {
    let mut text = String::new();
    for d in digests {
        text.push_str(&d.to_string());
        text.push('\n');
    }
    Bytes::from(text)
}

/// What a claim found: whether the digest may be removed, and whether a protection exists
/// that is too old to count (removed together with the bytes).
pub(super) struct Claimed {
    pub(super) removable: bool,
    pub(super) old_protection: bool,
}

impl Store {
    /// Protects digests a writer is about to rely on, then checks no collector is removing
    /// them. Call before checking that the digests exist.
    pub async fn protect(&self, digests: &[Digest]) -> Result<()> {
        for d in digests {
            self.write_marker(&keys::protect(d)).await?;
        }
        // Running collections name what they are removing in batch files: list them, then
        // look for our digests in each. A run that writes a batch after this listing checks
        // the protections after writing it, so it sees ours.
        for meta in self.list_all(&keys::deleting_runs()).await? {
            if age(&meta) >= DELETING_STALE {
                continue;
            }
            // Released since listed: the run is done with it, and what it removed is gone
            // before our caller checks that the digests exist.
            let Some(batch) = self.read_small(&meta.location).await? else { continue };
            let batch = String::from_utf8_lossy(&batch);
            if let Some(d) = digests.iter().find(|d| batch.lines().any(|l| l == d.to_string())) {
                return Err(StoreError::BeingCollected(d.clone()));
            }
        }
        Ok(())
    }

    pub(super) async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        Ok(self.os().list(Some(prefix)).try_collect().await?)
    }

    /// The collector's side of the handshake: claims a batch of distinct digests for
    /// deletion. It writes a file of this run's flags naming every one (a dry run writes
    /// none), and only then looks for their protections: of a writer and this run,
    /// whichever writes second sees the other's. A digest a writer protected recently is
    /// kept, and dropped from the file at once; the others stay flagged until
    /// [`Self::release`]. One file per batch, not per digest: a collection removes hundreds
    /// of thousands of objects, and S3 bills, and a filesystem pays for, every object.
    pub(super) async fn claim(&self, digests: &[Digest], run: &Run) -> Result<(Flags, Vec<Claimed>)> {
        let flags = Flags { key: (!run.dry_run).then(|| keys::deleting(&run.id, run.batches.fetch_add(1, Ordering::Relaxed))) };
        if let Some(key) = &flags.key {
            if let Err(e) = self.inner.backend.write_volatile(key, flag_lines(digests.iter())).await {
                let _ = self.release(flags).await;
                return Err(e);
            }
        }
        let protections: Vec<Path> = digests.iter().map(keys::protect).collect();
        let ages = match self.inner.backend.ages(&protections).await {
            Ok(ages) => ages,
            Err(e) => {
                let _ = self.release(flags).await;
                return Err(e);
            }
        };
        let max_age = run.max_age();
        let claims: Vec<Claimed> =
            ages.iter().map(|a| Claimed { removable: a.is_none_or(|a| a > max_age), old_protection: a.is_some() }).collect();
        if let Some(key) = flags.key.as_ref().filter(|_| claims.iter().any(|c| !c.removable)) {
            let removable = digests.iter().zip(&claims).filter(|(_, c)| c.removable).map(|(d, _)| d);
            self.inner.backend.write_volatile(key, flag_lines(removable)).await?;
        }
        Ok((flags, claims))
    }

    /// Removes a batch of this run's flags, once what was removed under them is gone.
    pub(super) async fn release(&self, flags: Flags) -> Result<()> {
        match flags.key {
            Some(key) => self.remove(&key).await,
            None => Ok(()),
        }
    }

    /// On the filesystem, which keeps empty directories (see `Backend::filesystem`), removes
    /// a run's flag folder once its flags are gone: writers list the run folders on every
    /// protection, so spent ones must not pile up. Only that run writes there, so removing
    /// it races nothing; a folder that is not empty yet is left alone.
    pub(super) async fn remove_run_folder(&self, run: &str) {
        self.inner.backend.remove_empty_folders(&keys::deleting_run(run)).await;
    }

    /// After a sweep: forgets the protections of digests with no bytes (an upload that
    /// failed, bytes another run removed) and clears crashed collectors' flags. The
    /// protections of the bytes this run removed went with them, batch by batch.
    /// A protection of a digest marked live (or kept by a reference) is kept without a look:
    /// its bytes were listed, or a fingerprint shared with one was (at worst a marker
    /// outlives its bytes until a later run). Only old protections of other digests cost a
    /// look at the blob, so the run holds nothing per listed blob for this.
    pub(super) async fn forget_protections(&self, opts: &GcOptions, run: &Run, live: &WhyMap, refs: &WhyMap) -> Result<()> {
        // Removed under a claim, and only once older than any run may last, since a long
        // run started earlier may still be counting on them.
        let forgotten = DELETING_STALE + opts.protect_window + run.slack;
        let mut orphans = Vec::new();
        let mut protections = self.os().list(Some(&keys::protections()));
        while let Some(meta) = protections.try_next().await? {
            let Some(d) = keys::parse_protect_key(&meta.location) else { continue };
            if age(&meta) < forgotten {
                continue;
            }
            let compact = CompactDigest::of(&d);
            if live.get(&compact).is_none() && refs.get(&compact).is_none() {
                orphans.push(d);
            }
        }
        drop(protections);
        for d in orphans {
            if self.blob_size_fresh(&d).await?.is_some() {
                continue;
            }
            let old = Run { protect_window: forgotten, slack: Duration::ZERO, started: Instant::now(), dry_run: false, ..run.clone() };
            let (flags, claims) = self.claim(std::slice::from_ref(&d), &old).await?;
            let removed = match claims.first() {
                Some(c) if c.removable => self.remove(&keys::protect(&d)).await,
                _ => Ok(()),
            };
            self.release(flags).await?;
            removed?;
        }
        // Flags of crashed collectors, ignored by writers since they went stale.
        let mut crashed = BTreeSet::new();
        for meta in self.list_all(&keys::deleting_runs()).await? {
            if age(&meta) >= DELETING_STALE * 2 {
                self.remove(&meta.location).await?;
                if let Some(r) = keys::deleting_run_of_key(&meta.location) {
                    crashed.insert(r.to_string());
                }
            }
        }
        for r in crashed {
            self.remove_run_folder(&r).await;
        }
        Ok(())
    }
}
