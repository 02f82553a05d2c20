//! `Range` (blob GET) and `Content-Range` (chunked upload PATCH) header parsing.

use std::ops::Range;

/// One byte range as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive)
    FromTo(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes
    Suffix(u64),
}

/// Parses a `Range` header. `Ok(None)` means "ignore it and send the whole blob" (several
/// ranges, or a unit other than bytes, which RFC 9110 lets a server ignore); `Err` means the
/// header is malformed.
pub fn parse_range(header: &str) -> Result<Option<ByteRange>, String> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let bad = || format!("malformed Range header {header:?}");
    let (a, b) = spec.trim().split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(bad()),
        (true, false) => Ok(Some(ByteRange::Suffix(num(b)?))),
        (false, true) => Ok(Some(ByteRange::From(num(a)?))),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(bad());
            }
            Ok(Some(ByteRange::FromTo(a, b)))
        }
    }
}

impl ByteRange {
    /// The half-open byte range of a blob of `size` bytes, or `None` when unsatisfiable.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::FromTo(a, b) if a < size => Some(a..b.saturating_add(1).min(size)),
            ByteRange::From(a) if a < size => Some(a..size),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Some(size.saturating_sub(n)..size),
            _ => None,
        }
    }
}

/// Parses an upload chunk's `Content-Range`: `a-b` as the spec writes it, also accepting the
/// `bytes a-b[/total]` and `bytes=a-b` forms some clients send. Returns the inclusive bounds.
pub fn parse_content_range(header: &str) -> Result<(u64, u64), String> {
    let bad = || format!("malformed Content-Range header {header:?}: expected <start>-<end>");
    let h = header.trim();
    let h = h.strip_prefix("bytes").map(|r| r.trim_start_matches([' ', '='])).unwrap_or(h);
    let h = h.split('/').next().unwrap_or(h);
    let (a, b) = h.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9").unwrap(), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-").unwrap(), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-3").unwrap(), Some(ByteRange::Suffix(3)));
        assert_eq!(parse_range("items=0-1").unwrap(), None);
        assert_eq!(parse_range("bytes=0-1,4-5").unwrap(), None);
        assert!(parse_range("bytes=x-1").is_err());
        assert!(parse_range("bytes=5-1").is_err());
        assert!(parse_range("bytes=-").is_err());
        assert_eq!(ByteRange::FromTo(0, 9).resolve(5), Some(0..5));
        assert_eq!(ByteRange::FromTo(5, 9).resolve(5), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some(7..10));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some(0..10));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99").unwrap(), (0, 99));
        assert_eq!(parse_content_range("bytes 100-199/*").unwrap(), (100, 199));
        assert_eq!(parse_content_range("bytes=100-199").unwrap(), (100, 199));
        assert!(parse_content_range("100").is_err());
        assert!(parse_content_range("9-1").is_err());
    }

    proptest! {
        #[test]
        fn resolved_ranges_are_inside_the_blob(a in 0u64..1000, b in 0u64..1000, size in 0u64..1000) {
            for r in [ByteRange::FromTo(a.min(b), a.max(b)), ByteRange::From(a), ByteRange::Suffix(b)] {
                if let Some(x) = r.resolve(size) {
                    prop_assert!(x.start < x.end && x.end <= size);
                }
            }
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_range(&s);
            let _ = parse_content_range(&s);
        }

        #[test]
        fn content_range_round_trip(a in 0u64..u64::MAX / 2, len in 0u64..1 << 40) {
            prop_assert_eq!(parse_content_range(&format!("{}-{}", a, a + len)).unwrap(), (a, a + len));
        }
    }
}
