//! The store going away (killed, then frozen) and coming back: requests fail fast with 503
//! and service resumes without a restart.

use super::*;

/// Sends one request and reads the status, failing the test if no answer comes in `limit`.
pub(crate) fn timed(http_addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (Resp, Duration) {
    let t0 = Instant::now();
    let r = Http::new(http_addr).send(method, path, headers, body);
    (r, t0.elapsed())
}

/// Asserts a request answered 503 `UNAVAILABLE` quickly, with a message about the storage.
#[track_caller]
pub(crate) fn assert_unavailable(r: &Resp, took: Duration, what: &str) {
    assert_eq!(r.status, 503, "{what} while the store is down: {}", r.text());
    assert_eq!(r.error_codes(), ["UNAVAILABLE"], "{what}: error code");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}: error bodies are JSON");
    assert!(r.header("retry-after").is_some(), "{what}: a 503 says when to retry");
    let message = r.error().message;
    assert!(message.contains("storage"), "{what}: the message names the storage problem: {message}");
    assert!(took < Duration::from_secs(6), "{what} took {took:?} to fail: clients need a fast answer while the store is down");
}

/// The requests a client makes, all while the store is down. `session` is an upload opened
/// before the outage.
pub(crate) fn requests_during_outage(
    server: &Server,
    repo: &str,
    tag: &str,
    digest: &str,
    layer: &str,
    session: &str,
    what: &str,
) -> Duration {
    let addr = server.addr;
    let accept = [("accept", OCI_MANIFEST)];
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let new_blob = format!("never stored during the outage ({what})").into_bytes();
    /// method, path, headers, body
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        ("GET", format!("/v2/{repo}/manifests/{tag}"), accept.to_vec(), vec![]),
        ("GET", format!("/v2/{repo}/manifests/{digest}"), accept.to_vec(), vec![]),
        ("HEAD", format!("/v2/{repo}/blobs/{layer}"), vec![], vec![]),
        ("GET", format!("/v2/{repo}/blobs/{layer}"), vec![], vec![]),
        ("GET", format!("/v2/{repo}/tags/list"), vec![], vec![]),
        ("POST", format!("/v2/{repo}/blobs/uploads/"), vec![], vec![]),
        ("POST", format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&new_blob)), vec![], new_blob.clone()),
        ("PATCH", session.to_string(), vec![("content-range", "0-9")], b"0123456789".to_vec()),
        ("PUT", format!("/v2/{repo}/manifests/during-outage"), vec![("content-type", OCI_MANIFEST)], manifest.to_vec()),
    ];
    let mut slowest = Duration::ZERO;
    for (method, path, headers, body) in cases {
        let (r, took) = timed(addr, method, &path, &headers, body);
        if method == "HEAD" {
            assert_eq!(r.status, 503, "HEAD {path} {what}");
            assert!(took < Duration::from_secs(6), "HEAD {path} {what} took {took:?}");
        } else {
            assert_unavailable(&r, took, &format!("{method} {path} {what}"));
        }
        slowest = slowest.max(took);
    }
    slowest
}

/// Polls until the registry answers every one of `paths` (store-backed reads: a listing,
/// a tag, a blob) with 200 again. A restarted SeaweedFS answers listings before it can
/// serve objects again, and answers 500 meanwhile.
pub(crate) fn wait_until_served(server: &Server, paths: &[String], limit: Duration) -> Duration {
    let t0 = Instant::now();
    let http = Http::new(server.addr);
    loop {
        let failing: Vec<String> = paths
            .iter()
            .map(|p| (p, http.send("GET", p, &[("accept", OCI_MANIFEST)], Vec::new())))
            .filter(|(_, r)| r.status != 200)
            .map(|(p, r)| format!("{p}: {} {}", r.status, r.text()))
            .collect();
        if failing.is_empty() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "the registry did not serve again within {limit:?} of the store's return: {failing:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn store_outage_fails_fast_and_service_resumes_without_restart() {
    // Its own SeaweedFS, since this test stops it.
    let s3 = SeaweedFs::start();
    let store = S3Store::on(&s3);
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let (layout, image) = image_fixture(&tmp.path().join("src"), 43);
    let repo = "e2e/outage";
    // No tag or link cache: within its one-second bound a replica may answer a pull from
    // cached pointers while the store is down; this test is about the store's health circuit.
    let server = store.start(&["--tag-cache-ttl", "0"]);
    let pid = server.pid();
    let http = Http::new(server.addr);
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", server.host()));
    // An upload session opened before the outage, one chunk in.
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
    let loc = r.header("location").unwrap().to_string();
    let first = Rng::new(44).bytes((1 << 20) + 7);
    let r = http.send("PATCH", &loc, &[("content-range", &format!("0-{}", first.len() - 1))], first.clone()).expect(202, "PATCH");
    let session = r.header("location").unwrap().to_string();
    let layer = &image.layers[2];
    let reads = [format!("/v2/{repo}/tags/list"), format!("/v2/{repo}/manifests/v1"), format!("/v2/{repo}/blobs/{layer}")];

    // 1. The store hangs (SIGSTOP: the kernel accepts connections, nothing answers).
    s3.pause(true);
    let slowest = requests_during_outage(&server, repo, "v1", &image.digest, layer, &session, "(store hung)");
    eprintln!("store hung: the slowest failure took {slowest:?}");
    // Probes: alive, not ready, and saying why.
    http.get("/healthz").expect(200, "liveness while the store hangs");
    let (r, took) = timed(server.addr, "GET", "/readyz", &[], Vec::new());
    assert_unavailable(&r, took, "readiness while the store hangs");
    assert!(r.text().contains(&store.bucket), "the readiness error names the store: {}", r.text());
    s3.pause(false);
    let back = wait_until_served(&server, &reads, Duration::from_secs(20));
    eprintln!("store resumed: served again after {back:?}");
    http.get("/readyz").expect(200, "readiness once the store is back");
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("after-pause"), &layout.blobs, &image.digest);

    // The store hangs again while a large PATCH is streaming into it: that request fails as
    // fast, and its multipart upload, which cannot be aborted while the store is away, is
    // aborted once it is back.
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
    let in_flight = r.header("location").unwrap().to_string();
    let len: u64 = 64 << 20;
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = request_head("PATCH", &in_flight, &server.host(), &[], Some(len));
    conn.write_all(head.as_bytes()).unwrap();
    let mut gen = Generated::new(51);
    gen.copy(&mut conn, 20 << 20).unwrap();
    assert!(eventually(Duration::from_secs(20), || !store.multipart_uploads().is_empty()), "no multipart upload under way");
    s3.pause(true);
    let mut writer = conn.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = gen.copy(&mut writer, len - (20 << 20));
    });
    let t0 = Instant::now();
    let status = read_head(&mut conn).status;
    let took = t0.elapsed();
    eprintln!("store hung during a PATCH: it failed after {took:?}");
    assert_eq!(status, 503, "a PATCH streaming into a hung store");
    assert!(took < Duration::from_secs(8), "a PATCH streaming into a hung store took {took:?} to fail");
    drop(conn);
    let _ = sender.join();
    s3.pause(false);
    wait_until_served(&server, &reads, Duration::from_secs(20));
    assert!(
        eventually(Duration::from_secs(30), || store.multipart_uploads().is_empty()),
        "the multipart upload of the failed PATCH is still open after the outage: {:?}",
        store.multipart_uploads()
    );
    assert!(
        server.log().iter().any(|l| l.contains("aborted a multipart upload left by an outage")),
        "the abort that failed during the outage was retried after it"
    );
    let r = http.get(&in_flight).expect(204, "the session of the failed PATCH");
    assert_eq!(r.header("range"), Some("0-0"), "the failed PATCH left nothing in its session");

    // 2. The store dies (connections refused), then comes back on the same ports and data.
    s3.kill();
    std::thread::sleep(Duration::from_millis(300));
    let slowest = requests_during_outage(&server, repo, "v1", &image.digest, layer, &session, "(store killed)");
    eprintln!("store killed: the slowest failure took {slowest:?}");
    s3.restart();
    let back = wait_until_served(&server, &reads, Duration::from_secs(60));
    eprintln!("store restarted: served again after {back:?}");
    assert_eq!(server.pid(), pid, "the same wharfage process serves after the outage");

    // Nothing was corrupted or half-written: the image pulls byte-exactly, nothing pushed
    // during the outage exists, and the session opened before it continues where it was.
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("after-restart"), &layout.blobs, &image.digest);
    for what in ["(store hung)", "(store killed)"] {
        let d = sha256(format!("never stored during the outage ({what})").as_bytes());
        assert_eq!(http.head(&format!("/v2/{repo}/blobs/{d}")).status, 404, "a blob pushed during the outage {what}");
    }
    assert_eq!(http.get_manifest(repo, "during-outage").status, 404, "a manifest pushed during the outage");
    let r = http.get(&session).expect(204, "the session opened before the outage");
    assert_eq!(r.header("range"), Some(format!("0-{}", first.len() - 1).as_str()), "the session holds exactly its first chunk");
    let rest = Rng::new(45).bytes(3);
    let mut all = first.clone();
    all.extend_from_slice(&rest);
    let digest = sha256(&all);
    let range = format!("{}-{}", first.len(), all.len() - 1);
    http.send("PUT", &with_query(&session, "digest", &digest), &[("content-range", &range)], rest).expect(201, "finish the session");
    assert!(http.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200, "GET the finished blob").body == all);

    // And pushes work again.
    let (layout2, image2) = image_fixture(&tmp.path().join("src2"), 46);
    skopeo.copy_all(&oci_ref(&layout2.dir, "v1"), &format!("docker://{}/{repo}:v2", server.host()));
    assert_pull(&skopeo, &server, repo, "v2", &tmp.path().join("v2-out"), &layout2.blobs, &image2.digest);
    assert_eq!(store.multipart_uploads(), Vec::<String>::new(), "no multipart upload left behind");
}
