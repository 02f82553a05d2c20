//! Tag list and catalog with `n`/`last` pagination and `Link`, and the referrers API.

use crate::*;

async fn tag_list_in_order_with_pagination(backend: Backend) {
    let r = Registry::start(backend).await;
    let img = r.push_image("lib/tags", Some("v1"), 1).await;
    let tags = ["latest", "v2", "V3", "a-1", "b_2", "v10"];
    for t in tags {
        r.push_manifest("lib/tags", t, OCI_MANIFEST, &img.manifest).await;
    }
    let mut all: Vec<String> = tags.iter().map(|t| t.to_string()).chain(["v1".to_string()]).collect();
    all.sort();

    let resp = r.get("/v2/lib/tags/tags/list").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(header(&resp, "link"), "", "no Link without n");
    assert_eq!(json_body(resp).await, json!({"name": "lib/tags", "tags": all}));

    // Walk the pages by following Link, 3 at a time.
    let mut next = Some("/v2/lib/tags/tags/list?n=3".to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(path) = next.take() {
        let resp = r.get(&path).await;
        assert_eq!(resp.status(), 200);
        let link = header(&resp, "link");
        let page: Vec<String> = serde_json::from_value(json_body(resp).await["tags"].clone()).unwrap();
        assert!(page.len() <= 3);
        if !link.is_empty() {
            assert_eq!(page.len(), 3, "a page with a next link is full");
            assert_eq!(link, format!("</v2/lib/tags/tags/list?n=3&last={}>; rel=\"next\"", page[2]));
            next = Some(link.trim_start_matches('<').split('>').next().unwrap().to_string());
        }
        seen.extend(page);
        pages += 1;
    }
    assert_eq!(seen, all);
    assert_eq!(pages, 3);

    // n=0: an empty list and no Link.
    let resp = r.get("/v2/lib/tags/tags/list?n=0").await;
    assert_eq!(header(&resp, "link"), "");
    assert_eq!(json_body(resp).await["tags"], json!([]));
    // last alone: everything after it.
    let resp = r.get(&format!("/v2/lib/tags/tags/list?last={}", all[3])).await;
    assert_eq!(json_body(resp).await["tags"], json!(all[4..]));
    // n exactly the number left: no Link.
    let resp = r.get(&format!("/v2/lib/tags/tags/list?n=3&last={}", all[3])).await;
    assert_eq!(header(&resp, "link"), "");
    assert_eq!(json_body(resp).await["tags"], json!(all[4..]));
    // n beyond the end.
    let resp = r.get("/v2/lib/tags/tags/list?n=100").await;
    assert_eq!(header(&resp, "link"), "");
    assert_eq!(json_body(resp).await["tags"], json!(all));

    for bad in ["abc", "-1"] {
        expect_error(r.get(&format!("/v2/lib/tags/tags/list?n={bad}")).await, 400, "PAGINATION_NUMBER_INVALID").await;
    }
}
both_backends!(tag_list_in_order_with_pagination);

async fn tag_list_of_unknown_and_untagged_repositories(backend: Backend) {
    let r = Registry::start(backend).await;
    expect_error(r.get("/v2/nobody/tags/list").await, 404, "NAME_UNKNOWN").await;
    // A repository holding only blobs or untagged manifests exists, with no tags.
    r.push_image("untagged", None, 2).await;
    let resp = r.get("/v2/untagged/tags/list").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp).await, json!({"name": "untagged", "tags": []}));
}
both_backends!(tag_list_of_unknown_and_untagged_repositories);

async fn catalog_with_pagination(backend: Backend) {
    let r = Registry::start(backend).await;
    let resp = r.get("/v2/_catalog").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp).await, json!({"repositories": []}));

    r.push_image("b/nested/deep", Some("t"), 3).await;
    r.push_image("a", Some("t"), 3).await;
    r.push_blob("c-blobs-only", b"just a blob").await;
    r.push_image("b", None, 4).await;
    let all = json!(["a", "b", "b/nested/deep", "c-blobs-only"]);
    let resp = r.get("/v2/_catalog").await;
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(json_body(resp).await, json!({"repositories": all}));

    let resp = r.get("/v2/_catalog?n=2").await;
    assert_eq!(header(&resp, "link"), "</v2/_catalog?n=2&last=b>; rel=\"next\"");
    assert_eq!(json_body(resp).await["repositories"], json!(["a", "b"]));
    let resp = r.get("/v2/_catalog?n=2&last=b").await;
    assert_eq!(header(&resp, "link"), "");
    assert_eq!(json_body(resp).await["repositories"], json!(["b/nested/deep", "c-blobs-only"]));
    let resp = r.get("/v2/_catalog?n=0").await;
    assert_eq!(json_body(resp).await["repositories"], json!([]));
    expect_error(r.get("/v2/_catalog?n=x").await, 400, "PAGINATION_NUMBER_INVALID").await;
}
both_backends!(catalog_with_pagination);

/// Pushes an artifact manifest about `subject` and returns (manifest bytes, digest). The PUT
/// must answer `OCI-Subject`.
async fn push_referrer(r: &Registry, repo: &str, subject: &Value, extra: Value, seed: u64) -> (Vec<u8>, String) {
    let layer = bytes(seed, 50);
    r.push_blob(repo, &layer).await;
    r.push_blob(repo, b"{}").await;
    let mut m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(&layer), "size": layer.len()}],
        "subject": subject,
    });
    merge(&mut m, extra);
    let body = pretty(&m);
    let d = sha256(&body);
    let resp = r.put_manifest(repo, &d, OCI_MANIFEST, &body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), subject["digest"].as_str().unwrap());
    (body, d)
}

/// GETs a referrers list, checks it is an OCI index, and returns the `OCI-Filters-Applied`
/// header ("" when absent) and the descriptors.
async fn referrers(r: &Registry, path: &str) -> (String, Vec<Value>) {
    let resp = r.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    let filters = header(&resp, "oci-filters-applied");
    let v = json_body(resp).await;
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    (filters, v["manifests"].as_array().expect("manifests list").clone())
}

fn find<'a>(list: &'a [Value], digest: &str) -> &'a Value {
    list.iter().find(|d| d["digest"] == digest).unwrap_or_else(|| panic!("{digest} missing from {list:?}"))
}

async fn referrers_api(backend: Backend) {
    let r = Registry::start(backend).await;
    let repo = "ref";

    // An unknown subject, even in an unknown repository: 200 and an empty index.
    let (filters, list) = referrers(&r, &format!("/v2/{repo}/referrers/{}", sha256(b"nothing"))).await;
    assert!(list.is_empty());
    assert_eq!(filters, "");

    let subject = r.push_image(repo, Some("app"), 5).await;
    let (sig, sig_d) = push_referrer(
        &r,
        repo,
        &subject.descriptor(),
        json!({"artifactType": "application/vnd.example.sig", "annotations": {"org.example.k": "v1"}}),
        6,
    )
    .await;
    let (sbom, sbom_d) = push_referrer(&r, repo, &subject.descriptor(), json!({"artifactType": "application/vnd.example.sbom"}), 7).await;
    // An image manifest with a subject and no artifactType: reported under its config type.
    let plain = Image::new(8, 1);
    for (_, b) in plain.blobs() {
        r.push_blob(repo, b).await;
    }
    let plain_m = oci_manifest(&plain.config, &plain.layers, json!({"subject": subject.descriptor()}));
    let plain_d = sha256(&plain_m);
    let resp = r.put_manifest(repo, &plain_d, OCI_MANIFEST, &plain_m).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), subject.digest);
    // A manifest without a subject answers no OCI-Subject.
    let resp = r.put_manifest(repo, "again", OCI_MANIFEST, &subject.manifest).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), "");

    let path = format!("/v2/{repo}/referrers/{}", subject.digest);
    let (_, list) = referrers(&r, &path).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let s = find(&list, &sig_d);
    assert_eq!(s["mediaType"], OCI_MANIFEST);
    assert_eq!(s["size"], sig.len());
    assert_eq!(s["artifactType"], "application/vnd.example.sig");
    assert_eq!(s["annotations"]["org.example.k"], "v1");
    let b = find(&list, &sbom_d);
    assert_eq!(b["size"], sbom.len());
    assert_eq!(b["artifactType"], "application/vnd.example.sbom");
    let p = find(&list, &plain_d);
    assert_eq!(p["artifactType"], OCI_CONFIG);
    assert_eq!(p["size"], plain_m.len());

    // Filtered by artifactType.
    let (filters, list) = referrers(&r, &format!("{path}?artifactType=application/vnd.example.sig")).await;
    assert_eq!(filters, "artifactType");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], sig_d);
    let (filters, list) = referrers(&r, &format!("{path}?artifactType=application/vnd.none")).await;
    assert_eq!(filters, "artifactType");
    assert!(list.is_empty());

    // Other repositories do not see these referrers.
    let (_, list) = referrers(&r, &format!("/v2/elsewhere/referrers/{}", subject.digest)).await;
    assert!(list.is_empty());

    // Deleting a referrer removes it from the list, on disk too.
    assert_eq!(r.delete(&format!("/v2/{repo}/manifests/{sig_d}")).await.status(), 202);
    let r = r.restart().await;
    let (_, list) = referrers(&r, &path).await;
    let digests: Vec<&str> = list.iter().map(|d| d["digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 2);
    assert!(!digests.contains(&sig_d.as_str()), "{digests:?}");

    // A malformed subject digest is a client error, not a 404.
    expect_error(r.get(&format!("/v2/{repo}/referrers/sha256:nothex")).await, 400, "DIGEST_INVALID").await;
}
both_backends!(referrers_api);

async fn referrers_of_a_missing_subject_and_index_referrers(backend: Backend) {
    let r = Registry::start(backend).await;
    let repo = "dangling";
    // The subject need not exist (it may be pushed later).
    let ghost = json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"ghost"), "size": 123});
    let (_, d) = push_referrer(&r, repo, &ghost, json!({"artifactType": "application/vnd.example.a"}), 9).await;
    let (_, list) = referrers(&r, &format!("/v2/{repo}/referrers/{}", sha256(b"ghost"))).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], d);

    // An index with a subject: reported with its own artifactType, or none.
    let child = r.push_image(repo, None, 10).await;
    let subject = r.push_image(repo, Some("base"), 11).await;
    let with_type = oci_index(
        vec![child.descriptor()],
        json!({"subject": subject.descriptor(), "artifactType": "application/vnd.example.idx", "annotations": {"k": "v"}}),
    );
    let without = oci_index(vec![child.descriptor()], json!({"subject": subject.descriptor()}));
    for m in [&with_type, &without] {
        let resp = r.put_manifest(repo, &sha256(m), OCI_INDEX, m).await;
        assert_eq!(resp.status(), 201);
        assert_eq!(header(&resp, "oci-subject"), subject.digest);
    }
    let (_, list) = referrers(&r, &format!("/v2/{repo}/referrers/{}", subject.digest)).await;
    assert_eq!(list.len(), 2);
    let a = find(&list, &sha256(&with_type));
    assert_eq!(a["mediaType"], OCI_INDEX);
    assert_eq!(a["artifactType"], "application/vnd.example.idx");
    assert_eq!(a["annotations"]["k"], "v");
    let b = find(&list, &sha256(&without));
    assert!(b.get("artifactType").is_none(), "{b}");

    // sha512 subjects work the same.
    let s512 = json!({"mediaType": OCI_MANIFEST, "digest": sha512(b"subject"), "size": 7});
    let (_, d) = push_referrer(&r, repo, &s512, json!({"artifactType": "application/vnd.example.b"}), 12).await;
    let (_, list) = referrers(&r, &format!("/v2/{repo}/referrers/{}", sha512(b"subject"))).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], d);
}
both_backends!(referrers_of_a_missing_subject_and_index_referrers);
