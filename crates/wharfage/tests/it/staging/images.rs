//! Images for the staging tests, written into an OCI layout with [`crate::fixtures::Layout`]:
//! layers that several images share (a common base), image configs that carry run metadata
//! (entrypoint, cmd, user, working dir, env, exposed ports), and multi-arch indexes.

use std::io::Write;

use serde_json::json;

use crate::fixtures::{sha256, Image, Index, Layout, Rng, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};

/// A layer blob in a layout.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub digest: String,
    diff_id: String,
}

/// Adds a gzip layer holding one file of `size` pseudo-random bytes at `path`.
pub(crate) fn layer(layout: &mut Layout, rng: &mut Rng, path: &str, size: usize) -> Layer {
    file_layer(layout, &[(path, &rng.bytes(size), 0o644)])
}

/// Adds a gzip layer holding `files` (path, bytes, mode; a path ending in `/` is a
/// directory): an image engines can run, e.g. a static busybox at `bin/busybox`.
pub(crate) fn file_layer(layout: &mut Layout, files: &[(&str, &[u8], u32)]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(1_704_067_200);
        h.set_entry_type(if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Layer { digest: layout.add_blob(gz.finish().unwrap()), diff_id }
}

/// The `config` section of the staging fixtures: every run-metadata field set, ports in an
/// order where a string sort and a numeric sort differ.
pub(crate) fn run_config(arch: &str) -> serde_json::Value {
    json!({
        "Entrypoint": ["/usr/local/bin/app", "--serve"],
        "Cmd": ["--listen", ":7070"],
        "User": "1000:1000",
        "WorkingDir": "/srv/app",
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", format!("APP_ARCH={arch}")],
        "ExposedPorts": { "10000/tcp": {}, "7070/tcp": {}, "8125/udp": {} },
        "Labels": { "org.example.fixture": "wharfage-e2e" }
    })
}

/// What the API must answer as `metadata` for [`run_config`].
pub(super) fn expected_metadata(arch: &str) -> oci::RunMetadata {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let port = |port, protocol: &str| oci::Port { port, protocol: protocol.to_string() };
    oci::RunMetadata {
        entrypoint: strings(&["/usr/local/bin/app", "--serve"]),
        cmd: strings(&["--listen", ":7070"]),
        user: "1000:1000".to_string(),
        working_dir: "/srv/app".to_string(),
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string(), format!("APP_ARCH={arch}")],
        ports: vec![port(7070, "tcp"), port(8125, "udp"), port(10000, "tcp")],
        lowest_port: Some(7070),
    }
}

/// Adds a linux image of `layers` whose config carries [`run_config`].
pub(crate) fn image(layout: &mut Layout, arch: &str, layers: &[&Layer]) -> Image {
    image_with(layout, arch, layers, run_config(arch))
}

/// Adds a linux image of `layers` whose config's `config` section is `run`.
pub(crate) fn image_with(layout: &mut Layout, arch: &str, layers: &[&Layer], run: serde_json::Value) -> Image {
    let desc = |layout: &Layout, media_type: &str, digest: &str| json!({ "mediaType": media_type, "digest": digest, "size": layout.blobs[digest].len() });
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": run,
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() },
        "history": layers.iter().enumerate().map(|(i, _)| json!({ "created_by": format!("staging fixture layer {i}") })).collect::<Vec<_>>(),
    });
    if arch == "arm64" {
        config["variant"] = json!("v8");
    }
    let config = layout.add_blob(serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(layout, OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| desc(layout, OCI_LAYER_GZIP, &l.digest)).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.title": format!("wharfage staging fixture {arch}") },
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    let digest = layout.add_blob(manifest.clone());
    Image { manifest, digest, config, layers: layers.iter().map(|l| l.digest.clone()).collect(), architecture: arch.to_string() }
}

/// Adds an image manifest naming the config of `like` with other `layers`: wharfage does not
/// check a config's diff_ids, so this makes images that share every blob but their layers.
pub(super) fn image_with_config_of(layout: &mut Layout, like: &Image, layers: &[&Layer]) -> Image {
    let desc = |layout: &Layout, media_type: &str, digest: &str| json!({ "mediaType": media_type, "digest": digest, "size": layout.blobs[digest].len() });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(layout, OCI_CONFIG, &like.config),
        "layers": layers.iter().map(|l| desc(layout, OCI_LAYER_GZIP, &l.digest)).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    let digest = layout.add_blob(manifest.clone());
    Image {
        manifest,
        digest,
        config: like.config.clone(),
        layers: layers.iter().map(|l| l.digest.clone()).collect(),
        architecture: like.architecture.clone(),
    }
}

/// Adds an index of `images` (linux, their architectures; arm64 as v8).
pub(super) fn index(layout: &mut Layout, images: &[&Image]) -> Index {
    let manifests: Vec<_> = images
        .iter()
        .map(|img| {
            let mut platform = json!({ "architecture": img.architecture, "os": "linux" });
            if img.architecture == "arm64" {
                platform["variant"] = json!("v8");
            }
            json!({ "mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len(), "platform": platform })
        })
        .collect();
    let index = serde_json::to_vec_pretty(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests })).unwrap();
    let digest = layout.add_blob(index.clone());
    Index { manifest: index, digest, images: images.iter().map(|i| (*i).clone()).collect() }
}

/// The sizes of blobs of a layout, summed.
pub(super) fn total_size(layout: &Layout, digests: &[String]) -> u64 {
    digests.iter().map(|d| layout.blobs[d].len() as u64).sum()
}
