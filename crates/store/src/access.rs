//! What access control keeps in the store, and nothing secret in the clear:
//! - per-app pull credential records under `apps/<app>/credentials/`: the SHA-256 of a
//!   random secret and the staging it was minted for, so a credential dies with its staging
//!   (garbage collection of superseded stagings, unpinning) without a separate sweep;
//! - token signing keys under `auth/keys/`: one per replica that needed one, so replicas on
//!   one bucket verify each other's tokens (they find an unknown key id by listing).

use bytes::Bytes;
use futures::TryStreamExt;
use oci::AppId;
use serde::{Deserialize, Serialize};

use crate::{keys, Result, StagingId, Store, StoreError};

/// The public part of a credential's name, and a key id: 16 lowercase hex digits, so a
/// parsed id is safe in a storage key and unambiguous inside a user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

impl CredentialId {
    /// A fresh random id.
    pub fn random() -> Self {
        CredentialId(uuid::Uuid::new_v4().simple().to_string()[..16].to_string())
    }

    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(CredentialId(s.to_string()))
        } else {
            Err(format!("{s:?} is not a credential id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CredentialId {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        CredentialId::parse(&s)
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.0
    }
}

/// A pull credential as stored: which app and staging it opens, and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullCredentialRecord {
    pub id: CredentialId,
    pub app: AppId,
    pub staging_id: StagingId,
    /// Hex SHA-256 of the secret. The secret is 256 random bits, so a fast hash is enough:
    /// there is nothing to guess.
    pub secret_sha256: String,
    pub created_ms: u64,
}

/// A token signing key as stored: PKCS#8 DER, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: CredentialId,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    pub pkcs8_base64: String,
    pub created_ms: u64,
}

fn corrupt(key: &object_store::path::Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl Store {
    /// Stores a pull credential record.
    pub async fn put_pull_credential(&self, rec: &PullCredentialRecord) -> Result<()> {
        let key = keys::pull_credential(&rec.app, &rec.id);
        let json = serde_json::to_vec(rec).map_err(|e| corrupt(&key, e))?;
        self.write_small(&key, Bytes::from(json)).await
    }

    /// A pull credential record, if it exists.
    pub async fn pull_credential(&self, app: &AppId, id: &CredentialId) -> Result<Option<PullCredentialRecord>> {
        let key = keys::pull_credential(app, id);
        match self.read_small(&key).await? {
            Some(raw) => Ok(Some(serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))?)),
            None => Ok(None),
        }
    }

    /// Removes every pull credential of an app; returns how many there were.
    pub async fn revoke_pull_credentials(&self, app: &AppId) -> Result<u64> {
        self.revoke_pull_credentials_except(app, None).await
    }

    /// Removes every pull credential of an app but `keep` (the one a rotation just minted,
    /// so the old ones go only once the platform has the new one); returns how many it removed.
    pub async fn revoke_pull_credentials_except(&self, app: &AppId, keep: Option<&CredentialId>) -> Result<u64> {
        let metas: Vec<_> = self.os().list(Some(&keys::pull_credentials(app))).try_collect().await?;
        let kept = keep.map(|id| keys::pull_credential(app, id));
        let mut removed = 0;
        for m in metas.iter().filter(|m| Some(&m.location) != kept.as_ref()) {
            self.remove(&m.location).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes the pull credential records of these stagings (garbage collection of
    /// stagings beyond retention). Returns how many it removed.
    pub(crate) async fn remove_credentials_of(&self, stagings: &[(AppId, StagingId)]) -> Result<u64> {
        let mut removed = 0;
        let apps: std::collections::BTreeSet<&AppId> = stagings.iter().map(|(a, _)| a).collect();
        for app in apps {
            let metas: Vec<_> = self.os().list(Some(&keys::pull_credentials(app))).try_collect().await?;
            for m in metas {
                let Some(raw) = self.read_small(&m.location).await? else { continue };
                // A record that does not parse is left for an operator: never guess at access data.
                let Ok(rec) = serde_json::from_slice::<PullCredentialRecord>(&raw) else { continue };
                if stagings.iter().any(|(a, s)| a == app && *s == rec.staging_id) {
                    self.remove(&m.location).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Whether a staging is still one the app keeps: its record exists and it is the current
    /// staging, one of the `retain` before it, or newer (what garbage collection keeps).
    pub async fn staging_retained(&self, app: &AppId, staging: &StagingId, retain: usize) -> Result<bool> {
        let stagings = self.stagings(app).await?;
        let current = self.current_staging(app).await?;
        Ok(crate::gc::retained(&stagings, current.as_deref(), retain).contains(staging.as_str()))
    }

    /// Stores a token signing key, readable by the owner only on the filesystem: whoever
    /// reads it can sign any token.
    pub async fn put_signing_key(&self, rec: &SigningKeyRecord) -> Result<()> {
        let key = keys::signing_key(&rec.kid);
        let json = serde_json::to_vec(rec).map_err(|e| corrupt(&key, e))?;
        self.write_private(&key, Bytes::from(json)).await
    }

    /// Every stored token signing key, oldest first. Keys that an older version stored
    /// readable by others are made owner-only on the way.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let metas: Vec<_> = self.os().list(Some(&keys::signing_keys())).try_collect().await?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            if self.inner.backend.make_private(&m.location).await? {
                tracing::warn!(target: "wharfage::audit", key = %m.location, "a stored token signing key was readable by others; made it owner-only (0600)");
            }
            let Some(raw) = self.read_small(&m.location).await? else { continue };
            out.push(serde_json::from_slice::<SigningKeyRecord>(&raw).map_err(|e| corrupt(&m.location, e))?);
        }
        out.sort_by_key(|k| k.created_ms);
        Ok(out)
    }
}
