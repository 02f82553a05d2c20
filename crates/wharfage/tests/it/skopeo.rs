//! The real skopeo, run against the server under test in an environment of its own: a
//! permissive signature policy and empty registry configuration in a temporary directory (the
//! user's policy, registries.conf and credentials are never read), plain HTTP to loopback,
//! anonymous access.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::run;

/// Longest a single skopeo command may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(180);

/// skopeo with its configuration in a private temporary directory.
pub(crate) struct Skopeo {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Skopeo {
    /// Finds skopeo on PATH or at /usr/bin/skopeo. Fails the test when it is missing: the
    /// end-to-end tests must never pass by skipping.
    pub(crate) fn new() -> Skopeo {
        let bin = find_skopeo().unwrap_or_else(|| {
            panic!(
                "skopeo is not installed (not on PATH, not at /usr/bin/skopeo). The end-to-end tests need the real \
                 skopeo: run scripts/test.sh, which installs it (or `apt-get install skopeo`)."
            )
        });
        let dir = tempfile::Builder::new().prefix("wharfage-e2e-skopeo-").tempdir().unwrap();
        std::fs::write(dir.path().join("policy.json"), br#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        std::fs::write(dir.path().join("registries.conf"), b"").unwrap();
        std::fs::create_dir(dir.path().join("registries.d")).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Skopeo { bin, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--policy").arg(d.join("policy.json"));
        cmd.arg("--registries.d").arg(d.join("registries.d"));
        cmd.arg("--tmpdir").arg(d.join("tmp"));
        cmd.args(args);
        cmd.env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        cmd.env("REGISTRY_AUTH_FILE", d.join("auth.json"));
        for v in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            cmd.env_remove(v);
        }
        cmd
    }

    /// Runs `skopeo ARGS...`, returning its output whatever the exit status.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        run(self.command(args), TIMEOUT)
    }

    /// Runs `skopeo ARGS...`, failing the test (with skopeo's stderr) unless it succeeds.
    #[track_caller]
    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "skopeo {} failed ({}):\n{}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `skopeo copy --all --preserve-digests SRC DST` over plain HTTP, anonymously.
    #[track_caller]
    pub(crate) fn copy_all(&self, src: &str, dst: &str) {
        self.copy(&[], &["--all"], src, dst);
    }

    /// `skopeo --override-arch ARCH copy SRC DST`: what a client of linux/ARCH pulls (one
    /// image, the index left behind), digests preserved.
    #[track_caller]
    pub(crate) fn copy_platform(&self, src: &str, dst: &str, arch: &str) {
        self.copy(&["--override-os", "linux", "--override-arch", arch], &[], src, dst);
    }

    /// `skopeo [GLOBAL...] copy [OPTIONS...] --preserve-digests SRC DST` over plain HTTP,
    /// anonymously; fails the test unless it succeeds.
    #[track_caller]
    fn copy(&self, global: &[&str], options: &[&str], src: &str, dst: &str) {
        let mut args = global.to_vec();
        args.push("copy");
        args.extend_from_slice(options);
        args.extend([
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            src,
            dst,
        ]);
        self.ok(&args);
    }

    /// `skopeo inspect [EXTRA...] docker://IMAGE`; the output whatever the exit status.
    pub(crate) fn inspect(&self, image: &str, extra: &[&str]) -> Output {
        let mut args = vec!["inspect", "--tls-verify=false", "--no-creds"];
        args.extend_from_slice(extra);
        let image = format!("docker://{image}");
        args.push(&image);
        self.run(&args)
    }

    /// `skopeo inspect`, parsed; fails the test unless it succeeds.
    #[track_caller]
    pub(crate) fn inspect_json(&self, image: &str, extra: &[&str]) -> serde_json::Value {
        let out = self.inspect(image, extra);
        assert!(out.status.success(), "skopeo inspect {image} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `skopeo --override-os linux --override-arch ARCH inspect docker://IMAGE`, parsed: how a
    /// client of that platform sees an index.
    #[track_caller]
    pub(crate) fn inspect_platform_json(&self, image: &str, arch: &str) -> serde_json::Value {
        let image = format!("docker://{image}");
        let args = ["--override-os", "linux", "--override-arch", arch, "inspect", "--tls-verify=false", "--no-creds", &image];
        serde_json::from_slice(&self.ok(&args).stdout).unwrap()
    }

    /// `skopeo inspect --raw`: the manifest bytes exactly as served.
    #[track_caller]
    pub(crate) fn inspect_raw(&self, image: &str) -> Vec<u8> {
        let out = self.inspect(image, &["--raw"]);
        assert!(out.status.success(), "skopeo inspect --raw {image} failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `skopeo delete docker://IMAGE`; fails the test unless it succeeds.
    #[track_caller]
    pub(crate) fn delete(&self, image: &str) {
        self.ok(&["delete", "--tls-verify=false", "--no-creds", &format!("docker://{image}")]);
    }
}

fn find_skopeo() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("skopeo")).chain([PathBuf::from("/usr/bin/skopeo")]).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// `oci:DIR:TAG`
pub(crate) fn oci_ref(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}
