//! The `wharfage` binary: command line, configuration and process lifecycle.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod fsck;
mod pull_secret;
mod remote;
mod serve;

use std::process::ExitCode;

#[cfg(test)]
mod doc_commands;

use clap::{Parser, Subcommand};

/// wharfage: a container image registry with a staging cache.
#[derive(Parser)]
#[command(name = "wharfage", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What every client command reads from the environment, shown under its `--help`: the login
/// and the CA are never flags (other users of the machine could read them).
const CLIENT_ENV: &str = "\
Environment:
  WHARFAGE_SERVER         the wharfage server, as --server
  WHARFAGE_USERNAME       the user to log in to the server as (when it has access control)
  WHARFAGE_PASSWORD       that user's password, or
  WHARFAGE_PASSWORD_FILE  a file holding it
  WHARFAGE_CA_CERT        PEM file of the CA (or the self-signed certificate) to trust for an https:// server";

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve(Box<config::ServeArgs>),
    /// Stage an app's image: copy it from its upstream into wharfage and pin it.
    #[command(after_help = CLIENT_ENV)]
    Stage {
        /// Image reference, e.g. `redis:7` or `registry.example.com/team/app:v1`
        source: String,
        /// The app's id (lowercase letters, digits, '.', '_', '-')
        #[arg(long)]
        app: String,
        /// The wharfage server
        #[arg(long, env = "WHARFAGE_SERVER", default_value = remote::DEFAULT_SERVER)]
        server: String,
        /// Username for the upstream registry (with --password-stdin)
        #[arg(long)]
        username: Option<String>,
        /// Read the upstream password from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Platform to pin from a multi-arch image (`os/arch[/variant]`), or `all` [default: linux/amd64]
        #[arg(long)]
        platform: Option<String>,
        /// Signatures, SBOMs and attestations of the image: `copy` what is found (a failure
        /// is a warning), `require` it, or `skip` it [default: copy]
        #[arg(long, value_parser = stage::ReferrersPolicy::parse)]
        referrers: Option<stage::ReferrersPolicy>,
        /// Print the API's result object as JSON on stdout, and nothing else there
        #[arg(long, conflicts_with_all = ["k8s_secret", "docker_config"])]
        json: bool,
        /// Print the pull credentials as a Kubernetes `kubernetes.io/dockerconfigjson`
        /// Secret named NAME (YAML, the pinned reference in a comment) on stdout
        #[arg(long, value_name = "NAME", conflicts_with = "docker_config")]
        k8s_secret: Option<String>,
        /// Print the pull credentials as a docker `config.json` (`auths`) on stdout
        #[arg(long)]
        docker_config: bool,
    },
    /// List apps, show one app's stagings, unpin apps.
    #[command(args_conflicts_with_subcommands = true, after_help = CLIENT_ENV)]
    Apps {
        #[command(subcommand)]
        action: Option<AppsAction>,
        /// Show this app's staging history
        app: Option<String>,
        /// The wharfage server
        #[arg(long, env = "WHARFAGE_SERVER", default_value = remote::DEFAULT_SERVER, global = true)]
        server: String,
        /// Print the API's answer as JSON
        #[arg(long, global = true)]
        json: bool,
    },
    /// The pull-through mirrors: `wharfage mirror ls` lists each mirrored registry, its
    /// upstream's state and the images it holds.
    #[command(after_help = CLIENT_ENV)]
    Mirror {
        #[command(subcommand)]
        action: MirrorAction,
        /// The wharfage server
        #[arg(long, env = "WHARFAGE_SERVER", default_value = remote::DEFAULT_SERVER, global = true)]
        server: String,
        /// Print the API's answer as JSON
        #[arg(long, global = true)]
        json: bool,
    },
    /// Collect garbage on the server now: unreferenced manifests, links, blobs, old uploads.
    #[command(after_help = CLIENT_ENV)]
    Gc {
        /// Report what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// The wharfage server
        #[arg(long, env = "WHARFAGE_SERVER", default_value = remote::DEFAULT_SERVER)]
        server: String,
    },
    /// Check the store's integrity: re-hash every blob, check every reference and link.
    /// Takes the same storage flags as `serve` (e.g. `--root DIR`). Exits 1 when data is
    /// corrupt, missing or unparsable; orphaned blobs, stale uploads and temporary files are
    /// reported but fail only with --strict.
    Fsck {
        #[command(flatten)]
        storage: config::StorageArgs,
        /// Move corrupt blobs aside (to quarantine/) so a re-push or re-staging restores them
        #[arg(long)]
        repair: bool,
        /// Also exit 1 on leftovers: orphaned blobs, stale upload sessions, temporary files
        #[arg(long)]
        strict: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MirrorAction {
    /// Each mirrored registry, its upstream's state, and its images with size and last pull.
    Ls,
}

#[derive(Subcommand)]
enum AppsAction {
    /// Unpin every staging of an app; its images go at the next garbage collection.
    Rm { app: String },
    /// Unpin every app not in the live list (a file of app ids, one per line).
    Sync {
        /// File with the app ids that still exist, one per line (`-` for stdin)
        #[arg(long)]
        live: std::path::PathBuf,
        /// Allow unpinning more than half of the apps
        #[arg(long)]
        force: bool,
    },
}

/// Everything that can stop the binary, with a message naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Remote(String),
    #[error("fsck found {0} problem(s): {1}")]
    Problems(u64, String),
}

fn main() -> ExitCode {
    // reqwest (upstream registries, the CLI's client) and object_store (S3) are built with
    // rustls but no default crypto provider: ring, installed once, before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => config::ServeConfig::load(*args).and_then(serve::run),
        Command::Stage { source, app, server, username, password_stdin, platform, referrers, json, k8s_secret, docker_config } => {
            let output = match (json, k8s_secret, docker_config) {
                (true, _, _) => remote::Output::Json,
                (_, Some(name), _) => remote::Output::K8sSecret(name),
                (_, None, true) => remote::Output::DockerConfig,
                _ => remote::Output::Text,
            };
            remote::stage(remote::StageArgs { server, source, app, platform, referrers, username, password_stdin, output })
        }
        Command::Apps { action: None, app, server, json } => remote::apps(&server, app.as_deref(), json),
        Command::Mirror { action: MirrorAction::Ls, server, json } => remote::mirrors(&server, json),
        Command::Apps { action: Some(AppsAction::Rm { app }), server, .. } => remote::remove_app(&server, &app),
        Command::Apps { action: Some(AppsAction::Sync { live, force }), server, .. } => remote::sync_live(&server, &live, force),
        Command::Gc { dry_run, server } => remote::gc(&server, dry_run),
        Command::Fsck { storage, repair, strict, json } => fsck::run(storage, repair, strict, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharfage: {e}");
            ExitCode::FAILURE
        }
    }
}
