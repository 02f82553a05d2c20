//! Big layers staged as parallel `Range` requests, through the fault-injecting proxy: the
//! ranges tile the layer exactly (its size no multiple of the range size) and run at once;
//! an upstream that ignores `Range` is read as one stream; a range cut midway resumes alone
//! from where it stopped. Every time the staged bytes are pulled back and compared.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::images::{image, layer};
use super::proxy::{Faults, Proxy};
use super::upstream::{Mode, Upstream};
use super::{insecure, layout, Wharf};
use crate::fixtures::{assert_same_blobs, subset, Image, Layout, Rng, OCI_MANIFEST};
use crate::skopeo::Skopeo;

/// The range size the tests configure: a 5.3 MB layer makes six ranges.
const RANGE: u64 = 1 << 20;

/// The first and last byte of a range, as `Range: bytes=FIRST-LAST` says.
type Span = (u64, u64);

/// An image of one big layer behind a proxy with `faults`, and a wharfage that stages with
/// 1 MiB ranges, 4 at a time.
struct Setup {
    skopeo: Skopeo,
    up: Upstream,
    proxy: Proxy,
    wharf: Wharf,
    layout: Layout,
    image: Image,
    /// The big layer's digest and size.
    digest: String,
    size: u64,
}

impl Setup {
    fn start(faults: Faults, seed: u64) -> Setup {
        let skopeo = Skopeo::new();
        let up = Upstream::start(Mode::Anonymous);
        let proxy = Proxy::start(up.port, faults);
        let mut args = insecure(&[proxy.host()]);
        args.extend(["--upstream-range-size", "1MiB", "--upstream-range-parallel", "4"].map(String::from));
        let wharf = Wharf::start(&args);
        let mut l = layout(&wharf.scratch("src"));
        let big = layer(&mut l, &mut Rng::new(seed), "big.bin", 5_300_000);
        let img = image(&mut l, "amd64", &[&big]);
        l.tag("v1", OCI_MANIFEST, &img.digest);
        up.push(&skopeo, &l, "v1", "ranged/app");
        let size = l.blobs[&big.digest].len() as u64;
        assert_ne!(size % RANGE, 0, "the layer must end inside a range");
        Setup { skopeo, up, proxy, wharf, layout: l, image: img, digest: big.digest, size }
    }

    /// Stages the image, then pulls it back and compares every blob with the original.
    fn stage_and_compare(&self, what: &str) {
        let r = self.wharf.stage_ok(&format!("{}/ranged/app:v1", self.proxy.host()), "ranged", json!({}));
        assert_eq!(r.record.digest.to_string(), self.image.digest);
        assert_eq!(r.record.blobs_downloaded, 2, "{r:?}");
        let pulled = self.wharf.pull(&self.skopeo, &r.image, "pulled");
        assert_same_blobs(&subset(&self.layout.blobs, &self.image.blob_digests()), &pulled, what);
    }

    /// The big layer's GETs that reached the proxy, as the `Range` each asked for
    /// (`None`: no `Range`), in the order they arrived.
    fn layer_gets(&self) -> Vec<Option<Span>> {
        let path = format!("/blobs/{} ", self.digest);
        self.proxy
            .heads()
            .iter()
            .filter(|h| h.starts_with("GET ") && h.lines().next().is_some_and(|l| l.contains(&path)))
            .map(|h| range_of(h))
            .collect()
    }
}

/// The `Range: bytes=FIRST-LAST` of a request head.
fn range_of(head: &str) -> Option<Span> {
    let v = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(str::to_string))?;
    let (first, last) = v.trim().split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// The ranges that tile `size` bytes, `RANGE` each but the last.
fn tiles(size: u64) -> Vec<Span> {
    (0..size.div_ceil(RANGE)).map(|i| (i * RANGE, ((i + 1) * RANGE).min(size) - 1)).collect()
}

#[test]
fn a_big_layer_is_fetched_as_parallel_ranges_that_tile_it_exactly() {
    // Every blob GET held a moment, so that ranges fetched in parallel overlap at the proxy.
    let s = Setup::start(Faults { delay_blobs: Some(Duration::from_millis(300)), ..Faults::default() }, 601);
    s.stage_and_compare("a layer staged by ranges");
    let mut gets: Vec<Span> = s.layer_gets().into_iter().map(|r| r.expect("every GET of the big layer is a range")).collect();
    gets.sort();
    assert_eq!(gets, tiles(s.size), "one request per range, the last ending at the layer's last byte ({} bytes)", s.size);
    assert!(s.proxy.max_concurrent_blob_gets() >= 3, "ranges in parallel: at most {} at once", s.proxy.max_concurrent_blob_gets());
    assert!(s.up.requests().iter().any(|q| q.status == 206), "the upstream answered ranges");
}

#[test]
fn an_upstream_that_ignores_range_is_read_as_one_stream() {
    let s = Setup::start(Faults { strip_range: true, ..Faults::default() }, 602);
    s.stage_and_compare("a layer from an upstream that ignores Range");
    // The first range was answered with the whole layer: nothing more was asked for.
    assert_eq!(s.layer_gets(), vec![Some((0, RANGE - 1))], "{:#?}", s.proxy.heads());
    assert_eq!(s.up.blob_gets(&s.digest), 1);
    assert!(s.up.requests().iter().all(|q| q.status != 206), "the upstream never saw a Range");
}

#[test]
fn a_range_cut_midway_is_resumed_alone_from_where_it_stopped() {
    // The first blob answer longer than 600 kB (a range: the config is smaller) is cut.
    let s = Setup::start(Faults { cut_after: Some(600_000), ..Faults::default() }, 603);
    s.stage_and_compare("a layer with a range cut midway");
    assert!(s.proxy.has_cut(), "the proxy never cut a range");
    let gets: Vec<Span> = s.layer_gets().into_iter().map(|r| r.expect("every GET of the big layer is a range")).collect();
    let tiles = tiles(s.size);
    let (aligned, resumed): (Vec<Span>, Vec<Span>) = gets.iter().partition(|r| r.0 % RANGE == 0);
    let mut counts = BTreeMap::new();
    for r in &aligned {
        *counts.entry(*r).or_insert(0) += 1;
    }
    assert_eq!(counts, tiles.iter().map(|t| (*t, 1)).collect::<BTreeMap<_, _>>(), "every range asked for once: {gets:?}");
    assert_eq!(resumed.len(), 1, "one resumed request: {gets:?}");
    let (first, last) = resumed[0];
    let cut = tiles.iter().find(|t| t.0 < first && first <= t.1).expect("the resume starts inside a range");
    assert_eq!(last, cut.1, "the resume asks for the rest of its range only: {gets:?}");
    // The proxy cut 600 000 bytes into the answer, headers included: the resume starts
    // after the body bytes received, not at the range's start.
    assert!(first - cut.0 > 500_000, "resumed at {first}, in the range from {}", cut.0);
}
