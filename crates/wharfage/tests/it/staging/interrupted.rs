//! Stagings cut short: an upstream that stops answering (504 after the read timeout, and a
//! later staging works), a server killed in the middle of a download (the partial file is
//! a leftover that the next start removes), and a shared download that loses a race with
//! garbage collection (retried, and it succeeds).

use std::time::{Duration, Instant};

use serde_json::json;
use server::mgmt::types::StagingView;

use super::images::{image, layer};
use super::proxy::{Faults, Proxy};
use super::upstream::{Mode, Upstream};
use super::{error_message, insecure, layout, Wharf};
use crate::client::request_head;
use crate::fixtures::{assert_same_blobs, subset, Rng, OCI_MANIFEST};
use crate::harness::files_under;
use crate::skopeo::Skopeo;

#[test]
fn a_hung_upstream_fails_the_staging_with_504_after_the_read_timeout() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let mut args = insecure(&[up.host()]);
    args.extend(["--upstream-timeout", "1s"].map(String::from));
    let wharf = Wharf::start(&args);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(504);
    let base = layer(&mut l, &mut rng, "base.bin", 20_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "hung/app");

    up.pause(true);
    let started = Instant::now();
    let r = wharf.stage(&format!("{}/hung/app:v1", up.host()), "hung", json!({})).expect(504, "a hung upstream");
    let took = started.elapsed();
    up.pause(false);
    let message = error_message(&r, "UPSTREAM_TIMEOUT");
    assert!(message.contains(&up.host()), "the message names the registry: {message}");
    // Every attempt waits the 1 s read timeout; five attempts with back-off between them.
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(30), "gave up after {took:?}");
    assert!(wharf.apps().apps.is_empty(), "nothing of the app is visible");

    // The same staging works once the upstream answers again.
    let staged = wharf.stage_ok(&format!("{}/hung/app:v1", up.host()), "hung", json!({}));
    assert_eq!(staged.record.digest.to_string(), img.digest);
}

/// A staging killed (`kill -9`) in the middle of a layer's download leaves its partial file
/// under the root's `tmp/`: fsck reports it as a leftover (and still exits 0, since no data
/// is damaged), and the next start removes it.
#[test]
fn a_download_killed_midway_leaves_a_temp_file_that_the_next_start_removes() {
    use std::io::Write;

    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    // Blob responses stop after 3 MiB and the connection stays open: a download that hangs.
    let proxy = Proxy::start(up.port, Faults { stall_after: Some(3 << 20), ..Faults::default() });
    let dir = crate::harness::tempdir();
    let root = dir.path().join("root");
    let start = || {
        let mut cmd = crate::harness::wharfage(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--insecure-registry", &proxy.host(), "--root"]).arg(&root);
        crate::harness::Server::spawn(cmd)
    };
    let server = start();
    let mut l = layout(&dir.path().join("src"));
    let mut rng = Rng::new(509);
    let big = layer(&mut l, &mut rng, "big.bin", 8 << 20);
    let img = image(&mut l, "amd64", &[&big]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "killed/app");

    // The staging request, sent and never read: it hangs in the big layer's download.
    let body = serde_json::to_vec(&json!({ "source": format!("{}/killed/app:v1", proxy.host()), "app": "killed" })).unwrap();
    let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
    let head = request_head("POST", "/api/v1/stagings", &server.host(), &[("content-type", "application/json")], Some(body.len() as u64));
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body).unwrap();
    let tmp = root.join("tmp");
    let partial = |min: u64| files_under(&tmp).iter().any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= min));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !partial(1 << 20) {
        assert!(Instant::now() < deadline, "no partial download appeared under {}: {:?}", tmp.display(), files_under(&root));
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill9();
    drop(conn);
    assert!(partial(1 << 20), "the partial download is gone after kill -9");

    let mut cmd = crate::harness::wharfage(dir.path());
    cmd.args(["fsck", "--json", "--root"]).arg(&root);
    let out = crate::harness::run(cmd, Duration::from_secs(60));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["temp_files"].as_u64().unwrap() >= 1, "fsck reports the temporary file: {report}");
    assert!(report["temp_bytes"].as_u64().unwrap() >= 1 << 20, "{report}");
    assert_eq!(out.status.code(), Some(0), "a temporary file is a leftover, not a failure: {report}");

    let server = start();
    assert_eq!(files_under(&tmp), Vec::<std::path::PathBuf>::new(), "the restart removed what the killed download left");
    server.stop();
}

/// A download shared by stagings that loses a race with garbage collection (a collector
/// flags the blob for deletion while its bytes are on the way) fails with the store's own
/// error, not an opaque copy of it: the staging sees a lost race, runs again once the
/// collector is done, and succeeds (before, it answered 500 with no retry).
#[test]
fn a_shared_download_that_loses_a_gc_race_is_retried() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    // Blob requests are held 1.5 s: time to flag the blob while its download is under way.
    let proxy = Proxy::start(up.port, Faults { delay_blobs: Some(Duration::from_millis(1500)), ..Faults::default() });
    let wharf = Wharf::for_hosts(&[proxy.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(510);
    let big = layer(&mut l, &mut rng, "big.bin", 200_000);
    let img = image(&mut l, "amd64", &[&big]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "raced/app");
    let layer_digest = big.digest.clone();

    let source = format!("{}/raced/app:v1", proxy.host());
    let staging = {
        let http = crate::client::Http::new(wharf.server.addr);
        let body = serde_json::to_vec(&json!({ "source": source, "app": "raced" })).unwrap();
        std::thread::spawn(move || http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], body))
    };
    // Once the layer's download has started (its plan passed), a collector flags it, as a
    // running collection does with the blobs it removes; it finishes 3 s later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.heads().iter().any(|h| h.contains(&format!("/blobs/{layer_digest}"))) {
        assert!(Instant::now() < deadline, "the layer download never started: {:#?}", proxy.heads());
        std::thread::sleep(Duration::from_millis(10));
    }
    // A batch of a run's flags: a file naming the digests it removes, one per line.
    let flag = wharf.root.join("gc/deleting/test-run/00000000");
    std::fs::create_dir_all(flag.parent().unwrap()).unwrap();
    std::fs::write(&flag, format!("sha256:{}\n{layer_digest}\n", "0".repeat(64))).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&flag).unwrap();

    let r = staging.join().unwrap();
    assert_eq!(r.status, 201, "the staging is retried after the lost race: {}", r.text());
    let staged: StagingView = r.json();
    assert_eq!(staged.record.digest.to_string(), img.digest);
    let pulled = wharf.pull(&skopeo, &staged.image, "pulled");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "a staging retried after a GC race");
}
