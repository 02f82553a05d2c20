//! Integrity check: re-hash every blob, check every manifest's references and every link,
//! and report corrupt, missing and orphaned items by digest and repository. With `repair`,
//! corrupt blobs are moved aside to `quarantine/` so a re-push or re-staging restores them
//! (a push of a digest whose bytes are absent writes them again).
//!
//! Only corrupt, missing and unparsable data are failures ([`ProblemKind::is_failure`]).
//! Orphaned blobs, stale upload sessions and temporary files are what every crash, failed
//! staging or abandoned push leaves behind in a healthy store: they are counted and
//! reported, and garbage collection removes them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use oci::{Digest, DigestHasher, RepoName};
use serde::Serialize;

use crate::keys::{self, RepoKey};
use crate::{Result, Store};

/// What is wrong with one digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The bytes do not hash to their digest.
    Corrupt,
    /// Referenced (by a link, manifest, tag or staging) but not stored.
    Missing,
    /// Stored but referenced by nothing.
    Orphaned,
    /// A manifest that cannot be parsed.
    InvalidManifest,
}

impl ProblemKind {
    /// Whether the problem means data is damaged or lost, rather than left over.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ProblemKind::Orphaned)
    }
}

/// One problem, with the repositories it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub digest: Digest,
    pub repositories: BTreeSet<String>,
    pub detail: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub manifests_checked: u64,
    pub links_checked: u64,
    /// Children of indexes that the repository does not hold: a sparse index (a one-platform
    /// staging, or a push the spec allows) lacks them by design, so they are not failures.
    pub absent_children: u64,
    /// Blobs named by image manifests that were accepted without them
    /// (`manifest_completeness = any`): absent by design, not lost.
    pub absent_blobs: u64,
    pub problems: Vec<Problem>,
    /// Corrupt blobs moved to `quarantine/` (with `repair`).
    pub quarantined: u64,
    /// Upload sessions idle for longer than the expiry (garbage collection removes them).
    pub stale_uploads: u64,
    /// Temporary files an interrupted write left (filesystem only), and their bytes.
    pub temp_files: u64,
    pub temp_bytes: u64,
}

impl FsckReport {
    /// Problems that mean damaged or lost data.
    pub fn failures(&self) -> usize {
        self.problems.iter().filter(|p| p.kind.is_failure()).count()
    }

    /// Leftovers: orphaned blobs, stale upload sessions and temporary files.
    pub fn leftovers(&self) -> u64 {
        (self.problems.len() - self.failures()) as u64 + self.stale_uploads + self.temp_files
    }
}

impl Store {
    /// Checks the whole store. `progress` is called after each blob with (done, total).
    /// Upload sessions idle longer than `upload_expiry` are counted as stale.
    pub async fn fsck(&self, repair: bool, upload_expiry: std::time::Duration, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        for (_, size) in self.inner.backend.stray_temp_files() {
            report.temp_files += 1;
            report.temp_bytes += size;
        }
        report.stale_uploads = self.idle_uploads(upload_expiry).await?.len() as u64;
        let mut problems: BTreeMap<(ProblemKind, Digest), Problem> = BTreeMap::new();
        let mut add = |kind: ProblemKind, d: &Digest, repo: Option<&RepoName>, detail: String| {
            let p = problems.entry((kind.clone(), d.clone())).or_insert_with(|| Problem {
                kind,
                digest: d.clone(),
                repositories: BTreeSet::new(),
                detail,
            });
            if let Some(r) = repo {
                p.repositories.insert(r.to_string());
            }
        };

        // Every blob, re-hashed.
        let blobs: Vec<_> = self.os().list(Some(&keys::blobs())).try_collect().await?;
        let total = blobs.len() as u64;
        let mut stored: HashSet<Digest> = HashSet::new();
        let mut corrupt: Vec<(Digest, Path)> = Vec::new();
        for (i, meta) in blobs.iter().enumerate() {
            let Some(d) = keys::parse_blob_key(&meta.location) else { continue };
            let mut hasher = DigestHasher::new(d.algorithm());
            let mut stream = self.os().get(&meta.location).await?.into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
            let actual = hasher.finish();
            report.blobs_checked += 1;
            report.bytes_checked += meta.size;
            if actual == d {
                stored.insert(d);
            } else {
                add(ProblemKind::Corrupt, &d, None, format!("bytes hash to {actual}"));
                corrupt.push((d, meta.location.clone()));
            }
            progress(i as u64 + 1, total);
        }
        let present = |d: &Digest| stored.contains(d) || corrupt.iter().any(|(c, _)| c == d);
        // A corrupt blob is reported with the repositories that link or reference it: they
        // are what a re-push or re-staging has to come from.
        let is_corrupt = |d: &Digest| corrupt.iter().any(|(c, _)| c == d);

        // Links, manifests and their references.
        let mut referenced: HashSet<Digest> = HashSet::new();
        let listing: Vec<_> = self.os().list(Some(&keys::repositories())).try_collect().await?;
        for meta in &listing {
            match keys::parse_repo_key(&meta.location) {
                Some(RepoKey::Layer(repo, d)) => {
                    report.links_checked += 1;
                    referenced.insert(d.clone());
                    if !present(&d) {
                        add(ProblemKind::Missing, &d, Some(&repo), "linked blob is not stored".into());
                    } else if is_corrupt(&d) {
                        add(ProblemKind::Corrupt, &d, Some(&repo), String::new());
                    }
                }
                Some(RepoKey::Manifest(repo, d)) => {
                    report.links_checked += 1;
                    report.manifests_checked += 1;
                    referenced.insert(d.clone());
                    if !present(&d) {
                        add(ProblemKind::Missing, &d, Some(&repo), "manifest bytes are not stored".into());
                        continue;
                    }
                    if is_corrupt(&d) {
                        add(ProblemKind::Corrupt, &d, Some(&repo), String::new());
                        continue;
                    }
                    let bytes = self.read_blob_bytes(&d).await?;
                    match oci::Manifest::parse(&bytes, None) {
                        Ok(m) => {
                            let sparse = self.manifest_has_absent_blobs(&repo, &d).await?;
                            for b in m.required_blobs() {
                                referenced.insert(b.digest.clone());
                                if sparse && !self.blob_linked(&repo, &b.digest).await? {
                                    // Accepted without it (`manifest_completeness = any`):
                                    // absent by design until someone pushes it.
                                    report.absent_blobs += 1;
                                } else if !present(&b.digest) {
                                    add(ProblemKind::Missing, &b.digest, Some(&repo), format!("referenced by manifest {d}"));
                                } else if is_corrupt(&b.digest) {
                                    add(ProblemKind::Corrupt, &b.digest, Some(&repo), String::new());
                                }
                            }
                            for c in &m.manifests {
                                referenced.insert(c.digest.clone());
                                // A child with a link is checked as a manifest of its own
                                // (its bytes, its blobs); one without is absent by design.
                                if self.read_small(&keys::manifest_link(&repo, &c.digest)).await?.is_none() {
                                    report.absent_children += 1;
                                }
                            }
                        }
                        Err(e) => add(ProblemKind::InvalidManifest, &d, Some(&repo), e.to_string()),
                    }
                }
                Some(RepoKey::Tag(repo, t)) => {
                    report.links_checked += 1;
                    if let Some(d) = self.resolve_tag(&repo, &t).await? {
                        if self.read_small(&keys::manifest_link(&repo, &d)).await?.is_none() {
                            add(ProblemKind::Missing, &d, Some(&repo), format!("tag {t} points at a manifest the repository lacks"));
                        }
                    }
                }
                _ => {}
            }
        }
        for app in self.apps().await? {
            for s in self.stagings(&app).await? {
                if let Ok(repo) = RepoName::parse(&s.repository) {
                    if self.read_small(&keys::manifest_link(&repo, &s.digest)).await?.is_none() {
                        add(ProblemKind::Missing, &s.digest, Some(&repo), format!("pinned by staging {} of app {app}", s.staging_id));
                    }
                }
            }
        }
        for d in &stored {
            if !referenced.contains(d) {
                add(ProblemKind::Orphaned, d, None, "stored but referenced by nothing".into());
            }
        }

        if repair {
            for (d, key) in &corrupt {
                let aside = keys::quarantine(d);
                self.rename(key, &aside).await?;
                self.cache().blob_sizes.remove(d);
                self.cache().manifests.remove(d);
                report.quarantined += 1;
            }
        }
        report.problems = problems.into_values().collect();
        Ok(report)
    }
}
