//! Upload sessions. A session is a state object plus one object per chunk received, all under
//! `uploads/<id>/`, so any replica can continue a session and a restart loses nothing that was
//! acknowledged. Each chunk is hashed as it arrives; a session of a single chunk (the common
//! streamed upload) is finished by renaming that chunk into place without reading it again.
//!
//! Clients may send requests into one session concurrently, and neither backend offers
//! conditional writes, so two chunks can land "at the same offset". Each chunk is therefore
//! written under a name of its own (a fresh UUID) and recorded in the state with the hash and
//! size measured while writing exactly those bytes. Finishing reads only the chunks the state
//! names: whichever state write won, the bytes published are the bytes that were hashed.
//! Chunks no state names are removed with the session.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Bounds on upload sessions, so careless or hostile clients cannot fill the store with
/// empty sessions.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// A session idle this long is gone: refused as unknown, and removed by garbage collection.
    pub expiry: Duration,
    /// Open sessions this process started, in all repositories.
    pub max_sessions: usize,
    /// Open sessions this process started in one repository.
    pub max_per_repository: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { expiry: Duration::from_secs(24 * 3600), max_sessions: 10_000, max_per_repository: 1_000 }
    }
}

/// The open sessions this process started, for the limits. In memory: sessions started
/// before a restart or on another replica are not counted (each replica bounds its own), and
/// an idle one stops counting when it expires.
#[derive(Default)]
pub(crate) struct OpenSessions {
    open: Mutex<HashMap<UploadId, (RepoName, Instant)>>,
}

impl OpenSessions {
    fn admit(&self, limits: &UploadLimits, repo: &RepoName, id: &UploadId) -> Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, (_, touched)| touched.elapsed() < limits.expiry);
        if open.len() >= limits.max_sessions {
            return Err(StoreError::TooManyUploads { scope: "on this server".into(), limit: limits.max_sessions });
        }
        if open.values().filter(|(r, _)| r == repo).count() >= limits.max_per_repository {
            return Err(StoreError::TooManyUploads { scope: format!("in repository {repo}"), limit: limits.max_per_repository });
        }
        open.insert(id.clone(), (repo.clone(), Instant::now()));
        Ok(())
    }

    fn touch(&self, id: &UploadId) {
        if let Some(entry) = self.open.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            entry.1 = Instant::now();
        }
    }

    fn close(&self, id: &UploadId) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
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
    /// The chunk's own object name (`part-<name>`). Absent in sessions of versions that named
    /// chunks by position, which are read as `part-<n:06>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl Part {
    fn key(&self, id: &UploadId, n: usize) -> object_store::path::Path {
        match &self.name {
            Some(name) => keys::upload_part(id, name),
            None => keys::upload_part(id, &format!("{n:06}")),
        }
    }
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
    /// Refused with [`StoreError::TooManyUploads`] beyond the [`UploadLimits`].
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadId> {
        let id = UploadId::new();
        self.inner.sessions.admit(&self.inner.upload_limits, repo, &id)?;
        let state = State { repo: repo.to_string(), parts: Vec::new(), updated: now() };
        if let Err(e) = self.save_state(&id, &state).await {
            self.inner.sessions.close(&id);
            return Err(e);
        }
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
        self.inner.sessions.touch(id);
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
        let name = uuid::Uuid::new_v4().simple().to_string();
        let key = keys::upload_part(id, &name);
        let pending = self.stream_in(&key, body, Algorithm::Sha256).await?;
        if pending.size == 0 {
            self.abort(pending).await;
            return Ok(());
        }
        let part = Part { size: pending.size, sha256: pending.digest.clone(), name: Some(name) };
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

    /// Publishes the session's content under `digest`. A verified copy is always published,
    /// even over a blob already stored: a copy damaged on disk (or by a bug of an earlier
    /// version) is restored by a full push of the right bytes instead of being kept.
    async fn publish(&self, id: &UploadId, state: &State, digest: &Digest) -> Result<u64> {
        let target = keys::blob(digest);
        let size = state.size();
        if let [only] = state.parts.as_slice() {
            if digest.algorithm() == Algorithm::Sha256 {
                if &only.sha256 != digest {
                    return Err(StoreError::DigestMismatch { expected: digest.clone(), actual: only.sha256.clone() });
                }
                if self.inner.backend.can_rename(size) {
                    self.protect(std::slice::from_ref(digest)).await?;
                    // The part's recorded hash was measured while writing exactly this object.
                    self.rename(&only.key(id, 0), &target).await?;
                    self.cache().blob_sizes.insert(digest.clone(), size);
                    return Ok(size);
                }
            }
        }
        // Several chunks (or sha512): one pass over the chunks, hashing while concatenating.
        let store = self.clone();
        let keys: Vec<_> = state.parts.iter().enumerate().map(|(n, p)| p.key(id, n)).collect();
        // Boxed: erases the closure types, which are otherwise not `Send` for every lifetime.
        let chunks: ByteStream = futures::stream::iter(keys)
            .then(move |key| {
                let store = store.clone();
                async move { store.os().get(&key).await.map(|g| g.into_stream()) }
            })
            .try_flatten()
            .map_err(std::io::Error::other)
            .boxed();
        let written = self.put_verified(&target, chunks, digest).await?;
        self.cache().blob_sizes.insert(digest.clone(), written);
        Ok(written)
    }

    /// Cancels a session and deletes what it received.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        self.load_state(repo, id).await?;
        self.cancel_upload_unchecked(id).await
    }

    /// Cancels a session whatever its repository (also garbage collection's way to remove one).
    pub(crate) async fn cancel_upload_unchecked(&self, id: &UploadId) -> Result<()> {
        self.inner.sessions.close(id);
        let prefix = keys::upload(id);
        let objects: Vec<_> = self.os().list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
        // The state goes last so an interrupted cancel still finds the session.
        let state_key = keys::upload_state(id);
        for key in objects.iter().filter(|k| **k != state_key) {
            self.remove(key).await?;
        }
        self.remove(&state_key).await?;
        // The session's folder, now empty; nothing else writes there.
        self.inner.backend.remove_empty_folders(&keys::upload(id)).await;
        Ok(())
    }

    /// Upload sessions idle for `expiry` or longer, or without a state (left by an interrupted
    /// cancel or finish), with the bytes each holds.
    pub(crate) async fn idle_uploads(&self, expiry: Duration) -> Result<Vec<(UploadId, u64)>> {
        let objects: Vec<object_store::ObjectMeta> = self.os().list(Some(&keys::uploads())).try_collect().await?;
        let mut sessions: HashMap<UploadId, (Option<Duration>, u64)> = HashMap::new();
        for meta in &objects {
            let Some((id, object)) = keys::parse_upload_key(&meta.location) else { continue };
            let entry = sessions.entry(id).or_insert((None, 0));
            entry.1 += meta.size;
            if object == keys::UploadObject::State {
                entry.0 = Some(crate::age(meta));
            }
        }
        Ok(sessions.into_iter().filter(|(_, (idle, _))| idle.is_none_or(|i| i >= expiry)).map(|(id, (_, bytes))| (id, bytes)).collect())
    }

    async fn load_state(&self, repo: &RepoName, id: &UploadId) -> Result<State> {
        let unknown = || StoreError::UploadUnknown(id.to_string());
        let bytes = self.read_small(&keys::upload_state(id)).await?.ok_or_else(unknown)?;
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: keys::upload_state(id).to_string(), reason: e.to_string() })?;
        if state.repo != repo.as_str() {
            return Err(unknown());
        }
        if now().saturating_sub(state.updated) >= self.inner.upload_limits.expiry.as_secs() {
            return Err(unknown());
        }
        Ok(state)
    }

    async fn save_state(&self, id: &UploadId, state: &State) -> Result<()> {
        let json = serde_json::to_vec(state)
            .map_err(|e| StoreError::Corrupt { key: keys::upload_state(id).to_string(), reason: e.to_string() })?;
        self.write_small(&keys::upload_state(id), Bytes::from(json)).await
    }
}
