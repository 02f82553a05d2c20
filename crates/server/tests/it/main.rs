//! HTTP integration tests of the `/v2/` API: the real router served on a loopback port, a
//! real HTTP client, and a store on a temporary directory. Assertions are what a client would
//! notice: statuses, OCI error codes, headers and byte-exact bodies.
//!
//! The fixture lives here; one module per resource. Every test but those about the filesystem
//! itself is written once with `testkit::both_backends!`: it runs as `<test>::fs` on a
//! temporary directory, and again on S3 (a real SeaweedFS) in `s3_suite`.

mod blobs;
mod errors;
mod listing;
mod manifests;
mod ops;
mod uploads;

use std::path::{Path, PathBuf};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use server::mgmt::types::{ErrorBody, ErrorEntry};
use sha2::Digest as _;
use testkit::http::Http;
pub(crate) use testkit::{both_backends, Backend};
use tokio::net::TcpListener;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The bucket the S3 runs share, each registry under its own prefix.
const S3_BUCKET: &str = "server-http";

testkit::s3_suite!();

/// A registry served in-process on 127.0.0.1, with its storage root.
pub struct Registry {
    pub base: String,
    pub http: reqwest::Client,
    /// The store's root directory (inside `outer`); unused on S3.
    pub root: PathBuf,
    /// The temporary directory holding `root`; nothing but `root` may ever appear in it.
    pub outer: PathBuf,
    /// The S3 store, when the test runs on S3.
    pub s3: Option<store::S3Config>,
    dir: Option<tempfile::TempDir>,
    server: tokio::task::JoinHandle<()>,
    /// Options set on the server's state (kept across restarts).
    configure: fn(&mut server::AppState),
}

impl Registry {
    /// A fresh registry on empty storage: a temporary directory, or a fresh prefix in
    /// SeaweedFS.
    pub async fn start(backend: Backend) -> Self {
        Self::start_configured(backend, |_| {}).await
    }

    /// The same, with `configure` setting options of the server's state.
    pub async fn start_configured(backend: Backend, configure: fn(&mut server::AppState)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let outer = dir.path().to_path_buf();
        let s3 = (backend == Backend::S3).then(|| {
            let seaweed = testkit::SeaweedFs::shared();
            seaweed.create_bucket(S3_BUCKET);
            store::S3Config {
                endpoint: seaweed.endpoint.clone(),
                bucket: S3_BUCKET.into(),
                region: "us-east-1".into(),
                prefix: Some(testkit::unique("http")),
                access_key_id: Some("any".into()),
                secret_access_key: Some("any".into()),
            }
        });
        Self::serve(outer.join("root"), outer, Some(dir), s3, configure).await
    }

    async fn serve(
        root: PathBuf,
        outer: PathBuf,
        dir: Option<tempfile::TempDir>,
        s3: Option<store::S3Config>,
        configure: fn(&mut server::AppState),
    ) -> Self {
        // The S3 store and the test's reqwest client need it, as the binary's `main` installs it.
        testkit::install_crypto_provider();
        let store = match &s3 {
            Some(cfg) => store::Store::s3(cfg).expect("S3 store"),
            None => store::Store::filesystem(&root).expect("filesystem store"),
        };
        let mut state = server::AppState::new(store);
        configure(&mut state);
        let app = server::router(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Registry { base: format!("http://{addr}"), http: reqwest::Client::new(), root, outer, s3, dir, server, configure }
    }

    /// Stops this server and starts a new one, with a new `Store`, on the same storage:
    /// nothing in memory survives, only what is on disk (or in the bucket).
    pub async fn restart(self) -> Self {
        self.server.abort();
        let _ = self.server.await;
        Self::serve(self.root, self.outer, self.dir, self.s3, self.configure).await
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// A request to a path (or to an absolute URL, e.g. a `Location`).
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.expect("GET")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.req(Method::HEAD, path).send().await.expect("HEAD")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.expect("DELETE")
    }

    /// Pushes a blob with a monolithic `POST ?digest=` and returns its sha256 digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.push_blob_as(repo, bytes, &d).await;
        d
    }

    /// Pushes a blob under a given digest (sha256 or sha512), asserting 201.
    pub async fn push_blob_as(&self, repo: &str, bytes: &[u8], digest: &str) {
        let resp = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("POST blob");
        assert_eq!(resp.status(), 201, "pushing blob {digest} to {repo}: {}", text(resp).await);
    }

    /// PUTs a manifest and returns the raw response.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT manifest")
    }

    /// PUTs a manifest, asserts 201 and returns its sha256 digest.
    pub async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        assert_eq!(resp.status(), 201, "pushing manifest {reference} to {repo}: {}", text(resp).await);
        sha256(body)
    }

    /// Pushes a small image (config and `layers` random layers) and its OCI manifest under
    /// `reference` (a tag or its own digest when `None`).
    pub async fn push_image(&self, repo: &str, reference: Option<&str>, seed: u64) -> Image {
        let img = Image::new(seed, 2);
        for (_, bytes) in img.blobs() {
            self.push_blob(repo, bytes).await;
        }
        let reference = reference.map(str::to_string).unwrap_or_else(|| img.digest.clone());
        self.push_manifest(repo, &reference, OCI_MANIFEST, &img.manifest).await;
        img
    }

    /// Sends a request with the exact request target given (no client-side normalisation of
    /// `..` or percent escapes), with `{}` as a manifest body, and returns the status and body.
    pub async fn raw(&self, method: &str, target: &str) -> (u16, String) {
        let addr = self.base.trim_start_matches("http://").parse().expect("the registry's address");
        let (method, target) = (method.to_string(), target.to_string());
        let send = move || Http::new(addr).send(&method, &target, &[("content-type", OCI_MANIFEST)], b"{}".to_vec());
        let resp = tokio::task::spawn_blocking(send).await.expect("the raw request");
        (resp.status, resp.text())
    }

    /// fsck of this registry's storage, through a store of its own (read-only: no repair).
    pub async fn fsck(&self) -> store::FsckReport {
        let store = match &self.s3 {
            Some(cfg) => store::Store::s3(cfg).expect("S3 store"),
            None => store::Store::filesystem(&self.root).expect("filesystem store"),
        };
        store.fsck(false, std::time::Duration::from_secs(86400), &|_, _| {}).await.expect("fsck")
    }

    /// Every file under the storage root (every key under the prefix, on S3), relative to it.
    pub fn stored_files(&self) -> Vec<String> {
        if let Some(cfg) = &self.s3 {
            let prefix = cfg.prefix.as_deref().unwrap_or_default();
            let keys = testkit::SeaweedFs::shared().list_keys(&cfg.bucket, &format!("{prefix}/"));
            return keys.into_iter().map(|k| k[prefix.len() + 1..].to_string()).collect();
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
        }
    }
}

/// A small OCI image: config, layers and the manifest bytes that name them.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

impl Image {
    pub fn new(seed: u64, layers: usize) -> Self {
        let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).unwrap();
        let layers: Vec<Vec<u8>> = (0..layers).map(|i| bytes(seed * 100 + i as u64, 1000 + i * 10)).collect();
        let manifest = oci_manifest(&config, &layers, json!({}));
        let digest = sha256(&manifest);
        Image { config, layers, manifest, digest }
    }

    pub fn blobs(&self) -> impl Iterator<Item = (String, &Vec<u8>)> {
        std::iter::once(&self.config).chain(self.layers.iter()).map(|b| (sha256(b), b))
    }

    /// This image's descriptor, for an index or a subject.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.manifest.len()})
    }
}

/// An OCI image manifest naming `config` and `layers`, with `extra` fields merged in.
/// Pretty-printed with a trailing newline, so a registry that re-serialised it would be caught.
pub fn oci_manifest(config: &[u8], layers: &[Vec<u8>], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": OCI_LAYER, "digest": sha256(l), "size": l.len()})).collect::<Vec<_>>(),
    });
    merge(&mut m, extra);
    pretty(&m)
}

/// An OCI index of the given descriptors, with `extra` fields merged in.
pub fn oci_index(manifests: Vec<Value>, extra: Value) -> Vec<u8> {
    let mut m = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    merge(&mut m, extra);
    pretty(&m)
}

pub fn merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        for (k, v) in e {
            t.insert(k, v);
        }
    }
}

pub fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap();
    out.push(b'\n');
    out
}

/// Deterministic pseudo-random bytes (xorshift), distinct per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

pub fn sha512(b: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(b)))
}

/// A response header as text ("" when absent).
pub fn header(resp: &Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// Every value of a repeated header.
pub fn headers(resp: &Response, name: &str) -> Vec<String> {
    resp.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

pub async fn text(resp: Response) -> String {
    resp.text().await.unwrap_or_default()
}

pub async fn body(resp: Response) -> Vec<u8> {
    resp.bytes().await.expect("body").to_vec()
}

pub async fn json_body(resp: Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Asserts an error response: its status, its JSON content type, and the OCI code of its
/// first error.
pub async fn expect_error(resp: Response, status: u16, code: &str) {
    let got = resp.status().as_u16();
    let ctype = header(&resp, "content-type");
    let body = text(resp).await;
    assert_eq!(got, status, "expected {status} {code}, got {got}: {body}");
    assert_eq!(ctype, "application/json", "error bodies are JSON: {body}");
    let v: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an error body ({e}): {body}"));
    let first = v.errors.first().unwrap_or_else(|| panic!("no error in {body}"));
    assert_eq!(first.code, code, "error code in {body}");
    assert!(!first.message.is_empty(), "error message in {body}");
}

/// The first error of an error body.
pub async fn first_error(resp: Response) -> ErrorEntry {
    let body = text(resp).await;
    let v: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an error body ({e}): {body}"));
    v.errors.into_iter().next().unwrap_or_else(|| panic!("no error in {body}"))
}
