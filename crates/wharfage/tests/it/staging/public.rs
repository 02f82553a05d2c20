//! Staging from an anonymous upstream: the result object, pinning and scale-ups with the
//! upstream stopped, sharing of base layers (one after the other and concurrently),
//! multi-arch indexes, re-staging and the app history, and the NDJSON progress stream.

use std::collections::BTreeSet;

use serde_json::json;
use server::mgmt::types::StagingView;

use super::images::{expected_metadata, image, index, layer, total_size};
use super::upstream::{Mode, Upstream};
use super::{error_message, insecure, layout, Wharf};
use crate::fixtures::{assert_same_blobs, subset, Rng, OCI_INDEX, OCI_MANIFEST};
use crate::skopeo::Skopeo;

const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn public_image_is_pinned_and_served_with_the_upstream_stopped() {
    let skopeo = Skopeo::new();
    let mut up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(301);
    let base = layer(&mut l, &mut rng, "usr/lib/base.bin", 700_000);
    let lib = layer(&mut l, &mut rng, "srv/app/lib.bin", 300_000);
    let bin = layer(&mut l, &mut rng, "usr/local/bin/app", 40_000);
    let img = image(&mut l, "amd64", &[&base, &lib, &bin]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "team/web");

    let source = format!("{}/team/web:v1", up.host());
    let r = wharf.stage_ok(&source, "web-1", json!({}));
    let own: Vec<String> = img.blob_digests()[1..].to_vec();
    assert_eq!(r.record.app.as_str(), "web-1");
    assert_eq!(r.record.digest.to_string(), img.digest);
    assert_eq!(r.image, format!("{}/apps/web-1@{}", wharf.host(), img.digest));
    assert_eq!(r.record.metadata, expected_metadata("amd64"), "run metadata from the image config");
    assert_eq!(r.record.blobs_downloaded, 4, "config and three layers: {r:?}");
    assert_eq!(r.record.bytes_downloaded, total_size(&l, &own), "{r:?}");
    assert_eq!((r.record.blobs_reused, r.record.bytes_reused), (0, 0), "{r:?}");
    assert!(r.record.seconds > 0.0, "{r:?}");
    let staging_id = r.record.staging_id.as_str();
    assert!(!staging_id.is_empty());
    for d in &own {
        assert_eq!(up.blob_gets(d), 1, "blob {d} should be fetched from the upstream exactly once");
    }

    let app = wharf.app_detail("web-1");
    assert_eq!(app.current.record.staging_id.as_str(), staging_id);
    assert_eq!(app.current.image, r.image);
    assert_eq!(app.current.record.source, source);
    assert_eq!(app.current.record.metadata, r.record.metadata);
    assert_eq!(app.stagings.len(), 1);
    let apps = wharf.apps();
    let names: Vec<&str> = apps.apps.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(names, ["web-1"]);
    // A Host header that is not a plain host[:port] never makes it into an image reference.
    for forged in ["evil.example/x?y=", "a b", "evil.example:99999"] {
        let resp = wharf.http.clone().host(forged).get("/api/v1/apps/web-1");
        if resp.status == 200 {
            let image = resp.json::<server::mgmt::types::AppDetail>().current.image;
            assert!(image.starts_with("localhost/apps/web-1@"), "Host {forged:?} became {image}");
        } else {
            assert_eq!(resp.status, 400, "Host {forged:?}: {}", resp.text());
        }
    }

    // Scale-up: the upstream is gone, wharfage serves the identical bytes by digest.
    up.stop();
    let image_ref = r.image.as_str();
    let pulled = wharf.pull(&skopeo, image_ref, "scale-up");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "scale-up pull with the upstream stopped");
    assert_eq!(skopeo.inspect_raw(image_ref), img.manifest, "the pinned manifest is served byte for byte");
    let pulled_again = wharf.pull(&skopeo, image_ref, "scale-up-2");
    assert_same_blobs(&pulled, &pulled_again, "a second scale-up");
}

#[test]
fn a_sibling_image_downloads_only_its_own_blobs() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(302);
    let os = layer(&mut l, &mut rng, "base/os.bin", 500_000);
    let runtime = layer(&mut l, &mut rng, "base/runtime.bin", 400_000);
    let first = layer(&mut l, &mut rng, "srv/first.bin", 100_000);
    let second = layer(&mut l, &mut rng, "srv/second.bin", 120_000);
    let a = image(&mut l, "amd64", &[&os, &runtime, &first]);
    let b = image(&mut l, "amd64", &[&os, &runtime, &second]);
    l.tag("first", OCI_MANIFEST, &a.digest);
    l.tag("second", OCI_MANIFEST, &b.digest);
    up.push(&skopeo, &l, "first", "shop/first");
    up.push(&skopeo, &l, "second", "shop/second");

    wharf.stage_ok(&format!("{}/shop/first:first", up.host()), "first", json!({}));
    let r = wharf.stage_ok(&format!("{}/shop/second:second", up.host()), "second", json!({}));
    let new = vec![b.config.clone(), second.digest.clone()];
    assert_eq!(r.record.blobs_downloaded, 2, "only the sibling's config and top layer: {r:?}");
    assert_eq!(r.record.bytes_downloaded, total_size(&l, &new), "{r:?}");
    assert_eq!(r.record.blobs_reused, 2, "{r:?}");
    assert_eq!(r.record.bytes_reused, total_size(&l, &[os.digest.clone(), runtime.digest.clone()]), "{r:?}");
    for d in [&os.digest, &runtime.digest] {
        assert_eq!(up.blob_gets(d), 1, "base layer {d} was fetched from the upstream more than once");
    }
    for d in &new {
        assert_eq!(up.blob_gets(d), 1, "{d}");
    }
    let pulled = wharf.pull(&skopeo, &r.image, "second");
    assert_same_blobs(&subset(&l.blobs, &b.blob_digests()), &pulled, "the sibling, pulled from wharfage");
}

#[test]
fn concurrent_stagings_download_each_shared_blob_once() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    // Two downloads at a time: each staging works through its blobs in a different order
    // from the others', so their downloads of the shared base overlap in every way.
    let mut args = super::insecure(&[up.host()]);
    args.extend(["--stage-concurrency".to_string(), "2".to_string()]);
    let wharf = Wharf::start(&args);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(303);
    let bases: Vec<_> = (0..3).map(|i| layer(&mut l, &mut rng, &format!("base/{i}.bin"), 1_500_000)).collect();
    let apps = ["alpha", "beta", "gamma"];
    let mut images = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let own = layer(&mut l, &mut rng, &format!("srv/{app}.bin"), 200_000 + i * 10_000);
        let img = image(&mut l, "amd64", &[&bases[0], &bases[1], &bases[2], &own]);
        l.tag(app, OCI_MANIFEST, &img.digest);
        up.push(&skopeo, &l, app, &format!("fleet/{app}"));
        images.push(img);
    }

    let results: Vec<StagingView> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let (wharf, source) = (&wharf, format!("{}/fleet/{app}:{app}", up.host()));
                s.spawn(move || wharf.stage_ok(&source, app, json!({})))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for b in &bases {
        assert_eq!(up.blob_gets(&b.digest), 1, "shared base layer {} was downloaded more than once; results: {results:?}", b.digest);
    }
    let unique: BTreeSet<String> = images.iter().flat_map(|i| i.blob_digests()[1..].to_vec()).collect();
    let unique: Vec<String> = unique.into_iter().collect();
    for d in &unique {
        assert_eq!(up.blob_gets(d), 1, "{d}");
    }
    let blobs_downloaded: u64 = results.iter().map(|r| r.record.blobs_downloaded).sum();
    let bytes_downloaded: u64 = results.iter().map(|r| r.record.bytes_downloaded).sum();
    assert_eq!(blobs_downloaded, unique.len() as u64, "each blob counts as downloaded by one staging only: {results:#?}");
    assert_eq!(bytes_downloaded, total_size(&l, &unique), "{results:#?}");
    for (r, img) in results.iter().zip(&images) {
        assert_eq!(r.record.digest.to_string(), img.digest);
        let n = r.record.blobs_downloaded + r.record.blobs_reused;
        assert_eq!(n, 5, "every blob of {} is either downloaded or reused: {r:?}", r.record.app);
        let bytes = r.record.bytes_downloaded + r.record.bytes_reused;
        assert_eq!(bytes, total_size(&l, &img.blob_digests()[1..]), "{r:?}");
    }
    for (r, img) in results.iter().zip(&images) {
        let pulled = wharf.pull(&skopeo, &r.image, r.record.app.as_str());
        assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "a concurrently staged image");
    }
}

/// One platform of an index is staged as a *sparse* index: the index's own bytes pinned by
/// its upstream digest (what the user deployed, signed and scanned) with that platform's
/// image beside it and the other children absent by design. A client of the platform pulls
/// its image through the index; the absent child is `MANIFEST_UNKNOWN`; fsck is clean; a
/// collection keeps exactly what the pinned images need.
#[test]
fn multi_arch_index_stages_one_platform_or_all() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let mut args = insecure(&[up.host()]);
    args.extend(["--gc-grace".to_string(), "0s".to_string(), "--gc-protect-window".into(), "1s".into()]);
    let wharf = Wharf::start(&args);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(304);
    let mut per_arch = Vec::new();
    for arch in ["amd64", "arm64"] {
        let base = layer(&mut l, &mut rng, &format!("{arch}/base.bin"), 300_000);
        let app = layer(&mut l, &mut rng, &format!("{arch}/app.bin"), 80_000);
        per_arch.push(image(&mut l, arch, &[&base, &app]));
    }
    let (amd, arm) = (&per_arch[0], &per_arch[1]);
    let idx = index(&mut l, &[amd, arm]);
    l.tag("multi", OCI_INDEX, &idx.digest);
    up.push(&skopeo, &l, "multi", "tools/multi");
    let source = format!("{}/tools/multi:multi", up.host());

    let r = wharf.stage_ok(&source, "multi-arm", json!({ "platform": "linux/arm64" }));
    assert_eq!(r.record.digest.to_string(), idx.digest, "the upstream's index digest is pinned");
    assert_eq!(r.record.media_type, OCI_INDEX);
    assert_eq!(r.record.platforms, ["linux/arm64/v8"], "the platforms present");
    assert_eq!(r.record.metadata, expected_metadata("arm64"));
    assert_eq!(r.record.blobs_downloaded, 3, "{r:?}");
    for d in &arm.blob_digests()[1..] {
        assert_eq!(up.blob_gets(d), 1, "{d}");
    }
    for d in &amd.blob_digests()[1..] {
        assert_eq!(up.blob_gets(d), 0, "an amd64 blob {d} was downloaded for an arm64 staging");
    }
    assert_eq!(skopeo.inspect_raw(&r.image), idx.manifest, "the index, byte for byte");
    let pulled = wharf.pull_platform(&skopeo, &r.image, "arm64", "arm");
    assert_same_blobs(&subset(&l.blobs, &arm.blob_digests()), &pulled, "the arm64 image through the sparse index");
    let absent = wharf.http.get(&format!("/v2/apps/multi-arm/manifests/{}", amd.digest)).expect(404, "the absent amd64 child");
    error_message(&absent, "MANIFEST_UNKNOWN");
    let refused = skopeo.run(&[
        "--override-os",
        "linux",
        "--override-arch",
        "amd64",
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}", r.image),
    ]);
    assert!(!refused.status.success(), "an amd64 client finds no image in the arm64 staging");

    let r = wharf.stage_ok(&source, "multi-all", json!({ "platform": "all" }));
    assert_eq!(r.record.digest.to_string(), idx.digest, "\"all\" pins the whole index");
    assert_eq!(r.record.media_type, OCI_INDEX);
    assert_eq!(r.record.platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(r.record.metadata, expected_metadata("amd64"), "an index's metadata is its linux/amd64 image's");
    assert_eq!((r.record.blobs_downloaded, r.record.blobs_reused), (3, 3), "only the amd64 blobs are new: {r:?}");
    let pulled = wharf.pull(&skopeo, &r.image, "all");
    let mut every = vec![idx.digest.clone()];
    every.extend(amd.blob_digests());
    every.extend(arm.blob_digests());
    assert_same_blobs(&subset(&l.blobs, &every), &pulled, "the whole index");
    assert_eq!(skopeo.inspect_raw(&r.image), idx.manifest);

    // The default platform is linux/amd64; everything is stored by now.
    let r = wharf.stage_ok(&source, "multi-amd", json!({}));
    assert_eq!(r.record.digest.to_string(), idx.digest);
    assert_eq!(r.record.platforms, ["linux/amd64"]);
    assert_eq!((r.record.blobs_downloaded, r.record.blobs_reused), (0, 3), "{r:?}");
    for d in l.blobs.keys().filter(|d| **d != idx.digest && **d != amd.digest && **d != arm.digest) {
        assert_eq!(up.blob_gets(d), 1, "{d} over the three stagings");
    }
    let pulled = wharf.pull_platform(&skopeo, &r.image, "amd64", "amd");
    assert_same_blobs(&subset(&l.blobs, &amd.blob_digests()), &pulled, "the amd64 image through the sparse index");

    let r = wharf.stage(&source, "multi-s390x", json!({ "platform": "linux/s390x" })).expect(404, "a platform the index lacks");
    let message = error_message(&r, "NOT_FOUND");
    assert!(message.contains("linux/s390x") && message.contains("linux/arm64/v8") && message.contains("linux/amd64"), "{message}");
    wharf.app("multi-s390x").expect(404, "no staging for a failed app");

    // With only the arm64 staging left, a collection keeps exactly the index and the arm64
    // image, and fsck counts the absent child as absent by design, not as missing data.
    for app in ["multi-all", "multi-amd"] {
        wharf.http.send("DELETE", &format!("/api/v1/apps/{app}"), &[("content-type", "application/json")], Vec::new()).expect(200, "unpin");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    wharf.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], b"{}".to_vec()).expect(200, "gc");
    let kept: Vec<String> = crate::gc::blob_files(&wharf.root).into_keys().collect();
    let mut want: Vec<String> = vec![idx.digest.clone()];
    want.extend(arm.blob_digests());
    want.sort();
    assert_eq!(kept, want, "what the sparse index needs, nothing more");
    let mut cmd = crate::harness::wharfage(&wharf.scratch("."));
    cmd.args(["fsck", "--json", "--root"]).arg(&wharf.root);
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(60));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["absent_children"], 1, "{report}");
    let pulled = wharf.pull_platform(&skopeo, &format!("{}/apps/multi-arm@{}", wharf.host(), idx.digest), "arm64", "arm-again");
    assert_same_blobs(&subset(&l.blobs, &arm.blob_digests()), &pulled, "the arm64 image after the collection");
}

#[test]
fn docker_schema2_manifest_list_and_images() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(307);
    let mut per_arch = Vec::new();
    for arch in ["amd64", "arm64"] {
        let base = layer(&mut l, &mut rng, &format!("{arch}/base.bin"), 200_000);
        per_arch.push(image(&mut l, arch, &[&base]));
    }
    let idx = index(&mut l, &[&per_arch[0], &per_arch[1]]);
    l.tag("v1", OCI_INDEX, &idx.digest);
    // What Docker Hub mostly serves: a Docker manifest list of Docker schema 2 images.
    let upstream_ref = format!("{}/docker/multi:v1", up.host());
    skopeo.ok(&[
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &crate::skopeo::oci_ref(&l.dir, "v1"),
        &format!("docker://{upstream_ref}"),
    ]);
    let list_bytes = skopeo.inspect_raw(&upstream_ref);
    let list: serde_json::Value = serde_json::from_slice(&list_bytes).unwrap();
    assert_eq!(list["mediaType"], DOCKER_LIST, "skopeo pushed a Docker manifest list");
    let arm_entry = list["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "arm64").unwrap();
    let arm_digest = arm_entry["digest"].as_str().unwrap();

    let r = wharf.stage_ok(&upstream_ref, "docker-all", json!({ "platform": "all" }));
    assert_eq!(r.record.digest.to_string(), crate::fixtures::sha256(&list_bytes));
    assert_eq!(r.record.media_type, DOCKER_LIST);
    assert_eq!(r.record.metadata, expected_metadata("amd64"), "run metadata from a Docker config");
    let pinned = r.image.as_str();
    assert_eq!(skopeo.inspect_raw(pinned), list_bytes, "the manifest list, byte for byte");
    let child = format!("{}/apps/docker-all@{arm_digest}", wharf.host());
    assert_eq!(skopeo.inspect_raw(&child), skopeo.inspect_raw(&format!("{}/docker/multi@{arm_digest}", up.host())));

    let r = wharf.stage_ok(&upstream_ref, "docker-arm", json!({ "platform": "linux/arm64/v8" }));
    assert_eq!(r.record.digest.to_string(), crate::fixtures::sha256(&list_bytes), "the manifest list's digest is pinned");
    assert_eq!(r.record.media_type, DOCKER_LIST);
    assert_eq!(r.record.platforms, ["linux/arm64/v8"]);
    let child = wharf.http.get(&format!("/v2/apps/docker-arm/manifests/{arm_digest}")).expect(200, "the arm64 child");
    assert_eq!(child.header("content-type"), Some(DOCKER_MANIFEST), "the child under its own media type");
    assert_eq!(r.record.metadata, expected_metadata("arm64"));
    assert_eq!((r.record.blobs_downloaded, r.record.blobs_reused), (0, 2), "{r:?}");

    // Pulled from wharfage and from the upstream the same way (converted to an OCI layout,
    // deterministically): the same result.
    let pull = |image: &str, name: &str| {
        let dir = wharf.scratch(name);
        let (src, dst) = (format!("docker://{image}"), crate::skopeo::oci_ref(&dir, "pulled"));
        skopeo.ok(&["copy", "--all", "--src-tls-verify=false", "--src-no-creds", &src, &dst]);
        crate::fixtures::read_blobs(&dir)
    };
    assert_same_blobs(&pull(&upstream_ref, "from-upstream"), &pull(pinned, "from-wharf"), "the Docker images through wharfage");
}

#[test]
fn restaging_records_history_and_downloads_nothing_already_stored() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(305);
    let base = layer(&mut l, &mut rng, "base.bin", 400_000);
    let v1_layer = layer(&mut l, &mut rng, "app-v1.bin", 90_000);
    let v2_layer = layer(&mut l, &mut rng, "app-v2.bin", 95_000);
    let v1 = image(&mut l, "amd64", &[&base, &v1_layer]);
    let v2 = image(&mut l, "amd64", &[&base, &v2_layer]);
    l.tag("v1", OCI_MANIFEST, &v1.digest);
    l.tag("v2", OCI_MANIFEST, &v2.digest);
    up.push(&skopeo, &l, "v1", "svc/api");
    let source = format!("{}/svc/api:v1", up.host());

    let first = wharf.stage_ok(&source, "api", json!({}));
    let requests_before = up.wharfage_requests().len();
    let second = wharf.stage_ok(&source, "api", json!({}));
    assert_eq!(second.record.digest, first.record.digest);
    assert_ne!(second.record.staging_id, first.record.staging_id, "a re-staging is a new staging");
    assert_eq!((second.record.blobs_downloaded, second.record.bytes_downloaded), (0, 0), "{second:?}");
    assert_eq!(second.record.blobs_reused, 3, "{second:?}");
    let later: Vec<_> = up.wharfage_requests()[requests_before..].to_vec();
    assert!(
        later.iter().all(|r| r.method == "HEAD" || r.uri == "/v2/" || r.is_probe()),
        "re-staging an unchanged image may only HEAD the tag and blobs upstream, and read 32 bytes of each stored blob; it sent {later:#?}"
    );

    // The tag moves upstream: the next staging pins the new image, fetching only its new blobs.
    skopeo.ok(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &crate::skopeo::oci_ref(&l.dir, "v2"),
        &format!("docker://{source}"),
    ]);
    let third = wharf.stage_ok(&source, "api", json!({}));
    assert_eq!(third.record.digest.to_string(), v2.digest);
    assert_eq!((third.record.blobs_downloaded, third.record.blobs_reused), (2, 1), "{third:?}");
    assert_eq!(up.blob_gets(&base.digest), 1);

    let app = wharf.app_detail("api");
    let ids: Vec<&str> = app.stagings.iter().map(|s| s.record.staging_id.as_str()).collect();
    let expected: Vec<&str> = [&third, &second, &first].iter().map(|r| r.record.staging_id.as_str()).collect();
    assert_eq!(ids, expected, "the history, newest first");
    assert_eq!(app.current.record.staging_id, third.record.staging_id);
    assert_eq!(app.current.record.digest.to_string(), v2.digest);
    // The superseded pin still pulls (until pruning).
    let old = wharf.pull(&skopeo, &first.image, "old-pin");
    assert_same_blobs(&subset(&l.blobs, &v1.blob_digests()), &old, "the first staging's pin");

    // /metrics adds up the three stagings (and a refused one).
    wharf.stage(&format!("{}/svc/none:v1", up.host()), "none", json!({})).expect(404, "an unknown image");
    let text = wharf.http.get("/metrics").expect(200, "metrics").text();
    let value = |series: &str| crate::s3::metric(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(value("wharfage_stagings_total{status=\"201\"}"), 3.0, "{text}");
    assert_eq!(value("wharfage_stagings_total{status=\"404\"}"), 1.0, "{text}");
    let downloaded: f64 = [&first, &second, &third].iter().map(|r| r.record.bytes_downloaded as f64).sum();
    let reused: f64 = [&first, &second, &third].iter().map(|r| r.record.bytes_reused as f64).sum();
    assert_eq!(value("wharfage_staged_bytes_total{source=\"upstream\"}"), downloaded, "{text}");
    assert_eq!(value("wharfage_staged_bytes_total{source=\"store\"}"), reused, "{text}");
}

/// A platform asked for explicitly must be the image's own when the image is a single
/// manifest, not an index: `linux/arm64` of an amd64-only image is refused (404, naming the
/// platform the image has) before any layer is downloaded, and no app appears. The platform
/// it has, `all`, or no platform at all still stage it.
#[test]
fn a_platform_a_single_image_lacks_is_refused_naming_the_one_it_has() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(331);
    let base = layer(&mut l, &mut rng, "usr/lib/base.bin", 200_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "team/amd-only");
    let source = format!("{}/team/amd-only:v1", up.host());

    for wanted in ["linux/arm64", "linux/arm64/v8", "windows/amd64"] {
        let app = format!("arm-{}", wanted.replace('/', "-"));
        let r = wharf.stage(&source, &app, json!({ "platform": wanted })).expect(404, &format!("platform {wanted} of an amd64 image"));
        let message = error_message(&r, "NOT_FOUND");
        assert!(message.contains(wanted) && message.contains("linux/amd64") && message.contains("single-platform"), "{message}");
        wharf.app(&app).expect(404, "no app after a refused platform");
    }
    assert_eq!(up.blob_gets(&base.digest), 0, "a layer was downloaded for a refused platform");

    let r = wharf.stage_ok(&source, "amd-explicit", json!({ "platform": "linux/amd64" }));
    assert_eq!(r.record.digest.to_string(), img.digest);
    for (app, extra) in [("amd-all", json!({ "platform": "all" })), ("amd-default", json!({}))] {
        let r = wharf.stage_ok(&source, app, extra);
        assert_eq!(r.record.digest.to_string(), img.digest, "{app}");
    }
}
