//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a streaming hasher for either.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::ParseError;

/// A digest algorithm the registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and storage keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parses an algorithm name; anything but sha256/sha512 is unsupported.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(ParseError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

/// A validated content digest. The hex part is always lowercase and of the algorithm's length,
/// so it is safe to use in storage keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Digest { input: input.to_string(), reason };
        let (alg, hex) = input.split_once(':').ok_or_else(|| bad("expected <algorithm>:<hex>"))?;
        if alg.is_empty() || !alg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)) {
            return Err(bad("malformed algorithm"));
        }
        let algorithm = Algorithm::parse(alg)?;
        if hex.len() != algorithm.hex_len() {
            return Err(bad("wrong hex length for the algorithm"));
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("hex part must be lowercase hexadecimal"));
        }
        Ok(Digest { algorithm, hex: hex.to_string() })
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = DigestHasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// A digest in as few bytes as it takes: 32 for sha256 (nearly every digest a registry holds),
/// the parsed digest otherwise. Garbage collection keeps sets of every live digest, and a
/// [`Digest`] costs a 64-character string on the heap besides its header; these cost 40
/// bytes each, with no allocation for sha256.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompactDigest {
    Sha256([u8; 32]),
    Other(Box<Digest>),
}

impl CompactDigest {
    /// The compact form of `d`.
    pub fn of(d: &Digest) -> Self {
        let mut raw = [0u8; 32];
        match d.algorithm {
            Algorithm::Sha256 if hex::decode_to_slice(&d.hex, &mut raw).is_ok() => CompactDigest::Sha256(raw),
            _ => CompactDigest::Other(Box::new(d.clone())),
        }
    }

    /// The digest again.
    pub fn digest(&self) -> Digest {
        match self {
            CompactDigest::Sha256(raw) => Digest { algorithm: Algorithm::Sha256, hex: hex::encode(raw) },
            CompactDigest::Other(d) => (**d).clone(),
        }
    }
}

impl From<&Digest> for CompactDigest {
    fn from(d: &Digest) -> Self {
        CompactDigest::of(d)
    }
}

impl fmt::Debug for CompactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.digest(), f)
    }
}

impl FromStr for Digest {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes a stream of bytes with one algorithm, in one pass, as they go by.
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            DigestHasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_digests_round_trip_and_take_40_bytes() {
        let sha256 = Digest::of(Algorithm::Sha256, b"layer");
        let sha512 = Digest::of(Algorithm::Sha512, b"layer");
        for d in [&sha256, &sha512] {
            assert_eq!(CompactDigest::of(d).digest(), *d);
        }
        assert!(matches!(CompactDigest::of(&sha256), CompactDigest::Sha256(_)));
        assert_ne!(CompactDigest::of(&sha256), CompactDigest::of(&Digest::of(Algorithm::Sha256, b"other")));
        assert_eq!(std::mem::size_of::<CompactDigest>(), 40);
    }

    #[test]
    fn known_digest_of_empty_json() {
        let d = Digest::of(Algorithm::Sha256, b"{}");
        assert_eq!(d.to_string(), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn rejects_bad_digests_with_reason() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000000",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
        let err = Digest::parse("md5:abcd").unwrap_err();
        assert!(err.to_string().contains("md5"));
    }

    #[test]
    fn sha512_round_trip() {
        let d = Digest::of(Algorithm::Sha512, b"hello");
        assert_eq!(d.hex().len(), 128);
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    proptest! {
        #[test]
        fn parse_display_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64), sha512 in any::<bool>()) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let d = Digest::of(alg, &bytes);
            prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = Digest::parse(&s);
        }

        #[test]
        fn accepted_digests_are_key_safe(s in "sha(256|512):[0-9a-f./]{60,130}") {
            if let Ok(d) = Digest::parse(&s) {
                prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
}
