//! Several stateless replicas on one S3 bucket (a real SeaweedFS), and a real nginx load
//! balancer in front of them running the deployment config in `deploy/nginx/wharfage.conf`:
//! any request may land on any replica, so a push through one is a pull through the other,
//! an upload session continues across replicas chunk by chunk, and what one replica
//! acknowledged the other serves at once without a tag cache, within its bounds with one
//! (`cache.rs`).

mod cache;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::client::{with_query, ErrorBodyExt, Http, RegistryExt, Resp};
use crate::fixtures::{sha256, Rng, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::harness::tempdir;
use crate::round_trip::{assert_inspect_image, assert_manifest_served, assert_pull, image_fixture, index_fixture};
use crate::s3::S3Store;
use crate::skopeo::{oci_ref, Skopeo};

#[test]
fn push_through_one_replica_pull_through_the_other() {
    let store = S3Store::shared();
    let (a, b) = (store.start(&[]), store.start(&[]));
    let skopeo = Skopeo::new();
    let tmp = tempdir();

    let (layout, image) = image_fixture(&tmp.path().join("image"), 61);
    let repo = "e2e/ha-image";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", a.host()));
    assert_manifest_served(&b, repo, "v1", &image.manifest, &image.digest, OCI_MANIFEST);
    assert_inspect_image(&skopeo, &format!("{}/{repo}:v1", b.host()), &image);
    assert_pull(&skopeo, &b, repo, "v1", &tmp.path().join("image-out"), &layout.blobs, &image.digest);

    let (layout2, index) = index_fixture(&tmp.path().join("index"), 62);
    let repo2 = "e2e/ha-multi";
    skopeo.copy_all(&oci_ref(&layout2.dir, "v1"), &format!("docker://{}/{repo2}:v1", b.host()));
    assert_manifest_served(&a, repo2, "v1", &index.manifest, &index.digest, OCI_INDEX);
    assert_pull(&skopeo, &a, repo2, "v1", &tmp.path().join("index-out"), &layout2.blobs, &index.digest);
}

/// PATCHes a chunk at `offset`; the next Location.
#[track_caller]
fn patch(http: &Http, loc: &str, offset: usize, bytes: &[u8], who: &str) -> String {
    let range = format!("{}-{}", offset, offset + bytes.len() - 1);
    let r = http
        .send("PATCH", loc, &[("content-type", "application/octet-stream"), ("content-range", &range)], bytes.to_vec())
        .expect(202, &format!("PATCH {range} on replica {who}"));
    assert_eq!(r.header("range"), Some(format!("0-{}", offset + bytes.len() - 1).as_str()), "Range after PATCH {range} on {who}");
    r.header("location").unwrap().to_string()
}

#[test]
fn chunked_upload_alternating_replicas() {
    let store = S3Store::shared();
    let servers = [store.start(&[]), store.start(&[])];
    let https = [Http::new(servers[0].addr), Http::new(servers[1].addr)];
    let names = ["A", "B"];
    let repo = "e2e/ha-chunks";
    // Chunk sizes as clients send them: odd, tiny, and one larger than a multipart part.
    let sizes = [(1 << 20) + 7, 3, (9 << 20) + 5, 1, (2 << 20) - 1, 4097];
    let total: usize = sizes.iter().sum::<usize>() + 11;
    let data = Rng::new(63).bytes(total);
    let digest = sha256(&data);

    let r = https[0].send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload on A");
    let mut loc = r.header("location").unwrap().to_string();
    let mut offset = 0;
    for (i, size) in sizes.iter().enumerate() {
        // Chunk i goes to one replica; the other reports the session's progress at once.
        let (this, other) = (i % 2, 1 - i % 2);
        loc = patch(&https[this], &loc, offset, &data[offset..offset + size], names[this]);
        offset += size;
        let r = https[other].get(&loc).expect(204, &format!("upload status on {} after a chunk on {}", names[other], names[this]));
        assert_eq!(r.header("range"), Some(format!("0-{}", offset - 1).as_str()), "Range seen by {}", names[other]);
    }
    // A chunk at the wrong offset is refused by either replica, and changes nothing.
    let r = https[1].send("PATCH", &loc, &[("content-range", "0-2")], b"bad".to_vec());
    assert_eq!(r.status, 416, "a chunk at a stale offset: {}", r.text());
    // The last chunk rides on the PUT, on B.
    let last = &data[offset..];
    let range = format!("{}-{}", offset, total - 1);
    let r = https[1]
        .send(
            "PUT",
            &with_query(&loc, "digest", &digest),
            &[("content-type", "application/octet-stream"), ("content-range", &range)],
            last.to_vec(),
        )
        .expect(201, "PUT on B to finish the session started on A");
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));

    for (http, name) in https.iter().zip(names) {
        let blob = http.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200, &format!("GET the blob on {name}"));
        assert!(blob.body == data, "the blob read through {name} differs ({} bytes, {} expected)", blob.body.len(), data.len());
        let head = http.head(&format!("/v2/{repo}/blobs/{digest}")).expect(200, &format!("HEAD on {name}"));
        assert_eq!(head.header("content-length"), Some(total.to_string().as_str()));
        let session = http.get(&loc);
        assert_eq!(session.status, 404, "the finished session on {name}: {}", session.text());
        assert_eq!(session.error_codes(), ["BLOB_UPLOAD_UNKNOWN"]);
    }
    assert_eq!(store.keys("uploads/"), Vec::<String>::new(), "the session's chunks are gone");

    // A session cancelled on one replica is gone on the other.
    let r = https[1].send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST on B");
    let loc = patch(&https[1], r.header("location").unwrap(), 0, b"some bytes", "B");
    https[0].send("DELETE", &loc, &[], Vec::new()).expect(204, "DELETE the session on A");
    assert_eq!(https[1].get(&loc).status, 404, "the cancelled session on B");
    assert_eq!(store.keys("uploads/"), Vec::<String>::new(), "the cancelled session's chunks are gone");
}

/// An OCI image manifest over `config` and `layer`, made distinct by `n`.
fn manifest(config: &[u8], layer: &[u8], n: usize) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": layer.len()}],
        "annotations": {"n": n.to_string()},
    });
    serde_json::to_vec_pretty(&m).unwrap()
}

#[track_caller]
fn put_manifest(http: &Http, repo: &str, reference: &str, bytes: &[u8], who: &str) -> Resp {
    http.send("PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("content-type", OCI_MANIFEST)], bytes.to_vec())
        .expect(201, &format!("PUT manifest {repo}:{reference} on {who}"))
}

fn tags(http: &Http, repo: &str) -> Vec<String> {
    let r = http.get(&format!("/v2/{repo}/tags/list"));
    if r.status == 404 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&r.expect(200, "tags list").body).unwrap();
    v["tags"].as_array().map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

#[test]
fn what_one_replica_acknowledged_the_other_serves_at_once() {
    let store = S3Store::shared();
    // No tag cache: every tag and link is read from the bucket (the default's bounds are
    // tested in `cache.rs`).
    let servers = [store.start(&["--tag-cache-ttl", "0"]), store.start(&["--tag-cache-ttl", "0"])];
    let https = [Http::new(servers[0].addr), Http::new(servers[1].addr)];
    let names = ["A", "B"];
    let repo = "e2e/ha-consistency";
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = Rng::new(64).bytes(5000);

    // Blobs: pushed on A, there on B at once.
    for blob in [&config, &layer] {
        let d = sha256(blob);
        https[0].send("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], blob.to_vec()).expect(201, "monolithic push on A");
        https[1].head(&format!("/v2/{repo}/blobs/{d}")).expect(200, "HEAD on B right after the push on A");
    }

    // A tag moving back and forth: every read right after a write, on the other replica,
    // sees that write.
    for n in 0..12 {
        let (w, r) = (n % 2, 1 - n % 2);
        let bytes = manifest(&config, &layer, n);
        let digest = sha256(&bytes);
        put_manifest(&https[w], repo, "latest", &bytes, names[w]);
        let got = https[r].get_manifest(repo, "latest").expect(200, &format!("GET latest on {} after push {n} on {}", names[r], names[w]));
        assert_eq!(
            got.header("docker-content-digest"),
            Some(digest.as_str()),
            "{} serves the tag {} just moved (push {n})",
            names[r],
            names[w]
        );
        assert!(got.body == bytes, "{}: the bytes of push {n}", names[r]);
        put_manifest(&https[r], repo, &format!("v{n}"), &bytes, names[r]);
        assert!(tags(&https[w], repo).contains(&format!("v{n}")), "{} lists the tag {} just pushed", names[w], names[r]);
    }

    // Deletes, seen at once by the replica that did not do them: a tag, a manifest by
    // digest (which the reader had just served, so had its bytes in memory), a blob link.
    https[0].send("DELETE", &format!("/v2/{repo}/manifests/v0"), &[], Vec::new()).expect(202, "DELETE tag v0 on A");
    assert_eq!(https[1].get_manifest(repo, "v0").status, 404, "tag v0 on B after its delete on A");
    let last = manifest(&config, &layer, 11);
    let last_digest = sha256(&last);
    https[0].get_manifest(repo, &last_digest).expect(200, "GET by digest on A");
    https[1].send("DELETE", &format!("/v2/{repo}/manifests/{last_digest}"), &[], Vec::new()).expect(202, "DELETE by digest on B");
    let r = https[0].get_manifest(repo, &last_digest);
    assert_eq!(r.status, 404, "a manifest deleted on B is gone on A: {}", r.text());
    assert_eq!(https[0].get_manifest(repo, "latest").status, 404, "its tag too");
    let d = sha256(&layer);
    https[1].send("DELETE", &format!("/v2/{repo}/blobs/{d}"), &[], Vec::new()).expect(202, "DELETE the layer on B");
    assert_eq!(https[0].get(&format!("/v2/{repo}/blobs/{d}")).status, 404, "the layer deleted on B, on A");
}

/// The nginx binary: on PATH or where Debian puts it.
fn nginx_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("nginx is not installed: run scripts/test.sh, which installs nginx-light"))
}

/// The deployment config with the test's replicas and listen address put in; panics if its
/// shape changed so that they could not be.
fn deployment_config(replicas: &[SocketAddr], port: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/wharfage.conf");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = String::new();
    let (mut servers, mut listens, mut in_upstream) = (0, 0, false);
    for line in text.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with("upstream wharfage") {
            in_upstream = true;
        } else if in_upstream && t.starts_with('}') {
            in_upstream = false;
        }
        if in_upstream && t.starts_with("server ") {
            let mut words: Vec<&str> = t.split_whitespace().collect();
            let addr =
                replicas.get(servers).unwrap_or_else(|| panic!("{} names more replicas than the test runs", path.display())).to_string();
            let addr_semi = format!("{addr};");
            words[1] = if words[1].ends_with(';') { &addr_semi } else { &addr };
            out.push_str(&format!("{indent}{}\n", words.join(" ")));
            servers += 1;
        } else if t.starts_with("listen ") {
            out.push_str(&format!("{indent}listen 127.0.0.1:{port};\n"));
            listens += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        (servers, listens),
        (replicas.len(), 1),
        "{} should list {} upstream servers and one listen",
        path.display(),
        replicas.len()
    );
    out
}

/// nginx running the deployment config in front of `replicas`, in a scratch directory.
struct Nginx {
    port: u16,
    dir: tempfile::TempDir,
    _child: testkit::ChildGuard,
}

impl Nginx {
    fn start(replicas: &[SocketAddr]) -> Nginx {
        let bin = nginx_bin();
        let dir = tempdir();
        let d = dir.path().display().to_string();
        let port = testkit::free_port();
        std::fs::write(dir.path().join("wharfage.conf"), deployment_config(replicas, port)).unwrap();
        // What a distribution's nginx.conf provides, pointed into the scratch directory; the
        // access log names the replica that served each request.
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n\
             log_format upstream '$request_method $uri $status $upstream_addr';\naccess_log {d}/access.log upstream;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\ninclude {d}/wharfage.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(dir.path()).arg("-c").arg(dir.path().join("nginx.conf")).arg("-e").arg(dir.path().join("error.log"));
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = testkit::spawn(cmd).unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let nginx = Nginx { port, dir, _child: child };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while testkit::http_status(port, "GET", "/v2/").ok() != Some(200) {
            assert!(std::time::Instant::now() < deadline, "nginx did not serve /v2/ on port {port}; error log:\n{}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// How many logged requests each upstream address served.
    fn served_by(&self, replica: SocketAddr) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines().filter(|l| l.split_whitespace().nth(3).is_some_and(|u| u.split(", ").any(|a| a == replica.to_string()))).count()
    }
}

#[test]
fn skopeo_through_nginx_in_front_of_two_replicas() {
    let store = S3Store::shared();
    let (a, b) = (store.start(&[]), store.start(&[]));
    let nginx = Nginx::start(&[a.addr, b.addr]);
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let lb = nginx.host();

    let (layout, image) = image_fixture(&tmp.path().join("image"), 65);
    let repo = "e2e/lb-image";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{lb}/{repo}:v1"));
    let (layout2, index) = index_fixture(&tmp.path().join("index"), 66);
    let repo2 = "e2e/lb-multi";
    skopeo.copy_all(&oci_ref(&layout2.dir, "v1"), &format!("docker://{lb}/{repo2}:v1"));
    // Round robin: both replicas took part in the pushes (uploads crossed between them).
    let (on_a, on_b) = (nginx.served_by(a.addr), nginx.served_by(b.addr));
    eprintln!("nginx sent {on_a} requests to A and {on_b} to B during the pushes");
    assert!(on_a > 0 && on_b > 0, "nginx should spread the requests: {on_a} on A, {on_b} on B");

    let pull = |tag_repo: &str, out: &str, blobs: &std::collections::BTreeMap<String, Vec<u8>>, digest: &str| {
        skopeo.copy_all(&format!("docker://{lb}/{tag_repo}:v1"), &oci_ref(&tmp.path().join(out), "v1"));
        crate::fixtures::assert_same_blobs(
            blobs,
            &crate::fixtures::read_blobs(&tmp.path().join(out)),
            &format!("pull of {tag_repo} through nginx"),
        );
        assert_eq!(crate::fixtures::tagged_digest(&tmp.path().join(out), "v1").as_deref(), Some(digest));
    };
    pull(repo, "image-out", &layout.blobs, &image.digest);
    pull(repo2, "index-out", &layout2.blobs, &index.digest);
    assert!(skopeo.inspect_raw(&format!("{lb}/{repo}:v1")) == image.manifest, "the manifest through nginx, byte for byte");

    // One replica goes away: nginx sends everything to the other, and pulls still work.
    drop(a);
    pull(repo, "image-out-2", &layout.blobs, &image.digest);
    pull(repo2, "index-out-2", &layout2.blobs, &index.digest);
    let (layout3, image3) = image_fixture(&tmp.path().join("image3"), 67);
    skopeo.copy_all(&oci_ref(&layout3.dir, "v1"), &format!("docker://{lb}/{repo}:v3"));
    assert_pull(&skopeo, &b, repo, "v3", &tmp.path().join("image3-out"), &layout3.blobs, &image3.digest);
}
