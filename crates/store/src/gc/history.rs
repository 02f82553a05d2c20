//! The reports of past collections, kept in the store (`gc/history/`) so every replica's
//! console shows every replica's runs. Only real runs are recorded, not dry runs; the newest
//! [`KEEP`] are kept, older ones are removed when a run is recorded.

use bytes::Bytes;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::GcReport;
use crate::{keys, Result, Store, StoreError};

/// How many past runs are kept.
const KEEP: usize = 100;

/// One past collection: when it ended and what it removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcRun {
    /// Unix milliseconds at the end of the run.
    pub ended_ms: u64,
    pub report: GcReport,
}

impl Store {
    /// Records a finished (not dry) run, and forgets runs beyond the newest [`KEEP`].
    pub(super) async fn record_gc(&self, run_id: &str, report: &GcReport) -> Result<()> {
        let ended_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let key = keys::gc_history_entry(ended_ms, run_id);
        let run = GcRun { ended_ms, report: report.clone() };
        let json = serde_json::to_vec(&run).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })?;
        self.write_small(&key, Bytes::from(json)).await?;
        let mut all = self.gc_history_keys().await?;
        if all.len() > KEEP {
            all.truncate(all.len() - KEEP);
            for old in all {
                self.remove(&old).await?;
            }
        }
        Ok(())
    }

    async fn gc_history_keys(&self) -> Result<Vec<object_store::path::Path>> {
        let mut keys: Vec<_> = self.os().list(Some(&keys::gc_history())).map_ok(|m| m.location).try_collect().await?;
        keys.sort();
        Ok(keys)
    }

    /// The last `n` collections, newest first. A record that cannot be read is skipped: the
    /// history is informational.
    pub async fn gc_history(&self, n: usize) -> Result<Vec<GcRun>> {
        let keys = self.gc_history_keys().await?;
        let mut out = Vec::new();
        for key in keys.iter().rev().take(n) {
            if let Some(raw) = self.read_small(key).await? {
                if let Ok(run) = serde_json::from_slice::<GcRun>(&raw) {
                    out.push(run);
                }
            }
        }
        Ok(out)
    }
}
