//! The binary on an S3 store: a real SeaweedFS (`weed server -s3`, started by testkit on
//! loopback ports of its own) behind `wharfage serve --storage s3`. skopeo round trips, the
//! store going away and coming back, a 2 GiB blob with bounded memory, abandoned multipart
//! uploads, and presigned redirects. The tests of several replicas are in `ha.rs`.
//!
//! One SeaweedFS serves every test of the process that does not stop it (each test has its
//! own key prefix in one bucket); the outage test starts its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use testkit::SeaweedFs;

use crate::client::{with_query, Http, Resp};
use crate::fixtures::{sha256, Rng, OCI_INDEX, OCI_MANIFEST};
use crate::harness::{tempdir, Server};
use crate::round_trip::{assert_gone, assert_inspect_image, assert_manifest_served, assert_pull, image_fixture, index_fixture};
use crate::skopeo::{oci_ref, Skopeo};

/// The bucket every test shares (each under its own prefix).
const BUCKET: &str = "wharfage-e2e";
/// The keys the servers get, through the environment as in production.
const ACCESS_KEY: &str = "e2e-access-key";
const SECRET_KEY: &str = "e2e-secret-key";

/// A key prefix in a bucket of a SeaweedFS: one registry's storage, shared by its replicas.
pub(crate) struct S3Store<'a> {
    pub s3: &'a SeaweedFs,
    pub bucket: String,
    pub prefix: String,
    /// The servers' working directory (nothing is written there on S3).
    cwd: tempfile::TempDir,
}

impl S3Store<'static> {
    /// A fresh prefix on the process's shared SeaweedFS.
    pub(crate) fn shared() -> S3Store<'static> {
        S3Store::on(SeaweedFs::shared())
    }
}

impl<'a> S3Store<'a> {
    /// A fresh prefix on `s3`.
    pub(crate) fn on(s3: &'a SeaweedFs) -> S3Store<'a> {
        s3.create_bucket(BUCKET);
        S3Store { s3, bucket: BUCKET.into(), prefix: testkit::unique("e2e"), cwd: tempdir() }
    }

    /// The `serve` flags that put a server on this store.
    pub(crate) fn args(&self) -> Vec<String> {
        ["--storage", "s3", "--s3-endpoint", &self.s3.endpoint, "--s3-bucket", &self.bucket, "--s3-prefix", &self.prefix]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A replica on this store, with `extra` flags. Access keys come from the environment,
    /// as in production (SeaweedFS without identities accepts any).
    pub(crate) fn start(&self, extra: &[&str]) -> Server {
        let mut args = self.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start_with(self.cwd.path(), &args, &[("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)])
    }

    /// Keys stored under `under` (e.g. `blobs/`), relative to the registry's prefix.
    pub(crate) fn keys(&self, under: &str) -> Vec<String> {
        let full = format!("{}/{under}", self.prefix);
        self.s3.list_keys(&self.bucket, &full).into_iter().map(|k| k[self.prefix.len() + 1..].to_string()).collect()
    }

    /// Multipart uploads started under the registry's prefix and neither completed nor aborted.
    pub(crate) fn multipart_uploads(&self) -> Vec<String> {
        self.s3.multipart_uploads(&self.bucket, &format!("{}/", self.prefix))
    }
}

/// `VmHWM` (peak resident memory) of a process, in bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn skopeo_round_trips_on_s3() {
    let store = S3Store::shared();
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let server = store.start(&[]);

    let (layout, image) = image_fixture(&tmp.path().join("image"), 41);
    let repo = "e2e/s3-image";
    let image_ref = format!("{}/{repo}:v1", server.host());
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{image_ref}"));
    assert_manifest_served(&server, repo, "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    assert_inspect_image(&skopeo, &image_ref, &image);
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("image-out"), &layout.blobs, &image.digest);

    let (layout2, index) = index_fixture(&tmp.path().join("index"), 42);
    let repo2 = "e2e/s3-multi";
    skopeo.copy_all(&oci_ref(&layout2.dir, "v1"), &format!("docker://{}/{repo2}:v1", server.host()));
    assert_manifest_served(&server, repo2, "v1", &index.manifest, &index.digest, OCI_INDEX);
    for img in &index.images {
        assert_manifest_served(&server, repo2, &img.digest, &img.manifest, &img.digest, OCI_MANIFEST);
    }
    assert_pull(&skopeo, &server, repo2, "v1", &tmp.path().join("index-out"), &layout2.blobs, &index.digest);

    // The bytes live in the bucket, content-addressed, and no upload session is left over.
    let blobs = store.keys("blobs/");
    for d in layout.blobs.keys().chain(layout2.blobs.keys()) {
        let hex = &d["sha256:".len()..];
        assert!(blobs.contains(&format!("blobs/sha256/{}/{hex}", &hex[..2])), "blob {d} is not in the bucket: {blobs:?}");
    }
    assert_eq!(store.keys("uploads/"), Vec::<String>::new(), "finished uploads leave nothing behind");

    // A restarted server (a new process, nothing in memory) serves the same images.
    drop(server);
    let server = store.start(&[]);
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("image-out-2"), &layout.blobs, &image.digest);
    skopeo.delete(&format!("{}/{repo}:v1", server.host()));
    assert_gone(&skopeo, &server, repo, "v1", &image.digest);
    assert_manifest_served(&server, repo2, "v1", &index.manifest, &index.digest, OCI_INDEX);
}

/// Sends one request and reads the status, failing the test if no answer comes in `limit`.
fn timed(http_addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (Resp, Duration) {
    let t0 = Instant::now();
    let r = Http::new(http_addr).send(method, path, headers, body);
    (r, t0.elapsed())
}

/// Asserts a request answered 503 `UNAVAILABLE` quickly, with a message about the storage.
#[track_caller]
fn assert_unavailable(r: &Resp, took: Duration, what: &str) {
    assert_eq!(r.status, 503, "{what} while the store is down: {}", r.text());
    assert_eq!(r.error_codes(), ["UNAVAILABLE"], "{what}: error code");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}: error bodies are JSON");
    assert!(r.header("retry-after").is_some(), "{what}: a 503 says when to retry");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("storage"), "{what}: the message names the storage problem: {message}");
    assert!(took < Duration::from_secs(6), "{what} took {took:?} to fail: clients need a fast answer while the store is down");
}

/// The requests a client makes, all while the store is down. `session` is an upload opened
/// before the outage.
fn requests_during_outage(server: &Server, repo: &str, tag: &str, digest: &str, layer: &str, session: &str, what: &str) -> Duration {
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
fn wait_until_served(server: &Server, paths: &[String], limit: Duration) -> Duration {
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
    let server = store.start(&[]);
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
    let head = format!("PATCH {in_flight} HTTP/1.1\r\nhost: {}\r\ncontent-length: {len}\r\n\r\n", server.addr);
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
    let (status, _, _) = read_head(&mut conn);
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

/// Pseudo-random bytes from a seed, produced 1 MiB at a time and never held whole.
struct Generated {
    rng: Rng,
    hasher: Sha256,
    buf: Vec<u8>,
}

impl Generated {
    fn new(seed: u64) -> Generated {
        Generated { rng: Rng::new(seed), hasher: Sha256::new(), buf: vec![0u8; 1 << 20] }
    }

    /// Writes the next `len` bytes to `w`.
    fn copy(&mut self, w: &mut impl Write, len: u64) -> std::io::Result<()> {
        let mut left = len;
        while left > 0 {
            let n = left.min(self.buf.len() as u64) as usize;
            for chunk in self.buf[..n].chunks_mut(8) {
                let x = self.rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&x[..chunk.len()]);
            }
            self.hasher.update(&self.buf[..n]);
            w.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// The sha256 of every byte written so far.
    fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

/// Writes `len` pseudo-random bytes from `seed` to `w`; returns their sha256.
fn write_generated(w: &mut impl Write, seed: u64, len: u64) -> std::io::Result<String> {
    let mut gen = Generated::new(seed);
    gen.copy(w, len)?;
    Ok(gen.digest())
}

/// The digest of `len` bytes from `seed`, as [`write_generated`] writes them.
fn generated_digest(seed: u64, len: u64) -> String {
    write_generated(&mut std::io::sink(), seed, len).unwrap()
}

/// Sends a request head (with `content-length: len`) and then `len` generated bytes.
fn send_generated(addr: SocketAddr, method: &str, path: &str, seed: u64, len: u64) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, conn.try_clone().unwrap());
    let digest = write_generated(&mut out, seed, len).unwrap();
    out.flush().unwrap();
    (conn, digest)
}

/// Reads a response's head; the status, the headers (lower-case names), and the connection
/// positioned at the body with whatever body bytes came along with the head.
fn read_head(conn: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
            let headers =
                lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
            return (status, headers, raw[end + 4..].to_vec());
        }
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// GETs `path` and hashes the body as it streams in; the status, body length and sha256.
fn get_hashed(addr: SocketAddr, path: &str, extra: &str) -> (u16, u64, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{extra}\r\n").unwrap();
    let (status, headers, first) = read_head(&mut conn);
    let mut hasher = Sha256::new();
    hasher.update(&first);
    let mut len = first.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    if let Some(cl) = header(&headers, "content-length") {
        assert_eq!(cl.parse::<u64>().unwrap(), len, "GET {path}: Content-Length and the bytes received differ");
    }
    (status, len, format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[test]
fn blob_of_2_gib_through_s3_with_bounded_memory() {
    const SIZE: u64 = 2 << 30;
    const LIMIT: u64 = 200 << 20;
    let store = S3Store::shared();
    let server = store.start(&[]);
    let http = Http::new(server.addr);
    let repo = "e2e/huge";

    // docker's way: POST a session, one PATCH streaming the whole blob, PUT with the digest.
    let t0 = Instant::now();
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
    let loc = r.header("location").unwrap().to_string();
    let (mut conn, digest) = send_generated(server.addr, "PATCH", &loc, 47, SIZE);
    let (status, headers, _) = read_head(&mut conn);
    assert_eq!(status, 202, "PATCH of 2 GiB");
    assert_eq!(header(&headers, "range"), Some(format!("0-{}", SIZE - 1).as_str()));
    let loc = header(&headers, "location").unwrap().to_string();
    let patched = t0.elapsed();
    http.send("PUT", &with_query(&loc, "digest", &digest), &[], Vec::new()).expect(201, "PUT to finish the 2 GiB upload");
    let push = t0.elapsed();
    eprintln!("2 GiB PATCH took {patched:?}, the PUT that publishes it {:?}", push - patched);

    let t0 = Instant::now();
    let (status, len, got) = get_hashed(server.addr, &format!("/v2/{repo}/blobs/{digest}"), "");
    assert_eq!((status, len), (200, SIZE), "GET of the 2 GiB blob");
    assert_eq!(got, digest, "the 2 GiB blob comes back with the bytes pushed");
    let pull = t0.elapsed();
    // And a range at the very end (served through a ranged GET on the object store).
    let tail = 1000u64;
    let (status, len, got) = get_hashed(server.addr, &format!("/v2/{repo}/blobs/{digest}"), &format!("range: bytes={}-\r\n", SIZE - tail));
    assert_eq!((status, len), (206, tail));
    let mut all = Vec::new();
    let _ = write_generated(&mut all_tail(&mut all, SIZE - tail), 47, SIZE);
    assert_eq!(got, sha256(&all), "the last {tail} bytes");

    // Monolithic push of the same size into another repository: known bytes, hashed, not stored twice.
    let (mut conn, d2) = send_generated(server.addr, "POST", &format!("/v2/{repo}-2/blobs/uploads/?digest={digest}"), 47, SIZE);
    assert_eq!(d2, digest);
    let (status, _, _) = read_head(&mut conn);
    assert_eq!(status, 201, "monolithic POST of 2 GiB");

    let peak = peak_rss(server.pid());
    eprintln!(
        "2 GiB through S3: push {:.0} MiB/s, pull {:.0} MiB/s, server peak RSS {} MiB",
        (SIZE >> 20) as f64 / push.as_secs_f64(),
        (SIZE >> 20) as f64 / pull.as_secs_f64(),
        peak >> 20
    );
    assert!(peak < LIMIT, "wharfage's peak RSS was {} MiB for a 2 GiB push and pull (limit {} MiB)", peak >> 20, LIMIT >> 20);
    assert_eq!(store.keys("uploads/"), Vec::<String>::new(), "the session's chunk is gone");
    assert_eq!(store.multipart_uploads(), Vec::<String>::new());
}

/// A writer that keeps only the bytes from offset `from` on, for checking a tail.
fn all_tail(out: &mut Vec<u8>, from: u64) -> impl Write + '_ {
    struct Tail<'a> {
        out: &'a mut Vec<u8>,
        pos: u64,
        from: u64,
    }
    impl Write for Tail<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let end = self.pos + buf.len() as u64;
            if end > self.from {
                let skip = self.from.saturating_sub(self.pos) as usize;
                self.out.extend_from_slice(&buf[skip..]);
            }
            self.pos = end;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    Tail { out, pos: 0, from }
}

/// Polls `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a request announcing `len` bytes, sends `sent` of them, waits until the server has
/// a multipart upload going for it, then disconnects.
fn abandon(store: &S3Store, addr: SocketAddr, method: &str, path: &str, len: u64, sent: u64) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    write_generated(&mut conn, 48, sent).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || !store.multipart_uploads().is_empty()),
        "{method} {path}: no multipart upload started after {sent} bytes: the test would prove nothing"
    );
    conn.shutdown(std::net::Shutdown::Both).unwrap();
    drop(conn);
}

#[test]
fn abandoned_multipart_uploads_are_aborted() {
    let store = S3Store::shared();
    let server = store.start(&[]);
    let http = Http::new(server.addr);
    let repo = "e2e/abandoned";
    let len: u64 = 40 << 20;
    let digest = generated_digest(48, len);

    // A client disconnecting halfway through a PATCH, and through a monolithic POST.
    let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
    let loc = r.header("location").unwrap().to_string();
    abandon(&store, server.addr, "PATCH", &loc, len, 20 << 20);
    assert!(
        eventually(Duration::from_secs(10), || store.multipart_uploads().is_empty()),
        "the multipart upload of an abandoned PATCH is still open: {:?}",
        store.multipart_uploads()
    );
    abandon(&store, server.addr, "POST", &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), len, 20 << 20);
    assert!(
        eventually(Duration::from_secs(10), || store.multipart_uploads().is_empty()),
        "the multipart upload of an abandoned monolithic POST is still open: {:?}",
        store.multipart_uploads()
    );

    // No blob, no chunk: the session holds nothing and still accepts the whole blob.
    assert_eq!(store.keys("blobs/"), Vec::<String>::new(), "an abandoned upload left a visible blob");
    assert_eq!(http.head(&format!("/v2/{repo}/blobs/{digest}")).status, 404);
    let r = http.get(&loc).expect(204, "the session after the abandoned PATCH");
    assert_eq!(r.header("range"), Some("0-0"), "the session holds nothing");
    assert_eq!(store.keys("uploads/").iter().filter(|k| k.contains("/part-")).count(), 0, "no chunk stored: {:?}", store.keys("uploads/"));
    let (mut conn, d) = send_generated(server.addr, "PUT", &with_query(&loc, "digest", &digest), 48, len);
    assert_eq!(d, digest);
    assert_eq!(read_head(&mut conn).0, 201, "the session, resent whole");
    let (status, n, got) = get_hashed(server.addr, &format!("/v2/{repo}/blobs/{digest}"), "");
    assert_eq!((status, n, got.as_str()), (200, len, digest.as_str()));

    // A digest mismatch on a multipart-sized body aborts too.
    let wrong = sha256(b"not these bytes");
    let (mut conn, _) = send_generated(server.addr, "POST", &format!("/v2/{repo}/blobs/uploads/?digest={wrong}"), 49, 20 << 20);
    assert_eq!(read_head(&mut conn).0, 400, "a monolithic POST with the wrong digest");
    assert!(eventually(Duration::from_secs(10), || store.multipart_uploads().is_empty()), "{:?}", store.multipart_uploads());
    assert_eq!(http.head(&format!("/v2/{repo}/blobs/{wrong}")).status, 404);
}

#[test]
fn presigned_redirects_serve_the_blob_from_the_store() {
    // A SeaweedFS that checks signatures made with the keys the server gets (`S3Store::start`),
    // so a presigned URL proves something: every request of wharfage's is checked too.
    let s3 = SeaweedFs::start_verifying(ACCESS_KEY, SECRET_KEY);
    let store = S3Store::on(&s3);
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let server = store.start(&["--s3-redirect"]);
    let http = Http::new(server.addr);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 50);
    let repo = "e2e/redirect";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", server.host()));

    let layer = &image.layers[2];
    let bytes = &layout.blobs[layer];
    let r = http.get(&format!("/v2/{repo}/blobs/{layer}")).expect(307, "blob GET with --s3-redirect");
    assert_eq!(r.header("docker-content-digest"), Some(layer.as_str()));
    let location = r.header("location").expect("a redirect has a Location").to_string();
    assert!(
        location.starts_with(&format!("{}/{}/{}/blobs/sha256/", store.s3.endpoint, store.bucket, store.prefix)),
        "the redirect goes to the object store: {location}"
    );
    assert!(location.contains("X-Amz-Signature="), "the URL is presigned: {location}");

    // The presigned URL works on its own, whole and with a range, and only for GET.
    let s3 = Http::new(s3.addr());
    let got = s3.get(&location).expect(200, "GET of the presigned URL");
    assert!(got.body == *bytes, "the presigned URL serves the blob's bytes");
    let part = s3.send("GET", &location, &[("range", "bytes=100-199")], Vec::new()).expect(206, "ranged GET of the presigned URL");
    assert!(part.body == bytes[100..200], "the range of the blob");
    let forged = location.replace("X-Amz-Signature=", "X-Amz-Signature=00");
    assert_eq!(s3.get(&forged).status, 403, "a tampered presigned URL is refused");
    let other = location.replace(&layer["sha256:".len()..], &image.layers[0]["sha256:".len()..]);
    assert_eq!(s3.get(&other).status, 403, "a presigned URL is good for its blob only");

    // HEAD answers directly; a blob the repository does not link is still 404, not redirected.
    let head = http.head(&format!("/v2/{repo}/blobs/{layer}")).expect(200, "blob HEAD");
    assert_eq!(head.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert_eq!(http.get(&format!("/v2/other/blobs/{layer}")).status, 404, "no redirect for a repository that does not link the blob");

    // A real client follows the redirects: skopeo pulls every blob from the store.
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);

    // Without access keys there is nothing to sign with: the replica serves the bytes itself.
    let mut args = store.args();
    args.push("--s3-redirect".into());
    let keyless = Server::start_with(store.cwd.path(), &args, &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
    let got = Http::new(keyless.addr).get(&format!("/v2/{repo}/blobs/{layer}")).expect(200, "blob GET with --s3-redirect and no keys");
    assert!(got.body == *bytes, "the blob served without a redirect");
}

#[test]
fn blob_cache_serves_repeat_pulls_from_local_disk() {
    let store = S3Store::shared();
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let cache = tmp.path().join("blob-cache");
    let cache_arg = cache.to_str().unwrap();
    let server = store.start(&["--blob-cache-dir", cache_arg, "--blob-cache-size", "1GiB"]);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 60);
    let repo = "e2e/cached";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", server.host()));
    let cached = |d: &str| cache.join("sha256").join(&d["sha256:".len()..]);
    assert!(image.layers.iter().all(|l| !cached(l).exists()), "a push filled the cache");

    // Four clients pull the cold layers at once: all get the bytes, one fills the cache.
    let layer = image.layers[2].clone();
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (addr, path) = (server.addr, format!("/v2/{repo}/blobs/{layer}"));
            std::thread::spawn(move || get_hashed(addr, &path, ""))
        })
        .collect();
    for p in pulls {
        let (status, len, digest) = p.join().unwrap();
        assert_eq!((status, len, digest.as_str()), (200, layout.blobs[&layer].len() as u64, layer.as_str()), "a cold parallel pull");
    }
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);
    for d in image.layers.iter().chain([&image.config]) {
        assert!(eventually(Duration::from_secs(10), || cached(d).exists()), "blob {d} never reached the cache");
        assert_eq!(sha256(&std::fs::read(cached(d)).unwrap()), *d, "the cached copy of {d} is the blob");
    }
    assert!(std::fs::read_dir(cache.join("tmp")).unwrap().next().is_none(), "finished fills leave no temporary files");
    let metrics = Http::new(server.addr).get("/metrics").expect(200, "metrics").text();
    let value = |series: &str| metric(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
    let cached_blobs = image.layers.len() as f64 + 1.0;
    assert_eq!(value("wharfage_blob_cache_blobs"), cached_blobs, "{metrics}");
    assert_eq!(value("wharfage_blob_cache_fills_total"), cached_blobs, "one fill per blob, however many pulled it: {metrics}");
    assert_eq!(value("wharfage_blob_cache_max_bytes"), (1u64 << 30) as f64);

    // Served from the replica's disk: with the layers gone from the bucket (behind the
    // registry's back), a restarted replica still serves them, whole and in ranges.
    for l in &image.layers {
        let key = format!("/{}/{}/blobs/sha256/{}/{}", store.bucket, store.prefix, &l[7..9], &l[7..]);
        assert_eq!(testkit::http_status(store.s3.addr().port(), "DELETE", &key).unwrap(), 204, "DELETE {key}");
    }
    // fsck, even given the serving flags, checks the bucket, not the local copies: it finds
    // the layers missing, and leaves the cache alone, even a fill the replica has under way.
    let in_progress = cache.join("tmp").join("a-fill-under-way");
    std::fs::write(&in_progress, b"the replica is writing this").unwrap();
    let mut fsck = crate::harness::wharfage(tmp.path());
    fsck.arg("fsck").args(store.args()).args(["--blob-cache-dir", cache_arg]);
    fsck.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let out = fsck.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "fsck of a bucket missing layers: {report}\n{}", String::from_utf8_lossy(&out.stderr));
    for l in &image.layers {
        assert!(report.contains(l.as_str()), "fsck does not report missing layer {l}:\n{report}");
        assert!(cached(l).exists(), "fsck removed the cached copy of {l}");
    }
    assert!(in_progress.exists(), "fsck deleted a running replica's fill in progress");
    drop(server);
    let server = store.start(&["--blob-cache-dir", cache_arg, "--blob-cache-size", "1GiB"]);
    let http = Http::new(server.addr);
    for l in &image.layers {
        let got = http.get(&format!("/v2/{repo}/blobs/{l}")).expect(200, "GET of a cached layer");
        assert!(got.body == layout.blobs[l], "layer {l} served from the cache");
        let part = http
            .send("GET", &format!("/v2/{repo}/blobs/{l}"), &[("range", "bytes=10-19")], Vec::new())
            .expect(206, "ranged GET of a cached layer");
        assert!(part.body == layout.blobs[l][10..20], "a range of layer {l} from the cache");
    }
    // The repository's link still decides: another repository cannot read the cached bytes.
    assert_eq!(http.get(&format!("/v2/other/blobs/{layer}")).status, 404);
    let metrics = http.get("/metrics").expect(200, "metrics after the restart").text();
    assert_eq!(metric(&metrics, "wharfage_blob_cache_hits_total"), Some(2.0 * image.layers.len() as f64), "{metrics}");
    assert_eq!(metric(&metrics, "wharfage_blob_cache_misses_total"), Some(0.0), "{metrics}");
}

/// The value of a sample (`name{labels} value`) in a `/metrics` text.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_replicas_blob_cache_never_serves_what_another_replica_collected() {
    let store = S3Store::shared();
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let cache = tmp.path().join("blob-cache-b");
    // A collects (no grace, no protect window); B serves pulls from its blob cache.
    let a = store.start(&crate::gc::quiet().iter().map(String::as_str).collect::<Vec<_>>());
    let b = store.start(&["--blob-cache-dir", cache.to_str().unwrap()]);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 70);
    let repo = "e2e/collected";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", a.host()));
    assert_pull(&skopeo, &b, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);
    let cached = |d: &str| cache.join("sha256").join(&d["sha256:".len()..]);
    for l in &image.layers {
        assert!(eventually(Duration::from_secs(10), || cached(l).exists()), "layer {l} never reached B's cache");
    }

    // The image is deleted and collected through A, once the push's protections are older
    // than the second of slack S3's whole-second times get.
    skopeo.delete(&format!("{}/{repo}:v1", a.host()));
    std::thread::sleep(Duration::from_millis(2500));
    let report = Http::new(a.addr)
        .send("POST", "/api/v1/gc", &[("content-type", "application/json")], br#"{"dry_run":false}"#.to_vec())
        .expect(200, "a collection on A");
    let report: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
    assert_eq!(report["blobs"]["count"], image.layers.len() + 2, "A collected the layers, the config and the manifest: {report}");

    // B still holds the copies, and serves none of them: the repository's links are gone.
    let http = Http::new(b.addr);
    for l in &image.layers {
        assert!(cached(l).exists(), "B's copy of {l} went away: the test would prove nothing");
        assert_eq!(http.get(&format!("/v2/{repo}/blobs/{l}")).status, 404, "GET of collected layer {l} on B");
        assert_eq!(http.head(&format!("/v2/{repo}/blobs/{l}")).status, 404, "HEAD of collected layer {l} on B");
    }

    // Pushed again, the image pulls whole through B.
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", a.host()));
    assert_pull(&skopeo, &b, repo, "v1", &tmp.path().join("out-again"), &layout.blobs, &image.digest);
}
