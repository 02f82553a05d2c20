//! Marking from the roots and the sweep's phases, in the order they run.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use object_store::path::Path;
use object_store::ObjectMeta;
use oci::{AppId, Digest, RepoName, Tag};

use super::{concurrently, GcOptions, GcReport, KeptTally, Why, TEMP_FILE_AGE};
use super::{KeptBy, Pass};
use crate::age;
use crate::keys::{self, RepoKey};
use crate::{Result, Store, StoreError};

/// Everything under `repositories/`, classified.
#[derive(Default)]
pub(super) struct Inventory {
    pub(super) manifests: Vec<(RepoName, Digest, ObjectMeta)>,
    pub(super) layers: Vec<(RepoName, Digest, ObjectMeta)>,
    pub(super) tags: Vec<(RepoName, Tag, ObjectMeta)>,
    /// The tag schema's tags in app repositories (copies of the upstream's signature tags,
    /// see `Store::pin_schema_tags`), by (repo, the `<alg>-<hex>` they name). Not roots: what
    /// they name is marked only while that subject is, so they never keep an unpinned app's
    /// signatures alive, and go with the manifests they name (`delete_manifest`).
    pub(super) schema_tags: HashMap<(RepoName, String), Vec<Tag>>,
    /// (repo, subject) -> referrer digests
    pub(super) referrers: HashMap<(RepoName, Digest), Vec<(Digest, ObjectMeta)>>,
}

/// What marking reached.
#[derive(Default)]
pub(super) struct Marks {
    /// (repository, manifest digest)
    pub(super) manifests: HashSet<(RepoName, Digest)>,
    /// (repository, blob digest): layer links a live manifest uses.
    pub(super) links: HashSet<(RepoName, Digest)>,
    /// Digests whose bytes a live manifest needs (manifests included).
    pub(super) blobs: HashSet<Digest>,
    /// Why each of `blobs` is kept: the strongest root that reached it.
    pub(super) why: HashMap<Digest, Why>,
}

impl Inventory {
    pub(super) fn add(&mut self, meta: ObjectMeta) {
        match keys::parse_repo_key(&meta.location) {
            Some(RepoKey::Manifest(repo, d)) => self.manifests.push((repo, d, meta)),
            Some(RepoKey::Layer(repo, d)) => self.layers.push((repo, d, meta)),
            Some(RepoKey::Tag(repo, t)) => match t.schema_subject() {
                Some(subject) if AppId::of_repository(&repo).is_some() => {
                    self.schema_tags.entry((repo, subject.to_string())).or_default().push(t)
                }
                _ => self.tags.push((repo, t, meta)),
            },
            Some(RepoKey::Referrer(repo, subject, r)) => self.referrers.entry((repo, subject)).or_default().push((r, meta)),
            None => {}
        }
    }
}

impl Store {
    /// Roots: tags (but an app's schema tags and a mirror's), mirrored manifests pulled within
    /// their mirror's retention, retained stagings, young manifests; and the staging records
    /// beyond retention.
    pub(super) async fn roots(
        &self,
        opts: &GcOptions,
        inv: &Inventory,
    ) -> Result<(Vec<(RepoName, Digest, Why)>, Vec<(AppId, crate::StagingId)>)> {
        let young = |m: &ObjectMeta| age(m) < opts.grace;
        let mut roots: Vec<(RepoName, Digest, Why)> = Vec::new();
        let mirror_of = |repo: &RepoName| opts.mirrored.iter().position(|m| repo.as_str().starts_with(&format!("{}/", m.prefix)));
        for (repo, tag, _) in &inv.tags {
            // A mirror's tags are the upstream's names, not a reason to keep anything.
            if mirror_of(repo).is_some() {
                continue;
            }
            if let Some(d) = self.resolve_tag(repo, tag).await? {
                roots.push((repo.clone(), d, Why::TAG));
            }
        }
        if !opts.mirrored.is_empty() {
            // Pulled within retention, per mirror, with when.
            let mut pulled: Vec<Vec<(RepoName, Digest, std::time::Duration)>> = vec![Vec::new(); opts.mirrored.len()];
            let mut pulls = self.os().list(Some(&keys::mirror_pulls()));
            while let Some(meta) = futures::TryStreamExt::try_next(&mut pulls).await? {
                let Some((repo, d)) = keys::parse_mirror_pull_key(&meta.location) else { continue };
                if let Some(i) = mirror_of(&repo).filter(|i| age(&meta) < opts.mirrored[*i].retention) {
                    pulled[i].push((repo, d, age(&meta)));
                }
            }
            let now = super::now_ms();
            for (m, mut images) in opts.mirrored.iter().zip(pulled) {
                if let Some(cap) = m.max_size {
                    images = self.newest_within(images, cap).await?;
                }
                let until = |age: std::time::Duration| Some(now.saturating_sub(age.as_millis() as u64) + m.retention.as_millis() as u64);
                roots.extend(images.into_iter().map(|(repo, d, age)| (repo, d, Why { by: KeptBy::Mirror, until_ms: until(age) })));
            }
        }
        let mut expired_stagings = Vec::new();
        for app in self.apps().await? {
            let stagings = self.stagings(&app).await?;
            let current = self.current_staging(&app).await?;
            let keep = retained(&stagings, current.as_deref(), opts.retain);
            for s in &stagings {
                let repo = RepoName::parse(&s.repository)
                    .map_err(|e| StoreError::Corrupt { key: s.staging_id.to_string(), reason: e.to_string() })?;
                let fresh = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|n| n.as_millis() as u64)
                    .unwrap_or(0)
                    .saturating_sub(s.created_ms)
                    < opts.grace.as_millis() as u64;
                if keep.contains(s.staging_id.as_str()) || fresh {
                    let why = if keep.contains(s.staging_id.as_str()) { Why::APP } else { Why::grace(s.created_ms, opts.grace) };
                    // An app staged from a mirrored registry keeps the mirror's copy of its
                    // image too, whenever it was last pulled through the mirror.
                    if let Some(mirrored) = mirrored_copy(opts, &s.source) {
                        roots.push((mirrored, s.digest.clone(), why));
                    }
                    roots.push((repo, s.digest.clone(), why));
                } else {
                    expired_stagings.push((app.clone(), s.staging_id.clone()));
                }
            }
        }
        for (repo, d, meta) in &inv.manifests {
            if young(meta) {
                roots.push((repo.clone(), d.clone(), Why::young(meta, opts.grace)));
            }
        }

        Ok((roots, expired_stagings))
    }

    /// Unreached manifests and their referrer entries; returns the digests still referenced
    /// by a remaining manifest.
    pub(super) async fn sweep_manifests(
        &self,
        pass: &mut Pass<'_>,
        inv: &Inventory,
        stored: &HashSet<(RepoName, Digest)>,
        live: &mut Marks,
    ) -> Result<HashMap<Digest, Why>> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        let young = |m: &ObjectMeta| age(m) < opts.grace;
        // Sweep unreached manifests and their referrer entries. Claimed first, all of them: a
        // manifest a writer protected is kept and marked like a root, and what it reaches
        // (children, config, layers, possibly other candidates) is kept with it.
        let candidates: Vec<&(RepoName, Digest, ObjectMeta)> =
            inv.manifests.iter().filter(|(repo, d, meta)| !live.manifests.contains(&(repo.clone(), d.clone())) && !young(meta)).collect();
        self.claim_all(candidates.iter().map(|(_, d, _)| d.clone()).collect(), claimed, run, report).await?;
        let protected = Why::protected(opts.protect_window);
        let protected_roots: Vec<(RepoName, Digest, Why)> =
            candidates.iter().filter(|(_, d, _)| !claimed[d].ok).map(|(r, d, _)| (r.clone(), d.clone(), protected)).collect();
        self.mark(protected_roots, stored, inv, live).await?;
        let mut remaining_refs: HashMap<Digest, Why> = HashMap::new();
        for (repo, d, meta) in &inv.manifests {
            if live.manifests.contains(&(repo.clone(), d.clone())) {
                let why = live.why.get(d).copied().unwrap_or(protected);
                remaining_refs.entry(d.clone()).or_insert(why);
            } else if young(meta) {
                remaining_refs.entry(d.clone()).or_insert(Why::young(meta, opts.grace));
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
        let mut kept = KeptTally::default();
        for (_, d) in &live.manifests {
            kept.manifest(live.why.get(d).copied().unwrap_or(protected), opts);
        }
        *pass.kept = kept;

        Ok(remaining_refs)
    }

    /// Layer links no live manifest uses.
    pub(super) async fn sweep_layer_links(
        &self,
        pass: &mut Pass<'_>,
        inv: &Inventory,
        live: &Marks,
        remaining_refs: &mut HashMap<Digest, Why>,
    ) -> Result<()> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        let young = |m: &ObjectMeta| age(m) < opts.grace;
        // Sweep layer links no live manifest uses.
        let candidates: Vec<&(RepoName, Digest, ObjectMeta)> =
            inv.layers.iter().filter(|(repo, d, meta)| !live.links.contains(&(repo.clone(), d.clone())) && !young(meta)).collect();
        for (repo, d, meta) in &inv.layers {
            if live.links.contains(&(repo.clone(), d.clone())) {
                let why = live.why.get(d).copied().unwrap_or(Why::protected(opts.protect_window));
                remaining_refs.entry(d.clone()).or_insert(why);
            } else if young(meta) {
                remaining_refs.entry(d.clone()).or_insert(Why::young(meta, opts.grace));
            }
        }
        self.claim_all(candidates.iter().map(|(_, d, _)| d.clone()).collect(), claimed, run, report).await?;
        let mut doomed: Vec<(RepoName, Digest)> = Vec::new();
        for (repo, d, _) in candidates {
            if claimed[d].ok {
                doomed.push((repo.clone(), d.clone()));
            } else {
                remaining_refs.entry(d.clone()).or_insert(Why::protected(opts.protect_window));
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

        Ok(())
    }

    /// Blobs nothing links or uses any more; returns every blob listed and those removed.
    pub(super) async fn sweep_blobs(
        &self,
        pass: &mut Pass<'_>,
        live: &Marks,
        remaining_refs: &HashMap<Digest, Why>,
    ) -> Result<(HashSet<Digest>, Vec<Digest>)> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        let young = |m: &ObjectMeta| age(m) < opts.grace;
        // Sweep blobs nothing links or uses any more.
        let mut listed_blobs: HashSet<Digest> = HashSet::new();
        let mut candidates: Vec<(Digest, ObjectMeta)> = Vec::new();
        let kept = &mut *pass.kept;
        for meta in self.list_all(&keys::blobs()).await? {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            listed_blobs.insert(d.clone());
            // Why it stays, if it does: the strongest root that reached it, else what still
            // references it, else its own age.
            let why = live
                .why
                .get(&d)
                .or_else(|| remaining_refs.get(&d))
                .copied()
                .or_else(|| young(&meta).then(|| Why::young(&meta, opts.grace)));
            match why {
                Some(why) => kept.blob(why, meta.size, opts),
                None => candidates.push((d, meta)),
            }
        }
        self.claim_all(candidates.iter().map(|(d, _)| d.clone()).collect(), claimed, run, report).await?;
        let protected = Why::protected(opts.protect_window);
        for (_, meta) in candidates.iter().filter(|(d, _)| !claimed[d].ok) {
            kept.blob(protected, meta.size, opts);
        }
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
                if let Some(c) = self.inner.backend.blob_cache() {
                    c.remove(&d);
                }
                self.remove(&key).await
            })
            .await?;
        }
        report.live_blobs = live.blobs.len() as u64;

        Ok((listed_blobs, removed_blobs))
    }

    /// What interrupted or abandoned writes left: expired upload sessions, and old
    /// temporary files on the filesystem.
    pub(super) async fn sweep_leftovers(&self, opts: &GcOptions, report: &mut GcReport) -> Result<()> {
        // Sweep expired upload sessions.
        for (id, bytes) in self.idle_uploads(opts.upload_expiry).await? {
            report.uploads.add(bytes);
            if !opts.dry_run {
                self.cancel_upload_unchecked(&id).await?;
            }
        }

        // Temporary files an interrupted write left (the filesystem backend; S3 shows no
        // unfinished writes). Old ones only: a young one may be a write in progress.
        for (path, size) in self.inner.backend.stray_temp_files() {
            let old = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() >= TEMP_FILE_AGE);
            if old {
                report.temp_files.add(size);
                if !opts.dry_run {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }

        Ok(())
    }
    /// Marks from `roots` (repository, manifest digest) through indexes, manifests,
    /// referrers and an app's schema tags naming a live manifest, adding to `live`. Only manifests the inventory holds are followed.
    ///
    /// Each root carries why it is one, and what it reaches is kept for the same reason: the
    /// strongest reasons are followed first (and, among grace roots, the one that expires last),
    /// so an object reached several ways counts under the strongest.
    pub(super) async fn mark(
        &self,
        mut roots: Vec<(RepoName, Digest, Why)>,
        stored: &HashSet<(RepoName, Digest)>,
        inv: &Inventory,
        live: &mut Marks,
    ) -> Result<()> {
        // A stack: the last root is followed first.
        roots.sort_by_key(|(_, _, w)| (std::cmp::Reverse(w.by), w.until_ms));
        while let Some((repo, d, why)) = roots.pop() {
            if !stored.contains(&(repo.clone(), d.clone())) || !live.manifests.insert((repo.clone(), d.clone())) {
                continue;
            }
            live.blobs.insert(d.clone());
            live.why.entry(d.clone()).or_insert(why);
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
                    live.why.entry(b.digest.clone()).or_insert(why);
                    live.links.insert((repo.clone(), b.digest.clone()));
                }
                for child in &m.manifests {
                    roots.push((repo.clone(), child.digest.clone(), why));
                }
            }
            if let Some(refs) = inv.referrers.get(&(repo.clone(), d.clone())) {
                for (r, _) in refs {
                    roots.push((repo.clone(), r.clone(), why));
                }
            }
            if let Some(tags) = inv.schema_tags.get(&(repo.clone(), Tag::schema_base(&d))) {
                for t in tags {
                    if let Some(target) = self.resolve_tag(&repo, t).await? {
                        roots.push((repo.clone(), target, why));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The mirrored repository holding the image a staging's source names, when the source's
/// registry is mirrored (`docker.io/library/redis:7` -> `docker.io/library/redis`).
fn mirrored_copy(opts: &GcOptions, source: &str) -> Option<RepoName> {
    let image = oci::ImageRef::parse(source).ok()?;
    let key = image.registry.replace(':', "-");
    opts.mirrored.iter().any(|m| m.prefix == key).then(|| RepoName::parse(&format!("{key}/{}", image.repository)).ok())?
}

impl Store {
    /// The most recently pulled of `images` whose bytes (each manifest and the blobs it
    /// names, a blob counted once) fit in `cap`: a mirror's size cap evicts the least
    /// recently pulled first.
    async fn newest_within(
        &self,
        mut images: Vec<(RepoName, Digest, std::time::Duration)>,
        cap: u64,
    ) -> Result<Vec<(RepoName, Digest, std::time::Duration)>> {
        images.sort_by_key(|(_, _, age)| *age);
        let (mut total, mut counted, mut kept) = (0u64, HashSet::new(), Vec::new());
        for (repo, d, age) in images {
            let mut size = 0u64;
            if counted.insert(d.clone()) {
                match self.read_blob_bytes(&d).await {
                    Ok(bytes) => {
                        size += bytes.len() as u64;
                        if let Ok(m) = oci::Manifest::parse(&bytes, None) {
                            for b in m.required_blobs() {
                                if counted.insert(b.digest.clone()) {
                                    size += b.size;
                                }
                            }
                        }
                    }
                    Err(StoreError::BlobUnknown(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            if total + size > cap {
                break;
            }
            total += size;
            kept.push((repo, d, age));
        }
        Ok(kept)
    }
}

/// The staging ids kept for an app: the current one, the `retain` before it, and any after
/// it (stagings newer than a rolled-back current).
pub(crate) fn retained(stagings: &[crate::StagingRecord], current: Option<&str>, retain: usize) -> HashSet<String> {
    let mut ids: Vec<&str> = stagings.iter().map(|s| s.staging_id.as_str()).collect();
    ids.sort();
    let Some(last) = ids.len().checked_sub(1) else { return HashSet::new() };
    let pos = current.and_then(|c| ids.iter().position(|i| *i == c)).unwrap_or(last);
    ids[pos.saturating_sub(retain)..].iter().map(|s| s.to_string()).collect()
}
