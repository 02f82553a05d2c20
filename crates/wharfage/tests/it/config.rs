//! Configuration of `wharfage serve`: the TOML file (`--config`), `WHARFAGE_*` environment
//! variables over it, flags over both; a bad file is a clear error and a non-zero exit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::free_ports;

use crate::client::Http;
use crate::fixtures::{sha256, Rng};
use crate::harness::{files_under, run, tempdir, wharfage, Server};

/// Writes `text` as the config file `wharfage.toml` in `dir`.
fn config_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("wharfage.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A TOML string literal (the paths here have no quotes or backslashes).
fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Checks the server answers `/v2/` and stores a pushed blob under `root`.
#[track_caller]
fn assert_serves_from(server: &Server, root: &Path) {
    let http = Http::new(server.addr);
    let base = http.get("/v2/").expect(200, "GET /v2/");
    assert_eq!(base.header("docker-distribution-api-version"), Some("registry/2.0"));
    let data = Rng::new(server.addr.port().into()).bytes(4096);
    let digest = sha256(&data);
    http.send(
        "POST",
        &format!("/v2/cfg/test/blobs/uploads/?digest={digest}"),
        &[("content-type", "application/octet-stream")],
        data.clone(),
    )
    .expect(201, "monolithic upload");
    let stored = files_under(root).into_iter().any(|f| std::fs::read(&f).map(|b| b == data).unwrap_or(false));
    assert!(stored, "the blob was not stored under the configured root {}", root.display());
}

/// Runs a `wharfage` command expected to fail fast; returns its stderr.
#[track_caller]
fn expect_failure(cmd: Command, what: &str) -> String {
    let out = run(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what}: wharfage exited successfully; stderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{what}: exit status {}; stderr:\n{stderr}", out.status);
    stderr
}

#[test]
fn config_file_sets_listen_root_and_log_format() {
    let tmp = tempdir();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let root = tmp.path().join("root-from-config");
    let [port] = free_ports();
    let file = config_file(
        tmp.path(),
        &format!("listen = \"127.0.0.1:{port}\"\nroot = {}\nlog_format = \"json\"\nlog = \"info\"\n", toml_str(&root)),
    );

    let mut cmd = wharfage(&cwd);
    cmd.args(["serve", "--config"]).arg(&file);
    let server = Server::spawn(cmd);
    assert_eq!(server.addr.to_string(), format!("127.0.0.1:{port}"), "listen from the config file");
    assert_serves_from(&server, &root);
    assert!(!cwd.join("wharfage-data").exists(), "the default root was used instead of the configured one");
    server.stop();

    // WHARFAGE_CONFIG names the file just as well.
    let mut cmd = wharfage(&cwd);
    cmd.arg("serve").env("WHARFAGE_CONFIG", &file);
    let server = Server::spawn(cmd);
    assert_eq!(server.addr.port(), port, "listen from the file named by WHARFAGE_CONFIG");
    server.stop();
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let tmp = tempdir();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let [file_port, env_port, flag_port] = free_ports();
    let file_root = tmp.path().join("root-file");
    let env_root = tmp.path().join("root-env");
    let file = config_file(tmp.path(), &format!("listen = \"127.0.0.1:{file_port}\"\nroot = {}\n", toml_str(&file_root)));

    // WHARFAGE_LISTEN and WHARFAGE_ROOT alone, no file.
    let mut cmd = wharfage(&cwd);
    cmd.args(["serve", "--log-format", "json"]).env("WHARFAGE_LISTEN", format!("127.0.0.1:{env_port}")).env("WHARFAGE_ROOT", &env_root);
    let server = Server::spawn(cmd);
    assert_eq!(server.addr.port(), env_port, "listen from WHARFAGE_LISTEN");
    assert_serves_from(&server, &env_root);
    server.stop();

    // The environment wins over the file (WHARFAGE_LOG_FORMAT included).
    let mut cmd = wharfage(&cwd);
    cmd.arg("serve").arg("--config").arg(&file).env("WHARFAGE_LISTEN", format!("127.0.0.1:{env_port}")).env("WHARFAGE_LOG_FORMAT", "json");
    let server = Server::spawn(cmd);
    assert_eq!(server.addr.port(), env_port, "WHARFAGE_LISTEN over the file's listen");
    assert_serves_from(&server, &file_root);
    server.stop();

    // A flag wins over the environment.
    let mut cmd = wharfage(&cwd);
    cmd.args(["serve", "--log-format", "json", "--listen", &format!("127.0.0.1:{flag_port}"), "--config"])
        .arg(&file)
        .env("WHARFAGE_LISTEN", format!("127.0.0.1:{env_port}"));
    let server = Server::spawn(cmd);
    assert_eq!(server.addr.port(), flag_port, "--listen over WHARFAGE_LISTEN");
    server.stop();
}

#[test]
fn unknown_config_key_is_a_clear_error() {
    let tmp = tempdir();
    let file = config_file(tmp.path(), "listen = \"127.0.0.1:0\"\nrooot = \"/tmp/nowhere\"\n");
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--config"]).arg(&file);
    let stderr = expect_failure(cmd, "a config file with an unknown key");
    assert!(stderr.contains("rooot"), "the error names the unknown key; stderr:\n{stderr}");
    assert!(stderr.contains("unknown field"), "the error says the key is unknown; stderr:\n{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "the error names the file; stderr:\n{stderr}");
    assert!(stderr.contains("`root`"), "the error lists the valid keys; stderr:\n{stderr}");
    assert!(!tmp.path().join("wharfage-data").exists(), "a bad config still created a root");
}

#[test]
fn bad_config_value_missing_file_and_busy_port_are_clear_errors() {
    let tmp = tempdir();

    let file = config_file(tmp.path(), "listen = 5000\n");
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--config"]).arg(&file);
    let stderr = expect_failure(cmd, "a config value of the wrong type");
    assert!(stderr.contains("listen") && stderr.contains(&file.display().to_string()), "names the key and the file; stderr:\n{stderr}");

    let missing = tmp.path().join("absent.toml");
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--config"]).arg(&missing);
    let stderr = expect_failure(cmd, "a missing config file");
    assert!(stderr.contains(&missing.display().to_string()), "names the missing file; stderr:\n{stderr}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--listen", &addr, "--root"]).arg(tmp.path().join("root"));
    let stderr = expect_failure(cmd, "a listen address in use");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "names the address; stderr:\n{stderr}");
}

#[test]
fn blob_cache_settings_are_checked() {
    let tmp = tempdir();
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--blob-cache-dir"]).arg(tmp.path().join("cache"));
    let stderr = expect_failure(cmd, "a blob cache on the filesystem backend");
    assert!(stderr.contains("blob_cache_dir is for --storage s3 only"), "says the cache is for S3; stderr:\n{stderr}");

    let file = config_file(tmp.path(), "storage = \"s3\"\ns3_endpoint = \"http://127.0.0.1:9\"\ns3_bucket = \"b\"\nblob_cache_dir = \"c\"\nblob_cache_size = \"12 parsecs\"\n");
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--config"]).arg(&file);
    let stderr = expect_failure(cmd, "a blob cache size that is not a size");
    assert!(stderr.contains("blob_cache_size \"12 parsecs\""), "names the key and the value; stderr:\n{stderr}");
    assert!(!tmp.path().join("c").exists(), "a bad config still created the cache");
}

#[test]
fn tag_cache_ttl_settings_are_checked() {
    let tmp = tempdir();
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--tag-cache-ttl", "5s", "--root"]).arg(tmp.path().join("root"));
    let stderr = expect_failure(cmd, "a tag cache TTL on the filesystem backend");
    assert!(stderr.contains("tag_cache_ttl is for --storage s3 only"), "says the TTL is for S3; stderr:\n{stderr}");

    let s3 = ["serve", "--storage", "s3", "--s3-endpoint", "http://127.0.0.1:9", "--s3-bucket", "b"];
    let mut cmd = wharfage(tmp.path());
    cmd.args(s3).env("WHARFAGE_TAG_CACHE_TTL", "soon");
    let stderr = expect_failure(cmd, "a tag cache TTL from the environment that is not a duration");
    assert!(stderr.contains("tag_cache_ttl \"soon\""), "names the key and the value; stderr:\n{stderr}");

    let file = config_file(
        tmp.path(),
        "storage = \"s3\"\ns3_endpoint = \"http://127.0.0.1:9\"\ns3_bucket = \"b\"\ntag_cache_ttl = \"2 fortnights\"\n",
    );
    let mut cmd = wharfage(tmp.path());
    cmd.args(["serve", "--config"]).arg(&file);
    let stderr = expect_failure(cmd, "a tag cache TTL in the file that is not a duration");
    assert!(stderr.contains("tag_cache_ttl \"2 fortnights\""), "names the key and the value; stderr:\n{stderr}");
}

/// `fsck` takes the storage settings only: a serving flag is refused by name, and its help
/// lists no `--listen` or `--gc-interval`.
#[test]
fn fsck_takes_only_storage_flags() {
    let tmp = crate::harness::tempdir();
    let mut cmd = crate::harness::wharfage(tmp.path());
    cmd.args(["fsck", "--listen", "127.0.0.1:0"]);
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "names the flag: {stderr}");
    let mut help = crate::harness::wharfage(tmp.path());
    help.args(["fsck", "--help"]);
    let text = String::from_utf8_lossy(&crate::harness::run(help, std::time::Duration::from_secs(30)).stdout).into_owned();
    assert!(text.contains("--root") && text.contains("--s3-bucket"), "{text}");
    assert!(!text.contains("--listen") && !text.contains("--gc-interval"), "{text}");
}
