//! Blob uploads: monolithic POST, POST then PUT, streamed and chunked PATCH, status, cancel,
//! cross-repository mounts, digest mismatches, and sessions surviving a restart.

use crate::*;

/// Opens an upload session and returns its `Location`.
async fn start_session(r: &Registry, repo: &str) -> String {
    let resp = r.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).header("content-length", "0").send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let loc = header(&resp, "location");
    assert!(loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")), "location {loc:?}");
    let uuid = header(&resp, "docker-upload-uuid");
    assert!(!uuid.is_empty() && loc.ends_with(&uuid), "Docker-Upload-UUID {uuid:?} names the session {loc:?}");
    assert_eq!(header(&resp, "range"), "0-0");
    assert_eq!(header(&resp, "content-length"), "0");
    loc
}

/// Sends one chunk with a `Content-Range`.
async fn patch_chunk(r: &Registry, loc: &str, data: &[u8], start: usize) -> Response {
    r.req(Method::PATCH, loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{}-{}", start, start + data.len() - 1))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// Appends a query parameter to a location that may already carry a query.
fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

/// Asserts a finished upload: 201, `Location` of a pullable blob, `Docker-Content-Digest`.
async fn expect_created(r: &Registry, resp: Response, repo: &str, d: &str, data: &[u8]) {
    let status = resp.status();
    let loc = header(&resp, "location");
    let dch = header(&resp, "docker-content-digest");
    assert_eq!(status, 201, "{}", text(resp).await);
    assert_eq!(loc, format!("/v2/{repo}/blobs/{d}"));
    assert_eq!(dch, d);
    let got = r.get(&loc).await;
    assert_eq!(got.status(), 200);
    assert_eq!(body(got).await, data, "blob bytes at {loc}");
}

async fn monolithic_post_with_digest(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(10, 5000);
    let d = sha256(&data);
    let resp = r
        .req(Method::POST, &format!("/v2/mono/blobs/uploads/?digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_created(&r, resp, "mono", &d, &data).await;
}
both_backends!(monolithic_post_with_digest);

async fn monolithic_post_with_wrong_digest_stores_nothing(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(11, 5000);
    let claimed = sha256(b"other content");
    let resp = r.req(Method::POST, &format!("/v2/m/blobs/uploads/?digest={claimed}")).body(data.clone()).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    expect_error(r.get(&format!("/v2/m/blobs/{claimed}")).await, 404, "BLOB_UNKNOWN").await;
    expect_error(r.get(&format!("/v2/m/blobs/{}", sha256(&data))).await, 404, "BLOB_UNKNOWN").await;
    let blobs: Vec<_> = r.stored_files().into_iter().filter(|f| f.starts_with("blobs")).collect();
    assert!(blobs.is_empty(), "nothing may be stored under blobs/: {blobs:?}");
}
both_backends!(monolithic_post_with_wrong_digest_stores_nothing);

async fn post_then_put_with_body(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(12, 7000);
    let d = sha256(&data);
    let loc = start_session(&r, "pp").await;
    let resp = r
        .req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_created(&r, resp, "pp", &d, &data).await;
    // The session is over.
    expect_error(r.get(&loc).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
}
both_backends!(post_then_put_with_body);

async fn streamed_patches_then_put_without_body(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(13, 300_000);
    let d = sha256(&data);
    let loc = start_session(&r, "stream/me").await;
    // Two streamed PATCHes (chunked transfer encoding, no Content-Length, no Content-Range).
    let mut held = 0;
    for part in [&data[..100_000], &data[100_000..]] {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = part.chunks(7_777).map(|c| Ok(c.to_vec())).collect();
        let resp = r
            .req(Method::PATCH, &loc)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        held += part.len();
        assert_eq!(resp.status(), 202);
        assert_eq!(header(&resp, "range"), format!("0-{}", held - 1));
        assert_eq!(header(&resp, "location"), loc);
    }
    let resp = r.get(&loc).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), format!("0-{}", data.len() - 1));
    assert_eq!(header(&resp, "location"), loc);
    assert_eq!(header(&resp, "content-length"), "", "RFC 9110: no Content-Length on a 204");
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))).header("content-length", "0").send().await.unwrap();
    expect_created(&r, resp, "stream/me", &d, &data).await;
}
both_backends!(streamed_patches_then_put_without_body);

async fn chunked_upload_in_order_out_of_order_and_last_chunk_in_put(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(14, 3000);
    let d = sha256(&data);
    let loc = start_session(&r, "chunky").await;

    // A first chunk that does not start at 0 is out of order.
    expect_error(patch_chunk(&r, &loc, &data[1000..2000], 1000).await, 416, "RANGE_INVALID").await;

    let resp = patch_chunk(&r, &loc, &data[..1000], 0).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-999");
    assert_eq!(header(&resp, "location"), loc);

    // Retrying the same chunk, or skipping ahead, is out of order: 416, session intact.
    expect_error(patch_chunk(&r, &loc, &data[..1000], 0).await, 416, "RANGE_INVALID").await;
    expect_error(patch_chunk(&r, &loc, &data[2000..], 2000).await, 416, "RANGE_INVALID").await;
    let resp = r.get(&loc).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-999");
    assert_eq!(header(&resp, "location"), loc);

    let resp = patch_chunk(&r, &loc, &data[1000..2000], 1000).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-1999");

    // The final PUT carries an out-of-order last chunk: 416 and the session survives.
    let put = |start: usize| {
        r.req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", start, start + 999))
            .body(data[2000..].to_vec())
            .send()
    };
    expect_error(put(1000).await.unwrap(), 416, "RANGE_INVALID").await;
    assert_eq!(header(&r.get(&loc).await, "range"), "0-1999");
    // And in order, it finishes the blob.
    expect_created(&r, put(2000).await.unwrap(), "chunky", &d, &data).await;
}
both_backends!(chunked_upload_in_order_out_of_order_and_last_chunk_in_put);

async fn chunked_upload_finished_by_put_without_body(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(15, 2500);
    let d = sha256(&data);
    let loc = start_session(&r, "c2").await;
    for start in (0..data.len()).step_by(1024) {
        let end = (start + 1024).min(data.len());
        let resp = patch_chunk(&r, &loc, &data[start..end], start).await;
        assert_eq!(resp.status(), 202);
        assert_eq!(header(&resp, "range"), format!("0-{}", end - 1));
    }
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))).header("content-length", "0").send().await.unwrap();
    expect_created(&r, resp, "c2", &d, &data).await;
}
both_backends!(chunked_upload_finished_by_put_without_body);

async fn chunk_whose_length_disagrees_with_its_range_is_refused(backend: Backend) {
    let r = Registry::start(backend).await;
    let loc = start_session(&r, "c3").await;
    let resp = r.req(Method::PATCH, &loc).header("content-range", "0-99").body(vec![7u8; 50]).send().await.unwrap();
    expect_error(resp, 400, "SIZE_INVALID").await;
    assert_eq!(header(&r.get(&loc).await, "range"), "0-0");
    let resp = r.req(Method::PATCH, &loc).header("content-range", "99").body(vec![7u8; 1]).send().await.unwrap();
    assert!(resp.status().is_client_error(), "malformed Content-Range: {}", resp.status());
}
both_backends!(chunk_whose_length_disagrees_with_its_range_is_refused);

async fn put_without_digest_keeps_the_session(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(16, 100);
    let loc = start_session(&r, "nd").await;
    assert_eq!(patch_chunk(&r, &loc, &data, 0).await.status(), 202);
    expect_error(r.req(Method::PUT, &loc).send().await.unwrap(), 400, "DIGEST_INVALID").await;
    expect_error(r.req(Method::PUT, &with_query(&loc, "digest=sha256:nothex")).send().await.unwrap(), 400, "DIGEST_INVALID").await;
    let resp = r.get(&loc).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-99");
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={}", sha256(&data)))).send().await.unwrap();
    expect_created(&r, resp, "nd", &sha256(&data), &data).await;
}
both_backends!(put_without_digest_keeps_the_session);

async fn wrong_digest_at_put_stores_nothing(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(17, 4000);
    let claimed = sha256(&bytes(18, 4000));

    // Several chunks (the concatenating path).
    let loc = start_session(&r, "bad").await;
    assert_eq!(patch_chunk(&r, &loc, &data[..2000], 0).await.status(), 202);
    assert_eq!(patch_chunk(&r, &loc, &data[2000..], 2000).await.status(), 202);
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={claimed}"))).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;

    // One body in the PUT (the rename-in-place path).
    let loc = start_session(&r, "bad").await;
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={claimed}"))).body(data.clone()).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;

    // The same with sha512.
    let loc = start_session(&r, "bad").await;
    let resp =
        r.req(Method::PUT, &with_query(&loc, &format!("digest={}", sha512(&bytes(19, 10))))).body(data.clone()).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;

    for d in [claimed.clone(), sha256(&data), sha512(&data)] {
        expect_error(r.get(&format!("/v2/bad/blobs/{d}")).await, 404, "BLOB_UNKNOWN").await;
    }
    let blobs: Vec<_> = r.stored_files().into_iter().filter(|f| f.starts_with("blobs")).collect();
    assert!(blobs.is_empty(), "nothing may be stored under blobs/: {blobs:?}");
    // A failed finish ends the session and drops what it had received.
    expect_error(r.get(&loc).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let uploads: Vec<_> = r.stored_files().into_iter().filter(|f| f.starts_with("uploads")).collect();
    assert!(uploads.is_empty(), "failed sessions leave no data: {uploads:?}");
}
both_backends!(wrong_digest_at_put_stores_nothing);

async fn large_uploads_stream_through_multipart_writes(backend: Backend) {
    // Bigger than the store's 8 MiB part size, so the multipart write path is used.
    let r = Registry::start(backend).await;
    let data = bytes(20, 9 << 20);
    let d = sha256(&data);

    // Under the wrong digest first: the aborted multipart write leaves nothing behind.
    let wrong = sha256(b"not these bytes");
    let resp = r.req(Method::POST, &format!("/v2/big/blobs/uploads/?digest={wrong}")).body(data.clone()).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    let blobs: Vec<_> = r.stored_files().into_iter().filter(|f| f.starts_with("blobs")).collect();
    assert!(blobs.is_empty(), "nothing may be stored under blobs/: {blobs:?}");

    let resp = r.req(Method::POST, &format!("/v2/big/blobs/uploads/?digest={d}")).body(data.clone()).send().await.unwrap();
    expect_created(&r, resp, "big", &d, &data).await;

    // Other bytes claiming an already stored digest are refused and the blob stays intact.
    let other = bytes(21, 9 << 20);
    let resp = r.req(Method::POST, &format!("/v2/big/blobs/uploads/?digest={d}")).body(other).send().await.unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    assert_eq!(body(r.get(&format!("/v2/big/blobs/{d}")).await).await, data);
}
both_backends!(large_uploads_stream_through_multipart_writes);

async fn cancel_upload(backend: Backend) {
    let r = Registry::start(backend).await;
    let loc = start_session(&r, "cancel").await;
    assert_eq!(patch_chunk(&r, &loc, b"some bytes", 0).await.status(), 202);
    let resp = r.delete(&loc).await;
    assert_eq!(resp.status(), 204);
    expect_error(r.get(&loc).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    expect_error(patch_chunk(&r, &loc, b"more", 10).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={}", sha256(b"some bytes")))).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    expect_error(r.delete(&loc).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let uploads: Vec<_> = r.stored_files().into_iter().filter(|f| f.starts_with("uploads")).collect();
    assert!(uploads.is_empty(), "a cancelled session leaves no data: {uploads:?}");
}
both_backends!(cancel_upload);

async fn sessions_belong_to_their_repository(backend: Backend) {
    let r = Registry::start(backend).await;
    let loc = start_session(&r, "mine").await;
    let id = loc.rsplit('/').next().unwrap();
    expect_error(r.get(&format!("/v2/theirs/blobs/uploads/{id}")).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    expect_error(patch_chunk(&r, &format!("/v2/theirs/blobs/uploads/{id}"), b"x", 0).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_eq!(r.get(&loc).await.status(), 204);
    // Ids we could not have issued.
    for bogus in ["not-a-uuid", "00000000000000000000000000000000"] {
        expect_error(r.get(&format!("/v2/mine/blobs/uploads/{bogus}")).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
}
both_backends!(sessions_belong_to_their_repository);

async fn mount_from_a_repository_holding_the_blob(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(22, 800);
    let d = r.push_blob("src/repo", &data).await;
    let resp = r.req(Method::POST, &format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo")).send().await.unwrap();
    expect_created(&r, resp, "dst", &d, &data).await;
}
both_backends!(mount_from_a_repository_holding_the_blob);

async fn mount_from_a_repository_not_holding_the_blob_opens_a_session(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(23, 800);
    let d = r.push_blob("holder", &data).await;
    // `other` does not link the blob, so it cannot be mounted from there even though the
    // registry holds it: the client gets an upload session instead.
    let resp = r.req(Method::POST, &format!("/v2/dst/blobs/uploads/?mount={d}&from=other")).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let loc = header(&resp, "location");
    assert!(loc.starts_with("/v2/dst/blobs/uploads/"), "{loc}");
    expect_error(r.get(&format!("/v2/dst/blobs/{d}")).await, 404, "BLOB_UNKNOWN").await;
    // A blob the registry has never seen, likewise.
    let unknown = sha256(b"unknown");
    let resp = r.req(Method::POST, &format!("/v2/dst/blobs/uploads/?mount={unknown}&from=holder")).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    // The session works as any other.
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))).body(data.clone()).send().await.unwrap();
    expect_created(&r, resp, "dst", &d, &data).await;
}
both_backends!(mount_from_a_repository_not_holding_the_blob_opens_a_session);

async fn mount_without_from(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(24, 800);
    let d = r.push_blob("somewhere", &data).await;
    // Known to the registry: mounted.
    let resp = r.req(Method::POST, &format!("/v2/anon/blobs/uploads/?mount={d}")).send().await.unwrap();
    expect_created(&r, resp, "anon", &d, &data).await;
    // Unknown: an upload session.
    let unknown = sha256(b"no such blob");
    let resp = r.req(Method::POST, &format!("/v2/anon/blobs/uploads/?mount={unknown}")).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert!(header(&resp, "location").starts_with("/v2/anon/blobs/uploads/"));
    expect_error(r.get(&format!("/v2/anon/blobs/{unknown}")).await, 404, "BLOB_UNKNOWN").await;
}
both_backends!(mount_without_from);

async fn sha512_upload_flows(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(25, 2500);
    let d = sha512(&data);
    // Chunked.
    let loc = start_session(&r, "s512").await;
    assert_eq!(patch_chunk(&r, &loc, &data[..1200], 0).await.status(), 202);
    let resp = r
        .req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
        .header("content-range", format!("1200-{}", data.len() - 1))
        .body(data[1200..].to_vec())
        .send()
        .await
        .unwrap();
    expect_created(&r, resp, "s512", &d, &data).await;
    // POST then PUT in one piece, into another repository.
    let loc = start_session(&r, "s512/b").await;
    let resp = r.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))).body(data.clone()).send().await.unwrap();
    expect_created(&r, resp, "s512/b", &d, &data).await;
    // Mounted by sha512.
    let resp = r.req(Method::POST, &format!("/v2/s512/c/blobs/uploads/?mount={d}&from=s512")).send().await.unwrap();
    expect_created(&r, resp, "s512/c", &d, &data).await;
}
both_backends!(sha512_upload_flows);

async fn uploads_survive_a_restart_and_resume(backend: Backend) {
    let r = Registry::start(backend).await;
    let data = bytes(26, 3000);
    let d = sha256(&data);
    let loc = start_session(&r, "durable").await;
    assert_eq!(patch_chunk(&r, &loc, &data[..1000], 0).await.status(), 202);
    let streamed = start_session(&r, "durable").await;
    assert_eq!(r.req(Method::PATCH, &streamed).body(data[..1500].to_vec()).send().await.unwrap().status(), 202);

    let r = r.restart().await;

    let resp = r.get(&loc).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-999");
    assert_eq!(patch_chunk(&r, &loc, &data[1000..2000], 1000).await.status(), 202);
    let resp = r
        .req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
        .header("content-range", "2000-2999")
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    expect_created(&r, resp, "durable", &d, &data).await;

    assert_eq!(header(&r.get(&streamed).await, "range"), "0-1499");
    let resp = r.req(Method::PUT, &with_query(&streamed, &format!("digest={d}"))).body(data[1500..].to_vec()).send().await.unwrap();
    expect_created(&r, resp, "durable", &d, &data).await;

    // And what was stored before the restart is served after it.
    let r = r.restart().await;
    let resp = r.get(&format!("/v2/durable/blobs/{d}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await, data);
}
both_backends!(uploads_survive_a_restart_and_resume);
