//! The NDJSON progress stream of a staging (`accept: application/x-ndjson`): a plan, then
//! the events of every blob, then exactly one outcome, last.

use std::collections::BTreeSet;

use serde_json::json;
use server::mgmt::types::{StagingLine, StagingOutcome, StagingProgress};

use super::images::{expected_metadata, image, layer};
use super::upstream::{Mode, Upstream};
use super::{layout, Wharf};
use crate::fixtures::{Rng, OCI_MANIFEST};
use crate::skopeo::Skopeo;

#[test]
fn ndjson_progress_stream() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let wharf = Wharf::for_hosts(&[up.host()]);
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(306);
    let big = layer(&mut l, &mut rng, "big.bin", 3_500_000);
    let small = layer(&mut l, &mut rng, "small.bin", 20_000);
    let img = image(&mut l, "amd64", &[&big, &small]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&skopeo, &l, "v1", "stream/app");
    let source = format!("{}/stream/app:v1", up.host());
    let ndjson = [("accept", "application/x-ndjson")];

    let r = wharf.stage_with(&source, "streamed", json!({}), &ndjson).expect(200, "a streamed staging");
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let (events, outcome) = lines(&r.text());
    let StagingOutcome::Result(last) = &outcome else { panic!("the stream ends with the result: {events:#?} {outcome:?}") };
    assert_eq!(last.record.digest.to_string(), img.digest);
    assert_eq!(last.image, format!("{}/apps/streamed@{}", wharf.host(), img.digest));
    assert_eq!(last.record.metadata, expected_metadata("amd64"));
    assert_eq!(last.record.blobs_downloaded, 3);
    let planned: Vec<u64> =
        events.iter().filter_map(|e| if let StagingProgress::Planned { download, .. } = e { Some(*download) } else { None }).collect();
    assert_eq!(planned, [3], "one plan, three downloads: {events:#?}");
    for d in &img.blob_digests()[1..] {
        let size = l.blobs[d].len() as u64;
        let of: Vec<&StagingProgress> = events.iter().filter(|e| blob_of(e).is_some_and(|b| b.to_string() == *d)).collect();
        let kinds: Vec<&str> = of.iter().map(|e| kind(e)).collect();
        assert!(matches!(of.first(), Some(StagingProgress::BlobStarted { size: s, .. }) if *s == size), "{d}: {of:?}");
        assert!(matches!(of.last(), Some(StagingProgress::BlobDone { size: s, .. }) if *s == size), "{d}: {of:?}");
        let progress: Vec<u64> =
            of.iter().filter_map(|e| if let StagingProgress::BlobProgress { bytes, .. } = e { Some(*bytes) } else { None }).collect();
        assert!(progress.windows(2).all(|w| w[0] < w[1]) && progress.iter().all(|b| *b <= size), "{d}: {progress:?}");
        if *d == big.digest {
            assert!(progress.len() >= 2, "a 3.5 MB blob reports its progress: {kinds:?}");
        }
    }
    let recorded = wharf.app_detail("streamed");
    assert_eq!(recorded.current.record.staging_id, last.record.staging_id);

    // Everything stored: every blob is reported reused.
    let r = wharf.stage_with(&source, "streamed-again", json!({}), &ndjson).expect(200, "a second streamed staging");
    let (events, outcome) = lines(&r.text());
    let reused: BTreeSet<String> = events
        .iter()
        .filter_map(|e| if let StagingProgress::BlobReused { digest, .. } = e { Some(digest.to_string()) } else { None })
        .collect();
    let expected: BTreeSet<String> = img.blob_digests()[1..].iter().cloned().collect();
    assert_eq!(reused, expected, "{events:#?}");
    assert!(events.iter().all(|e| !matches!(e, StagingProgress::BlobStarted { .. })), "{events:#?}");
    assert!(matches!(outcome, StagingOutcome::Result(_)), "{outcome:?}");

    // A failure ends the stream with an error event carrying the status a plain request gets.
    let r = wharf.stage_with(&format!("{}/stream/app:missing", up.host()), "streamed-missing", json!({}), &ndjson);
    let (events, outcome) = lines(&r.text());
    let StagingOutcome::Error(last) = outcome else { panic!("the stream ends with an error: {events:#?} {outcome:?}") };
    assert_eq!(last.status, 404, "{last:?}");
    assert!(last.message.contains("missing"), "{last:?}");
}

/// The blob a progress event is about (`None` for the plan and warnings).
fn blob_of(e: &StagingProgress) -> Option<&oci::Digest> {
    match e {
        StagingProgress::Planned { .. } | StagingProgress::Warning { .. } => None,
        StagingProgress::BlobStarted { digest, .. }
        | StagingProgress::BlobProgress { digest, .. }
        | StagingProgress::BlobDone { digest, .. }
        | StagingProgress::BlobReused { digest, .. } => Some(digest),
    }
}

/// A progress event's name on the wire, for messages.
fn kind(e: &StagingProgress) -> &'static str {
    match e {
        StagingProgress::Planned { .. } => "planned",
        StagingProgress::BlobStarted { .. } => "blob_started",
        StagingProgress::BlobProgress { .. } => "blob_progress",
        StagingProgress::BlobDone { .. } => "blob_done",
        StagingProgress::BlobReused { .. } => "blob_reused",
        StagingProgress::Warning { .. } => "warning",
    }
}

/// Parses an NDJSON body into the API's own line type: progress events, then exactly one
/// outcome, last.
#[track_caller]
fn lines(text: &str) -> (Vec<StagingProgress>, StagingOutcome) {
    assert!(text.ends_with('\n'), "NDJSON ends every line with a newline: {text:?}");
    let mut events = Vec::new();
    let mut outcome = None;
    for l in text.lines() {
        let line: StagingLine = serde_json::from_str(l).unwrap_or_else(|e| panic!("not a staging line ({e}): {l}"));
        assert!(outcome.is_none(), "a line after the outcome: {l}");
        match line {
            StagingLine::Progress(p) => events.push(p),
            StagingLine::Outcome(o) => outcome = Some(o),
        }
    }
    let outcome = outcome.unwrap_or_else(|| panic!("the stream has no outcome: {text}"));
    (events, outcome)
}
