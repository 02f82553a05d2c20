//! What the operator console lists: apps and repositories a page at a time, and the store's
//! usage. A page is served from folder listings (one level at a time), never by reading every
//! object: with 10,000 apps a page of 50 lists the `apps/` folder once and reads the records
//! of about 50 apps. Search is a prefix of the name, applied to the listed names before any
//! record is read. Usage, in contrast, walks everything; callers compute it off the request
//! path and cache it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use futures::TryStreamExt;
use object_store::path::Path;
use oci::{AppId, Digest, Manifest, RepoName};

use crate::{keys, AppStagings, Result, StagingRecord, Store};

/// How many of the latest stagings [`Usage`] keeps.
const RECENT: usize = 8;

/// One page of a sorted list, and the key to ask for the next one (`after`), if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// How much the store holds, and how much sharing saves.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Bytes and number of the blobs stored (layers, configs and manifests, each once).
    pub stored_bytes: u64,
    pub blobs: u64,
    /// Bytes of every tagged or pinned image counted on its own (as if nothing were shared).
    pub logical_bytes: u64,
    pub apps: u64,
    pub repositories: u64,
    /// Bytes of the tagged images in mirrored repositories, each counted on its own.
    pub mirrored_bytes: u64,
    pub stagings: u64,
    /// The latest stagings, newest first.
    pub recent: Vec<StagingRecord>,
    /// How long the walk took.
    pub seconds: f64,
}

impl Usage {
    /// Bytes not stored twice thanks to shared layers.
    pub fn saved_bytes(&self) -> u64 {
        self.logical_bytes.saturating_sub(self.stored_bytes)
    }
}

/// Whether a subtree at `comps` can hold names after `after` in walk order (components
/// compared one by one, a folder before what it contains).
fn may_follow(comps: &[&str], after: &[&str]) -> bool {
    comps > after || after.starts_with(comps)
}

/// Whether a subtree named `name` can hold a name starting with `prefix`.
fn may_match(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix) || prefix.strip_prefix(name).is_some_and(|rest| name.is_empty() || rest.starts_with('/'))
}

impl Store {
    /// The sub-folders of a folder, sorted (empty when it does not exist).
    async fn folders(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.backend.folders(dir).await
    }

    /// Up to `n` apps whose id starts with `prefix`, after `after`, with their stagings.
    pub async fn apps_page(&self, prefix: &str, after: Option<&str>, n: usize) -> Result<Page<AppStagings>> {
        let candidates = self.folders(&keys::apps()).await?;
        let mut items = Vec::new();
        let mut rest = candidates.iter().filter(|a| a.starts_with(prefix) && after.is_none_or(|l| a.as_str() > l));
        for name in rest.by_ref() {
            let Ok(app) = AppId::parse(name) else { continue };
            // A folder without records is an unpinned app the filesystem left behind.
            if let Some(s) = self.app_stagings(&app).await? {
                items.push(s);
                if items.len() == n {
                    break;
                }
            }
        }
        let next = match rest.next() {
            Some(_) => items.last().map(|s: &AppStagings| s.current().app.to_string()),
            None => None,
        };
        Ok(Page { items, next })
    }

    /// Up to `n` repository names starting with `prefix`, after `after`, in walk order (by
    /// path component: `a/b` before `a-c`). The tree is walked one folder at a time and only
    /// as far as the page needs.
    pub async fn repositories_page(&self, prefix: &str, after: Option<&str>, n: usize) -> Result<Page<String>> {
        let after: Vec<&str> = after.map(|a| a.split('/').collect()).unwrap_or_default();
        let mut out: Vec<String> = Vec::new();
        let mut stack: Vec<Vec<String>> = vec![Vec::new()];
        while let Some(comps) = stack.pop() {
            let refs: Vec<&str> = comps.iter().map(String::as_str).collect();
            let children = self.folders(&keys::repo_folder(&refs)).await?;
            let name = comps.join("/");
            let is_repo = !comps.is_empty() && children.iter().any(|c| keys::is_repo_data_folder(c));
            if is_repo && name.starts_with(prefix) && (after.is_empty() || refs.as_slice() > after.as_slice()) {
                if let Ok(repo) = RepoName::parse(&name) {
                    if self.repository_exists(&repo).await? {
                        out.push(name.clone());
                        if out.len() > n {
                            break;
                        }
                    }
                }
            }
            for child in children.iter().rev().filter(|c| !keys::is_repo_data_folder(c)) {
                let mut next = comps.clone();
                next.push(child.clone());
                let next_refs: Vec<&str> = next.iter().map(String::as_str).collect();
                if (after.is_empty() || may_follow(&next_refs, &after)) && may_match(&next.join("/"), prefix) {
                    stack.push(next);
                }
            }
        }
        let next = if out.len() > n {
            out.truncate(n);
            out.last().cloned()
        } else {
            None
        };
        Ok(Page { items: out, next })
    }

    /// Walks the whole store: stored blobs, and the size of every tagged or pinned image.
    /// Slow on a large store; run it off the request path.
    pub async fn usage(&self) -> Result<Usage> {
        self.usage_with_mirrors(&[]).await
    }

    /// [`Store::usage`], with the bytes of images in repositories under the mirrored
    /// `prefixes` (`docker.io`, the first name component) counted apart too.
    pub async fn usage_with_mirrors(&self, prefixes: &[String]) -> Result<Usage> {
        let started = Instant::now();
        let mut u = Usage::default();
        let mut blobs = self.os().list(Some(&keys::blobs()));
        while let Some(meta) = blobs.try_next().await? {
            u.blobs += 1;
            u.stored_bytes += meta.size;
        }
        let mut images: BTreeSet<(String, Digest)> = BTreeSet::new();
        let repos = self.repositories().await?;
        u.repositories = repos.len() as u64;
        for name in &repos {
            let Ok(repo) = RepoName::parse(name) else { continue };
            for tag in self.tags(&repo).await?.unwrap_or_default() {
                if let Some(d) = self.resolve_tag(&repo, &tag).await? {
                    images.insert((name.clone(), d));
                }
            }
        }
        for app in self.apps().await? {
            if let Some(s) = self.app_stagings(&app).await? {
                u.apps += 1;
                u.stagings += s.history.len() as u64;
                let current = s.current();
                images.insert((current.repository.clone(), current.digest.clone()));
                u.recent.extend(s.history.into_iter().take(RECENT));
                if u.recent.len() > 8 * RECENT {
                    latest(&mut u.recent);
                }
            }
        }
        latest(&mut u.recent);
        let mut sizes: HashMap<Digest, u64> = HashMap::new();
        for (name, digest) in &images {
            let Ok(repo) = RepoName::parse(name) else { continue };
            let size = self.image_size(&repo, digest, &mut sizes).await?;
            u.logical_bytes += size;
            if prefixes.iter().any(|p| name.starts_with(&format!("{p}/"))) {
                u.mirrored_bytes += size;
            }
        }
        u.seconds = started.elapsed().as_secs_f64();
        Ok(u)
    }

    /// The bytes of an image (manifest, config, layers; an index with all its images), each
    /// digest measured once per walk (`sizes`).
    async fn image_size(&self, repo: &RepoName, digest: &Digest, sizes: &mut HashMap<Digest, u64>) -> Result<u64> {
        if let Some(s) = sizes.get(digest) {
            return Ok(*s);
        }
        let Some(stored) = self.manifest_walked(repo, digest).await? else { return Ok(0) };
        let mut total = stored.bytes.len() as u64;
        if let Ok(m) = Manifest::parse(&stored.bytes, Some(&stored.media_type)) {
            total += m.config.iter().chain(m.layers.iter()).map(|d| d.size).sum::<u64>();
            for child in &m.manifests {
                // An index nests one level: its children are image manifests.
                if let Some(c) = self.manifest_walked(repo, &child.digest).await? {
                    let mut size = c.bytes.len() as u64;
                    if let Ok(cm) = Manifest::parse(&c.bytes, Some(&c.media_type)) {
                        size += cm.config.iter().chain(cm.layers.iter()).map(|d| d.size).sum::<u64>();
                    }
                    total += size;
                }
            }
        }
        sizes.insert(digest.clone(), total);
        Ok(total)
    }
}

/// The sorted names of the sub-folders of a local directory (none when it does not exist).
/// Keeps the newest [`RECENT`] records, newest first.
fn latest(records: &mut Vec<StagingRecord>) {
    records.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
    records.truncate(RECENT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_prunes_what_cannot_follow() {
        assert!(may_follow(&["apps"], &["apps", "a1"]), "a folder holding the last name");
        assert!(may_follow(&["b"], &["apps", "a1"]));
        assert!(!may_follow(&["a"], &["apps", "a1"]));
        assert!(may_match("library", "lib") && may_match("library", "library/ng") && may_match("", "x"));
        assert!(!may_match("lib", "library") && !may_match("team", "apps/"));
    }
}
