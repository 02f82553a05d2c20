//! Run metadata from an image config: what a platform needs to start the image
//! (entrypoint, command, user, working directory, environment, exposed ports).

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// An exposed port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Port {
    pub port: u16,
    pub protocol: String,
}

/// How to run an image, from its config's `config` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMetadata {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub env: Vec<String>,
    /// Sorted by port, then protocol.
    pub ports: Vec<Port>,
    /// The lowest exposed port (what a platform routes to by default), if any.
    pub lowest_port: Option<u16>,
}

#[derive(Deserialize)]
struct ImageConfig {
    config: Option<ExecConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ExecConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    env: Option<Vec<String>>,
    exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl RunMetadata {
    /// Reads the metadata from image config bytes. Ports that do not parse (`"x/tcp"`) are an
    /// error naming the port, not silently dropped.
    pub fn from_config(bytes: &[u8]) -> Result<Self, ParseError> {
        let cfg: ImageConfig = serde_json::from_slice(bytes).map_err(|e| ParseError::Manifest(format!("image config: {e}")))?;
        let c = cfg.config.unwrap_or_default();
        let mut ports = Vec::new();
        for key in c.exposed_ports.unwrap_or_default().keys() {
            let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
            let port: u16 =
                port.parse().map_err(|_| ParseError::Manifest(format!("image config: exposed port {key:?} is not <port>[/<protocol>]")))?;
            ports.push(Port { port, protocol: protocol.to_ascii_lowercase() });
        }
        ports.sort();
        ports.dedup();
        Ok(RunMetadata {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            lowest_port: ports.iter().map(|p| p.port).min(),
            ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config() {
        let cfg = br#"{"architecture":"amd64","config":{"Entrypoint":["/bin/app"],"Cmd":["serve"],"User":"1000",
            "WorkingDir":"/srv","Env":["A=1"],"ExposedPorts":{"8080/tcp":{},"53/udp":{},"7070":{}}}}"#;
        let m = RunMetadata::from_config(cfg).unwrap();
        assert_eq!(m.entrypoint, ["/bin/app"]);
        assert_eq!(m.cmd, ["serve"]);
        assert_eq!(m.user, "1000");
        assert_eq!(m.working_dir, "/srv");
        assert_eq!(m.env, ["A=1"]);
        let ports: Vec<(u16, &str)> = m.ports.iter().map(|p| (p.port, p.protocol.as_str())).collect();
        assert_eq!(ports, [(53, "udp"), (7070, "tcp"), (8080, "tcp")]);
        assert_eq!(m.lowest_port, Some(53));
    }

    #[test]
    fn empty_and_bad_configs() {
        assert_eq!(RunMetadata::from_config(b"{}").unwrap(), RunMetadata::default());
        assert!(RunMetadata::from_config(br#"{"config":{"ExposedPorts":{"http/tcp":{}}}}"#).is_err());
        assert!(RunMetadata::from_config(b"[").is_err());
    }
}
