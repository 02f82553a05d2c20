//! The backend test suite: the same cases run against the filesystem backend and against a
//! real S3 server (SeaweedFS), so both backends keep the storage model's promises. Every case
//! in `suite.rs` is written once with `testkit::both_backends!`: a test `<case>::fs` each, and
//! all of them on S3 in `s3_suite`.

mod blob_cache;
mod listing;
mod protections;
mod signature_tags;
mod suite;

use store::{S3Config, Store};
use testkit::Backend;

/// Opens (and re-opens) one store; re-opening models a restart or another replica.
pub type Opener = Box<dyn Fn() -> Store + Send + Sync>;

fn fs_opener() -> (Opener, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (Box::new(move || Store::filesystem(&path).unwrap()), dir)
}

/// An opener for a fresh, empty store on `backend`, and the directory a filesystem store
/// lives in (removed when dropped).
pub(crate) fn opener(backend: Backend) -> (Opener, Option<tempfile::TempDir>) {
    match backend {
        Backend::Fs => {
            let (open, dir) = fs_opener();
            (open, Some(dir))
        }
        Backend::S3 => (s3_opener_with_prefix().0, None),
    }
}

/// An S3 opener and the prefix its store lives under.
fn s3_opener_with_prefix() -> (Opener, String) {
    testkit::install_crypto_provider();
    let s3 = testkit::SeaweedFs::shared();
    // One bucket, a fresh prefix per case: SeaweedFS allocates volumes per bucket.
    s3.create_bucket("suite");
    let prefix = testkit::unique("case");
    let cfg = S3Config {
        endpoint: s3.endpoint.clone(),
        bucket: "suite".into(),
        region: "us-east-1".into(),
        prefix: Some(prefix.clone()),
        access_key_id: Some("any".into()),
        secret_access_key: Some("any".into()),
    };
    (Box::new(move || Store::s3(&cfg).unwrap()), prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_blob_is_restored_by_a_full_push_on_fs() {
    let (open, dir) = fs_opener();
    let root = dir.path().to_path_buf();
    let damage = move |d: &oci::Digest, bytes: &[u8]| std::fs::write(root.join(store::keys::blob(d).as_ref()), bytes).unwrap();
    suite::damaged_blob_is_restored_by_a_full_push(&open, &damage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_blob_is_restored_by_a_full_push_on_s3() {
    let (open, prefix) = s3_opener_with_prefix();
    let port = testkit::SeaweedFs::shared().s3_port;
    // SeaweedFS without identities takes unsigned requests: a raw PUT over the object.
    let damage = move |d: &oci::Digest, bytes: &[u8]| {
        let path = format!("/suite/{prefix}/{}", store::keys::blob(d));
        let status = testkit::http_put(port, &path, bytes).unwrap();
        assert_eq!(status, 200, "PUT {path}");
    };
    suite::damaged_blob_is_restored_by_a_full_push(&open, &damage).await;
}

testkit::s3_suite!();
