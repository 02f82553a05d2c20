//! Online garbage collection: mark from the roots, sweep what nothing reaches, while pushes,
//! stagings and pulls go on, on any backend and from any replica.
//!
//! Roots: every tag, every retained staging (an app's current staging and the `retain`
//! previous ones), and every manifest link younger than the grace period. Marking follows
//! indexes to their manifests, manifests to their config and layers, and live manifests to
//! their referrers. Sweeping removes, in order: staging records beyond retention, unreached
//! manifest links (with their referrer entries), layer links no live manifest uses, blobs no
//! remaining link or live manifest uses, and upload sessions idle for more than a day. Young
//! objects (younger than the grace period) are never removed.
//!
//! **Races.** Writers and the collector use a two-flag handshake per digest, so correctness
//! holds with a zero grace period and across replicas (S3 is read-after-write consistent):
//! - a writer that is about to rely on digest `d` (accept a manifest naming it, report a blob
//!   as stored, mount it, reuse it for a staging) first writes `gc/protect/<d>`, then looks
//!   for `gc/deleting/<d>`; if present (and recent) it treats `d` as gone;
//! - the collector, before removing anything of `d` (links to it, its bytes), writes
//!   `gc/deleting/<d>`, then looks for a recent `gc/protect/<d>`; if present it keeps `d`.
//!
//! Whichever writes second sees the other's flag, so a digest is never both relied upon and
//! removed. A writer commits what it protected (writes the manifest link, the layer link, the
//! staging record) within the *protect window* (`GcOptions::protect_window`, 60 s by default;
//! a staging protects again right before it commits). So a protection older than the
//! collection's start minus the window belongs to a writer that committed before the
//! collection listed the store, whose marking sees the commit; such protections are ignored,
//! and removed later. Two collectors running at once are safe: every step is idempotent and
//! neither removes a live object.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use oci::{AppId, Digest, RepoName, Tag};
use serde::Serialize;

use crate::keys::{self, RepoKey};
use crate::{Result, Store, StoreError};

/// A deletion flag older than this is stale (a collector crashed) and ignored.
const DELETING_STALE: Duration = Duration::from_secs(600);
/// Upload sessions idle longer than this are removed.
const UPLOAD_IDLE: Duration = Duration::from_secs(24 * 3600);

fn protect_key(d: &Digest) -> Path {
    Path::from(format!("gc/protect/{}/{}", d.algorithm().as_str(), d.hex()))
}

fn deleting_key(d: &Digest) -> Path {
    Path::from(format!("gc/deleting/{}/{}", d.algorithm().as_str(), d.hex()))
}

fn age(meta: &ObjectMeta) -> Duration {
    let modified: SystemTime = meta.last_modified.into();
    SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO)
}

/// One run's parameters for the handshake.
struct Run {
    dry_run: bool,
    started: Instant,
    protect_window: Duration,
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
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions { dry_run: false, grace: Duration::from_secs(3600), retain: 2, protect_window: Duration::from_secs(60) }
    }
}

/// Counts and bytes of one kind of removed object.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub stagings: Removed,
    pub manifests: Removed,
    pub layer_links: Removed,
    pub blobs: Removed,
    pub uploads: Removed,
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
            self.write_small(&protect_key(d), Bytes::new()).await?;
        }
        for d in digests {
            if let Some(meta) = self.head_meta(&deleting_key(d)).await? {
                if age(&meta) < DELETING_STALE {
                    return Err(StoreError::BeingCollected(d.clone()));
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

    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self.os().list(Some(&Path::from(prefix))).try_collect().await?)
    }

    /// The collector's side of the handshake: flags `d` for deletion unless a writer
    /// protects it. Returns whether `d` may be removed (the flag stays until [`Self::release`]).
    /// `max_age` is how old a protection may be and still count for this run.
    async fn claim(&self, d: &Digest, dry_run: bool, max_age: Duration) -> Result<bool> {
        if dry_run {
            return Ok(self.head_meta(&protect_key(d)).await?.is_none_or(|m| age(&m) > max_age));
        }
        self.write_small(&deleting_key(d), Bytes::new()).await?;
        let protected = self.head_meta(&protect_key(d)).await?.is_some_and(|m| age(&m) <= max_age);
        if protected {
            self.remove(&deleting_key(d)).await?;
        }
        Ok(!protected)
    }

    async fn release(&self, d: &Digest) -> Result<()> {
        self.remove(&deleting_key(d)).await
    }

    /// Runs one collection. See the module docs for what is removed and why it is safe.
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let run = Run { dry_run: opts.dry_run, started, protect_window: opts.protect_window };
        let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };
        let young = |m: &ObjectMeta| age(m) < opts.grace;

        // Inventory. Listing happens before marking; anything created after its listing is
        // either young (kept) or protected by its writer.
        let mut inv = Inventory::default();
        for meta in self.list_all("repositories").await? {
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
                let repo = RepoName::parse(&s.repository).map_err(|e| StoreError::Corrupt { key: s.staging_id.clone(), reason: e.to_string() })?;
                let fresh = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|n| n.as_millis() as u64).unwrap_or(0)
                    .saturating_sub(s.created_ms) < opts.grace.as_millis() as u64;
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
        let mut live_manifests: HashSet<(RepoName, Digest)> = HashSet::new();
        let mut live_links: HashSet<(RepoName, Digest)> = HashSet::new();
        let mut live_blobs: HashSet<Digest> = HashSet::new();
        while let Some((repo, d)) = roots.pop() {
            if !stored.contains(&(repo.clone(), d.clone())) || !live_manifests.insert((repo.clone(), d.clone())) {
                continue;
            }
            live_blobs.insert(d.clone());
            let bytes = match self.read_blob_bytes(&d).await {
                Ok(b) => b,
                Err(StoreError::BlobUnknown(_)) => {
                    tracing::warn!(%repo, digest = %d, "live manifest has no bytes; run fsck");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Ok(m) = oci::Manifest::parse(&bytes, None) {
                for b in m.config.iter().chain(m.layers.iter()) {
                    live_blobs.insert(b.digest.clone());
                    live_links.insert((repo.clone(), b.digest.clone()));
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
        report.live_manifests = live_manifests.len() as u64;

        // Sweep staging records beyond retention.
        for (app, id) in &expired_stagings {
            report.stagings.add(0);
            if !opts.dry_run {
                self.remove(&Path::from(format!("apps/{app}/stagings/{id}.json"))).await?;
            }
        }

        // Sweep unreached manifests and their referrer entries.
        let mut claimed: BTreeMap<Digest, bool> = BTreeMap::new();
        let mut remaining_refs: HashSet<Digest> = HashSet::new();
        for (repo, d, meta) in &inv.manifests {
            if live_manifests.contains(&(repo.clone(), d.clone())) || young(meta) {
                remaining_refs.insert(d.clone());
                continue;
            }
            if !self.claim_once(&mut claimed, d, &run, &mut report).await? {
                remaining_refs.insert(d.clone());
                continue;
            }
            report.manifests.add(meta.size);
            if !opts.dry_run {
                self.delete_manifest(repo, d).await?;
            }
        }

        // Sweep layer links no live manifest uses.
        for (repo, d, meta) in &inv.layers {
            if live_links.contains(&(repo.clone(), d.clone())) || young(meta) {
                remaining_refs.insert(d.clone());
                continue;
            }
            if !self.claim_once(&mut claimed, d, &run, &mut report).await? {
                remaining_refs.insert(d.clone());
                continue;
            }
            report.layer_links.add(0);
            if !opts.dry_run {
                self.cache().layer_links.remove(&(repo.clone(), d.clone()));
                self.remove(&keys::layer_link(repo, d)).await?;
            }
        }

        // Sweep blobs nothing links or uses any more.
        for meta in self.list_all("blobs").await? {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            if live_blobs.contains(&d) || remaining_refs.contains(&d) || young(&meta) {
                continue;
            }
            if !self.claim_once(&mut claimed, &d, &run, &mut report).await? {
                continue;
            }
            report.blobs.add(meta.size);
            if !opts.dry_run {
                self.cache().blob_sizes.remove(&d);
                self.cache().manifests.remove(&d);
                self.remove(&meta.location).await?;
            }
        }
        report.live_blobs = live_blobs.len() as u64;

        // Sweep idle upload sessions.
        let uploads = self.list_all("uploads").await?;
        let mut sessions: HashMap<String, (Option<Duration>, u64)> = HashMap::new();
        for meta in &uploads {
            let key = meta.location.as_ref();
            let Some(id) = key.strip_prefix("uploads/").and_then(|r| r.split('/').next()) else { continue };
            let entry = sessions.entry(id.to_string()).or_insert((None, 0));
            entry.1 += meta.size;
            if key.ends_with("/state.json") {
                entry.0 = Some(age(meta));
            }
        }
        for (id, (idle, bytes)) in sessions {
            // A session without state is a leftover of an interrupted cancel or finish.
            if idle.is_none_or(|i| i >= UPLOAD_IDLE.max(opts.grace)) {
                report.uploads.add(bytes);
                if !opts.dry_run {
                    for meta in uploads.iter().filter(|m| m.location.as_ref().starts_with(&format!("uploads/{id}/"))) {
                        self.remove(&meta.location).await?;
                    }
                }
            }
        }

        // Release our deletion flags; drop protections nobody needs any more.
        if !opts.dry_run {
            for (d, ok) in &claimed {
                if *ok {
                    self.release(d).await?;
                }
            }
            for meta in self.list_all("gc").await? {
                let stale = if meta.location.as_ref().starts_with("gc/protect/") {
                    started.elapsed() + opts.protect_window * 2
                } else {
                    DELETING_STALE * 2
                };
                if age(&meta) >= stale {
                    self.remove(&meta.location).await?;
                }
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!(dry_run = opts.dry_run, manifests = report.manifests.count, layer_links = report.layer_links.count,
            blobs = report.blobs.count, blob_bytes = report.blobs.bytes, uploads = report.uploads.count,
            stagings = report.stagings.count, seconds = report.seconds, "garbage collection");
        Ok(report)
    }

    /// Claims a digest for deletion once per run (links and bytes of one digest share it).
    async fn claim_once(&self, claimed: &mut BTreeMap<Digest, bool>, d: &Digest, run: &Run, report: &mut GcReport) -> Result<bool> {
        let (dry_run, max_age) = (run.dry_run, run.started.elapsed() + run.protect_window);
        if let Some(ok) = claimed.get(d) {
            return Ok(*ok);
        }
        let ok = self.claim(d, dry_run, max_age).await?;
        if !ok {
            report.protected += 1;
        }
        claimed.insert(d.clone(), ok);
        Ok(ok)
    }

    /// Unpins every staging of an app. Its images go at the next collection.
    pub async fn unpin_app(&self, app: &AppId) -> Result<u64> {
        let metas = self.list_all(&format!("apps/{app}")).await?;
        let count = metas.iter().filter(|m| m.location.as_ref().ends_with(".json")).count() as u64;
        // `current` first: an interrupted unpin leaves records without a current, never a
        // current pointing at a removed record.
        self.remove(&Path::from(format!("apps/{app}/current"))).await?;
        for m in metas {
            self.remove(&m.location).await?;
        }
        Ok(count)
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
