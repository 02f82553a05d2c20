//! Marking from the roots and the sweep's phases, in the order they run.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::ObjectMeta;
use oci::{AppId, CompactDigest, Digest, RepoName, Tag};

use super::{concurrently, GcOptions, GcReport, KeptTally, Why, TEMP_FILE_AGE};
use super::{KeptBy, Pass};
use crate::age;
use crate::keys::{self, RepoKey};
use crate::{Result, Store, StoreError};

/// Repository names, each held once: the inventory's entries name theirs by index, so a
/// store of many links does not hold a copy of its repository's name per link.
#[derive(Default)]
pub(super) struct Repos {
    ids: HashMap<RepoName, usize>,
    names: Vec<RepoName>,
}

impl Repos {
    fn intern(&mut self, repo: RepoName) -> usize {
        if let Some(id) = self.ids.get(&repo) {
            return *id;
        }
        self.names.push(repo.clone());
        self.ids.insert(repo, self.names.len() - 1);
        self.names.len() - 1
    }

    pub(super) fn id(&self, repo: &RepoName) -> Option<usize> {
        self.ids.get(repo).copied()
    }

    /// The name of an id this table gave.
    pub(super) fn name(&self, id: usize) -> &RepoName {
        &self.names[id]
    }
}

/// A manifest link or a layer link: 72 bytes, where the listing's `ObjectMeta` (its key, time,
/// tag) and parsed names took several hundred.
pub(super) struct Entry {
    pub(super) repo: usize,
    pub(super) digest: CompactDigest,
    pub(super) size: u64,
    /// When it was written, if that is within the grace period: a root, never removed
    /// until then (unix ms).
    pub(super) young_until: Option<u64>,
}

/// Everything under `repositories/`, classified, in compact form (it is held for the whole
/// collection; see "Memory" in the module docs).
#[derive(Default)]
pub(super) struct Inventory {
    pub(super) repos: Repos,
    pub(super) manifests: Vec<Entry>,
    pub(super) layers: Vec<Entry>,
    pub(super) tags: Vec<(RepoName, Tag)>,
    /// The tag schema's tags in app repositories (copies of the upstream's signature tags,
    /// see `Store::pin_schema_tags`), by (repo, the `<alg>-<hex>` they name). Not roots: what
    /// they name is marked only while that subject is, so they never keep an unpinned app's
    /// signatures alive, and go with the manifests they name (`delete_manifest`).
    pub(super) schema_tags: HashMap<(usize, String), Vec<Tag>>,
    /// (repo, subject) -> referrer digests
    pub(super) referrers: HashMap<(usize, CompactDigest), Vec<CompactDigest>>,
}

/// A manifest in a repository, as marking and the sweep name it.
pub(super) type Node = (usize, CompactDigest);

/// What marking reached.
#[derive(Default)]
pub(super) struct Marks {
    /// (repository, manifest digest)
    pub(super) manifests: HashSet<Node>,
    /// (repository, blob digest): layer links a live manifest uses.
    pub(super) links: HashSet<Node>,
    /// Digests whose bytes a live manifest needs (manifests included), each with why it is
    /// kept: the strongest root that reached it.
    pub(super) blobs: HashMap<CompactDigest, Why>,
}

impl Inventory {
    pub(super) fn add(&mut self, meta: &ObjectMeta, grace: Duration) {
        let young_until = (age(meta) < grace).then(|| Why::young(meta, grace).until_ms).flatten();
        match keys::parse_repo_key(&meta.location) {
            Some(RepoKey::Manifest(repo, d)) => {
                let repo = self.repos.intern(repo);
                self.manifests.push(Entry { repo, digest: CompactDigest::of(&d), size: meta.size, young_until })
            }
            Some(RepoKey::Layer(repo, d)) => {
                let repo = self.repos.intern(repo);
                self.layers.push(Entry { repo, digest: CompactDigest::of(&d), size: meta.size, young_until })
            }
            Some(RepoKey::Tag(repo, t)) => match t.schema_subject() {
                Some(subject) if AppId::of_repository(&repo).is_some() => {
                    let subject = subject.to_string();
                    let repo = self.repos.intern(repo);
                    self.schema_tags.entry((repo, subject)).or_default().push(t)
                }
                _ => self.tags.push((repo, t)),
            },
            Some(RepoKey::Referrer(repo, subject, r)) => {
                let repo = self.repos.intern(repo);
                self.referrers.entry((repo, CompactDigest::of(&subject))).or_default().push(CompactDigest::of(&r))
            }
            None => {}
        }
    }

    /// A root as marking takes it; `None` when the repository holds no manifest at all
    /// (marking would skip it anyway: only stored manifests are followed).
    pub(super) fn node(&self, repo: &RepoName, d: &Digest) -> Option<Node> {
        Some((self.repos.id(repo)?, CompactDigest::of(d)))
    }
}

impl Store {
    /// Roots: tags (but an app's schema tags and a mirror's), mirrored manifests pulled within
    /// their mirror's retention, retained stagings, young manifests; and the staging records
    /// beyond retention.
    pub(super) async fn roots(&self, opts: &GcOptions, inv: &Inventory) -> Result<(Vec<(Node, Why)>, Vec<(AppId, crate::StagingId)>)> {
        let mut roots: Vec<(RepoName, Digest, Why)> = Vec::new();
        let mirror_of = |repo: &RepoName| opts.mirrored.iter().position(|m| repo.as_str().starts_with(&format!("{}/", m.prefix)));
        for (repo, tag) in &inv.tags {
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
        let mut nodes: Vec<(Node, Why)> = roots.iter().filter_map(|(repo, d, why)| Some((inv.node(repo, d)?, *why))).collect();
        nodes.extend(inv.manifests.iter().filter_map(|e| Some(((e.repo, e.digest.clone()), Why::grace_until(e.young_until?)))));

        Ok((nodes, expired_stagings))
    }

    /// Unreached manifests and their referrer entries; returns the digests still referenced
    /// by a remaining manifest.
    pub(super) async fn sweep_manifests(
        &self,
        pass: &mut Pass<'_>,
        inv: &Inventory,
        stored: &HashSet<Node>,
        live: &mut Marks,
    ) -> Result<HashMap<CompactDigest, Why>> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        // Sweep unreached manifests and their referrer entries. Claimed first, all of them: a
        // manifest a writer protected is kept and marked like a root, and what it reaches
        // (children, config, layers, possibly other candidates) is kept with it.
        let unreached = |e: &&Entry| e.young_until.is_none() && !live.manifests.contains(&(e.repo, e.digest.clone()));
        let candidates: Vec<&Entry> = inv.manifests.iter().filter(unreached).collect();
        self.claim_all(candidates.iter().map(|e| e.digest.clone()).collect(), claimed, run, report).await?;
        let protected = Why::protected(opts.protect_window);
        let protected_roots: Vec<(Node, Why)> =
            candidates.iter().filter(|e| !claimed[&e.digest].ok).map(|e| ((e.repo, e.digest.clone()), protected)).collect();
        self.mark(protected_roots, stored, inv, live).await?;
        let mut remaining_refs: HashMap<CompactDigest, Why> = HashMap::new();
        for e in &inv.manifests {
            if live.manifests.contains(&(e.repo, e.digest.clone())) {
                let why = live.blobs.get(&e.digest).copied().unwrap_or(protected);
                remaining_refs.entry(e.digest.clone()).or_insert(why);
            } else if let Some(until) = e.young_until {
                remaining_refs.entry(e.digest.clone()).or_insert(Why::grace_until(until));
            }
        }
        // Owned items from here on: closures over borrowed ones make the collection's future
        // too lifetime-specific for `tokio::spawn` (rustc's higher-ranked `Send` limitation).
        let mut doomed: Vec<(RepoName, Digest)> = Vec::new();
        for e in candidates {
            if claimed[&e.digest].ok && !live.manifests.contains(&(e.repo, e.digest.clone())) {
                report.manifests.add(e.size);
                doomed.push((inv.repos.name(e.repo).clone(), e.digest.digest()));
            }
        }
        if !opts.dry_run {
            concurrently(doomed, |(repo, d): (RepoName, Digest)| async move { self.delete_manifest(&repo, &d).await.map(|_| ()) }).await?;
        }
        report.live_manifests = live.manifests.len() as u64;
        let mut kept = KeptTally::default();
        for (_, d) in &live.manifests {
            kept.manifest(live.blobs.get(d).copied().unwrap_or(protected), opts);
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
        remaining_refs: &mut HashMap<CompactDigest, Why>,
    ) -> Result<()> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        // Sweep layer links no live manifest uses.
        let mut candidates: Vec<&Entry> = Vec::new();
        for e in &inv.layers {
            if live.links.contains(&(e.repo, e.digest.clone())) {
                let why = live.blobs.get(&e.digest).copied().unwrap_or(Why::protected(opts.protect_window));
                remaining_refs.entry(e.digest.clone()).or_insert(why);
            } else if let Some(until) = e.young_until {
                remaining_refs.entry(e.digest.clone()).or_insert(Why::grace_until(until));
            } else {
                candidates.push(e);
            }
        }
        self.claim_all(candidates.iter().map(|e| e.digest.clone()).collect(), claimed, run, report).await?;
        let mut doomed: Vec<(RepoName, Digest)> = Vec::new();
        for e in candidates {
            if claimed[&e.digest].ok {
                doomed.push((inv.repos.name(e.repo).clone(), e.digest.digest()));
            } else {
                remaining_refs.entry(e.digest.clone()).or_insert(Why::protected(opts.protect_window));
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
            // Before the collection answers, every replica's cached links must be voided.
            self.publish_removal().await?;
        }

        Ok(())
    }

    /// Blobs nothing links or uses any more; returns every blob listed and those removed.
    /// The listing is streamed: only the digests are kept, compact.
    pub(super) async fn sweep_blobs(
        &self,
        pass: &mut Pass<'_>,
        live: &Marks,
        remaining_refs: &HashMap<CompactDigest, Why>,
    ) -> Result<(HashSet<CompactDigest>, Vec<CompactDigest>)> {
        let (opts, run) = (pass.opts, pass.run);
        let (claimed, report) = (&mut *pass.claimed, &mut *pass.report);
        // Sweep blobs nothing links or uses any more.
        let mut listed_blobs: HashSet<CompactDigest> = HashSet::new();
        let mut candidates: Vec<(CompactDigest, u64)> = Vec::new();
        let kept = &mut *pass.kept;
        let mut listing = self.os().list(Some(&keys::blobs()));
        while let Some(meta) = listing.try_next().await? {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            let d = CompactDigest::of(&d);
            // Why it stays, if it does: the strongest root that reached it, else what still
            // references it, else its own age.
            let why = live
                .blobs
                .get(&d)
                .or_else(|| remaining_refs.get(&d))
                .copied()
                .or_else(|| (age(&meta) < opts.grace).then(|| Why::young(&meta, opts.grace)));
            match why {
                Some(why) => kept.blob(why, meta.size, opts),
                None => candidates.push((d.clone(), meta.size)),
            }
            listed_blobs.insert(d);
        }
        drop(listing);
        self.claim_all(candidates.iter().map(|(d, _)| d.clone()).collect(), claimed, run, report).await?;
        let protected = Why::protected(opts.protect_window);
        for (_, size) in candidates.iter().filter(|(d, _)| !claimed[d].ok) {
            kept.blob(protected, *size, opts);
        }
        candidates.retain(|(d, _)| claimed[d].ok);
        for (_, size) in &candidates {
            report.blobs.add(*size);
        }
        let mut removed_blobs: Vec<CompactDigest> = Vec::new();
        if !opts.dry_run {
            removed_blobs = candidates.iter().map(|(d, _)| d.clone()).collect();
            concurrently(candidates, |(d, _): (CompactDigest, u64)| async move {
                let d = d.digest();
                self.cache().blob_sizes.remove(&d);
                self.cache().manifests.remove(&d);
                if let Some(c) = self.inner.backend.blob_cache() {
                    c.remove(&d);
                }
                self.remove(&keys::blob(&d)).await
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
    pub(super) async fn mark(&self, mut roots: Vec<(Node, Why)>, stored: &HashSet<Node>, inv: &Inventory, live: &mut Marks) -> Result<()> {
        // A stack: the last root is followed first.
        roots.sort_by_key(|(_, w)| (std::cmp::Reverse(w.by), w.until_ms));
        while let Some((node, why)) = roots.pop() {
            if !stored.contains(&node) || live.manifests.contains(&node) {
                continue;
            }
            live.manifests.insert(node.clone());
            let (repo, d) = node;
            live.blobs.entry(d.clone()).or_insert(why);
            let digest = d.digest();
            let bytes = match self.cache().manifests.get(&digest) {
                Some(b) => b,
                None => match self.read_blob_bytes(&digest).await {
                    Ok(b) => b,
                    Err(StoreError::BlobUnknown(_)) => {
                        tracing::warn!(repo = %inv.repos.name(repo), %digest, "live manifest has no bytes; run fsck");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            if let Ok(m) = oci::Manifest::parse(&bytes, None) {
                for b in m.config.iter().chain(m.layers.iter()) {
                    let b = CompactDigest::of(&b.digest);
                    live.blobs.entry(b.clone()).or_insert(why);
                    live.links.insert((repo, b));
                }
                for child in &m.manifests {
                    roots.push(((repo, CompactDigest::of(&child.digest)), why));
                }
            }
            if let Some(refs) = inv.referrers.get(&(repo, d)) {
                roots.extend(refs.iter().map(|r| ((repo, r.clone()), why)));
            }
            if let Some(tags) = inv.schema_tags.get(&(repo, Tag::schema_base(&digest))) {
                for t in tags {
                    if let Some(target) = self.resolve_tag(inv.repos.name(repo), t).await? {
                        roots.push(((repo, CompactDigest::of(&target)), why));
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
