//! Manifest PUT/GET/HEAD/DELETE by tag and digest, for the four manifest types, with reference
//! checks, `?tag=` parameters and sha512. What a manifest must contain to be accepted is in
//! `validation`.

mod validation;

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
