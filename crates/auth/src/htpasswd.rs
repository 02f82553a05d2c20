//! Users from an Apache htpasswd file with bcrypt entries, the format distribution and
//! Harbor read. Other hash kinds (MD5-crypt, SHA-1, crypt, plain) are refused at start with
//! the line named: they are weak, and accepting them silently would keep them in use.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::{AuthError, Principal};

/// A bcrypt hash at the default cost, verified against when the user is unknown so an
/// unknown name takes as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| bcrypt::hash("no such user", bcrypt::DEFAULT_COST).unwrap_or_default());

/// The users of an htpasswd file.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Reads and checks the file; the error names the file and line.
    pub fn load(path: &Path) -> Result<Htpasswd, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Config(format!("htpasswd file {}: {e}", path.display())))?;
        Htpasswd::parse(&text).map_err(|e| AuthError::Config(format!("htpasswd file {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {n}: expected user:hash"))?;
            if user.is_empty() {
                return Err(format!("line {n}: empty user name"));
            }
            if Principal::parse_app_user(user).is_some() {
                return Err(format!("line {n}: user {user:?} has the form of a pull credential (<app>+<16 hex>); rename it"));
            }
            let bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60;
            if !bcrypt {
                let kind = match hash {
                    h if h.starts_with("$apr1$") => "MD5 (apr1)",
                    h if h.starts_with("{SHA}") => "SHA-1",
                    h if h.starts_with("$5$") || h.starts_with("$6$") => "SHA-crypt",
                    _ => "not bcrypt",
                };
                return Err(format!("line {n}: user {user:?} has a {kind} hash; only bcrypt is accepted (htpasswd -B)"));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("line {n}: user {user:?} appears twice"));
            }
        }
        Ok(Htpasswd { users })
    }

    /// Checks a password (slow by design: bcrypt; call off the async threads).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, DUMMY_HASH.as_str());
                false
            }
        }
    }

    /// A short fingerprint of the user's entry, put in refresh tokens: changing the password
    /// (or removing the user) ends the refresh tokens issued before.
    pub fn fingerprint(&self, user: &str) -> Option<String> {
        self.users.get(user).map(|h| hex::encode(&Sha256::digest(h.as_bytes())[..8]))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_only_and_lines_named() {
        let good = format!("# users\nci:{}\n", bcrypt::hash("pw", 4).unwrap());
        let h = Htpasswd::parse(&good).unwrap();
        assert!(h.verify("ci", "pw") && !h.verify("ci", "nope") && !h.verify("nobody", "pw"));
        assert!(h.fingerprint("ci").is_some() && h.fingerprint("nobody").is_none());
        let md5 = format!("{good}old:$apr1$x$y\n");
        let e = Htpasswd::parse(&md5).unwrap_err();
        assert!(e.contains("line 3") && e.contains("old") && e.contains("MD5"), "{e}");
        assert!(Htpasswd::parse("sha:{SHA}abc").unwrap_err().contains("SHA-1"));
        assert!(Htpasswd::parse("nocolon").unwrap_err().contains("line 1"));
        let fake = format!("shop+0123456789abcdef:{}", bcrypt::hash("pw", 4).unwrap());
        assert!(Htpasswd::parse(&fake).unwrap_err().contains("pull credential"));
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt() {
        assert!(bcrypt::verify("anything", DUMMY_HASH.as_str()).is_ok());
    }
}
