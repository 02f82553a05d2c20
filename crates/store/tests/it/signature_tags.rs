//! An app's copies of its upstream's signature tags (the tag schema's `<alg>-<hex>.sig`,
//! which cosign and Kyverno look up) live and die with the pin: a collection keeps what they
//! name while the image they name is pinned, and never keeps it alive after an unpin, even
//! when the tags outlived the unpin (a staging that committed while the app was unpinned).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use oci::{Algorithm, AppId, Digest, Tag};
use store::{GcOptions, Store};
use testkit::Backend;

use crate::listing::record;
use crate::opener;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Stores `payload` as a blob of `app` and a manifest whose one layer it is; the manifest's
/// digest.
pub(crate) async fn manifest_over(store: &Store, app: &AppId, payload: &[u8]) -> Digest {
    let repo = app.repository();
    let d = Digest::of(Algorithm::Sha256, payload);
    store.put_blob(&d, futures::stream::iter([Ok(Bytes::copy_from_slice(payload))])).await.unwrap();
    store.link_blob(&repo, &d).await.unwrap();
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{d}","size":{}}},"layers":[]}}"#,
        payload.len()
    );
    let md = Digest::of(Algorithm::Sha256, m.as_bytes());
    store.put_manifest(&repo, &md, MANIFEST, Bytes::from(m), None).await.unwrap();
    md
}

async fn signature_tags_never_keep_an_unpinned_app_alive(backend: Backend) {
    let (open, _dir) = opener(backend);
    let store = open();
    let app = AppId::parse("signed").unwrap();
    let repo = app.repository();
    let image = manifest_over(&store, &app, b"the image").await;
    // A signature without `subject` nor referrer entry, as cosign writes it: only its tag
    // can reach it.
    let payload = Digest::of(Algorithm::Sha256, b"its signature");
    let sig = manifest_over(&store, &app, b"its signature").await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    store.record_staging(&record("signed", &image, now)).await.unwrap();
    let tag = Tag::for_subject(&image, Some("sig")).unwrap();
    store.pin_schema_tags(&app, &[(tag.clone(), sig.clone())]).await.unwrap();
    // No grace; the writes' protections older than the second of slack S3's whole-second
    // times get.
    let opts = GcOptions { grace: Duration::ZERO, protect_window: Duration::ZERO, ..Default::default() };
    std::thread::sleep(Duration::from_millis(2500));

    store.collect_garbage(&opts).await.unwrap();
    let store = open();
    assert_eq!(store.resolve_tag(&repo, &tag).await.unwrap(), Some(sig.clone()), "the pinned image's signature tag");
    assert!(store.manifest(&repo, &sig).await.unwrap().is_some(), "the signature of a pinned image was collected");
    assert!(store.blob_size(&payload).await.unwrap().is_some());

    // An unpin removes the tag at once. A staging that committed while the app was being
    // unpinned writes its tags after the unpin: they must not keep the signature alive.
    store.unpin_app(&app).await.unwrap();
    assert_eq!(open().resolve_tag(&repo, &tag).await.unwrap(), None, "unpinning left the signature tag");
    store.pin_schema_tags(&app, &[(tag.clone(), sig.clone())]).await.unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let report = store.collect_garbage(&opts).await.unwrap();
    let store = open();
    assert_eq!(store.resolve_tag(&repo, &tag).await.unwrap(), None, "a collection kept the tag of an unpinned app");
    assert!(store.manifest(&repo, &sig).await.unwrap().is_none(), "{report:?}");
    for d in [&sig, &payload, &image] {
        assert_eq!(store.blob_size(d).await.unwrap(), None, "{d} outlived the pin: {report:?}");
    }
}
testkit::both_backends!(signature_tags_never_keep_an_unpinned_app_alive, multi_thread);

async fn a_staging_replaces_the_previous_ones_signature_tags(backend: Backend) {
    let (open, _dir) = opener(backend);
    let store = open();
    let app = AppId::parse("resigned").unwrap();
    let repo = app.repository();
    let (first, second) = (manifest_over(&store, &app, b"first").await, manifest_over(&store, &app, b"second").await);
    let (sig1, sig2) = (manifest_over(&store, &app, b"sig 1").await, manifest_over(&store, &app, b"sig 2").await);
    let t1 = Tag::for_subject(&first, Some("sig")).unwrap();
    let t2 = Tag::for_subject(&second, Some("sig")).unwrap();
    let v1 = Tag::parse("v1").unwrap();
    store.set_tag(&repo, &v1, &first).await.unwrap();
    store.pin_schema_tags(&app, &[(t1.clone(), sig1)]).await.unwrap();
    store.pin_schema_tags(&app, &[(t2.clone(), sig2.clone())]).await.unwrap();
    let store = open();
    assert_eq!(store.tags(&repo).await.unwrap().unwrap(), vec![t2.clone(), v1], "the first image's tag replaced, others kept");
    assert_eq!(store.resolve_tag(&repo, &t2).await.unwrap(), Some(sig2));
}
testkit::both_backends!(a_staging_replaces_the_previous_ones_signature_tags, multi_thread);
