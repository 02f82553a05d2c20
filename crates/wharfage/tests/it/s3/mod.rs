//! The binary on an S3 store: a real SeaweedFS (`weed server -s3`, started by testkit on
//! loopback ports of its own) behind `wharfage serve --storage s3`. skopeo round trips, the
//! store going away and coming back, a 2 GiB blob with bounded memory, abandoned multipart
//! uploads, and presigned redirects. The tests of several replicas are in `ha.rs`.
//!
//! One SeaweedFS serves every test of the process that does not stop it (each test has its
//! own key prefix in one bucket); the outage test starts its own.
//!
//! Here: the fixture and skopeo round trips; `outage.rs`: the store going away and coming
//! back; `large.rs`: a 2 GiB blob and abandoned multipart uploads; `redirects.rs`: presigned
//! redirects and a replica's blob cache.

mod large;
mod outage;
mod redirects;

#[allow(unused_imports)]
use large::*;
pub(crate) use redirects::metric;
#[allow(unused_imports)]
use redirects::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use testkit::SeaweedFs;

use crate::client::{read_head, request_head, with_query, ErrorBodyExt, Http, RegistryExt, Resp};
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
