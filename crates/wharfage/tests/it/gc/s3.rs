//! Garbage collection on S3 (a real SeaweedFS, each test under its own key prefix): an
//! unpinned app's images are swept while the other app stays pullable, and two replicas on
//! one bucket collect at once, over and over, while both take pushes.

use std::time::Duration;

use serde_json::json;
use testkit::SeaweedFs;

use super::concurrent::{assert_proper, pull_all, push_while_collecting, stress_duration};
use super::{figures, fsck_json, layer, push, quiet, removed, zero_grace, Backing, Img, Reg, Via};
use crate::client::RegistryExt;
use crate::harness;
use crate::skopeo::Skopeo;

const BUCKET: &str = "wharfage-gc";

/// A fresh key prefix on the shared SeaweedFS.
fn s3_backing() -> Backing {
    let s3 = SeaweedFs::shared();
    s3.create_bucket(BUCKET);
    Backing::S3 { endpoint: s3.endpoint.clone(), bucket: BUCKET.into(), prefix: testkit::unique("gc") }
}

fn clone(b: &Backing) -> Backing {
    match b {
        Backing::Fs(root) => Backing::Fs(root.clone()),
        Backing::S3 { endpoint, bucket, prefix } => {
            Backing::S3 { endpoint: endpoint.clone(), bucket: bucket.clone(), prefix: prefix.clone() }
        }
    }
}

#[test]
fn s3_unpinned_app_is_swept_and_the_other_stays_pullable() {
    let skopeo = Skopeo::new();
    let base = layer(70, 48 << 10);
    let img_a = Img::new("s3 app a", &[&base, &layer(71, 20 << 10)]);
    let img_b = Img::new("s3 app b", &[&base, &layer(72, 20 << 10)]);
    let up = Reg::fs(&[]);
    push(&up.http, "src/a", "v1", &img_a, Via::Post).unwrap();
    push(&up.http, "src/b", "v1", &img_b, Via::Post).unwrap();
    let mut args = quiet();
    args.extend(["--insecure-registry".to_string(), up.host()]);
    let w = Reg::start(harness::tempdir(), s3_backing(), &args);
    w.stage_ok(&format!("{}/src/a:v1", up.host()), "app-a");
    w.stage_ok(&format!("{}/src/b:v1", up.host()), "app-b");

    w.http.send("DELETE", "/api/v1/apps/app-a", &[("content-type", "application/json")], Vec::new()).expect(200, "unpinning app-a");
    // S3 object times have whole seconds: let the stagings' protections age past doubt.
    std::thread::sleep(Duration::from_secs(2));
    let dry = w.gc(true);
    w.http.get_manifest("apps/app-a", &img_a.digest).expect(200, "app-a's manifest after a dry run");
    let real = w.gc(false);
    assert_eq!(figures(&dry), figures(&real), "dry run {dry:?}\nreal run {real:?}");
    let own: u64 =
        [img_a.manifest.len(), img_a.blobs[&img_a.config].len(), img_a.blobs[&img_a.layers[1]].len()].iter().map(|n| *n as u64).sum();
    assert_eq!(removed(&real.blobs), (3, own), "{real:?}");
    assert_eq!(removed(&real.manifests).0, 1, "{real:?}");
    w.http.get_manifest("apps/app-a", &img_a.digest).expect(404, "app-a's manifest after the collection");
    w.skopeo_pull_check(&skopeo, "apps/app-b", &img_b.digest, &img_b);

    let (dir, backing) = w.stop();
    let report = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["blobs_checked"], 4, "app b's manifest, config and two layers: {report}");
}

#[test]
fn s3_two_replicas_collect_at_once_while_both_take_pushes() {
    let backing = s3_backing();
    let one = Reg::start(harness::tempdir(), clone(&backing), &zero_grace());
    let two = Reg::start(harness::tempdir(), clone(&backing), &zero_grace());
    let targets = [&one.http, &two.http];
    // Each replica collects every 200 ms (back to back, collections of a small store would
    // keep SeaweedFS too busy for the pushes on this machine), and both take pushes from two
    // threads each.
    let outcome = push_while_collecting(&targets, &targets, Duration::from_millis(200), 4, stress_duration(20), None);
    eprintln!(
        "s3 two-replica gc: {} pushes acknowledged, {} refusals; {} collections removed {} blobs, kept {} protected digests",
        outcome.acked.len(),
        outcome.refused.len(),
        outcome.gc_runs,
        outcome.gc_blobs_removed,
        outcome.gc_protected
    );
    for r in outcome.refused.iter().take(10) {
        eprintln!("  refused: {r}");
    }
    assert!(outcome.gc_failures.is_empty(), "collections failed:\n{}", outcome.gc_failures.join("\n"));
    assert!(outcome.gc_runs >= 4, "only {} collections ran", outcome.gc_runs);
    assert!(outcome.gc_blobs_removed > 0, "the collections never removed anything");
    assert!(outcome.acked.len() >= 10, "only {} pushes were acknowledged", outcome.acked.len());
    assert_proper(&outcome.refused);

    // Every acknowledged image, from both replicas.
    for from in [0, 1] {
        let bad = pull_all(&targets, &outcome.acked, Some(from));
        assert!(
            bad.is_empty(),
            "replica {from}: {} of {} acknowledged pushes do not pull back whole:\n{}",
            bad.len(),
            outcome.acked.len(),
            bad.join("\n")
        );
    }
    // Quiet now: once the run's protections are stale, one collection leaves a whole store.
    std::thread::sleep(Duration::from_secs(3));
    one.gc(false);
    let dir = harness::tempdir();
    one.server.stop();
    two.server.stop();
    let report = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(report["problems"], json!([]), "fsck after two replicas collected at once: {report}");
}
