//! Real container engines from Debian, each with its own root, state and socket under the
//! test's temporary directory, loopback only: dockerd (`docker.io`), containerd with `ctr`,
//! and podman. Dropping one stops it the way an operator would: containers first, then the
//! daemon, then whatever it left mounted. The tests fail, never skip, when one is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::run;

/// Longest one engine command may take.
const TIMEOUT: Duration = Duration::from_secs(180);

fn need(program: &str, package: &str) {
    assert!(
        testkit::on_path(program),
        "{program} is not installed; the engine tests need the real one: run scripts/test.sh, which installs it \
         (or `apt-get install {package}`)"
    );
}

/// Output as text, for assertions.
pub(crate) fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(1)).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}

/// Waits until `check` succeeds, or fails the test naming `what` and showing `log`.
fn wait_until(what: &str, log: &Path, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not start within 60 s; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A dockerd of the test's own.
pub(crate) struct Dockerd {
    daemon: Option<testkit::ChildGuard>,
    dir: PathBuf,
    /// `/etc/docker/certs.d/<host>` directories this daemon was told to trust (dockerd reads
    /// registry CAs from there only); removed on drop.
    trusted: Vec<PathBuf>,
}

impl Dockerd {
    pub(crate) fn start(dir: &Path) -> Dockerd {
        Dockerd::start_with(dir, &[], &[])
    }

    /// The same, with extra daemon `flags` (`--registry-mirror URL`, say) and `env` added to
    /// the daemon's environment (`HTTPS_PROXY`: dockerd 20.10 has no proxy flags).
    pub(crate) fn start_with(dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> Dockerd {
        need("dockerd", "docker.io");
        let d = dir.join("docker");
        std::fs::create_dir_all(d.join("config")).unwrap();
        let log = d.join("dockerd.log");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root").arg(d.join("root")).arg("--exec-root").arg(d.join("exec")).arg("--pidfile").arg(d.join("pid"));
        cmd.arg("-H").arg(format!("unix://{}", d.join("sock").display()));
        cmd.args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--log-level=warn"]).args(flags).envs(env.iter().copied());
        cmd.stdout(std::fs::File::create(&log).unwrap()).stderr(std::fs::File::create(d.join("dockerd.err")).unwrap());
        let daemon = testkit::spawn(cmd).unwrap();
        let engine = Dockerd { daemon: Some(daemon), dir: d.clone(), trusted: Vec::new() };
        wait_until("dockerd", &d.join("dockerd.err"), || engine.docker(&["version"]).status.success());
        engine
    }

    /// Trusts `ca_pem` for registry `host` (`127.0.0.1:PORT`).
    pub(crate) fn trust(&mut self, host: &str, ca_pem: &str) {
        let dir = PathBuf::from("/etc/docker/certs.d").join(host);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), ca_pem).unwrap();
        self.trusted.push(dir);
    }

    /// The docker command line for this daemon, for scripts that take one.
    pub(crate) fn command_line(&self) -> String {
        format!("docker --config {} -H unix://{}", self.dir.join("config").display(), self.dir.join("sock").display())
    }

    /// `docker ARGS...` against this daemon, with a client config of its own.
    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.arg("--config").arg(self.dir.join("config"));
        cmd.arg("-H").arg(format!("unix://{}", self.dir.join("sock").display()));
        // The classic builder: BuildKit would want to fetch its own images.
        cmd.args(args).env("DOCKER_CLI_HINTS", "false").env("DOCKER_BUILDKIT", "0");
        run(cmd, TIMEOUT)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ps = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ps.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut d) = self.daemon.take() {
            d.signal(libc::SIGTERM);
            if d.wait_timeout(Duration::from_secs(30)).is_none() {
                drop(d);
            }
        }
        unmount_under(&self.dir);
        for t in &self.trusted {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// A containerd of the test's own, driven with `ctr`. runc keeps container state per
/// containerd namespace for the whole machine (`/run/containerd/runc/<namespace>/<id>`), so
/// two tests' containerds in one namespace collide on container ids: each instance has a
/// namespace of its own, and its containers keep their runc state under the test's directory.
pub(crate) struct Containerd {
    daemon: Option<testkit::ChildGuard>,
    dir: PathBuf,
    namespace: String,
}

impl Containerd {
    pub(crate) fn start(dir: &Path) -> Containerd {
        need("containerd", "containerd");
        let d = dir.join("containerd");
        std::fs::create_dir_all(&d).unwrap();
        // A config of its own, so the machine's /etc/containerd/config.toml is never read.
        std::fs::write(d.join("config.toml"), "version = 2\n").unwrap();
        let log = d.join("containerd.log");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(d.join("config.toml")).arg("--root").arg(d.join("root")).arg("--state").arg(d.join("state"));
        cmd.arg("--address").arg(d.join("sock"));
        cmd.stdout(std::fs::File::create(&log).unwrap()).stderr(std::fs::File::create(&log).unwrap());
        let daemon = testkit::spawn(cmd).unwrap();
        let engine = Containerd { daemon: Some(daemon), dir: d.clone(), namespace: testkit::unique("wharfage") };
        wait_until("containerd", &log, || engine.ctr(&["version"]).status.success());
        engine
    }

    /// `ctr ARGS...` in this daemon's own namespace.
    pub(crate) fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(self.dir.join("sock")).args(["-n", &self.namespace]).args(args);
        run(cmd, TIMEOUT)
    }

    /// `ctr run ARGS...`, with runc's state under this daemon's directory rather than the
    /// machine-wide default.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let runc_root = self.dir.join("runc").to_string_lossy().into_owned();
        let mut all = vec!["run", "--runc-root", &runc_root];
        all.extend_from_slice(args);
        self.ctr(&all)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = self.ctr(&["tasks", "ls", "-q"]);
        for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
            let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "delete", "-f", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&containers.stdout).split_whitespace() {
            let _ = self.ctr(&["containers", "delete", id]);
        }
        if let Some(mut d) = self.daemon.take() {
            d.signal(libc::SIGTERM);
            if d.wait_timeout(Duration::from_secs(30)).is_none() {
                drop(d);
            }
        }
        unmount_under(&self.dir);
    }
}

/// podman with its own storage root, run root and configuration (daemonless).
pub(crate) struct Podman {
    dir: PathBuf,
}

impl Podman {
    pub(crate) fn new(dir: &Path) -> Podman {
        need("podman", "podman");
        let d = dir.join("podman");
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("registries.conf"), "").unwrap();
        // podman fails a pull when REGISTRY_AUTH_FILE names no file, even if it needs no login.
        std::fs::write(d.join("auth.json"), r#"{"auths":{}}"#).unwrap();
        std::fs::write(d.join("policy.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        Podman { dir: d }
    }

    /// `podman ARGS...` with this instance's storage and configuration.
    pub(crate) fn podman(&self, args: &[&str]) -> Output {
        let d = &self.dir;
        let mut cmd = Command::new("podman");
        cmd.arg("--root").arg(d.join("root")).arg("--runroot").arg(d.join("run"));
        // runc, not crun: crun refuses this machine's hybrid cgroup hierarchy.
        cmd.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]);
        cmd.arg("--tmpdir").arg(d.join("tmp"));
        cmd.args(args);
        cmd.env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        cmd.env("REGISTRY_AUTH_FILE", d.join("auth.json"));
        cmd.env("TMPDIR", d.join("tmp"));
        run(cmd, TIMEOUT)
    }

    /// The signature policy flag value (pull and push take it).
    pub(crate) fn policy(&self) -> String {
        self.dir.join("policy.json").to_string_lossy().into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        unmount_under(&self.dir);
    }
}
