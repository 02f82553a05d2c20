//! What a replica caches of tags and links (`docs/ha.md`, "What a replica caches"), seen from
//! the wire: a push or delete through one replica reaches the other within the documented
//! bound, and a tag read is served from the cache for its TTL. Answers are polled until a
//! generous deadline; each one seen meanwhile must be the old or the new state, never
//! anything else, and the new state must stay once it is seen.

use std::time::{Duration, Instant};

use super::{manifest, put_manifest};
use crate::client::{Http, RegistryExt};
use crate::fixtures::{sha256, Rng};
use crate::s3::S3Store;

/// Far beyond the bounds (1 s for deletes, the TTL for tags), so that a loaded machine does
/// not fail the tests; they assert what is served, not how fast.
const DEADLINE: Duration = Duration::from_secs(20);

/// `"200 <digest>"` or `"<status>"`: what a GET of a manifest answered.
fn manifest_state(http: &Http, repo: &str, reference: &str) -> String {
    let r = http.get_manifest(repo, reference);
    match r.status {
        200 => format!("200 {}", r.header("docker-content-digest").unwrap_or("(no digest)")),
        s => s.to_string(),
    }
}

/// The status of a blob HEAD.
fn blob_state(http: &Http, repo: &str, digest: &str) -> String {
    http.head(&format!("/v2/{repo}/blobs/{digest}")).status.to_string()
}

/// Reads until `read` answers `new`, every answer before it being `old`; then checks that it
/// keeps answering `new`.
#[track_caller]
fn settles_on(what: &str, old: &str, new: &str, mut read: impl FnMut() -> String) {
    let start = Instant::now();
    loop {
        let got = read();
        if got == new {
            break;
        }
        assert_eq!(got, old, "{what}: answered neither the state before nor the one after");
        assert!(start.elapsed() < DEADLINE, "{what}: still {old} after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{what}: {new} after {:?}", start.elapsed());
    for _ in 0..3 {
        assert_eq!(read(), new, "{what}: went back to another state");
    }
}

/// Pushes a config and a layer through `http` into `repo`; their bytes.
fn push_blobs(http: &Http, repo: &str, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = Rng::new(seed).bytes(3000);
    for blob in [&config, &layer] {
        let d = sha256(blob);
        http.send("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], blob.to_vec()).expect(201, "monolithic push");
    }
    (config, layer)
}

#[test]
fn pushes_and_deletes_reach_the_other_replica_within_the_bound() {
    let store = S3Store::shared();
    // The default TTL (1 s).
    let servers = [store.start(&[]), store.start(&[])];
    let (a, b) = (Http::new(servers[0].addr), Http::new(servers[1].addr));
    let repo = "e2e/ha-cache";
    let (config, layer) = push_blobs(&a, repo, 81);
    let (m1, m2) = (manifest(&config, &layer, 1), manifest(&config, &layer, 2));
    let (d1, d2, dl) = (sha256(&m1), sha256(&m2), sha256(&layer));

    // A tag moved on A: B serves the old or the new manifest, then the new one for good.
    put_manifest(&a, repo, "v1", &m1, "A");
    assert_eq!(manifest_state(&b, repo, "v1"), format!("200 {d1}"), "B's first read of the tag");
    put_manifest(&a, repo, "v1", &m2, "A");
    settles_on("tag v1 on B after A moved it", &format!("200 {d1}"), &format!("200 {d2}"), || manifest_state(&b, repo, "v1"));

    // B has read the manifest by digest and the layer: deletes on A void what B holds.
    assert_eq!(manifest_state(&b, repo, &d2), format!("200 {d2}"));
    assert_eq!(blob_state(&b, repo, &dl), "200");
    a.send("DELETE", &format!("/v2/{repo}/manifests/{d2}"), &[], Vec::new()).expect(202, "DELETE the manifest on A");
    settles_on("the manifest deleted on A, on B", &format!("200 {d2}"), "404", || manifest_state(&b, repo, &d2));
    settles_on("its tag, on B", &format!("200 {d2}"), "404", || manifest_state(&b, repo, "v1"));
    assert_eq!(blob_state(&b, repo, &dl), "200", "the layer, read on B again");
    a.send("DELETE", &format!("/v2/{repo}/blobs/{dl}"), &[], Vec::new()).expect(202, "DELETE the layer on A");
    settles_on("the layer unlinked on A, on B", "200", "404", || blob_state(&b, repo, &dl));
    // The replica that deleted answers 404 at once.
    assert_eq!(manifest_state(&a, repo, &d2), "404");
    assert_eq!(blob_state(&a, repo, &dl), "404");
}

#[test]
fn a_tag_is_served_from_the_cache_for_its_ttl_until_a_delete_ends_it() {
    let store = S3Store::shared();
    let servers = [store.start(&["--tag-cache-ttl", "1h"]), store.start(&["--tag-cache-ttl", "1h"])];
    let (a, b) = (Http::new(servers[0].addr), Http::new(servers[1].addr));
    let repo = "e2e/ha-cache-ttl";
    let (config, layer) = push_blobs(&a, repo, 82);
    let (m1, m2) = (manifest(&config, &layer, 1), manifest(&config, &layer, 2));
    let (d1, d2) = (sha256(&m1), sha256(&m2));
    put_manifest(&a, repo, "v1", &m1, "A");
    put_manifest(&a, repo, "doomed", &m1, "A");
    assert_eq!(manifest_state(&b, repo, "v1"), format!("200 {d1}"), "B's first read of the tag");

    // Within the hour, B answers with the tag as it read it; A, which moved it, with the new one.
    put_manifest(&a, repo, "v1", &m2, "A");
    assert_eq!(manifest_state(&a, repo, "v1"), format!("200 {d2}"), "A serves the tag it just moved");
    for _ in 0..3 {
        assert_eq!(manifest_state(&b, repo, "v1"), format!("200 {d1}"), "B serves the tag it read, for its TTL");
    }
    // A delete of anything on A ends every replica's cache epoch: B asks the store again.
    a.send("DELETE", &format!("/v2/{repo}/manifests/doomed"), &[], Vec::new()).expect(202, "DELETE a tag on A");
    settles_on("tag v1 on B after a delete on A", &format!("200 {d1}"), &format!("200 {d2}"), || manifest_state(&b, repo, "v1"));
    settles_on("the deleted tag on B", &format!("200 {d1}"), "404", || manifest_state(&b, repo, "doomed"));
}

#[test]
fn a_collection_on_one_replica_voids_the_links_the_other_cached() {
    let store = S3Store::shared();
    let flags = ["--gc-grace", "0s", "--gc-protect-window", "0s"];
    let servers = [store.start(&flags), store.start(&flags)];
    let (a, b) = (Http::new(servers[0].addr), Http::new(servers[1].addr));
    let repo = "e2e/ha-cache-gc";
    let (config, layer) = push_blobs(&a, repo, 83);
    let m = manifest(&config, &layer, 1);
    let (dm, dl) = (sha256(&m), sha256(&layer));
    // Untagged: nothing keeps it once its protections aged.
    put_manifest(&a, repo, &dm, &m, "A");
    // S3 object times have whole seconds: let the push's protections age past doubt.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(manifest_state(&b, repo, &dm), format!("200 {dm}"));
    assert_eq!(blob_state(&b, repo, &dl), "200");
    let r = a.send("POST", "/api/v1/gc", &[("content-type", "application/json")], b"{}".to_vec()).expect(200, "POST /api/v1/gc on A");
    let report: serde_json::Value = r.json();
    assert_eq!(report["manifests"]["count"], 1, "the untagged manifest is collected: {report}");
    settles_on("the collected manifest, on B", &format!("200 {dm}"), "404", || manifest_state(&b, repo, &dm));
    settles_on("the collected layer, on B", "200", "404", || blob_state(&b, repo, &dl));
}
