//! Referrers of a staged image: signatures, SBOMs and attestations whose subject is the
//! pinned digest (or the staged platform's image). A policy engine verifying an app's image
//! must find them where the platform pulls it, in wharfage, not upstream.
//!
//! Found through the upstream's referrers API when it has one, else through the OCI tag
//! schema (`<alg>-<hex>`, an index of referrers); cosign's tags (`<alg>-<hex>.sig`, `.att`,
//! `.sbom`) are looked at in both cases, since cosign keeps using them on registries with
//! the API. One level only: referrers of referrers are not followed. The tags found are
//! made again in the app's repository (see [`SchemaTag`]).

use std::collections::BTreeSet;

use oci::name::COSIGN_TAG_SUFFIXES;
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

/// A tag of the schema found upstream (`<alg>-<hex>` or cosign's `.sig`, `.att`, `.sbom`),
/// made again in the app's repository when what it names is copied: cosign in its default
/// mode, Kyverno and other tag-schema verifiers look signatures up by tag in the repository
/// they pull from.
pub(crate) struct SchemaTag {
    pub tag: Tag,
    pub digest: Digest,
}

/// What the lookup found upstream.
#[derive(Default)]
pub(crate) struct Found {
    pub referrers: Vec<Referrer>,
    /// The tag schema's indexes of referrers (the fallback of registries without the API),
    /// stored as they are so that their tag resolves to the upstream's bytes.
    pub indexes: Vec<Fetched>,
    pub tags: Vec<SchemaTag>,
}

/// Most referrers copied per subject: a registry listing thousands is not to be mirrored
/// into every app's staging.
const MAX_PER_SUBJECT: usize = 64;

impl Stager {
    /// The referrers of each of `subjects`, their manifests fetched (their blobs are the
    /// caller's to copy). Each subject's failure is returned beside what was found for the
    /// others, so the policy decides whether it fails the staging.
    pub(crate) async fn find_referrers(&self, session: &Session, subjects: &[Digest]) -> (Found, Vec<StageError>) {
        let (mut found, mut failures) = (Found::default(), Vec::new());
        let mut seen: BTreeSet<Digest> = subjects.iter().cloned().collect();
        for subject in subjects {
            match self.referrers_of(session, subject, &mut seen).await {
                Ok(mut f) => {
                    found.referrers.append(&mut f.referrers);
                    found.indexes.append(&mut f.indexes);
                    found.tags.append(&mut f.tags);
                }
                Err(e) => failures.push(e),
            }
        }
        (found, failures)
    }

    async fn referrers_of(&self, session: &Session, subject: &Digest, seen: &mut BTreeSet<Digest>) -> Result<Found, StageError> {
        let mut out = Found::default();
        // The referrers API (or the tag schema) and cosign's tags at once: each lookup is a
        // round trip to the upstream.
        let listed = async {
            match session.referrers(subject).await? {
                Some(list) => Ok::<_, StageError>((list.into_iter().map(|d| d.digest).collect::<Vec<_>>(), None)),
                None => self.tag_schema_index(session, subject).await,
            }
        };
        let cosign = futures::future::try_join_all(COSIGN_TAG_SUFFIXES.iter().filter_map(|s| Tag::for_subject(subject, Some(s)).ok()).map(
            |tag| async move {
                let d = self.tagged(session, &tag).await?;
                Ok::<_, StageError>(d.map(|digest| SchemaTag { tag, digest }))
            },
        ));
        let ((listed, index), cosign) = futures::try_join!(listed, cosign)?;
        let mut digests: Vec<Digest> = listed;
        if let Some((tag, index)) = index {
            out.tags.push(SchemaTag { tag, digest: index.digest.clone() });
            out.indexes.push(index);
        }
        for t in cosign.into_iter().flatten() {
            digests.push(t.digest.clone());
            out.tags.push(t);
        }
        for d in digests {
            if out.referrers.len() == MAX_PER_SUBJECT {
                tracing::warn!(%subject, limit = MAX_PER_SUBJECT, "more referrers upstream than a staging copies");
                break;
            }
            if !seen.insert(d.clone()) {
                continue;
            }
            let fetched = self.manifest(session, &Reference::Digest(d.clone())).await?;
            let descriptor = fetched.manifest.referrer_descriptor(&fetched.digest, fetched.bytes.len() as u64);
            out.referrers.push(Referrer { subject: subject.clone(), descriptor, fetched });
        }
        Ok(out)
    }

    /// The OCI tag schema's fallback: the index tagged `<alg>-<hex>` lists the referrers.
    /// Returns them, and the index with its tag.
    async fn tag_schema_index(&self, session: &Session, subject: &Digest) -> Result<(Vec<Digest>, Option<(Tag, Fetched)>), StageError> {
        let Ok(tag) = Tag::for_subject(subject, None) else { return Ok((Vec::new(), None)) };
        let Some(d) = self.tagged(session, &tag).await? else { return Ok((Vec::new(), None)) };
        let index = self.manifest(session, &Reference::Digest(d)).await?;
        let listed = index.manifest.manifests.iter().map(|m| m.digest.clone()).collect();
        Ok((listed, Some((tag, index))))
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
