//! Pruning and integrity end to end, against the built binary: app unpinning and
//! live sync, retention, dry runs, garbage collection while pushes and stagings go on with a
//! zero grace period (one process, two collections at once, two replicas on one S3 bucket),
//! and `wharfage fsck` on a damaged store, with `--repair`.
//!
//! The upstream of the stagings here is a second `wharfage serve` (a real registry speaking
//! the same /v2/ API the stager pulls from). Images are built in memory ([`Img`]), pushed
//! either with raw HTTP (fast, and able to express HEAD-then-skip, mounts and chunked
//! sessions) or with skopeo from an OCI layout, and pulled back completely, byte for byte.

mod concurrent;
mod fsck;
mod images;
mod prune;
mod s3;
mod slow_mark;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use server::mgmt::types::{AppDetail, AppList, GcReport, GcRequest, Removed, StagingView};

use crate::client::{Http, Resp};
use crate::fixtures::read_blobs;
use crate::harness::{self, Server};
use crate::skopeo::{oci_ref, Skopeo};
pub(crate) use images::{layer, pull, push, push_blob, write_layout, Img, Refused, Via};

/// The flags of the servers that collect while clients push: no grace at all, so only the
/// protect/deleting handshake stands between a push and the sweep (a push commits well
/// within the 2 s protect window).
pub(crate) fn zero_grace() -> Vec<String> {
    ["--gc-grace", "0s", "--gc-protect-window", "2s"].map(String::from).to_vec()
}

/// The flags of the servers that collect only when nothing is pushed: no grace and no
/// protect window either, so a collection right after an unpin removes the app's images
/// (with a window, the digests its staging protected a moment ago would be kept).
pub(crate) fn quiet() -> Vec<String> {
    ["--gc-grace", "0s", "--gc-protect-window", "0s"].map(String::from).to_vec()
}

/// Where a [`Reg`] keeps its data.
pub(crate) enum Backing {
    /// `--root DIR`
    Fs(PathBuf),
    /// `--storage s3` on a bucket and prefix of a SeaweedFS server.
    S3 { endpoint: String, bucket: String, prefix: String },
}

impl Backing {
    /// The storage flags, as `serve` and `fsck` take them.
    pub(crate) fn args(&self) -> Vec<String> {
        match self {
            Backing::Fs(root) => vec!["--root".into(), root.display().to_string()],
            Backing::S3 { endpoint, bucket, prefix } => {
                ["--storage", "s3", "--s3-endpoint", endpoint, "--s3-bucket", bucket, "--s3-prefix", prefix].map(String::from).to_vec()
            }
        }
    }
}

/// A `wharfage` command with S3 test credentials (SeaweedFS without identities takes any).
pub(crate) fn command(cwd: &Path) -> Command {
    let mut cmd = harness::wharfage(cwd);
    cmd.env("AWS_ACCESS_KEY_ID", "any").env("AWS_SECRET_ACCESS_KEY", "any");
    cmd
}

/// A running `wharfage serve` with an HTTP client to it.
pub(crate) struct Reg {
    pub server: Server,
    pub http: Http,
    pub backing: Backing,
    pub dir: tempfile::TempDir,
}

impl Reg {
    /// `wharfage serve` over a fresh filesystem root, with `args` added.
    pub(crate) fn fs(args: &[String]) -> Reg {
        let dir = harness::tempdir();
        let root = dir.path().join("root");
        Reg::start(dir, Backing::Fs(root), args)
    }

    /// `wharfage serve` on `backing`, run from `dir`.
    pub(crate) fn start(dir: tempfile::TempDir, backing: Backing, args: &[String]) -> Reg {
        let mut cmd = command(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]).args(backing.args()).args(args);
        let server = Server::spawn(cmd);
        let http = Http::new(server.addr);
        Reg { server, http, backing, dir }
    }

    /// Stops the server gracefully, keeping its storage for [`Reg::start`].
    pub(crate) fn stop(self) -> (tempfile::TempDir, Backing) {
        self.server.stop();
        (self.dir, self.backing)
    }

    /// `127.0.0.1:PORT`
    pub(crate) fn host(&self) -> String {
        self.server.host()
    }

    /// `http://127.0.0.1:PORT`, for the client commands' `--server`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The filesystem root (panics for S3).
    pub(crate) fn root(&self) -> &Path {
        match &self.backing {
            Backing::Fs(root) => root,
            Backing::S3 { .. } => panic!("an S3-backed registry has no root directory"),
        }
    }

    /// `POST /api/v1/gc`, expecting 200; the report.
    #[track_caller]
    pub(crate) fn gc(&self, dry_run: bool) -> GcReport {
        let request = serde_json::to_vec(&GcRequest { dry_run }).unwrap();
        let r = self.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], request);
        let report: GcReport = r.expect(200, "POST /api/v1/gc").json();
        assert_eq!(report.dry_run, dry_run, "report of a {} run: {report:?}", if dry_run { "dry" } else { "real" });
        report
    }

    /// `POST /api/v1/stagings {"source", "app"}`.
    pub(crate) fn stage(&self, source: &str, app: &str) -> Resp {
        let body = json!({ "source": source, "app": app }).to_string().into_bytes();
        self.http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], body)
    }

    /// Stages and expects 201; the staging.
    #[track_caller]
    pub(crate) fn stage_ok(&self, source: &str, app: &str) -> StagingView {
        self.stage(source, app).expect(201, &format!("staging {source} for {app}")).json()
    }

    /// `GET /api/v1/apps/{app}`.
    pub(crate) fn app(&self, app: &str) -> Resp {
        self.http.get(&format!("/api/v1/apps/{app}"))
    }

    /// The staging ids of an app's history, newest first (empty when it has none).
    pub(crate) fn history(&self, app: &str) -> Vec<String> {
        let r = self.app(app);
        if r.status == 404 {
            return Vec::new();
        }
        let detail: AppDetail = r.expect(200, &format!("GET /api/v1/apps/{app}")).json();
        detail.stagings.into_iter().map(|s| s.record.staging_id.to_string()).collect()
    }

    /// The ids of every app with a staging.
    pub(crate) fn apps(&self) -> Vec<String> {
        let list: AppList = self.http.get("/api/v1/apps").expect(200, "GET /api/v1/apps").json();
        list.apps.into_iter().map(|a| a.app.to_string()).collect()
    }

    /// Every blob file of a filesystem store: digest -> size.
    pub(crate) fn blob_files(&self) -> BTreeMap<String, u64> {
        blob_files(self.root())
    }

    /// Runs a `wharfage` client command against this server (`--server` appended).
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = harness::wharfage(self.dir.path());
        cmd.args(args).args(["--server", &self.url()]);
        harness::run(cmd, Duration::from_secs(60))
    }

    /// Pushes with skopeo from an OCI layout holding `img` as `tag`.
    #[track_caller]
    pub(crate) fn skopeo_push(&self, skopeo: &Skopeo, img: &Img, repo: &str, tag: &str) {
        let dir = self.dir.path().join(format!("push-{}", &img.digest[7..19]));
        write_layout(&dir, &[(tag, img)]);
        skopeo.copy_all(&oci_ref(&dir, tag), &format!("docker://{}/{repo}:{tag}", self.host()));
    }

    /// Pulls `repo` at `reference` (tag or digest) with skopeo and checks it is `img`, byte
    /// for byte: manifest, config and every layer, nothing else.
    #[track_caller]
    pub(crate) fn skopeo_pull_check(&self, skopeo: &Skopeo, repo: &str, reference: &str, img: &Img) {
        let sep = if reference.starts_with("sha256:") { '@' } else { ':' };
        let dir = self.dir.path().join(format!("pull-{}", testkit::unique("p")));
        skopeo.copy_all(&format!("docker://{}/{repo}{sep}{reference}", self.host()), &oci_ref(&dir, "pulled"));
        crate::fixtures::assert_same_blobs(&img.all_blobs(), &read_blobs(&dir), &format!("skopeo pull of {repo}{sep}{reference}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Every blob file under `root/blobs`: digest -> size (in-flight `#N` files excluded).
pub(crate) fn blob_files(root: &Path) -> BTreeMap<String, u64> {
    harness::files_under(&root.join("blobs"))
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().contains('#'))
        .map(|p| {
            let alg = p.parent().unwrap().parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
            (format!("{alg}:{}", p.file_name().unwrap().to_string_lossy()), p.metadata().unwrap().len())
        })
        .collect()
}

/// What is left under `gc/deleting` of a filesystem root (files or folders): a finished
/// collection leaves no flag, and no flag folder either (protections list them).
pub(crate) fn deletion_flags(root: &Path) -> Vec<String> {
    match std::fs::read_dir(root.join("gc/deleting")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading gc/deleting: {e}"),
    }
}

/// The file of a blob in a filesystem store.
pub(crate) fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = &digest[7..];
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// `count` and `bytes` of one kind in a GC report.
pub(crate) fn removed(kind: &Removed) -> (u64, u64) {
    (kind.count, kind.bytes)
}

/// The removal figures of a report (everything but timing and protection counts).
pub(crate) fn figures(r: &GcReport) -> Vec<(&'static str, (u64, u64))> {
    [("stagings", &r.stagings), ("manifests", &r.manifests), ("layer_links", &r.layer_links), ("blobs", &r.blobs), ("uploads", &r.uploads)]
        .into_iter()
        .map(|(k, v)| (k, removed(v)))
        .collect()
}

/// Runs `wharfage fsck` on `backing` with `extra` flags; (exit code, stdout, stderr).
pub(crate) fn fsck(cwd: &Path, backing: &Backing, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = command(cwd);
    cmd.arg("fsck").args(backing.args()).args(extra);
    let out = harness::run(cmd, Duration::from_secs(300));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `wharfage fsck --json`, parsed; asserts the exit code: 1 exactly when data is damaged or
/// missing (orphans are leftovers, not failures), or with `--strict` when anything is found.
#[track_caller]
pub(crate) fn fsck_json(cwd: &Path, backing: &Backing, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = fsck(cwd, backing, &args);
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("fsck --json printed no JSON ({e}): {stdout}\n{stderr}"));
    let problems = report["problems"].as_array().unwrap();
    let failures = problems.iter().filter(|p| p["kind"] != "orphaned").count();
    let leftovers =
        problems.len() - failures + report["stale_uploads"].as_u64().unwrap() as usize + report["temp_files"].as_u64().unwrap() as usize;
    let fails = failures > 0 || (extra.contains(&"--strict") && leftovers > 0);
    assert_eq!(code, i32::from(fails), "fsck exit code with {failures} failure(s), {leftovers} leftover(s): {stdout}\n{stderr}");
    report
}
