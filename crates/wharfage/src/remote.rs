//! The client side of the management API, for the `stage` and `apps` commands.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use server::mgmt::types::{
    AppDetail, AppList, ErrorBody, GcReport, GcRequest, LiveSyncAnswer, LiveSyncRequest, StagingLine, StagingOutcome, StagingProgress,
    StagingRequest, StagingView, Unpinned, UpstreamCredentials,
};
use zeroize::Zeroizing;

use crate::CliError;

/// The default server for client commands.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:5000";

fn http() -> Result<reqwest::Client, CliError> {
    // reqwest is built without a default TLS provider: `main` installs ring's. The TLS
    // configuration is the upstream client's: platform roots plus WHARFAGE_CA_CERT, whose
    // self-signed certificates are accepted as their own anchors (`upstream::tls`).
    let extra = match std::env::var_os("WHARFAGE_CA_CERT") {
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| CliError::Remote(format!("WHARFAGE_CA_CERT {}: {e}", path.to_string_lossy())))?;
            upstream::tls::pem_certificates(&pem)
                .map_err(|e| CliError::Remote(format!("WHARFAGE_CA_CERT {}: {e}", path.to_string_lossy())))?
        }
        None => Vec::new(),
    };
    let tls = upstream::tls::client_config(extra, false).map_err(|e| CliError::Remote(format!("TLS: {e}")))?;
    reqwest::Client::builder()
        .user_agent(concat!("wharfage-cli/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| CliError::Remote(format!("HTTP client: {e}")))
}

/// Why the server at `url` could not be asked, with the fix: the one place the CLI turns a
/// transport error into words.
fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    use upstream::tls::Failure;
    let mut chain = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        chain.push_str(": ");
        chain.push_str(&c.to_string());
        cause = c.source();
    }
    let server = e.url().map(|u| format!("{}://{}", u.scheme(), u.authority())).unwrap_or_else(|| url.to_string());
    CliError::Remote(match Failure::of(e) {
        Failure::Refused => format!(
            "cannot reach {server}: connection refused, nothing listens there. Is `wharfage serve` running? \
             (the server is --server or WHARFAGE_SERVER)"
        ),
        Failure::Untrusted(reason) => format!(
            "cannot reach {server}: its TLS certificate is not trusted ({reason}). Set WHARFAGE_CA_CERT to a PEM file \
             of the CA certificate that signed it (or of the certificate itself, when self-signed)"
        ),
        Failure::PlainHttp => {
            let plain = server.replacen("https://", "http://", 1);
            format!("cannot reach {server}: it answered in plain HTTP, not HTTPS. Use --server {plain} (or WHARFAGE_SERVER)")
        }
        Failure::NotHttp => {
            let tls = server.replacen("http://", "https://", 1);
            format!("cannot reach {server}: its answer is not HTTP; it probably speaks TLS. Use --server {tls} (or WHARFAGE_SERVER)")
        }
        Failure::Timeout => format!("cannot reach {server}: timed out ({chain})"),
        Failure::Other => format!("cannot reach {server}: {chain}"),
    })
}

/// The server's user and password for the management API, from `WHARFAGE_USERNAME` and
/// `WHARFAGE_PASSWORD` or `WHARFAGE_PASSWORD_FILE`: never from the command line, where
/// other users of the machine could read them.
fn server_login() -> Result<Option<(String, Zeroizing<String>)>, CliError> {
    let Ok(user) = std::env::var("WHARFAGE_USERNAME") else { return Ok(None) };
    let password = match (std::env::var("WHARFAGE_PASSWORD"), std::env::var_os("WHARFAGE_PASSWORD_FILE")) {
        (Ok(p), _) => p,
        (Err(_), Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| CliError::Remote(format!("WHARFAGE_PASSWORD_FILE {}: {e}", path.to_string_lossy())))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        _ => return Err(CliError::Remote("WHARFAGE_USERNAME needs WHARFAGE_PASSWORD or WHARFAGE_PASSWORD_FILE".into())),
    };
    Ok(Some((user, Zeroizing::new(password))))
}

/// A request to the management API, with the server login when one is set.
fn api_request(method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, CliError> {
    let req = http()?.request(method, url);
    Ok(match server_login()? {
        Some((user, password)) => req.basic_auth(user, Some(password.as_str())),
        None => req,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Turns an API error body into a message: `<status> <code>: <message>`.
fn api_error(status: u16, body: &str) -> CliError {
    match serde_json::from_str::<ErrorBody>(body).ok().and_then(|b| b.errors.into_iter().next()) {
        Some(e) => CliError::Remote(format!("{status} {}: {}", e.code, e.message)),
        None => CliError::Remote(format!("{status}: {}", body.trim())),
    }
}

/// Reads a typed answer; a body that does not match the contract is an error naming it.
fn parse_answer<T: DeserializeOwned>(text: &str) -> Result<T, CliError> {
    serde_json::from_str(text).map_err(|e| CliError::Remote(format!("unexpected answer from the server ({e}): {}", text.trim())))
}

/// What `wharfage stage` sends.
pub(crate) struct StageArgs {
    pub server: String,
    pub source: String,
    pub app: String,
    pub platform: Option<String>,
    pub referrers: Option<stage::ReferrersPolicy>,
    pub username: Option<String>,
    pub password_stdin: bool,
    pub output: Output,
}

/// What `wharfage stage` prints on stdout when it succeeds.
pub(crate) enum Output {
    /// A summary for people.
    Text,
    /// The API's result object.
    Json,
    /// A Kubernetes pull Secret of this name.
    K8sSecret(String),
    /// A docker `config.json`.
    DockerConfig,
}

/// Stages an image through the server, with progress bars on a terminal.
pub(crate) fn stage(args: StageArgs) -> Result<(), CliError> {
    let password = if args.password_stdin {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin().read_to_string(&mut s)?;
        let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string());
        if trimmed.is_empty() {
            return Err(CliError::Config("--password-stdin: nothing was read from stdin".into()));
        }
        Some(trimmed)
    } else {
        None
    };
    let credentials = match (&args.username, &password) {
        (Some(u), Some(p)) => Some(UpstreamCredentials { username: Some(u.clone()), password: Some(p.to_string()), token: None }),
        (None, None) => None,
        _ => return Err(CliError::Config("--username and --password-stdin go together".into())),
    };
    let request = StagingRequest {
        source: args.source.clone(),
        app: args.app.clone(),
        platform: args.platform.clone(),
        referrers: args.referrers,
        credentials,
    };
    let body = Zeroizing::new(serde_json::to_string(&request).map_err(|e| CliError::Remote(format!("encoding the request: {e}")))?);
    drop(request);
    let url = format!("{}/api/v1/stagings", args.server.trim_end_matches('/'));
    runtime()?.block_on(async move {
        let resp = api_request(reqwest::Method::POST, &url)?
            .header("content-type", "application/json")
            .header("accept", "application/x-ndjson")
            .body(body.as_str().to_string())
            .send()
            .await
            .map_err(|e| unreachable(&args.server, &e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(api_error(status, &resp.text().await.unwrap_or_default()));
        }
        let mut bars = Bars::new();
        let mut lines = resp.bytes_stream();
        let mut buf = Vec::new();
        let mut outcome: Option<StagingOutcome> = None;
        while let Some(chunk) = lines.next().await {
            let chunk = chunk.map_err(|e| CliError::Remote(format!("staging stream broke: {e}")))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                match parse_answer::<StagingLine>(&line)? {
                    StagingLine::Outcome(o) => outcome = Some(o),
                    StagingLine::Progress(p) => bars.update(&p),
                }
            }
        }
        bars.finish();
        let outcome = outcome.ok_or_else(|| CliError::Remote("the server ended the staging stream without a result".into()))?;
        let result = match outcome {
            StagingOutcome::Result(r) => *r,
            StagingOutcome::Error(e) => {
                return Err(CliError::Remote(format!("staging failed: {} {}: {}", e.status, e.code, e.message)));
            }
        };
        let creds = || result.pull_credentials.as_ref().ok_or_else(|| CliError::Remote("the server returned no pull credentials".into()));
        let host = crate::pull_secret::registry_host(&result.image);
        match &args.output {
            Output::Json => {
                let text = serde_json::to_string(&result).map_err(|e| CliError::Remote(format!("encoding the result: {e}")))?;
                println!("{text}");
            }
            Output::Text => print_result(&result),
            Output::K8sSecret(name) => print!("{}", crate::pull_secret::k8s_secret(name, &result.image, host, creds()?)?),
            Output::DockerConfig => {
                eprintln!("pinned {}", result.image);
                println!("{:#}", crate::pull_secret::docker_config(host, creds()?));
            }
        }
        Ok(())
    })
}

fn print_result(r: &StagingView) {
    let mut out = std::io::stdout().lock();
    let mib = |v: u64| v as f64 / (1 << 20) as f64;
    let rec = &r.record;
    let _ = writeln!(out, "pinned {}", r.image);
    if let Some(c) = &r.pull_credentials {
        // Shown once: the server keeps only a hash. The platform stores them with the image.
        let _ = writeln!(out, "pull user   {}", c.username);
        let _ = writeln!(out, "pull secret {}", c.password);
    }
    let _ = writeln!(
        out,
        "downloaded {:.1} MiB in {} blobs, reused {:.1} MiB in {} blobs, {:.2} s",
        mib(rec.bytes_downloaded),
        rec.blobs_downloaded,
        mib(rec.bytes_reused),
        rec.blobs_reused,
        rec.seconds
    );
    if !rec.platforms.is_empty() {
        let _ = writeln!(out, "platforms   {} (of the pinned index)", rec.platforms.join(" "));
    }
    if rec.referrers > 0 {
        let _ = writeln!(out, "referrers   {} (signatures, SBOMs, attestations)", rec.referrers);
    }
    for w in &rec.warnings {
        let _ = writeln!(out, "warning     {w}");
    }
    let m = &rec.metadata;
    let _ = writeln!(out, "entrypoint  {}", m.entrypoint.join(" "));
    let _ = writeln!(out, "cmd         {}", m.cmd.join(" "));
    let _ = writeln!(out, "user        {}", m.user);
    let _ = writeln!(out, "working dir {}", m.working_dir);
    let ports: Vec<String> = m.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol)).collect();
    let _ = writeln!(out, "ports       {}", ports.join(" "));
    for e in &m.env {
        let _ = writeln!(out, "env         {e}");
    }
}

/// One progress bar per blob, drawn on stderr only when it is a terminal.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Bars { multi: MultiProgress::with_draw_target(target), bars: HashMap::new() }
    }

    fn bar(&mut self, digest: &str, size: u64) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(digest.to_string()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(size));
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style.progress_chars("=> "));
            b.set_prefix(digest.get(7..19).unwrap_or(digest).to_string());
            b
        })
    }

    fn update(&mut self, e: &StagingProgress) {
        match e {
            StagingProgress::Planned { .. } => {}
            StagingProgress::BlobStarted { digest, size } => {
                self.bar(&digest.to_string(), *size);
            }
            StagingProgress::BlobProgress { digest, bytes } => {
                self.bar(&digest.to_string(), 0).set_position(*bytes);
            }
            StagingProgress::BlobDone { digest, size } => {
                let b = self.bar(&digest.to_string(), *size);
                b.set_length(*size);
                b.finish_with_message("done");
            }
            StagingProgress::BlobReused { digest, size } => {
                let b = self.bar(&digest.to_string(), *size);
                b.set_length(*size);
                b.set_position(*size);
                b.finish_with_message("already stored");
            }
            StagingProgress::Warning { message } => {
                let _ = self.multi.println(format!("warning: {message}"));
            }
        }
    }

    fn finish(&self) {
        let _ = self.multi.clear();
    }
}

/// `wharfage apps [APP]`: all apps, or one app's history.
pub(crate) fn apps(server: &str, app: Option<&str>, json: bool) -> Result<(), CliError> {
    let row = |r: &StagingView| format!("{:<24} {:<72} {}", r.record.staging_id, r.image, r.record.source);
    let mut out = std::io::stdout().lock();
    match app {
        Some(a) => {
            let (text, detail) = call::<(), AppDetail>(reqwest::Method::GET, api(server, &format!("apps/{a}")), None)?;
            if json {
                let _ = writeln!(out, "{}", text.trim());
                return Ok(());
            }
            for s in &detail.stagings {
                let mark = if s.record.staging_id == detail.current.record.staging_id { "*" } else { " " };
                let _ = writeln!(out, "{mark} {}", row(s));
            }
        }
        None => {
            let (text, list) = call::<(), AppList>(reqwest::Method::GET, api(server, "apps"), None)?;
            if json {
                let _ = writeln!(out, "{}", text.trim());
                return Ok(());
            }
            for a in &list.apps {
                let _ = writeln!(out, "{:<40} {}", a.app.as_str(), row(&a.current));
            }
        }
    }
    Ok(())
}

/// `wharfage mirror ls`.
pub(crate) fn mirrors(server: &str, json: bool) -> Result<(), CliError> {
    let (text, list) = call::<(), server::mgmt::types::MirrorList>(reqwest::Method::GET, api(server, "mirrors"), None)?;
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", text.trim());
        return Ok(());
    }
    if list.mirrors.is_empty() {
        let _ = writeln!(out, "no registry is mirrored (serve --mirror, or [[mirror]] in the config file)");
    }
    let ago = |ms: u64| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let s = now.saturating_sub(ms) / 1000;
        match s {
            0..=119 => format!("{s}s ago"),
            120..=7199 => format!("{}m ago", s / 60),
            7200..=172_799 => format!("{}h ago", s / 3600),
            _ => format!("{}d ago", s / 86_400),
        }
    };
    for m in &list.mirrors {
        let state = match (&m.last_error, m.last_success_ms) {
            (Some(e), Some(ok)) if ok > e.at_ms => format!("ok ({})", ago(ok)),
            (Some(e), _) => format!("failing ({}: {})", ago(e.at_ms), e.message),
            (None, Some(ok)) => format!("ok ({})", ago(ok)),
            (None, None) => "not asked yet".to_string(),
        };
        let default = if m.default { " (default)" } else { "" };
        let _ =
            writeln!(out, "{}{default} <- {}  tag_ttl {}s, retention {}s: {state}", m.registry, m.url, m.tag_ttl_secs, m.retention_secs);
        for i in &m.images {
            let pulled = i.last_pull_ms.map(ago).unwrap_or_else(|| "never recorded".into());
            let _ = writeln!(out, "  {}:{:<20} {} {:>12} bytes  pulled {pulled}", i.repository, i.tag, i.digest, i.stored_bytes);
        }
    }
    Ok(())
}

/// Sends a request with a typed JSON body and reads the typed answer (and its raw text, for
/// `--json`), or the API's error as a message.
fn call<B: Serialize, T: DeserializeOwned>(method: reqwest::Method, url: String, body: Option<&B>) -> Result<(String, T), CliError> {
    runtime()?.block_on(async {
        let changes = method != reqwest::Method::GET;
        let mut req = api_request(method, &url)?;
        if let Some(b) = body {
            let text = serde_json::to_string(b).map_err(|e| CliError::Remote(format!("encoding the request: {e}")))?;
            req = req.body(text);
        }
        // The server refuses a change without it, body or not: a cross-site form cannot send it.
        if changes {
            req = req.header("content-type", "application/json");
        }
        let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            return Err(api_error(status, &text));
        }
        let answer = parse_answer(&text)?;
        Ok((text, answer))
    })
}

fn api(server: &str, path: &str) -> String {
    format!("{}/api/v1/{path}", server.trim_end_matches('/'))
}

/// `wharfage apps rm APP`.
pub(crate) fn remove_app(server: &str, app: &str) -> Result<(), CliError> {
    let (_, v) = call::<(), Unpinned>(reqwest::Method::DELETE, api(server, &format!("apps/{app}")), None)?;
    println!("unpinned {} staging(s) of {app}", v.unpinned_stagings);
    Ok(())
}

/// `wharfage apps sync --live FILE`.
pub(crate) fn sync_live(server: &str, file: &std::path::Path, force: bool) -> Result<(), CliError> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| CliError::Config(format!("live list {}: {e}", file.display())))?
    };
    let apps: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
    let request = LiveSyncRequest { apps, force };
    let (_, v) = call::<_, LiveSyncAnswer>(reqwest::Method::PUT, api(server, "apps/live"), Some(&request))?;
    println!("unpinned {} app(s), kept {}", v.unpinned.len(), v.kept);
    for a in &v.unpinned {
        println!("  {a}");
    }
    Ok(())
}

/// `wharfage gc [--dry-run]`.
pub(crate) fn gc(server: &str, dry_run: bool) -> Result<(), CliError> {
    let (_, r) = call::<_, GcReport>(reqwest::Method::POST, api(server, "gc"), Some(&GcRequest { dry_run }))?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = std::io::stdout().lock();
    for (kind, removed) in [
        ("stagings", &r.stagings),
        ("manifests", &r.manifests),
        ("layer_links", &r.layer_links),
        ("blobs", &r.blobs),
        ("uploads", &r.uploads),
        ("temp_files", &r.temp_files),
    ] {
        let _ = writeln!(out, "{verb} {:>8} {kind:<12} {:>14} bytes", removed.count, removed.bytes);
    }
    let _ = writeln!(out, "live: {} manifests, {} blobs; {:.2} s", r.live_manifests, r.live_blobs, r.seconds);
    // What stayed and why: an unpin frees nothing until the grace period has passed.
    for k in &r.kept {
        let when = k.when().map(|w| format!("; {w}")).unwrap_or_default();
        let _ = writeln!(out, "kept {:>10} blobs {:>14} bytes, {} manifests: {}{when}", k.blobs, k.bytes, k.manifests, k.why);
    }
    Ok(())
}
