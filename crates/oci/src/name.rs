//! Repository names, tags and the `<reference>` of a manifest URL (a tag or a digest).

use std::fmt;

use crate::{Algorithm, Digest, ParseError};

/// Longest repository name accepted; clients limit `host/name` to 255 characters.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name that matches the distribution spec's grammar:
/// components of `[a-z0-9]+` joined by `.`, `_`, `__` or `-+`, separated by `/`.
/// No component can be empty, `.`/`..`, or start with `_`, so a name can never escape its
/// storage prefix nor collide with the store's `_manifests`/`_layers` folders.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Parses and checks a repository name.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Name { input: input.to_string(), reason };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.len() > MAX_NAME_LEN {
            return Err(bad("longer than 255 characters"));
        }
        for component in input.split('/') {
            check_component(component).map_err(bad)?;
        }
        Ok(RepoName(input.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() {
        return Err("empty path component");
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("components must start and end with [a-z0-9]");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err("only lowercase letters, digits and the separators '.', '_', '__', '-' are allowed");
        }
    }
    Ok(())
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses and checks a tag.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let b = input.as_bytes();
        let first_ok = b.first().is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_');
        let rest_ok = b.iter().skip(1).all(|&x| x.is_ascii_alphanumeric() || b"._-".contains(&x));
        if !first_ok || !rest_ok || b.len() > 128 {
            return Err(ParseError::Tag { input: input.to_string() });
        }
        Ok(Tag(input.to_string()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// cosign's tag suffixes: signatures, attestations, SBOMs.
pub const COSIGN_TAG_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// The tag schema that registries without the referrers API, cosign and the policy engines
/// built on it use to find what refers to a digest: `<alg>-<hex>` (the OCI 1.1 fallback, an
/// index of referrers) and cosign's `<alg>-<hex>.sig`, `.att` and `.sbom`. Both the stager
/// (which copies such tags) and the collector (which must not keep them as roots) read it.
impl Tag {
    /// `<alg>-<hex>` for `subject`, the hex cut to 64 characters as the schema says (so a
    /// sha512 subject still makes a valid tag).
    pub fn schema_base(subject: &Digest) -> String {
        let hex = subject.hex();
        format!("{}-{}", subject.algorithm().as_str(), &hex[..hex.len().min(64)])
    }

    /// The schema's tag for `subject`, with a cosign suffix (`sig`, `att`, `sbom`) or none.
    pub fn for_subject(subject: &Digest, suffix: Option<&str>) -> Result<Tag, ParseError> {
        let base = Tag::schema_base(subject);
        match suffix {
            Some(s) => Tag::parse(&format!("{base}.{s}")),
            None => Tag::parse(&base),
        }
    }

    /// When the tag follows the schema, the `<alg>-<hex>` it names (what
    /// [`Tag::schema_base`] makes of the subject).
    pub fn schema_subject(&self) -> Option<&str> {
        let base = match self.0.rsplit_once('.') {
            Some((base, suffix)) if COSIGN_TAG_SUFFIXES.contains(&suffix) => base,
            Some(_) => return None,
            None => self.0.as_str(),
        };
        let (alg, hex) = base.split_once('-')?;
        let hex_ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (Algorithm::parse(alg).is_ok() && hex_ok).then_some(base)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The `<reference>` in `/v2/<name>/manifests/<reference>`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference with a `:` is a digest, anything else a tag.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.contains(':') {
            Digest::parse(input).map(Reference::Digest)
        } else {
            Tag::parse(input).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_spec_names() {
        for ok in ["a", "library/redis", "a.b_c__d---e/f0", "x/y/z", &"a".repeat(255)] {
            RepoName::parse(ok).unwrap();
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "a/./b",
            "_a",
            "a_",
            "a___b",
            "a/_manifests",
            "a.-b",
            "a b",
            "a%2fb",
            &"a".repeat(256),
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tags() {
        Tag::parse("latest").unwrap();
        Tag::parse("_x.Y-1").unwrap();
        Tag::parse(&"t".repeat(128)).unwrap();
        for bad in ["", ".x", "-x", "a:b", "a/b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("v1").unwrap(), Reference::Tag(_)));
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert!(matches!(Reference::parse(d).unwrap(), Reference::Digest(_)));
        assert!(Reference::parse("sha256:nothex").is_err());
    }

    #[test]
    fn schema_tags_name_their_subject() {
        let d = Digest::parse("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a").unwrap();
        let base = "sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(Tag::schema_base(&d), base);
        for suffix in [None, Some("sig"), Some("att"), Some("sbom")] {
            let t = Tag::for_subject(&d, suffix).unwrap();
            assert_eq!(t.schema_subject(), Some(base), "{t}");
        }
        let long = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        let t = Tag::for_subject(&long, Some("sig")).unwrap();
        assert_eq!(t.as_str(), format!("sha512-{}.sig", "ab".repeat(32)));
        assert_eq!(t.schema_subject(), Some(Tag::schema_base(&long).as_str()));
        for other in ["v1", "latest.sig", &format!("{base}.txt"), &format!("md5-{}", &base[7..]), &base[..70], &base.to_uppercase()] {
            assert_eq!(Tag::parse(other).unwrap().schema_subject(), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn valid_names_never_traverse(s in "[a-z0-9._/-]{1,40}") {
            if let Ok(n) = RepoName::parse(&s) {
                prop_assert!(n.as_str().split('/').all(|c| c != "." && c != ".." && !c.is_empty() && !c.starts_with('_')));
            }
        }

        #[test]
        fn generated_valid_names_parse(parts in proptest::collection::vec("[a-z0-9]{1,5}([._-][a-z0-9]{1,5}){0,2}", 1..5)) {
            let name = parts.join("/");
            prop_assert!(RepoName::parse(&name).is_ok(), "{}", name);
        }

        #[test]
        fn reference_never_panics(s in ".{0,150}") {
            let _ = Reference::parse(&s);
        }
    }
}
