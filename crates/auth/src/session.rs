//! Operator console sessions: a token signed with the registry's token keys (the store's
//! keys, shared by every replica), so any replica accepts a session another one opened and
//! none keeps session state. A session names the user, a random id and a random CSRF secret
//! that forms must echo; it carries the user's htpasswd fingerprint, so changing a password
//! (or removing the user) ends the sessions opened with it. Logging out only clears the
//! cookie: a copied cookie stays valid until it expires ([`SESSION_TTL`]); there is no
//! revocation list, which would need shared state the replicas do not have.

use std::time::Duration;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::token::{now_secs, ISSUER};
use crate::{Auth, AuthError, Principal, Role};

/// How long a console session lasts (a working day).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A session's claims: the registry token's standard claims, the CSRF secret and the
/// fingerprint of the user's password entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    /// The session id.
    jti: String,
    csrf: String,
    fp: String,
}

/// A verified console session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The secret a form of this session must carry (hex).
    pub csrf: String,
    /// Unix seconds at which the session ends.
    pub exp: u64,
}

fn random_hex() -> Result<String, AuthError> {
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| AuthError::Config("no randomness".into()))?;
    Ok(hex::encode(b))
}

impl Auth {
    fn session_audience(&self) -> String {
        format!("{}/ui", self.service)
    }

    /// Opens a session for an htpasswd user who may use the console (an admin or a stager),
    /// after [`Auth::login`] checked the password. Returns the signed token and the session.
    pub fn open_session(&self, user: &str) -> Result<(String, Session), AuthError> {
        let p = Principal::User(user.to_string());
        let role = self.policy.role(&p);
        let fp = self.users().fingerprint(user);
        let (Some(fp), Role::Admin | Role::Stager) = (fp, role) else {
            return Err(AuthError::BadCredentials);
        };
        let now = now_secs();
        let claims = SessionClaims {
            iss: ISSUER.into(),
            sub: p.subject(),
            aud: self.session_audience(),
            exp: now + SESSION_TTL.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: random_hex()?,
            csrf: random_hex()?,
            fp,
        };
        let token = self.keys.sign(&claims)?;
        tracing::info!(target: "wharfage::audit", event = "console_login", user, "console session opened");
        Ok((token, Session { user: user.to_string(), role, csrf: claims.csrf, exp: claims.exp }))
    }

    /// Verifies a session token: signature, audience, expiry, and that the user still has
    /// the same password entry and a console role.
    pub async fn session(&self, token: &str) -> Result<Session, AuthError> {
        let claims: SessionClaims = self.keys.verify(token, &self.session_audience()).await?;
        let Principal::User(user) = Principal::from_subject(&claims.sub) else {
            return Err(AuthError::InvalidToken("a session names a user".into()));
        };
        if self.users().fingerprint(&user).as_deref() != Some(claims.fp.as_str()) {
            return Err(AuthError::InvalidToken("the user's password changed or the user is gone".into()));
        }
        let role = self.policy.role(&Principal::User(user.clone()));
        if role == Role::None {
            return Err(AuthError::InvalidToken("the user may no longer use the console".into()));
        }
        Ok(Session { user, role, csrf: claims.csrf, exp: claims.exp })
    }
}
