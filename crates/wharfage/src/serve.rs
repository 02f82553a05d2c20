//! `wharfage serve`: logging, storage, listener, graceful shutdown.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServeConfig, Storage};
use crate::CliError;

/// Runs the registry until SIGTERM or SIGINT, then lets in-flight requests finish.
pub(crate) fn run(cfg: ServeConfig) -> Result<(), CliError> {
    init_logging(&cfg)?;
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(BLOCKING_THREADS).enable_all().build()?;
    runtime.block_on(serve(cfg))
}

/// Threads for blocking file work (filesystem storage, blob cache fills and reads, bcrypt).
/// Tokio's default is 512, and it starts a thread whenever none is idle at the moment a task
/// is queued: a collection's stream of small file operations, or a storm's chunk reads, on a
/// busy machine grew the pool to ~380 threads, whose stacks and malloc arenas were a third of
/// the server's resident memory. Operations wait in the queue instead; 64 leaves room beside
/// the blob cache's at most 16 long-running fill writers.
const BLOCKING_THREADS: usize = 64;

/// Keeps freed memory in glibc's heaps for reuse, up to a bound, instead of handing it back
/// to the kernel at once. Why: streaming a blob from S3 allocates and frees buffers of a few
/// hundred KiB all the time (the client's reads, a cache fill's parts); by default glibc
/// maps the larger ones afresh and trims its heaps as soon as they are freed, so every byte
/// received landed on a page just faulted in and zeroed (measured: page faults cost a blob
/// cache fill as much CPU as hashing the blob). The bounds keep the memory held, and so
/// the RSS, close to what is in use (measured in a 200-node storm: without the arena bound,
/// 46-63 MiB of anonymous memory per replica at the peak, against about 30 by default;
/// 43-50 with 4 heaps).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    /// Allocations above this are mapped and unmapped on their own.
    const MMAP_THRESHOLD: libc::c_int = 4 << 20;
    /// Free memory at the top of a heap beyond this goes back to the kernel.
    const TRIM_THRESHOLD: libc::c_int = 8 << 20;
    /// Heaps (glibc's default is 8 per core): each keeps up to the trim threshold of free
    /// memory, and the blocking threads that map blob chunks number in the dozens in a storm.
    const ARENA_MAX: libc::c_int = 2;
    // SAFETY: mallopt(3) takes integers only and is safe to call at any time.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1
    };
    if !ok {
        tracing::debug!("mallopt refused the allocator's thresholds; keeping glibc's defaults");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Structured logs on stderr, text or JSON; colours only when stderr is a terminal (and
/// `NO_COLOR` is unset), so files and log collectors get no escape codes.
pub(crate) fn init_logging(cfg: &ServeConfig) -> Result<(), CliError> {
    let filter = EnvFilter::try_new(&cfg.log).map_err(|e| CliError::Config(format!("log filter {:?}: {e}", cfg.log)))?;
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// Opens the configured store.
pub(crate) fn open_store(cfg: &ServeConfig) -> Result<store::Store, CliError> {
    let builder = match &cfg.storage {
        Storage::Fs(root) => store::Store::builder(store::BackendConfig::Filesystem(root.clone())),
        Storage::S3 { config, blob_cache: None, .. } => store::Store::builder(store::BackendConfig::S3(config.clone())),
        Storage::S3 { config, blob_cache: Some(cache), .. } => {
            store::Store::builder(store::BackendConfig::S3(config.clone())).blob_cache(cache.clone())
        }
    };
    Ok(builder.upload_limits(cfg.uploads.clone()).tag_cache_ttl(cfg.tag_cache_ttl).build()?)
}

/// Raises the open-file limit to its hard limit: every connection, upload part and blob read
/// holds a descriptor, and the usual soft limit of 1024 stops all service at about a
/// thousand idle clients. Warns when the limit stays below what `max_connections` needs.
#[allow(unsafe_code)]
fn raise_open_files(max_connections: usize) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit(2) writes one `rlimit` through the pointer, which points to `lim`, a
    // live local of that type borrowed mutably for the call only.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit(2) only reads the `rlimit` behind the pointer: `raised`, a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    // Each connection needs one descriptor; keep room for files and the store's connections.
    let wanted = max_connections as u64 * 2 + 256;
    if lim.rlim_cur < wanted {
        tracing::warn!(
            open_files = lim.rlim_cur,
            max_connections,
            "the open-file limit is low for --max-connections: raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower --max-connections"
        );
    } else {
        tracing::debug!(open_files = lim.rlim_cur, "open-file limit");
    }
}

async fn serve(cfg: ServeConfig) -> Result<(), CliError> {
    // Signal handlers go in before anything is announced: a SIGTERM that arrives right after
    // "serving" must still mean a graceful stop, not the default action (death).
    let shutdown = shutdown_signal()?;
    let store = open_store(&cfg)?;
    // Refuse to start against a store that does not answer, rather than fail every request.
    store.ping().await?;
    let leftovers = store.remove_crash_leftovers()?;
    if leftovers > 0 {
        tracing::info!(files = leftovers, "removed temporary files an interrupted run left behind");
    }
    raise_open_files(cfg.connections.max_connections);
    let listener =
        server::bind(&cfg.listen, cfg.connections.backlog).await.map_err(|source| CliError::Listen { addr: cfg.listen.clone(), source })?;
    let addr = listener.local_addr()?;
    let upstream = upstream::Client::new(cfg.upstream.clone()).map_err(|e| CliError::Config(e.to_string()))?;
    let mut state = server::AppState::new(store.clone());
    // /metrics' stored_bytes: measured once now, then after each collection.
    state.metrics.refresh_usage();
    state.stager = Some(stage::Stager::new(store.clone(), upstream.clone(), cfg.stage_concurrency));
    state.gc = cfg.gc.clone();
    state.completeness = cfg.completeness;
    if !cfg.mirrors.is_empty() {
        // Blobs being fetched are spooled where the store's own temporary files go (emptied at
        // start), or on S3 in the system's temporary folder.
        let spool = match &cfg.storage {
            Storage::Fs(root) => root.join("tmp").join("mirror"),
            Storage::S3 { .. } => std::env::temp_dir().join(format!("wharfage-mirror-{}", std::process::id())),
        };
        let mirrors = server::mirror::Mirrors::new(cfg.mirrors.clone(), upstream.clone(), spool).map_err(CliError::Config)?;
        tracing::info!(registries = ?mirrors.registries(), "mirroring");
        state.mirrors = Some(std::sync::Arc::new(mirrors));
    }
    if let Some(every) = cfg.gc_interval {
        let (store, opts, metrics) = (store.clone(), cfg.gc.clone(), state.metrics.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store.collect_garbage(&opts).await {
                    Ok(report) => metrics.gc(&report),
                    Err(e) => tracing::error!(error = %e, "periodic garbage collection failed"),
                }
            }
        });
    }
    if let Storage::S3 { redirect: true, blob_cache, .. } = &cfg.storage {
        state.blob_redirect = Some(std::time::Duration::from_secs(600));
        if blob_cache.is_some() {
            tracing::warn!("--s3-redirect sends blob GETs to the object store, so nothing fills the blob cache: it stays unused");
        }
    }
    state.access.public_url = cfg.access.public_url.clone();
    if let Some(auth_cfg) = cfg.access.auth.clone() {
        let auth = auth::Auth::new(auth_cfg, store.clone()).await.map_err(|e| CliError::Config(e.to_string()))?;
        state.access.auth = Some(std::sync::Arc::new(auth));
    }
    let tls = match &cfg.access.tls {
        Some((cert, key)) => {
            let certs = server::tls::Certificates::load(cert, key).map_err(CliError::Config)?;
            tokio::spawn(certs.clone().watch());
            state.access.tls = true;
            Some((certs.server_config().map_err(CliError::Config)?, certs))
        }
        None => None,
    };
    reload_on_hangup(state.access.auth.clone(), tls.as_ref().map(|(_, c)| c.clone()))?;
    let app = server::router(state);
    // Announced once everything that can refuse to start (keys, certificates) has loaded.
    let facts = Facts::new(&cfg, addr);
    tracing::info!(
        %addr,
        version = env!("CARGO_PKG_VERSION"),
        url = %facts.url,
        console = %facts.console(),
        access = facts.access,
        tls = facts.tls,
        storage = %facts.storage,
        "wharfage is serving"
    );
    if cfg.log_format == LogFormat::Text {
        // On stdout, apart from the log: what a newcomer needs to start using it.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(facts.banner().as_bytes());
        let _ = out.flush();
    }
    server::serve(listener, app, &cfg.connections, tls.map(|(c, _)| c), shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// On SIGHUP, re-reads the TLS certificate and the htpasswd file (a failed reload keeps
/// what was in use and says why).
fn reload_on_hangup(
    auth: Option<std::sync::Arc<auth::Auth>>,
    certs: Option<std::sync::Arc<server::tls::Certificates>>,
) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(c) = &certs {
                c.reload();
            }
            if let Some(a) = &auth {
                match a.reload_users() {
                    Ok(n) => tracing::info!(users = n, "htpasswd reloaded"),
                    Err(e) => tracing::error!(error = %e, "htpasswd not reloaded; the previous users stay"),
                }
            }
        }
    });
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now and returns the future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// What start-up tells: where to reach the registry, whether anyone may, and where the data
/// goes (never a credential).
struct Facts {
    url: String,
    /// Listening on every interface (0.0.0.0 or ::): the URL's host is not one to dial.
    every_interface: bool,
    access: &'static str,
    tls: bool,
    storage: String,
}

impl Facts {
    fn new(cfg: &ServeConfig, addr: std::net::SocketAddr) -> Facts {
        let tls = cfg.access.tls.is_some();
        let scheme = if tls { "https" } else { "http" };
        let url = match &cfg.access.public_url {
            Some(u) => u.clone(),
            None => format!("{scheme}://{addr}"),
        };
        let access = if cfg.access.auth.is_some() { "access-controlled" } else { "open" };
        let storage = match &cfg.storage {
            Storage::Fs(root) => format!("folder {}", std::path::absolute(root).unwrap_or_else(|_| root.clone()).display()),
            Storage::S3 { config, blob_cache, .. } => {
                let mut s = format!("S3 bucket {} at {}", config.bucket, without_userinfo(&config.endpoint));
                if let Some(p) = &config.prefix {
                    s.push_str(&format!(", prefix {p}"));
                }
                if let Some(c) = blob_cache {
                    s.push_str(&format!(", blob cache {}", c.dir.display()));
                }
                s
            }
        };
        let every_interface = cfg.access.public_url.is_none() && addr.ip().is_unspecified();
        Facts { url, every_interface, access, tls, storage }
    }

    fn console(&self) -> String {
        format!("{}/ui/", self.url)
    }

    fn banner(&self) -> String {
        let host = self.url.split_once("://").map_or(self.url.as_str(), |(_, h)| h);
        let access = match self.access {
            "open" => "open: no login, anyone who can connect may pull, push, delete and manage",
            _ => "access-controlled: clients log in as the users of --htpasswd",
        };
        let tls = if self.tls { "TLS (HTTPS)" } else { "plain HTTP, no TLS (--tls-cert and --tls-key turn it on)" };
        let example = if self.every_interface {
            "(every interface: clients use this machine's name or address)".to_string()
        } else {
            format!("e.g. docker push {host}/NAME:TAG")
        };
        format!(
            "wharfage {} is serving\n  registry  {}   {example}\n  console   {}\n  access    {access}\n  transport {tls}\n  \
             storage   {}\n",
            env!("CARGO_PKG_VERSION"),
            self.url,
            self.console(),
            self.storage
        )
    }
}

/// A URL without any `user:password@` in it.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_userinfo;

    #[test]
    fn credentials_in_an_endpoint_url_are_not_shown() {
        assert_eq!(without_userinfo("https://key:secret@s3.example.com/x@y"), "https://s3.example.com/x@y");
        assert_eq!(without_userinfo("http://127.0.0.1:8333"), "http://127.0.0.1:8333");
    }
}
