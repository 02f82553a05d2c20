//! Registry tokens: JWTs signed with an asymmetric key (EdDSA, or ES256 from a key file),
//! checked for signature, algorithm, key id, issuer, audience, expiry and not-before.
//!
//! Keys: with `--token-key FILE` that key alone. Otherwise the store's `auth/keys/`: a
//! replica signs with the newest stored key, generating and storing one when there is none,
//! and verifies with any stored key, re-listing (at most every few seconds) when a token names
//! a key id it has not seen, so replicas on one bucket accept each other's tokens even when
//! two generated a key at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use store::{CredentialId, SigningKeyRecord, Store};

use crate::scope::Grant;
use crate::AuthError;

/// The `iss` of every token this registry signs.
pub const ISSUER: &str = "wharfage";

/// Least time between two re-listings of the store's keys for an unknown key id.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// A token's claims (the Docker token spec's, plus `fp` on refresh tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Grant>,
    /// Refresh tokens: the fingerprint of the credential they were issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<String>,
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

/// The signing key and every key tokens may be verified with.
pub(crate) struct KeyRing {
    signer: Signer,
    verifiers: RwLock<HashMap<String, (Algorithm, Arc<DecodingKey>)>>,
    /// Where other replicas' keys are found; `None` with a key file.
    store: Option<Store>,
    last_reload: Mutex<Option<Instant>>,
}

/// A key pair parsed from PKCS#8 DER: its algorithm, key id and verifying key.
fn parse_pkcs8(der: &[u8]) -> Result<(Algorithm, String, EncodingKey, DecodingKey), String> {
    let kid = |public: &[u8]| hex::encode(&Sha256::digest(public)[..8]);
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        let public = pair.public_key().as_ref();
        return Ok((Algorithm::EdDSA, kid(public), EncodingKey::from_ed_der(der), DecodingKey::from_ed_der(public)));
    }
    let rng = ring::rand::SystemRandom::new();
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
        let public = pair.public_key().as_ref();
        return Ok((Algorithm::ES256, kid(public), EncodingKey::from_ec_der(der), DecodingKey::from_ec_der(public)));
    }
    Err("not an Ed25519 or ECDSA P-256 private key in PKCS#8".into())
}

fn alg_name(a: Algorithm) -> &'static str {
    if a == Algorithm::ES256 {
        "ES256"
    } else {
        "EdDSA"
    }
}

impl KeyRing {
    /// The key from a PEM file (`openssl genpkey -algorithm ed25519`, or a P-256 key).
    pub(crate) fn from_file(path: &Path) -> Result<KeyRing, AuthError> {
        use rustls_pki_types::pem::PemObject;
        let bad = |e: String| AuthError::Config(format!("token key {}: {e}", path.display()));
        check_private(path)?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| bad(e.to_string()))?;
        let (alg, kid, key, verify) = parse_pkcs8(der.secret_pkcs8_der()).map_err(bad)?;
        let verifiers = RwLock::new(HashMap::from([(kid.clone(), (alg, Arc::new(verify)))]));
        Ok(KeyRing { signer: Signer { kid, alg, key }, verifiers, store: None, last_reload: Mutex::new(None) })
    }

    /// The store's newest key, or a new Ed25519 key stored for the other replicas.
    pub(crate) async fn from_store(store: &Store) -> Result<KeyRing, AuthError> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            let rng = ring::rand::SystemRandom::new();
            let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AuthError::Config("cannot generate a token signing key".into()))?;
            let (_, kid, _, _) = parse_pkcs8(der.as_ref()).map_err(AuthError::Config)?;
            let rec = SigningKeyRecord {
                kid: CredentialId::parse(&kid).map_err(AuthError::Config)?,
                alg: "EdDSA".into(),
                pkcs8_base64: base64::engine::general_purpose::STANDARD.encode(der.as_ref()),
                created_ms: now_secs() * 1000,
            };
            store.put_signing_key(&rec).await?;
            tracing::info!(target: "wharfage::audit", kid, "generated a token signing key and stored it for the other replicas");
            records.push(rec);
        }
        let mut verifiers = HashMap::new();
        let mut newest = None;
        for rec in &records {
            let (alg, kid, key, verify) = decode_record(rec)?;
            verifiers.insert(kid.clone(), (alg, Arc::new(verify)));
            newest = Some(Signer { kid, alg, key });
        }
        let signer = newest.ok_or_else(|| AuthError::Config("no token signing key".into()))?;
        Ok(KeyRing { signer, verifiers: RwLock::new(verifiers), store: Some(store.clone()), last_reload: Mutex::new(None) })
    }

    pub(crate) fn sign<C: Serialize>(&self, claims: &C) -> Result<String, AuthError> {
        let mut header = Header::new(self.signer.alg);
        header.kid = Some(self.signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signer.key).map_err(|e| AuthError::Config(format!("cannot sign a token: {e}")))
    }

    /// Verifies a token for audience `aud`; returns its claims.
    pub(crate) async fn verify<C: serde::de::DeserializeOwned>(&self, token: &str, aud: &str) -> Result<C, AuthError> {
        let bad = |why: &str| AuthError::InvalidToken(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed or unsupported header"))?;
        let kid = header.kid.ok_or_else(|| bad("no key id"))?;
        let (alg, key) = match self.verifier(&kid) {
            Some(k) => k,
            None => {
                self.reload().await?;
                self.verifier(&kid).ok_or_else(|| bad("unknown key id"))?
            }
        };
        // The header's algorithm must be the key's: never let a token choose (HS256 "signed"
        // with a public key, `none`).
        if header.alg != alg {
            return Err(bad("algorithm does not match the key"));
        }
        let mut v = Validation::new(alg);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_audience(&[aud]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<C>(token, &key, &v).map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        Ok(data.claims)
    }

    fn verifier(&self, kid: &str) -> Option<(Algorithm, Arc<DecodingKey>)> {
        self.verifiers.read().ok()?.get(kid).cloned()
    }

    /// Re-reads the store's keys, unless that was done moments ago.
    async fn reload(&self) -> Result<(), AuthError> {
        let Some(store) = &self.store else { return Ok(()) };
        {
            let Ok(mut last) = self.last_reload.lock() else { return Ok(()) };
            if last.is_some_and(|t| t.elapsed() < RELOAD_EVERY) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let records = store.signing_keys().await?;
        let mut fresh = HashMap::new();
        for rec in &records {
            let (alg, kid, _, verify) = decode_record(rec)?;
            fresh.insert(kid, (alg, Arc::new(verify)));
        }
        if let Ok(mut v) = self.verifiers.write() {
            v.extend(fresh);
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} key {}", alg_name(self.signer.alg), self.signer.kid)
    }
}

/// Refuses a key file other users can read or change: whoever reads it can sign any token.
/// Checked before the key is read, so a refusal leaves the secret untouched.
#[cfg(unix)]
pub(crate) fn check_private(path: &Path) -> Result<(), AuthError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| AuthError::Config(format!("token key {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuthError::Config(format!(
            "token key {} is readable or writable by group or others (mode {mode:o}): run `chmod 600 {}` (owned by the user wharfage runs as)",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path) -> Result<(), AuthError> {
    Ok(())
}

fn decode_record(rec: &SigningKeyRecord) -> Result<(Algorithm, String, EncodingKey, DecodingKey), AuthError> {
    let bad = |e: String| AuthError::Config(format!("stored token key {}: {e}", rec.kid));
    let der = base64::engine::general_purpose::STANDARD.decode(&rec.pkcs8_base64).map_err(|e| bad(e.to_string()))?;
    parse_pkcs8(&der).map_err(bad)
}
