//! Child processes that cannot outlive the test process, and signals to them.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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
            // A child that already exited (not yet reaped) ignores it, which is fine here.
            let _ = signal(c.id(), sig);
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

    /// Kills the child (SIGKILL) and reaps it now, as dropping the guard would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` (e.g. `libc::SIGTERM`) to the process `pid`, without waiting. The caller
/// makes sure `pid` is its own child not yet waited for, so that it cannot have been reused.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    match unsafe { libc::kill(pid as i32, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
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
#[allow(unsafe_code)]
pub fn spawn(mut cmd: Command) -> std::io::Result<ChildGuard> {
    /// A command to start, and where to send the started child (or the error).
    type Job = (Command, mpsc::Sender<std::io::Result<std::process::Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<std::process::Child>>)>();
        std::thread::spawn(move || {
            // PR_SET_PDEATHSIG fires when the *thread* that forked exits: this one never does.
            for (mut cmd, reply) in rx {
                // SAFETY: the closure runs in the forked child before exec, where only
                // async-signal-safe calls are sound: it makes one prctl(2) system call, with
                // no allocation, lock or access to the parent's memory.
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
