//! `wharfage stage` and `wharfage apps` against a running server: `--json` prints exactly the
//! API's result object on stdout, the password comes from stdin and never shows, a wrong
//! password exits non-zero with a message naming the registry.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use server::mgmt::types::{AppList, StagingView};

use super::auth::{assert_no_credentials_anywhere, private_image, verbose_wharf};
use super::images::expected_metadata;
use super::upstream::{Mode, Upstream, PASSWORD, USER};
use super::Wharf;
use crate::harness::{run, BIN};
use crate::skopeo::Skopeo;

/// `printf '%s\n' "$PASSWORD" | wharfage ARGS...` (or without stdin when `password` is None),
/// run in the test's scratch directory with no `WHARFAGE_*` variable inherited.
fn wharfage_cli(wharf: &Wharf, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new("sh");
    cmd.current_dir(wharf.scratch(""));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WHARFAGE_") {
            cmd.env_remove(k);
        }
    }
    let script = match password {
        Some(_) => r#"printf '%s\n' "$PW" | "$BIN" "$@""#,
        None => r#""$BIN" "$@" </dev/null"#,
    };
    cmd.arg("-c").arg(script).arg("sh").args(args).env("BIN", BIN).env("NO_COLOR", "1");
    if let Some(pw) = password {
        cmd.env("PW", pw);
    }
    run(cmd, Duration::from_secs(120))
}

#[test]
fn cli_stage_and_apps() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Basic);
    let wharf = verbose_wharf(&up);
    let (l, img) = private_image(&wharf, 601);
    up.push(&skopeo, &l, "v1", "private/app");
    let server = format!("http://{}", wharf.host());
    let source = format!("{}/private/app:v1", up.host());

    let out = wharfage_cli(
        &wharf,
        &["stage", &source, "--app", "cli-app", "--server", &server, "--username", USER, "--password-stdin", "--json"],
        Some(PASSWORD),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "wharfage stage failed ({}): {stderr}", out.status);
    let result: StagingView = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one staging ({e}): {stdout:?}"));
    assert_eq!(stdout.trim().lines().count(), 1, "nothing but the result on stdout: {stdout:?}");
    assert_eq!(result.record.app.as_str(), "cli-app");
    assert_eq!(result.record.digest.to_string(), img.digest);
    assert_eq!(result.image, format!("{}/apps/cli-app@{}", wharf.host(), img.digest));
    assert_eq!(result.record.metadata, expected_metadata("amd64"));
    assert_eq!(result.record.blobs_downloaded, 3);
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    // Exactly the API's result object: the same fields as a staging through the API (compared
    // as raw JSON objects, so a field that neither side's type knows still counts).
    let api = wharf.stage(&source, "api-app", json!({ "credentials": { "username": USER, "password": PASSWORD } }));
    let api: Value = serde_json::from_slice(&api.expect(201, "staging through the API").body).unwrap();
    let cli: Value = serde_json::from_str(stdout.trim()).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&cli), keys(&api), "the CLI's --json object and the API's result differ in fields");

    // Without --json: the pinned reference and the run metadata for a person.
    let out = wharfage_cli(
        &wharf,
        &["stage", &source, "--app", "cli-app", "--server", &server, "--username", USER, "--password-stdin"],
        Some(PASSWORD),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{}/apps/cli-app@{}", wharf.host(), img.digest)), "{stdout}");
    for text in ["/usr/local/bin/app --serve", "1000:1000", "/srv/app", "7070/tcp", "APP_ARCH=amd64"] {
        assert!(stdout.contains(text), "{text:?} missing from:\n{stdout}");
    }

    // A wrong password: non-zero exit, a message that names the registry, nothing on stdout.
    let out = wharfage_cli(
        &wharf,
        &["stage", &source, "--app", "cli-wrong", "--server", &server, "--username", USER, "--password-stdin", "--json"],
        Some("not-the-Pw-123"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "a wrong password must fail the command");
    assert!(out.stdout.is_empty(), "stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("401") && stderr.contains(&up.host()) && stderr.contains("refused"), "unclear message: {stderr}");
    assert!(!stderr.contains("not-the-Pw-123"), "{stderr}");

    // Missing credentials, and a server that is not there.
    let out = wharfage_cli(&wharf, &["stage", &source, "--app", "cli-anon", "--server", &server, "--json"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("credentials"), "{}", String::from_utf8_lossy(&out.stderr));
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let out = wharfage_cli(&wharf, &["stage", &source, "--app", "x", "--server", &nowhere], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&nowhere[7..]), "{}", String::from_utf8_lossy(&out.stderr));

    // wharfage apps: the list, and one app's history (two stagings, the current one marked).
    let out = wharfage_cli(&wharf, &["apps", "--server", &server, "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let apps: AppList = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = apps.apps.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(names, ["api-app", "cli-app"]);
    let out = wharfage_cli(&wharf, &["apps", "cli-app", "--server", &server], None);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with('*')).count(), 1, "{stdout}");
    assert!(stdout.contains(result.record.staging_id.as_str()), "{stdout}");
    let out = wharfage_cli(&wharf, &["apps", "no-such-app", "--server", &server], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));

    assert_no_credentials_anywhere(&wharf);
}
