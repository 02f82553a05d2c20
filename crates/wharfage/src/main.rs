//! The `wharfage` binary: command line, configuration and process lifecycle.

mod config;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wharfage: a container image registry with a staging cache.
#[derive(Parser)]
#[command(name = "wharfage", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve(config::ServeArgs),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => config::ServeConfig::load(args).and_then(serve::run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharfage: {e}");
            ExitCode::FAILURE
        }
    }
}
