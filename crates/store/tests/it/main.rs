//! The backend test suite: the same cases run against the filesystem backend and against a
//! real S3 server (SeaweedFS), so both backends keep the storage model's promises.

mod blob_cache;
mod suite;

use store::{S3Config, Store};

/// Opens (and re-opens) one store; re-opening models a restart or another replica.
pub type Opener = Box<dyn Fn() -> Store + Send + Sync>;

fn fs_opener() -> (Opener, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (Box::new(move || Store::filesystem(&path).unwrap()), dir)
}

fn s3_opener() -> Opener {
    s3_opener_with_prefix().0
}

/// An S3 opener and the prefix its store lives under.
fn s3_opener_with_prefix() -> (Opener, String) {
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

macro_rules! fs_cases {
    ($($case:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (open, _dir) = super::fs_opener();
                    super::suite::$case(&open).await;
                }
            )*
        }

        /// One test for all S3 cases: SeaweedFS takes seconds to start, once per process.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn s3_backend_suite() {
            $(
                eprintln!("s3 case: {}", stringify!($case));
                let open = s3_opener();
                suite::$case(&open).await;
            )*
        }
    };
}

fs_cases!(
    blob_round_trip,
    wrong_digest_stores_nothing,
    large_blob_streams_through_parts,
    single_chunk_upload,
    several_chunk_upload_and_sha512,
    out_of_order_chunk_is_refused,
    upload_with_wrong_digest_leaves_nothing,
    cancelled_upload_is_gone,
    upload_resumes_after_reopen,
    links_scope_blobs_to_repositories,
    manifests_tags_and_referrers,
    catalog_lists_repositories,
    concurrent_chunks_never_publish_unhashed_bytes,
);
