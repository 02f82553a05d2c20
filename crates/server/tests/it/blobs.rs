//! `GET /v2/`, blob GET/HEAD (whole and ranged) and DELETE.

use crate::*;

async fn base_endpoint_announces_the_v2_api(backend: Backend) {
    let r = Registry::start(backend).await;
    for path in ["/v2/", "/v2"] {
        let resp = r.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
        assert_eq!(header(&resp, "content-type"), "application/json");
        assert_eq!(json_body(resp).await, json!({}));
    }
    let resp = r.head("/v2/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
}
both_backends!(base_endpoint_announces_the_v2_api);

async fn blob_get_and_head(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(1, 4096);
    let d = r.push_blob("lib/app", &data).await;

    let resp = r.get(&format!("/v2/lib/app/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), d);
    assert_eq!(header(&resp, "content-length"), "4096");
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(body(resp).await, data);

    let resp = r.head(&format!("/v2/lib/app/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), d);
    assert_eq!(header(&resp, "content-length"), "4096");
    assert!(body(resp).await.is_empty(), "HEAD has no body");
}
both_backends!(blob_get_and_head);

async fn unknown_blob_is_404_blob_unknown(backend: Backend) {
    let r = Registry::start(backend).await;
    r.push_blob("a", b"something").await;
    let missing = sha256(b"never pushed");
    expect_error(r.get(&format!("/v2/a/blobs/{missing}")).await, 404, "BLOB_UNKNOWN").await;
    let resp = r.head(&format!("/v2/a/blobs/{missing}")).await;
    assert_eq!(resp.status(), 404);
    // A repository that does not exist at all answers the same.
    expect_error(r.get(&format!("/v2/nothing/here/blobs/{missing}")).await, 404, "BLOB_UNKNOWN").await;
}
both_backends!(unknown_blob_is_404_blob_unknown);

async fn blobs_are_served_only_through_repositories_that_link_them(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(2, 100);
    let d = r.push_blob("tenant-a/app", &data).await;
    expect_error(r.get(&format!("/v2/tenant-b/app/blobs/{d}")).await, 404, "BLOB_UNKNOWN").await;
    assert_eq!(r.head(&format!("/v2/tenant-b/app/blobs/{d}")).await.status(), 404);
    assert_eq!(r.get(&format!("/v2/tenant-a/app/blobs/{d}")).await.status(), 200);
}
both_backends!(blobs_are_served_only_through_repositories_that_link_them);

async fn range_requests(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(3, 2048);
    let d = r.push_blob("r", &data).await;
    let path = format!("/v2/r/blobs/{d}");
    let ranged = |range: &'static str| r.req(Method::GET, &path).header("range", range).send();

    // (Range, first byte, last byte)
    for (range, a, b) in [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 2047),
        ("bytes=-500", 1548, 2047),
        ("bytes=2000-5000", 2000, 2047),
        ("bytes=0-0", 0, 0),
        ("bytes=-5000", 0, 2047),
    ] {
        let resp = ranged(range).await.unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(header(&resp, "content-range"), format!("bytes {a}-{b}/2048"), "{range}");
        assert_eq!(header(&resp, "content-length"), (b - a + 1).to_string(), "{range}");
        assert_eq!(header(&resp, "docker-content-digest"), d, "{range}");
        assert_eq!(body(resp).await, &data[a..=b], "{range}");
    }

    // Unsatisfiable or inverted ranges: 416 with the size, as RFC 9110 asks.
    for range in ["bytes=2048-", "bytes=5000-10000", "bytes=500-0", "bytes=-0", "bytes=x-1"] {
        let resp = ranged(range).await.unwrap();
        assert_eq!(header(&resp, "content-range"), "bytes */2048", "{range}");
        expect_error(resp, 416, "RANGE_INVALID").await;
    }

    // Several ranges or another unit: the Range header is ignored and the whole blob sent.
    for range in ["bytes=0-1,4-5", "items=0-10"] {
        let resp = ranged(range).await.unwrap();
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(body(resp).await, data, "{range}");
    }

    // HEAD with a range describes the part without sending it.
    let resp = r.req(Method::HEAD, &path).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(header(&resp, "content-range"), "bytes 10-19/2048");
    assert_eq!(header(&resp, "content-length"), "10");
    assert!(body(resp).await.is_empty());
}
both_backends!(range_requests);

async fn empty_blob(backend: Backend) {
    let r = Registry::start(backend).await;
    let d = r.push_blob("e", b"").await;
    assert_eq!(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let resp = r.get(&format!("/v2/e/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "0");
    assert!(body(resp).await.is_empty());
    let resp = r.head(&format!("/v2/e/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "0");
    let resp = r.req(Method::GET, &format!("/v2/e/blobs/{d}")).header("range", "bytes=0-").send().await.unwrap();
    expect_error(resp, 416, "RANGE_INVALID").await;
}
both_backends!(empty_blob);

async fn sha512_blobs(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(4, 3000);
    let d = sha512(&data);
    r.push_blob_as("s", &data, &d).await;
    let resp = r.get(&format!("/v2/s/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), d);
    assert_eq!(body(resp).await, data);
    let resp = r.head(&format!("/v2/s/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "3000");
    let resp = r.req(Method::GET, &format!("/v2/s/blobs/{d}")).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(body(resp).await, &data[100..200]);
    // The same bytes are not reachable under their sha256 digest: nothing was stored as that.
    expect_error(r.get(&format!("/v2/s/blobs/{}", sha256(&data))).await, 404, "BLOB_UNKNOWN").await;
}
both_backends!(sha512_blobs);

async fn delete_blob(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(5, 500);
    let d = r.push_blob("one", &data).await;
    r.push_blob("two", &data).await;

    let resp = r.delete(&format!("/v2/one/blobs/{d}")).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "content-length"), "0");
    expect_error(r.get(&format!("/v2/one/blobs/{d}")).await, 404, "BLOB_UNKNOWN").await;
    assert_eq!(r.head(&format!("/v2/one/blobs/{d}")).await.status(), 404);
    expect_error(r.delete(&format!("/v2/one/blobs/{d}")).await, 404, "BLOB_UNKNOWN").await;

    // Another repository linking the same bytes keeps serving them.
    let resp = r.get(&format!("/v2/two/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await, data);

    // Pushing again after a delete brings it back.
    r.push_blob("one", &data).await;
    assert_eq!(r.get(&format!("/v2/one/blobs/{d}")).await.status(), 200);
}
both_backends!(delete_blob);
