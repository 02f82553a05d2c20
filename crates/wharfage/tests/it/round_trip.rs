//! skopeo round trips: an OCI layout copied into wharfage and back out byte-exactly, inspect,
//! inspect --raw, delete. The checks here are shared with the restart tests.

use std::path::Path;

use crate::client::{ErrorBodyExt, Http, RegistryExt};
use crate::fixtures::{self, assert_same_blobs, read_blobs, subset, tagged_digest, Image, Index, Layout, Rng, OCI_INDEX, OCI_MANIFEST};
use crate::harness::{tempdir, Server};
use crate::skopeo::{oci_ref, Skopeo};

/// A three-layer linux/amd64 image (small, medium, and a multi-MiB layer) tagged `v1`.
pub(crate) fn image_fixture(dir: &Path, seed: u64) -> (Layout, Image) {
    let mut layout = Layout::create(dir);
    let image = layout.add_image(&mut Rng::new(seed), "amd64", &[8 << 10, 512 << 10, 3 << 20]);
    layout.tag("v1", OCI_MANIFEST, &image.digest);
    (layout, image)
}

/// A linux/amd64 + linux/arm64 index of two-layer images tagged `v1`.
pub(crate) fn index_fixture(dir: &Path, seed: u64) -> (Layout, Index) {
    let mut layout = Layout::create(dir);
    let index = layout.add_index(&mut Rng::new(seed), &[64 << 10, 1 << 20]);
    layout.tag("v1", OCI_INDEX, &index.digest);
    (layout, index)
}

/// The registry serves the manifest at `repo:tag` and by digest with its exact bytes, media
/// type and digest.
#[track_caller]
pub(crate) fn assert_manifest_served(server: &Server, repo: &str, tag: &str, bytes: &[u8], digest: &str, media_type: &str) {
    let http = Http::new(server.addr);
    for reference in [tag, digest] {
        let r = http.get_manifest(repo, reference).expect(200, &format!("GET manifest {repo}:{reference}"));
        assert!(r.body == bytes, "GET manifest {repo}:{reference}: bytes differ from the pushed manifest:\n{}", r.text());
        assert_eq!(r.header("docker-content-digest"), Some(digest), "Docker-Content-Digest of {repo}:{reference}");
        assert_eq!(r.header("content-type"), Some(media_type), "Content-Type of {repo}:{reference}");
    }
}

/// `skopeo copy --all --preserve-digests` of `repo:tag` out of wharfage into a fresh layout,
/// which must hold exactly `expected` and name `digest` as `tag`.
#[track_caller]
pub(crate) fn assert_pull(
    skopeo: &Skopeo,
    server: &Server,
    repo: &str,
    tag: &str,
    out: &Path,
    expected: &std::collections::BTreeMap<String, Vec<u8>>,
    digest: &str,
) {
    skopeo.copy_all(&format!("docker://{}/{repo}:{tag}", server.host()), &oci_ref(out, tag));
    assert_same_blobs(expected, &read_blobs(out), &format!("pull of {repo}:{tag}"));
    assert_eq!(tagged_digest(out, tag).as_deref(), Some(digest), "the pulled layout's index.json names {tag}");
}

/// `skopeo inspect` of an image: its digest, layers and platform.
#[track_caller]
pub(crate) fn assert_inspect_image(skopeo: &Skopeo, image_ref: &str, image: &Image) {
    let v = skopeo.inspect_json(image_ref, &[]);
    assert_eq!(v["Digest"].as_str(), Some(image.digest.as_str()), "inspect Digest: {v}");
    assert_eq!(v["Architecture"].as_str(), Some(image.architecture.as_str()), "inspect Architecture: {v}");
    assert_eq!(v["Os"].as_str(), Some("linux"), "inspect Os: {v}");
    let layers: Vec<&str> = v["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(layers, image.layers.iter().map(String::as_str).collect::<Vec<_>>(), "inspect Layers");
    assert!(skopeo.inspect_raw(image_ref) == image.manifest, "inspect --raw of {image_ref} differs from the pushed manifest");
}

/// After a delete, inspect fails by tag and by digest, and the manifest GET is 404.
#[track_caller]
pub(crate) fn assert_gone(skopeo: &Skopeo, server: &Server, repo: &str, tag: &str, digest: &str) {
    for reference in [format!("{}/{repo}:{tag}", server.host()), format!("{}/{repo}@{digest}", server.host())] {
        let out = skopeo.inspect(&reference, &[]);
        assert!(!out.status.success(), "skopeo inspect {reference} still succeeds after the delete");
    }
    let r = Http::new(server.addr).get_manifest(repo, digest);
    assert_eq!(r.status, 404, "GET manifest {repo}@{digest} after delete: {}", r.text());
    assert_eq!(r.error_codes(), ["MANIFEST_UNKNOWN"], "error code of a deleted manifest");
}

#[test]
fn multi_layer_image_round_trip() {
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let (layout, image) = image_fixture(&tmp.path().join("src"), 1);
    let server = Server::start(&tmp.path().join("root"));
    let repo = "e2e/image";
    let image_ref = format!("{}/{repo}:v1", server.host());

    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{image_ref}"));
    assert_manifest_served(&server, repo, "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    let tags: serde_json::Value =
        serde_json::from_slice(&Http::new(server.addr).get(&format!("/v2/{repo}/tags/list")).expect(200, "tags list").body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]), "tags of {repo}");

    assert_inspect_image(&skopeo, &image_ref, &image);
    let config = skopeo.inspect(&image_ref, &["--config", "--raw"]);
    assert!(
        config.status.success() && config.stdout == layout.blobs[&image.config],
        "inspect --config --raw differs from the pushed config"
    );

    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);
    // And by digest.
    let by_digest = tmp.path().join("out-by-digest");
    skopeo.copy_all(&format!("docker://{}/{repo}@{}", server.host(), image.digest), &oci_ref(&by_digest, "pinned"));
    assert_same_blobs(&layout.blobs, &read_blobs(&by_digest), "pull by digest");

    // A second tag of the same image: every blob is already there.
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v2", server.host()));
    assert_manifest_served(&server, repo, "v2", &image.manifest, &image.digest, OCI_MANIFEST);
    let listed: serde_json::Value = serde_json::from_slice(
        &skopeo.ok(&["list-tags", "--tls-verify=false", "--no-creds", &format!("docker://{}/{repo}", server.host())]).stdout,
    )
    .unwrap();
    assert_eq!(listed["Tags"], serde_json::json!(["v1", "v2"]), "skopeo list-tags");

    // skopeo deletes by digest: the manifest goes, with both tags that named it.
    skopeo.delete(&image_ref);
    assert_gone(&skopeo, &server, repo, "v1", &image.digest);
    assert!(
        !skopeo.inspect(&format!("{}/{repo}:v2", server.host()), &[]).status.success(),
        "the other tag of a deleted manifest still resolves"
    );
    let t = Http::new(server.addr).get(&format!("/v2/{repo}/tags/list"));
    let listed: serde_json::Value = serde_json::from_slice(&t.body).unwrap_or_default();
    let no_tags = listed["tags"].as_array().is_none_or(|a| a.is_empty());
    assert!((t.status == 200 && no_tags) || t.status == 404, "tags of {repo} after deleting its only manifest: {} {}", t.status, t.text());
    let out = skopeo.run(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{image_ref}"),
        &oci_ref(&tmp.path().join("after-delete"), "v1"),
    ]);
    assert!(!out.status.success(), "a pull of a deleted image succeeded");
}

#[test]
fn multi_arch_index_round_trip() {
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let (layout, index) = index_fixture(&tmp.path().join("src"), 2);
    let server = Server::start(&tmp.path().join("root"));
    let repo = "e2e/multi";
    let image_ref = format!("{}/{repo}:v1", server.host());

    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{image_ref}"));
    assert_manifest_served(&server, repo, "v1", &index.manifest, &index.digest, OCI_INDEX);
    for img in &index.images {
        assert_manifest_served(&server, repo, &img.digest, &img.manifest, &img.digest, OCI_MANIFEST);
    }

    assert!(skopeo.inspect_raw(&image_ref) == index.manifest, "inspect --raw of the index differs from the pushed index");
    for img in &index.images {
        let v = skopeo.inspect_platform_json(&image_ref, &img.architecture);
        assert_eq!(v["Architecture"].as_str(), Some(img.architecture.as_str()), "inspect chose the platform: {v}");
        let layers: Vec<&str> = v["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        assert_eq!(layers, img.layers.iter().map(String::as_str).collect::<Vec<_>>(), "{} layers", img.architecture);
        assert_inspect_image(&skopeo, &format!("{}/{repo}@{}", server.host(), img.digest), img);
    }

    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &index.digest);

    // A single-platform pull of the index gets exactly that platform's blobs.
    let arm = &index.images[1];
    let out = tmp.path().join("out-arm64");
    skopeo.ok(&[
        "--override-os",
        "linux",
        "--override-arch",
        "arm64",
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{image_ref}"),
        &oci_ref(&out, "v1"),
    ]);
    assert_same_blobs(&subset(&layout.blobs, &arm.blob_digests()), &read_blobs(&out), "arm64-only pull");
    assert_eq!(tagged_digest(&out, "v1").as_deref(), Some(arm.digest.as_str()));

    skopeo.delete(&image_ref);
    assert_gone(&skopeo, &server, repo, "v1", &index.digest);
}

#[test]
fn docker_schema2_round_trip() {
    // skopeo converts the OCI image to a Docker schema 2 manifest on the way in; the layers
    // keep their bytes, the manifest is new, and must come back exactly as skopeo pushed it.
    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let (layout, image) = image_fixture(&tmp.path().join("src"), 7);
    let server = Server::start(&tmp.path().join("root"));
    let repo = "e2e/docker";
    let image_ref = format!("{}/{repo}:v2s2", server.host());

    skopeo.ok(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &oci_ref(&layout.dir, "v1"),
        &format!("docker://{image_ref}"),
    ]);
    let raw = skopeo.inspect_raw(&image_ref);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"].as_str(), Some(DOCKER_MANIFEST), "skopeo pushed a Docker schema 2 manifest");
    let digest = fixtures::sha256(&raw);
    assert_manifest_served(&server, repo, "v2s2", &raw, &digest, DOCKER_MANIFEST);
    let layers: Vec<&str> = manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
    assert_eq!(layers, image.layers.iter().map(String::as_str).collect::<Vec<_>>(), "the layers keep their digests");
    let v = skopeo.inspect_json(&image_ref, &[]);
    assert_eq!(v["Digest"].as_str(), Some(digest.as_str()));

    // Out through the `dir:` transport, which keeps the manifest as served.
    let out = tmp.path().join("out");
    skopeo.ok(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{image_ref}"),
        &format!("dir:{}", out.display()),
    ]);
    assert!(std::fs::read(out.join("manifest.json")).unwrap() == raw, "the pulled manifest differs from the pushed one");
    for d in &image.layers {
        assert!(std::fs::read(out.join(&d[7..])).unwrap() == layout.blobs[d], "layer {d} differs");
    }
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(fixtures::sha256(&std::fs::read(out.join(&config[7..])).unwrap()), config, "the pulled config");

    skopeo.delete(&image_ref);
    assert_gone(&skopeo, &server, repo, "v2s2", &digest);
}
