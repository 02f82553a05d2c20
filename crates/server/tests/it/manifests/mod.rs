//! Manifest PUT/GET/HEAD/DELETE by tag and digest, for the four manifest types, with reference
//! checks, the size limit, `?tag=` parameters and sha512.

use crate::*;

/// Asserts GET and HEAD of a manifest by `reference` answer the pushed bytes, type and digest.
async fn expect_manifest(r: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8], digest: &str) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = r
        .req(Method::GET, &path)
        .header("accept", format!("{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_LIST}, {DOCKER_MANIFEST}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    assert_eq!(header(&resp, "content-type"), media_type, "GET {path}");
    assert_eq!(header(&resp, "docker-content-digest"), digest, "GET {path}");
    assert_eq!(header(&resp, "content-length"), bytes.len().to_string(), "GET {path}");
    assert_eq!(body(resp).await, bytes, "GET {path} is byte-exact");
    let resp = r.head(&path).await;
    assert_eq!(resp.status(), 200, "HEAD {path}");
    assert_eq!(header(&resp, "content-type"), media_type, "HEAD {path}");
    assert_eq!(header(&resp, "docker-content-digest"), digest, "HEAD {path}");
    assert_eq!(header(&resp, "content-length"), bytes.len().to_string(), "HEAD {path}");
    assert!(body(resp).await.is_empty(), "HEAD {path} has no body");
}

/// PUTs a manifest and asserts the 201 answer's headers.
async fn expect_put(r: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
    let resp = r.put_manifest(repo, reference, media_type, bytes).await;
    let d = if reference.starts_with("sha512:") { sha512(bytes) } else { sha256(bytes) };
    assert_eq!(resp.status(), 201, "PUT {repo}:{reference}");
    assert_eq!(header(&resp, "location"), format!("/v2/{repo}/manifests/{d}"));
    assert_eq!(header(&resp, "docker-content-digest"), d);
    resp
}

fn docker_manifest(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": DOCKER_LAYER, "digest": sha256(l), "size": l.len()})).collect::<Vec<_>>(),
    }))
}

async fn all_four_manifest_types_round_trip_by_tag_and_digest(backend: Backend) {
    let r = Registry::start(backend).await;
    let repo = "lib/multi";

    // OCI image manifest.
    let img = Image::new(1, 2);
    for (_, b) in img.blobs() {
        r.push_blob(repo, b).await;
    }
    expect_put(&r, repo, "oci", OCI_MANIFEST, &img.manifest).await;
    expect_manifest(&r, repo, "oci", OCI_MANIFEST, &img.manifest, &img.digest).await;
    expect_manifest(&r, repo, &img.digest, OCI_MANIFEST, &img.manifest, &img.digest).await;

    // OCI index of two images (the children pushed by digest).
    let arm = Image::new(2, 1);
    for (_, b) in arm.blobs() {
        r.push_blob(repo, b).await;
    }
    expect_put(&r, repo, &arm.digest, OCI_MANIFEST, &arm.manifest).await;
    let mut a = img.descriptor();
    merge(&mut a, json!({"platform": {"os": "linux", "architecture": "amd64"}}));
    let mut b = arm.descriptor();
    merge(&mut b, json!({"platform": {"os": "linux", "architecture": "arm64"}}));
    let index = oci_index(vec![a, b], json!({}));
    let index_d = sha256(&index);
    expect_put(&r, repo, "index", OCI_INDEX, &index).await;
    expect_manifest(&r, repo, "index", OCI_INDEX, &index, &index_d).await;
    expect_manifest(&r, repo, &index_d, OCI_INDEX, &index, &index_d).await;

    // Docker schema 2.
    let config = br#"{"architecture":"amd64","os":"linux","docker":true}"#.to_vec();
    let layers = vec![bytes(3, 900)];
    r.push_blob(repo, &config).await;
    r.push_blob(repo, &layers[0]).await;
    let docker = docker_manifest(&config, &layers);
    let docker_d = sha256(&docker);
    expect_put(&r, repo, "docker", DOCKER_MANIFEST, &docker).await;
    expect_manifest(&r, repo, "docker", DOCKER_MANIFEST, &docker, &docker_d).await;
    expect_manifest(&r, repo, &docker_d, DOCKER_MANIFEST, &docker, &docker_d).await;

    // Docker manifest list.
    let list = pretty(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": docker_d, "size": docker.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }));
    let list_d = sha256(&list);
    expect_put(&r, repo, "dlist", DOCKER_LIST, &list).await;
    expect_manifest(&r, repo, "dlist", DOCKER_LIST, &list, &list_d).await;
    expect_manifest(&r, repo, &list_d, DOCKER_LIST, &list, &list_d).await;
}
both_backends!(all_four_manifest_types_round_trip_by_tag_and_digest);

async fn manifests_are_stored_byte_for_byte_under_the_pushed_type(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = Image::new(4, 1);
    for (_, b) in img.blobs() {
        r.push_blob("exact", b).await;
    }
    // No mediaType in the body, unusual whitespace, key order and unknown fields: served
    // back exactly, under the Content-Type it was pushed with.
    let layer = &img.layers[0];
    let body = format!(
        "{{ \"x-custom\" : [1,2,3],\n\t\"layers\":[{{\"size\":{},\"digest\":\"{}\",\"mediaType\":\"{OCI_LAYER}\"}}],\n  \"config\":{{\"mediaType\":\"{OCI_CONFIG}\",\"size\":{},\"digest\":\"{}\"}},\"schemaVersion\":2 }}\r\n",
        layer.len(),
        sha256(layer),
        img.config.len(),
        sha256(&img.config)
    )
    .into_bytes();
    let d = sha256(&body);
    expect_put(&r, "exact", "odd", "application/vnd.oci.image.manifest.v1+json; charset=utf-8", &body).await;
    expect_manifest(&r, "exact", "odd", OCI_MANIFEST, &body, &d).await;
}
both_backends!(manifests_are_stored_byte_for_byte_under_the_pushed_type);

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

async fn index_naming_a_missing_child_is_refused(backend: Backend) {
    let r = Registry::start(backend).await;
    let pushed = r.push_image("idx", None, 6).await;
    let missing = Image::new(7, 1);
    let index = oci_index(vec![pushed.descriptor(), missing.descriptor()], json!({}));
    expect_error(r.put_manifest("idx", "all", OCI_INDEX, &index).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
    expect_error(r.get("/v2/idx/manifests/all").await, 404, "MANIFEST_UNKNOWN").await;
    // A child manifest that exists only in another repository is missing here too.
    r.push_image("other", None, 7).await;
    expect_error(r.put_manifest("idx", "all", OCI_INDEX, &index).await, 400, "MANIFEST_BLOB_UNKNOWN").await;
}
both_backends!(index_naming_a_missing_child_is_refused);

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

async fn put_by_digest_with_tag_parameters(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = r.push_image("tp", None, 11).await;
    let resp = r
        .req(Method::PUT, &format!("/v2/tp/manifests/{}?tag=a&tag=b", img.digest))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), img.digest);
    let applied: Vec<String> =
        headers(&resp, "oci-tag").iter().flat_map(|v| v.split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>()).collect();
    assert!(applied.contains(&"a".to_string()) && applied.contains(&"b".to_string()), "OCI-Tag: {applied:?}");
    for t in ["a", "b"] {
        expect_manifest(&r, "tp", t, OCI_MANIFEST, &img.manifest, &img.digest).await;
    }
    let tags = json_body(r.get("/v2/tp/tags/list").await).await;
    assert_eq!(tags["tags"], json!(["a", "b"]));

    // An invalid tag parameter is refused and applies nothing.
    let resp = r
        .req(Method::PUT, &format!("/v2/tp/manifests/{}?tag=ok&tag=-bad", img.digest))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    expect_error(r.get("/v2/tp/manifests/ok").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(put_by_digest_with_tag_parameters);

async fn put_by_digest_must_match_the_content(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = Image::new(12, 1);
    for (_, b) in img.blobs() {
        r.push_blob("dm", b).await;
    }
    let mut altered = img.manifest.clone();
    altered.extend_from_slice(b"  ");
    expect_error(r.put_manifest("dm", &img.digest, OCI_MANIFEST, &altered).await, 400, "DIGEST_INVALID").await;
    expect_error(r.get(&format!("/v2/dm/manifests/{}", img.digest)).await, 404, "MANIFEST_UNKNOWN").await;
    expect_error(r.get(&format!("/v2/dm/manifests/{}", sha256(&altered))).await, 404, "MANIFEST_UNKNOWN").await;
    // A malformed digest reference.
    expect_error(r.put_manifest("dm", "sha256:baddigeststring", OCI_MANIFEST, &img.manifest).await, 400, "DIGEST_INVALID").await;
    let status = r.get("/v2/dm/manifests/sha256:baddigeststring").await.status();
    assert!(status == 400 || status == 404, "{status}");
}
both_backends!(put_by_digest_must_match_the_content);

async fn sha512_manifests_and_blobs(backend: Backend) {
    let r = Registry::start(backend).await;
    let config = br#"{"os":"linux","algo":"sha512"}"#.to_vec();
    let layer = bytes(13, 700);
    r.push_blob_as("s5", &config, &sha512(&config)).await;
    r.push_blob_as("s5", &layer, &sha512(&layer)).await;
    let m = pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha512(&config), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha512(&layer), "size": layer.len()}],
    }));
    let d = sha512(&m);
    expect_put(&r, "s5", &d, OCI_MANIFEST, &m).await;
    expect_manifest(&r, "s5", &d, OCI_MANIFEST, &m, &d).await;
    // Not stored under its sha256 digest.
    expect_error(r.get(&format!("/v2/s5/manifests/{}", sha256(&m))).await, 404, "MANIFEST_UNKNOWN").await;

    // An index of sha512 children, pushed by sha512 with a tag parameter.
    let index = oci_index(vec![json!({"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()})], json!({}));
    let index_d = sha512(&index);
    let resp = r
        .req(Method::PUT, &format!("/v2/s5/manifests/{index_d}?tag=multi"))
        .header("content-type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), index_d);
    assert_eq!(header(&resp, "location"), format!("/v2/s5/manifests/{index_d}"));
    expect_manifest(&r, "s5", "multi", OCI_INDEX, &index, &index_d).await;

    // Deleting by sha512 digest.
    assert_eq!(r.delete(&format!("/v2/s5/manifests/{index_d}")).await.status(), 202);
    expect_error(r.get("/v2/s5/manifests/multi").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(sha512_manifests_and_blobs);

async fn a_tag_moves_to_the_latest_push(backend: Backend) {
    let r = Registry::start(backend).await;
    let one = r.push_image("mv", Some("latest"), 14).await;
    let two = r.push_image("mv", Some("latest"), 15).await;
    expect_manifest(&r, "mv", "latest", OCI_MANIFEST, &two.manifest, &two.digest).await;
    expect_manifest(&r, "mv", &one.digest, OCI_MANIFEST, &one.manifest, &one.digest).await;
}
both_backends!(a_tag_moves_to_the_latest_push);

async fn tag_delete(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = r.push_image("td", Some("v1"), 16).await;
    r.push_manifest("td", "v2", OCI_MANIFEST, &img.manifest).await;
    let resp = r.delete("/v2/td/manifests/v1").await;
    assert_eq!(resp.status(), 202);
    expect_error(r.get("/v2/td/manifests/v1").await, 404, "MANIFEST_UNKNOWN").await;
    assert_eq!(r.head("/v2/td/manifests/v1").await.status(), 404);
    // The manifest and its other tag stay.
    expect_manifest(&r, "td", "v2", OCI_MANIFEST, &img.manifest, &img.digest).await;
    expect_manifest(&r, "td", &img.digest, OCI_MANIFEST, &img.manifest, &img.digest).await;
    assert_eq!(json_body(r.get("/v2/td/tags/list").await).await["tags"], json!(["v2"]));
    expect_error(r.delete("/v2/td/manifests/v1").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(tag_delete);

async fn manifest_delete_by_digest_removes_its_tags(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = r.push_image("md", Some("a"), 17).await;
    r.push_manifest("md", "b", OCI_MANIFEST, &img.manifest).await;
    let other = r.push_image("md", Some("keep"), 18).await;

    let resp = r.delete(&format!("/v2/md/manifests/{}", img.digest)).await;
    assert_eq!(resp.status(), 202);
    for reference in ["a", "b", img.digest.as_str()] {
        expect_error(r.get(&format!("/v2/md/manifests/{reference}")).await, 404, "MANIFEST_UNKNOWN").await;
        assert_eq!(r.head(&format!("/v2/md/manifests/{reference}")).await.status(), 404);
    }
    assert_eq!(json_body(r.get("/v2/md/tags/list").await).await["tags"], json!(["keep"]));
    expect_manifest(&r, "md", "keep", OCI_MANIFEST, &other.manifest, &other.digest).await;
    expect_error(r.delete(&format!("/v2/md/manifests/{}", img.digest)).await, 404, "MANIFEST_UNKNOWN").await;

    // Deleted state is on disk, not only in memory.
    let r = r.restart().await;
    expect_error(r.get("/v2/md/manifests/a").await, 404, "MANIFEST_UNKNOWN").await;
    expect_manifest(&r, "md", "keep", OCI_MANIFEST, &other.manifest, &other.digest).await;
}
both_backends!(manifest_delete_by_digest_removes_its_tags);

async fn unknown_manifests(backend: Backend) {
    let r = Registry::start(backend).await;
    r.push_image("known", Some("v1"), 19).await;
    expect_error(r.get("/v2/known/manifests/missing").await, 404, "MANIFEST_UNKNOWN").await;
    expect_error(r.get(&format!("/v2/known/manifests/{}", sha256(b"nope"))).await, 404, "MANIFEST_UNKNOWN").await;
    assert_eq!(r.head("/v2/known/manifests/missing").await.status(), 404);
    expect_error(r.get("/v2/unknown/repo/manifests/v1").await, 404, "MANIFEST_UNKNOWN").await;
    expect_error(r.delete("/v2/known/manifests/missing").await, 404, "MANIFEST_UNKNOWN").await;
}
both_backends!(unknown_manifests);

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
