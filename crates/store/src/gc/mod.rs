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
//!   as stored, mount it, reuse it for a staging) first writes `gc/protect/<d>`, then reads
//!   every run's recent flag batches `gc/deleting/<run>/<batch>`; if one names `d` it treats
//!   `d` as gone;
//! - the collector, before removing anything of `d` (links to it, its bytes), writes a flag
//!   batch naming `d` (and up to [`BATCH`] others), then looks for a recent
//!   `gc/protect/<d>` of each; if present it keeps `d` and drops it from the batch.
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
//! its flags never unflags a digest another run is still removing. A batch is released once
//! what was removed under it is gone; a later phase claims a digest again for its own
//! removals (a writer that protected it meanwhile keeps it). A protection is removed
//! only together with the bytes it protected, by the run that removed them (under its flag),
//! or, for digests with no bytes, under a claim once it is older than any run may last: a
//! protection written again while a cleanup listed it is never lost.
//!
//! The filesystem backend (one process) and the S3 backend (any number of replicas) run the
//! same code; on S3 object times have whole seconds, so a protection counts one second longer.
//!
//! **Memory.** A collection holds what marking needs and its marks for its whole run, so
//! their size per object is what bounds the stores it can collect. It holds per manifest
//! (not per blob) a 56-byte entry (an interned repository's index, an `oci::CompactDigest`,
//! size, and until when it is young) and a bit if it is live. Per live blob it holds 16
//! bytes (a fingerprint of the digest and why it is kept) and 8 per live layer link
//! (`marks.rs`); nothing per listed blob. Tags are dropped once resolved into roots. Layer
//! links and blobs are streamed from listings of their own, and what they remove is
//! claimed, removed and released a batch ([`BATCH`]) at a time, so nothing the size of the
//! garbage is held either. `bench/gc.sh` measures the peak at 100,000 and 1,000,000 blobs.
//!
//! The writer/collector handshake is in `handshake.rs`; marking and the sweep's phases in
//! `sweep.rs`.

mod handshake;
mod history;
mod marks;
mod sweep;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::{Result, Store};
use handshake::Run;
pub use history::GcRun;
pub(crate) use sweep::retained;
use sweep::{Inventory, Marks};

/// A deletion flag older than this is stale (a collector crashed) and ignored.
pub(super) const DELETING_STALE: Duration = Duration::from_secs(600);
/// A temporary file untouched for this long belongs to no write in progress: a request whose
/// body stalls fails much sooner.
pub(super) const TEMP_FILE_AGE: Duration = Duration::from_secs(3600);
/// Claims and removals in flight at once: a sweep is a long list of small independent
/// operations, bound by syscalls on the filesystem and by round trips on S3.
pub(super) const SWEEP_CONCURRENCY: usize = 16;
/// Digests a sweep claims and removes at once: what it holds of the objects it removes is
/// bounded by this, however many there are, while a batch amortises the round trips (one
/// flag file per batch; S3 removes a thousand objects per request). A batch's flag file
/// (72 bytes a digest) is what writers read while it lasts.
pub(super) const BATCH: usize = 1000;

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

impl GcOptions {
    /// The mirrored registry (its index in `mirrored`) whose repositories `repo` is one of.
    pub(super) fn mirror_of(&self, repo: &oci::RepoName) -> Option<usize> {
        self.mirrored.iter().position(|m| repo.as_str().starts_with(&format!("{}/", m.prefix)))
    }
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

/// Why a collection kept something, strongest first: what a tag reaches is counted as kept
/// by the tag even when it is young too.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum KeptBy {
    /// Reached from a tag (not a mirror's).
    Tag,
    /// Reached from a pinned app's retained staging (its current one and the `retain` before).
    App,
    /// A mirrored image pulled within its mirror's retention.
    Mirror,
    /// Younger than the grace period (a manifest link, a layer link, a blob, a staging
    /// record beyond retention), or reached from such a manifest.
    Grace,
    /// A writer (a push, an upload, a staging) protected it during this collection.
    Protected,
}

/// What a collection kept for one reason: counts, bytes, and when the first and the last of
/// it may be collected (for reasons that expire: the grace period, a protection, a mirror's
/// retention). Unpinning an app and collecting at once frees nothing for the grace period;
/// this is what says so, and until when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kept {
    pub by: KeptBy,
    /// The reason in words, as the CLI and the console show it.
    pub why: String,
    /// Manifests kept (per repository).
    pub manifests: u64,
    /// Blobs kept (manifests' bytes included), and their bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// When the first of them may be collected (unix ms), when that is known.
    pub collectable_from_ms: Option<u64>,
    /// When the last of them may be collected (unix ms).
    pub collectable_by_ms: Option<u64>,
}

impl Kept {
    /// `collectable from 2026-12-04 12:43 UTC (all by 12:44 UTC)`, rounded up to the minute
    /// (collecting at the minute shown frees them); `None` for reasons that do not expire.
    pub fn when(&self) -> Option<String> {
        let up = |ms: u64| utc_text(ms.div_ceil(60_000) * 60_000);
        let (from, by) = (self.collectable_from_ms?, self.collectable_by_ms.unwrap_or(0));
        Some(if by.div_ceil(60_000) > from.div_ceil(60_000) {
            format!("collectable from {} (all by {})", up(from), up(by))
        } else {
            format!("collectable from {}", up(from))
        })
    }
}

/// Why one object is kept, and until when (unix ms) if the reason expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Why {
    pub(super) by: KeptBy,
    pub(super) until_ms: Option<u64>,
}

impl Why {
    pub(super) const TAG: Why = Why { by: KeptBy::Tag, until_ms: None };
    pub(super) const APP: Why = Why { by: KeptBy::App, until_ms: None };

    /// Kept by the grace period, since `since_ms` (unix ms).
    pub(super) fn grace(since_ms: u64, grace: Duration) -> Why {
        Why { by: KeptBy::Grace, until_ms: Some(since_ms.saturating_add(grace.as_millis() as u64)) }
    }

    /// Kept by the grace period until `until_ms` (unix ms).
    pub(super) fn grace_until(until_ms: u64) -> Why {
        Why { by: KeptBy::Grace, until_ms: Some(until_ms) }
    }

    /// Kept by an object's age (its last modification).
    pub(super) fn young(meta: &object_store::ObjectMeta, grace: Duration) -> Why {
        Why::grace(meta.last_modified.timestamp_millis().max(0) as u64, grace)
    }

    /// Protected by a writer: collectable once the protect window has passed.
    pub(super) fn protected(window: Duration) -> Why {
        Why { by: KeptBy::Protected, until_ms: Some(now_ms().saturating_add(window.as_millis() as u64)) }
    }
}

/// Now, in unix milliseconds.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `1h`, `90s`, `2m`: a duration as the flags take it.
fn short(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl KeptBy {
    /// The reason in words, with the setting that decides it.
    fn why(self, opts: &GcOptions) -> String {
        match self {
            KeptBy::Tag => "referenced by a tag".into(),
            KeptBy::App => format!("referenced by a live app (its current staging or one of the {} before it)", opts.retain),
            KeptBy::Mirror => "pulled through a mirror within its retention".into(),
            KeptBy::Grace => format!("younger than the grace period ({}, --gc-grace)", short(opts.grace)),
            KeptBy::Protected => format!(
                "protected by an upload or staging in progress (kept for the protect window, {}, --gc-protect-window)",
                short(opts.protect_window)
            ),
        }
    }
}

/// Tallies what is kept, reason by reason.
#[derive(Default)]
pub(super) struct KeptTally(BTreeMap<KeptBy, Kept>);

impl KeptTally {
    fn entry(&mut self, why: Why, opts: &GcOptions) -> &mut Kept {
        let k = self.0.entry(why.by).or_insert_with(|| Kept {
            by: why.by,
            why: why.by.why(opts),
            manifests: 0,
            blobs: 0,
            bytes: 0,
            collectable_from_ms: None,
            collectable_by_ms: None,
        });
        if let Some(t) = why.until_ms {
            k.collectable_from_ms = Some(k.collectable_from_ms.map_or(t, |f| f.min(t)));
            k.collectable_by_ms = Some(k.collectable_by_ms.map_or(t, |b| b.max(t)));
        }
        k
    }

    pub(super) fn manifest(&mut self, why: Why, opts: &GcOptions) {
        self.entry(why, opts).manifests += 1;
    }

    pub(super) fn blob(&mut self, why: Why, bytes: u64, opts: &GcOptions) {
        let k = self.entry(why, opts);
        k.blobs += 1;
        k.bytes += bytes;
    }

    pub(super) fn into_vec(self) -> Vec<Kept> {
        self.0.into_values().collect()
    }
}

/// `2026-11-30 16:04 UTC` from unix milliseconds (the civil-from-days algorithm; no date
/// crate for one format), for the reports' times in the CLI and the console.
pub fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
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
    /// What was kept, by reason (the strongest reason of each object), strongest first.
    #[serde(default)]
    pub kept: Vec<Kept>,
}

/// What every sweep phase works with: the options, this run's identity in the handshake,
/// and the report it fills.
struct Pass<'a> {
    opts: &'a GcOptions,
    run: &'a Run,
    report: &'a mut GcReport,
    kept: &'a mut KeptTally,
}

impl Store {
    /// Runs one collection. See the module docs for what is removed and why it is safe.
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let run = Run {
            batches: Default::default(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            dry_run: opts.dry_run,
            started,
            protect_window: opts.protect_window,
            slack: self.inner.backend.clock_slack(),
        };
        let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };
        // A run that fails midway (a storage error) has released its flags batch by batch
        // rather than leave writers refused for those digests until the flags go stale.
        if let Err(e) = self.collect(opts, &run, &mut report).await {
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

    /// The collection itself, phase by phase; `report` fills as it goes.
    async fn collect(&self, opts: &GcOptions, run: &Run, report: &mut GcReport) -> Result<()> {
        // Inventory, streamed from the listing. Listing happens before marking; anything
        // created after its listing is either young (kept) or protected by its writer.
        let mut inv = Inventory::default();
        let mut listing = self.os().list(Some(&keys::repositories()));
        while let Some(meta) = listing.try_next().await? {
            inv.add(&meta, opts.grace);
        }
        drop(listing);
        inv.seal();
        let (roots, expired_stagings) = self.roots(opts, &mut inv).await?;
        // Mark.
        let mut live = Marks::new(&inv);
        self.mark(roots, &inv, &mut live).await?;
        live.seal();

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

        let mut kept = KeptTally::default();
        let mut pass = Pass { opts, run, report, kept: &mut kept };
        let mut refs = self.sweep_manifests(&mut pass, &inv, &mut live).await?;
        self.sweep_layer_links(&mut pass, &inv, &live, &mut refs).await?;
        refs.seal();
        self.sweep_blobs(&mut pass, &live, &refs).await?;
        report.kept = kept.into_vec();
        self.sweep_leftovers(opts, report).await?;
        if !opts.dry_run {
            self.forget_protections(opts, run, &live.blobs, &refs).await?;
        }
        Ok(())
    }
}
