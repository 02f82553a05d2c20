//! Referrers of a staged image: signatures, SBOMs and attestations whose subject is the
//! pinned digest (or the staged platform's image). A policy engine verifying an app's image
//! must find them where the platform pulls it, in wharfage, not upstream.
//!
//! Found through the upstream's referrers API when it has one, else through the OCI tag
//! schema (`<alg>-<hex>`, an index of referrers); cosign's tags (`<alg>-<hex>.sig`, `.att`,
//! `.sbom`) are looked at in both cases, since cosign keeps using them on registries with
//! the API. One level only: referrers of referrers are not followed.

use std::collections::BTreeSet;

use oci::{Descriptor, Digest, Reference, Tag};
use serde::{Deserialize, Serialize};
use upstream::{Fetched, Session, UpstreamError};

use crate::{StageError, Stager};

/// Whether a staging copies the referrers of what it pins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferrersPolicy {
    /// Do not look for referrers.
    Skip,
    /// Copy what can be found; a failure is reported as a warning of the staging.
    #[default]
    Copy,
    /// A failure to find or copy referrers fails the staging.
    Require,
}

impl ReferrersPolicy {
    /// Parses `skip`, `copy` or `require`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(ReferrersPolicy::Skip),
            "copy" => Ok(ReferrersPolicy::Copy),
            "require" => Ok(ReferrersPolicy::Require),
            _ => Err(format!("invalid referrers policy {s:?}: expected \"skip\", \"copy\" or \"require\"")),
        }
    }
}

/// A referrer to store: the manifest, the digest it refers to, and how the referrers API
/// lists it.
pub(crate) struct Referrer {
    pub subject: Digest,
    pub descriptor: Descriptor,
    pub fetched: Fetched,
}

/// cosign's tag suffixes: signatures, attestations, SBOMs.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// Most referrers copied per subject: a registry listing thousands is not to be mirrored
/// into every app's staging.
const MAX_PER_SUBJECT: usize = 64;

impl Stager {
    /// The referrers of each of `subjects`, their manifests fetched (their blobs are the
    /// caller's to copy). Each subject's failure is returned beside what was found for the
    /// others, so the policy decides whether it fails the staging.
    pub(crate) async fn find_referrers(&self, session: &Session, subjects: &[Digest]) -> (Vec<Referrer>, Vec<StageError>) {
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        let mut seen: BTreeSet<Digest> = subjects.iter().cloned().collect();
        for subject in subjects {
            match self.referrers_of(session, subject, &mut seen).await {
                Ok(mut r) => found.append(&mut r),
                Err(e) => failures.push(e),
            }
        }
        (found, failures)
    }

    async fn referrers_of(&self, session: &Session, subject: &Digest, seen: &mut BTreeSet<Digest>) -> Result<Vec<Referrer>, StageError> {
        // The referrers API (or the tag schema) and cosign's tags at once: each lookup is a
        // round trip to the upstream.
        let listed = async {
            match session.referrers(subject).await? {
                Some(list) => Ok::<_, StageError>(list.into_iter().map(|d| d.digest).collect::<Vec<_>>()),
                None => self.tag_schema_index(session, subject).await,
            }
        };
        let cosign = futures::future::try_join_all(
            COSIGN_SUFFIXES.iter().filter_map(|s| schema_tag(subject, Some(s))).map(|tag| async move { self.tagged(session, &tag).await }),
        );
        let (listed, cosign) = futures::try_join!(listed, cosign)?;
        let mut digests: Vec<Digest> = listed;
        digests.extend(cosign.into_iter().flatten());
        let mut out = Vec::new();
        for d in digests {
            if out.len() == MAX_PER_SUBJECT {
                tracing::warn!(%subject, limit = MAX_PER_SUBJECT, "more referrers upstream than a staging copies");
                break;
            }
            if !seen.insert(d.clone()) {
                continue;
            }
            let fetched = self.manifest(session, &Reference::Digest(d.clone())).await?;
            let descriptor = fetched.manifest.referrer_descriptor(&fetched.digest, fetched.bytes.len() as u64);
            out.push(Referrer { subject: subject.clone(), descriptor, fetched });
        }
        Ok(out)
    }

    /// The OCI tag schema's fallback: the index tagged `<alg>-<hex>` lists the referrers.
    async fn tag_schema_index(&self, session: &Session, subject: &Digest) -> Result<Vec<Digest>, StageError> {
        let Some(tag) = schema_tag(subject, None) else { return Ok(Vec::new()) };
        let Some(d) = self.tagged(session, &tag).await? else { return Ok(Vec::new()) };
        let index = self.manifest(session, &Reference::Digest(d)).await?;
        Ok(index.manifest.manifests.iter().map(|m| m.digest.clone()).collect())
    }

    /// The digest a tag names upstream, `None` when the tag does not exist.
    async fn tagged(&self, session: &Session, tag: &Tag) -> Result<Option<Digest>, StageError> {
        let reference = Reference::Tag(tag.clone());
        match session.head_manifest(&reference).await {
            Ok(Some(d)) => Ok(Some(d)),
            // A registry that sends no digest on HEAD: the GET says it.
            Ok(None) => Ok(Some(session.manifest(&reference).await?.digest)),
            Err(UpstreamError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// `<alg>-<hex>` or `<alg>-<hex>.<suffix>`, the hex cut to 64 characters as the tag schema
/// says (so a sha512 subject still makes a tag of at most 128 characters). `None` for a
/// digest that makes no valid tag, which the parsed digest types never produce.
fn schema_tag(subject: &Digest, suffix: Option<&str>) -> Option<Tag> {
    let hex = subject.hex();
    let base = format!("{}-{}", subject.algorithm().as_str(), &hex[..hex.len().min(64)]);
    let name = match suffix {
        Some(s) => format!("{base}.{s}"),
        None => base,
    };
    Tag::parse(&name).ok()
}
