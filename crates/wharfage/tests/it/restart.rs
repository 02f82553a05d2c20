//! Durability: what was pushed is served intact by a new process on the same root, after a
//! graceful stop (SIGTERM) and after `kill -9` right after the push completed.

use crate::client::Http;
use crate::fixtures::{OCI_INDEX, OCI_MANIFEST};
use crate::harness::{tempdir, Server};
use crate::round_trip::{assert_gone, assert_inspect_image, assert_manifest_served, assert_pull, image_fixture, index_fixture};
use crate::skopeo::{oci_ref, Skopeo};

#[test]
fn round_trip_after_restart() {
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let (image_layout, image) = image_fixture(&tmp.path().join("src-image"), 3);
    let (index_layout, index) = index_fixture(&tmp.path().join("src-index"), 4);

    let server = Server::start(&root);
    skopeo.copy_all(&oci_ref(&image_layout.dir, "v1"), &format!("docker://{}/restart/image:v1", server.host()));
    skopeo.copy_all(&oci_ref(&index_layout.dir, "v1"), &format!("docker://{}/restart/multi:v1", server.host()));
    server.stop();

    let server = Server::start(&root);
    assert_manifest_served(&server, "restart/image", "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    assert_manifest_served(&server, "restart/multi", "v1", &index.manifest, &index.digest, OCI_INDEX);
    assert_inspect_image(&skopeo, &format!("{}/restart/image:v1", server.host()), &image);
    assert!(
        skopeo.inspect_raw(&format!("{}/restart/multi:v1", server.host())) == index.manifest,
        "inspect --raw of the index after restart"
    );
    assert_pull(&skopeo, &server, "restart/image", "v1", &tmp.path().join("out-image"), &image_layout.blobs, &image.digest);
    assert_pull(&skopeo, &server, "restart/multi", "v1", &tmp.path().join("out-index"), &index_layout.blobs, &index.digest);

    // A delete made after the restart holds across another one; the other repository stays.
    skopeo.delete(&format!("{}/restart/image:v1", server.host()));
    assert_gone(&skopeo, &server, "restart/image", "v1", &image.digest);
    server.stop();

    let server = Server::start(&root);
    assert_gone(&skopeo, &server, "restart/image", "v1", &image.digest);
    assert_pull(&skopeo, &server, "restart/multi", "v1", &tmp.path().join("out-index-2"), &index_layout.blobs, &index.digest);
    server.stop();
}

#[test]
fn everything_intact_after_kill9_right_after_push() {
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let (image_layout, image) = image_fixture(&tmp.path().join("src-image"), 5);
    let (index_layout, index) = index_fixture(&tmp.path().join("src-index"), 6);

    let server = Server::start(&root);
    skopeo.copy_all(&oci_ref(&image_layout.dir, "v1"), &format!("docker://{}/crash/image:v1", server.host()));
    skopeo.copy_all(&oci_ref(&index_layout.dir, "v1"), &format!("docker://{}/crash/multi:v1", server.host()));
    server.kill9();

    let server = Server::start(&root);
    assert_manifest_served(&server, "crash/image", "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    assert_manifest_served(&server, "crash/multi", "v1", &index.manifest, &index.digest, OCI_INDEX);
    // Every config and layer, byte for byte, straight from the registry...
    let http = Http::new(server.addr);
    let images = std::iter::once(("crash/image", &image_layout.blobs, &image))
        .chain(index.images.iter().map(|i| ("crash/multi", &index_layout.blobs, i)));
    for (repo, blobs, img) in images {
        for digest in std::iter::once(&img.config).chain(&img.layers) {
            let r = http.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200, &format!("GET blob {digest} of {repo}"));
            let bytes = &blobs[digest];
            assert!(r.body == *bytes, "blob {digest} of {repo} differs after kill -9 ({} bytes, expected {})", r.body.len(), bytes.len());
            assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        }
    }
    // ...and through skopeo.
    assert_pull(&skopeo, &server, "crash/image", "v1", &tmp.path().join("out-image"), &image_layout.blobs, &image.digest);
    assert_pull(&skopeo, &server, "crash/multi", "v1", &tmp.path().join("out-index"), &index_layout.blobs, &index.digest);
    // The restarted server accepts pushes on the same root.
    skopeo.copy_all(&oci_ref(&image_layout.dir, "v1"), &format!("docker://{}/crash/again:v1", server.host()));
    assert_manifest_served(&server, "crash/again", "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    server.stop();
}
