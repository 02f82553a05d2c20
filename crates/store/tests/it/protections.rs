//! A collection forgets the protections of digests that have no bytes (an upload that failed,
//! bytes another run removed) once they are older than any run may last, and keeps those of
//! stored blobs, live or not. Filesystem only: the test ages the protections by their mtime.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use oci::{Algorithm, AppId, Digest};
use store::GcOptions;

use crate::listing::record;
use crate::signature_tags::manifest_over;

fn protection(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("gc/protect").join(d.algorithm().as_str()).join(d.hex())
}

/// Writes (if missing) and ages a protection of `d` by two hours.
fn old_protection(root: &Path, d: &Digest) {
    let path = protection(root, d);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if !path.exists() {
        std::fs::write(&path, b"").unwrap();
    }
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(two_hours_ago).unwrap();
}

#[tokio::test]
async fn old_protections_go_only_with_their_bytes() {
    let (open, dir) = crate::opener(testkit::Backend::Fs);
    let root = dir.as_ref().unwrap().path().to_path_buf();
    let store = open();
    // A pinned app's image: its layer is live.
    let app = AppId::parse("kept").unwrap();
    let image = manifest_over(&store, &app, b"a live layer").await;
    let live = Digest::of(Algorithm::Sha256, b"a live layer");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    store.record_staging(&record("kept", &image, now)).await.unwrap();
    // A blob nothing uses, kept by its age (the grace period).
    let young = Digest::of(Algorithm::Sha256, b"young and unused");
    store.put_blob(&young, futures::stream::iter([Ok(Bytes::from_static(b"young and unused"))])).await.unwrap();
    // A digest whose upload never finished: a protection and no bytes.
    let gone = Digest::of(Algorithm::Sha256, b"never stored");
    for d in [&live, &image, &young, &gone] {
        old_protection(&root, d);
    }

    let report = store.collect_garbage(&GcOptions::default()).await.unwrap();
    assert_eq!(report.blobs.count, 0, "{report:?}");
    assert!(!protection(&root, &gone).exists(), "the protection of a digest with no bytes was kept");
    for (d, what) in [(&live, "a live layer"), (&image, "a live manifest"), (&young, "a young unused blob")] {
        assert!(protection(&root, d).exists(), "the protection of {what} was forgotten while its bytes are stored");
        assert!(store.blob_size(d).await.unwrap().is_some(), "{what} was collected: {report:?}");
    }
}
