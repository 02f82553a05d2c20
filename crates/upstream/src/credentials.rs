//! Credentials for one staging: zeroised on drop, redacted in every Debug and Display.

use std::fmt;

use zeroize::Zeroizing;

/// Registry credentials given for one staging.
#[derive(Clone)]
pub enum Credentials {
    /// Username and password (or a personal access token used as a password).
    Basic { username: Zeroizing<String>, password: Zeroizing<String> },
    /// An identity (refresh) token, as `docker login` stores for some registries; used as a
    /// bearer token directly where the registry has no OAuth2 token endpoint.
    Token(Zeroizing<String>),
}

impl Credentials {
    /// Username/password credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Basic { username: Zeroizing::new(username.into()), password: Zeroizing::new(password.into()) }
    }

    /// Identity-token credentials.
    pub fn token(token: impl Into<String>) -> Self {
        Credentials::Token(Zeroizing::new(token.into()))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Credentials::Basic({:?}, <redacted>)", username.as_str()),
            Credentials::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "user {}", username.as_str()),
            Credentials::Token(_) => f.write_str("an identity token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_secrets() {
        let c = Credentials::basic("alice", "s3cret-pw");
        let t = Credentials::token("tok-123456");
        for s in [format!("{c:?}"), format!("{c}"), format!("{t:?}"), format!("{t}")] {
            assert!(!s.contains("s3cret") && !s.contains("tok-123"), "{s}");
        }
    }
}
