//! Cloud Foundry as it is today: `deploy/cf/cf-push-pinned` stages an app with the wharfage
//! CLI (upstream password on stdin) against a private upstream and a wharfage with TLS and
//! access control, then runs `cf push` with the pinned reference and the app's pull
//! credentials. `cf` is a stand-in on `PATH` that records its arguments and environment. No
//! secret may reach the script's output or a command line, and a failed staging pushes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::upstream::{Mode, Upstream, PASSWORD, USER};
use crate::access::{pw, Secured};
use crate::fixtures::{assert_same_blobs, read_blobs, subset};
use crate::harness::{run, BIN};
use crate::round_trip::image_fixture;
use crate::skopeo::{oci_ref, Skopeo};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cf/cf-push-pinned")
}

/// What the stand-in `cf` was called with.
struct CfCall {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

impl CfCall {
    fn env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A folder of stand-ins put first on the script's `PATH`: the wharfage under test, and a `cf`
/// that records its arguments and environment (NUL-separated) beside it and succeeds.
struct StandIns {
    dir: PathBuf,
}

impl StandIns {
    fn new(dir: PathBuf) -> StandIns {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("wharfage")).unwrap();
        let cf = format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{0}/cf.argv'\nenv -0 > '{0}/cf.env'\n", dir.display());
        std::fs::write(bin.join("cf"), cf).unwrap();
        std::fs::set_permissions(bin.join("cf"), std::fs::Permissions::from_mode(0o755)).unwrap();
        StandIns { dir }
    }

    /// The recorded call, if `cf` ran (each run of the script starts from none).
    fn cf_call(&self) -> Option<CfCall> {
        let argv = std::fs::read(self.dir.join("cf.argv")).ok()?;
        let env = std::fs::read(self.dir.join("cf.env")).unwrap();
        let split = |b: &[u8]| -> Vec<String> {
            b.split(|&c| c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        };
        let env = split(&env).into_iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        Some(CfCall { argv: split(&argv), env })
    }

    /// `cf-push-pinned ARGS...` with `stdin` as its standard input, the stager's login in
    /// `WHARFAGE_*` and nothing else of the test's environment.
    fn run_script(&self, s: &Secured, args: &[&str], stdin: &str) -> Output {
        for f in ["cf.argv", "cf.env"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        let input = self.dir.join("stdin");
        std::fs::write(&input, stdin).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"f=$1; shift; exec "$@" < "$f""#, "sh"]).arg(&input).arg(script()).args(args);
        cmd.env_clear()
            .current_dir(&self.dir)
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", self.dir.join("bin").display()))
            .env("HOME", &self.dir)
            .env("NO_COLOR", "1")
            .env("WHARFAGE_SERVER", s.url())
            .env("WHARFAGE_CA_CERT", s.dir.path().join("ca.pem"))
            .env("WHARFAGE_USERNAME", "stager")
            .env("WHARFAGE_PASSWORD", pw("stager"));
        run(cmd, Duration::from_secs(120))
    }
}

#[test]
fn cf_push_pinned_pushes_the_pinned_digest_with_the_apps_pull_credentials() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::PrivateTls);
    let upstream_ca = std::fs::read_to_string(up.ca_pem()).unwrap();
    let s = Secured::start_with(None, &[], Some(&upstream_ca));
    let (layout, img) = image_fixture(&s.dir.path().join("src"), 81);
    up.push(&skopeo, &layout, "v1", "acme/shop");
    let stand_ins = StandIns::new(s.dir.path().join("cf"));
    let source = format!("{}/acme/shop:v1", up.host());

    let help = stand_ins.run_script(&s, &["--help"], "");
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("Usage: cf-push-pinned SOURCE --app APP"));
    assert!(stand_ins.cf_call().is_none(), "--help pushes nothing");

    let out = stand_ins.run_script(&s, &[&source, "--app", "shop", "--upstream-username", USER, "--", "-i", "3"], &format!("{PASSWORD}\n"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cf-push-pinned failed ({}):\n{stdout}\n{stderr}", out.status);
    let call = stand_ins.cf_call().expect("cf was called");
    let image = format!("{}/apps/shop@{}", s.server.host(), img.digest);
    let pull_user = call.argv.get(5).cloned().unwrap_or_default();
    assert!(pull_user.starts_with("shop+"), "the app's pull username: {:?}", call.argv);
    assert_eq!(call.argv, ["push", "shop", "--docker-image", &image, "--docker-username", &pull_user, "-i", "3"]);
    let pull_password = call.env("CF_DOCKER_PASSWORD").expect("CF_DOCKER_PASSWORD in cf's environment").to_string();
    assert!(pull_password.len() >= 43, "a minted pull secret");
    assert_eq!(call.env("WHARFAGE_PASSWORD"), None, "the stager's password is not handed to cf");

    // The credential cf was given pulls the pinned digest from wharfage, byte for byte.
    let pulled = s.dir.path().join("pulled");
    let creds = format!("{pull_user}:{pull_password}");
    let cert_dir = s.cert_dir();
    skopeo.ok(&["copy", "--src-cert-dir", &cert_dir, "--src-creds", &creds, &format!("docker://{image}"), &oci_ref(&pulled, "pulled")]);
    assert_same_blobs(&subset(&layout.blobs, &img.blob_digests()), &read_blobs(&pulled), "the image cf pulls with the app's credentials");

    for secret in [PASSWORD, pw("stager"), pull_password.as_str()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret in the script's output:\n{stdout}\n{stderr}");
        assert!(!call.argv.iter().any(|a| a.contains(secret)), "a secret on cf's command line: {:?}", call.argv);
    }
    assert!(!call.env.iter().any(|(_, v)| v.contains(PASSWORD)), "the upstream password in cf's environment");

    // A staging that fails (no such tag) exits non-zero and never calls cf.
    let missing = format!("{}/acme/shop:v9", up.host());
    let out = stand_ins.run_script(&s, &[&missing, "--app", "shop", "--upstream-username", USER], &format!("{PASSWORD}\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed staging must fail the script");
    assert!(stderr.contains("404") && stderr.contains("nothing pushed"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert!(stand_ins.cf_call().is_none(), "cf must not run after a failed staging");
}
