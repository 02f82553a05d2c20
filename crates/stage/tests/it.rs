//! The staging engine's own behaviour that needs no network: how its errors read and what
//! they say about a failure (is it a lost race with garbage collection? whose fault is it?),
//! through a download shared by several stagings too, and the progress events' wire form
//! that the NDJSON stream and the CLI depend on.

use std::sync::Arc;

use oci::{Algorithm, Digest};
use stage::{Event, StageError};
use store::StoreError;
use upstream::UpstreamError;

fn digest(seed: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, seed)
}

/// The same failure as a download shared by `depth` nested sets of waiters sees it.
fn shared(e: StageError, depth: usize) -> StageError {
    (0..depth).fold(e, |e, _| StageError::Shared(Arc::new(e)))
}

#[test]
fn a_blob_removed_by_a_collection_is_a_gc_race_even_through_a_shared_download() {
    for race in [StoreError::BeingCollected(digest(b"a")), StoreError::BlobUnknown(digest(b"b"))] {
        let what = race.to_string();
        for depth in 0..3 {
            assert!(shared(StageError::Store(race_copy(&race)), depth).is_gc_race(), "{what} behind {depth} shared downloads");
        }
    }
    let not_races = [
        StageError::Store(StoreError::Config("bad bucket".into())),
        StageError::Corrupt { what: "blob x".into(), detail: "hash".into() },
        StageError::Upstream(UpstreamError::Timeout { registry: "r.example".into(), detail: "no byte".into() }),
        StageError::NoPlatform { image: "i".into(), wanted: "linux/s390x".into(), available: "linux/amd64".into() },
    ];
    for e in not_races {
        let what = e.to_string();
        assert!(!shared(e, 1).is_gc_race(), "{what} is not a race with a collection");
    }
}

/// `StoreError` is not `Clone`; the two variants the races are made of are easy to rebuild.
fn race_copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::BeingCollected(d) => StoreError::BeingCollected(d.clone()),
        StoreError::BlobUnknown(d) => StoreError::BlobUnknown(d.clone()),
        other => panic!("not a race: {other}"),
    }
}

#[test]
fn cause_looks_through_shared_downloads_to_the_original_error() {
    let e = shared(StageError::Upstream(UpstreamError::NotFound { registry: "r.example".into(), what: "tag v9".into() }), 3);
    assert!(matches!(e.cause(), StageError::Upstream(UpstreamError::NotFound { what, .. }) if what == "tag v9"), "{:?}", e.cause());
    // Every waiter shows the original message, not a wrapper's.
    assert_eq!(e.to_string(), e.cause().to_string());
    let plain = StageError::Unusable { image: "i".into(), reason: "no config".into() };
    assert!(std::ptr::eq(plain.cause(), &plain), "an error that is not shared is its own cause");
}

#[test]
fn an_upstream_failure_while_streaming_into_the_store_stays_the_upstreams_fault() {
    let up = UpstreamError::Timeout { registry: "r.example".into(), detail: "no byte for 30 s".into() };
    let streamed = StoreError::Body(std::io::Error::other(up));
    match StageError::from(streamed) {
        StageError::Upstream(UpstreamError::Timeout { registry, .. }) => assert_eq!(registry, "r.example"),
        other => panic!("an upstream timeout became {other:?}"),
    }

    // A transfer that failed for another reason is still the upstream's, and says why.
    let cut = StoreError::Body(std::io::Error::other("connection reset"));
    match StageError::from(cut) {
        StageError::Upstream(UpstreamError::Unreachable { detail, .. }) => assert!(detail.contains("connection reset"), "{detail}"),
        other => panic!("a cut transfer became {other:?}"),
    }
    let bare = StoreError::Body(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    assert!(matches!(StageError::from(bare), StageError::Upstream(UpstreamError::Unreachable { .. })));
}

#[test]
fn bytes_that_do_not_hash_to_their_digest_are_corrupt_upstream_content() {
    let (expected, actual) = (digest(b"promised"), digest(b"received"));
    let e = StageError::from(StoreError::DigestMismatch { expected: expected.clone(), actual: actual.clone() });
    assert!(matches!(e, StageError::Corrupt { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains(&expected.to_string()) && message.contains(&actual.to_string()), "{message}");
    // Other store failures stay the store's.
    let e = StageError::from(StoreError::BeingCollected(expected));
    assert!(matches!(e, StageError::Store(StoreError::BeingCollected(_))) && e.is_gc_race(), "{e:?}");
}

#[test]
fn progress_events_have_the_wire_form_clients_read() {
    let d = digest(b"layer");
    let events = [
        (Event::Planned { digest: d.clone(), download: 3, reuse: 1 }, r#"{"event":"planned","digest":"D","download":3,"reuse":1}"#),
        (Event::BlobStarted { digest: d.clone(), size: 10 }, r#"{"event":"blob_started","digest":"D","size":10}"#),
        (Event::BlobProgress { digest: d.clone(), bytes: 5 }, r#"{"event":"blob_progress","digest":"D","bytes":5}"#),
        (Event::BlobDone { digest: d.clone(), size: 10 }, r#"{"event":"blob_done","digest":"D","size":10}"#),
        (Event::BlobReused { digest: d.clone(), size: 10 }, r#"{"event":"blob_reused","digest":"D","size":10}"#),
    ];
    for (event, wire) in events {
        let wire = wire.replace('D', &d.to_string());
        assert_eq!(serde_json::to_string(&event).unwrap(), wire);
        let back: Event = serde_json::from_str(&wire).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), wire, "read back");
    }
    assert!(serde_json::from_str::<Event>(r#"{"event":"blob_exploded","digest":"x"}"#).is_err(), "an unknown event is refused");
}
