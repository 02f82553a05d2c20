//! Marking from the roots and the sweep's phases, in the order they run.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::ObjectMeta;
use oci::{AppId, CompactDigest, Digest, RepoName, Tag};

use super::marks::{link_fingerprint, Fingerprints, WhyMap};
use super::{concurrently, GcOptions, GcReport, KeptTally, Why, BATCH, TEMP_FILE_AGE};
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

/// A manifest link: 56 bytes, where the listing's `ObjectMeta` (its key, time, tag) and
/// parsed names took several hundred.
pub(super) struct Entry {
    /// Its repository's index in [`Repos`] (a store has fewer repositories than manifests,
    /// and a collection could not hold 2^32 manifests anyway).
    repo: u32,
    /// The link's size (a few hundred bytes of JSON; saturated, it is only reported).
    size: u32,
    /// When it was written, if that is within the grace period: a root, never removed
    /// until then (unix ms; 0: not young).
    young_until_ms: u64,
    pub(super) digest: CompactDigest,
}

// What the docs say it costs.
const _: () = assert!(std::mem::size_of::<Entry>() == 56);

impl Entry {
    pub(super) fn repo(&self) -> usize {
        self.repo as usize
    }

    pub(super) fn size(&self) -> u64 {
        u64::from(self.size)
    }

    pub(super) fn young_until(&self) -> Option<u64> {
        (self.young_until_ms != 0).then_some(self.young_until_ms)
    }

    pub(super) fn node(&self) -> Node {
        (self.repo(), self.digest.clone())
    }
}

/// What marking needs of `repositories/`, in compact form (it is held for the whole
/// collection; see "Memory" in the module docs). Layer links, as many as blobs, are not held:
/// the link sweep lists them again.
#[derive(Default)]
pub(super) struct Inventory {
    pub(super) repos: Repos,
    /// Sorted by (repository, digest) once listed ([`Inventory::seal`]).
    pub(super) manifests: Vec<Entry>,
    /// Taken (emptied) by `Store::roots`.
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
pub(super) struct Marks {
    /// The inventory's manifests marking reached, a bit each (by their index in
    /// [`Inventory::manifests`]; marking follows only manifests the inventory holds).
    pub(super) manifests: Bits,
    /// Fingerprints of (repository, blob digest): layer links a live manifest uses.
    pub(super) links: Fingerprints,
    /// Digests whose bytes a live manifest needs (manifests included), each with why it is
    /// kept: the strongest root that reached it.
    pub(super) blobs: WhyMap,
}

/// A fixed-size set of indexes, one bit each.
pub(super) struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; len.div_ceil(64)])
    }

    pub(super) fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `i`; whether it was absent.
    fn insert(&mut self, i: usize) -> bool {
        let absent = !self.has(i);
        self.0[i / 64] |= 1 << (i % 64);
        absent
    }

    pub(super) fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| w * 64 + b))
    }
}

impl Marks {
    /// No marks yet, for the manifests of `inv`.
    pub(super) fn new(inv: &Inventory) -> Self {
        Marks { manifests: Bits::new(inv.manifests.len()), links: Fingerprints::default(), blobs: WhyMap::default() }
    }

    /// Readies the marks for lookups, after (each) marking.
    pub(super) fn seal(&mut self) {
        self.links.seal();
        self.blobs.seal();
    }
}

impl Inventory {
    pub(super) fn add(&mut self, meta: &ObjectMeta, grace: Duration) {
        let young_until = (age(meta) < grace).then(|| Why::young(meta, grace).until_ms).flatten();
        match keys::parse_repo_key(&meta.location) {
            Some(RepoKey::Manifest(repo, d)) => {
                let entry = Entry {
                    repo: self.repos.intern(repo) as u32, // see `Entry::repo`
                    size: meta.size.min(u64::from(u32::MAX)) as u32,
                    young_until_ms: young_until.unwrap_or(0),
                    digest: CompactDigest::of(&d),
                };
                // Grown by a quarter: the inventory is most of what a collection holds.
                super::marks::push(&mut self.manifests, entry, |_| {})
            }
            Some(RepoKey::Layer(..)) => {}
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

    /// Sorts the manifests for [`Self::stored`], once listed.
    pub(super) fn seal(&mut self) {
        self.manifests.sort_unstable_by(|a, b| (a.repo, &a.digest).cmp(&(b.repo, &b.digest)));
        self.manifests.shrink_to_fit();
    }

    /// Where the listing found this manifest in [`Self::manifests`], if it did.
    pub(super) fn index(&self, (repo, d): &Node) -> Option<usize> {
        self.manifests.binary_search_by(|e| (e.repo(), &e.digest).cmp(&(*repo, d))).ok()
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
    ///
    /// Takes the inventory's tags: they are needed for nothing else, and a store's tags are
    /// as many as its images.
    pub(super) async fn roots(&self, opts: &GcOptions, inv: &mut Inventory) -> Result<(Vec<(Node, Why)>, Vec<(AppId, crate::StagingId)>)> {
        // Held compact as they are found: a digest's text and a repository's name per root
        // would cost more than the marks of an image's blobs.
        let mut roots: Vec<(Node, Why)> = Vec::new();
        for (repo, tag) in std::mem::take(&mut inv.tags) {
            // A mirror's tags are the upstream's names, not a reason to keep anything.
            if opts.mirror_of(&repo).is_some() {
                continue;
            }
            if let Some(d) = self.resolve_tag(&repo, &tag).await? {
                roots.extend(inv.node(&repo, &d).map(|n| (n, Why::TAG)));
            }
        }
        if !opts.mirrored.is_empty() {
            // Pulled within retention, per mirror, with when.
            let mut pulled: Vec<Vec<(RepoName, Digest, std::time::Duration)>> = vec![Vec::new(); opts.mirrored.len()];
            let mut pulls = self.os().list(Some(&keys::mirror_pulls()));
            while let Some(meta) = futures::TryStreamExt::try_next(&mut pulls).await? {
                let Some((repo, d)) = keys::parse_mirror_pull_key(&meta.location) else { continue };
                if let Some(i) = opts.mirror_of(&repo).filter(|i| age(&meta) < opts.mirrored[*i].retention) {
                    pulled[i].push((repo, d, age(&meta)));
                }
            }
            let now = super::now_ms();
            for (m, mut images) in opts.mirrored.iter().zip(pulled) {
                if let Some(cap) = m.max_size {
                    images = self.newest_within(images, cap).await?;
                }
                let until = |age: std::time::Duration| Some(now.saturating_sub(age.as_millis() as u64) + m.retention.as_millis() as u64);
                roots.extend(
                    images
                        .into_iter()
                        .filter_map(|(repo, d, age)| Some((inv.node(&repo, &d)?, Why { by: KeptBy::Mirror, until_ms: until(age) }))),
                );
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
                        roots.extend(inv.node(&mirrored, &s.digest).map(|n| (n, why)));
                    }
                    roots.extend(inv.node(&repo, &s.digest).map(|n| (n, why)));
                } else {
                    expired_stagings.push((app.clone(), s.staging_id.clone()));
                }
            }
        }
        roots.extend(inv.manifests.iter().filter_map(|e| Some((e.node(), Why::grace_until(e.young_until()?)))));

        Ok((roots, expired_stagings))
    }

    /// Unreached manifests and their referrer entries; returns why the digests that young
    /// manifests reference are kept (live ones are in `live.blobs`).
    pub(super) async fn sweep_manifests(&self, pass: &mut Pass<'_>, inv: &Inventory, live: &mut Marks) -> Result<WhyMap> {
        let (opts, run) = (pass.opts, pass.run);
        // Claimed first, all of them: a manifest a writer protected is kept and marked like a
        // root, and what it reaches (children, config, layers, possibly other candidates) is
        // kept with it.
        // Each with its index in the inventory, by which the marks name manifests.
        let candidates: Vec<(usize, &Entry)> =
            inv.manifests.iter().enumerate().filter(|(i, e)| e.young_until().is_none() && !live.manifests.has(*i)).collect();
        let mut digests: Vec<CompactDigest> = candidates.iter().map(|(_, e)| e.digest.clone()).collect();
        digests.sort_unstable();
        digests.dedup();
        let (mut claims, mut flags) = (Vec::with_capacity(digests.len()), Vec::new());
        for batch in digests.chunks(BATCH) {
            // A digest's text only for its batch: it is several times the compact form.
            let batch: Vec<Digest> = batch.iter().map(CompactDigest::digest).collect();
            match self.claim(&batch, run).await {
                Ok((f, c)) => {
                    flags.push(f);
                    claims.extend(c);
                }
                Err(e) => {
                    for f in flags {
                        let _ = self.release(f).await;
                    }
                    return Err(e);
                }
            }
        }
        // Per candidate, whether its digest was claimed.
        let removable: Vec<bool> =
            candidates.iter().map(|(_, e)| digests.binary_search(&e.digest).is_ok_and(|i| claims[i].removable)).collect();
        let outcome = async {
            let protected = Why::protected(opts.protect_window);
            pass.report.protected += claims.iter().filter(|c| !c.removable).count() as u64;
            let protected_roots: Vec<(Node, Why)> =
                candidates.iter().zip(&removable).filter(|(_, r)| !**r).map(|((_, e), _)| (e.node(), protected)).collect();
            self.mark(protected_roots, inv, live).await?;
            live.seal();
            let mut refs = WhyMap::default();
            for (i, e) in inv.manifests.iter().enumerate() {
                if let Some(until) = e.young_until().filter(|_| !live.manifests.has(i)) {
                    refs.add(&e.digest, Why::grace_until(until));
                }
            }
            // The tags that may point at an unreached manifest: every tag is a root but a
            // mirror's and an app's schema tags, so elsewhere only the latter need a look.
            let mut schema_tags: HashMap<usize, Vec<Tag>> = HashMap::new();
            for ((repo, _), tags) in &inv.schema_tags {
                schema_tags.entry(*repo).or_default().extend(tags.iter().cloned());
            }
            // Removed a batch at a time: what a removal needs (names, the digest's text, the
            // tags to read) is held for one batch, not for all the garbage. Owned items: closures
            // over borrowed ones make the collection's future too lifetime-specific for
            // `tokio::spawn` (rustc's higher-ranked `Send` limitation).
            let unreached = candidates.iter().zip(&removable).filter(|((i, _), r)| **r && !live.manifests.has(*i));
            let mut doomed: Vec<(RepoName, Digest, Option<Vec<Tag>>)> = Vec::new();
            for ((_, e), _) in unreached {
                pass.report.manifests.add(e.size());
                if opts.dry_run {
                    continue;
                }
                let repo = inv.repos.name(e.repo()).clone();
                let tags = opts.mirror_of(&repo).is_none().then(|| schema_tags.get(&e.repo()).cloned().unwrap_or_default());
                doomed.push((repo, e.digest.digest(), tags));
                if doomed.len() >= BATCH {
                    self.delete_manifests(std::mem::take(&mut doomed)).await?;
                }
            }
            self.delete_manifests(doomed).await?;
            pass.report.live_manifests = live.manifests.len() as u64;
            let mut kept = KeptTally::default();
            for i in live.manifests.iter() {
                kept.manifest(live.blobs.get(&inv.manifests[i].digest).unwrap_or(protected), opts);
            }
            *pass.kept = kept;
            Ok::<_, StoreError>(refs)
        }
        .await;
        // The bytes of removed manifests are claimed again by the blob sweep.
        let mut released = Ok(());
        for f in flags {
            released = released.and(self.release(f).await);
        }
        let refs = outcome?;
        released?;
        Ok(refs)
    }

    /// Removes claimed manifests, each with the tags given (`None`: every tag).
    async fn delete_manifests(&self, doomed: Vec<(RepoName, Digest, Option<Vec<Tag>>)>) -> Result<()> {
        concurrently(doomed, |(repo, d, tags): (RepoName, Digest, Option<Vec<Tag>>)| async move {
            self.delete_manifest_among(&repo, &d, tags).await.map(|_| ())
        })
        .await
    }

    /// Layer links no live manifest uses, from a listing of their own, a batch at a time.
    pub(super) async fn sweep_layer_links(&self, pass: &mut Pass<'_>, inv: &Inventory, live: &Marks, refs: &mut WhyMap) -> Result<()> {
        let mut batch: Vec<(RepoName, CompactDigest)> = Vec::new();
        let mut listing = self.os().list(Some(&keys::repositories()));
        while let Some(meta) = listing.try_next().await? {
            let Some(RepoKey::Layer(repo, d)) = keys::parse_repo_key(&meta.location) else { continue };
            let d = CompactDigest::of(&d);
            // A repository the first listing did not see is younger than this collection.
            if inv.repos.id(&repo).is_some_and(|r| live.links.has(link_fingerprint(r, &d))) {
                continue; // its blob is in `live.blobs`
            }
            if age(&meta) < pass.opts.grace {
                refs.add(&d, Why::young(&meta, pass.opts.grace));
                continue;
            }
            batch.push((repo, d));
            if batch.len() >= BATCH {
                self.unlink_batch(pass, std::mem::take(&mut batch), refs).await?;
            }
        }
        drop(listing);
        self.unlink_batch(pass, batch, refs).await?;
        if !pass.opts.dry_run {
            // Before the collection answers, every replica's cached links must be voided.
            self.publish_removal().await?;
        }
        Ok(())
    }

    /// Claims the digests of unused layer links and removes the links of those claimed.
    async fn unlink_batch(&self, pass: &mut Pass<'_>, batch: Vec<(RepoName, CompactDigest)>, refs: &mut WhyMap) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (opts, run) = (pass.opts, pass.run);
        let mut digests: Vec<CompactDigest> = batch.iter().map(|(_, d)| d.clone()).collect();
        digests.sort_unstable();
        digests.dedup();
        let full: Vec<Digest> = digests.iter().map(CompactDigest::digest).collect();
        let (flags, claims) = self.claim(&full, run).await?;
        pass.report.protected += claims.iter().filter(|c| !c.removable).count() as u64;
        let mut doomed = Vec::new();
        for (repo, d) in batch {
            let i = digests
                .binary_search(&d)
                .map_err(|_| StoreError::Corrupt { key: repo.to_string(), reason: "a link's digest left its batch".into() })?;
            if claims[i].removable {
                doomed.push((repo, full[i].clone()));
            } else {
                refs.add(&d, Why::protected(opts.protect_window));
            }
        }
        pass.report.layer_links.count += doomed.len() as u64;
        let removed = async {
            if !opts.dry_run {
                let keys: Vec<_> = doomed.iter().map(|(repo, d)| keys::layer_link(repo, d)).collect();
                self.inner.backend.remove_many(&keys).await?;
                for link in doomed {
                    self.cache().layer_links.remove(&link);
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let released = self.release(flags).await;
        removed?;
        released
    }

    /// Blobs nothing links or uses any more, from a streamed listing, a batch at a time.
    pub(super) async fn sweep_blobs(&self, pass: &mut Pass<'_>, live: &Marks, refs: &WhyMap) -> Result<()> {
        let mut batch: Vec<(Digest, u64)> = Vec::new();
        let mut listing = self.os().list(Some(&keys::blobs()));
        while let Some(meta) = listing.try_next().await? {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            let compact = CompactDigest::of(&d);
            // Why it stays, if it does: the strongest root that reached it, else what still
            // references it, else its own age.
            let why = live
                .blobs
                .get(&compact)
                .or_else(|| refs.get(&compact))
                .or_else(|| (age(&meta) < pass.opts.grace).then(|| Why::young(&meta, pass.opts.grace)));
            match why {
                Some(why) => pass.kept.blob(why, meta.size, pass.opts),
                None => batch.push((d, meta.size)),
            }
            if batch.len() >= BATCH {
                self.remove_blob_batch(pass, std::mem::take(&mut batch)).await?;
            }
        }
        drop(listing);
        self.remove_blob_batch(pass, batch).await?;
        pass.report.live_blobs = live.blobs.len() as u64;
        Ok(())
    }

    /// Claims unused blobs and removes those claimed, with the old protections of their
    /// digests (under the claim: a writer protecting one since saw the flag and gave up).
    async fn remove_blob_batch(&self, pass: &mut Pass<'_>, batch: Vec<(Digest, u64)>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (opts, run) = (pass.opts, pass.run);
        let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
        let (flags, claims) = self.claim(&digests, run).await?;
        let protected = Why::protected(opts.protect_window);
        let mut doomed = Vec::new();
        for ((d, size), c) in batch.into_iter().zip(&claims) {
            if c.removable {
                pass.report.blobs.add(size);
                doomed.push((d, c.old_protection));
            } else {
                pass.report.protected += 1;
                pass.kept.blob(protected, size, opts);
            }
        }
        let removed = async {
            if !opts.dry_run {
                for (d, _) in &doomed {
                    self.cache().blob_sizes.remove(d);
                    self.cache().manifests.remove(d);
                    if let Some(c) = self.inner.backend.blob_cache() {
                        c.remove(d);
                    }
                }
                let blobs: Vec<_> = doomed.iter().map(|(d, _)| keys::blob(d)).collect();
                self.inner.backend.remove_many(&blobs).await?;
                let protections: Vec<_> = doomed.iter().filter(|(_, p)| *p).map(|(d, _)| keys::protect(d)).collect();
                self.inner.backend.remove_many(&protections).await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let released = self.release(flags).await;
        removed?;
        released
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
    pub(super) async fn mark(&self, mut roots: Vec<(Node, Why)>, inv: &Inventory, live: &mut Marks) -> Result<()> {
        // A stack: the last root is followed first.
        roots.sort_by_key(|(_, w)| (std::cmp::Reverse(w.by), w.until_ms));
        while let Some((node, why)) = roots.pop() {
            if !inv.index(&node).is_some_and(|i| live.manifests.insert(i)) {
                continue; // not stored, or marked already
            }
            let (repo, d) = node;
            live.blobs.add(&d, why);
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
                    live.blobs.add(&b, why);
                    live.links.add(link_fingerprint(repo, &b));
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
