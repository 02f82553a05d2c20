//! The two-flag handshake between writers and collectors (see the module docs of `gc`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use oci::{CompactDigest, Digest};

use super::{concurrently, GcOptions, GcReport, DELETING_STALE, SWEEP_CONCURRENCY};
use crate::age;
use crate::keys;
use crate::{Result, Store, StoreError};

// A collection's deletion flags live in a folder of its own run (`keys::deleting`): a run
// releasing its flags can never unflag a digest that another run (on this replica or
// another) is still removing, and a run's flags share one folder (a folder per digest would
// cost a directory creation and removal per digest on the filesystem).

/// One run's parameters for the handshake.
pub(super) struct Run {
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

/// A digest this run claimed: whether it may be removed, when the flag was written, and
/// whether an (old) protection exists, to remove with the bytes.
#[derive(Clone, Copy)]
pub(super) struct Claim {
    pub(super) ok: bool,
    pub(super) at: Instant,
    pub(super) protection: bool,
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
        // Runs flag digests in folders of their own: list the runs, then look for each
        // digest in each. A run that starts after this listing writes its flags after our
        // protections, so it sees them.
        let runs = self.os().list_with_delimiter(Some(&keys::deleting_runs())).await?.common_prefixes;
        for run in runs.iter().filter_map(keys::deleting_run_of_key) {
            for d in digests {
                if let Some(meta) = self.head_meta(&keys::deleting(run, d)).await? {
                    if age(&meta) < DELETING_STALE {
                        return Err(StoreError::BeingCollected(d.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn head_meta(&self, key: &Path) -> Result<Option<ObjectMeta>> {
        match self.os().head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        Ok(self.os().list(Some(prefix)).try_collect().await?)
    }

    /// The collector's side of the handshake: flags `d` for deletion unless a writer
    /// protects it (the flag stays until [`Self::release`]).
    pub(super) async fn claim(&self, d: &Digest, run: &Run) -> Result<Claimed> {
        let max_age = run.max_age();
        if run.dry_run {
            let protection = self.head_meta(&keys::protect(d)).await?;
            return Ok(Claimed { removable: protection.as_ref().is_none_or(|m| age(m) > max_age), old_protection: protection.is_some() });
        }
        self.write_marker(&keys::deleting(&run.id, d)).await?;
        let protection = self.head_meta(&keys::protect(d)).await?;
        let protected = protection.as_ref().is_some_and(|m| age(m) <= max_age);
        if protected {
            self.remove(&keys::deleting(&run.id, d)).await?;
        }
        Ok(Claimed { removable: !protected, old_protection: protection.is_some() })
    }

    pub(super) async fn release(&self, d: &Digest, run: &Run) -> Result<()> {
        self.remove(&keys::deleting(&run.id, d)).await
    }

    /// Claims digests for deletion, each once per run (links and bytes of one digest share
    /// a claim), several at a time. A claim older than half the staleness limit is renewed:
    /// writers ignore stale flags, so a long run must not act on one.
    pub(super) async fn claim_all(
        &self,
        digests: Vec<CompactDigest>,
        claimed: &mut BTreeMap<CompactDigest, Claim>,
        run: &Run,
        report: &mut GcReport,
    ) -> Result<()> {
        let todo: BTreeSet<CompactDigest> =
            digests.into_iter().filter(|d| claimed.get(d).is_none_or(|c| c.ok && c.at.elapsed() >= DELETING_STALE / 2)).collect();
        let results: Vec<(CompactDigest, Claim)> = futures::stream::iter(todo)
            .map(|d: CompactDigest| async move {
                let at = Instant::now();
                let c = self.claim(&d.digest(), run).await?;
                Ok::<_, StoreError>((d, Claim { ok: c.removable, at, protection: c.old_protection }))
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .try_collect()
            .await?;
        for (d, c) in results {
            if !c.ok {
                report.protected += 1;
            }
            claimed.insert(d, c);
        }
        Ok(())
    }

    /// On the filesystem, which keeps empty directories (see `Backend::filesystem`), removes
    /// a run's flag folder once its flags are gone: writers list the run folders on every
    /// protection, so spent ones must not pile up. Only that run writes there, so removing
    /// it races nothing; a folder that is not empty yet is left alone.
    pub(super) async fn remove_run_folder(&self, run: &str) {
        self.inner.backend.remove_empty_folders(&keys::deleting_run(run)).await;
    }

    /// After a sweep: drops the protections of the bytes removed (under our flags, so a
    /// writer protecting one since our claim saw the flag and gave up), forgets protections of
    /// digests with no bytes, releases our flags and clears crashed collectors' flags.
    pub(super) async fn release_all(
        &self,
        opts: &GcOptions,
        run: &Run,
        claimed: &BTreeMap<CompactDigest, Claim>,
        listed_blobs: &HashSet<CompactDigest>,
        removed_blobs: &[CompactDigest],
    ) -> Result<()> {
        // Drop the protections of the bytes we removed, under our flags (a writer protecting
        // one of them since our claim saw the flag and gave up), then release our flags.
        let unprotect: Vec<Digest> =
            removed_blobs.iter().filter(|d| claimed.get(*d).is_some_and(|c| c.protection)).map(CompactDigest::digest).collect();
        concurrently(unprotect, |d: Digest| async move { self.remove(&keys::protect(&d)).await }).await?;
        // Protections of digests with no bytes at all (an upload that failed, bytes
        // another run removed): removed under a claim, and only once older than any
        // run may last, since a long run started earlier may still be counting on them.
        let forgotten = DELETING_STALE + opts.protect_window + run.slack;
        for meta in self.list_all(&keys::protections()).await? {
            let Some(d) = keys::parse_protect_key(&meta.location) else { continue };
            let compact = CompactDigest::of(&d);
            if listed_blobs.contains(&compact) || claimed.contains_key(&compact) || age(&meta) < forgotten {
                continue;
            }
            let old = Run { id: run.id.clone(), dry_run: false, started: Instant::now(), protect_window: forgotten, slack: Duration::ZERO };
            if self.claim(&d, &old).await?.removable {
                self.remove(&keys::protect(&d)).await?;
                self.release(&d, &old).await?;
            }
        }
        let ours: Vec<Digest> = claimed.iter().filter(|(_, c)| c.ok).map(|(d, _)| d.digest()).collect();
        concurrently(ours, |d: Digest| async move { self.release(&d, run).await }).await?;
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
