//! The two-flag handshake between writers and collectors (see the module docs of `gc`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use oci::{CompactDigest, Digest};

use super::marks::Fingerprints;
use super::{GcOptions, DELETING_STALE};
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

    /// Claims a batch of distinct digests for deletion: writes this run's flag of every one
    /// (a dry run writes none), and only then looks for their protections, so that of a
    /// writer and this run, whichever wrote second sees the other's flag, as with [`Self::claim`].
    /// A digest a writer protected recently is kept, and its flag removed at once; the others
    /// stay flagged until [`Self::release_batch`].
    pub(super) async fn claim_batch(&self, digests: &[Digest], run: &Run) -> Result<Vec<Claimed>> {
        let flags: Vec<Path> = digests.iter().map(|d| keys::deleting(&run.id, d)).collect();
        if !run.dry_run {
            if let Err(e) = self.inner.backend.write_markers(&flags).await {
                let _ = self.inner.backend.remove_many(&flags).await;
                return Err(e);
            }
        }
        let protections: Vec<Path> = digests.iter().map(keys::protect).collect();
        let ages = match self.inner.backend.ages(&protections).await {
            Ok(ages) => ages,
            Err(e) => {
                let _ = self.release_batch(digests, run).await;
                return Err(e);
            }
        };
        let max_age = run.max_age();
        let claims: Vec<Claimed> =
            ages.iter().map(|a| Claimed { removable: a.is_none_or(|a| a > max_age), old_protection: a.is_some() }).collect();
        if !run.dry_run {
            let kept: Vec<Path> = flags.into_iter().zip(&claims).filter(|(_, c)| !c.removable).map(|(f, _)| f).collect();
            self.inner.backend.remove_many(&kept).await?;
        }
        Ok(claims)
    }

    /// Removes this run's flags of `digests`, once what was removed under them is gone.
    pub(super) async fn release_batch(&self, digests: &[Digest], run: &Run) -> Result<()> {
        if run.dry_run {
            return Ok(());
        }
        let flags: Vec<Path> = digests.iter().map(|d| keys::deleting(&run.id, d)).collect();
        self.inner.backend.remove_many(&flags).await
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
    /// `listed` holds the fingerprints of every blob the sweep listed: a protection whose
    /// digest shares one with a listed blob is kept (at worst a marker outlives its bytes
    /// until a later run).
    pub(super) async fn forget_protections(&self, opts: &GcOptions, run: &Run, listed: &Fingerprints) -> Result<()> {
        // Removed under a claim, and only once older than any run may last, since a long
        // run started earlier may still be counting on them.
        let forgotten = DELETING_STALE + opts.protect_window + run.slack;
        let mut orphans = Vec::new();
        let mut protections = self.os().list(Some(&keys::protections()));
        while let Some(meta) = protections.try_next().await? {
            let Some(d) = keys::parse_protect_key(&meta.location) else { continue };
            if !listed.contains(&CompactDigest::of(&d)) && age(&meta) >= forgotten {
                orphans.push(d);
            }
        }
        drop(protections);
        for d in orphans {
            let old = Run { id: run.id.clone(), dry_run: false, started: Instant::now(), protect_window: forgotten, slack: Duration::ZERO };
            if self.claim(&d, &old).await?.removable {
                self.remove(&keys::protect(&d)).await?;
                self.release(&d, &old).await?;
            }
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
