//! Upload sessions. A session is a state object plus one object per chunk received, all under
//! `uploads/<id>/`, so any replica can continue a session and a restart loses nothing that was
//! acknowledged. Each chunk is hashed as it arrives; a session of a single chunk (the common
//! streamed upload) is finished by renaming that chunk into place without reading it again.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use oci::{Algorithm, Digest, RepoName};
use serde::{Deserialize, Serialize};

use crate::{keys, ByteStream, Result, Store, StoreError};

/// An upload session id (a UUID), parsed so it is safe in storage keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// Parses an id from a URL; `None` if it is not one we could have issued.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::try_parse(s).ok().map(|u| UploadId(u.simple().to_string()))
    }

    fn new() -> Self {
        UploadId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as it appears in URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    repo: String,
    parts: Vec<Part>,
    /// Unix seconds of the last change, for expiring abandoned sessions.
    updated: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Part {
    size: u64,
    sha256: Digest,
}

impl State {
    fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Store {
    /// Opens a new upload session for `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadId> {
        let id = UploadId::new();
        let state = State { repo: repo.to_string(), parts: Vec::new(), updated: now() };
        self.save_state(&id, &state).await?;
        Ok(id)
    }

    /// Bytes received so far by a session.
    pub async fn upload_size(&self, repo: &RepoName, id: &UploadId) -> Result<u64> {
        Ok(self.load_state(repo, id).await?.size())
    }

    /// Appends a chunk. `offset`, when the client sent a Content-Range, must equal the bytes
    /// already received (chunks arrive in order). Returns the new total size.
    pub async fn append_upload(&self, repo: &RepoName, id: &UploadId, offset: Option<u64>, body: ByteStream) -> Result<u64> {
        let mut state = self.load_state(repo, id).await?;
        self.append_part(id, &mut state, offset, body).await?;
        Ok(state.size())
    }

    async fn append_part(&self, id: &UploadId, state: &mut State, offset: Option<u64>, body: ByteStream) -> Result<()> {
        let expected = state.size();
        if let Some(got) = offset {
            if got != expected {
                return Err(StoreError::UploadOffset { id: id.to_string(), expected, got });
            }
        }
        let key = keys::upload_part(id.as_str(), state.parts.len());
        let pending = self.stream_in(&key, body, Algorithm::Sha256, true).await?;
        if pending.size == 0 {
            self.abort(pending).await;
            return Ok(());
        }
        let part = Part { size: pending.size, sha256: pending.digest.clone() };
        self.commit(pending).await?;
        state.parts.push(part);
        state.updated = now();
        self.save_state(id, state).await
    }

    /// Finishes a session: appends the last chunk if any, verifies the whole content against
    /// `digest`, publishes the blob and links it to `repo`. The session is gone afterwards,
    /// whether the digest matched or not; on a mismatch nothing is stored.
    pub async fn finish_upload(&self, repo: &RepoName, id: &UploadId, digest: &Digest, last: Option<ByteStream>) -> Result<u64> {
        let mut state = self.load_state(repo, id).await?;
        if state.parts.is_empty() {
            if let Some(body) = last {
                // Nothing received before a PUT that carries the whole blob (containerd's
                // way): stream it straight to its digest's key, verified on the fly, as a
                // monolithic POST does. Through a part, every byte would be written twice
                // (on S3 the second time is a server-side copy).
                let result = self.put_blob(digest, body).await;
                self.cancel_upload_unchecked(id).await?;
                let size = result?;
                self.link_blob(repo, digest).await?;
                return Ok(size);
            }
        }
        if let Some(body) = last {
            self.append_part(id, &mut state, None, body).await?;
        }
        let result = self.publish(id, &state, digest).await;
        self.cancel_upload_unchecked(id).await?;
        let size = result?;
        self.link_blob(repo, digest).await?;
        Ok(size)
    }

    async fn publish(&self, id: &UploadId, state: &State, digest: &Digest) -> Result<u64> {
        let target = keys::blob(digest);
        let size = state.size();
        self.protect(std::slice::from_ref(digest)).await?;
        let known = self.blob_size_fresh(digest).await?.is_some();
        if let [only] = state.parts.as_slice() {
            if digest.algorithm() == Algorithm::Sha256 {
                if &only.sha256 != digest {
                    return Err(StoreError::DigestMismatch { expected: digest.clone(), actual: only.sha256.clone() });
                }
                if !known && self.can_rename(size) {
                    self.os().rename(&keys::upload_part(id.as_str(), 0), &target).await?;
                }
                if known || self.can_rename(size) {
                    self.cache().blob_sizes.insert(digest.clone(), size);
                    return Ok(size);
                }
            }
        }
        // Several chunks (or sha512): one pass over the chunks, hashing while concatenating.
        let store = self.clone();
        let id = id.clone();
        let count = state.parts.len();
        // Boxed: erases the closure types, which are otherwise not `Send` for every lifetime.
        let chunks: ByteStream = futures::stream::iter(0..count)
            .then(move |n| {
                let store = store.clone();
                let key = keys::upload_part(id.as_str(), n);
                async move { store.os().get(&key).await.map(|g| g.into_stream()) }
            })
            .try_flatten()
            .map_err(std::io::Error::other)
            .boxed();
        let written = self.put_verified(&target, chunks, digest, !known).await?;
        self.cache().blob_sizes.insert(digest.clone(), written);
        Ok(written)
    }

    /// Whether a part of `size` bytes can be moved into place by rename: always on the
    /// filesystem; on S3 a rename is a server-side copy, limited to 5 GiB.
    fn can_rename(&self, size: u64) -> bool {
        self.inner.s3.is_none() || size <= 5 << 30
    }

    /// Cancels a session and deletes what it received.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        self.load_state(repo, id).await?;
        self.cancel_upload_unchecked(id).await
    }

    async fn cancel_upload_unchecked(&self, id: &UploadId) -> Result<()> {
        let prefix = keys::upload(id.as_str());
        let objects: Vec<_> = self.os().list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
        // The state goes last so an interrupted cancel still finds the session.
        let state_key = keys::upload_state(id.as_str());
        for key in objects.iter().filter(|k| **k != state_key) {
            self.remove(key).await?;
        }
        self.remove(&state_key).await?;
        if let Some(root) = &self.inner.local_root {
            // The session's folder, now empty; nothing else writes there.
            let _ = tokio::fs::remove_dir(root.join("uploads").join(id.as_str())).await;
        }
        Ok(())
    }

    async fn load_state(&self, repo: &RepoName, id: &UploadId) -> Result<State> {
        let unknown = || StoreError::UploadUnknown(id.to_string());
        let bytes = self.read_small(&keys::upload_state(id.as_str())).await?.ok_or_else(unknown)?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: keys::upload_state(id.as_str()).to_string(),
            reason: e.to_string(),
        })?;
        if state.repo != repo.as_str() {
            return Err(unknown());
        }
        Ok(state)
    }

    async fn save_state(&self, id: &UploadId, state: &State) -> Result<()> {
        let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            key: keys::upload_state(id.as_str()).to_string(),
            reason: e.to_string(),
        })?;
        self.write_small(&keys::upload_state(id.as_str()), Bytes::from(json)).await
    }
}
