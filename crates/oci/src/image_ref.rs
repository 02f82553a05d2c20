//! Image references as users write them (`redis`, `ghcr.io/o/app:v1`, `host:5000/x@sha256:…`),
//! normalised the way docker does: `redis` is `docker.io/library/redis:latest`.

use std::fmt;

use crate::{Digest, ParseError, Reference, RepoName, Tag};

/// The registry docker means when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";

/// A fully qualified image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` as written (lowercased), `docker.io` for Docker Hub.
    pub registry: String,
    pub repository: RepoName,
    /// The tag or digest; a reference with both keeps the digest (it pins the content).
    pub reference: Reference,
}

impl ImageRef {
    /// Parses and normalises an image reference.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::ImageRef { input: input.to_string(), reason };
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.contains("://") {
            return Err(bad("write the reference without a URL scheme (host/name:tag)"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        // A tag is after the last ':' of the last path component (a ':' earlier is a port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(Tag::parse(&rest[last_slash + i + 1..])?)),
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_ascii_lowercase(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry.is_empty() {
            return Err(bad("empty registry host"));
        }
        let host = registry_name(&registry);
        if looks_like_ipv4(host) && !is_dotted_decimal(host) {
            return Err(bad("the registry host reads as an IPv4 address but is not four decimal numbers from 0 to 255 without leading zeros (octal, hexadecimal and shortened forms are refused: URL libraries read them as other addresses)"));
        }
        if !is_registry_host(&registry) {
            return Err(bad("the registry must be host[:port] (a DNS name, an IPv4 address or a bracketed IPv6 address, and a port from 1 to 65535), without user, path, query or fragment"));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" { DOCKER_HUB.to_string() } else { registry };
        let path = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
        let repository = RepoName::parse(&path)?;
        let reference = match (digest, tag) {
            (Some(d), _) => Reference::Digest(d),
            (None, Some(t)) => Reference::Tag(t),
            (None, None) => Reference::Tag(Tag::parse("latest")?),
        };
        Ok(ImageRef { registry, repository, reference })
    }

    /// The host to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

/// Whether `s` is `host[:port]` and nothing else: the registry part of a reference becomes
/// the authority of upstream URLs, so anything more (`?`, `#`, `@`, `%`) is refused.
pub fn is_registry_host(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else { return false };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => (
                "",
                Some(match p.strip_prefix(':') {
                    Some(p) => p,
                    None => return false,
                }),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port_ok = port
        .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = s.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    let ipv4_ok = s.starts_with('[') || !looks_like_ipv4(host) || is_dotted_decimal(host);
    port_ok && host_ok && ipv4_ok
}

/// The host of a `host[:port]` that is not a bracketed IPv6 address.
fn registry_name(s: &str) -> &str {
    if s.starts_with('[') {
        return "";
    }
    s.rsplit_once(':').map_or(s, |(h, _)| h)
}

/// Whether a URL parser reads `host` as an IPv4 address: the WHATWG URL standard, which the
/// `url` crate and browsers follow, does so when the last label is a number (decimal, or hex
/// after `0x`), and accepts octal (`0251`), hexadecimal (`0xa9`) and fewer than four parts
/// (`169.254.43518`). Such a host names 169.254.169.254 without looking like it, so a check
/// of the string would be spelled around; only canonical dotted decimal is let through.
fn looks_like_ipv4(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Four decimal numbers from 0 to 255, without leading zeros: the one spelling every parser
/// reads the same way.
fn is_dotted_decimal(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u8>().is_ok()
        })
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "{}/{}:{}", self.registry, self.repository, t),
            Reference::Digest(d) => write!(f, "{}/{}@{}", self.registry, self.repository, d),
        }
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An application id, as the platform names its apps (a Cloud Foundry GUID, a Kubernetes
/// namespace/name...). It becomes the repository `apps/<app-id>`, so it follows a repository
/// component's grammar: lowercase letters and digits, separated by `.`, `_`, `__` or `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    /// Parses an app id.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.contains('/') || input.len() > 128 || RepoName::parse(input).is_err() {
            return Err(ParseError::AppId { input: input.to_string() });
        }
        Ok(AppId(input.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repository the app's images live in.
    pub fn repository(&self) -> RepoName {
        // Invariant: an AppId is a valid single name component, so `apps/<id>` is a valid name.
        RepoName::parse(&format!("apps/{}", self.0)).unwrap_or_else(|_| unreachable!("AppId is a valid component"))
    }

    /// The app whose pins a repository holds (`apps/<app-id>`), if it is one.
    pub fn of_repository(repo: &RepoName) -> Option<AppId> {
        repo.as_str().strip_prefix("apps/").and_then(|a| AppId::parse(a).ok())
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for AppId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AppId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("redis"), "docker.io/library/redis:latest");
        assert_eq!(norm("redis:7"), "docker.io/library/redis:7");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(norm("index.docker.io/library/redis"), "docker.io/library/redis:latest");
        assert_eq!(norm("ghcr.io/o/app:v1"), "ghcr.io/o/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:t"), "127.0.0.1:5000/a/b:t");
        assert_eq!(norm("Host.Example:5000/a"), "host.example:5000/a:latest");
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(norm(&format!("127.0.0.1:5000/a:t@{d}")), format!("127.0.0.1:5000/a@{d}"));
        assert_eq!(ImageRef::parse("redis").unwrap().api_host(), "registry-1.docker.io");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "UPPER/case", "https://x.io/a", "a:b:c", "x.io/a@sha256:zz", "x.io/", "a//b", "x.io/a:"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn registry_must_be_host_and_port_only() {
        for bad in [
            "127.0.0.1:1?x=/y:z",
            "127.0.0.1:1#f/y",
            "user@x.io/a:b",
            "x.io:0/a",
            "x.io:65536/a",
            "x.io:/a",
            "[::1/a",
            "[zz]:5/a",
            "x_y.io/a",
            "a%2e.io/b",
            "-a.io/b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(ImageRef::parse("[::1]:5000/a:t").unwrap().registry, "[::1]:5000");
        assert_eq!(ImageRef::parse("localhost:5000/a").unwrap().registry, "localhost:5000");
        assert_eq!(ImageRef::parse("reg-1.example.com/a/b").unwrap().registry, "reg-1.example.com");
        assert!(is_registry_host("10.0.0.1:65535"));
    }

    #[test]
    fn ipv4_hosts_must_be_dotted_decimal() {
        // Each of these is 169.254.169.254 to a URL parser.
        for host in
            ["0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "169.0376.0251.0376", "169.254.43518", "0XA9.254.169.254", "2852039166:443"]
        {
            let e = ImageRef::parse(&format!("{host}/x:1")).unwrap_err();
            assert!(e.to_string().contains(host) && e.to_string().contains("IPv4"), "{e}");
            assert!(!is_registry_host(host), "{host}");
        }
        for host in ["127.0.0.01", "1.2.3.4.5", "256.1.1.1", "example.0x1", "a.123"] {
            assert!(ImageRef::parse(&format!("{host}/x:1")).is_err(), "{host} accepted");
        }
        for host in ["10.0.0.1", "0.0.0.0", "255.255.255.255", "169.254.169.254", "a1.example", "0x.example.com", "1.example.com"] {
            assert!(is_registry_host(host), "{host} refused");
            assert_eq!(ImageRef::parse(&format!("{host}/x:1")).unwrap().registry, host);
        }
    }

    #[test]
    fn app_ids() {
        AppId::parse("7f3c2a10-aa2e-4e2c-9b1c-5f0f8b2b9a11").unwrap();
        assert_eq!(AppId::parse("my-app").unwrap().repository().as_str(), "apps/my-app");
        let app = AppId::parse("my-app").unwrap();
        assert_eq!(AppId::of_repository(&app.repository()), Some(app));
        assert_eq!(AppId::of_repository(&RepoName::parse("apps/a/b").unwrap()), None);
        assert_eq!(AppId::of_repository(&RepoName::parse("tools/a").unwrap()), None);
        for bad in ["", "a/b", "UPPER", "-x", "x..y", &"a".repeat(129)] {
            assert!(AppId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,100}") {
            let _ = ImageRef::parse(&s);
            let _ = AppId::parse(&s);
        }

        #[test]
        fn display_reparses(s in "([a-z0-9]{1,5}\\.[a-z]{2,3}(:[1-9][0-9]{1,3})?/)?[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,10})?") {
            let r = ImageRef::parse(&s).unwrap();
            prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
        }
    }
}
