//! The staging engine: resolve an app's image upstream, plan what the store lacks, copy only
//! that (in parallel, one download per digest however many stagings want it), then pin the
//! manifest under `apps/<app-id>` and record the staging. The platform's scale-ups then pull
//! the pinned digest from wharfage, whatever happens upstream afterwards.
//!
//! Reuse never crosses repositories on the store's word alone: a blob the store holds (for
//! any repository, perhaps one the stager may not pull) is reused only once the staging's
//! upstream has shown it holds it: a HEAD with the same size, and 32 bytes at a random offset
//! equal to the store's (a HEAD alone, an upstream the stager controls could fake). A stored
//! manifest is reused after the upstream's HEAD names its digest. Otherwise a stager could
//! stage a manifest naming another repository's digests from an upstream of their own and
//! pull them through their app.
//!
//! Order of effects, so that a failure leaves nothing half-staged visible: blobs (content
//! addressed, invisible until linked) -> links -> manifests (children first) -> staging
//! record -> `current` -> the tag schema's tags of copied signatures (which replace the
//! previous staging's).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod events;
mod platform;
mod referrers;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};
use oci::{AppId, Descriptor, Digest, ImageRef, Reference, RunMetadata};
use store::{StagingRecord, Store};
use tokio::sync::mpsc;
use upstream::{Credentials, Fetched, Session};

pub use error::StageError;
pub use events::Event;
pub use platform::Platform;
pub use referrers::ReferrersPolicy;

/// What to stage.
#[derive(Debug)]
pub struct StageRequest {
    pub source: ImageRef,
    pub app: AppId,
    /// `None`: the default (linux/amd64 of an index; a single image whatever its platform).
    /// A platform asked for explicitly must be the image's: a single image of another
    /// platform is refused rather than pinned without a word.
    pub platform: Option<Platform>,
    /// Whether signatures, SBOMs and attestations of the pinned image come along.
    pub referrers: ReferrersPolicy,
    /// Used for this staging only, then dropped (and zeroised).
    pub credentials: Option<Credentials>,
}

type Download = Shared<BoxFuture<'static, Result<Option<u64>, Arc<StageError>>>>;

/// What a staging needs and what it can reuse.
struct Plan {
    /// Every blob the images need, by digest.
    blobs: BTreeMap<Digest, Descriptor>,
    /// The blobs the store lacked when planned.
    missing: Vec<Descriptor>,
    /// Every digest the staging relies on (blobs and manifests), to protect.
    wanted: Vec<Digest>,
    bytes_reused: u64,
    blobs_reused: u64,
}

/// What [`Stager::copy_referrers`] copied, and what it had to leave out.
#[derive(Default)]
struct CopiedReferrers {
    referrers: Vec<referrers::Referrer>,
    /// The tag schema's indexes listing them, stored after them.
    indexes: Vec<Fetched>,
    /// The upstream's tags of the schema that name what was copied.
    tags: Vec<referrers::SchemaTag>,
    /// Their blobs (`None` when nothing was copied).
    plan: Option<Plan>,
    downloaded: Vec<u64>,
    warnings: Vec<String>,
}

/// Parallel blob downloads per staging unless configured otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The staging engine; cheap to clone.
#[derive(Clone)]
pub struct Stager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    upstream: upstream::Client,
    /// Parallel blob downloads per staging.
    concurrency: usize,
    /// Downloads in flight, by digest, shared by every staging that needs the blob.
    inflight: Mutex<HashMap<Digest, Download>>,
}

/// Sends progress events when someone listens.
#[derive(Clone)]
struct Progress(Option<mpsc::Sender<Event>>);

impl Progress {
    async fn send(&self, e: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e).await;
        }
    }
}

impl Stager {
    /// An engine over `store`, fetching with `upstream`, `concurrency` downloads at a time.
    pub fn new(store: Store, upstream: upstream::Client, concurrency: usize) -> Self {
        Stager { inner: Arc::new(Inner { store, upstream, concurrency: concurrency.max(1), inflight: Mutex::new(HashMap::new()) }) }
    }

    /// The store the engine writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Stages an image for an app; progress goes to `events` if given.
    /// The record it returns is the one stored under `apps/<app-id>/` (it never holds credentials).
    ///
    /// A staging that loses a race with garbage collection (a blob it relied on was being
    /// removed) is run again, after 0.5, 1, 2 and 4 s, before that is reported: a collection
    /// holds a digest for the seconds its sweep takes.
    pub async fn stage(&self, req: StageRequest, events: Option<mpsc::Sender<Event>>) -> Result<StagingRecord, StageError> {
        let started = Instant::now();
        let progress = Progress(events);
        let mut req = req;
        let session = self.inner.upstream.session(&req.source, req.credentials.take())?;
        let mut pause = Duration::from_millis(500);
        loop {
            match self.stage_once(&req, &session, &progress, started).await {
                Err(e) if e.is_gc_race() && pause <= Duration::from_secs(4) => {
                    tracing::info!(app = %req.app, source = %req.source, error = %e, retry_in = ?pause, "staging lost a race with garbage collection");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
    }

    async fn stage_once(
        &self,
        req: &StageRequest,
        session: &Session,
        progress: &Progress,
        started: Instant,
    ) -> Result<StagingRecord, StageError> {
        let source = req.source.to_string();
        let store = &self.inner.store;
        let (pinned, images) = self.resolve(&req.source, req.platform.as_ref(), session).await?;
        let mut manifests = vec![&pinned];
        manifests.extend(images.iter());
        let mut plan = self.plan(&manifests, session, progress).await?;
        progress
            .send(Event::Planned { digest: pinned.digest.clone(), download: plan.missing.len() as u64, reuse: plan.blobs_reused })
            .await;
        let mut subjects = vec![pinned.digest.clone()];
        subjects.extend(images.iter().map(|i| i.digest.clone()).filter(|d| *d != pinned.digest));
        // Referrers are looked up while the image's blobs download: the lookups are a few
        // round trips each, which a far upstream makes long.
        let lookup = async {
            match req.referrers {
                ReferrersPolicy::Skip => (referrers::Found::default(), Vec::new()),
                _ => self.find_referrers(session, &subjects).await,
            }
        };
        let (copied_image, found) = futures::join!(self.copy(session, &mut plan, progress), lookup);
        let mut downloaded = copied_image?;
        let copied = self.copy_referrers(session, found, req.referrers, progress).await?;
        downloaded.extend(copied.downloaded);
        for w in &copied.warnings {
            progress.send(Event::Warning { message: w.clone() }).await;
        }

        // Run metadata before anything is linked: a config it cannot read fails the staging,
        // which must then leave nothing of the app visible.
        let metadata = self.metadata(&images, &source).await?;

        // Commit: links, manifests (children first), referrers, record, schema tags.
        let repo = req.app.repository();
        for d in plan.blobs.keys().chain(copied.plan.iter().flat_map(|p| p.blobs.keys())) {
            store.link_blob(&repo, d).await?;
        }
        for img in &images {
            if img.digest != pinned.digest {
                store.put_manifest(&repo, &img.digest, &img.media_type, img.bytes.clone(), None).await?;
            }
        }
        store.put_manifest(&repo, &pinned.digest, &pinned.media_type, pinned.bytes.clone(), None).await?;
        for r in &copied.referrers {
            let f = &r.fetched;
            store.put_manifest(&repo, &f.digest, &f.media_type, f.bytes.clone(), Some((&r.subject, &r.descriptor))).await?;
        }
        for f in &copied.indexes {
            store.put_manifest(&repo, &f.digest, &f.media_type, f.bytes.clone(), None).await?;
        }
        let (mut bytes_reused, mut blobs_reused) = (plan.bytes_reused, plan.blobs_reused);
        if let Some(p) = &copied.plan {
            bytes_reused += p.bytes_reused;
            blobs_reused += p.blobs_reused;
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let staging_id = store::StagingId::new(now_ms);
        let record = StagingRecord {
            app: req.app.clone(),
            staging_id,
            source,
            repository: repo.to_string(),
            digest: pinned.digest.clone(),
            media_type: pinned.media_type.clone(),
            platforms: Self::platforms(&pinned, &images),
            metadata,
            referrers: copied.referrers.len() as u64,
            warnings: copied.warnings,
            bytes_downloaded: downloaded.iter().sum(),
            bytes_reused,
            blobs_downloaded: downloaded.len() as u64,
            blobs_reused,
            seconds: started.elapsed().as_secs_f64(),
            created_ms: now_ms,
        };
        store.record_staging(&record).await?;
        // The schema's tags after the record, which keeps what they name: they are no roots
        // of garbage collection (they live and die with the pin, see `Store::pin_schema_tags`).
        let tags: Vec<(oci::Tag, Digest)> = copied.tags.iter().map(|t| (t.tag.clone(), t.digest.clone())).collect();
        store.pin_schema_tags(&req.app, &tags).await?;
        tracing::info!(app = %record.app, digest = %record.digest, downloaded = record.bytes_downloaded,
            reused = record.bytes_reused, referrers = record.referrers, seconds = record.seconds, "staged");
        Ok(record)
    }

    /// Copies the referrers found (their blobs; nothing linked yet). Under [`ReferrersPolicy::Copy`] a failure becomes a warning and what it
    /// concerns is left out; a lost race with garbage collection always fails, to be retried.
    async fn copy_referrers(
        &self,
        session: &Session,
        (found, failures): (referrers::Found, Vec<StageError>),
        policy: ReferrersPolicy,
        progress: &Progress,
    ) -> Result<CopiedReferrers, StageError> {
        let mut out = CopiedReferrers::default();
        let tolerated = |e: StageError, out: &mut CopiedReferrers| {
            if policy == ReferrersPolicy::Require || e.is_gc_race() {
                return Err(e);
            }
            tracing::warn!(error = %e, "referrers left out of a staging");
            out.warnings.push(format!("referrers left out: {e}"));
            Ok(())
        };
        for e in failures {
            tolerated(e, &mut out)?;
        }
        if found.referrers.is_empty() && found.indexes.is_empty() {
            return Ok(out);
        }
        // The indexes have no blobs of their own; planning them protects them.
        let manifests: Vec<&Fetched> = found.referrers.iter().map(|r| &r.fetched).chain(found.indexes.iter()).collect();
        let mut plan = self.plan(&manifests, session, progress).await?;
        match self.copy(session, &mut plan, progress).await {
            Ok(downloaded) => {
                out.downloaded = downloaded;
                out.plan = Some(plan);
                // A tag only for what is stored: one naming a referrer over the limit is
                // left out.
                let copied: std::collections::BTreeSet<&Digest> =
                    found.referrers.iter().map(|r| &r.fetched.digest).chain(found.indexes.iter().map(|i| &i.digest)).collect();
                out.tags = found.tags.into_iter().filter(|t| copied.contains(&t.digest)).collect();
                out.referrers = found.referrers;
                out.indexes = found.indexes;
            }
            Err(e) => tolerated(e, &mut out)?,
        }
        Ok(out)
    }

    /// Resolve: the top manifest, then the platform's manifest(s) of an index. Returns the
    /// manifest to pin and the images it stands for.
    ///
    /// The pinned manifest is always the one the reference names upstream: for an index and
    /// one platform, the index itself, stored unchanged with only that platform's image
    /// beside it (a *sparse* index; the other children are absent by design). So the pinned
    /// digest is the one the user deployed, signed and scanned.
    ///
    /// A single image (no index) is its own platform: when `asked` names a platform and the
    /// image's config states another, the staging is refused, naming the platform it has.
    async fn resolve(&self, image: &ImageRef, asked: Option<&Platform>, session: &Session) -> Result<(Fetched, Vec<Fetched>), StageError> {
        let source = image.to_string();
        let default = Platform::default();
        let platform = asked.unwrap_or(&default);
        let top = self.manifest(session, &image.reference).await?;
        if !top.manifest.is_index() {
            if let (Some(wanted @ Platform::One { .. }), Some(config)) = (asked, &top.manifest.config) {
                if let Some(has) = self.config_platform(session, config).await? {
                    if !wanted.matches_platform(&has) {
                        let available = format!("{} (a single-platform image, not a multi-platform index)", platform::describe_value(&has));
                        return Err(StageError::NoPlatform { image: source, wanted: wanted.to_string(), available });
                    }
                }
            }
            return Ok((top.clone(), vec![top]));
        }
        let chosen: Vec<&Descriptor> = top.manifest.manifests.iter().filter(|d| platform.matches(d)).collect();
        if chosen.is_empty() {
            let available: Vec<String> = top.manifest.manifests.iter().map(platform::describe).collect();
            return Err(StageError::NoPlatform { image: source, wanted: platform.to_string(), available: available.join(", ") });
        }
        let mut images = Vec::new();
        for d in if *platform == Platform::All { chosen } else { chosen[..1].to_vec() } {
            let child = self.manifest(session, &Reference::Digest(d.digest.clone())).await?;
            if child.manifest.is_index() {
                return Err(StageError::Unusable { image: source, reason: format!("index entry {} is itself an index", d.digest) });
            }
            images.push(child);
        }
        Ok((top, images))
    }

    /// The platform an image config states (`os`, `architecture`, `variant`), read from the
    /// store when it holds the config, else from the upstream (a config is small; one over
    /// 1 MiB, or one that states no platform, is not checked: `None`).
    async fn config_platform(&self, session: &Session, config: &Descriptor) -> Result<Option<serde_json::Value>, StageError> {
        const MAX_CONFIG: u64 = 1 << 20;
        if config.size > MAX_CONFIG {
            return Ok(None);
        }
        let bytes = if self.inner.store.blob_size_fresh(&config.digest).await? == Some(config.size) {
            self.inner.store.read_blob_bytes(&config.digest).await?.to_vec()
        } else {
            let mut stream = session.blob(&config.digest, config.size).await?;
            let mut bytes = Vec::with_capacity(config.size as usize);
            while let Some(chunk) =
                futures::TryStreamExt::try_next(&mut stream).await.map_err(|e| StageError::from(store::StoreError::Body(e)))?
            {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        };
        // Not verified here: the copy that follows stores the config only if it hashes right;
        // a config that does not parse is left for the metadata step to refuse.
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Ok(None) };
        let has = |k: &str| v.get(k).and_then(|x| x.as_str()).is_some_and(|s| !s.is_empty());
        Ok((has("os") && has("architecture")).then_some(v))
    }

    /// The platforms of an index whose images a staging copies (`os/arch[/variant]`); empty
    /// when the pinned manifest is a single image.
    fn platforms(pinned: &Fetched, images: &[Fetched]) -> Vec<String> {
        pinned.manifest.manifests.iter().filter(|d| images.iter().any(|i| i.digest == d.digest)).map(platform::describe).collect()
    }

    /// Plan: every blob the manifests need, minus what the store holds and the upstream
    /// shows it holds too (protected first, so a concurrent garbage collection cannot remove
    /// what is reused). The upstream's answers are HEADs, asked concurrently.
    async fn plan(&self, manifests: &[&Fetched], session: &Session, progress: &Progress) -> Result<Plan, StageError> {
        let store = &self.inner.store;
        let mut blobs: BTreeMap<Digest, Descriptor> = BTreeMap::new();
        for m in manifests {
            for d in m.manifest.required_blobs() {
                blobs.entry(d.digest.clone()).or_insert_with(|| d.clone());
            }
        }
        let mut missing = Vec::new();
        let (mut bytes_reused, mut blobs_reused) = (0u64, 0u64);
        // Protected first, so a concurrent garbage collection cannot remove what we reuse.
        let mut wanted: Vec<Digest> = blobs.keys().cloned().collect();
        wanted.extend(manifests.iter().map(|m| m.digest.clone()));
        store.protect(&wanted).await?;
        let mut stored = Vec::new();
        for d in blobs.values() {
            if store.blob_size_fresh(&d.digest).await? == Some(d.size) {
                stored.push(d.clone());
            } else {
                missing.push(d.clone());
            }
        }
        let checked: Vec<(Descriptor, bool)> = futures::stream::iter(stored)
            .map(|d| async move { upstream_holds(store, session, &d).await.map(|held| (d, held)) })
            .buffer_unordered(self.inner.concurrency.saturating_mul(2))
            .try_collect()
            .await?;
        // An upstream that cannot show a piece of the blob (it ignores `Range`) shows all of it.
        let (proven, unproven): (Vec<_>, Vec<_>) = checked.into_iter().partition(|(_, held)| *held);
        missing.extend(unproven.into_iter().map(|(d, _)| d));
        for (d, _) in proven {
            bytes_reused += d.size;
            blobs_reused += 1;
            progress.send(Event::BlobReused { digest: d.digest.clone(), size: d.size }).await;
        }
        Ok(Plan { blobs, missing, wanted, bytes_reused, blobs_reused })
    }

    /// Copy: the missing blobs, in parallel and shared per digest with concurrent stagings;
    /// then protect again and fetch what a collection removed meanwhile. Returns the sizes
    /// this staging downloaded, and adds what others downloaded to the reused counts.
    async fn copy(&self, session: &Session, plan: &mut Plan, progress: &Progress) -> Result<Vec<u64>, StageError> {
        let store = &self.inner.store;
        let missing = std::mem::take(&mut plan.missing);
        let fetched: Vec<(u64, Option<u64>)> = futures::stream::iter(missing.iter().cloned())
            .map(|d| {
                let size = d.size;
                self.fetch_blob(session.clone(), d, progress.clone()).map(move |r| r.map(|got| (size, got)))
            })
            .buffer_unordered(self.inner.concurrency)
            .try_collect()
            .await?;
        // A blob that a concurrent staging fetched is reused here, not downloaded twice over.
        let downloaded: Vec<u64> = fetched.iter().filter_map(|(_, got)| *got).collect();
        for (size, _) in fetched.iter().filter(|(_, got)| got.is_none()) {
            plan.bytes_reused += size;
            plan.blobs_reused += 1;
        }

        // Protect again right before committing (downloads may outlast the protect window),
        // and fetch anything a concurrent garbage collection removed meanwhile.
        store.protect(&plan.wanted).await?;
        let mut downloaded = downloaded;
        for d in plan.blobs.values() {
            if store.blob_size_fresh(&d.digest).await?.is_none() {
                downloaded.extend(self.fetch_blob(session.clone(), d.clone(), progress.clone()).await?);
            }
        }

        Ok(downloaded)
    }

    /// A manifest by tag or digest: HEAD first, and when the store already holds the digest
    /// the upstream answered with, its stored bytes are used, so re-staging an unchanged
    /// image does not GET it again. A digest is asked about too (a 404 fails the staging):
    /// the store's copy may belong to a repository the stager may not read.
    async fn manifest(&self, session: &Session, reference: &Reference) -> Result<Fetched, StageError> {
        let known = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => session.head_manifest(reference).await?,
        };
        if let Some(d) = known {
            let stored = self.inner.store.blob_size_fresh(&d).await?.is_some();
            // By digest, the upstream has said nothing yet: a HEAD (an answer without a
            // digest header is the upstream's own; another digest is fetched and checked).
            let held = match reference {
                Reference::Digest(_) if stored => session.head_manifest(reference).await?.is_none_or(|said| said == d),
                _ => true,
            };
            if stored && held {
                let bytes = self.inner.store.read_blob_bytes(&d).await?;
                if let Ok(manifest) = oci::Manifest::parse(&bytes, None) {
                    return Ok(Fetched { digest: d, media_type: manifest.media_type.clone(), bytes, manifest });
                }
            }
        }
        Ok(session.manifest(reference).await?)
    }

    /// Downloads one blob into the store, or waits for the download another staging started.
    /// `Some(bytes)` when this staging downloaded it; `None` when another staging did, or the
    /// blob reached the store after the plan was made, so that the counts of concurrent
    /// stagings add up to what was really fetched.
    async fn fetch_blob(&self, session: Session, d: Descriptor, progress: Progress) -> Result<Option<u64>, StageError> {
        let (ident, owner) = {
            // A poisoned lock means a panic elsewhere held it; the map itself stays consistent
            // (every change is one insert or remove), so keep using it.
            let mut inflight = self.inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&d.digest) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = download(self.inner.store.clone(), session.clone(), d.clone(), progress.clone()).boxed().shared();
                    inflight.insert(d.digest.clone(), f.clone());
                    (f, true)
                }
            }
        };
        // Declared before `fut`, so dropped after it, also when this staging is cancelled.
        let _entry = InflightEntry { inflight: &self.inner.inflight, digest: &d.digest, ident: ident.clone() };
        let fut = ident;
        let result = fut.await;
        match result {
            // A staging that waited on another's download did not download the bytes itself.
            Ok(Some(size)) if owner => Ok(Some(size)),
            Ok(_) => {
                // Another staging's download, from its own upstream: ours must hold the blob
                // too. (Our own download that found the blob stored has asked already.)
                if !owner && !upstream_holds(&self.inner.store, &session, &d).await? {
                    return download(self.inner.store.clone(), session, d.clone(), progress).await.map_err(StageError::Shared);
                }
                progress.send(Event::BlobReused { digest: d.digest.clone(), size: d.size }).await;
                Ok(None)
            }
            // Every waiter (and the in-flight table) holds the same error: share it whole, so
            // that a lost race with garbage collection is still recognised and retried.
            Err(e) => Err(StageError::Shared(e)),
        }
    }

    /// Run metadata of the pinned image (for an index: the linux/amd64 image, else the first).
    async fn metadata(&self, images: &[Fetched], source: &str) -> Result<RunMetadata, StageError> {
        let Some(config) = images.iter().find_map(|i| i.manifest.config.as_ref()) else {
            return Ok(RunMetadata::default());
        };
        let bytes = self.inner.store.read_blob_bytes(&config.digest).await?;
        RunMetadata::from_config(&bytes).map_err(|e| StageError::Unusable { image: source.to_string(), reason: e.to_string() })
    }
}

/// One staging's interest in an in-flight download. Whoever stops waiting last (done, failed
/// or cancelled) removes the entry: a finished download must not answer later stagings from
/// the map (a failure would stick to the digest until restart), and one nobody waits for any
/// more must not stay parked there holding its session's credentials.
struct InflightEntry<'a> {
    inflight: &'a Mutex<HashMap<Digest, Download>>,
    digest: &'a Digest,
    /// A clone never polled, to recognise the entry and count who else waits on it.
    ident: Download,
}

impl Drop for InflightEntry<'_> {
    fn drop(&mut self) {
        let Ok(mut inflight) = self.inflight.lock() else { return };
        let ours = inflight.get(self.digest).is_some_and(|f| f.ptr_eq(&self.ident));
        // The map's clone and ours: nobody else is waiting.
        let unwanted = inflight.get(self.digest).is_some_and(|f| f.peek().is_some() || f.strong_count().is_none_or(|n| n <= 2));
        if ours && unwanted {
            inflight.remove(self.digest);
        }
    }
}

/// Streams one blob from the upstream into the store (verified there, in the same pass).
/// `None` when the store already holds it: the plan is made before the downloads start, and
/// a concurrent staging may have stored the blob since.
async fn download(store: Store, session: Session, d: Descriptor, progress: Progress) -> Result<Option<u64>, Arc<StageError>> {
    let run = async {
        if store.blob_size_fresh(&d.digest).await? == Some(d.size) && upstream_holds(&store, &session, &d).await? {
            return Ok(None);
        }
        progress.send(Event::BlobStarted { digest: d.digest.clone(), size: d.size }).await;
        let stream = session.blob(&d.digest, d.size).await?;
        let counted = progress_stream(stream, d.digest.clone(), progress.clone());
        let size = store.put_blob(&d.digest, counted).await?;
        if size != d.size {
            return Err(StageError::Corrupt {
                what: format!("blob {}", d.digest),
                detail: format!("{size} bytes, the manifest says {}", d.size),
            });
        }
        progress.send(Event::BlobDone { digest: d.digest.clone(), size }).await;
        Ok(Some(size))
    };
    run.await.map_err(Arc::new)
}

/// Bytes of a stored blob the upstream must show before the store's copy is reused.
const PROBE_BYTES: u64 = 32;

/// Whether the upstream shows it holds the blob the store has: what a staging must see before
/// it reuses the store's copy, which may have come from a repository the stager may not pull.
/// A HEAD with the descriptor's size, then [`PROBE_BYTES`] at a random offset that must equal
/// the store's: an upstream the stager controls could answer any HEAD, but not bytes it
/// never had. `false` when the upstream ignores `Range` (then the blob is downloaded, which
/// proves it too). A 404 fails the staging (the upstream lacks the blob); another size or
/// other bytes are corrupt content.
async fn upstream_holds(store: &Store, session: &Session, d: &Descriptor) -> Result<bool, StageError> {
    match session.blob_size(&d.digest).await? {
        Some(size) if size == d.size => {
            if d.size == 0 {
                return Ok(true);
            }
            let len = PROBE_BYTES.min(d.size);
            let start = (uuid::Uuid::new_v4().as_u128() % u128::from(d.size - len + 1)) as u64;
            let Some(theirs) = session.blob_range(&d.digest, start, len).await? else { return Ok(false) };
            let body = store.read_blob(&d.digest, Some(start..start + len)).await?;
            let ours: Vec<bytes::Bytes> = body
                .stream
                .try_collect()
                .await
                .map_err(|source| StageError::Store(store::StoreError::Io { what: format!("read blob {}", d.digest), source }))?;
            if ours.concat() != theirs.as_ref() {
                return Err(StageError::Corrupt {
                    what: format!("blob {}", d.digest),
                    detail: format!("the upstream's bytes {start}..{} are not the digest's content", start + len),
                });
            }
            Ok(true)
        }
        Some(size) => Err(StageError::Corrupt {
            what: format!("blob {}", d.digest),
            detail: format!("the upstream holds {size} bytes, the manifest says {}", d.size),
        }),
        None => Err(StageError::Upstream(upstream::UpstreamError::NotFound {
            registry: session.registry().to_string(),
            what: format!("blob {} (the manifest names it, the upstream does not hold it)", d.digest),
        })),
    }
}

/// Reports bytes received about every MiB.
fn progress_stream(stream: upstream::ByteStream, digest: Digest, progress: Progress) -> store::ByteStream {
    if progress.0.is_none() {
        return stream;
    }
    let mut total = 0u64;
    let mut reported = 0u64;
    stream
        .then(move |chunk| {
            let progress = progress.clone();
            let digest = digest.clone();
            if let Ok(c) = &chunk {
                total += c.len() as u64;
            }
            let report = (total - reported >= 1 << 20).then(|| {
                reported = total;
                total
            });
            async move {
                if let Some(bytes) = report {
                    progress.send(Event::BlobProgress { digest, bytes }).await;
                }
                chunk
            }
        })
        .boxed()
}
