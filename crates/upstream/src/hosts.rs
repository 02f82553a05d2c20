//! Where stagings may reach. A staging makes wharfage open connections to a host a client
//! names, from inside the operator's network: without a policy, a client could make it probe
//! internal services or read a cloud instance's metadata endpoint (and its credentials).
//!
//! - Link-local addresses (169.254.0.0/16, fe80::/10) and the AWS IPv6 metadata address
//!   (fd00:ec2::254) are refused, whether written literally, reached by a redirect or
//!   resolved from a name, unless an allow pattern names the host.
//! - `--upstream-deny` patterns refuse hosts; `--upstream-allow` patterns, when any are
//!   given, refuse every host that matches none.
//!
//! A pattern is `host[:port]` where the host may start with `*.` (any subdomain). Without a
//! port it matches every port.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::UpstreamError;

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
}

impl HostPolicy {
    /// A policy from allow and deny patterns; the error names a malformed pattern.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, UpstreamError> {
        Ok(HostPolicy {
            allow: allow.iter().map(|p| Pattern::parse(p)).collect::<Result<_, _>>()?,
            deny: deny.iter().map(|p| Pattern::parse(p)).collect::<Result<_, _>>()?,
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

    /// Whether a redirect may go to `host` (as in a URL): any host but an internal address
    /// not explicitly allowed. Allow and deny lists apply to the registries named in
    /// stagings, not to the storage hosts they redirect blob downloads to.
    pub(crate) fn redirect_allowed(&self, host: &str) -> bool {
        let ip = host.parse::<IpAddr>().ok().or_else(|| bracketed_v6(host).map(IpAddr::V6));
        !ip.is_some_and(is_internal) || self.explicitly_allowed(host)
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
/// metadata address; IPv4 addresses mapped into IPv6 are judged as IPv4.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
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
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.explicitly_allowed(&host);
            let usable: Vec<SocketAddr> = addrs.iter().copied().filter(|a| allowed || !is_internal(a.ip())).collect();
            if usable.is_empty() && !addrs.is_empty() {
                let msg = format!("{host} resolves only to link-local or cloud metadata addresses, which stagings may not reach");
                return Err(msg.into());
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
