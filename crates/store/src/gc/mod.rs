//! Online garbage collection: mark from the roots, sweep what nothing reaches, while pushes,
//! stagings and pulls go on, on any backend and from any replica.
//!
//! Roots: every tag, every retained staging (an app's current staging and the `retain`
//! previous ones), and every manifest link younger than the grace period. Marking follows
//! indexes to their manifests, manifests to their config and layers, and live manifests to
//! their referrers. The tag schema's tags in app repositories (`<alg>-<hex>`, cosign's
//! `.sig`/`.att`/`.sbom`, copied by stagings) are not roots: marking follows one only from
//! the live manifest it names, so they never keep an unpinned app's signatures alive (its
//! records unpinned, or expired by retention) and go with the manifests they name. Sweeping removes, in order: staging records beyond retention, unreached
//! manifest links (with their referrer entries), layer links no live manifest uses, blobs no
//! remaining link or live manifest uses, upload sessions idle for longer than their expiry
//! (a day by default), and temporary files an interrupted write left over an hour ago.
//! Young objects (younger than the grace period) are never removed.
//!
//! **Races.** Writers and the collector use a two-flag handshake per digest, so correctness
//! holds with a zero grace period and across replicas (S3 is read-after-write consistent):
//! - a writer that is about to rely on digest `d` (accept a manifest naming it, report a blob
//!   as stored, mount it, reuse it for a staging) first writes `gc/protect/<d>`, then looks
//!   for `gc/deleting/<run>/<d>` of every run; if one is there (and recent) it treats `d` as
//!   gone;
//! - the collector, before removing anything of `d` (links to it, its bytes), writes its own
//!   flag `gc/deleting/<run>/<d>`, then looks for a recent `gc/protect/<d>`; if present it
//!   keeps `d`.
//!
//! Whichever writes second sees the other's flag, so a digest is never both relied upon and
//! removed. A writer commits what it protected (writes the manifest link, the layer link, the
//! staging record) within the *protect window* (`GcOptions::protect_window`, 60 s by default;
//! a staging protects again right before it commits). So a protection older than the
//! collection's start minus the window belongs to a writer that committed before the
//! collection listed the store, whose marking sees the commit; such protections are ignored.
//! A manifest kept because it is protected is marked like a root (its writer relies on all it
//! reaches, not only on what it protected: an index pushed over children pushed long ago).
//!
//! **Several collectors** (two replicas, or two requests to one) need no election: every
//! step is idempotent, and each run flags digests under its own run id, so one run releasing
//! its flags never unflags a digest another run is still removing. A protection is removed
//! only together with the bytes it protected, by the run that removed them (under its flag),
//! or, for digests with no bytes, under a claim once it is older than any run may last: a
//! protection written again while a cleanup listed it is never lost.
//!
//! The filesystem backend (one process) and the S3 backend (any number of replicas) run the
//! same code; on S3 object times have whole seconds, so a protection counts one second longer.
//!
//! The writer/collector handshake is in `handshake.rs`; marking and the sweep's phases in
//! `sweep.rs`.

mod handshake;
mod history;
mod sweep;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use oci::CompactDigest;
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::{Result, Store};
use handshake::{Claim, Run};
pub use history::GcRun;
pub(crate) use sweep::retained;
use sweep::{Inventory, Marks, Node};

/// A deletion flag older than this is stale (a collector crashed) and ignored.
pub(super) const DELETING_STALE: Duration = Duration::from_secs(600);
/// A temporary file untouched for this long belongs to no write in progress: a request whose
/// body stalls fails much sooner.
pub(super) const TEMP_FILE_AGE: Duration = Duration::from_secs(3600);
/// Claims and removals in flight at once: a sweep is a long list of small independent
/// operations, bound by syscalls on the filesystem and by round trips on S3.
pub(super) const SWEEP_CONCURRENCY: usize = 16;

/// Runs `op` on every item, [`SWEEP_CONCURRENCY`] at a time; the first error ends it.
pub(super) async fn concurrently<I, F, Fut>(items: I, op: F) -> Result<()>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(items).map(op).buffer_unordered(SWEEP_CONCURRENCY).try_collect::<()>().await
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Objects younger than this are roots and never removed.
    pub grace: Duration,
    /// Previous stagings kept per app besides the current one.
    pub retain: usize,
    /// The longest a writer takes from protecting a digest to committing what uses it.
    pub protect_window: Duration,
    /// Upload sessions idle this long are removed.
    pub upload_expiry: Duration,
    /// Mirrored registries: in their repositories tags are not roots; a manifest is kept
    /// while it was pulled within the retention (and the mirror's size cap allows).
    pub mirrored: Vec<MirrorRetention>,
}

/// A mirrored registry's part in garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRetention {
    /// The first name component of its repositories (`docker.io`, `host-5000`).
    pub prefix: String,
    /// Manifests not pulled for this long are collected.
    pub retention: Duration,
    /// Images kept by retention hold at most about this many bytes: beyond it the least
    /// recently pulled are collected first.
    pub max_size: Option<u64>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace: Duration::from_secs(3600),
            retain: 2,
            protect_window: Duration::from_secs(60),
            upload_expiry: crate::UploadLimits::default().expiry,
            mirrored: Vec::new(),
        }
    }
}

/// Counts and bytes of one kind of removed object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Removed {
    pub count: u64,
    pub bytes: u64,
}

impl Removed {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub stagings: Removed,
    pub manifests: Removed,
    pub layer_links: Removed,
    pub blobs: Removed,
    pub uploads: Removed,
    /// Temporary files an interrupted write left on the filesystem backend.
    #[serde(default)]
    pub temp_files: Removed,
    /// Digests kept only because a writer protected them during this run.
    pub protected: u64,
    pub live_manifests: u64,
    pub live_blobs: u64,
    pub seconds: f64,
}

/// What every sweep phase works with: the options, this run's identity in the handshake,
/// the digests it has claimed so far, and the report it fills.
struct Pass<'a> {
    opts: &'a GcOptions,
    run: &'a Run,
    claimed: &'a mut BTreeMap<CompactDigest, Claim>,
    report: &'a mut GcReport,
}

impl Store {
    /// Runs one collection. See the module docs for what is removed and why it is safe.
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let run = Run {
            id: uuid::Uuid::new_v4().simple().to_string(),
            dry_run: opts.dry_run,
            started,
            protect_window: opts.protect_window,
            slack: self.inner.backend.clock_slack(),
        };
        let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };
        let mut claimed: BTreeMap<CompactDigest, Claim> = BTreeMap::new();
        if let Err(e) = self.collect(opts, &run, &mut claimed, &mut report).await {
            // A run that fails midway (a storage error) releases its flags now rather than
            // leave writers refused for those digests until the flags go stale.
            for (d, c) in &claimed {
                if c.ok && !opts.dry_run {
                    let _ = self.release(&d.digest(), &run).await;
                }
            }
            self.remove_run_folder(&run.id).await;
            return Err(e);
        }
        self.remove_run_folder(&run.id).await;
        report.seconds = started.elapsed().as_secs_f64();
        if !opts.dry_run {
            // The run is done; a history that cannot be written must not fail it.
            if let Err(e) = self.record_gc(&run.id, &report).await {
                tracing::warn!(error = %e, "cannot record the collection in the history");
            }
        }
        tracing::info!(
            dry_run = opts.dry_run,
            manifests = report.manifests.count,
            layer_links = report.layer_links.count,
            blobs = report.blobs.count,
            blob_bytes = report.blobs.bytes,
            uploads = report.uploads.count,
            stagings = report.stagings.count,
            protected = report.protected,
            seconds = report.seconds,
            "garbage collection"
        );
        Ok(report)
    }

    /// The collection itself, phase by phase; `claimed` and `report` fill as it goes.
    async fn collect(
        &self,
        opts: &GcOptions,
        run: &Run,
        claimed: &mut BTreeMap<CompactDigest, Claim>,
        report: &mut GcReport,
    ) -> Result<()> {
        // Inventory, streamed from the listing. Listing happens before marking; anything
        // created after its listing is either young (kept) or protected by its writer.
        let mut inv = Inventory::default();
        let mut listing = self.os().list(Some(&keys::repositories()));
        while let Some(meta) = listing.try_next().await? {
            inv.add(&meta, opts.grace);
        }
        drop(listing);
        let (roots, expired_stagings) = self.roots(opts, &inv).await?;
        // Mark.
        let stored: HashSet<Node> = inv.manifests.iter().map(|e| (e.repo, e.digest.clone())).collect();
        let mut live = Marks::default();
        self.mark(roots, &stored, &inv, &mut live).await?;

        // Sweep staging records beyond retention, and the pull credentials minted for them
        // (they stopped working with their staging; this only reclaims the records).
        for (app, id) in &expired_stagings {
            report.stagings.add(0);
            if !opts.dry_run {
                self.remove(&keys::staging(app, id)).await?;
            }
        }
        if !opts.dry_run {
            self.remove_credentials_of(&expired_stagings).await?;
        }

        let mut pass = Pass { opts, run, claimed, report };
        let mut remaining_refs = self.sweep_manifests(&mut pass, &inv, &stored, &mut live).await?;
        self.sweep_layer_links(&mut pass, &inv, &live, &mut remaining_refs).await?;
        let (listed_blobs, removed_blobs) = self.sweep_blobs(&mut pass, &live, &remaining_refs).await?;
        self.sweep_leftovers(opts, report).await?;
        if !opts.dry_run {
            self.release_all(opts, run, claimed, &listed_blobs, &removed_blobs).await?;
        }
        Ok(())
    }
}
