//! Where stagings may reach. A staging makes wharfage open connections to a host a client
//! names, from inside the operator's network: without a policy, a client could make it probe
//! internal services or read a cloud instance's metadata endpoint (and its credentials).
//!
//! - Link-local addresses (169.254.0.0/16, fe80::/10) and the AWS IPv6 metadata address
//!   (fd00:ec2::254) are refused, whether written literally, reached by a redirect or
//!   resolved from a name, unless an allow pattern names the host.
//! - `--upstream-deny` patterns refuse hosts, also as token realms and redirect targets;
//!   `--upstream-allow` patterns, when any are given, refuse every registry host that
//!   matches none (not the token services and storage hosts registries send clients to).
//!
//! A pattern is `host[:port]` where the host may start with `*.` (any subdomain). Without a
//! port it matches every port.
//!
//! The address refusal is enforced where it cannot be spelled around: on what the client is
//! about to connect to, not on the string a client wrote. URL parsers read `0xa9.0xfe.0xa9.0xfe`,
//! `0251.0376.0251.0376` or `169.254.43518` as 169.254.169.254, so every request's URL is
//! checked after parsing ([`HostPolicy::check_target`], through the client's only way to
//! build a request, `client::Http`), every redirect's likewise (`config::redirect_policy`),
//! and every address a name resolves to ([`FilteringResolver`]), all before a connection is
//! opened. A refusal raised inside reqwest travels as a [`TargetRefused`] and is recognised
//! by type, so it is reported as a refusal and never retried.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

use crate::UpstreamError;

/// A connection the policy refused, found before it was opened. Its own type so that it can
/// be told apart from a network error after reqwest has wrapped it (redirects, resolving).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TargetRefused(String);

impl TargetRefused {
    /// The refusal somewhere in an error's chain of causes.
    pub(crate) fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TargetRefused> {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(r) = c.downcast_ref::<TargetRefused>() {
                return Some(r);
            }
            cause = c.source();
        }
        None
    }
}

/// One `host[:port]` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Lowercase; `*.example.com` matches subdomains of example.com.
    host: String,
    port: Option<u16>,
}

impl Pattern {
    fn parse(s: &str) -> Result<Self, UpstreamError> {
        let bad = |why: &str| UpstreamError::Config(format!("upstream host pattern {s:?}: {why}"));
        let s = s.trim().to_ascii_lowercase();
        let (host, port) = split_port(&s).map_err(|e| bad(&e))?;
        let name = host.strip_prefix("*.").unwrap_or(host);
        if name.is_empty() || !(is_dns_name(name) || name.parse::<IpAddr>().is_ok() || bracketed_v6(name).is_some()) {
            return Err(bad("expected host[:port], where host may start with *."));
        }
        Ok(Pattern { host: host.to_string(), port })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.'),
            None => self.host == host,
        }
    }
}

/// Which upstream hosts stagings may reach.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
    /// Names answered from this table instead of DNS (tests: a name that resolves to a
    /// link-local address without touching the machine's resolver).
    #[cfg(test)]
    pub(crate) fixed: Vec<(String, IpAddr)>,
}

impl HostPolicy {
    /// A policy from allow and deny patterns; the error names a malformed pattern.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, UpstreamError> {
        Ok(HostPolicy {
            allow: allow.iter().map(|p| Pattern::parse(p)).collect::<Result<_, _>>()?,
            deny: deny.iter().map(|p| Pattern::parse(p)).collect::<Result<_, _>>()?,
            #[cfg(test)]
            fixed: Vec::new(),
        })
    }

    /// Checks a registry's `host[:port]` before anything is sent to it.
    pub fn check(&self, registry: &str) -> Result<(), UpstreamError> {
        let refused = |reason: String| UpstreamError::Refused { registry: registry.to_string(), reason };
        let lower = registry.to_ascii_lowercase();
        let (host, port) = split_port(&lower).map_err(refused)?;
        if self.deny.iter().any(|p| p.matches(host, port)) {
            return Err(refused("the registry's --upstream-deny list names this host".into()));
        }
        let allowed = self.allow.iter().any(|p| p.matches(host, port));
        if !self.allow.is_empty() && !allowed {
            return Err(refused("the host is not on the registry's --upstream-allow list".into()));
        }
        let ip = host.parse::<IpAddr>().ok().or_else(|| bracketed_v6(host).map(IpAddr::V6));
        if !allowed && ip.is_some_and(is_internal) {
            return Err(refused("link-local and cloud metadata addresses are not reachable for stagings".into()));
        }
        Ok(())
    }

    /// Whether a host (as in a URL, without port) was explicitly allowed, which lifts the
    /// refusal of link-local and metadata addresses for it.
    fn explicitly_allowed(&self, host: &str) -> bool {
        self.allow.iter().any(|p| p.matches(host, p.port))
    }

    /// Checks the host of a parsed URL the client is about to send a request to (the first
    /// request, a token realm, or a redirect): an address is judged as the URL parser read it,
    /// so no spelling of a refused address gets through; a name is judged address by address
    /// when it is resolved ([`FilteringResolver`]). The deny list applies here too: a host
    /// the operator refused is not reached through a realm or a redirect either. The allow
    /// list applies only to the registries named in stagings ([`HostPolicy::check`]), not to
    /// the token services and storage hosts they send clients to.
    pub fn check_target(&self, url: &Url) -> Result<(), UpstreamError> {
        self.target(url).map_err(|r| UpstreamError::Refused { registry: url.host_str().unwrap_or("").to_string(), reason: r.0 })
    }

    /// [`HostPolicy::check_target`], with the error reqwest's hooks carry.
    pub(crate) fn target(&self, url: &Url) -> Result<(), TargetRefused> {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        if self.deny.iter().any(|p| p.matches(&host, url.port_or_known_default())) {
            return Err(TargetRefused(format!("{host} is on the registry's --upstream-deny list")));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(TargetRefused(format!("{url} names no host"))),
        };
        // host_str is the parser's canonical form (dotted decimal, bracketed IPv6), which is
        // how allow patterns are written.
        let host = url.host_str().unwrap_or("");
        if is_internal(ip) && !self.explicitly_allowed(host) {
            return Err(TargetRefused(format!("{host} is a link-local or cloud metadata address, which stagings may not reach")));
        }
        Ok(())
    }
}

/// Splits `host[:port]` (IPv6 in brackets); the host is returned as written.
fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or("unclosed [ in an IPv6 address")?;
        match &s[end + 1..] {
            "" => (&s[..=end], None),
            rest => (&s[..=end], Some(rest.strip_prefix(':').ok_or("expected :port after ]")?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("bad port {p:?}"))?),
        None => None,
    };
    Ok((host, port))
}

fn bracketed_v6(host: &str) -> Option<Ipv6Addr> {
    host.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Link-local (which holds the cloud metadata endpoint 169.254.169.254) and the AWS IPv6
/// metadata address; IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`), and the deprecated
/// IPv4-compatible ones (`::a.b.c.d`), are judged as IPv4.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        },
    }
}

/// Resolves names for the upstream client and drops internal addresses, so a name that
/// resolves (or is rebound) to the metadata endpoint is refused too.
pub(crate) struct FilteringResolver {
    pub(crate) policy: Arc<HostPolicy>,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            #[cfg(test)]
            let fixed: Vec<SocketAddr> = policy.fixed.iter().filter(|(n, _)| *n == host).map(|(_, ip)| SocketAddr::new(*ip, 0)).collect();
            #[cfg(not(test))]
            let fixed: Vec<SocketAddr> = Vec::new();
            let addrs: Vec<SocketAddr> =
                if fixed.is_empty() { tokio::net::lookup_host((host.as_str(), 0)).await?.collect() } else { fixed };
            let allowed = policy.explicitly_allowed(&host);
            let usable: Vec<SocketAddr> = addrs.iter().copied().filter(|a| allowed || !is_internal(a.ip())).collect();
            if usable.is_empty() && !addrs.is_empty() {
                let msg = format!("{host} resolves only to link-local or cloud metadata addresses, which stagings may not reach");
                return Err(Box::new(TargetRefused(msg)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let out: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> HostPolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        HostPolicy::new(&s(allow), &s(deny)).unwrap()
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_unless_allowed() {
        let open = policy(&[], &[]);
        for host in ["169.254.169.254", "169.254.1.1:80", "[fe80::1]:5000", "[fd00:ec2::254]", "[::ffff:169.254.169.254]"] {
            assert!(matches!(open.check(host), Err(UpstreamError::Refused { .. })), "{host}");
        }
        for host in ["127.0.0.1:5000", "10.0.0.1", "registry.example.com", "[::1]:5000", "docker.io"] {
            open.check(host).unwrap();
        }
        policy(&["169.254.10.10"], &[]).check("169.254.10.10:5000").unwrap();
    }

    /// Every spelling a URL parser turns into the metadata address is refused on the parsed
    /// URL, which is what the client connects to; the same hosts as names are judged when
    /// resolved instead.
    #[test]
    fn every_spelling_of_the_metadata_address_is_refused_after_parsing() {
        let open = policy(&[], &[]);
        for spelling in [
            "169.254.169.254",
            "0251.0376.0251.0376",
            "0xa9.0xfe.0xa9.0xfe",
            "169.0376.0251.0376",
            "169.254.43518",
            "2852039166",
            "0XA9FEA9FE",
            "[::ffff:169.254.169.254]",
            "[0:0:0:0:0:ffff:a9fe:a9fe]",
            "[::a9fe:a9fe]",
            "[fd00:ec2::254]",
        ] {
            let url = Url::parse(&format!("https://{spelling}/v2/x/manifests/1")).unwrap();
            let e = open.check_target(&url).unwrap_err();
            assert!(matches!(e, UpstreamError::Refused { .. }) && e.to_string().contains("metadata"), "{spelling}: {e}");
        }
        for fine in [
            "https://127.0.0.1:5000/v2/",
            "https://0x7f.1:5000/v2/",
            "https://[::1]/v2/",
            "https://registry.example.com/v2/",
            "https://10.0.0.1/v2/",
        ] {
            open.check_target(&Url::parse(fine).unwrap()).unwrap();
        }
        let allowed = policy(&["169.254.169.254"], &[]);
        allowed.check_target(&Url::parse("https://0xa9.0xfe.0xa9.0xfe:8443/x").unwrap()).unwrap();
    }

    #[test]
    fn refusals_are_found_through_the_errors_that_wrap_them() {
        #[derive(Debug, thiserror::Error)]
        #[error("connecting failed")]
        struct Wrapper(#[source] Box<dyn std::error::Error + Send + Sync>);
        let wrapped = Wrapper(Box::new(TargetRefused("no".into())));
        assert_eq!(TargetRefused::find(&wrapped).map(|r| r.0.as_str()), Some("no"));
        assert!(TargetRefused::find(&std::io::Error::other("x")).is_none());
    }

    #[test]
    fn allow_and_deny_patterns() {
        let p = policy(&["*.example.com", "registry:5000"], &["bad.example.com"]);
        p.check("a.example.com").unwrap();
        p.check("a.b.example.com:443").unwrap();
        p.check("registry:5000").unwrap();
        for host in ["example.com", "registry:5001", "registry", "bad.example.com", "evilexample.com", "other.org"] {
            let e = p.check(host).unwrap_err();
            assert!(e.to_string().contains(host), "{e}");
        }
        let deny_only = policy(&[], &["*.internal"]);
        assert!(deny_only.check("db.internal:5432").is_err());
        deny_only.check("ghcr.io").unwrap();
    }

    #[test]
    fn malformed_patterns_are_named() {
        for bad in ["", "a b", "host:x", "host:0", "[::1", "a/b"] {
            let e = HostPolicy::new(&[bad.to_string()], &[]).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
