//! `WWW-Authenticate` challenges and the Docker token flow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Bearer realm="…",service="…",scope="…"`
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
    /// `Basic realm="…"`
    Basic,
}

/// Parses a challenge; `None` when the scheme is unknown or the header is malformed.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    let params = parse_params(rest)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key=value` or `key="quoted, value"` pairs separated by commas.
fn parse_params(s: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if chars.next() != Some('=') {
            return None;
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next()? {
                    '\\' => v.push(chars.next()?),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string()
        };
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
}

/// A token endpoint's answer (`token` or `access_token`, with an optional lifetime).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub token: String,
    pub valid_until: Instant,
}

impl TokenResponse {
    /// The token, valid until shortly before its stated expiry (60 s when unstated, as the
    /// token spec says).
    pub(crate) fn into_cached(self) -> Option<CachedToken> {
        let token = self.token.filter(|t| !t.is_empty()).or(self.access_token)?;
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(10));
        Some(CachedToken { token, valid_until: Instant::now() + lifetime - Duration::from_secs(5) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/redis:pull,push".into()),
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge("bearer realm=http://x/t"),
            Some(Challenge::Bearer { realm: "http://x/t".into(), service: None, scope: None })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "realm is required");
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn token_fields() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_cached().unwrap().token, "a");
        let t: TokenResponse = serde_json::from_str(r#"{"token":"b","access_token":"a"}"#).unwrap();
        assert_eq!(t.into_cached().unwrap().token, "b");
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert!(t.into_cached().is_none());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,120}") {
            let _ = parse_challenge(&s);
        }

        #[test]
        fn quoted_values_round_trip(realm in "[a-zA-Z0-9:/._, -]{1,30}", scope in "[a-z0-9:/,._-]{1,30}") {
            let h = format!("Bearer realm=\"{realm}\",scope=\"{scope}\"");
            prop_assert_eq!(parse_challenge(&h), Some(Challenge::Bearer { realm, service: None, scope: Some(scope) }));
        }
    }
}
