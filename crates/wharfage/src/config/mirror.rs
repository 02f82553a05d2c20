//! The pull-through mirrors: `[[mirror]]` tables in the TOML file, and `--mirror
//! REGISTRY[=URL]` for the simple case. Upstream passwords come from a file or a variable,
//! never from the file itself, and live only in memory.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{parse_duration, parse_size};
use crate::CliError;

/// One `[[mirror]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MirrorTable {
    /// The name engines use: `docker.io`, `ghcr.io`, `registry.example.com:5000`.
    registry: String,
    /// Where to fetch; `https://<registry>` by default (Docker Hub's endpoint for docker.io).
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    /// How long a tag's resolution is trusted, e.g. `5m` (the default), `0s` to always ask.
    #[serde(default)]
    tag_ttl: Option<String>,
    /// Mirrored content not pulled for this long is collected, e.g. `30d` (the default).
    #[serde(default)]
    retention: Option<String>,
    /// Keep at most about this much mirrored content, e.g. `200GiB`; the least recently
    /// pulled images are collected first.
    #[serde(default)]
    max_size: Option<String>,
    /// Requests naming no registry (dockerd's `registry-mirrors`) go here.
    #[serde(default)]
    default: bool,
    /// Serve a stored tag when the upstream says it no longer exists (default true).
    #[serde(default)]
    stale_on_not_found: Option<bool>,
}

const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

fn default_url(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://registry-1.docker.io".into()
    } else {
        format!("https://{registry}")
    }
}

/// The mirrors of the flags (`REGISTRY[=URL]`) and the file's tables. A flag's `docker.io`
/// mirror is the default when no table names one.
pub(crate) fn resolve(flags: Vec<String>, tables: Vec<MirrorTable>) -> Result<Vec<server::mirror::MirrorConfig>, CliError> {
    let mut out = Vec::new();
    for t in tables {
        out.push(table(t)?);
    }
    let any_default = out.iter().any(|m| m.default);
    for f in flags {
        let (registry, url) = match f.split_once('=') {
            Some((r, u)) => (r.trim().to_ascii_lowercase(), u.trim().to_string()),
            None => (f.trim().to_ascii_lowercase(), default_url(f.trim())),
        };
        if registry.is_empty() || url.is_empty() {
            return Err(CliError::Config(format!("--mirror {f:?}: write REGISTRY=URL, e.g. docker.io=https://registry-1.docker.io")));
        }
        check_registry(&registry)?;
        out.push(server::mirror::MirrorConfig {
            default: registry == DOCKER_HUB && !any_default,
            registry,
            url,
            credentials: None,
            tag_ttl: DEFAULT_TAG_TTL,
            retention: DEFAULT_RETENTION,
            max_size: None,
            stale_on_not_found: true,
        });
    }
    for m in &out {
        server::mirror::upstream_host(&m.url).map_err(CliError::Config)?;
    }
    Ok(out)
}

fn check_registry(registry: &str) -> Result<(), CliError> {
    server::mirror::check_registry(registry).map_err(CliError::Config)
}

fn table(t: MirrorTable) -> Result<server::mirror::MirrorConfig, CliError> {
    let registry = t.registry.trim().to_ascii_lowercase();
    check_registry(&registry)?;
    let password = match (&t.password_file, &t.password_env) {
        (Some(_), Some(_)) => {
            return Err(CliError::Config(format!("mirror {registry}: give password_file or password_env, not both")));
        }
        (Some(path), None) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Config(format!("mirror {registry}: password_file {}: {e}", path.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        (None, Some(var)) => {
            Some(std::env::var(var).map_err(|_| CliError::Config(format!("mirror {registry}: password_env {var} is not set")))?)
        }
        (None, None) => None,
    };
    let credentials = match (t.username, password) {
        (Some(u), Some(p)) => Some(upstream::Credentials::basic(u, p)),
        (None, None) => None,
        (Some(_), None) => return Err(CliError::Config(format!("mirror {registry}: username without password_file or password_env"))),
        (None, Some(_)) => return Err(CliError::Config(format!("mirror {registry}: a password without username"))),
    };
    let tag_ttl = match t.tag_ttl {
        Some(v) => parse_duration(&format!("mirror {registry}: tag_ttl"), &v)?,
        None => DEFAULT_TAG_TTL,
    };
    let retention = match t.retention {
        Some(v) => parse_duration(&format!("mirror {registry}: retention"), &v)?,
        None => DEFAULT_RETENTION,
    };
    let max_size = match t.max_size {
        Some(v) => Some(parse_size(&format!("mirror {registry}: max_size"), &v)?),
        None => None,
    };
    Ok(server::mirror::MirrorConfig {
        retention,
        max_size,
        url: t.url.unwrap_or_else(|| default_url(&registry)),
        registry,
        credentials,
        tag_ttl,
        default: t.default,
        stale_on_not_found: t.stale_on_not_found.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        mirror: Vec<MirrorTable>,
    }

    fn tables(toml: &str) -> Vec<MirrorTable> {
        toml::from_str::<File>(toml).unwrap().mirror
    }

    fn refused(flags: &[&str], toml: &str) -> String {
        let flags = flags.iter().map(|s| s.to_string()).collect();
        let t = if toml.is_empty() { Vec::new() } else { tables(toml) };
        match resolve(flags, t) {
            Err(CliError::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn flags_and_tables_make_mirrors() {
        let m = resolve(vec!["docker.io".into(), "ghcr.io=https://ghcr.io".into()], Vec::new()).unwrap();
        assert_eq!((m[0].registry.as_str(), m[0].url.as_str(), m[0].default), ("docker.io", "https://registry-1.docker.io", true));
        assert_eq!((m[1].registry.as_str(), m[1].default, m[1].tag_ttl), ("ghcr.io", false, DEFAULT_TAG_TTL));
        let t = tables(
            "[[mirror]]\nregistry = \"r.example:5000\"\ntag_ttl = \"0s\"\nretention = \"2d\"\nmax_size = \"1GiB\"\ndefault = true\n",
        );
        let m = resolve(vec!["docker.io".into()], t).unwrap();
        assert_eq!(
            (m[0].tag_ttl, m[0].retention, m[0].max_size, m[0].default),
            (Duration::ZERO, Duration::from_secs(172_800), Some(1 << 30), true)
        );
        assert!(!m[1].default, "a table is the default already");
    }

    #[test]
    fn bad_mirrors_are_refused_naming_what_is_wrong() {
        assert!(refused(&["Docker.io/x=https://a"], "").contains("host[:port]"));
        assert!(refused(&["docker.io=ftp://a"], "").contains("https or http"));
        assert!(refused(&["docker.io=https://user:pw@a"], "").contains("credentials"));
        let both = "[[mirror]]\nregistry = \"a.io\"\nusername = \"u\"\npassword_file = \"/x\"\npassword_env = \"Y\"\n";
        assert!(refused(&[], both).contains("not both"));
        assert!(refused(&[], "[[mirror]]\nregistry = \"a.io\"\nusername = \"u\"\n").contains("username without"));
        assert!(refused(&[], "[[mirror]]\nregistry = \"a.io\"\npassword_env = \"WHARFAGE_TEST_UNSET_VAR\"\n").contains("is not set"));
        let unknown = toml::from_str::<File>("[[mirror]]\nregistry = \"a.io\"\nbogus = 1\n").err().expect("an unknown key is refused");
        assert!(unknown.to_string().contains("bogus"), "{unknown}");
    }
}
