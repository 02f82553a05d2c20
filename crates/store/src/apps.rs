//! App pins: the staging records under `apps/<app-id>/`. A record names what was staged
//! (source reference, never credentials), the pinned digest and how to run it; `current`
//! names the staging that scale-ups use. Records are written after the manifests they pin,
//! and `current` after the record, so a crash never leaves a pointer to nothing.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use oci::{AppId, Digest, RunMetadata};
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError};

/// One staging of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub app: AppId,
    /// Sortable by time: `<unix millis>-<random>`.
    pub staging_id: String,
    /// The normalised source reference (no credentials ever).
    pub source: String,
    /// The repository the image is pinned in (`apps/<app-id>`).
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub metadata: RunMetadata,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
    pub blobs_downloaded: u64,
    pub blobs_reused: u64,
    pub seconds: f64,
    /// Unix milliseconds at the end of the staging.
    pub created_ms: u64,
}

fn record_key(app: &AppId, staging_id: &str) -> Path {
    Path::from(format!("apps/{app}/stagings/{staging_id}.json"))
}

fn current_key(app: &AppId) -> Path {
    Path::from(format!("apps/{app}/current"))
}

fn bad(key: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl Store {
    /// Records a staging and makes it the app's current one.
    pub async fn record_staging(&self, rec: &StagingRecord) -> Result<()> {
        let key = record_key(&rec.app, &rec.staging_id);
        let json = serde_json::to_vec_pretty(rec).map_err(|e| bad(&key, e))?;
        self.write_small(&key, Bytes::from(json)).await?;
        self.write_small(&current_key(&rec.app), Bytes::from(rec.staging_id.clone())).await
    }

    /// The id of the app's current staging, if it has one.
    pub async fn current_staging(&self, app: &AppId) -> Result<Option<String>> {
        let key = current_key(app);
        self.read_small(&key).await?.map(|b| String::from_utf8(b.to_vec()).map_err(|e| bad(&key, e))).transpose()
    }

    /// Every staging of an app, oldest first.
    pub async fn stagings(&self, app: &AppId) -> Result<Vec<StagingRecord>> {
        let prefix = Path::from(format!("apps/{app}/stagings"));
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
        let records: Vec<_> = self.os().list(Some(&Path::from("apps"))).try_collect().await?;
        let mut apps = std::collections::BTreeSet::new();
        for meta in records {
            let mut parts = meta.location.as_ref().split('/');
            if let (Some("apps"), Some(app), Some("stagings")) = (parts.next(), parts.next(), parts.next()) {
                if let Ok(id) = AppId::parse(app) {
                    apps.insert(id);
                }
            }
        }
        Ok(apps.into_iter().collect())
    }
}
