//! Access control and TLS settings, checked together: the safe default (no access control
//! only on loopback, unless `--anonymous` says so) needs the listen address and all of them.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{parse_duration, positive};
use crate::CliError;

/// A listen address, for the loopback check.
pub(crate) struct ListenAddr<'a>(pub &'a str);

impl ListenAddr<'_> {
    /// Whether only this machine can connect: a loopback IP or `localhost`.
    pub(crate) fn is_loopback(&self) -> bool {
        if let Ok(a) = self.0.parse::<SocketAddr>() {
            return a.ip().is_loopback();
        }
        self.0.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
    }
}

/// The raw settings.
pub(crate) struct AccessArgs<'a> {
    pub listen: ListenAddr<'a>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub htpasswd: Option<PathBuf>,
    pub admins: Vec<String>,
    pub stagers: Vec<String>,
    pub rules: Vec<auth::Rule>,
    pub token_ttl: Option<String>,
    pub token_key: Option<PathBuf>,
    pub public_url: Option<String>,
    pub anonymous: bool,
}

/// Resolved access control and TLS.
#[derive(Debug)]
pub(crate) struct AccessConfig {
    /// Certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `None`: an open registry.
    pub auth: Option<auth::AuthConfig>,
    pub public_url: Option<String>,
}

impl AccessConfig {
    pub(crate) fn resolve(a: AccessArgs<'_>, retain: usize) -> Result<AccessConfig, CliError> {
        let err = |m: &str| Err(CliError::Config(m.to_string()));
        let tls = match (a.tls_cert, a.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return err("--tls-cert and --tls-key go together"),
        };
        let public_url = match a.public_url {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(u.trim_end_matches('/').to_string()),
            Some(u) => return Err(CliError::Config(format!("public_url {u:?}: expected http(s)://host[:port]"))),
            None => None,
        };
        let Some(htpasswd) = a.htpasswd else {
            if !a.admins.is_empty() || !a.stagers.is_empty() || !a.rules.is_empty() || a.token_key.is_some() {
                return err("admins, stagers, [[access]] rules and token_key need --htpasswd (the users they name)");
            }
            if !a.anonymous && !a.listen.is_loopback() {
                return Err(CliError::Config(format!(
                    "refusing to serve {} without access control: set --htpasswd FILE (users, see docs/auth.md), \
                     or --anonymous to run an open registry anyone who reaches it may use",
                    a.listen.0
                )));
            }
            return Ok(AccessConfig { tls, auth: None, public_url });
        };
        if a.anonymous {
            return err(
                "--anonymous and --htpasswd exclude each other: with users, grant anonymous pulls by a rule with users = [\"anonymous\"]",
            );
        }
        let token_ttl = match a.token_ttl {
            Some(v) => positive("token_ttl", parse_duration("token_ttl", &v)?)?,
            None => std::time::Duration::from_secs(300),
        };
        if tls.is_none() && !a.listen.is_loopback() {
            tracing::warn!("access control without --tls-cert: passwords and tokens cross the network in the clear unless a proxy in front terminates TLS");
        }
        let service = public_url.as_deref().map_or_else(|| "wharfage".to_string(), |u| server::access::url_host(u).to_string());
        let auth = auth::AuthConfig {
            htpasswd,
            admins: a.admins,
            stagers: a.stagers,
            rules: a.rules,
            token_ttl,
            token_key: a.token_key,
            service,
            retain,
            failed_logins_per_minute: 10,
        };
        Ok(AccessConfig { tls, auth: Some(auth), public_url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str) -> AccessArgs<'_> {
        AccessArgs {
            listen: ListenAddr(listen),
            tls_cert: None,
            tls_key: None,
            htpasswd: None,
            admins: vec![],
            stagers: vec![],
            rules: vec![],
            token_ttl: None,
            token_key: None,
            public_url: None,
            anonymous: false,
        }
    }

    #[test]
    fn open_only_on_loopback_unless_anonymous() {
        assert!(AccessConfig::resolve(args("127.0.0.1:5000"), 2).unwrap().auth.is_none());
        assert!(AccessConfig::resolve(args("[::1]:5000"), 2).is_ok());
        assert!(AccessConfig::resolve(args("localhost:5000"), 2).is_ok());
        let e = AccessConfig::resolve(args("0.0.0.0:5000"), 2).unwrap_err().to_string();
        assert!(e.contains("--htpasswd") && e.contains("--anonymous"), "{e}");
        assert!(AccessConfig::resolve(AccessArgs { anonymous: true, ..args("0.0.0.0:5000") }, 2).is_ok());
        let both = AccessArgs { anonymous: true, htpasswd: Some("h".into()), ..args("0.0.0.0:5000") };
        assert!(AccessConfig::resolve(both, 2).is_err());
        let half_tls = AccessArgs { tls_cert: Some("c".into()), ..args("127.0.0.1:5000") };
        assert!(AccessConfig::resolve(half_tls, 2).is_err());
        let admins_alone = AccessArgs { admins: vec!["root".into()], ..args("127.0.0.1:5000") };
        assert!(AccessConfig::resolve(admins_alone, 2).unwrap_err().to_string().contains("--htpasswd"));
    }
}
