//! Access control for wharfage: who the caller is (htpasswd users with bcrypt, per-app pull
//! credentials, registry tokens) and what they may do (roles for the management API,
//! repository rules for `/v2/`). It knows no HTTP: the server asks it and maps its errors.
//!
//! Checks are fast on the hot path: a verified token or a checked password is remembered
//! for a short time (by a salted hash, never the secret itself), so a pull of many blobs
//! pays for bcrypt or a signature once, not per request.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod credentials;
mod error;
mod htpasswd;
mod limiter;
mod principal;
mod rules;
mod scope;
mod session;
mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use oci::AppId;
use quick_cache::sync::Cache;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use store::{CredentialId, Store};

pub use credentials::{mint, PullCredentials};
pub use error::AuthError;
pub use htpasswd::Htpasswd;
pub use principal::{Actions, Principal};
pub use rules::{Glob, Policy, Role, Rule};
pub use scope::{challenge_scope, Grant};
pub use session::{Session, SESSION_TTL};
pub use token::{now_secs, Claims, ISSUER};

/// How long a checked password is remembered.
const LOGIN_MEMORY: Duration = Duration::from_secs(60);
/// How long a pull credential's validity is remembered: revocation and retention reach
/// other replicas within this time (the replica that revokes forgets at once).
const CREDENTIAL_MEMORY: Duration = Duration::from_secs(5);
/// Refresh tokens (what `docker login` keeps as an identity token) last this long; each
/// use re-checks the credential behind it.
const REFRESH_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Clock skew tolerated when judging a token's lifetime (as for its expiry).
const LIFETIME_LEEWAY: u64 = 30;
/// Scopes one token request may ask for. Clients ask for one to a few (a cross-repository
/// mount: two); thousands would make every token, and the cache of verified ones, huge.
pub const MAX_SCOPES: usize = 100;
/// Bytes the verified-token cache may hold (estimated); each entry weighs what its grants do.
pub const TOKEN_CACHE_BYTES: u64 = 16 << 20;

/// Access control settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub htpasswd: PathBuf,
    pub admins: Vec<String>,
    pub stagers: Vec<String>,
    pub rules: Vec<Rule>,
    pub token_ttl: Duration,
    /// A PEM private key to sign tokens with, instead of the store's.
    pub token_key: Option<PathBuf>,
    /// The token `aud` and the challenge's `service`.
    pub service: String,
    /// Previous stagings kept per app (a credential of a staging beyond this stops working).
    pub retain: usize,
    /// Failed logins per client address and minute before it is refused.
    pub failed_logins_per_minute: usize,
}

/// A verified bearer token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub access: Vec<Grant>,
    pub exp: u64,
}

impl Verified {
    /// The actions the token grants on `repo`.
    pub fn actions(&self, repo: &str) -> Actions {
        self.access.iter().filter(|g| g.name == repo).fold(Actions::NONE, |acc, g| acc | g.actions())
    }

    pub fn catalog(&self) -> bool {
        self.access.iter().any(Grant::is_catalog)
    }
}

/// The token endpoint's answer (both the GET and the OAuth2 POST shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Access control over one store.
pub struct Auth {
    policy: Policy,
    users: RwLock<Arc<Htpasswd>>,
    htpasswd: PathBuf,
    keys: token::KeyRing,
    store: Store,
    service: String,
    token_ttl: Duration,
    retain: usize,
    limiter: limiter::FailedLogins,
    salt: [u8; 32],
    logins: Cache<[u8; 32], (Principal, Instant)>,
    /// Concurrent logins with the same user and password wait for the first one's answer,
    /// so a client opening many connections at once takes one slot of the limiter.
    gates: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    /// bcrypt checks at once, at most one per core: a flood of logins cannot take every core.
    bcrypt: tokio::sync::Semaphore,
    tokens: Cache<[u8; 32], Arc<Verified>, TokenWeight>,
    credentials: Cache<(AppId, CredentialId), (bool, Instant)>,
}

impl Auth {
    /// Reads the users, checks the rules, loads or creates the signing key.
    pub async fn new(cfg: AuthConfig, store: Store) -> Result<Auth, AuthError> {
        let users = Htpasswd::load(&cfg.htpasswd)?;
        let policy = Policy::new(&cfg.admins, &cfg.stagers, &cfg.rules)?;
        let keys = match &cfg.token_key {
            Some(path) => token::KeyRing::from_file(path)?,
            None => token::KeyRing::from_store(&store).await?,
        };
        let mut salt = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut salt).map_err(|_| AuthError::Config("no randomness".into()))?;
        tracing::info!(users = users.len(), rules = cfg.rules.len(), key = keys.describe(), "access control is on");
        Ok(Auth {
            policy,
            users: RwLock::new(Arc::new(users)),
            htpasswd: cfg.htpasswd,
            keys,
            store,
            service: cfg.service,
            token_ttl: cfg.token_ttl,
            retain: cfg.retain,
            limiter: limiter::FailedLogins::new(cfg.failed_logins_per_minute.max(1)),
            salt,
            logins: Cache::new(10_000),
            gates: Mutex::new(HashMap::new()),
            bcrypt: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            tokens: Cache::with_weighter(10_000, TOKEN_CACHE_BYTES, TokenWeight),
            credentials: Cache::new(10_000),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Re-reads the htpasswd file (on SIGHUP); on error the old users stay.
    pub fn reload_users(&self) -> Result<usize, AuthError> {
        let users = Htpasswd::load(&self.htpasswd)?;
        let n = users.len();
        if let Ok(mut u) = self.users.write() {
            *u = Arc::new(users);
        }
        self.logins.clear();
        Ok(n)
    }

    fn users(&self) -> Arc<Htpasswd> {
        self.users.read().map(|u| u.clone()).unwrap_or_default()
    }

    fn salted(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize().into()
    }

    /// Estimated bytes the verified-token cache holds (at most [`TOKEN_CACHE_BYTES`]).
    pub fn token_cache_bytes(&self) -> u64 {
        self.tokens.weight()
    }

    /// bcrypt checks done so far (unknown users included).
    pub fn password_checks(&self) -> u64 {
        self.users().verifications()
    }

    /// A remembered successful login.
    async fn remembered(&self, key: &[u8; 32]) -> Result<Option<Principal>, AuthError> {
        if let Some((p, at)) = self.logins.get(key) {
            if at.elapsed() < LOGIN_MEMORY && self.still_valid(&p).await? {
                return Ok(Some(p));
            }
            self.logins.remove(key);
        }
        Ok(None)
    }

    /// Checks a user name and password (an htpasswd user or a pull credential) from
    /// `client`. Each attempt takes a slot of the limiter before it is checked (`limiter.rs`);
    /// a success gives it back.
    pub async fn login(&self, user: &str, password: &str, client: IpAddr) -> Result<Principal, AuthError> {
        let key = self.salted(&[user.as_bytes(), password.as_bytes()]);
        if let Some(p) = self.remembered(&key).await? {
            return Ok(p);
        }
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates.entry(key).or_default().clone()
        };
        let result = async {
            let _turn = gate.lock().await;
            if let Some(p) = self.remembered(&key).await? {
                return Ok(p);
            }
            self.check_login(user, password, client, &key).await
        }
        .await;
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else waits at this gate.
        if gates.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(g) <= 2) {
            gates.remove(&key);
        }
        result
    }

    async fn check_login(&self, user: &str, password: &str, client: IpAddr, key: &[u8; 32]) -> Result<Principal, AuthError> {
        let attempt = self.limiter.begin(user, client)?;
        let found = match Principal::parse_app_user(user) {
            Some((app, id)) => match self.store.pull_credential(&app, &id).await? {
                Some(rec) if credentials::secret_matches(&rec, password) && self.credential_valid(&app, &id).await? => {
                    Some(Principal::App { app, credential: id })
                }
                _ => None,
            },
            None => {
                let (users, u, pw) = (self.users(), user.to_string(), zeroize::Zeroizing::new(password.to_string()));
                // The semaphore is never closed; without a permit the check still runs.
                let _permit = self.bcrypt.acquire().await.ok();
                let ok = tokio::task::spawn_blocking(move || users.verify(&u, &pw)).await.unwrap_or(false);
                ok.then(|| Principal::User(user.to_string()))
            }
        };
        match found {
            Some(p) => {
                attempt.succeeded();
                self.logins.insert(*key, (p.clone(), Instant::now()));
                Ok(p)
            }
            None => {
                drop(attempt);
                tracing::warn!(target: "wharfage::audit", event = "login_failed", user, %client, "login refused");
                Err(AuthError::BadCredentials)
            }
        }
    }

    /// Whether a remembered principal still holds: a pull credential can be revoked or
    /// outlive its staging.
    async fn still_valid(&self, p: &Principal) -> Result<bool, AuthError> {
        match p {
            Principal::App { app, credential } => self.credential_valid(app, credential).await,
            _ => Ok(true),
        }
    }

    /// Whether a pull credential exists and its staging is still kept.
    async fn credential_valid(&self, app: &AppId, id: &CredentialId) -> Result<bool, AuthError> {
        let key = (app.clone(), id.clone());
        if let Some((ok, at)) = self.credentials.get(&key) {
            if at.elapsed() < CREDENTIAL_MEMORY {
                return Ok(ok);
            }
        }
        let ok = match self.store.pull_credential(app, id).await? {
            Some(rec) => self.store.staging_retained(app, &rec.staging_id, self.retain).await?,
            None => false,
        };
        self.credentials.insert(key, (ok, Instant::now()));
        Ok(ok)
    }

    /// Forgets what this replica remembers about an app's credentials (after a revocation).
    pub fn forget_app(&self, app: &AppId) {
        self.credentials.retain(|(a, _), _| a != app);
        self.logins.retain(|_, (p, _)| !matches!(p, Principal::App { app: a, .. } if a == app));
        self.tokens.retain(|_, v| !matches!(&v.principal, Principal::App { app: a, .. } if a == app));
    }

    /// Verifies a bearer token presented to `/v2/` or `/api/v1`.
    pub async fn bearer(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        let key = self.salted(&[token.as_bytes()]);
        let now = now_secs();
        let verified = match self.tokens.get(&key) {
            Some(v) if v.exp > now => v,
            _ => {
                let claims: Claims = self.keys.verify(token, &self.service).await?;
                check_lifetime(&claims, self.token_ttl.as_secs().max(1), now)?;
                let v = Arc::new(Verified { principal: Principal::from_subject(&claims.sub), access: claims.access, exp: claims.exp });
                self.tokens.insert(key, v.clone());
                v
            }
        };
        if !self.still_valid(&verified.principal).await? {
            return Err(AuthError::InvalidToken("the credential it was issued for is revoked or expired".into()));
        }
        Ok(verified)
    }

    /// The `access` a principal gets for what it asked: the intersection with what it may
    /// do. Scopes it may not have are left out, not an error.
    pub fn grant(&self, p: &Principal, requested: &[Grant]) -> Vec<Grant> {
        let mut out = Vec::new();
        for r in requested {
            if r.is_catalog() {
                if self.policy.catalog(p) {
                    out.push(Grant::catalog());
                }
                continue;
            }
            if r.kind != "repository" {
                continue;
            }
            let allowed = self.policy.actions(p, &r.name) & Actions::parse_list(&r.actions.join(","));
            if !allowed.is_empty() {
                out.push(Grant::repository(&r.name, allowed));
            } else {
                tracing::info!(target: "wharfage::audit", event = "scope_denied", principal = %p, repository = %r.name, actions = %r.actions.join(","), "scope not granted");
            }
        }
        out
    }

    /// Issues an access token (and with `offline`, a refresh token) for a principal.
    /// More than [`MAX_SCOPES`] requested scopes are refused (`BadRequest`, naming the limit).
    pub fn issue(&self, p: &Principal, requested: &[Grant], offline: bool) -> Result<TokenAnswer, AuthError> {
        check_scopes(requested)?;
        let now = now_secs();
        let ttl = self.token_ttl.as_secs().max(1);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: p.subject(),
            aud: self.service.clone(),
            exp: now + ttl,
            nbf: now.saturating_sub(1),
            iat: now,
            jti: CredentialId::random().to_string(),
            access: self.grant(p, requested),
            fp: None,
        };
        let token = self.keys.sign(&claims)?;
        let refresh_token = match (offline, p) {
            (false, _) | (true, Principal::Anonymous) => None,
            (true, p) => Some(self.keys.sign(&Claims {
                aud: self.refresh_audience(),
                exp: now + REFRESH_TTL.as_secs(),
                access: Vec::new(),
                fp: self.fingerprint(p),
                jti: CredentialId::random().to_string(),
                ..claims
            })?),
        };
        Ok(TokenAnswer { access_token: token.clone(), token, expires_in: ttl, refresh_token })
    }

    fn refresh_audience(&self) -> String {
        format!("{}/refresh", self.service)
    }

    fn fingerprint(&self, p: &Principal) -> Option<String> {
        match p {
            Principal::User(u) => self.users().fingerprint(u),
            Principal::App { credential, .. } => Some(credential.to_string()),
            Principal::Anonymous => None,
        }
    }

    /// The OAuth2 refresh-token grant: a new access token for the principal a refresh token
    /// names, if its credential still holds (same password, credential not revoked).
    pub async fn refresh(&self, refresh_token: &str, requested: &[Grant]) -> Result<TokenAnswer, AuthError> {
        check_scopes(requested)?;
        let claims: Claims = self.keys.verify(refresh_token, &self.refresh_audience()).await?;
        check_lifetime(&claims, REFRESH_TTL.as_secs(), now_secs())?;
        let p = Principal::from_subject(&claims.sub);
        let holds = match &p {
            Principal::Anonymous => false,
            Principal::User(_) => claims.fp.is_some() && self.fingerprint(&p) == claims.fp,
            Principal::App { .. } => self.still_valid(&p).await?,
        };
        if !holds {
            tracing::warn!(target: "wharfage::audit", event = "refresh_refused", principal = %p, "refresh token no longer valid");
            return Err(AuthError::InvalidToken("the credential this refresh token was issued for changed or is gone".into()));
        }
        let mut answer = self.issue(&p, requested, false)?;
        answer.refresh_token = Some(refresh_token.to_string());
        Ok(answer)
    }
}

/// Refuses a token request for more than [`MAX_SCOPES`] scopes.
pub fn check_scopes(requested: &[Grant]) -> Result<(), AuthError> {
    if requested.len() > MAX_SCOPES {
        return Err(AuthError::BadRequest(format!(
            "a token request may ask for at most {MAX_SCOPES} scopes; this one asks for {}",
            requested.len()
        )));
    }
    Ok(())
}

/// Refuses a token that claims to live longer than we issue tokens for (`max` seconds): one
/// signed with a leaked or misused key, or by a replica configured otherwise, must not stay
/// valid for days.
fn check_lifetime(claims: &Claims, max: u64, now: u64) -> Result<(), AuthError> {
    let limit = max.saturating_add(LIFETIME_LEEWAY);
    if claims.exp.saturating_sub(claims.iat) > limit || claims.exp.saturating_sub(now) > limit {
        return Err(AuthError::InvalidToken(format!("its lifetime exceeds the {max} s this registry issues tokens for")));
    }
    Ok(())
}

/// What a verified token costs the cache, in estimated bytes: its grants dominate.
#[derive(Debug, Clone, Copy)]
struct TokenWeight;

impl quick_cache::Weighter<[u8; 32], Arc<Verified>> for TokenWeight {
    fn weight(&self, _key: &[u8; 32], v: &Arc<Verified>) -> u64 {
        let grants: usize =
            v.access.iter().map(|g| 64 + g.kind.len() + g.name.len() + g.actions.iter().map(|a| 24 + a.len()).sum::<usize>()).sum();
        (128 + grants) as u64
    }
}
