//! What a careless or hostile client cannot do to the built binary: make it acknowledge a
//! push before the bytes are on disk, hold connections with half a request, exceed the
//! connection limit, fill the store with upload sessions or garbage-collection protections,
//! make a staging reach a cloud metadata address or a malformed host, or slip malformed
//! ranges, truncated manifests, oversized bodies or forged `Host` headers past the API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::mgmt::types::GcReport;

use crate::client::{parse_response, request_head, ErrorBodyExt, Http, Resp};
use crate::fixtures::sha256;
use crate::harness::{self, files_under, Server, Strace};

/// A `wharfage serve` over a temporary root with extra flags.
fn serve(args: &[&str]) -> (Server, Http, PathBuf, tempfile::TempDir) {
    let dir = harness::tempdir();
    let root = dir.path().join("root");
    let mut cmd = harness::wharfage(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--root"]).arg(&root).args(args);
    let server = Server::spawn(cmd);
    let http = Http::new(server.addr);
    (server, http, root, dir)
}

#[track_caller]
fn expect_error(r: Resp, status: u16, code: &str) -> String {
    let text = r.text();
    assert_eq!(r.status, status, "status; body: {text}");
    let first = r.error();
    assert_eq!(first.code, code, "{text}");
    first.message
}

/// Pushes a blob in one POST; its digest.
fn push_blob(http: &Http, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    http.send("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], bytes.to_vec()).expect(201, "monolithic push");
    d
}

fn manifest_naming(config: &str, config_size: usize, layers: &[(String, usize)]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, size)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": layers,
    }))
    .unwrap()
}

fn put_manifest(http: &Http, repo: &str, reference: &str, body: Vec<u8>) -> Resp {
    http.send("PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("content-type", "application/vnd.oci.image.manifest.v1+json")], body)
}

/// fsync/fdatasync calls that returned so far.
fn syncs(strace: &Strace) -> usize {
    strace.calls().lines().filter(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains("= 0")).count()
}

/// A 201 means the bytes and the pointers that reach them are on disk: the blob, its link,
/// the manifest, its link and the tag are each fsynced (file and directory) before the answer.
#[test]
fn a_push_is_fsynced_before_it_is_acknowledged() {
    let (server, http, _root, dir) = serve(&[]);
    let strace = Strace::attach(server.pid(), "trace=fsync,fdatasync", &dir.path().join("strace.out"));
    assert_eq!(syncs(&strace), 0, "nothing written yet");

    let layer = vec![7u8; 300_000];
    let layer_digest = push_blob(&http, "durable/app", &layer);
    let after_blob = syncs(&strace);
    // The blob file and its directory, the link file and its directory (and new directories).
    assert!(after_blob >= 4, "a blob push was acknowledged after {after_blob} fsync calls");

    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = push_blob(&http, "durable/app", &config);
    let manifest = manifest_naming(&config_digest, config.len(), &[(layer_digest, layer.len())]);
    let before = syncs(&strace);
    put_manifest(&http, "durable/app", "v1", manifest).expect(201, "manifest push");
    let manifest_syncs = syncs(&strace) - before;
    // Manifest bytes, manifest link and tag: a file and a directory each.
    assert!(manifest_syncs >= 6, "a manifest push was acknowledged after {manifest_syncs} fsync calls");
    eprintln!("fsync calls: {after_blob} for a blob push, {manifest_syncs} for a tagged manifest push");
}

/// Reads until the server closes the connection; how long that took (`None`: still open at
/// `limit`).
fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match conn.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Half a request line is closed within the header timeout, an idle keep-alive connection
/// too, while complete requests keep being served.
#[test]
fn half_requests_and_idle_connections_are_closed_after_the_header_timeout() {
    let (_server, http, _root, _dir) = serve(&["--header-timeout", "2s"]);
    let addr = http_addr(&http);
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /v2/ HT").unwrap();
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(request_head("GET", "/v2/", &addr.to_string(), &[], None).as_bytes()).unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    // Complete requests are served meanwhile.
    for _ in 0..5 {
        http.get("/v2/").expect(200, "a complete request while others stall");
        std::thread::sleep(Duration::from_millis(200));
    }
    let half_closed = closed_within(&mut half, Duration::from_secs(8)).expect("half a request line was never closed");
    let idle_closed = closed_within(&mut idle, Duration::from_secs(8)).expect("an idle keep-alive connection was never closed");
    assert!(half_closed < Duration::from_secs(5), "closed only after {half_closed:?}");
    assert!(idle_closed < Duration::from_secs(5), "closed only after {idle_closed:?}");
    http.get("/v2/").expect(200, "still serving");
}

fn http_addr(http: &Http) -> std::net::SocketAddr {
    http.addr()
}

/// Beyond `--max-connections`, connections wait in the listen queue, instead of being
/// refused or starving the process of descriptors, while every slot is busy with a request
/// (here: uploads whose bodies have not all arrived), and are served as soon as one of them
/// is done: its connection, idle now though its client keeps it open, makes room.
#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let (_server, http, _root, _dir) = serve(&["--max-connections", "2", "--header-timeout", "30s"]);
    let addr = http_addr(&http);
    let busy = || {
        let mut c = TcpStream::connect(addr).unwrap();
        let path = format!("/v2/slow/app/blobs/uploads/?digest=sha256:{}", "0".repeat(64));
        // The interim 100 answers once the handler reads the body: the request is in flight.
        let head = request_head("POST", &path, &addr.to_string(), &[("expect", "100-continue")], Some(100));
        c.write_all(head.as_bytes()).unwrap();
        let mut interim = [0u8; 25];
        c.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(b"ten bytes.").unwrap();
        c
    };
    let mut held = [busy(), busy()];
    // Both slots hold a request in flight: nothing idle to close, so a third one waits.
    let mut third = TcpStream::connect(addr).expect("the listen queue takes the connection");
    third.write_all(request_head("GET", "/v2/", &addr.to_string(), &[("connection", "close")], None).as_bytes()).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut buf = [0u8; 12];
    assert!(third.read_exact(&mut buf).is_err(), "a third connection was served while two requests held the only slots");
    // One upload's body ends (its digest is wrong: 400); its client keeps the connection.
    held[0].write_all(&[b'.'; 90]).unwrap();
    held[0].set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    held[0].read_exact(&mut buf).expect("the finished upload is answered");
    assert_eq!(&buf, b"HTTP/1.1 400");
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    third.read_exact(&mut buf).expect("served once a connection had no request in flight");
    assert_eq!(&buf, b"HTTP/1.1 200");
    assert_eq!(held.len(), 2, "both held connections stay open on this side");
}

/// Idle connections cannot keep a request waiting: with far more idle connections than
/// `--max-connections` (some never sent a byte, some are kept alive after a request), a new
/// request is answered while every one of them is still open on the client's side, because
/// the server closes the least recently used idle connections to make room.
#[test]
fn idle_connections_cannot_keep_a_request_waiting() {
    let (_server, http, _root, _dir) = serve(&["--max-connections", "500", "--header-timeout", "60s"]);
    let addr = http_addr(&http);
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(request_head("GET", "/v2/", &addr.to_string(), &[], None).as_bytes()).unwrap();
            let mut status = [0u8; 12];
            c.read_exact(&mut status).unwrap();
            c
        })
        .collect();
    idle.extend((0..2000).map(|_| TcpStream::connect(addr).expect("the listen queue takes the connection")));
    let patient = http.timeout(Duration::from_secs(10));
    let answer = patient.try_send("GET", "/v2/", &[], &[]).expect("a request behind 2,100 idle connections is answered");
    assert_eq!(answer.status, 200);
    assert_eq!(idle.len(), 2100, "the idle connections stay open on this side until the end");
}

/// Upload sessions are capped per repository and per server (429 `TOOMANYREQUESTS`), expire
/// after `--upload-expiry` (then unknown, and no longer counted), and garbage collection
/// removes the expired ones.
#[test]
fn upload_sessions_are_capped_expire_and_are_collected() {
    let (_server, http, root, _dir) = serve(&["--max-uploads", "5", "--max-uploads-per-repository", "3", "--upload-expiry", "2s"]);
    let open = |repo: &str| http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new());
    let mut sessions: Vec<String> = (0..3).map(|_| open("caps/a").expect(202, "open").header("location").unwrap().to_string()).collect();
    let message = expect_error(open("caps/a"), 429, "TOOMANYREQUESTS");
    assert!(message.contains("caps/a") && message.contains('3'), "{message}");
    open("caps/b").expect(202, "another repository");
    open("caps/b").expect(202, "another repository");
    let message = expect_error(open("caps/c"), 429, "TOOMANYREQUESTS");
    assert!(message.contains('5'), "the server-wide cap: {message}");
    // Finishing or cancelling frees a place.
    http.send("DELETE", &sessions.pop().unwrap(), &[], Vec::new()).expect(204, "cancel");
    sessions.push(open("caps/a").expect(202, "a freed place").header("location").unwrap().to_string());

    // Idle past the expiry: gone, not counted, and collected.
    std::thread::sleep(Duration::from_millis(2500));
    expect_error(http.send("PATCH", &sessions[0], &[], b"late".to_vec()), 404, "BLOB_UPLOAD_UNKNOWN");
    for _ in 0..3 {
        open("caps/a").expect(202, "expired sessions no longer count");
    }
    std::thread::sleep(Duration::from_millis(2500));
    let report: GcReport =
        http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], b"{}".to_vec()).expect(200, "gc").json();
    assert_eq!(report.uploads.count, 8, "every expired session collected: {report:?}");
    assert_eq!(files_under(&root.join("uploads")), Vec::<PathBuf>::new(), "nothing of them is left");
}

/// A manifest naming blobs the repository lacks is refused before it writes anything, so
/// it cannot fill `gc/protect/` with one file per name; a manifest naming more than the
/// limit is refused outright; a mount of an unknown digest protects nothing either.
#[test]
fn refused_manifests_and_mounts_leave_no_protections_behind() {
    let (_server, http, root, _dir) = serve(&[]);
    let protections = || files_under(&root.join("gc/protect")).len();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = push_blob(&http, "marks/app", &config);
    let before = protections();
    let unknown: Vec<(String, usize)> = (0..2000u32).map(|i| (sha256(&i.to_le_bytes()), 4)).collect();
    let message = expect_error(
        put_manifest(&http, "marks/app", "v1", manifest_naming(&config_digest, config.len(), &unknown)),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert!(message.contains(&unknown[0].0), "{message}");
    assert_eq!(protections(), before, "a refused manifest wrote protections");

    let too_many: Vec<(String, usize)> = (0..5000u32).map(|i| (sha256(&i.to_be_bytes()), 4)).collect();
    let message = expect_error(
        put_manifest(&http, "marks/app", "v2", manifest_naming(&config_digest, config.len(), &too_many)),
        400,
        "MANIFEST_INVALID",
    );
    assert!(message.contains("5001") && message.contains("4096"), "{message}");
    assert_eq!(protections(), before);

    let unknown_digest = sha256(b"never pushed");
    http.send("POST", &format!("/v2/marks/other/blobs/uploads/?mount={unknown_digest}&from=marks/app"), &[], Vec::new())
        .expect(202, "a mount of an unknown blob opens a session");
    assert_eq!(protections(), before, "a failed mount wrote a protection");
}

/// Staging sources must be `host[:port]/name` (an IPv4 host in dotted decimal: other spellings
/// a URL parser would read as another address are 400), and link-local or cloud metadata
/// addresses are refused (403 `SOURCE_REFUSED`) before any connection; so are hosts outside
/// `--upstream-allow` or inside `--upstream-deny`.
#[test]
fn stagings_cannot_reach_metadata_addresses_or_malformed_hosts() {
    let (_server, http, _root, _dir) = serve(&["--upstream-deny", "*.internal"]);
    let stage = |source: &str| {
        let body = serde_json::to_vec(&json!({"source": source, "app": "probe"})).unwrap();
        http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], body)
    };
    for source in ["169.254.169.254/latest/meta-data:x", "[fe80::1]:5000/a:b", "[fd00:ec2::254]/a:b", "db.internal:5000/a:b"] {
        let r = stage(source);
        let text = r.text();
        assert_eq!(r.status, 403, "{source}: {text}");
        assert_eq!(r.error().code, "SOURCE_REFUSED", "{source}: {text}");
    }
    // Each of these is 169.254.169.254 to a URL parser: refused as malformed, naming the host.
    for host in ["0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "169.0376.0251.0376", "169.254.43518"] {
        let r = stage(&format!("{host}/x:1"));
        let text = r.text();
        assert_eq!(r.status, 400, "{host}: {text}");
        let message = r.error().message;
        assert!(message.contains(host) && message.contains("IPv4"), "{host}: {message}");
    }
    for source in ["127.0.0.1:1?x=/y:z", "user@registry.example.com/a:b", "registry.example.com:99999/a:b"] {
        let r = stage(source);
        assert_eq!(r.status, 400, "{source}: {}", r.text());
        assert!(r.text().contains("host[:port]") || r.text().contains("digest"), "{source}: {}", r.text());
    }

    let (_server, http, _root, _dir) = serve(&["--upstream-allow", "registry.example.com"]);
    let body = serde_json::to_vec(&json!({"source": "127.0.0.1:5000/a:b", "app": "probe"})).unwrap();
    let r = http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], body);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("--upstream-allow"), "{}", r.text());
}

/// The protocol's corner cases get the right error: a `Content-Range` whose length does not
/// fit in 64 bits, a manifest body cut short, an oversized staging request (a JSON error,
/// like every other), and a `Host` that is not `host[:port]` is never echoed into an image
/// reference.
#[test]
fn malformed_ranges_truncated_manifests_and_oversized_bodies_get_clear_errors() {
    let (_server, http, _root, _dir) = serve(&[]);
    let loc = http.send("POST", "/v2/nits/app/blobs/uploads/", &[], Vec::new()).expect(202, "open").header("location").unwrap().to_string();
    let r = http.send("PATCH", &loc, &[("content-range", "0-18446744073709551615")], Vec::new());
    let message = expect_error(r, 416, "RANGE_INVALID");
    assert!(message.contains("18446744073709551615"), "{message}");

    // Content-Length 100, 10 bytes, then the client stops sending.
    let addr = http_addr(&http);
    let mut conn = TcpStream::connect(addr).unwrap();
    let headers = [("content-type", "application/vnd.oci.image.manifest.v1+json"), ("connection", "close")];
    conn.write_all(request_head("PUT", "/v2/nits/app/manifests/v1", &addr.to_string(), &headers, Some(100)).as_bytes()).unwrap();
    conn.write_all(b"{\"schemaVe").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = conn.read_to_end(&mut raw);
    let r = parse_response(&raw, false).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&raw)));
    expect_error(r, 400, "MANIFEST_INVALID");

    let r = http.send("POST", "/api/v1/stagings", &[("content-type", "application/json")], vec![b' '; 200_000]);
    assert_eq!(r.status, 413, "{}", r.text());
    let message = r.error().message;
    assert!(message.contains("at most"), "{message}");
}
