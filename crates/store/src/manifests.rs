//! Manifests, tags, referrers and the repository catalog. Manifest bytes are stored as blobs,
//! exactly as pushed; the repository's manifest link records the media type they were pushed
//! with, so they are served back byte-for-byte under the same `Content-Type`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{GetOptions, ObjectStoreExt};
use oci::{Descriptor, Digest, RepoName, Tag};
use serde::{Deserialize, Serialize};

use crate::cache::TagEntry;
use crate::{keys, Result, Store, StoreError};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    /// The subject, so deleting the manifest can drop its referrer entry without parsing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
    /// Accepted while some of the blobs it names were absent (`manifest_completeness = any`):
    /// those are absent by design until pushed, which fsck reports apart from lost data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    absent_blobs: bool,
}

/// A manifest as stored in a repository.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub media_type: Arc<str>,
    pub bytes: Bytes,
}

fn corrupt(key: &object_store::path::Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl Store {
    /// Stores manifest bytes (already verified against `digest`) in `repo`. When the manifest
    /// has a subject, `referrer` is its descriptor for the subject's referrers list.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
        referrer: Option<(&Digest, &Descriptor)>,
    ) -> Result<()> {
        self.write_manifest(repo, digest, media_type, bytes, referrer, false).await
    }

    /// [`Store::put_manifest`] for a manifest accepted while some of the blobs it names are
    /// absent from `repo`: the link says so, so fsck counts them as absent by design.
    pub async fn put_manifest_with_absent_blobs(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
        referrer: Option<(&Digest, &Descriptor)>,
    ) -> Result<()> {
        self.write_manifest(repo, digest, media_type, bytes, referrer, true).await
    }

    async fn write_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
        referrer: Option<(&Digest, &Descriptor)>,
        absent_blobs: bool,
    ) -> Result<()> {
        // Order matters for crash safety: bytes, then link, then referrer; tags come after.
        // Written even when stored already: these bytes are verified, a stored copy may not be.
        self.protect(std::slice::from_ref(digest)).await?;
        self.write_small(&keys::blob(digest), bytes.clone()).await?;
        self.cache().blob_sizes.insert(digest.clone(), bytes.len() as u64);
        self.cache().manifests.insert(digest.clone(), bytes);
        let link = ManifestLink { media_type: media_type.to_string(), subject: referrer.map(|(s, _)| s.clone()), absent_blobs };
        let json = serde_json::to_vec(&link).map_err(|e| corrupt(&keys::manifest_link(repo, digest), e))?;
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        self.write_small(&keys::manifest_link(repo, digest), json.into()).await?;
        self.cache().manifest_links.insert((repo.clone(), digest.clone()), media_type.into(), epoch, at);
        if let Some((subject, desc)) = referrer {
            let key = keys::referrer(repo, subject, digest);
            let json = serde_json::to_vec(desc).map_err(|e| corrupt(&key, e))?;
            self.write_small(&key, json.into()).await?;
        }
        Ok(())
    }

    /// A manifest of `repo` by digest; `None` when the repository does not hold it. As the
    /// store says now: on a shared store the link is read from the bucket.
    pub async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        self.manifest_in(repo, digest, false, true).await
    }

    /// [`Store::manifest`] for a walk over every image (the usage walk): what it reads does
    /// not enter the manifest cache, which would otherwise end up holding the walk's last
    /// images (up to its bound, in every replica) instead of what clients pull.
    pub(crate) async fn manifest_walked(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        self.manifest_in(repo, digest, false, false).await
    }

    /// A manifest of `repo` by digest, for serving it: on a shared store the answer may come
    /// from a cached link that another replica removed up to the generation check interval
    /// ago (see `generation.rs`). An absent link is always read from the store.
    pub async fn manifest_cached(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        self.manifest_in(repo, digest, true, true).await
    }

    /// `cached`: the link may come from the cache; `fill`: bytes read enter the cache.
    async fn manifest_in(&self, repo: &RepoName, digest: &Digest, cached: bool, fill: bool) -> Result<Option<StoredManifest>> {
        let Some(media_type) = self.manifest_media_type(repo, digest, cached).await? else {
            return Ok(None);
        };
        let bytes = match self.cache().manifests.get(digest) {
            Some(b) => b,
            None => {
                let b = self.read_blob_bytes(digest).await?;
                if fill {
                    self.cache().manifests.insert(digest.clone(), b.clone());
                }
                b
            }
        };
        Ok(Some(StoredManifest { media_type, bytes }))
    }

    /// Whether `repo`'s link to manifest `digest` says it was accepted with absent blobs
    /// (false when there is no such link). Read from the store, never cached: fsck's question.
    pub(crate) async fn manifest_has_absent_blobs(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let key = keys::manifest_link(repo, digest);
        let Some(raw) = self.read_small(&key).await? else {
            return Ok(false);
        };
        let link: ManifestLink = serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))?;
        Ok(link.absent_blobs)
    }

    async fn manifest_media_type(&self, repo: &RepoName, digest: &Digest, cached: bool) -> Result<Option<Arc<str>>> {
        let cache_key = (repo.clone(), digest.clone());
        if let Some(epoch) = self.usable_epoch(cached).await? {
            if let Some(t) = self.cache().manifest_links.get(&cache_key, epoch) {
                return Ok(Some(t));
            }
        }
        let key = keys::manifest_link(repo, digest);
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        let Some(raw) = self.read_small(&key).await? else {
            self.cache().manifest_links.remove(&cache_key);
            return Ok(None);
        };
        let link: ManifestLink = serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))?;
        let media_type: Arc<str> = link.media_type.into();
        self.cache().manifest_links.insert(cache_key, media_type.clone(), epoch, at);
        Ok(Some(media_type))
    }

    /// Deletes a manifest from `repo`, with the tags pointing at it and its referrer entry.
    /// Returns false when the repository did not hold it.
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        self.delete_manifest_among(repo, digest, None).await
    }

    /// [`Self::delete_manifest`], where only `tags` (when given) may point at the manifest:
    /// garbage collection knows which, and a repository of many tags would otherwise cost a
    /// read of every tag per manifest removed.
    pub(crate) async fn delete_manifest_among(&self, repo: &RepoName, digest: &Digest, tags: Option<Vec<Tag>>) -> Result<bool> {
        let key = keys::manifest_link(repo, digest);
        let Some(raw) = self.read_small(&key).await? else {
            return Ok(false);
        };
        let link: ManifestLink = serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))?;
        let tags = match tags {
            Some(tags) => tags,
            None => self.tags(repo).await?.unwrap_or_default(),
        };
        for tag in tags {
            if self.resolve_tag(repo, &tag).await?.as_ref() == Some(digest) {
                self.remove_tag(repo, &tag).await?;
            }
        }
        if let Some(subject) = &link.subject {
            self.remove(&keys::referrer(repo, subject, digest)).await?;
        }
        self.cache().manifest_links.remove(&(repo.clone(), digest.clone()));
        self.remove(&keys::manifest_link(repo, digest)).await?;
        // A mirrored manifest's pull record goes with it (absent for any other: a no-op).
        self.remove(&keys::mirror_pull(repo, digest)).await?;
        self.publish_removal().await?;
        Ok(true)
    }

    /// Records that a mirrored manifest was pulled now (garbage collection keeps it while
    /// the record is younger than the mirror's retention). The caller writes it coarsely.
    pub async fn record_mirror_pull(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.write_small(&keys::mirror_pull(repo, digest), Bytes::new()).await
    }

    /// When a mirrored manifest's pull was last recorded, if ever.
    pub async fn mirror_pull_time(&self, repo: &RepoName, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        match self.os().head(&keys::mirror_pull(repo, digest)).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Points `tag` at `digest` (last writer wins).
    pub async fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        self.write_small(&keys::tag(repo, tag), Bytes::from(digest.to_string())).await?;
        // The ETag is not known here: the first revalidation is a plain read.
        let entry = TagEntry { digest: digest.clone(), etag: None };
        self.cache().tags.insert((repo.clone(), tag.clone()), entry, epoch, at);
        Ok(())
    }

    /// The digest a tag points at, if the tag exists, as the store says now: for decisions
    /// (deletes, garbage collection's roots). On a shared store this reads the bucket.
    pub async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.tag_in(repo, tag, false).await
    }

    /// The digest a tag points at, for serving a pull: on a shared store, a tag this replica
    /// read less than the tag cache TTL ago (and in the current epoch, so not removed since
    /// by a replica that answered more than the generation check interval ago) answers
    /// without asking the store; an older one is revalidated with one conditional request.
    /// A tag that does not exist is always read from the store.
    pub async fn resolve_tag_cached(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.tag_in(repo, tag, true).await
    }

    async fn tag_in(&self, repo: &RepoName, tag: &Tag, cached: bool) -> Result<Option<Digest>> {
        let cache_key = (repo.clone(), tag.clone());
        let held = self.cache().tags.entry(&cache_key);
        if let (Some(epoch), Some(e)) = (self.usable_epoch(cached).await?, &held) {
            if e.epoch == epoch && e.read_at.elapsed() < self.cache().tag_ttl() {
                return Ok(Some(e.value.digest.clone()));
            }
        }
        let key = keys::tag(repo, tag);
        let (epoch, at) = (self.inner.generation.now(), Instant::now());
        // What we hold, if anything, is asked for only if it changed: the tag object's ETag
        // names its content, so "not modified" proves the digest held is still the tag's.
        let held = held.and_then(|e| e.value.etag.is_some().then_some(e.value));
        let opts = GetOptions { if_none_match: held.as_ref().and_then(|h| h.etag.as_deref().map(str::to_string)), ..Default::default() };
        let (raw, etag) = match self.os().get_opts(&key, opts).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                (r.bytes().await?, etag)
            }
            Err(object_store::Error::NotModified { .. }) => match held {
                Some(h) => {
                    let digest = h.digest.clone();
                    self.cache().tags.insert(cache_key, h, epoch, at);
                    return Ok(Some(digest));
                }
                // Not asked conditionally: a 304 is the store's error, not an answer.
                None => return Err(StoreError::Corrupt { key: key.to_string(), reason: "answered 304 to an unconditional read".into() }),
            },
            Err(object_store::Error::NotFound { .. }) => {
                self.cache().tags.remove(&cache_key);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let text = std::str::from_utf8(&raw).map_err(|e| corrupt(&key, e))?;
        let digest = Digest::parse(text.trim()).map_err(|e| corrupt(&key, e))?;
        let entry = TagEntry { digest: digest.clone(), etag: etag.map(Arc::from) };
        self.cache().tags.insert(cache_key, entry, epoch, at);
        Ok(Some(digest))
    }

    /// Removes a tag; returns whether it existed.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let existed = self.remove_tag(repo, tag).await?;
        self.publish_removal().await?;
        Ok(existed)
    }

    /// Removes a tag without telling other replicas (the caller does, once, for all it
    /// removes); returns whether it existed.
    async fn remove_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let existed = self.resolve_tag(repo, tag).await?.is_some();
        self.cache().tags.remove(&(repo.clone(), tag.clone()));
        self.remove(&keys::tag(repo, tag)).await?;
        Ok(existed)
    }

    /// The repository's tags in lexical order, or `None` if the repository does not exist.
    pub async fn tags(&self, repo: &RepoName) -> Result<Option<Vec<Tag>>> {
        let listed = self.os().list_with_delimiter(Some(&keys::tags(repo))).await?;
        let mut tags: Vec<Tag> = listed
            .objects
            .iter()
            .filter_map(|o| match keys::parse_repo_key(&o.location) {
                Some(keys::RepoKey::Tag(_, tag)) => Some(tag),
                _ => None,
            })
            .collect();
        if tags.is_empty() && !self.repository_exists(repo).await? {
            return Ok(None);
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// Whether anything is stored for the repository: one object under it is enough. Folders
    /// do not count, since the filesystem backend leaves empty ones behind after a collection.
    pub async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        let prefix = keys::repo(repo);
        let mut listed = self.os().list(Some(&prefix));
        Ok(listed.try_next().await?.is_some())
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`, ordered by digest.
    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let metas: Vec<_> = self.os().list(Some(&keys::referrers(repo, subject))).try_collect().await?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas {
            let Some(raw) = self.read_small(&meta.location).await? else { continue };
            let desc: Descriptor = serde_json::from_slice(&raw).map_err(|e| corrupt(&meta.location, e))?;
            out.push(desc);
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository name, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let prefix = keys::repositories();
        let mut names = BTreeSet::new();
        let mut list = self.os().list(Some(&prefix));
        while let Some(meta) = list.try_next().await? {
            if let Some(repo) = keys::repo_of_key(&meta.location) {
                names.insert(repo.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }
}
