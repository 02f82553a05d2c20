//! What the console lists: apps and repositories a page at a time (walk order, prefix search,
//! unpinned apps left out), and the history of collections.

use oci::{Algorithm, AppId, Digest, RepoName, RunMetadata};
use store::{GcOptions, StagingId, StagingRecord, Store};
use testkit::Backend;

use crate::opener;

/// A staging record of `app` pinning `digest`, made at `at` (unix ms).
pub(crate) fn record(app: &str, digest: &Digest, at: u64) -> StagingRecord {
    StagingRecord {
        app: AppId::parse(app).unwrap(),
        staging_id: StagingId::new(at),
        source: format!("registry.example/{app}:v1"),
        repository: format!("apps/{app}"),
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        platforms: Vec::new(),
        metadata: RunMetadata::default(),
        referrers: 0,
        warnings: Vec::new(),
        bytes_downloaded: 10,
        bytes_reused: 0,
        blobs_downloaded: 1,
        blobs_reused: 0,
        seconds: 0.1,
        created_ms: at,
    }
}

/// Every page of a listing, following `next` from page to page.
async fn all_pages(store: &Store, apps: bool, prefix: &str, n: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (items, next) = if apps {
            let p = store.apps_page(prefix, after.as_deref(), n).await.unwrap();
            (p.items.iter().map(|s| s.current().app.to_string()).collect(), p.next)
        } else {
            let p = store.repositories_page(prefix, after.as_deref(), n).await.unwrap();
            (p.items, p.next)
        };
        pages.push(items);
        match next {
            Some(n) => after = Some(n),
            None => return pages,
        }
    }
}

async fn console_lists_page_by_page(backend: Backend) {
    let (open, _dir) = opener(backend);
    let store = open();
    let data = b"layer".to_vec();
    let d = Digest::of(Algorithm::Sha256, &data);
    store.put_blob(&d, futures::stream::iter([Ok(bytes::Bytes::from(data))])).await.unwrap();
    for name in ["lib", "lib/nginx", "a-c", "a/b", "apps/x2", "apps/x1", "team/web/api"] {
        store.link_blob(&RepoName::parse(name).unwrap(), &d).await.unwrap();
    }
    let pages = all_pages(&store, false, "", 2).await;
    assert_eq!(
        pages,
        [vec!["a/b", "a-c"], vec!["apps/x1", "apps/x2"], vec!["lib", "lib/nginx"], vec!["team/web/api"]],
        "by path component, a folder before what it holds, two a page"
    );
    assert_eq!(all_pages(&store, false, "lib/", 50).await, [vec!["lib/nginx"]]);
    assert_eq!(all_pages(&store, false, "apps/x", 1).await, [vec!["apps/x1"], vec!["apps/x2"]]);

    for (i, app) in ["shop-1", "web", "shop-3", "shop-2", "gone"].iter().enumerate() {
        store.record_staging(&record(app, &d, 1_790_000_000_000 + i as u64)).await.unwrap();
    }
    store.unpin_app(&AppId::parse("gone").unwrap()).await.unwrap();
    assert_eq!(all_pages(&store, true, "", 2).await, [vec!["shop-1", "shop-2"], vec!["shop-3", "web"]], "unpinned apps are gone");
    assert_eq!(all_pages(&store, true, "shop-", 50).await, [vec!["shop-1", "shop-2", "shop-3"]]);
    assert!(all_pages(&store, true, "nothing", 50).await[0].is_empty());

    let usage = store.usage().await.unwrap();
    assert_eq!((usage.apps, usage.stagings, usage.blobs), (4, 4, 1));
    assert_eq!(usage.recent.first().map(|r| r.app.to_string()), Some("shop-2".to_string()), "newest first");
}
testkit::both_backends!(console_lists_page_by_page, multi_thread);

async fn collections_are_recorded(backend: Backend) {
    let (open, _dir) = opener(backend);
    let store = open();
    store.collect_garbage(&GcOptions { dry_run: true, ..GcOptions::default() }).await.unwrap();
    assert!(store.gc_history(10).await.unwrap().is_empty(), "a dry run is not history");
    store.collect_garbage(&GcOptions::default()).await.unwrap();
    store.collect_garbage(&GcOptions::default()).await.unwrap();
    let runs = open().gc_history(10).await.unwrap();
    assert_eq!(runs.len(), 2, "every replica sees the runs");
    assert!(runs[0].ended_ms >= runs[1].ended_ms, "newest first");
}
testkit::both_backends!(collections_are_recorded, multi_thread);
