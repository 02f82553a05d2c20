//! Online garbage collection: mark from the roots, sweep what nothing reaches, while pushes,
//! stagings and pulls go on, on any backend and from any replica.
//!
//! Roots: every tag, every retained staging (an app's current staging and the `retain`
//! previous ones), and every manifest link younger than the grace period. Marking follows
//! indexes to their manifests, manifests to their config and layers, and live manifests to
//! their referrers. Sweeping removes, in order: staging records beyond retention, unreached
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use oci::{Digest, RepoName, Tag};
use serde::{Deserialize, Serialize};

use crate::keys::{self, RepoKey};
use crate::{Result, Store, StoreError};

/// A deletion flag older than this is stale (a collector crashed) and ignored.
const DELETING_STALE: Duration = Duration::from_secs(600);
/// A temporary file untouched for this long belongs to no write in progress: a request whose
/// body stalls fails much sooner.
const TEMP_FILE_AGE: Duration = Duration::from_secs(3600);
/// Claims and removals in flight at once: a sweep is a long list of small independent
/// operations, bound by syscalls on the filesystem and by round trips on S3.
const SWEEP_CONCURRENCY: usize = 16;

/// Runs `op` on every item, [`SWEEP_CONCURRENCY`] at a time; the first error ends it.
async fn concurrently<I, F, Fut>(items: I, op: F) -> Result<()>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(items).map(op).buffer_unordered(SWEEP_CONCURRENCY).try_collect::<()>().await
}

// A collection's deletion flags live in a folder of its own run (`keys::deleting`): a run
// releasing its flags can never unflag a digest that another run (on this replica or
// another) is still removing, and a run's flags share one folder (a folder per digest would
// cost a directory creation and removal per digest on the filesystem).

/// The digest a `gc/protect/<alg>/<hex>` key protects.
fn protected_digest(key: &Path) -> Option<Digest> {
    let rest = key.as_ref().strip_prefix("gc/protect/")?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

fn age(meta: &ObjectMeta) -> Duration {
    let modified: SystemTime = meta.last_modified.into();
    SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO)
}

/// One run's parameters for the handshake.
struct Run {
    /// Names this run's deletion flags.
    id: String,
    dry_run: bool,
    started: Instant,
    protect_window: Duration,
    /// Extra age a protection may have and still count: object times on S3 have whole
    /// seconds, so a protection written just now can look up to a second old.
    slack: Duration,
}

impl Run {
    /// How old a protection may be and still count for this run.
    fn max_age(&self) -> Duration {
        self.started.elapsed() + self.protect_window + self.slack
    }
}

/// A digest this run claimed: whether it may be removed, when the flag was written, and
/// whether an (old) protection exists, to remove with the bytes.
#[derive(Clone, Copy)]
struct Claim {
    ok: bool,
    at: Instant,
    protection: bool,
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
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace: Duration::from_secs(3600),
            retain: 2,
            protect_window: Duration::from_secs(60),
            upload_expiry: crate::UploadLimits::default().expiry,
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

/// Everything under `repositories/`, classified.
#[derive(Default)]
struct Inventory {
    manifests: Vec<(RepoName, Digest, ObjectMeta)>,
    layers: Vec<(RepoName, Digest, ObjectMeta)>,
    tags: Vec<(RepoName, Tag, ObjectMeta)>,
    /// (repo, subject) -> referrer digests
    referrers: HashMap<(RepoName, Digest), Vec<(Digest, ObjectMeta)>>,
}

/// What marking reached.
#[derive(Default)]
struct Marks {
    /// (repository, manifest digest)
    manifests: HashSet<(RepoName, Digest)>,
    /// (repository, blob digest): layer links a live manifest uses.
    links: HashSet<(RepoName, Digest)>,
    /// Digests whose bytes a live manifest needs (manifests included).
    blobs: HashSet<Digest>,
}

impl Inventory {
    fn add(&mut self, meta: ObjectMeta) {
        match keys::parse_repo_key(&meta.location) {
            Some(RepoKey::Manifest(repo, d)) => self.manifests.push((repo, d, meta)),
            Some(RepoKey::Layer(repo, d)) => self.layers.push((repo, d, meta)),
            Some(RepoKey::Tag(repo, t)) => self.tags.push((repo, t, meta)),
            Some(RepoKey::Referrer(repo, subject, r)) => self.referrers.entry((repo, subject)).or_default().push((r, meta)),
            None => {}
        }
    }
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
        for run in runs.iter().filter_map(|p| p.filename()) {
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

    async fn head_meta(&self, key: &Path) -> Result<Option<ObjectMeta>> {
        match self.os().head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        Ok(self.os().list(Some(prefix)).try_collect().await?)
    }

    /// The collector's side of the handshake: flags `d` for deletion unless a writer
    /// protects it. Whether `d` may be removed (the flag stays until [`Self::release`]), and
    /// whether a protection (too old to count) exists.
    async fn claim(&self, d: &Digest, run: &Run) -> Result<(bool, bool)> {
        let max_age = run.max_age();
        if run.dry_run {
            let protection = self.head_meta(&keys::protect(d)).await?;
            return Ok((protection.as_ref().is_none_or(|m| age(m) > max_age), protection.is_some()));
        }
        self.write_marker(&keys::deleting(&run.id, d)).await?;
        let protection = self.head_meta(&keys::protect(d)).await?;
        let protected = protection.as_ref().is_some_and(|m| age(m) <= max_age);
        if protected {
            self.remove(&keys::deleting(&run.id, d)).await?;
        }
        Ok((!protected, protection.is_some()))
    }

    async fn release(&self, d: &Digest, run: &Run) -> Result<()> {
        self.remove(&keys::deleting(&run.id, d)).await
    }

    /// Runs one collection. See the module docs for what is removed and why it is safe.
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let run = Run {
            id: uuid::Uuid::new_v4().simple().to_string(),
            dry_run: opts.dry_run,
            started,
            protect_window: opts.protect_window,
            slack: if self.inner.s3.is_some() { Duration::from_secs(1) } else { Duration::ZERO },
        };
        let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };
        let mut claimed: BTreeMap<Digest, Claim> = BTreeMap::new();
        if let Err(e) = self.collect(opts, &run, &mut claimed, &mut report).await {
            // A run that fails midway (a storage error) releases its flags now rather than
            // leave writers refused for those digests until the flags go stale.
            for (d, c) in &claimed {
                if c.ok && !opts.dry_run {
                    let _ = self.release(d, &run).await;
                }
            }
            self.remove_run_folder(&run.id).await;
            return Err(e);
        }
        self.remove_run_folder(&run.id).await;
        report.seconds = started.elapsed().as_secs_f64();
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

    /// The collection itself; `claimed` and `report` fill as it goes.
    async fn collect(&self, opts: &GcOptions, run: &Run, claimed: &mut BTreeMap<Digest, Claim>, report: &mut GcReport) -> Result<()> {
        let young = |m: &ObjectMeta| age(m) < opts.grace;

        // Inventory. Listing happens before marking; anything created after its listing is
        // either young (kept) or protected by its writer.
        let mut inv = Inventory::default();
        for meta in self.list_all(&keys::repositories()).await? {
            inv.add(meta);
        }

        // Roots: tags, retained stagings, young manifests.
        let mut roots: Vec<(RepoName, Digest)> = Vec::new();
        for (repo, tag, _) in &inv.tags {
            if let Some(d) = self.resolve_tag(repo, tag).await? {
                roots.push((repo.clone(), d));
            }
        }
        let mut expired_stagings = Vec::new();
        for app in self.apps().await? {
            let stagings = self.stagings(&app).await?;
            let current = self.current_staging(&app).await?;
            let keep = retained(&stagings, current.as_deref(), opts.retain);
            for s in &stagings {
                let repo =
                    RepoName::parse(&s.repository).map_err(|e| StoreError::Corrupt { key: s.staging_id.clone(), reason: e.to_string() })?;
                let fresh = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|n| n.as_millis() as u64)
                    .unwrap_or(0)
                    .saturating_sub(s.created_ms)
                    < opts.grace.as_millis() as u64;
                if keep.contains(&s.staging_id) || fresh {
                    roots.push((repo, s.digest.clone()));
                } else {
                    expired_stagings.push((app.clone(), s.staging_id.clone()));
                }
            }
        }
        for (repo, d, meta) in &inv.manifests {
            if young(meta) {
                roots.push((repo.clone(), d.clone()));
            }
        }

        // Mark.
        let stored: HashSet<(RepoName, Digest)> = inv.manifests.iter().map(|(r, d, _)| (r.clone(), d.clone())).collect();
        let mut live = Marks::default();
        self.mark(roots, &stored, &inv, &mut live).await?;

        // Sweep staging records beyond retention.
        for (app, id) in &expired_stagings {
            report.stagings.add(0);
            if !opts.dry_run {
                self.remove(&keys::staging(app, id)).await?;
            }
        }

        // Sweep unreached manifests and their referrer entries. Claimed first, all of them: a
        // manifest a writer protected is kept and marked like a root, and what it reaches
        // (children, config, layers, possibly other candidates) is kept with it.
        let candidates: Vec<&(RepoName, Digest, ObjectMeta)> =
            inv.manifests.iter().filter(|(repo, d, meta)| !live.manifests.contains(&(repo.clone(), d.clone())) && !young(meta)).collect();
        self.claim_all(candidates.iter().map(|(_, d, _)| d.clone()).collect(), claimed, run, report).await?;
        let protected_roots: Vec<(RepoName, Digest)> =
            candidates.iter().filter(|(_, d, _)| !claimed[d].ok).map(|(r, d, _)| (r.clone(), d.clone())).collect();
        self.mark(protected_roots, &stored, &inv, &mut live).await?;
        let mut remaining_refs: HashSet<Digest> = HashSet::new();
        for (repo, d, meta) in &inv.manifests {
            if live.manifests.contains(&(repo.clone(), d.clone())) || young(meta) {
                remaining_refs.insert(d.clone());
            }
        }
        // Owned items from here on: closures over borrowed ones make the collection's future
        // too lifetime-specific for `tokio::spawn` (rustc's higher-ranked `Send` limitation).
        let mut doomed: Vec<(RepoName, Digest)> = Vec::new();
        for (repo, d, meta) in candidates {
            if claimed[d].ok && !live.manifests.contains(&(repo.clone(), d.clone())) {
                report.manifests.add(meta.size);
                doomed.push((repo.clone(), d.clone()));
            }
        }
        if !opts.dry_run {
            concurrently(doomed, |(repo, d): (RepoName, Digest)| async move { self.delete_manifest(&repo, &d).await.map(|_| ()) }).await?;
        }
        report.live_manifests = live.manifests.len() as u64;

        // Sweep layer links no live manifest uses.
        let candidates: Vec<&(RepoName, Digest, ObjectMeta)> =
            inv.layers.iter().filter(|(repo, d, meta)| !live.links.contains(&(repo.clone(), d.clone())) && !young(meta)).collect();
        for (repo, d, meta) in &inv.layers {
            if live.links.contains(&(repo.clone(), d.clone())) || young(meta) {
                remaining_refs.insert(d.clone());
            }
        }
        self.claim_all(candidates.iter().map(|(_, d, _)| d.clone()).collect(), claimed, run, report).await?;
        let mut doomed: Vec<(RepoName, Digest)> = Vec::new();
        for (repo, d, _) in candidates {
            if claimed[d].ok {
                doomed.push((repo.clone(), d.clone()));
            } else {
                remaining_refs.insert(d.clone());
            }
        }
        report.layer_links.count += doomed.len() as u64;
        if !opts.dry_run {
            concurrently(doomed, |(repo, d): (RepoName, Digest)| async move {
                self.remove(&keys::layer_link(&repo, &d)).await?;
                self.cache().layer_links.remove(&(repo, d));
                Ok(())
            })
            .await?;
        }

        // Sweep blobs nothing links or uses any more.
        let mut listed_blobs: HashSet<Digest> = HashSet::new();
        let mut candidates: Vec<(Digest, ObjectMeta)> = Vec::new();
        for meta in self.list_all(&keys::blobs()).await? {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            listed_blobs.insert(d.clone());
            if !(live.blobs.contains(&d) || remaining_refs.contains(&d) || young(&meta)) {
                candidates.push((d, meta));
            }
        }
        self.claim_all(candidates.iter().map(|(d, _)| d.clone()).collect(), claimed, run, report).await?;
        let doomed: Vec<(Digest, ObjectMeta)> = candidates.into_iter().filter(|(d, _)| claimed[d].ok).collect();
        for (_, meta) in &doomed {
            report.blobs.add(meta.size);
        }
        let mut removed_blobs: Vec<Digest> = Vec::new();
        if !opts.dry_run {
            removed_blobs = doomed.iter().map(|(d, _)| d.clone()).collect();
            let doomed: Vec<(Digest, Path)> = doomed.into_iter().map(|(d, meta)| (d, meta.location)).collect();
            concurrently(doomed, |(d, key): (Digest, Path)| async move {
                self.cache().blob_sizes.remove(&d);
                self.cache().manifests.remove(&d);
                if let Some(c) = &self.inner.blob_cache {
                    c.remove(&d);
                }
                self.remove(&key).await
            })
            .await?;
        }
        report.live_blobs = live.blobs.len() as u64;

        // Sweep expired upload sessions.
        for (id, bytes) in self.idle_uploads(opts.upload_expiry).await? {
            report.uploads.add(bytes);
            if !opts.dry_run {
                self.remove_upload(&id).await?;
            }
        }

        // Temporary files an interrupted write left (the filesystem backend; S3 shows no
        // unfinished writes). Old ones only: a young one may be a write in progress.
        if let Some(root) = &self.inner.local_root {
            for (path, size) in crate::local::stray_staging_files(root) {
                let old =
                    std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() >= TEMP_FILE_AGE);
                if old {
                    report.temp_files.add(size);
                    if !opts.dry_run {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }

        // Drop the protections of the bytes we removed, under our flags (a writer protecting
        // one of them since our claim saw the flag and gave up), then release our flags.
        if !opts.dry_run {
            let unprotect: Vec<Digest> = removed_blobs.iter().filter(|d| claimed.get(*d).is_some_and(|c| c.protection)).cloned().collect();
            concurrently(unprotect, |d: Digest| async move { self.remove(&keys::protect(&d)).await }).await?;
            // Protections of digests with no bytes at all (an upload that failed, bytes
            // another run removed): removed under a claim, and only once older than any
            // run may last, since a long run started earlier may still be counting on them.
            let forgotten = DELETING_STALE + opts.protect_window + run.slack;
            for meta in self.list_all(&keys::protections()).await? {
                let Some(d) = protected_digest(&meta.location) else { continue };
                if listed_blobs.contains(&d) || claimed.contains_key(&d) || age(&meta) < forgotten {
                    continue;
                }
                let old =
                    Run { id: run.id.clone(), dry_run: false, started: Instant::now(), protect_window: forgotten, slack: Duration::ZERO };
                if self.claim(&d, &old).await?.0 {
                    self.remove(&keys::protect(&d)).await?;
                    self.release(&d, &old).await?;
                }
            }
            let ours: Vec<Digest> = claimed.iter().filter(|(_, c)| c.ok).map(|(d, _)| d.clone()).collect();
            concurrently(ours, |d: Digest| async move { self.release(&d, run).await }).await?;
            // Flags of crashed collectors, ignored by writers since they went stale.
            let mut crashed = BTreeSet::new();
            for meta in self.list_all(&keys::deleting_runs()).await? {
                if age(&meta) >= DELETING_STALE * 2 {
                    self.remove(&meta.location).await?;
                    if let Some(r) = meta.location.as_ref().strip_prefix("gc/deleting/").and_then(|r| r.split('/').next()) {
                        crashed.insert(r.to_string());
                    }
                }
            }
            for r in crashed {
                self.remove_run_folder(&r).await;
            }
        }
        Ok(())
    }

    /// On the filesystem, which keeps empty directories (see [`Store::filesystem`]), removes
    /// a run's flag folder once its flags are gone: writers list the run folders on every
    /// protection, so spent ones must not pile up. Only that run writes there, so removing
    /// it races nothing; a folder that is not empty yet is left alone.
    async fn remove_run_folder(&self, run: &str) {
        let Some(root) = &self.inner.local_root else { return };
        let dir = root.join("gc/deleting").join(run);
        if let Ok(mut algorithms) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(entry)) = algorithms.next_entry().await {
                let _ = tokio::fs::remove_dir(entry.path()).await;
            }
        }
        let _ = tokio::fs::remove_dir(&dir).await;
    }

    /// Claims digests for deletion, each once per run (links and bytes of one digest share
    /// a claim), several at a time. A claim older than half the staleness limit is renewed:
    /// writers ignore stale flags, so a long run must not act on one.
    async fn claim_all(&self, digests: Vec<Digest>, claimed: &mut BTreeMap<Digest, Claim>, run: &Run, report: &mut GcReport) -> Result<()> {
        let todo: BTreeSet<Digest> =
            digests.into_iter().filter(|d| claimed.get(d).is_none_or(|c| c.ok && c.at.elapsed() >= DELETING_STALE / 2)).collect();
        let results: Vec<(Digest, Claim)> = futures::stream::iter(todo)
            .map(|d: Digest| async move {
                let at = Instant::now();
                let (ok, protection) = self.claim(&d, run).await?;
                Ok::<_, StoreError>((d, Claim { ok, at, protection }))
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

    /// Marks from `roots` (repository, manifest digest) through indexes, manifests and
    /// referrers, adding to `live`. Only manifests the inventory holds are followed.
    async fn mark(
        &self,
        mut roots: Vec<(RepoName, Digest)>,
        stored: &HashSet<(RepoName, Digest)>,
        inv: &Inventory,
        live: &mut Marks,
    ) -> Result<()> {
        while let Some((repo, d)) = roots.pop() {
            if !stored.contains(&(repo.clone(), d.clone())) || !live.manifests.insert((repo.clone(), d.clone())) {
                continue;
            }
            live.blobs.insert(d.clone());
            let bytes = match self.cache().manifests.get(&d) {
                Some(b) => b,
                None => match self.read_blob_bytes(&d).await {
                    Ok(b) => b,
                    Err(StoreError::BlobUnknown(_)) => {
                        tracing::warn!(%repo, digest = %d, "live manifest has no bytes; run fsck");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            if let Ok(m) = oci::Manifest::parse(&bytes, None) {
                for b in m.config.iter().chain(m.layers.iter()) {
                    live.blobs.insert(b.digest.clone());
                    live.links.insert((repo.clone(), b.digest.clone()));
                }
                for child in &m.manifests {
                    roots.push((repo.clone(), child.digest.clone()));
                }
            }
            if let Some(refs) = inv.referrers.get(&(repo.clone(), d.clone())) {
                for (r, _) in refs {
                    roots.push((repo.clone(), r.clone()));
                }
            }
        }
        Ok(())
    }
}

/// The staging ids kept for an app: the current one, the `retain` before it, and any after
/// it (stagings newer than a rolled-back current).
fn retained(stagings: &[crate::StagingRecord], current: Option<&str>, retain: usize) -> HashSet<String> {
    let mut ids: Vec<&str> = stagings.iter().map(|s| s.staging_id.as_str()).collect();
    ids.sort();
    let Some(last) = ids.len().checked_sub(1) else { return HashSet::new() };
    let pos = current.and_then(|c| ids.iter().position(|i| *i == c)).unwrap_or(last);
    ids[pos.saturating_sub(retain)..].iter().map(|s| s.to_string()).collect()
}
