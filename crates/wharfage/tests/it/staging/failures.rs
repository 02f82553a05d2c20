//! Stagings that must fail cleanly or recover: corrupted upstream bytes (422, nothing of the
//! app visible, and a later staging of the repaired upstream works), a connection dropped in
//! the middle of a blob (resumed with `Range`), an unknown tag (404), bad references, app ids
//! and bodies (400), an unreachable upstream (502), and an upstream that redirects a download
//! to a cloud metadata address, however spelled (403, no connection attempted).

use std::time::{Duration, Instant};

use serde_json::json;

use super::images::image_with_config_of;
use super::images::{image, layer};
use super::proxy::{Faults, Proxy};
use super::upstream::{Mode, Upstream};
use super::{error_message, layout, Wharf};
use crate::client::RegistryExt;
use crate::fixtures::{assert_same_blobs, subset, Rng, OCI_MANIFEST};
use crate::harness::{files_under, Strace};
use crate::skopeo::Skopeo;

#[test]
fn corrupted_upstream_bytes_are_rejected_and_leave_nothing_visible() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(501);
    // A large layer still downloading when the small corrupted one fails.
    let large = layer(&mut l, &mut rng, "large.bin", 4_000_000);
    let bad = layer(&mut l, &mut rng, "bad.bin", 150_000);
    let img = image(&mut l, "amd64", &[&large, &bad]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "broken/app");
    up.flip_bit(&bad.digest);
    let source = format!("{}/broken/app:v1", up.host());

    let resp = wharf.stage(&source, "broken", json!({})).expect(422, "corrupted upstream bytes");
    let message = error_message(&resp, "UPSTREAM_CONTENT_INVALID");
    assert!(message.contains(&bad.digest), "the message names the blob: {message}");

    // Nothing of the app is visible: no record, no manifest, no link, no corrupt bytes.
    wharf.app("broken").expect(404, "no staging recorded");
    let apps = wharf.apps();
    assert!(apps.apps.is_empty(), "{apps:?}");
    wharf.http.get_manifest("apps/broken", &img.digest).expect(404, "the manifest is not pinned");
    for d in img.blob_digests()[1..].iter() {
        wharf.http.head(&format!("/v2/apps/broken/blobs/{d}")).expect(404, &format!("blob {d} linked into the failed app"));
    }
    let hex = &bad.digest[7..];
    for f in files_under(&wharf.root.join("blobs")) {
        assert!(!f.to_string_lossy().contains(hex), "the corrupt blob was stored: {}", f.display());
    }
    for dir in ["apps/broken", "repositories/apps/broken"] {
        assert_eq!(files_under(&wharf.root.join(dir)), Vec::<std::path::PathBuf>::new(), "something of the failed app is stored");
    }

    // Repaired upstream: the staging goes through, byte for byte.
    up.flip_bit(&bad.digest);
    let r = wharf.stage_ok(&source, "broken", json!({}));
    assert_eq!(r.record.digest.to_string(), img.digest);
    let pulled = wharf.pull(&skopeo, &r.image, "repaired");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "after the repair");
    let blobs = r.record.blobs_downloaded + r.record.blobs_reused;
    assert_eq!(blobs, 3, "{r:?}");
    // The places searched above are where a staging leaves its traces.
    assert!(files_under(&wharf.root.join("blobs")).iter().any(|f| f.to_string_lossy().contains(hex)));
    for dir in ["apps/broken", "repositories/apps/broken"] {
        assert!(!files_under(&wharf.root.join(dir)).is_empty(), "{dir}");
    }
}

#[test]
fn a_failed_staging_leaves_no_download_behind_for_later_ones() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let proxy = Proxy::start(up.port, Faults::default());
    let wharf = Wharf::for_hosts(&[proxy.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(508);
    // Three images sharing one config: `warm` stores it, so that `large` is all `second` lacks.
    let tiny = layer(&mut l, &mut rng, "tiny.bin", 10_000);
    let bad = layer(&mut l, &mut rng, "bad.bin", 150_000);
    // Larger than the socket buffers between upstream, proxy and wharfage: the transfer is
    // still under way when the staging that started it fails.
    let large = layer(&mut l, &mut rng, "large.bin", 32 << 20);
    let first = image(&mut l, "amd64", &[&bad, &large]);
    let warm = image_with_config_of(&mut l, &first, &[&tiny]);
    let second = image_with_config_of(&mut l, &first, &[&large]);
    for (tag, img) in [("warm", &warm), ("first", &first), ("second", &second)] {
        l.tag(tag, OCI_MANIFEST, &img.digest);
        up.push(&skopeo, &l, tag, &format!("poison/{tag}"));
    }
    let source = |tag: &str| format!("{}/poison/{tag}:{tag}", proxy.host());
    wharf.stage_ok(&source("warm"), "warm", json!({}));

    // `first` fails on its corrupt small layer while its large one is downloading.
    up.flip_bit(&bad.digest);
    wharf.stage(&source("first"), "first", json!({})).expect(422, "the corrupt layer");
    // The upstream loses its blobs for a while: staging `second` fails, as it should.
    proxy.blobs_gone(true);
    let resp = wharf.stage(&source("second"), "second", json!({}));
    assert!(matches!(resp.status, 404 | 502), "blobs gone upstream: {} {}", resp.status, resp.text());
    // Once the upstream is whole again, nothing of those failures may stick to the digest.
    proxy.blobs_gone(false);
    up.flip_bit(&bad.digest);
    let r = wharf.stage_ok(&source("second"), "second", json!({}));
    assert_eq!(r.record.digest.to_string(), second.digest);
    let r = wharf.stage_ok(&source("first"), "first", json!({}));
    let pulled = wharf.pull(&skopeo, &r.image, "first");
    assert_same_blobs(&subset(&l.blobs, &first.blob_digests()), &pulled, "the first image after the failures");
}

#[test]
fn a_connection_dropped_mid_blob_is_resumed_with_range() {
    resumed_after_a_cut(false);
}

#[test]
fn a_resume_answered_with_the_whole_blob_skips_what_was_received() {
    resumed_after_a_cut(true);
}

/// Stages through a proxy that cuts the first long blob response; with `strip_range` the
/// upstream never sees the `Range` of the resumed request and sends the whole blob again.
fn resumed_after_a_cut(strip_range: bool) {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let proxy = Proxy::start(up.port, Faults { cut_after: Some(400_000), strip_range, ..Faults::default() });
    let wharf = Wharf::for_hosts(&[proxy.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(502);
    let one = layer(&mut l, &mut rng, "one.bin", 1_500_000);
    let two = layer(&mut l, &mut rng, "two.bin", 1_200_000);
    let img = image(&mut l, "amd64", &[&one, &two]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "flaky/app");

    let r = wharf.stage_ok(&format!("{}/flaky/app:v1", proxy.host()), "flaky", json!({}));
    assert!(proxy.has_cut(), "the proxy never cut a blob response");
    assert_eq!(r.record.blobs_downloaded, 3, "{r:?}");
    assert_eq!(r.record.bytes_downloaded, super::images::total_size(&l, &img.blob_digests()[1..]), "{r:?}");
    let heads = proxy.heads();
    let ranges: Vec<&String> = heads.iter().filter(|h| h.to_ascii_lowercase().contains("\nrange: bytes=")).collect();
    assert_eq!(ranges.len(), 1, "one resumed request: {heads:#?}");
    let start: u64 = ranges[0]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(|v| v.trim_end_matches('-').trim().to_string()))
        .unwrap()
        .parse()
        .unwrap();
    assert!(start > 0, "the resume starts after the bytes already received: {}", ranges[0]);
    let partial = up.requests().iter().any(|q| q.status == 206);
    assert_eq!(partial, !strip_range, "the upstream answers 206 exactly when it saw the Range");
    let pulled = wharf.pull(&skopeo, &r.image, "pulled");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "a resumed staging");
}

#[test]
fn a_corrupted_manifest_is_rejected() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(504);
    let base = layer(&mut l, &mut rng, "base.bin", 30_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "bent/app");
    let find = |needle: &[u8]| img.manifest.windows(needle.len()).position(|w| w == needle).unwrap();

    // A letter of an annotation: still a valid manifest, but not the one the digest names.
    let title = find(b"staging fixture");
    // A digit of the config digest turned into 'p'..'y': the bytes no longer parse either,
    // and the digest check must still be what rejects them.
    let hex = &img.config[7..];
    let digit = find(hex.as_bytes()) + hex.find(|c: char| c.is_ascii_digit()).unwrap();
    for (offset, mask, what) in [(title, 0x01, "an annotation"), (digit, 0x40, "a digest in the manifest")] {
        up.xor_at(&img.digest, offset, mask);
        for source in [format!("{}/bent/app:v1", up.host()), format!("{}/bent/app@{}", up.host(), img.digest)] {
            let resp = wharf.stage(&source, "bent", json!({})).expect(422, &format!("corrupted {what}, staged as {source}"));
            let message = error_message(&resp, "UPSTREAM_CONTENT_INVALID");
            assert!(message.contains(&img.digest), "{message}");
        }
        up.xor_at(&img.digest, offset, mask);
    }
    wharf.app("bent").expect(404, "nothing recorded");
    wharf.http.get_manifest("apps/bent", &img.digest).expect(404, "nothing pinned");
    assert!(up.wharfage_requests().iter().all(|r| !r.uri.contains("/blobs/")), "no blob fetched for a corrupted manifest");
    wharf.stage_ok(&format!("{}/bent/app:v1", up.host()), "bent", json!({}));
}

#[test]
fn a_layer_shorter_than_its_descriptor_is_rejected() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(505);
    let base = layer(&mut l, &mut rng, "base.bin", 200_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "short/app");
    // The same manifest with the layer's size overstated by 1000, pushed by hand.
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let real = m["layers"][0]["size"].as_u64().unwrap();
    m["layers"][0]["size"] = json!(real + 1000);
    let http = crate::client::Http::new(format!("127.0.0.1:{}", up.port).parse().unwrap());
    http.send("PUT", "/v2/short/app/manifests/long", &[("content-type", OCI_MANIFEST)], serde_json::to_vec(&m).unwrap())
        .expect(201, "pushing the overstated manifest");

    let resp = wharf.stage(&format!("{}/short/app:long", up.host()), "short", json!({})).expect(422, "a layer shorter than its descriptor");
    let message = error_message(&resp, "UPSTREAM_CONTENT_INVALID");
    assert!(message.contains(&base.digest), "{message}");
    wharf.app("short").expect(404, "nothing recorded");
}

#[test]
fn an_unusable_image_config_leaves_nothing_visible() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(506);
    let base = layer(&mut l, &mut rng, "base.bin", 30_000);
    let img = super::images::image_with(&mut l, "amd64", &[&base], json!({ "Cmd": ["/app"], "ExposedPorts": { "http/tcp": {} } }));
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "odd/app");

    let resp = wharf.stage(&format!("{}/odd/app:v1", up.host()), "odd", json!({})).expect(422, "an exposed port that is no number");
    let message = error_message(&resp, "UPSTREAM_CONTENT_INVALID");
    assert!(message.contains("http/tcp"), "the message names the port: {message}");
    wharf.app("odd").expect(404, "nothing recorded");
    wharf.http.get_manifest("apps/odd", &img.digest).expect(404, "the manifest of a failed staging is not pinned");
    for d in &img.blob_digests()[1..] {
        wharf.http.head(&format!("/v2/apps/odd/blobs/{d}")).expect(404, &format!("blob {d} linked into the failed app"));
    }
}

#[test]
fn a_schema1_manifest_is_refused_with_a_clear_error() {
    let skopeo = Skopeo::new();
    let up = Upstream::start_with(Mode::Anonymous, "compatibility:\n  schema1:\n    enabled: true\n");
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(507);
    let base = layer(&mut l, &mut rng, "base.bin", 30_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    let dest = format!("docker://{}/old/app:v1", up.host());
    skopeo.ok(&["copy", "--format", "v2s1", "--dest-tls-verify=false", "--dest-no-creds", &crate::skopeo::oci_ref(&l.dir, "v1"), &dest]);

    let resp = wharf.stage(&format!("{}/old/app:v1", up.host()), "old", json!({})).expect(422, "a schema 1 image");
    let message = error_message(&resp, "UPSTREAM_CONTENT_INVALID");
    assert!(message.contains("schema 1") && message.contains(&up.host()), "{message}");
    wharf.app("old").expect(404, "nothing recorded");
}

#[test]
fn unknown_images_bad_requests_and_unreachable_upstreams() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let nothing_there = format!("127.0.0.1:{}", testkit::free_port());
    let wharf = Wharf::for_hosts(&[up.host(), nothing_there.clone()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(503);
    let base = layer(&mut l, &mut rng, "base.bin", 20_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "known/app");

    for (source, what) in [
        (format!("{}/known/app:v2", up.host()), "an unknown tag"),
        (format!("{}/unknown/app:v1", up.host()), "an unknown repository"),
        (format!("{}/known/app@sha256:{}", up.host(), "ab".repeat(32)), "an unknown digest"),
    ] {
        let r = wharf.stage(&source, "app", json!({})).expect(404, what);
        let message = error_message(&r, "NOT_FOUND");
        assert!(message.contains(&up.host()), "{what}: the message names the registry: {message}");
    }

    let good = format!("{}/known/app:v1", up.host());
    for (source, app, extra, what) in [
        ("UPPER/Case:v1".to_string(), "app", json!({}), "an upper-case repository"),
        (format!("http://{}/known/app:v1", up.host()), "app", json!({}), "a URL"),
        (format!("{}/known/app:bad tag", up.host()), "app", json!({}), "a bad tag"),
        (format!("{}/known/app@sha256:abc", up.host()), "app", json!({}), "a short digest"),
        (String::new(), "app", json!({}), "an empty reference"),
        (good.clone(), "Bad-App", json!({}), "an upper-case app id"),
        (good.clone(), "team/app", json!({}), "an app id with a slash"),
        (good.clone(), "", json!({}), "an empty app id"),
        (good.clone(), "-app", json!({}), "an app id starting with a separator"),
        (good.clone(), "app", json!({ "platform": "linux" }), "a platform without an architecture"),
        (good.clone(), "app", json!({ "credentials": { "username": "u" } }), "a username without a password"),
        (good.clone(), "app", json!({ "colour": "blue" }), "an unknown field"),
    ] {
        let r = wharf.stage(&source, app, extra).expect(400, what);
        error_message(&r, "BAD_REQUEST");
    }
    for (raw, what) in [(&b"{not json"[..], "broken JSON"), (&b""[..], "an empty body"), (&br#"{"app":"x"}"#[..], "no source")] {
        let r = wharf.http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], raw.to_vec()).expect(400, what);
        error_message(&r, "BAD_REQUEST");
    }
    wharf.app("Bad-App").expect(400, "a bad app id in the path");

    let started = Instant::now();
    let r = wharf.stage(&format!("{nothing_there}/gone/app:v1"), "gone", json!({})).expect(502, "an unreachable upstream");
    let message = error_message(&r, "UPSTREAM_UNREACHABLE");
    assert!(message.contains(&nothing_there), "{message}");
    assert!(started.elapsed() < Duration::from_secs(60), "gave up after {:?}", started.elapsed());

    let apps = wharf.apps();
    assert!(apps.apps.is_empty(), "no failed staging leaves an app behind: {apps:?}");
    assert!(up.wharfage_requests().iter().all(|r| !r.uri.contains("/blobs/")), "no blob was fetched for a failed staging");
}

/// A registry may redirect blob downloads to another host, and a hostile one may name the
/// cloud metadata address in a spelling a string check misses (octal, hexadecimal, fewer
/// parts, IPv4 in IPv6). The redirect is judged as the URL parser reads it: each one fails
/// the staging with 403 `SOURCE_REFUSED`, and strace, watching every `connect` of the
/// server, sees the connections to the upstream and none to the metadata address.
#[test]
fn a_redirect_to_any_spelling_of_the_metadata_address_is_refused_before_connecting() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let spellings =
        ["0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "169.0376.0251.0376", "169.254.43518", "169.254.169.254", "[::ffff:a9fe:a9fe]"];
    let proxies: Vec<Proxy> =
        spellings.iter().map(|s| Proxy::start(up.port, Faults { redirect_blobs_to_host: Some(s), ..Faults::default() })).collect();
    let wharf = Wharf::for_hosts(&proxies.iter().map(Proxy::host).collect::<Vec<_>>());
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(509);
    let base = layer(&mut l, &mut rng, "base.bin", 20_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "known/app");

    let strace = Strace::attach(wharf.server.pid(), "trace=connect", &wharf.scratch("strace.out"));
    for (spelling, proxy) in spellings.iter().zip(&proxies) {
        let r = wharf.stage(&format!("{}/known/app:v1", proxy.host()), "redirected", json!({})).expect(403, spelling);
        let message = error_message(&r, "SOURCE_REFUSED");
        assert!(message.contains("metadata") && message.contains(&proxy.host()), "{spelling}: {message}");
        assert!(
            proxy.heads().iter().any(|h| h.starts_with("GET ") && h.contains("/blobs/")),
            "{spelling}: the upstream was asked for a blob"
        );
    }
    let calls = strace.calls();
    assert!(calls.contains("127.0.0.1"), "strace saw the connections to the upstream: {calls}");
    let to_metadata: Vec<&str> = calls.lines().filter(|l| l.contains("169.254") || l.contains("a9fe")).collect();
    assert!(to_metadata.is_empty(), "connections attempted to the metadata address: {to_metadata:?}");
    wharf.app("redirected").expect(404, "nothing recorded");
}
