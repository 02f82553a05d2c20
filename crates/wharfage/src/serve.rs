//! `wharfage serve`: logging, storage, listener, graceful shutdown.

use axum::serve::ListenerExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServeConfig};
use crate::CliError;

/// Runs the registry until SIGTERM or SIGINT, then lets in-flight requests finish.
pub fn run(cfg: ServeConfig) -> Result<(), CliError> {
    let filter = EnvFilter::try_new(&cfg.log).map_err(|e| CliError::Config(format!("log filter {:?}: {e}", cfg.log)))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: ServeConfig) -> Result<(), CliError> {
    let store = store::Store::filesystem(&cfg.root)?;
    store.ping().await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| CliError::Listen { addr: cfg.listen.clone(), source })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, storage = store.describe(), "wharfage is serving");
    let app = server::router(server::AppState { store });
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
