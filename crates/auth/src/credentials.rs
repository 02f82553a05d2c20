//! Per-app pull credentials: a user name naming the app and the credential, and a secret of
//! 256 random bits that is handed out once and stored only as its SHA-256.

use std::fmt;

use base64::Engine as _;
use oci::AppId;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use store::{CredentialId, PullCredentialRecord, StagingId, Store};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::{AuthError, Principal};

/// A user name and password that pull one app's image. Wiped from memory when dropped;
/// `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullCredentials {
    pub username: String,
    pub password: String,
}

impl Drop for PullCredentials {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

impl fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Mints a pull credential for one staging of an app and stores its hash.
pub async fn mint(store: &Store, app: &AppId, staging: &StagingId) -> Result<PullCredentials, AuthError> {
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut secret).map_err(|_| AuthError::Config("no randomness for a pull secret".into()))?;
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    secret.zeroize();
    let id = CredentialId::random();
    let rec = PullCredentialRecord {
        id: id.clone(),
        app: app.clone(),
        staging_id: staging.clone(),
        secret_sha256: sha256_hex(&password),
        created_ms: crate::token::now_secs() * 1000,
    };
    store.put_pull_credential(&rec).await?;
    tracing::info!(target: "wharfage::audit", event = "credential_minted", app = %app, credential = %id, staging = %staging, "pull credential minted");
    Ok(PullCredentials { username: Principal::app_user_name(app, &id), password })
}

/// Whether `password` is the credential's secret, compared in constant time.
pub(crate) fn secret_matches(rec: &PullCredentialRecord, password: &str) -> bool {
    sha256_hex(password).as_bytes().ct_eq(rec.secret_sha256.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_hash_and_never_show() {
        let rec = PullCredentialRecord {
            id: CredentialId::parse("0123456789abcdef").unwrap(),
            app: AppId::parse("shop").unwrap(),
            staging_id: StagingId::parse("1-a").unwrap(),
            secret_sha256: sha256_hex("s3cret"),
            created_ms: 0,
        };
        assert!(secret_matches(&rec, "s3cret") && !secret_matches(&rec, "s3cre") && !secret_matches(&rec, ""));
        let c = PullCredentials { username: "shop+0123456789abcdef".into(), password: "s3cret".into() };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
