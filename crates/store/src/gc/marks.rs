//! What a collection remembers per blob, in as few bytes as it can: the marks of what is
//! live and the fingerprints of what was listed.
//!
//! Why: a collection holds these for its whole run, so their size per blob is what bounds
//! the stores it can collect. A blob's mark is its digest's *fingerprint* (8 bytes) and why
//! it is kept (8 bytes), in a sorted vector; a live layer link is the fingerprint of its
//! repository and digest (8 bytes). The vectors are sorted and deduplicated in place when
//! full, then grow by a quarter, not double: a store of a million live blobs would otherwise
//! hold a mark per image using a blob, up to twice that in spare capacity, and a stable
//! sort's scratch of half of them on top. Two digests sharing a fingerprint (for sha256, the first
//! 64 bits of two random hashes: about one chance in 10^8 for a store of a million blobs)
//! only make a collection keep an unreferenced blob or link it would otherwise remove; a
//! fingerprint never makes it remove anything, because removal needs the exact digest,
//! which only the listings give.

use std::hash::{Hash, Hasher};

use oci::CompactDigest;

use super::{KeptBy, Why};

/// A digest's fingerprint: for sha256 its first 64 bits (already uniformly random), for
/// other algorithms a hash of the digest.
pub(super) fn fingerprint(d: &CompactDigest) -> u64 {
    match d {
        CompactDigest::Sha256(raw) => {
            let mut first = [0u8; 8];
            first.copy_from_slice(&raw[..8]);
            u64::from_le_bytes(first)
        }
        CompactDigest::Other(d) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            d.to_string().hash(&mut h);
            h.finish()
        }
    }
}

/// A layer link's fingerprint: its digest's, mixed with its repository's index.
pub(super) fn link_fingerprint(repo: usize, d: &CompactDigest) -> u64 {
    fingerprint(d) ^ (repo as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// [`Why`] in 8 bytes: the reason in the low 3 bits, `until_ms + 1` (0: none) above.
fn pack(why: Why) -> u64 {
    let by = match why.by {
        KeptBy::Tag => 0,
        KeptBy::App => 1,
        KeptBy::Mirror => 2,
        KeptBy::Grace => 3,
        KeptBy::Protected => 4,
    };
    why.until_ms.map_or(0, |t| t.saturating_add(1).min(u64::MAX >> 3)) << 3 | by
}

fn unpack(packed: u64) -> Why {
    let by = match packed & 7 {
        0 => KeptBy::Tag,
        1 => KeptBy::App,
        2 => KeptBy::Mirror,
        3 => KeptBy::Grace,
        _ => KeptBy::Protected,
    };
    Why { by, until_ms: (packed >> 3).checked_sub(1) }
}

/// Below this many entries a full vector just grows: compacting it would save little.
const COMPACT_FROM: usize = 1 << 16;

/// Pushes `x` into a vector whose entries `compact` sorts and dedups in place. A full vector
/// is compacted first (the same blob is marked once per image that uses it), then grown by a
/// quarter (glibc moves a large block with `mremap`, so the smaller steps cost no copying)
/// rather than doubled. The sorts cost about five sorts of the whole, a few tens of
/// milliseconds per million entries.
pub(super) fn push<T>(v: &mut Vec<T>, x: T, compact: impl FnOnce(&mut Vec<T>)) {
    if v.len() == v.capacity() && v.len() >= COMPACT_FROM {
        compact(v);
    }
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 4).max(1024));
    }
    v.push(x);
}

/// Orders a packed [`Why`] strongest first: by reason ([`KeptBy`]'s order), then the one that
/// expires last.
fn strength(packed: u64) -> (u64, std::cmp::Reverse<u64>) {
    (packed & 7, std::cmp::Reverse(packed >> 3))
}

/// Digests, each with why it is kept: of several reasons given for a digest the strongest
/// stays. Collected unsorted, then [`Self::seal`]ed for lookups.
#[derive(Default)]
pub(super) struct WhyMap {
    entries: Vec<(u64, u64)>,
    /// Entries before this index are sorted and distinct.
    sealed: usize,
}

impl WhyMap {
    pub(super) fn add(&mut self, d: &CompactDigest, why: Why) {
        let sealed = &mut self.sealed;
        push(&mut self.entries, (fingerprint(d), pack(why)), |v| {
            Self::compact(v);
            *sealed = v.len();
        });
    }

    /// Sorts and keeps each digest's strongest reason; call before [`Self::get`].
    pub(super) fn seal(&mut self) {
        Self::compact(&mut self.entries);
        self.entries.shrink_to_fit();
        self.sealed = self.entries.len();
    }

    /// Sorts, and keeps each digest's strongest reason: of equal fingerprints it comes first.
    fn compact(entries: &mut Vec<(u64, u64)>) {
        entries.sort_unstable_by_key(|&(fp, why)| (fp, strength(why)));
        entries.dedup_by_key(|(fp, _)| *fp);
    }

    /// Why `d` is kept, if it is (as of the last [`Self::seal`]).
    pub(super) fn get(&self, d: &CompactDigest) -> Option<Why> {
        let fp = fingerprint(d);
        let sealed = &self.entries[..self.sealed];
        sealed.binary_search_by_key(&fp, |(f, _)| *f).ok().map(|i| unpack(sealed[i].1))
    }

    /// Distinct digests (as of the last [`Self::seal`]).
    pub(super) fn len(&self) -> usize {
        self.sealed
    }
}

/// A set of fingerprints: collected unsorted, then [`Self::seal`]ed for lookups.
#[derive(Default)]
pub(super) struct Fingerprints(Vec<u64>);

impl Fingerprints {
    pub(super) fn add(&mut self, fp: u64) {
        push(&mut self.0, fp, Self::compact);
    }

    pub(super) fn seal(&mut self) {
        Self::compact(&mut self.0);
        self.0.shrink_to_fit();
    }

    fn compact(v: &mut Vec<u64>) {
        v.sort_unstable();
        v.dedup();
    }

    /// Whether `fp` was added (once sealed).
    pub(super) fn has(&self, fp: u64) -> bool {
        self.0.binary_search(&fp).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci::{Algorithm, Digest};
    use std::time::Duration;

    fn digest(s: &str) -> CompactDigest {
        CompactDigest::of(&Digest::of(Algorithm::Sha256, s.as_bytes()))
    }

    #[test]
    fn reasons_survive_packing() {
        for by in [KeptBy::Tag, KeptBy::App, KeptBy::Mirror, KeptBy::Grace, KeptBy::Protected] {
            for until_ms in [None, Some(0), Some(1_764_800_000_000)] {
                assert_eq!(unpack(pack(Why { by, until_ms })), Why { by, until_ms });
            }
        }
    }

    #[test]
    fn the_strongest_reason_stays() {
        let mut m = WhyMap::default();
        m.add(&digest("a"), Why::grace_until(7));
        m.add(&digest("b"), Why::grace_until(5));
        m.add(&digest("a"), Why::TAG);
        m.add(&digest("b"), Why::grace_until(9));
        m.add(&digest("b"), Why::protected(Duration::ZERO));
        m.seal();
        assert_eq!(m.get(&digest("a")), Some(Why::TAG));
        // Of two grace periods, the one that ends last.
        assert_eq!(m.get(&digest("b")), Some(Why::grace_until(9)));
        assert_eq!(m.get(&digest("c")), None);
        assert_eq!(m.len(), 2);
        // Added after a seal: seen after the next one.
        m.add(&digest("b"), Why::APP);
        m.add(&digest("c"), Why::APP);
        assert_eq!(m.get(&digest("c")), None);
        m.seal();
        assert_eq!(m.get(&digest("b")), Some(Why::APP));
        assert_eq!(m.get(&digest("c")), Some(Why::APP));
    }

    #[test]
    fn many_marks_grow_and_seal() {
        let mut m = WhyMap::default();
        let mut f = Fingerprints::default();
        // Past COMPACT_FROM, so the vectors are compacted on the way.
        for i in 0..100_000u32 {
            let d = digest(&i.to_string());
            m.add(&d, if i % 2 == 0 { Why::TAG } else { Why::grace_until(u64::from(i)) });
            m.add(&d, Why::grace_until(1));
            f.add(fingerprint(&d));
            f.add(fingerprint(&d));
        }
        // Compacted on the way: without it, 200,000 pushes each would be held.
        assert!(m.entries.capacity() < 150_000 && f.0.capacity() < 150_000, "{} {}", m.entries.capacity(), f.0.capacity());
        m.seal();
        f.seal();
        assert_eq!(m.len(), 100_000);
        assert!(m.entries.capacity() == m.len());
        for i in [0u32, 1, 4_999, 65_537, 99_999] {
            let d = digest(&i.to_string());
            let want = if i % 2 == 0 { Why::TAG } else { Why::grace_until(u64::from(i.max(1))) };
            assert_eq!(m.get(&d), Some(want));
            assert!(f.has(fingerprint(&d)));
        }
    }

    #[test]
    fn links_of_one_digest_in_two_repositories_differ() {
        let (a, b) = (digest("a"), digest("b"));
        let mut links = Fingerprints::default();
        links.add(link_fingerprint(0, &a));
        links.seal();
        assert!(links.has(link_fingerprint(0, &a)));
        assert!(!links.has(link_fingerprint(1, &a)));
        assert!(!links.has(link_fingerprint(0, &b)));
        let other = CompactDigest::of(&Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap());
        let mut listed = Fingerprints::default();
        listed.add(fingerprint(&other));
        listed.seal();
        assert!(listed.has(fingerprint(&other)) && !listed.has(fingerprint(&a)));
    }
}
