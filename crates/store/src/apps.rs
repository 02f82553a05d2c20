//! App pins: the staging records under `apps/<app-id>/`. A record names what was staged
//! (source reference, never credentials), the pinned digest and how to run it; `current`
//! names the staging that scale-ups use. Records are written after the manifests they pin,
//! and `current` after the record, so a crash never leaves a pointer to nothing.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use oci::{AppId, Digest, RunMetadata, Tag};
use serde::{Deserialize, Serialize};

use crate::{keys, Result, Store, StoreError};

/// A staging's id, `<unix millis, 13 digits>-<8 hex digits>`: ids sort by time, and a parsed
/// id is safe in a storage key (letters, digits and `-` only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StagingId(String);

impl StagingId {
    /// A fresh id for a staging that ended at `now_ms` (unix milliseconds).
    pub fn new(now_ms: u64) -> Self {
        StagingId(format!("{now_ms:013}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
    }

    /// Parses an id read back from storage or a request.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(StagingId(s.to_string()))
        } else {
            Err(format!("{s:?} is not a staging id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StagingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width in a format string lines ids up.
        f.pad(&self.0)
    }
}

impl TryFrom<String> for StagingId {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        StagingId::parse(&s)
    }
}

impl From<StagingId> for String {
    fn from(id: StagingId) -> String {
        id.0
    }
}

/// One staging of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub app: AppId,
    pub staging_id: StagingId,
    /// The normalised source reference (no credentials ever).
    pub source: String,
    /// The repository the image is pinned in (`apps/<app-id>`).
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    /// When the pinned manifest is an index: the platforms (`os/arch[/variant]`) whose images
    /// were copied. The index's other children are absent by design (a *sparse* index):
    /// pulling one answers `MANIFEST_UNKNOWN`. Empty for a single image and for records
    /// written before indexes were pinned whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    pub metadata: RunMetadata,
    /// Signatures, SBOMs and attestations copied with the image (listed by the referrers API
    /// of the app's repository).
    #[serde(default)]
    pub referrers: u64,
    /// What the staging left out without failing (referrers it could not copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
    pub blobs_downloaded: u64,
    pub blobs_reused: u64,
    pub seconds: f64,
    /// Unix milliseconds at the end of the staging.
    pub created_ms: u64,
}

fn bad(key: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl Store {
    /// Records a staging and makes it the app's current one.
    pub async fn record_staging(&self, rec: &StagingRecord) -> Result<()> {
        let key = keys::staging(&rec.app, &rec.staging_id);
        let json = serde_json::to_vec_pretty(rec).map_err(|e| bad(&key, e))?;
        self.write_small(&key, Bytes::from(json)).await?;
        self.write_small(&keys::current(&rec.app), Bytes::from(rec.staging_id.to_string())).await
    }

    /// The id of the app's current staging, if it has one.
    pub async fn current_staging(&self, app: &AppId) -> Result<Option<String>> {
        let key = keys::current(app);
        self.read_small(&key).await?.map(|b| String::from_utf8(b.to_vec()).map_err(|e| bad(&key, e))).transpose()
    }

    /// Every staging of an app, oldest first.
    pub async fn stagings(&self, app: &AppId) -> Result<Vec<StagingRecord>> {
        let prefix = keys::stagings(app);
        let metas: Vec<_> = self.os().list(Some(&prefix)).try_collect().await?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas {
            let Some(raw) = self.read_small(&meta.location).await? else { continue };
            out.push(serde_json::from_slice::<StagingRecord>(&raw).map_err(|e| bad(&meta.location, e))?);
        }
        out.sort_by(|a, b| a.staging_id.cmp(&b.staging_id));
        Ok(out)
    }

    /// Every app with at least one staging record, sorted. Taken from the records
    /// themselves, not from the folders under `apps/`: the filesystem backend keeps the empty
    /// folders of an unpinned app, which would otherwise count as an app (live sync would
    /// "unpin" it again, and count it against the guard on unpinning most apps).
    pub async fn apps(&self) -> Result<Vec<AppId>> {
        let records: Vec<_> = self.os().list(Some(&keys::apps())).try_collect().await?;
        let mut apps = std::collections::BTreeSet::new();
        for meta in records {
            if let Some(app) = keys::staging_app_of_key(&meta.location) {
                apps.insert(app);
            }
        }
        Ok(apps.into_iter().collect())
    }

    /// Unpins every staging of an app and revokes its pull credentials. Its images go at
    /// the next collection.
    pub async fn unpin_app(&self, app: &AppId) -> Result<u64> {
        let metas: Vec<_> = self.os().list(Some(&keys::app(app))).try_collect().await?;
        // Everything under the app goes (its pull credentials too); only records count.
        let stagings = keys::stagings(app);
        let count = metas.iter().filter(|m| m.location.prefix_matches(&stagings)).count() as u64;
        // `current` first: an interrupted unpin leaves records without a current, never a
        // current pointing at a removed record. Then the signature tags, which garbage
        // collection would otherwise only remove with the manifests they name.
        self.remove(&keys::current(app)).await?;
        self.pin_schema_tags(app, &[]).await?;
        for m in metas {
            self.remove(&m.location).await?;
        }
        Ok(count)
    }

    /// Makes `tags` (of the tag schema: `<alg>-<hex>` and cosign's `.sig`, `.att`, `.sbom`)
    /// the app's repository's only such tags: a staging's copies of the upstream's signature
    /// tags replace the previous staging's, and an unpin (no tags) removes them. They live
    /// and die with the pin: garbage collection does not count them as roots, but marks what
    /// they name only while the subject they name is live (`gc::sweep`), and removes them
    /// with it.
    pub async fn pin_schema_tags(&self, app: &AppId, tags: &[(Tag, Digest)]) -> Result<()> {
        let repo = app.repository();
        for (tag, digest) in tags {
            self.set_tag(&repo, tag, digest).await?;
        }
        for old in self.tags(&repo).await?.unwrap_or_default() {
            if old.schema_subject().is_some() && !tags.iter().any(|(t, _)| *t == old) {
                self.delete_tag(&repo, &old).await?;
            }
        }
        Ok(())
    }

    /// An app's stagings, newest first, and the one scale-ups use: the `current` pointer's,
    /// else the latest (a current pointer lost in an interrupted write must not hide the
    /// app). `None` when the app has no staging.
    pub async fn app_stagings(&self, app: &AppId) -> Result<Option<AppStagings>> {
        let mut history = self.stagings(app).await?;
        if history.is_empty() {
            return Ok(None);
        }
        history.reverse();
        let current_id = self.current_staging(app).await?;
        let current = current_id.and_then(|id| history.iter().position(|s| s.staging_id.as_str() == id)).unwrap_or(0);
        Ok(Some(AppStagings { current, history }))
    }

    /// The apps a live sync unpins: every app not in `live`. Refused with
    /// [`StoreError::TooManyUnpins`] when that would unpin more than half of the apps and
    /// `force` is not set: an empty or truncated list from a confused platform must not unpin
    /// everything. Unpins nothing itself: the caller unpins each app as a manual unpin does
    /// (with the same audit line).
    pub async fn live_sync_plan(&self, live: &std::collections::HashSet<AppId>, force: bool) -> Result<LiveSync> {
        let existing = self.apps().await?;
        let doomed: Vec<AppId> = existing.iter().filter(|a| !live.contains(*a)).cloned().collect();
        if doomed.len() * 2 > existing.len() && !force {
            return Err(StoreError::TooManyUnpins { unpin: doomed.len(), of: existing.len() });
        }
        Ok(LiveSync { kept: existing.len() - doomed.len(), unpinned: doomed })
    }
}

/// An app's stagings, newest first, and which one is current.
#[derive(Debug, Clone)]
pub struct AppStagings {
    /// Index in `history` of the staging scale-ups use.
    pub current: usize,
    pub history: Vec<StagingRecord>,
}

impl AppStagings {
    /// The staging scale-ups use.
    pub fn current(&self) -> &StagingRecord {
        // Invariant: `app_stagings` only builds a non-empty history with `current` in range.
        &self.history[self.current.min(self.history.len() - 1)]
    }
}

/// What a live sync unpins and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSync {
    pub unpinned: Vec<AppId>,
    pub kept: usize,
}
