//! The typed route parser: every `/v2/` URL the registry answers, parsed in one place.
//! Repository names contain slashes, so routes are matched from the end of the path.

use oci::{Digest, ParseError, Reference, RepoName};
use percent_encoding::percent_decode_str;
use store::UploadId;

/// A parsed `/v2/` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// Why a path is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not a registry URL at all.
    NotFound,
    /// The shape is right but a part is invalid (bad name, digest, tag).
    Invalid(ParseError),
    /// An upload id we could not have issued.
    UnknownUpload(String),
}

impl From<ParseError> for RouteError {
    fn from(e: ParseError) -> Self {
        RouteError::Invalid(e)
    }
}

impl Endpoint {
    /// The same endpoint in repository `repo` (a mirrored name); endpoints of no repository
    /// are unchanged.
    pub fn with_repository(self, repo: RepoName) -> Self {
        match self {
            Endpoint::Tags(_) => Endpoint::Tags(repo),
            Endpoint::Manifest(_, r) => Endpoint::Manifest(repo, r),
            Endpoint::Blob(_, d) => Endpoint::Blob(repo, d),
            Endpoint::UploadStart(_) => Endpoint::UploadStart(repo),
            Endpoint::Upload(_, id) => Endpoint::Upload(repo, id),
            Endpoint::Referrers(_, d) => Endpoint::Referrers(repo, d),
            other => other,
        }
    }

    /// Parses the path of a request URL (without the query string).
    pub fn parse(path: &str) -> Result<Self, RouteError> {
        let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
        if rest.is_empty() || rest == "/" {
            return Ok(Endpoint::Base);
        }
        let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let decoded;
        let rest = if rest.contains('%') {
            decoded = percent_decode_str(rest).decode_utf8().map_err(|_| RouteError::NotFound)?;
            decoded.as_ref()
        } else {
            rest
        };
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let name = |k: usize| -> Result<RepoName, RouteError> {
            if n <= k {
                return Err(RouteError::NotFound);
            }
            Ok(RepoName::parse(&segs[..n - k].join("/"))?)
        };
        let tail = |i: usize| segs.get(n.wrapping_sub(i)).copied().unwrap_or("");
        match (tail(3), tail(2), tail(1)) {
            (_, "tags", "list") => Ok(Endpoint::Tags(name(2)?)),
            ("blobs", "uploads", "") => Ok(Endpoint::UploadStart(name(3)?)),
            ("blobs", "uploads", id) => {
                let repo = name(3)?;
                let id = UploadId::parse(id).ok_or_else(|| RouteError::UnknownUpload(id.to_string()))?;
                Ok(Endpoint::Upload(repo, id))
            }
            (_, "blobs", "uploads") => Ok(Endpoint::UploadStart(name(2)?)),
            (_, "manifests", r) if !r.is_empty() => Ok(Endpoint::Manifest(name(2)?, Reference::parse(r)?)),
            (_, "blobs", d) if !d.is_empty() => Ok(Endpoint::Blob(name(2)?, Digest::parse(d)?)),
            (_, "referrers", d) if !d.is_empty() => Ok(Endpoint::Referrers(name(2)?, Digest::parse(d)?)),
            _ => Err(RouteError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(Endpoint::parse("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(Endpoint::parse("/v2").unwrap(), Endpoint::Base);
        assert_eq!(Endpoint::parse("/v2/_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(Endpoint::parse("/v2/a/b/tags/list").unwrap(), Endpoint::Tags(name("a/b")));
        assert_eq!(Endpoint::parse("/v2/a/manifests/latest").unwrap(), Endpoint::Manifest(name("a"), Reference::parse("latest").unwrap()));
        assert_eq!(Endpoint::parse(&format!("/v2/x/blobs/{D}")).unwrap(), Endpoint::Blob(name("x"), Digest::parse(D).unwrap()));
        assert_eq!(
            Endpoint::parse(&format!("/v2/x/blobs/sha256%3A{}", &D[7..])).unwrap(),
            Endpoint::Blob(name("x"), Digest::parse(D).unwrap())
        );
        assert_eq!(Endpoint::parse("/v2/x/y/blobs/uploads/").unwrap(), Endpoint::UploadStart(name("x/y")));
        assert_eq!(Endpoint::parse("/v2/x/y/blobs/uploads").unwrap(), Endpoint::UploadStart(name("x/y")));
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            Endpoint::parse(&format!("/v2/x/blobs/uploads/{id}")).unwrap(),
            Endpoint::Upload(name("x"), UploadId::parse(id).unwrap())
        );
        assert_eq!(Endpoint::parse(&format!("/v2/r/referrers/{D}")).unwrap(), Endpoint::Referrers(name("r"), Digest::parse(D).unwrap()));
        // Names may contain route words as components.
        assert_eq!(
            Endpoint::parse("/v2/manifests/manifests/v1").unwrap(),
            Endpoint::Manifest(name("manifests"), Reference::parse("v1").unwrap())
        );
        assert_eq!(Endpoint::parse("/v2/tags/list/tags/list").unwrap(), Endpoint::Tags(name("tags/list")));
    }

    #[test]
    fn rejects() {
        assert_eq!(Endpoint::parse("/v3/"), Err(RouteError::NotFound));
        assert_eq!(Endpoint::parse("/v2/manifests/latest"), Err(RouteError::NotFound));
        assert_eq!(Endpoint::parse("/v2/a/unknown/x"), Err(RouteError::NotFound));
        assert!(matches!(Endpoint::parse("/v2/../etc/manifests/x"), Err(RouteError::Invalid(_))));
        assert!(matches!(Endpoint::parse("/v2/A/manifests/x"), Err(RouteError::Invalid(_))));
        assert!(matches!(Endpoint::parse("/v2/a/blobs/sha256:zz"), Err(RouteError::Invalid(_))));
        // Escapes are decoded before splitting, so this is no upload route at all.
        assert_eq!(Endpoint::parse("/v2/a/blobs/uploads/..%2f..%2fetc"), Err(RouteError::NotFound));
        assert!(matches!(Endpoint::parse("/v2/a/blobs/uploads/..etc"), Err(RouteError::UnknownUpload(_))));
        assert!(matches!(Endpoint::parse("/v2/a/manifests/bad:tag"), Err(RouteError::Invalid(_))));
    }

    proptest! {
        #[test]
        fn never_panics(s in "/v2/[a-z0-9/._%:-]{0,80}") {
            let _ = Endpoint::parse(&s);
        }

        #[test]
        fn manifest_round_trip(repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}", tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}") {
            let e = Endpoint::parse(&format!("/v2/{repo}/manifests/{tag}")).unwrap();
            prop_assert_eq!(e, Endpoint::Manifest(RepoName::parse(&repo).unwrap(), Reference::parse(&tag).unwrap()));
        }
    }
}
