//! Configuration: command-line flags, `WHARFAGE_*` environment variables and an optional TOML
//! file, in that order of precedence, over defaults that run on one machine with no file.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::CliError;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `wharfage serve` flags. Every flag can also come from the environment or the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "WHARFAGE_LISTEN")]
    listen: Option<String>,
    /// Storage root directory for the filesystem backend [default: ./wharfage-data]
    #[arg(long, env = "WHARFAGE_ROOT")]
    root: Option<PathBuf>,
    /// TOML configuration file; its keys are the long flag names with `_` for `-`
    #[arg(long, env = "WHARFAGE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format [default: text]
    #[arg(long, env = "WHARFAGE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter in tracing's syntax, e.g. `info` or `wharfage=debug` [default: info]
    #[arg(long, env = "WHARFAGE_LOG")]
    log: Option<String>,
}

/// Keys of the TOML file. Unknown keys are an error, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    root: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log: Option<String>,
}

/// The resolved configuration of `serve`.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: String,
    pub root: PathBuf,
    pub log_format: LogFormat,
    pub log: String,
}

impl ServeConfig {
    /// Merges flags/environment over the config file over defaults.
    pub fn load(args: ServeArgs) -> Result<Self, CliError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        Ok(ServeConfig {
            listen: args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:5000".into()),
            root: args.root.or(file.root).unwrap_or_else(|| "wharfage-data".into()),
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
        })
    }
}
