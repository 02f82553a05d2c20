//! Running the real `wharfage` binary: a [`Server`] guard that starts `wharfage serve`, learns
//! the address it bound from its log, and kills it when dropped; and bounded runs of other
//! commands.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test target.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wharfage");

/// How long a server may take to start serving or to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `wharfage` command that inherits no `WHARFAGE_*` variable from the test's environment
/// and runs in `cwd`, so a default `./wharfage-data` can never land in the source tree.
pub(crate) fn wharfage(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WHARFAGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(cwd).env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

/// A running `wharfage serve`. Dropping it kills the process (SIGKILL) and, when the test is
/// failing, prints the server's log.
pub(crate) struct Server {
    child: Option<Child>,
    /// The address the server bound, as it logged it.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// `wharfage serve --listen 127.0.0.1:0 --root ROOT --log-format json`, run from ROOT's
    /// parent directory.
    pub(crate) fn start(root: &Path) -> Server {
        let cwd = root.parent().unwrap_or(Path::new("/"));
        let mut cmd = wharfage(cwd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"]).arg(root).args(["--log-format", "json"]);
        Server::spawn(cmd)
    }

    /// `wharfage serve --listen 127.0.0.1:0 --log-format json ARGS...` run in `cwd`, with
    /// `env` added to its environment: for servers that are not a plain filesystem root (the
    /// S3 flags and the AWS_* keys, say).
    pub(crate) fn start_with(cwd: &Path, args: &[String], env: &[(&str, &str)]) -> Server {
        let mut cmd = wharfage(cwd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]).args(args);
        cmd.envs(env.iter().copied());
        Server::spawn(cmd)
    }

    /// Starts a prepared `wharfage serve` command, which must log in JSON (flag, file or
    /// environment), and waits until it logs the address it serves on.
    pub(crate) fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Logged before announced, so `log()` holds the serving line once `spawn` returns.
                    let addr = serving_addr(&line);
                    log.lock().unwrap().push(line);
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                }
            })
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = reader.join();
                    panic!(
                        "wharfage did not log \"wharfage is serving\" within {START_TIMEOUT:?}; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    let _ = reader.join();
                    panic!("wharfage exited ({status}) before serving; log:\n{}", log.lock().unwrap().join("\n"));
                }
            }
        };
        Server { child: Some(child), addr, log, reader: Some(reader) }
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The log lines so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Graceful stop: SIGTERM, then the process must exit 0 within the timeout, having logged
    /// that it stopped.
    pub(crate) fn stop(self) {
        self.signal("TERM");
        self.expect_graceful_exit("SIGTERM");
    }

    /// Sends a signal (`TERM` or `INT`) to the server, without waiting. The pid is our
    /// child's, not yet waited for, so it cannot have been reused.
    pub(crate) fn signal(&self, sig: &str) {
        let signo = match sig {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            other => panic!("no signal number known for SIG{other}"),
        };
        testkit::signal(self.pid(), signo).unwrap_or_else(|e| panic!("kill(SIG{sig}) of {} failed: {e}", self.pid()));
    }

    /// Waits for the process to exit after a stop signal: it must exit 0 within the timeout,
    /// having logged that it stopped.
    #[track_caller]
    pub(crate) fn expect_graceful_exit(mut self, after: &str) {
        let status = self.wait(STOP_TIMEOUT);
        let log = self.log().join("\n");
        assert!(status.success(), "wharfage exited with {status} after {after}; log:\n{log}");
        assert!(log.contains("\"stopped\""), "wharfage did not log that it stopped after {after}; log:\n{log}");
    }

    /// `kill -9`: no chance to flush or clean up anything.
    pub(crate) fn kill9(mut self) {
        let child = self.child.as_mut().unwrap();
        child.kill().expect("SIGKILL wharfage");
        let status = self.wait(STOP_TIMEOUT);
        assert_eq!(status.signal(), Some(9), "wharfage should have died of SIGKILL, got {status}");
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = wait_timeout(&mut child, timeout).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wharfage did not exit within {timeout:?}; log:\n{}", self.log().join("\n"))
        });
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if std::thread::panicking() {
            eprintln!("---- wharfage log ({}) ----\n{}\n---- end of wharfage log ----", self.addr, self.log().join("\n"));
        }
    }
}

/// The address in the `wharfage is serving` JSON log line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "wharfage is serving" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion with its output captured, killing it after `timeout`.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let status = wait_timeout(&mut child, timeout);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!("{what} did not finish within {timeout:?}; stderr:\n{}", String::from_utf8_lossy(&stderr));
        }
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// A test's scratch directory.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("wharfage-e2e-").tempdir().unwrap()
}

/// Every regular file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// `strace` attached to a running process, recording the system calls `filter` names
/// (`trace=connect`, say) of all its threads: what the process did, not what it logged.
pub(crate) struct Strace {
    child: Child,
    out: PathBuf,
}

impl Strace {
    pub(crate) fn attach(pid: u32, filter: &str, out: &Path) -> Strace {
        let mut child = Command::new("strace")
            .args(["-f", "-qq", "-e", filter, "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace (scripts/test.sh installs it)");
        // strace says nothing once attached with -qq; give it a moment, then prove it works
        // by its output file existing.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.exists() {
            assert!(Instant::now() < deadline, "strace did not start");
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("strace exited ({status}): {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        Strace { child, out: out.to_path_buf() }
    }

    /// The calls recorded so far, one a line.
    pub(crate) fn calls(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        // SIGINT detaches strace from the traced process, which keeps running. strace is our
        // child, not yet waited for, so its pid cannot have been reused.
        let _ = testkit::signal(self.child.id(), libc::SIGINT);
        let _ = self.child.wait();
    }
}
