//! Users from an Apache htpasswd file with bcrypt entries, the format distribution and
//! Harbor read. Other hash kinds (MD5-crypt, SHA-1, crypt, plain) are refused at start with
//! the line named: they are weak, and accepting them silently would keep them in use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::{AuthError, Principal};

/// Dummy hashes made so far, by cost (one bcrypt hash each, made once per process).
static DUMMY_HASHES: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// A bcrypt hash of a password nobody has, at `cost`: verified against when the user is
/// unknown, so that an unknown name costs as much time and CPU as a wrong password and the
/// answer's timing does not tell which names exist.
fn dummy_hash(cost: u32) -> String {
    let mut made = DUMMY_HASHES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, h)) = made.iter().find(|(c, _)| *c == cost) {
        return h.clone();
    }
    let h = bcrypt::hash("no such user", cost).unwrap_or_default();
    made.push((cost, h.clone()));
    h
}

/// The cost of a bcrypt hash (`$2y$NN$...`).
fn cost_of(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

/// The users of an htpasswd file.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Verified against for unknown users: the cost most of the file's hashes have.
    dummy: String,
    /// bcrypt verifications done, for unknown and known users alike.
    verifications: Arc<AtomicU64>,
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
            if cost_of(hash).is_none_or(|c| !(4..=31).contains(&c)) {
                return Err(format!("line {n}: user {user:?} has a bcrypt hash with an unreadable cost"));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("line {n}: user {user:?} appears twice"));
            }
        }
        // The most common cost (ties: the higher), so that an unknown name takes as long as
        // a typical user's wrong password.
        let mut costs: HashMap<u32, usize> = HashMap::new();
        for h in users.values() {
            *costs.entry(cost_of(h).unwrap_or(bcrypt::DEFAULT_COST)).or_default() += 1;
        }
        let cost = costs.into_iter().max_by_key(|(c, n)| (*n, *c)).map_or(bcrypt::DEFAULT_COST, |(c, _)| c);
        Ok(Htpasswd { users, dummy: dummy_hash(cost), verifications: Arc::default() })
    }

    /// Checks a password (slow by design: bcrypt; call off the async threads).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, self.dummy.as_str());
                false
            }
        }
    }

    /// bcrypt verifications done so far (tests and diagnostics).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The bcrypt cost an unknown user's check runs at.
    pub fn dummy_cost(&self) -> Option<u32> {
        cost_of(&self.dummy)
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
    fn unknown_users_cost_a_bcrypt_check_at_the_users_cost() {
        let text =
            format!("a:{}\nb:{}\nc:{}\n", bcrypt::hash("pw", 5).unwrap(), bcrypt::hash("pw", 5).unwrap(), bcrypt::hash("pw", 4).unwrap());
        let h = Htpasswd::parse(&text).unwrap();
        assert_eq!(h.dummy_cost(), Some(5), "the most common cost of the file");
        assert!(bcrypt::verify("anything", &h.dummy).is_ok());
        let before = h.verifications();
        assert!(!h.verify("nobody", "pw"));
        assert_eq!(h.verifications(), before + 1, "an unknown user is checked against a hash too");
        assert!(!h.verify("a", "wrong"));
        assert_eq!(h.verifications(), before + 2);
    }
}
