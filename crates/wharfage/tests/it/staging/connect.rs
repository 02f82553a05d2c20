//! What a failed connection says, from the CLI to wharfage and from wharfage to an upstream:
//! the cause (nothing listening, an untrusted certificate, plain HTTP where TLS was expected
//! or the reverse) and the setting that fixes it. And a self-signed certificate made by the
//! usual `openssl req -x509` recipe (a CA certificate, `CA:TRUE`) is trusted as its own
//! anchor, by the CLI (`WHARFAGE_CA_CERT`) and for stagings (`--upstream-ca`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use super::auth::private_image;
use super::upstream::{Mode, Upstream};
use super::{error_message, Wharf};
use crate::harness::{self, run, Server};
use crate::skopeo::Skopeo;

/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext
/// subjectAltName=DNS:localhost,IP:127.0.0.1`, as guides write it: (certificate, key) paths.
fn openssl_self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("selfsigned.crt"), dir.join("selfsigned.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl req -x509: {}", String::from_utf8_lossy(&out.stderr));
    let text = Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&cert).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"), "the recipe makes a CA certificate: the case under test");
    (cert, key)
}

/// `wharfage ARGS...` in `dir`, with `env` (and no inherited `WHARFAGE_*`): (success, stderr).
fn cli(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (bool, String) {
    let mut cmd = harness::wharfage(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = run(cmd, Duration::from_secs(60));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_cli_names_why_it_cannot_reach_the_server_and_the_fix() {
    let dir = harness::tempdir();
    let d = dir.path();
    let (cert, key) = openssl_self_signed(d);
    let tls = Server::start_with(
        d,
        &["--root".into(), d.join("tls-root").display().to_string(), "--tls-cert".into(), cert.display().to_string()]
            .into_iter()
            .chain(["--tls-key".into(), key.display().to_string()])
            .collect::<Vec<_>>(),
        &[],
    );
    let plain = Server::start(&d.join("plain-root"));
    let (tls_port, plain_port) = (tls.addr.port(), plain.addr.port());

    // Nothing listens.
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let (ok, err) = cli(d, &["apps", "--server", &closed], &[]);
    assert!(!ok);
    assert!(err.contains("connection refused") && err.contains("WHARFAGE_SERVER"), "{err}");

    // A certificate the CLI does not trust: the reason, and WHARFAGE_CA_CERT.
    let https = format!("https://127.0.0.1:{tls_port}");
    let (ok, err) = cli(d, &["apps", "--server", &https], &[]);
    assert!(!ok);
    assert!(err.contains("TLS certificate is not trusted") && err.contains("self-signed") && err.contains("WHARFAGE_CA_CERT"), "{err}");
    assert!(!err.contains("error sending request"), "the cause, not reqwest's summary: {err}");

    // The openssl certificate itself as WHARFAGE_CA_CERT: trusted, by address and by name.
    for server in [https.clone(), format!("https://localhost:{tls_port}")] {
        let (ok, err) = cli(d, &["apps", "--server", &server], &[("WHARFAGE_CA_CERT", &cert)]);
        assert!(ok, "WHARFAGE_CA_CERT={} against {server}: {err}", cert.display());
    }
    // https:// to a plain-HTTP server, http:// to a TLS one: the scheme to use instead.
    let (ok, err) = cli(d, &["gc", "--dry-run", "--server", &format!("https://127.0.0.1:{plain_port}")], &[]);
    assert!(!ok);
    assert!(err.contains("plain HTTP") && err.contains(&format!("--server http://127.0.0.1:{plain_port}")), "{err}");
    let (ok, err) = cli(d, &["apps", "--server", &format!("http://127.0.0.1:{tls_port}")], &[]);
    assert!(!ok);
    assert!(err.contains("speaks TLS") && err.contains(&format!("--server https://127.0.0.1:{tls_port}")), "{err}");
}

#[test]
fn a_staging_names_a_plain_http_or_untrusted_upstream_and_the_flag_that_fixes_it() {
    let skopeo = Skopeo::new();
    let plain = Upstream::start(Mode::Anonymous);
    let tls = Upstream::start(Mode::Tls);
    let wharf = Wharf::start(&[]);
    let (l, _) = private_image(&wharf, 811);
    plain.push(&skopeo, &l, "v1", "plain/app");
    tls.push(&skopeo, &l, "v1", "tls/app");

    // A plain-HTTP upstream that is not an insecure registry: the API's answer...
    let source = format!("{}/plain/app:v1", plain.host());
    let resp = wharf.stage(&source, "plain-app", json!({})).expect(502, "plain HTTP where HTTPS was expected");
    let message = error_message(&resp, "UPSTREAM_TLS");
    assert!(message.contains("plain HTTP"), "{message}");
    assert!(message.contains(&format!("--insecure-registry {}", plain.host())), "{message}");
    assert!(!message.contains("InvalidContentType"), "{message}");
    // ... and the CLI's.
    let server = format!("http://{}", wharf.host());
    let (ok, err) = cli(&wharf.scratch(""), &["stage", &source, "--app", "plain-app", "--server", &server], &[]);
    assert!(!ok);
    assert!(err.contains("UPSTREAM_TLS") && err.contains(&format!("--insecure-registry {}", plain.host())), "{err}");

    // A TLS upstream whose certificate is not trusted.
    let source = format!("{}/tls/app:v1", tls.host());
    let resp = wharf.stage(&source, "tls-app", json!({})).expect(502, "an untrusted certificate");
    let message = error_message(&resp, "UPSTREAM_TLS");
    assert!(message.contains("not trusted") && message.contains("unknown authority"), "{message}");
    assert!(message.contains("--upstream-ca"), "{message}");
    wharf.app("plain-app").expect(404, "nothing staged");
    wharf.app("tls-app").expect(404, "nothing staged");
}

#[test]
fn an_openssl_self_signed_certificate_is_trusted_by_upstream_ca() {
    let skopeo = Skopeo::new();
    let dir = harness::tempdir();
    let (cert, key) = openssl_self_signed(dir.path());
    let up = Upstream::start_tls_with(&std::fs::read_to_string(&cert).unwrap(), &std::fs::read_to_string(&key).unwrap());
    let wharf = Wharf::start(&["--upstream-ca".to_string(), cert.display().to_string()]);
    let (l, img) = private_image(&wharf, 812);
    up.push(&skopeo, &l, "v1", "selfsigned/app");
    let r = wharf.stage_ok(&format!("{}/selfsigned/app:v1", up.host()), "selfsigned-app", json!({}));
    assert_eq!(r.record.digest.to_string(), img.digest);
    assert_eq!(up.blob_gets(&img.config), 1, "fetched over TLS from the upstream");
}
