//! Parsing of image manifests and indexes, just deep enough to find what they reference.
//! The registry never re-serialises a manifest: these types only read the pushed bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::media;
use crate::{Digest, ParseError};

/// Largest manifest accepted, pushed or fetched: what the reference registry and most clients
/// assume, and the bound on how much of a manifest is ever held in memory.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A content descriptor, as found in manifests and indexes and as returned by the referrers API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// The fields of a manifest or index the registry cares about.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    /// Optional, and `null` accepted: Go clients serialise an empty layer list as `null`.
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest: its effective media type and every descriptor it points at.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The media type it is stored and served under.
    pub media_type: String,
    /// What the referrers API reports: `artifactType`, or for an image manifest without one the
    /// config's media type (distribution-spec v1.1 requires this fallback even for plain image
    /// configs; for an index without `artifactType` it stays absent).
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    /// Child manifests of an index.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// How the referrers API lists this manifest (stored as `digest`, `size` bytes long): its
    /// media type, artifact type and annotations.
    pub fn referrer_descriptor(&self, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: digest.clone(),
            size,
            artifact_type: self.artifact_type.clone(),
            urls: Vec::new(),
            annotations: self.annotations.clone(),
            platform: None,
        }
    }

    /// Parses manifest bytes pushed with `content_type` (the request's `Content-Type`, if any).
    /// The body's `mediaType`, when present, must agree with the header.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ParseError> {
        let err = |m: String| ParseError::Manifest(m);
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| err(format!("not a valid manifest document: {e}")))?;
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
        let media_type = match (header, raw.media_type.as_deref()) {
            (Some(h), Some(b)) if h != b => return Err(err(format!("Content-Type {h:?} does not match the manifest's mediaType {b:?}"))),
            (Some(h), _) => h.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) if raw.manifests.is_some() => media::OCI_INDEX.to_string(),
            (None, None) => media::OCI_MANIFEST.to_string(),
        };
        if media_type == media::DOCKER_SCHEMA1 || media_type == media::DOCKER_SCHEMA1_SIGNED {
            return Err(err("Docker schema 1 manifests are not supported; push schema 2 or OCI".into()));
        }
        if !media::MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(err(format!("unsupported manifest media type {media_type:?}")));
        }
        if raw.schema_version != Some(2) {
            return Err(err("schemaVersion must be 2".into()));
        }
        let index = media::is_index(&media_type);
        if index && raw.manifests.is_none() {
            return Err(err(format!("{media_type} needs a \"manifests\" list")));
        }
        if !index && raw.config.is_none() {
            return Err(err(format!("{media_type} needs a \"config\" descriptor")));
        }
        // An empty `artifactType` counts as missing (Go clients omit it only when empty).
        let artifact_type = raw
            .artifact_type
            .filter(|t| !t.is_empty())
            .or_else(|| raw.config.as_ref().map(|c| c.media_type.clone()).filter(|t| !index && !t.is_empty()));
        Ok(Manifest {
            media_type,
            artifact_type,
            config: raw.config.filter(|_| !index),
            layers: if index { Vec::new() } else { raw.layers.unwrap_or_default() },
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            annotations: raw.annotations,
        })
    }

    /// Whether this is an index (its children are manifests, not blobs).
    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }

    /// Blobs the registry must hold for this manifest: config and distributable layers.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter().filter(|l| !media::is_non_distributable(&l.media_type) && l.urls.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYER: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{LAYER}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{LAYER}","size":2}},
                      {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{LAYER}","size":2}}]{extra}}}"#
        )
    }

    #[test]
    fn image_requires_config_and_distributable_layers() {
        let m = Manifest::parse(image("").as_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(m.required_blobs().count(), 2);
        // The referrers API reports the config media type when artifactType is absent.
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
    }

    #[test]
    fn header_body_mismatch_is_refused() {
        let e = Manifest::parse(image("").as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn subject_and_index() {
        let m = Manifest::parse(
            image(&format!(r#","subject":{{"mediaType":"{}","digest":"{LAYER}","size":2}}"#, media::OCI_MANIFEST)).as_bytes(),
            None,
        )
        .unwrap();
        assert!(m.subject.is_some());
        let idx = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{LAYER}","size":2}}]}}"#, media::OCI_MANIFEST);
        let m = Manifest::parse(idx.as_bytes(), None).unwrap();
        assert!(m.is_index());
        assert_eq!(m.manifests.len(), 1);
        assert!(m.artifact_type.is_none(), "an index without artifactType reports none");
    }

    #[test]
    fn null_or_missing_layers_mean_none() {
        let config = format!(r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{LAYER}","size":2}}"#);
        for layers in [r#","layers":null"#, ""] {
            let m = Manifest::parse(format!(r#"{{"schemaVersion":2,{config}{layers}}}"#).as_bytes(), None).unwrap();
            assert!(m.layers.is_empty());
        }
    }

    #[test]
    fn garbage_and_schema1_are_refused() {
        assert!(Manifest::parse(b"not json", None).is_err());
        assert!(Manifest::parse(b"{\"schemaVersion\":1}", Some(media::DOCKER_SCHEMA1_SIGNED)).is_err());
        assert!(Manifest::parse(b"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"md5:00\",\"size\":1}}", None).is_err());
    }
}
