//! Signatures and SBOMs come along with a staging, so a policy engine can verify the pinned
//! image against wharfage alone: found through the upstream's referrers API (wharfage itself
//! as the upstream), or through the tag schema on Debian's docker-registry, which has no
//! such API (an OCI 1.1 `sha256-<hex>` index of referrers, and a cosign `sha256-<hex>.sig`
//! tag). A referrer that cannot be copied is a warning, unless the request requires them.
//! The tag schema's tags are made again in `apps/<app>`, so that tag-schema verifiers
//! (cosign by default, Kyverno) find the signatures there; they live and die with the pin.

use serde_json::{json, Value};
use testkit::http::Http;

use super::images::{image, layer};
use super::upstream::{Mode, Upstream};
use super::{error_message, insecure, layout, Wharf};
use crate::fixtures::{sha256, Image, Rng, OCI_INDEX, OCI_MANIFEST};
use crate::skopeo::{oci_ref, Skopeo};

const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A registry on loopback, by `host:port`.
fn client(host: &str) -> Http {
    Http::new(host.parse().unwrap())
}

/// Pushes a blob with a POST and a PUT (what every registry supports); its digest.
fn push_blob(http: &Http, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let started = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "start an upload");
    let location = started.header("location").expect("an upload location").to_string();
    let path = &location[location.find("/v2/").expect("a /v2/ location")..];
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = format!("{path}{sep}digest={d}");
    http.send("PUT", &url, &[("content-type", "application/octet-stream")], bytes.to_vec()).expect(201, "finish the upload");
    d
}

/// Pushes a manifest; its digest.
fn push_manifest(http: &Http, repo: &str, reference: Option<&str>, media_type: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let url = format!("/v2/{repo}/manifests/{}", reference.unwrap_or(&d));
    http.send("PUT", &url, &[("content-type", media_type)], bytes.to_vec()).expect(201, &format!("push manifest {url}"));
    d
}

/// An artifact about `subject` (an OCI 1.1 manifest with `subject`, or without one as
/// cosign's tag schema writes it), pushed by digest; (digest, manifest bytes, payload).
fn push_artifact(http: &Http, repo: &str, subject: &Image, artifact_type: &str, payload: &[u8], with_subject: bool) -> (String, Vec<u8>) {
    push_blob(http, repo, b"{}");
    let layer = push_blob(http, repo, payload);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer, "size": payload.len()}],
        "annotations": {"org.example.kind": artifact_type},
    });
    if with_subject {
        m["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len()});
    }
    let bytes = serde_json::to_vec(&m).unwrap();
    (push_manifest(http, repo, None, OCI_MANIFEST, &bytes), bytes)
}

/// The tag schema's tag for `img` (`sha256-<hex>` then `suffix`, e.g. `.sig`).
fn schema_tag(img: &Image, suffix: &str) -> String {
    format!("sha256-{}{suffix}", &img.digest["sha256:".len()..])
}

/// Signs `img` as cosign does by default: a signature manifest without `subject`, tagged
/// `sha256-<hex>.sig`; (digest, manifest bytes).
fn cosign_sign(http: &Http, repo: &str, img: &Image, payload: &[u8]) -> (String, Vec<u8>) {
    let (d, bytes) = push_artifact(http, repo, img, SIG_TYPE, payload, false);
    push_manifest(http, repo, Some(&schema_tag(img, ".sig")), OCI_MANIFEST, &bytes);
    (d, bytes)
}

/// `tag` in `apps/<app>` resolves to exactly `manifest`, with its digest.
#[track_caller]
fn tagged_exactly(wharf: &Wharf, app: &str, tag: &str, digest: &str, manifest: &[u8]) {
    let m = wharf.http.get(&format!("/v2/apps/{app}/manifests/{tag}")).expect(200, &format!("the tag {tag} in apps/{app}"));
    assert_eq!(m.body, manifest, "{tag}, byte for byte");
    assert_eq!(m.header("docker-content-digest"), Some(digest), "{tag}");
}

/// An image pushed to `host`'s `repo:v1` with skopeo.
fn push_image(skopeo: &Skopeo, wharf: &Wharf, host: &str, repo: &str, seed: u64) -> Image {
    let mut l = layout(&wharf.scratch(&format!("src-{seed}")));
    let mut rng = Rng::new(seed);
    let base = layer(&mut l, &mut rng, "base.bin", 50_000);
    let img = image(&mut l, "amd64", &[&base]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    skopeo.copy_all(&oci_ref(&l.dir, "v1"), &format!("docker://{host}/{repo}:v1"));
    img
}

/// The referrers wharfage lists for `digest` in `apps/<app>`: digest -> descriptor.
fn listed(wharf: &Wharf, app: &str, digest: &str) -> std::collections::BTreeMap<String, Value> {
    let r = wharf.http.get(&format!("/v2/apps/{app}/referrers/{digest}")).expect(200, "the referrers API");
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let index: Value = r.json();
    index["manifests"].as_array().unwrap().iter().map(|d| (d["digest"].as_str().unwrap().to_string(), d.clone())).collect()
}

/// A referrer served by wharfage byte for byte: its manifest and its payload.
#[track_caller]
fn served_exactly(wharf: &Wharf, app: &str, digest: &str, manifest: &[u8], payload: &[u8]) {
    let m = wharf.http.get(&format!("/v2/apps/{app}/manifests/{digest}")).expect(200, "a referrer's manifest");
    assert_eq!(m.body, manifest, "the manifest of {digest}, byte for byte");
    let b = wharf.http.get(&format!("/v2/apps/{app}/blobs/{}", sha256(payload))).expect(200, "a referrer's payload");
    assert_eq!(b.body, payload, "the payload of {digest}");
}

#[test]
fn referrers_found_through_the_upstreams_referrers_api_come_along() {
    let skopeo = Skopeo::new();
    let up = Wharf::start(&[]);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let img = push_image(&skopeo, &wharf, &up.host(), "tools/signed", 401);
    let http = client(&up.host());
    let (sig, sig_bytes) = push_artifact(&http, "tools/signed", &img, SIG_TYPE, b"signature of the image", true);
    let (sbom, sbom_bytes) = push_artifact(&http, "tools/signed", &img, SBOM_TYPE, b"{\"spdxVersion\":\"SPDX-2.3\"}", true);

    let r = wharf.stage_ok(&format!("{}/tools/signed:v1", up.host()), "signed", json!({}));
    assert_eq!(r.record.digest.to_string(), img.digest);
    assert_eq!(r.record.referrers, 2, "{r:?}");
    assert!(r.record.warnings.is_empty(), "{:?}", r.record.warnings);
    // The image's 2 blobs, the empty config and the two payloads.
    assert_eq!((r.record.blobs_downloaded, r.record.blobs_reused), (5, 0), "{r:?}");
    // Skipped on request.
    let skipped = wharf.stage_ok(&format!("{}/tools/signed:v1", up.host()), "unsigned", json!({ "referrers": "skip" }));
    assert_eq!(skipped.record.referrers, 0);
    drop(up);
    assert!(listed(&wharf, "unsigned", &img.digest).is_empty());

    let list = listed(&wharf, "signed", &img.digest);
    assert_eq!(list.keys().cloned().collect::<Vec<_>>(), {
        let mut v = vec![sig.clone(), sbom.clone()];
        v.sort();
        v
    });
    assert_eq!(list[&sig]["artifactType"], SIG_TYPE);
    assert_eq!(list[&sbom]["artifactType"], SBOM_TYPE);
    assert_eq!(list[&sig]["annotations"]["org.example.kind"], SIG_TYPE);
    served_exactly(&wharf, "signed", &sig, &sig_bytes, b"signature of the image");
    served_exactly(&wharf, "signed", &sbom, &sbom_bytes, b"{\"spdxVersion\":\"SPDX-2.3\"}");
    let filtered = wharf
        .http
        .get(&format!("/v2/apps/signed/referrers/{}?artifactType={}", img.digest, SBOM_TYPE.replace('+', "%2B")))
        .expect(200, "filtered");
    let filtered: Value = filtered.json();
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1, "{filtered}");
}

#[test]
fn referrers_found_through_the_tag_schema_come_along() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let img = push_image(&skopeo, &wharf, &up.host(), "tools/signed", 402);
    let http = client(&up.host());
    let hex = &img.digest["sha256:".len()..];
    // An OCI 1.1 client on a registry without the API: the artifact, then the tag schema's
    // index listing it.
    let (sbom, sbom_bytes) = push_artifact(&http, "tools/signed", &img, SBOM_TYPE, b"sbom of the image", true);
    let entry = json!({"mediaType": OCI_MANIFEST, "digest": sbom, "size": sbom_bytes.len(), "artifactType": SBOM_TYPE});
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})).unwrap();
    let index_digest = push_manifest(&http, "tools/signed", Some(&format!("sha256-{hex}")), OCI_INDEX, &index);
    let (sig, sig_bytes) = cosign_sign(&http, "tools/signed", &img, b"cosign signature");

    let r = wharf.stage_ok(&format!("{}/tools/signed:v1", up.host()), "signed", json!({ "referrers": "require" }));
    assert_eq!(r.record.referrers, 2, "{r:?}");
    // The cosign tag was found by a HEAD, the tag schema's index read with a GET.
    let asked = |method: &str, tag: &str| {
        up.wharfage_requests().iter().any(|q| q.method == method && q.uri.ends_with(&format!("/manifests/{tag}")))
    };
    assert!(asked("HEAD", &format!("sha256-{hex}.sig")) && asked("HEAD", &format!("sha256-{hex}")), "{:?}", up.wharfage_requests());
    let list = listed(&wharf, "signed", &img.digest);
    assert_eq!(list.keys().cloned().collect::<Vec<_>>(), {
        let mut v = vec![sig.clone(), sbom.clone()];
        v.sort();
        v
    });
    assert_eq!(list[&sig]["artifactType"], SIG_TYPE);
    served_exactly(&wharf, "signed", &sig, &sig_bytes, b"cosign signature");
    served_exactly(&wharf, "signed", &sbom, &sbom_bytes, b"sbom of the image");
    // Tag-schema verifiers find them in wharfage as upstream: cosign's tag, and the OCI 1.1
    // fallback's index of referrers.
    drop(up);
    tagged_exactly(&wharf, "signed", &schema_tag(&img, ".sig"), &sig, &sig_bytes);
    tagged_exactly(&wharf, "signed", &schema_tag(&img, ""), &index_digest, &index);
}

#[test]
fn signature_tags_live_and_die_with_the_pin() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let mut args = insecure(&[up.host()]);
    args.extend(["--gc-grace", "0s", "--gc-protect-window", "1s"].map(String::from));
    let wharf = Wharf::start(&args);
    let http = client(&up.host());
    let first = push_image(&skopeo, &wharf, &up.host(), "tools/first", 404);
    let (first_sig, first_bytes) = cosign_sign(&http, "tools/first", &first, b"signature of the first image");
    let second = push_image(&skopeo, &wharf, &up.host(), "tools/second", 405);
    let (second_sig, second_bytes) = cosign_sign(&http, "tools/second", &second, b"signature of the second image");

    wharf.stage_ok(&format!("{}/tools/first:v1", up.host()), "app", json!({}));
    tagged_exactly(&wharf, "app", &schema_tag(&first, ".sig"), &first_sig, &first_bytes);

    // A re-staging of another image replaces the tags; the first image's signature is still
    // listed for its subject while that staging is retained.
    let r = wharf.stage_ok(&format!("{}/tools/second:v1", up.host()), "app", json!({}));
    assert_eq!(r.record.referrers, 1, "{r:?}");
    tagged_exactly(&wharf, "app", &schema_tag(&second, ".sig"), &second_sig, &second_bytes);
    wharf.http.get(&format!("/v2/apps/app/manifests/{}", schema_tag(&first, ".sig"))).expect(404, "the replaced image's tag");
    assert!(listed(&wharf, "app", &first.digest).contains_key(&first_sig));

    // Unpinned: the tag goes at once, the signatures' bytes at the next collection.
    wharf.http.send("DELETE", "/api/v1/apps/app", &[("content-type", "application/json")], Vec::new()).expect(200, "unpin");
    wharf.http.get(&format!("/v2/apps/app/manifests/{}", schema_tag(&second, ".sig"))).expect(404, "an unpinned app's tag");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    wharf.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], b"{}".to_vec()).expect(200, "gc");
    let stored = crate::gc::blob_files(&wharf.root);
    for d in [&first_sig, &second_sig, &sha256(b"signature of the first image"), &sha256(b"signature of the second image")] {
        assert!(!stored.contains_key(d.as_str()), "{d} outlived the pin");
    }
    assert!(stored.is_empty(), "an unpinned app left {stored:?}");
    wharf.http.get(&format!("/v2/apps/app/manifests/{second_sig}")).expect(404, "a collected signature");
}

#[test]
fn a_referrer_that_cannot_be_copied_is_a_warning_unless_required() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let img = push_image(&skopeo, &wharf, &up.host(), "tools/signed", 403);
    let http = client(&up.host());
    let payload = b"a signature whose bytes upstream are damaged";
    let (_, sig_bytes) = cosign_sign(&http, "tools/signed", &img, payload);
    up.flip_bit(&sha256(payload));
    let source = format!("{}/tools/signed:v1", up.host());

    let r = wharf.stage(&source, "strict", json!({ "referrers": "require" })).expect(422, "a required referrer that is corrupt");
    let message = error_message(&r, "UPSTREAM_CONTENT_INVALID");
    assert!(message.contains(&sha256(payload)), "{message}");
    wharf.app("strict").expect(404, "nothing staged");

    let r = wharf.stage_ok(&source, "lenient", json!({}));
    assert_eq!(r.record.digest.to_string(), img.digest, "the image is staged");
    assert_eq!(r.record.referrers, 0);
    assert_eq!(r.record.warnings.len(), 1, "{:?}", r.record.warnings);
    assert!(r.record.warnings[0].contains(&sha256(payload)), "the warning names the blob: {:?}", r.record.warnings);
    assert!(listed(&wharf, "lenient", &img.digest).is_empty());
    let tag = schema_tag(&img, ".sig");
    wharf.http.get(&format!("/v2/apps/lenient/manifests/{tag}")).expect(404, "a tag naming a signature left out");
    wharf.pull(&skopeo, &r.image, "lenient");

    up.flip_bit(&sha256(payload));
    let r = wharf.stage_ok(&source, "strict", json!({ "referrers": "require" }));
    assert_eq!(r.record.referrers, 1);
    served_exactly(&wharf, "strict", &sha256(&sig_bytes), &sig_bytes, payload);
    tagged_exactly(&wharf, "strict", &tag, &sha256(&sig_bytes), &sig_bytes);
}
