//! Images built in memory ([`Img`]) and moved over raw HTTP: pushed in any of the ways a
//! client may (HEAD-then-skip, monolithic, chunked sessions, mounts), written as an OCI
//! layout for skopeo, and pulled back byte for byte.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde_json::json;

use crate::client::{ErrorBodyExt, Http, RegistryExt, Resp};
use crate::fixtures::{sha256, Rng, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};

/// A gzip stream of `len` pseudo-random bytes: a layer blob that is what its media type
/// says (skopeo sniffs compression), distinct per seed.
pub(crate) fn layer(seed: u64, len: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&Rng::new(seed).bytes(len)).unwrap();
    gz.finish().unwrap()
}

/// An OCI image built in memory: manifest, config and layers.
#[derive(Clone, Debug)]
pub(crate) struct Img {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: String,
    pub layers: Vec<String>,
    /// Config and layers by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Img {
    /// An image of `layers` (in order) whose config names `label`.
    pub(crate) fn new(label: &str, layers: &[&Vec<u8>]) -> Img {
        let mut blobs = BTreeMap::new();
        let mut descs = Vec::new();
        let mut digests = Vec::new();
        for l in layers {
            let d = sha256(l);
            descs.push(json!({ "mediaType": OCI_LAYER_GZIP, "digest": d, "size": l.len() }));
            digests.push(d.clone());
            blobs.insert(d, (*l).clone());
        }
        let config = serde_json::to_vec_pretty(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"], "Env": [format!("IMAGE={label}")], "WorkingDir": "/" },
            "rootfs": { "type": "layers", "diff_ids": digests },
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": descs,
        }))
        .unwrap();
        blobs.insert(config_digest.clone(), config);
        Img { digest: sha256(&manifest), manifest, config: config_digest, layers: digests, blobs }
    }

    /// Manifest, config and layers by digest: what a complete pull yields.
    pub(crate) fn all_blobs(&self) -> BTreeMap<String, Vec<u8>> {
        let mut all = self.blobs.clone();
        all.insert(self.digest.clone(), self.manifest.clone());
        all
    }

    /// Config first, then the layers, without repeats.
    pub(crate) fn blob_order(&self) -> Vec<String> {
        let mut v = vec![self.config.clone()];
        for l in &self.layers {
            if !v.contains(l) {
                v.push(l.clone());
            }
        }
        v
    }
}

/// Writes an OCI image layout holding `images` under their tags.
pub(crate) fn write_layout(dir: &Path, images: &[(&str, &Img)]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut refs = Vec::new();
    for (tag, img) in images {
        for (d, bytes) in img.all_blobs() {
            std::fs::write(dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        }
        refs.push(json!({
            "mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": refs });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// How [`push`] sends the blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// `HEAD` each blob first and skip what the repository says it has (what docker and
    /// skopeo do), then a monolithic `POST ?digest=`.
    HeadThenPost,
    /// A monolithic `POST ?digest=` for every blob.
    Post,
    /// `POST` a session, `PATCH` the bytes, `PUT ?digest=`.
    Session,
    /// A cross-repository mount from the named repository, falling back to a monolithic
    /// upload when the registry answers 202.
    Mount(&'static str),
}

/// A push that was refused, with what the registry said.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub step: String,
    pub status: u16,
    pub codes: Vec<String>,
    pub body: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {:?} {}", self.step, self.status, self.codes, self.body)
    }
}

fn refused(step: String, r: &Resp) -> Refused {
    Refused { step, status: r.status, codes: r.error_codes(), body: r.text() }
}

/// Pushes one blob into `repo`; Ok when the registry says it holds it.
pub(crate) fn push_blob(http: &Http, repo: &str, d: &str, bytes: &[u8], via: Via) -> Result<(), Refused> {
    match via {
        Via::HeadThenPost => {
            let r = http.head(&format!("/v2/{repo}/blobs/{d}"));
            if r.status == 200 {
                return Ok(());
            }
        }
        Via::Mount(from) => {
            let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"), &[], Vec::new());
            match r.status {
                201 => return Ok(()),
                202 => {
                    let loc = r.header("location").unwrap().to_string();
                    http.send("DELETE", &loc, &[], Vec::new());
                }
                _ => return Err(refused(format!("mount {d}"), &r)),
            }
        }
        Via::Session => {
            let r = http.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new());
            if r.status != 202 {
                return Err(refused(format!("start session for {d}"), &r));
            }
            let loc = r.header("location").unwrap().to_string();
            let r = http.send("PATCH", &loc, &[("content-type", "application/octet-stream")], bytes.to_vec());
            if r.status != 202 {
                return Err(refused(format!("patch {d}"), &r));
            }
            let loc = r.header("location").unwrap().to_string();
            let r = http.send("PUT", &crate::client::with_query(&loc, "digest", d), &[], Vec::new());
            return if r.status == 201 { Ok(()) } else { Err(refused(format!("finish {d}"), &r)) };
        }
        Via::Post => {}
    }
    let r = http.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("content-type", "application/octet-stream")],
        bytes.to_vec(),
    );
    if r.status == 201 {
        Ok(())
    } else {
        Err(refused(format!("post {d}"), &r))
    }
}

/// Pushes `img` as `repo:tag` with raw HTTP: blobs, then the manifest. Ok only when the
/// manifest PUT answered 201, i.e. the registry acknowledged the image.
pub(crate) fn push(http: &Http, repo: &str, tag: &str, img: &Img, via: Via) -> Result<(), Refused> {
    for d in img.blob_order() {
        push_blob(http, repo, &d, &img.blobs[&d], via)?;
    }
    put_manifest(http, repo, tag, img)
}

/// `PUT /v2/<repo>/manifests/<tag>`; Ok on 201.
pub(crate) fn put_manifest(http: &Http, repo: &str, tag: &str, img: &Img) -> Result<(), Refused> {
    let r = http.send("PUT", &format!("/v2/{repo}/manifests/{tag}"), &[("content-type", OCI_MANIFEST)], img.manifest.clone());
    if r.status != 201 {
        return Err(refused(format!("put manifest {repo}:{tag}"), &r));
    }
    assert_eq!(r.header("docker-content-digest"), Some(img.digest.as_str()), "digest of the pushed manifest");
    Ok(())
}

/// Pulls `repo` at `reference` completely with raw HTTP (manifest, then every blob) and
/// compares every byte with `img`; the first difference as an error.
pub(crate) fn pull(http: &Http, repo: &str, reference: &str, img: &Img) -> Result<(), String> {
    let r = http.get_manifest(repo, reference);
    if r.status != 200 {
        return Err(format!("manifest {repo}:{reference}: {} {}", r.status, r.text()));
    }
    if r.body != img.manifest {
        return Err(format!("manifest {repo}:{reference}: bytes differ"));
    }
    for (d, bytes) in &img.blobs {
        let r = http.get(&format!("/v2/{repo}/blobs/{d}"));
        if r.status != 200 {
            return Err(format!("blob {d} of {repo}:{reference}: {} {}", r.status, r.text()));
        }
        if r.body != *bytes {
            return Err(format!("blob {d} of {repo}:{reference}: {} bytes, differing from the {} pushed", r.body.len(), bytes.len()));
        }
    }
    Ok(())
}
