//! The object keys of the storage model (see ARCHITECTURE.md). Every key is built here from
//! parsed types only, so no client input can reach outside its prefix.

use object_store::path::Path;
use oci::{Digest, RepoName, Tag};

/// `blobs/<alg>/<first two hex>/<hex>`: content-addressed bytes.
pub fn blob(d: &Digest) -> Path {
    Path::from(format!("blobs/{}/{}/{}", d.algorithm().as_str(), &d.hex()[..2], d.hex()))
}

/// Everything stored for one repository.
pub fn repo(r: &RepoName) -> Path {
    Path::from(format!("repositories/{r}"))
}

/// Link saying the blob is reachable through the repository.
pub fn layer_link(r: &RepoName, d: &Digest) -> Path {
    Path::from(format!("repositories/{r}/_layers/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// Link saying the manifest belongs to the repository; holds its media type.
pub fn manifest_link(r: &RepoName, d: &Digest) -> Path {
    Path::from(format!("repositories/{r}/_manifests/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// Folder of a repository's tags.
pub fn tags(r: &RepoName) -> Path {
    Path::from(format!("repositories/{r}/_tags"))
}

/// A tag's pointer; holds the digest string.
pub fn tag(r: &RepoName, t: &Tag) -> Path {
    Path::from(format!("repositories/{r}/_tags/{t}"))
}

/// Folder of the descriptors of manifests whose subject is `subject`.
pub fn referrers(r: &RepoName, subject: &Digest) -> Path {
    Path::from(format!("repositories/{r}/_referrers/{}/{}", subject.algorithm().as_str(), subject.hex()))
}

/// One referrer's descriptor.
pub fn referrer(r: &RepoName, subject: &Digest, d: &Digest) -> Path {
    Path::from(format!(
        "repositories/{r}/_referrers/{}/{}/{}-{}",
        subject.algorithm().as_str(),
        subject.hex(),
        d.algorithm().as_str(),
        d.hex()
    ))
}

/// Upload session folder.
pub fn upload(id: &str) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// Upload session state (JSON).
pub fn upload_state(id: &str) -> Path {
    Path::from(format!("uploads/{id}/state.json"))
}

/// One chunk of an upload session's data, numbered from 0.
pub fn upload_part(id: &str, n: usize) -> Path {
    Path::from(format!("uploads/{id}/part-{n:06}"))
}
