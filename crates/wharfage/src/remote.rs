//! The client side of the management API, for the `stage` and `apps` commands.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::CliError;

/// The default server for client commands.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:5000";

fn http() -> Result<reqwest::Client, CliError> {
    // reqwest is built without a default TLS provider; ring is the one we ship.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("wharfage-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Remote(format!("HTTP client: {e}")))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Turns an API error body into a message: `<status> <code>: <message>`.
fn api_error(status: u16, body: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let first = parsed.as_ref().and_then(|v| v["errors"].get(0)).cloned();
    match first {
        Some(e) => {
            CliError::Remote(format!("{status} {}: {}", e["code"].as_str().unwrap_or("ERROR"), e["message"].as_str().unwrap_or(body)))
        }
        None => CliError::Remote(format!("{status}: {}", body.trim())),
    }
}

/// What `wharfage stage` sends.
pub(crate) struct StageArgs {
    pub server: String,
    pub source: String,
    pub app: String,
    pub platform: Option<String>,
    pub username: Option<String>,
    pub password_stdin: bool,
    pub json: bool,
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
        (Some(u), Some(p)) => Some(serde_json::json!({ "username": u, "password": p.as_str() })),
        (None, None) => None,
        _ => return Err(CliError::Config("--username and --password-stdin go together".into())),
    };
    let mut body = serde_json::json!({ "source": args.source, "app": args.app });
    if let Some(p) = &args.platform {
        body["platform"] = p.clone().into();
    }
    if let Some(c) = credentials {
        body["credentials"] = c;
    }
    let body = Zeroizing::new(body.to_string());
    let url = format!("{}/api/v1/stagings", args.server.trim_end_matches('/'));
    runtime()?.block_on(async move {
        let resp = http()?
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/x-ndjson")
            .body(body.as_str().to_string())
            .send()
            .await
            .map_err(|e| CliError::Remote(format!("cannot reach {}: {e}", args.server)))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(api_error(status, &resp.text().await.unwrap_or_default()));
        }
        let mut bars = Bars::new();
        let mut lines = resp.bytes_stream();
        let mut buf = Vec::new();
        let mut outcome: Option<Value> = None;
        while let Some(chunk) = lines.next().await {
            let chunk = chunk.map_err(|e| CliError::Remote(format!("staging stream broke: {e}")))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
                match event["event"].as_str() {
                    Some("result") | Some("error") => outcome = Some(event),
                    _ => bars.update(&event),
                }
            }
        }
        bars.finish();
        let mut outcome = outcome.ok_or_else(|| CliError::Remote("the server ended the staging stream without a result".into()))?;
        if outcome["event"] == "error" {
            return Err(CliError::Remote(format!(
                "staging failed: {} {}: {}",
                outcome["status"],
                outcome["code"].as_str().unwrap_or(""),
                outcome["message"].as_str().unwrap_or("")
            )));
        }
        if let Some(o) = outcome.as_object_mut() {
            o.remove("event");
        }
        if args.json {
            println!("{outcome}");
        } else {
            print_result(&outcome);
        }
        Ok(())
    })
}

fn print_result(r: &Value) {
    let mut out = std::io::stdout().lock();
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
    let _ = writeln!(out, "pinned {}", r["image"].as_str().unwrap_or(""));
    let _ = writeln!(
        out,
        "downloaded {:.1} MiB in {} blobs, reused {:.1} MiB in {} blobs, {:.2} s",
        mib(&r["bytes_downloaded"]),
        r["blobs_downloaded"],
        mib(&r["bytes_reused"]),
        r["blobs_reused"],
        r["seconds"].as_f64().unwrap_or(0.0)
    );
    let m = &r["metadata"];
    let list = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default();
    let _ = writeln!(out, "entrypoint  {}", list(&m["entrypoint"]));
    let _ = writeln!(out, "cmd         {}", list(&m["cmd"]));
    let _ = writeln!(out, "user        {}", m["user"].as_str().unwrap_or(""));
    let _ = writeln!(out, "working dir {}", m["working_dir"].as_str().unwrap_or(""));
    let ports: Vec<String> = m["ports"]
        .as_array()
        .map(|a| a.iter().map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "ports       {}", ports.join(" "));
    for e in m["env"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "env         {}", e.as_str().unwrap_or(""));
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

    fn update(&mut self, e: &Value) {
        let digest = e["digest"].as_str().unwrap_or("").to_string();
        let size = e["size"].as_u64().unwrap_or(0);
        match e["event"].as_str() {
            Some("blob_started") => {
                self.bar(&digest, size);
            }
            Some("blob_progress") => {
                let bytes = e["bytes"].as_u64().unwrap_or(0);
                self.bar(&digest, 0).set_position(bytes);
            }
            Some("blob_done") => {
                let b = self.bar(&digest, size);
                b.set_length(size);
                b.finish_with_message("done");
            }
            Some("blob_reused") => {
                let b = self.bar(&digest, size);
                b.set_length(size);
                b.set_position(size);
                b.finish_with_message("already stored");
            }
            _ => {}
        }
    }

    fn finish(&self) {
        let _ = self.multi.clear();
    }
}

/// `wharfage apps [APP]`: all apps, or one app's history.
pub(crate) fn apps(server: &str, app: Option<&str>, json: bool) -> Result<(), CliError> {
    let url = match app {
        Some(a) => format!("{}/api/v1/apps/{a}", server.trim_end_matches('/')),
        None => format!("{}/api/v1/apps", server.trim_end_matches('/')),
    };
    let body: Value = runtime()?.block_on(async {
        let resp = http()?.get(&url).send().await.map_err(|e| CliError::Remote(format!("cannot reach {server}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            return Err(api_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| CliError::Remote(format!("unexpected answer: {e}")))
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{body}");
        return Ok(());
    }
    let row = |r: &Value| {
        format!(
            "{:<24} {:<72} {}",
            r["staging_id"].as_str().unwrap_or(""),
            r["image"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or("")
        )
    };
    match app {
        Some(_) => {
            let current = body["current"]["staging_id"].as_str().unwrap_or("");
            for s in body["stagings"].as_array().into_iter().flatten() {
                let mark = if s["staging_id"].as_str() == Some(current) { "*" } else { " " };
                let _ = writeln!(out, "{mark} {}", row(s));
            }
        }
        None => {
            for a in body["apps"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "{:<40} {}", a["app"].as_str().unwrap_or(""), row(&a["current"]));
            }
        }
    }
    Ok(())
}

/// Sends a JSON request and returns the JSON answer, or the API's error as a message.
fn call(method: reqwest::Method, url: String, body: Option<Value>) -> Result<Value, CliError> {
    runtime()?.block_on(async {
        let mut req = http()?.request(method, &url);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| CliError::Remote(format!("cannot reach {url}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status >= 400 {
            return Err(api_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| CliError::Remote(format!("unexpected answer: {e}")))
    })
}

fn api(server: &str, path: &str) -> String {
    format!("{}/api/v1/{path}", server.trim_end_matches('/'))
}

/// `wharfage apps rm APP`.
pub(crate) fn remove_app(server: &str, app: &str) -> Result<(), CliError> {
    let v = call(reqwest::Method::DELETE, api(server, &format!("apps/{app}")), None)?;
    println!("unpinned {} staging(s) of {app}", v["unpinned_stagings"]);
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
    let apps: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let v = call(reqwest::Method::PUT, api(server, "apps/live"), Some(serde_json::json!({ "apps": apps, "force": force })))?;
    let unpinned: Vec<&str> = v["unpinned"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
    println!("unpinned {} app(s), kept {}", unpinned.len(), v["kept"]);
    for a in unpinned {
        println!("  {a}");
    }
    Ok(())
}

/// `wharfage gc [--dry-run]`.
pub(crate) fn gc(server: &str, dry_run: bool) -> Result<(), CliError> {
    let v = call(reqwest::Method::POST, api(server, "gc"), Some(serde_json::json!({ "dry_run": dry_run })))?;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut out = std::io::stdout().lock();
    for kind in ["stagings", "manifests", "layer_links", "blobs", "uploads"] {
        let _ = writeln!(out, "{verb} {:>8} {kind:<12} {:>14} bytes", v[kind]["count"], v[kind]["bytes"]);
    }
    let _ =
        writeln!(out, "live: {} manifests, {} blobs; {:.2} s", v["live_manifests"], v["live_blobs"], v["seconds"].as_f64().unwrap_or(0.0));
    Ok(())
}
