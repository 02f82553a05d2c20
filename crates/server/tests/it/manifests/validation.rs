//! What a manifest must name and contain to be accepted: pushed blobs and children (unless
//! non-distributable, or the empty JSON config of an artifact), sizes that match, at most
//! 4 MiB, and valid JSON of a known type.

use super::{expect_manifest, expect_put};
use crate::*;

async fn manifest_naming_a_missing_blob_is_refused(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = Image::new(5, 2);
    r.push_blob("m", &img.config).await;
    r.push_blob("m", &img.layers[0]).await;
    let resp = r.put_manifest("m", "v1", OCI_MANIFEST, &img.manifest).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    expect_error(r.get("/v2/m/manifests/v1").await, 404, "MANIFEST_UNKNOWN").await;
    expect_error(r.get(&format!("/v2/m/manifests/{}", img.digest)).await, 404, "MANIFEST_UNKNOWN").await;

    // A blob held by another repository only does not count either.
    r.push_blob("elsewhere", &img.layers[1]).await;
    expect_error(r.put_manifest("m", "v1", OCI_MANIFEST, &img.manifest).await, 400, "MANIFEST_BLOB_UNKNOWN").await;

    r.push_blob("m", &img.layers[1]).await;
    expect_put(&r, "m", "v1", OCI_MANIFEST, &img.manifest).await;
}
both_backends!(manifest_naming_a_missing_blob_is_refused);

async fn descriptor_size_must_match_the_blob(backend: Backend) {
    let r = Registry::start(backend).await;
    let config = br#"{"os":"linux"}"#.to_vec();
    r.push_blob("sz", &config).await;
    let m = pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(&config), "size": config.len() + 1},
        "layers": [],
    }));
    expect_error(r.put_manifest("sz", "v1", OCI_MANIFEST, &m).await, 400, "MANIFEST_INVALID").await;
}
both_backends!(descriptor_size_must_match_the_blob);

/// By default an index may name children the repository lacks (a sparse index, which the
/// spec allows): it is stored and served as pushed, its absent children are unknown, and a
/// child that is present must still have the size the index states.
async fn sparse_index_is_accepted(backend: Backend) {
    let r = Registry::start(backend).await;
    let pushed = r.push_image("idx", None, 6).await;
    let absent = Image::new(7, 1);
    let index = oci_index(vec![pushed.descriptor(), absent.descriptor()], json!({}));
    let d = r.push_manifest("idx", "sparse", OCI_INDEX, &index).await;
    expect_manifest(&r, "idx", "sparse", OCI_INDEX, &index, &d).await;
    expect_error(r.get(&format!("/v2/idx/manifests/{}", absent.digest)).await, 404, "MANIFEST_UNKNOWN").await;
    // Only children: an image naming a blob the repository lacks is still refused.
    let mut wrong = pushed.descriptor();
    wrong["size"] = json!(wrong["size"].as_u64().unwrap() + 1);
    let index = oci_index(vec![wrong, absent.descriptor()], json!({}));
    expect_error(r.put_manifest("idx", "bad", OCI_INDEX, &index).await, 400, "MANIFEST_INVALID").await;
}
both_backends!(sparse_index_is_accepted);

/// With `--require-complete-indexes`, every child must be a manifest of the repository.
async fn index_naming_a_missing_child_is_refused_when_complete_indexes_are_required(backend: Backend) {
    let r = Registry::start_configured(backend, |s| s.completeness = server::ManifestCompleteness::Complete).await;
    let pushed = r.push_image("idx", None, 6).await;
    let missing = Image::new(7, 2);
    let index = oci_index(vec![pushed.descriptor(), missing.descriptor()], json!({}));
    expect_error(r.put_manifest("idx", "all", OCI_INDEX, &index).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    expect_error(r.get("/v2/idx/manifests/all").await, 404, "MANIFEST_UNKNOWN").await;
    // A child manifest that exists only in another repository is missing here too.
    r.push_image("other", None, 7).await;
    expect_error(r.put_manifest("idx", "all", OCI_INDEX, &index).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    r.push_image("idx", None, 7).await;
    let d = r.push_manifest("idx", "all", OCI_INDEX, &index).await;
    expect_manifest(&r, "idx", "all", OCI_INDEX, &index, &d).await;
}
both_backends!(index_naming_a_missing_child_is_refused_when_complete_indexes_are_required);

/// With `--manifest-completeness any`, an image manifest may name blobs the repository
/// lacks: it is stored and served, an absent layer is `BLOB_UNKNOWN`, present blobs are still
/// size-checked, fsck counts the absent blob as absent by design (no problem), garbage
/// collection keeps what is there, and a later push of the blob completes the image.
async fn sparse_image_manifest_is_accepted_under_any(backend: Backend) {
    let r = Registry::start_configured(backend, |s| {
        s.completeness = server::ManifestCompleteness::Any;
        s.gc.grace = std::time::Duration::ZERO;
    })
    .await;
    let img = Image::new(9, 2);
    r.push_blob("sp", &img.config).await;
    r.push_blob("sp", &img.layers[0]).await;
    let d = r.push_manifest("sp", "v1", OCI_MANIFEST, &img.manifest).await;
    assert_eq!(d, img.digest);
    expect_manifest(&r, "sp", "v1", OCI_MANIFEST, &img.manifest, &d).await;
    let tags = json_body(r.get("/v2/sp/tags/list").await).await;
    assert_eq!(tags["tags"], json!(["v1"]));
    let absent = sha256(&img.layers[1]);
    expect_error(r.get(&format!("/v2/sp/blobs/{absent}")).await, 404, "BLOB_UNKNOWN").await;
    assert_eq!(body(r.get(&format!("/v2/sp/blobs/{}", sha256(&img.layers[0]))).await).await, img.layers[0]);

    // A present blob with the wrong size is refused even so.
    let mut wrong: Value = serde_json::from_slice(&img.manifest).unwrap();
    wrong["layers"][0]["size"] = json!(img.layers[0].len() + 1);
    expect_error(r.put_manifest("sp", "bad", OCI_MANIFEST, &pretty(&wrong)).await, 400, "MANIFEST_INVALID").await;

    let report = r.fsck().await;
    assert!(report.problems.is_empty(), "an absent blob of a sparse manifest is not a problem: {:?}", report.problems);
    assert_eq!(report.absent_blobs, 1);
    // Collected with no grace: the tagged manifest keeps its config and present layer.
    let gc = r.req(Method::POST, "/api/v1/gc").header("content-type", "application/json").send().await.unwrap();
    assert_eq!(gc.status(), 200);
    expect_manifest(&r, "sp", "v1", OCI_MANIFEST, &img.manifest, &d).await;
    assert_eq!(body(r.get(&format!("/v2/sp/blobs/{}", sha256(&img.config))).await).await, img.config);

    // The missing layer, pushed later, completes the image.
    r.push_blob("sp", &img.layers[1]).await;
    assert_eq!(body(r.get(&format!("/v2/sp/blobs/{absent}")).await).await, img.layers[1]);
    let report = r.fsck().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.absent_blobs, 0);
}
both_backends!(sparse_image_manifest_is_accepted_under_any);

/// Under the default (`indexes`) an image manifest naming an absent blob is still refused,
/// and under `complete` so is a sparse index.
async fn completeness_settings_refuse_what_they_exclude(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = Image::new(10, 1);
    r.push_blob("c", &img.config).await;
    expect_error(r.put_manifest("c", "v1", OCI_MANIFEST, &img.manifest).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let r = Registry::start_configured(backend, |s| s.completeness = server::ManifestCompleteness::Complete).await;
    r.push_blob("c", &img.config).await;
    expect_error(r.put_manifest("c", "v1", OCI_MANIFEST, &img.manifest).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
}
both_backends!(completeness_settings_refuse_what_they_exclude);

async fn nested_and_empty_indexes(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = r.push_image("nest", None, 8).await;
    let inner = oci_index(vec![img.descriptor()], json!({}));
    let inner_d = r.push_manifest("nest", &sha256(&inner), OCI_INDEX, &inner).await;
    let outer = oci_index(vec![json!({"mediaType": OCI_INDEX, "digest": inner_d, "size": inner.len()})], json!({}));
    let outer_d = r.push_manifest("nest", "outer", OCI_INDEX, &outer).await;
    expect_manifest(&r, "nest", "outer", OCI_INDEX, &outer, &outer_d).await;
    let empty = oci_index(vec![], json!({}));
    let empty_d = r.push_manifest("nest", "empty", OCI_INDEX, &empty).await;
    expect_manifest(&r, "nest", "empty", OCI_INDEX, &empty, &empty_d).await;
}
both_backends!(nested_and_empty_indexes);

async fn non_distributable_layers_need_not_be_pushed(backend: Backend) {
    let r = Registry::start(backend).await;
    let config = br#"{"os":"windows"}"#.to_vec();
    let layer = bytes(9, 500);
    r.push_blob("nd", &config).await;
    r.push_blob("nd", &layer).await;
    let foreign = sha256(b"foreign layer");
    let m = pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": foreign, "size": 123456,
             "urls": ["https://example.com/layer"]},
            {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar", "digest": sha256(b"other"), "size": 10},
            {"mediaType": OCI_LAYER, "digest": sha256(&layer), "size": layer.len()},
        ],
    }));
    let d = r.push_manifest("nd", "win", OCI_MANIFEST, &m).await;
    expect_manifest(&r, "nd", "win", OCI_MANIFEST, &m, &d).await;
    // The registry does not pretend to hold the foreign layer.
    expect_error(r.get(&format!("/v2/nd/blobs/{foreign}")).await, 404, "BLOB_UNKNOWN").await;

    // Docker's foreign layers likewise.
    let dm = pretty(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": foreign, "size": 5,
                    "urls": ["https://example.com/foreign"]}],
    }));
    r.push_manifest("nd", "docker-win", DOCKER_MANIFEST, &dm).await;
}
both_backends!(non_distributable_layers_need_not_be_pushed);

async fn artifact_with_unpushed_empty_json_config_is_accepted(backend: Backend) {
    let r = Registry::start(backend).await;
    let layer = bytes(10, 64);
    r.push_blob("art", &layer).await;
    let m = pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.example.thing.layer", "digest": sha256(&layer), "size": layer.len()}],
    }));
    let d = r.push_manifest("art", "a1", OCI_MANIFEST, &m).await;
    expect_manifest(&r, "art", "a1", OCI_MANIFEST, &m, &d).await;
    let resp = r.get(&format!("/v2/art/blobs/{}", sha256(b"{}"))).await;
    assert_eq!(resp.status(), 200, "the empty config is pullable");
    assert_eq!(body(resp).await, b"{}");
}
both_backends!(artifact_with_unpushed_empty_json_config_is_accepted);

async fn manifest_without_layers(backend: Backend) {
    let r = Registry::start(backend).await;
    let config = br#"{"os":"linux"}"#.to_vec();
    r.push_blob("nl", &config).await;
    let m = oci_manifest(&config, &[], json!({}));
    let d = r.push_manifest("nl", "empty", OCI_MANIFEST, &m).await;
    expect_manifest(&r, "nl", "empty", OCI_MANIFEST, &m, &d).await;
    // Go clients write an empty layer list as null.
    let m = oci_manifest(&config, &[], json!({"layers": null}));
    let d = r.push_manifest("nl", "null", OCI_MANIFEST, &m).await;
    expect_manifest(&r, "nl", "null", OCI_MANIFEST, &m, &d).await;
}
both_backends!(manifest_without_layers);

/// A valid OCI manifest padded with an annotation to exactly `size` bytes.
fn manifest_of_size(config: &[u8], size: usize) -> Vec<u8> {
    let base = oci_manifest(config, &[], json!({"annotations": {"pad": ""}}));
    let pad = size - base.len();
    let m = oci_manifest(config, &[], json!({"annotations": {"pad": "x".repeat(pad)}}));
    assert_eq!(m.len(), size);
    m
}

async fn manifest_size_limit_is_4_mib(backend: Backend) {
    let r = Registry::start(backend).await;
    let config = br#"{"os":"linux"}"#.to_vec();
    r.push_blob("big", &config).await;

    let at_limit = manifest_of_size(&config, 4 << 20);
    let d = r.push_manifest("big", "at-limit", OCI_MANIFEST, &at_limit).await;
    expect_manifest(&r, "big", &d, OCI_MANIFEST, &at_limit, &d).await;

    let over = manifest_of_size(&config, (4 << 20) + 1);
    let resp = r.put_manifest("big", "over", OCI_MANIFEST, &over).await;
    assert_eq!(resp.status(), 413);
    let first = first_error(resp).await;
    assert_eq!(first.code, "MANIFEST_INVALID");
    assert!(first.message.contains("4 MiB"), "{first:?}");

    // Without a Content-Length (streamed), the limit holds as the bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = over.chunks(65536).map(|c| Ok(c.to_vec())).collect();
    let resp = r
        .req(Method::PUT, "/v2/big/manifests/streamed")
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    expect_error(r.get("/v2/big/manifests/over").await, 404, "MANIFEST_UNKNOWN").await;
    expect_error(r.get("/v2/big/manifests/streamed").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(manifest_size_limit_is_4_mib);

async fn invalid_manifests_are_refused(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = Image::new(20, 1);
    for (_, b) in img.blobs() {
        r.push_blob("bad", b).await;
    }
    for (what, ctype, body) in [
        ("not JSON", OCI_MANIFEST, b"this is not json".to_vec()),
        ("header and body disagree", DOCKER_MANIFEST, img.manifest.clone()),
        ("schema 1", "application/vnd.docker.distribution.manifest.v1+prettyjws", br#"{"schemaVersion":1,"name":"x","tag":"y"}"#.to_vec()),
        (
            "schemaVersion 3",
            OCI_MANIFEST,
            pretty(
                &json!({"schemaVersion": 3, "config": {"mediaType": OCI_CONFIG, "digest": sha256(&img.config), "size": img.config.len()}, "layers": []}),
            ),
        ),
        ("image without config", OCI_MANIFEST, pretty(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}))),
        ("index without manifests", OCI_INDEX, pretty(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX}))),
        ("unknown media type", "application/x-unknown", pretty(&json!({"schemaVersion": 2, "mediaType": "application/x-unknown"}))),
        (
            "bad descriptor digest",
            OCI_MANIFEST,
            pretty(&json!({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": "md5:00", "size": 1}, "layers": []})),
        ),
    ] {
        let resp = r.put_manifest("bad", "t", ctype, &body).await;
        let status = resp.status();
        let first = first_error(resp).await;
        assert_eq!(status, 400, "{what}: {first:?}");
        assert_eq!(first.code, "MANIFEST_INVALID", "{what}: {first:?}");
    }
    expect_error(r.get("/v2/bad/manifests/t").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(invalid_manifests_are_refused);
