//! OCI image layout fixtures built inside the tests: gzip-compressed tar layers of
//! pseudo-random files, a config whose `rootfs.diff_ids` are the digests of the uncompressed
//! tars, image manifests, and a multi-arch index of two platform manifests. Manifests are
//! pretty-printed JSON, so a registry that re-serialised them would be caught by the
//! byte-for-byte comparisons.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The JSON of an image manifest naming `config` and one uncompressed `layer`, for tests
/// that push a small image by hand.
pub(crate) fn one_layer_manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}],
    }))
    .expect("a json! value serialises")
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// xorshift64*: reproducible bytes per seed, without a rand dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `len` pseudo-random (incompressible) bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// One image of a layout: its manifest and what it names.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: String,
    pub layers: Vec<String>,
    pub architecture: String,
}

impl Image {
    /// Every blob digest of this image, manifest included.
    pub(crate) fn blob_digests(&self) -> Vec<String> {
        let mut v = vec![self.digest.clone(), self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

/// A multi-arch index and its images.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub images: Vec<Image>,
}

/// An OCI image layout directory being written, remembering every blob it holds.
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub blobs: BTreeMap<String, Vec<u8>>,
    refs: Vec<serde_json::Value>,
}

impl Layout {
    /// Creates the directory with its `oci-layout` file and an empty `index.json`.
    pub(crate) fn create(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut l = Layout { dir: dir.to_path_buf(), blobs: BTreeMap::new(), refs: Vec::new() };
        l.write_index();
        l
    }

    /// Writes a blob; returns its digest.
    pub(crate) fn add_blob(&mut self, bytes: Vec<u8>) -> String {
        let digest = sha256(&bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest[7..]), &bytes).unwrap();
        self.blobs.insert(digest.clone(), bytes);
        digest
    }

    fn descriptor(&self, media_type: &str, digest: &str) -> serde_json::Value {
        json!({ "mediaType": media_type, "digest": digest, "size": self.blobs[digest].len() })
    }

    /// Adds an image of `layer_sizes.len()` layers, layer `i` holding about `layer_sizes[i]`
    /// bytes of random files (plus one small text file, so every layer differs in shape).
    pub(crate) fn add_image(&mut self, rng: &mut Rng, architecture: &str, layer_sizes: &[usize]) -> Image {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (i, &size) in layer_sizes.iter().enumerate() {
            let tar = random_tar(rng, i, size);
            diff_ids.push(sha256(&tar));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            layers.push(self.add_blob(gz.finish().unwrap()));
            history.push(json!({ "created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i} of the e2e fixture") }));
        }
        let mut config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": architecture,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/data",
                "ExposedPorts": { "8080/tcp": {} }
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        if architecture == "arm64" {
            config["variant"] = json!("v8");
        }
        let config = self.add_blob(serde_json::to_vec(&config).unwrap());
        let layer_descs: Vec<_> = layers.iter().map(|d| self.descriptor(OCI_LAYER_GZIP, d)).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.descriptor(OCI_CONFIG, &config),
            "layers": layer_descs,
            "annotations": { "org.opencontainers.image.title": format!("wharfage e2e {architecture}") },
        });
        let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
        let digest = self.add_blob(manifest.clone());
        Image { manifest, digest, config, layers, architecture: architecture.to_string() }
    }

    /// Adds an index of linux/amd64 and linux/arm64 images.
    pub(crate) fn add_index(&mut self, rng: &mut Rng, layer_sizes: &[usize]) -> Index {
        let images: Vec<Image> = ["amd64", "arm64"].iter().map(|a| self.add_image(rng, a, layer_sizes)).collect();
        let manifests: Vec<_> = images
            .iter()
            .map(|img| {
                let mut d = self.descriptor(OCI_MANIFEST, &img.digest);
                d["platform"] = json!({ "architecture": img.architecture, "os": "linux" });
                if img.architecture == "arm64" {
                    d["platform"]["variant"] = json!("v8");
                }
                d
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        let manifest = serde_json::to_vec_pretty(&index).unwrap();
        let digest = self.add_blob(manifest.clone());
        Index { manifest, digest, images }
    }

    /// Names a manifest blob `tag` in `index.json`.
    pub(crate) fn tag(&mut self, tag: &str, media_type: &str, digest: &str) {
        let mut d = self.descriptor(media_type, digest);
        d["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        self.refs.push(d);
        self.write_index();
    }

    fn write_index(&mut self) {
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs });
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

/// A tar of a few files: `small` text plus random files adding up to about `size` bytes.
fn random_tar(rng: &mut Rng, layer: usize, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, path: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_704_067_200);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&mut b, format!("data/layer{layer}/README"), format!("layer {layer} of a wharfage e2e fixture\n").as_bytes());
    let files = 1 + layer % 3;
    for f in 0..files {
        let len = size / files + (rng.next_u64() % 4096) as usize;
        add(&mut b, format!("data/layer{layer}/file{f}.bin"), &rng.bytes(len));
    }
    b.into_inner().unwrap()
}

/// Reads every blob of a layout written by someone else (skopeo), checking that each file's
/// content matches its name.
pub(crate) fn read_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for alg in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let alg = alg.unwrap();
        for f in std::fs::read_dir(alg.path()).unwrap() {
            let f = f.unwrap();
            let name = format!("{}:{}", alg.file_name().to_string_lossy(), f.file_name().to_string_lossy());
            let bytes = std::fs::read(f.path()).unwrap();
            if name.starts_with("sha256:") {
                assert_eq!(sha256(&bytes), name, "blob file {} does not hash to its name", f.path().display());
            }
            out.insert(name, bytes);
        }
    }
    out
}

/// The digest that `index.json` of a layout names `tag`.
pub(crate) fn tagged_digest(dir: &Path, tag: &str) -> Option<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array()?.iter().find_map(|m| {
        (m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag)).then(|| m["digest"].as_str().unwrap().to_string())
    })
}

/// Asserts two blob sets are equal: the same digests, and the same bytes for each.
#[track_caller]
pub(crate) fn assert_same_blobs(expected: &BTreeMap<String, Vec<u8>>, actual: &BTreeMap<String, Vec<u8>>, what: &str) {
    let missing: Vec<_> = expected.keys().filter(|k| !actual.contains_key(*k)).collect();
    let extra: Vec<_> = actual.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: blobs missing {missing:?}, unexpected {extra:?}");
    for (d, bytes) in expected {
        assert!(actual[d] == *bytes, "{what}: blob {d} differs ({} bytes expected, {} read)", bytes.len(), actual[d].len());
    }
}

/// The subset of `blobs` named by `digests`.
pub(crate) fn subset(blobs: &BTreeMap<String, Vec<u8>>, digests: &[String]) -> BTreeMap<String, Vec<u8>> {
    digests.iter().map(|d| (d.clone(), blobs[d].clone())).collect()
}
