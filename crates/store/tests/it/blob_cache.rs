//! The local blob cache of a store on S3 (SeaweedFS): what it serves, when it fills, how it
//! stays within its size, and what survives a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci::{Algorithm, Digest};
use store::{BackendConfig, BlobCacheConfig, S3Config, Store};

use crate::suite::{body, random, read_all};

struct Case {
    s3: &'static testkit::SeaweedFs,
    prefix: String,
    cache: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        testkit::install_crypto_provider();
        let s3 = testkit::SeaweedFs::shared();
        s3.create_bucket("cache");
        Case { s3, prefix: testkit::unique("cache"), cache: tempfile::tempdir().unwrap() }
    }

    /// The store's settings, and its cache's with `max_bytes`.
    fn config(&self, max_bytes: u64) -> (S3Config, BlobCacheConfig) {
        self.config_at(max_bytes, &self.s3.endpoint)
    }

    /// The same, reaching S3 at `endpoint` (a proxy in front of it).
    fn config_at(&self, max_bytes: u64, endpoint: &str) -> (S3Config, BlobCacheConfig) {
        let cfg = S3Config {
            endpoint: endpoint.to_string(),
            bucket: "cache".into(),
            region: "us-east-1".into(),
            prefix: Some(self.prefix.clone()),
            access_key_id: Some("any".into()),
            secret_access_key: Some("any".into()),
        };
        (cfg, BlobCacheConfig { dir: self.cache.path().to_path_buf(), max_bytes })
    }

    fn open(&self, max_bytes: u64) -> Store {
        self.open_at(max_bytes, &self.s3.endpoint)
    }

    fn open_at(&self, max_bytes: u64, endpoint: &str) -> Store {
        let (cfg, cache) = self.config_at(max_bytes, endpoint);
        // A fill's writer lets go of the cache (and its folder lock) just after publishing:
        // a reopen right after dropping a store may have to wait a moment for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Store::builder(BackendConfig::S3(cfg.clone())).blob_cache(cache.clone()).build() {
                Ok(store) => return store,
                Err(e) if Instant::now() < deadline && e.to_string().contains("another process") => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("opening the cache: {e}"),
            }
        }
    }

    fn cached(&self, d: &Digest) -> PathBuf {
        self.cache.path().join(d.algorithm().as_str()).join(d.hex())
    }

    /// Removes the blob from the bucket behind the store's back, so that only a cached copy
    /// can still answer.
    fn delete_from_bucket(&self, d: &Digest) {
        let key = format!("/cache/{}/blobs/{}/{}/{}", self.prefix, d.algorithm().as_str(), &d.hex()[..2], d.hex());
        let status = testkit::http_status(self.s3.addr().port(), "DELETE", &key).unwrap();
        assert_eq!(status, 204, "DELETE {key}");
    }

    /// Replaces the blob's bytes in the bucket behind the store's back with others of the
    /// same size, as a damaged object store would serve them.
    fn corrupt_in_bucket(&self, d: &Digest, len: usize) {
        let key = format!("/cache/{}/blobs/{}/{}/{}", self.prefix, d.algorithm().as_str(), &d.hex()[..2], d.hex());
        let status = testkit::http_put(self.s3.addr().port(), &key, &random(len, 999)).unwrap();
        assert_eq!(status, 200, "PUT {key}");
    }

    fn temp_files(&self) -> usize {
        std::fs::read_dir(self.cache.path().join("tmp")).map(|d| d.count()).unwrap_or(0)
    }
}

/// Fills run off the request path: wait for one to land (or fail after 10 s).
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn put(store: &Store, len: usize, seed: u64) -> (Digest, Vec<u8>) {
    let data = random(len, seed);
    let d = Digest::of(Algorithm::Sha256, &data);
    store.put_blob(&d, body(&data, 64 << 10)).await.unwrap();
    (d, data)
}

async fn whole_read_fills_and_later_reads_need_no_bucket() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (d, data) = put(&store, 3 << 20, 1).await;
    assert!(!case.cached(&d).exists(), "a push does not fill the cache");

    // A range read streams from the bucket and fills nothing.
    assert_eq!(read_all(&store, &d, Some(5..500)).await, &data[5..500]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!case.cached(&d).exists(), "a range read filled the cache");

    assert_eq!(read_all(&store, &d, None).await, data);
    wait_for(&case.cached(&d));
    assert_eq!(std::fs::read(case.cached(&d)).unwrap(), data, "the cached copy is the blob");
    assert_eq!(case.temp_files(), 0, "a finished fill leaves no temporary file");

    case.delete_from_bucket(&d);
    assert_eq!(read_all(&store, &d, None).await, data, "whole read from the cache");
    assert_eq!(read_all(&store, &d, Some(1_000_000..2_000_000)).await, &data[1_000_000..2_000_000], "range from the cache");
}

async fn a_copy_changed_on_disk_is_never_served() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (d, data) = put(&store, 2 << 20, 5).await;
    assert_eq!(read_all(&store, &d, None).await, data);
    wait_for(&case.cached(&d));
    // Cut short behind the cache's back: the store answers instead, and the copy is dropped.
    std::fs::write(case.cached(&d), &data[..1000]).unwrap();
    assert_eq!(read_all(&store, &d, None).await, data, "a truncated copy was served");
    assert_eq!(read_all(&store, &d, Some(10..20)).await, &data[10..20]);
    // The whole read refilled it, whole this time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(case.cached(&d)).map(|m| m.len()).unwrap_or(0) != data.len() as u64 {
        assert!(Instant::now() < deadline, "the dropped copy was never filled again");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(case.cached(&d)).unwrap(), data);
}

async fn a_fill_outlives_the_reader_that_started_it() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (d, data) = put(&store, 4 << 20, 2).await;
    let mut b = store.read_blob(&d, None).await.unwrap();
    b.stream.next().await.unwrap().unwrap();
    drop(b); // the client went away after its first chunk
             // Others may be following the same fill: it runs to its end and is published.
    wait_for(&case.cached(&d));
    assert_eq!(std::fs::read(case.cached(&d)).unwrap(), data, "the cached copy is the blob");
    assert_eq!(case.temp_files(), 0, "a finished fill leaves no temporary file");
}

async fn a_first_reader_that_falls_behind_reads_the_rest_from_the_file() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let size = 12 << 20;
    let (d, data) = put(&store, size, 3).await;
    let mut b = store.read_blob(&d, None).await.unwrap();
    let head = b.stream.next().await.unwrap().unwrap();
    // It reads nothing more while the whole blob fills: far more than the fill hands over
    // ahead of its reader, which must then go on from the file, not lose bytes or wait.
    wait_for(&case.cached(&d));
    let (rest, err) = drain(b.stream).await;
    assert_eq!(err, None);
    assert_eq!(head.len() + rest.len(), size, "the first reader got {} of {size} bytes", head.len() + rest.len());
    assert!([&head[..], &rest[..]].concat() == data, "the first reader got other bytes than the blob");
}

/// Reads a body to its end: the bytes, and the error that ended it early if one did.
async fn drain(mut stream: store::ByteStream) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

async fn concurrent_reads_of_a_filling_blob_read_the_bucket_once() {
    let case = Case::new();
    let proxy = testkit::CountingProxy::start(case.s3.addr());
    let store = case.open_at(64 << 20, &format!("http://{}", proxy.addr));
    let size = 8 << 20;
    let (d, data) = put(&store, size, 40).await;
    let stats = store.blob_cache_stats().unwrap();
    let before = proxy.bytes_down();

    // The bucket's answers are held after their first 3 MiB, so the fill cannot complete.
    proxy.hold_after(3 << 20);
    let first = store.read_blob(&d, None).await.unwrap();
    let mut first_stream = first.stream;
    let head = first_stream.next().await.unwrap().unwrap();
    assert!(!head.is_empty() && (head.len() as u64) < (3 << 20), "the first bytes come while the blob is filling");
    assert!(!case.cached(&d).exists(), "the fill cannot have completed");
    // Every read while it fills follows it, whole reads and ranges alike.
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push((0..size as u64, store.read_blob(&d, None).await.unwrap()));
    }
    for r in [1000..2000u64, (7 << 20)..(8 << 20)] {
        others.push((r.clone(), store.read_blob(&d, Some(r)).await.unwrap()));
    }
    let now = store.blob_cache_stats().unwrap();
    assert_eq!(now.misses - stats.misses, 1, "one read went to the bucket: {now:?}");
    assert_eq!(now.fill_joins - stats.fill_joins, 7, "the others followed its fill: {now:?}");

    proxy.release();
    let (rest, err) = drain(first_stream).await;
    assert_eq!(err, None);
    assert!([&head[..], &rest[..]].concat() == data, "the first reader got other bytes than the blob");
    for (range, body) in others {
        assert_eq!((body.total, body.range.clone()), (size as u64, range.clone()));
        let (got, err) = drain(body.stream).await;
        assert_eq!(err, None, "range {range:?}");
        assert!(got == data[range.start as usize..range.end as usize], "range {range:?}: other bytes than the blob's");
    }
    let read = proxy.bytes_down() - before;
    assert!(read >= size as u64 && read < size as u64 + (64 << 10), "{read} bytes read from the bucket for one {size}-byte blob");
    wait_for(&case.cached(&d));
    assert_eq!(std::fs::read(case.cached(&d)).unwrap(), data);
}

async fn a_fill_that_does_not_verify_fails_every_reader() {
    let case = Case::new();
    let proxy = testkit::CountingProxy::start(case.s3.addr());
    let store = case.open_at(64 << 20, &format!("http://{}", proxy.addr));
    let size = 2 << 20;
    let (d, _) = put(&store, size, 41).await;
    case.corrupt_in_bucket(&d, size);
    let stats = store.blob_cache_stats().unwrap();

    proxy.hold_after(64 << 10);
    let first = store.read_blob(&d, None).await.unwrap();
    let second = store.read_blob(&d, None).await.unwrap();
    let range = store.read_blob(&d, Some(0..1000)).await.unwrap();
    assert_eq!(store.blob_cache_stats().unwrap().fill_joins - stats.fill_joins, 2, "both followed the fill");
    proxy.release();
    for (body, len) in [(first, size), (second, size), (range, 1000)] {
        let (got, err) = drain(body.stream).await;
        let err = err.expect("a reader of bytes that do not match the digest got no error");
        assert!(err.contains("other bytes than blob"), "{err}");
        // At most every byte but the last, which waits for the digest.
        assert!(got.len() < len, "a reader got all {len} bytes that do not match the digest");
    }
    let now = store.blob_cache_stats().unwrap();
    assert_eq!(now.fills_dropped - stats.fills_dropped, 1, "{now:?}");
    assert!(!case.cached(&d).exists(), "bytes that do not match the digest were cached");
    // The fill's task removes its file after it has failed the readers: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while case.temp_files() != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(case.temp_files(), 0, "the failed fill left its temporary file");
}

async fn size_limit_evicts_least_recently_used() {
    let case = Case::new();
    // 1 MiB blobs in 4.5 MiB: four fit, a fifth does not (and each is under a quarter).
    let store = case.open(4 << 20 | 512 << 10);
    let mut blobs = Vec::new();
    for seed in 0..4 {
        let (d, data) = put(&store, 1 << 20, 10 + seed).await;
        assert_eq!(read_all(&store, &d, None).await, data);
        wait_for(&case.cached(&d));
        blobs.push(d);
    }
    // Use the oldest again, then fill a fifth: the least recently used (the second) goes.
    read_all(&store, &blobs[0], None).await;
    let (fifth, _) = put(&store, 1 << 20, 20).await;
    read_all(&store, &fifth, None).await;
    wait_for(&case.cached(&fifth));
    assert!(case.cached(&blobs[0]).exists(), "the recently used blob was evicted");
    assert!(!case.cached(&blobs[1]).exists(), "the least recently used blob is still cached");
    assert!(case.cached(&blobs[2]).exists() && case.cached(&blobs[3]).exists());

    // Larger than a quarter of the cache: streamed, never cached.
    let (big, data) = put(&store, 2 << 20, 30).await;
    assert_eq!(read_all(&store, &big, None).await, data);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!case.cached(&big).exists(), "a blob over a quarter of the cache was cached");
}

async fn restart_keeps_entries_and_clears_unfinished_fills() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (d, data) = put(&store, 1 << 20, 3).await;
    read_all(&store, &d, None).await;
    wait_for(&case.cached(&d));
    drop(store);
    std::fs::write(case.cache.path().join("tmp/crashed-fill"), b"half a blob").unwrap();
    case.delete_from_bucket(&d);

    // A smaller budget after the restart still holds it; the crashed fill is gone.
    let store = case.open(8 << 20);
    assert_eq!(case.temp_files(), 0, "an unfinished fill survived a restart");
    assert_eq!(read_all(&store, &d, None).await, data, "the cache is indexed again at start-up");
    // A budget too small for anything empties it.
    drop(store);
    let _store = case.open(1 << 10);
    assert!(!case.cached(&d).exists(), "a shrunken budget kept a blob it cannot hold");
}

async fn garbage_collection_drops_the_cached_copy() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (d, data) = put(&store, 1 << 20, 4).await;
    assert_eq!(read_all(&store, &d, None).await, data);
    wait_for(&case.cached(&d));
    // Nothing links or uses the blob; with no grace it is collected once its protection
    // from the push is older than the second of slack S3's whole-second times get.
    std::thread::sleep(Duration::from_millis(2500));
    let opts = store::GcOptions { grace: Duration::ZERO, protect_window: Duration::ZERO, ..Default::default() };
    let report = store.collect_garbage(&opts).await.unwrap();
    assert_eq!(report.blobs.count, 1, "{report:?}");
    assert!(!case.cached(&d).exists(), "the collected blob is still in the cache");
    assert!(store.read_blob(&d, None).await.is_err(), "a collected blob is still served");
}

async fn one_folder_serves_one_process() {
    let case = Case::new();
    let store = case.open(64 << 20);
    let (cfg, cache) = case.config(64 << 20);
    let err = Store::builder(BackendConfig::S3(cfg)).blob_cache(cache).build().err().expect("a second cache on one folder was opened");
    assert!(err.to_string().contains("another process uses this folder"), "{err}");
    drop(store);
    // Free again once the first is gone.
    case.open(64 << 20);
}

/// One test for all cases: SeaweedFS takes seconds to start, once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_cache_on_s3() {
    whole_read_fills_and_later_reads_need_no_bucket().await;
    a_copy_changed_on_disk_is_never_served().await;
    a_fill_outlives_the_reader_that_started_it().await;
    a_first_reader_that_falls_behind_reads_the_rest_from_the_file().await;
    concurrent_reads_of_a_filling_blob_read_the_bucket_once().await;
    a_fill_that_does_not_verify_fails_every_reader().await;
    size_limit_evicts_least_recently_used().await;
    restart_keeps_entries_and_clears_unfinished_fills().await;
    garbage_collection_drops_the_cached_copy().await;
    one_folder_serves_one_process().await;
}

#[test]
fn the_filesystem_backend_refuses_a_blob_cache() {
    let root = tempfile::tempdir().unwrap();
    let cache = BlobCacheConfig { dir: root.path().join("cache"), max_bytes: 1 << 30 };
    let err = Store::builder(BackendConfig::Filesystem(root.path().to_path_buf()))
        .blob_cache(cache)
        .build()
        .err()
        .expect("a cache on fs was accepted");
    assert!(err.to_string().contains("only for object stores"), "{err}");
}
