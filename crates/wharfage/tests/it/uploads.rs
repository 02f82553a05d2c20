//! Blob uploads over raw HTTP against the binary (skopeo streams every blob in one PATCH, so
//! it cannot exercise these): chunked with `Content-Range`, cancelled, and interrupted by a
//! `kill -9` and a graceful restart, then resumed.

use crate::client::{with_query, ErrorBodyExt, Http, Resp};
use crate::fixtures::{sha256, Rng};
use crate::harness::{tempdir, Server};

/// POST `/v2/<repo>/blobs/uploads/`: a new session's Location.
fn start_upload(http: &Http, repo: &str) -> String {
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
    assert!(r.header("docker-upload-uuid").is_some(), "POST upload answers Docker-Upload-UUID");
    assert_eq!(r.header("range"), Some("0-0"), "Range of an empty session");
    location(&r)
}

fn location(r: &Resp) -> String {
    r.header("location").unwrap_or_else(|| panic!("no Location in a {} answer", r.status)).to_string()
}

/// PATCH `bytes` at `offset` with `Content-Range`; the session's next Location.
#[track_caller]
fn patch_chunk(http: &Http, loc: &str, offset: usize, bytes: &[u8]) -> String {
    let range = format!("{}-{}", offset, offset + bytes.len() - 1);
    let r = http
        .send("PATCH", loc, &[("content-type", "application/octet-stream"), ("content-range", &range)], bytes.to_vec())
        .expect(202, &format!("PATCH {range}"));
    assert_eq!(r.header("range"), Some(format!("0-{}", offset + bytes.len() - 1).as_str()), "Range after PATCH {range}");
    location(&r)
}

/// GET the session: 204 and the `Range` held so far.
#[track_caller]
fn status(http: &Http, loc: &str, held: usize) -> String {
    let r = http.get(loc).expect(204, "GET upload status");
    assert_eq!(r.header("range"), Some(format!("0-{}", held.saturating_sub(1)).as_str()), "Range of the session");
    location(&r)
}

/// PUT `?digest=` with a last chunk; then the blob must be served with exactly `data`.
#[track_caller]
fn finish_and_check(http: &Http, repo: &str, loc: &str, offset: usize, data: &[u8]) {
    let digest = sha256(data);
    let last = &data[offset..];
    let range = format!("{}-{}", offset, data.len() - 1);
    let r = http
        .send(
            "PUT",
            &with_query(loc, "digest", &digest),
            &[("content-type", "application/octet-stream"), ("content-range", &range)],
            last.to_vec(),
        )
        .expect(201, "PUT to finish the upload");
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.header("location"), Some(format!("/v2/{repo}/blobs/{digest}").as_str()));
    let blob = http.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200, "GET the uploaded blob");
    assert!(blob.body == data, "the uploaded blob differs ({} bytes, expected {})", blob.body.len(), data.len());
    let head = http.head(&format!("/v2/{repo}/blobs/{digest}")).expect(200, "HEAD the uploaded blob");
    assert_eq!(head.header("content-length"), Some(data.len().to_string().as_str()));
    // The session is over.
    let gone = http.get(loc);
    assert_eq!(gone.status, 404, "GET a finished upload session: {}", gone.text());
}

#[test]
fn chunked_upload() {
    let tmp = tempdir();
    let server = Server::start(&tmp.path().join("root"));
    let http = Http::new(server.addr);
    let repo = "uploads/chunked";
    let data = Rng::new(10).bytes((3 << 20) + 12_345);
    let cuts = [0, 1 << 20, (2 << 20) + 7, data.len() - 1000];

    let mut loc = start_upload(&http, repo);
    for w in cuts.windows(2) {
        loc = patch_chunk(&http, &loc, w[0], &data[w[0]..w[1]]);
        loc = status(&http, &loc, w[1]);
    }
    let held = cuts[cuts.len() - 1];
    // A chunk that does not start where the session ends is refused and changes nothing.
    let gap = format!("{}-{}", held + 10, held + 19);
    let r = http.send("PATCH", &loc, &[("content-type", "application/octet-stream"), ("content-range", &gap)], vec![7; 10]);
    assert_eq!(r.status, 416, "an out-of-order chunk: {}", r.text());
    loc = status(&http, &loc, held);

    finish_and_check(&http, repo, &loc, held, &data);
}

#[test]
fn cancelled_upload() {
    let tmp = tempdir();
    let server = Server::start(&tmp.path().join("root"));
    let http = Http::new(server.addr);
    let repo = "uploads/cancelled";
    let data = Rng::new(11).bytes(300_000);
    let digest = sha256(&data);

    let loc = start_upload(&http, repo);
    let loc = patch_chunk(&http, &loc, 0, &data[..100_000]);
    http.send("DELETE", &loc, &[], Vec::new()).expect(204, "DELETE the upload");

    let r = http.get(&loc);
    assert_eq!(r.status, 404, "GET a cancelled upload: {}", r.text());
    assert_eq!(r.error_codes(), ["BLOB_UPLOAD_UNKNOWN"]);
    let r = http.send(
        "PATCH",
        &loc,
        &[("content-type", "application/octet-stream"), ("content-range", "100000-199999")],
        data[100_000..200_000].to_vec(),
    );
    assert_eq!(r.status, 404, "PATCH a cancelled upload: {}", r.text());
    let r =
        http.send("PUT", &with_query(&loc, "digest", &digest), &[("content-type", "application/octet-stream")], data[100_000..].to_vec());
    assert_eq!(r.status, 404, "PUT to a cancelled upload: {}", r.text());
    assert_eq!(http.head(&format!("/v2/{repo}/blobs/{digest}")).status, 404, "a cancelled upload stored its blob");
    let r = http.send("DELETE", &loc, &[], Vec::new());
    assert_eq!(r.status, 404, "DELETE a cancelled upload again: {}", r.text());
}

#[test]
fn interrupted_chunked_upload_resumes_after_restart() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let repo = "uploads/resumed";
    let data = Rng::new(12).bytes((2 << 20) + 999);
    let (a, b) = (700_001, 1_500_000);

    // First chunk, then kill -9 as soon as it is acknowledged.
    let server = Server::start(&root);
    let http = Http::new(server.addr);
    let loc = start_upload(&http, repo);
    let loc = patch_chunk(&http, &loc, 0, &data[..a]);
    server.kill9();

    // The session survived: its Location (a path, so valid on any address) reports the chunk.
    let server = Server::start(&root);
    let http = Http::new(server.addr);
    let loc = status(&http, &loc, a);
    let loc = patch_chunk(&http, &loc, a, &data[a..b]);
    server.stop();

    // And a graceful restart, then the last chunk with the PUT.
    let server = Server::start(&root);
    let http = Http::new(server.addr);
    let loc = status(&http, &loc, b);
    finish_and_check(&http, repo, &loc, b, &data);
    server.stop();
}
