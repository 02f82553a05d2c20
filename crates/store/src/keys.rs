//! The object keys of the storage model (see ARCHITECTURE.md). Every key is built here from
//! parsed types only, so no client input can reach outside its prefix.

use object_store::path::Path;
use oci::{AppId, Digest, RepoName, Tag};

/// `blobs/<alg>/<first two hex>/<hex>`: content-addressed bytes.
pub fn blob(d: &Digest) -> Path {
    Path::from(format!("blobs/{}/{}/{}", d.algorithm().as_str(), &d.hex()[..2], d.hex()))
}

/// Folder of every blob.
pub fn blobs() -> Path {
    Path::from("blobs")
}

/// Folder of every repository.
pub fn repositories() -> Path {
    Path::from("repositories")
}

/// An object that never exists, asked for to check the store answers.
pub fn ping() -> Path {
    Path::from("wharfage-ping")
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

/// Folder of all upload sessions.
pub fn uploads() -> Path {
    Path::from("uploads")
}

/// Upload session folder.
pub fn upload(id: &str) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// Upload session state (JSON).
pub fn upload_state(id: &str) -> Path {
    Path::from(format!("uploads/{id}/state.json"))
}

/// One chunk of an upload session's data, under a name unique to that chunk (see `uploads.rs`).
pub fn upload_part(id: &str, name: &str) -> Path {
    Path::from(format!("uploads/{id}/part-{name}"))
}

/// Everything stored for one app.
pub fn app(app: &AppId) -> Path {
    Path::from(format!("apps/{app}"))
}

/// Folder of every app.
pub fn apps() -> Path {
    Path::from("apps")
}

/// Folder of an app's staging records.
pub fn stagings(app: &AppId) -> Path {
    Path::from(format!("apps/{app}/stagings"))
}

/// One staging record (JSON).
pub fn staging(app: &AppId, staging_id: &crate::StagingId) -> Path {
    Path::from(format!("apps/{app}/stagings/{staging_id}.json"))
}

/// The id of the staging an app's scale-ups use.
pub fn current(app: &AppId) -> Path {
    Path::from(format!("apps/{app}/current"))
}

/// Folder of an app's pull credential records.
pub fn pull_credentials(app: &AppId) -> Path {
    Path::from(format!("apps/{app}/credentials"))
}

/// One pull credential record (JSON; the secret's hash, never the secret).
pub fn pull_credential(app: &AppId, id: &crate::CredentialId) -> Path {
    Path::from(format!("apps/{app}/credentials/{id}.json"))
}

/// Folder of the token signing keys of every replica.
pub fn signing_keys() -> Path {
    Path::from("auth/keys")
}

/// One token signing key (JSON), named by its key id.
pub fn signing_key(kid: &crate::CredentialId) -> Path {
    Path::from(format!("auth/keys/{kid}.json"))
}

/// Folder of garbage-collection protections.
pub fn protections() -> Path {
    Path::from("gc/protect")
}

/// A writer's protection of a digest against garbage collection.
pub fn protect(d: &Digest) -> Path {
    Path::from(format!("gc/protect/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// Folder of the running collections' deletion flags.
pub fn deleting_runs() -> Path {
    Path::from("gc/deleting")
}

/// One run's folder of deletion flags.
pub fn deleting_run(run: &str) -> Path {
    Path::from(format!("gc/deleting/{run}"))
}

/// A collection run's flag: it is removing the digest.
pub fn deleting(run: &str, d: &Digest) -> Path {
    Path::from(format!("gc/deleting/{run}/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// Folder of the reports of past collections.
pub fn gc_history() -> Path {
    Path::from("gc/history")
}

/// One collection's report, named `<unix millis, 13 digits>-<run id>` so names sort by time.
pub fn gc_history_entry(ended_ms: u64, run: &str) -> Path {
    Path::from(format!("gc/history/{ended_ms:013}-{run}.json"))
}

/// A repository's folder given as a path of already listed components (the console's paged
/// catalog walks the tree folder by folder).
pub fn repo_folder(components: &[&str]) -> Path {
    let mut p = repositories();
    for c in components {
        p = p.join(*c);
    }
    p
}

/// Where `fsck --repair` moves a corrupt blob.
pub fn quarantine(d: &Digest) -> Path {
    Path::from(format!("quarantine/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// A key under `repositories/`, parsed back into what it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoKey {
    Manifest(RepoName, Digest),
    Layer(RepoName, Digest),
    Tag(RepoName, Tag),
    /// (repository, subject, referrer)
    Referrer(RepoName, Digest, Digest),
}

fn digest_of(alg: &str, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// Parses a key under `repositories/`; `None` for anything else (unknown keys are left alone).
pub fn parse_repo_key(key: &Path) -> Option<RepoKey> {
    let rest = key.as_ref().strip_prefix("repositories/")?;
    let idx = rest.find("/_")?;
    let repo = RepoName::parse(&rest[..idx]).ok()?;
    let parts: Vec<&str> = rest[idx + 1..].split('/').collect();
    match parts.as_slice() {
        ["_manifests", alg, hex] => Some(RepoKey::Manifest(repo, digest_of(alg, hex)?)),
        ["_layers", alg, hex] => Some(RepoKey::Layer(repo, digest_of(alg, hex)?)),
        ["_tags", tag] => Some(RepoKey::Tag(repo, Tag::parse(tag).ok()?)),
        ["_referrers", alg, hex, name] => {
            let (a, h) = name.split_once('-')?;
            Some(RepoKey::Referrer(repo, digest_of(alg, hex)?, digest_of(a, h)?))
        }
        _ => None,
    }
}

/// The digest of a key under `blobs/`.
pub fn parse_blob_key(key: &Path) -> Option<Digest> {
    let parts: Vec<&str> = key.as_ref().split('/').collect();
    match parts.as_slice() {
        ["blobs", alg, _, hex] => digest_of(alg, hex),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let r = RepoName::parse("a/b").unwrap();
        let d = Digest::of(oci::Algorithm::Sha256, b"x");
        let s = Digest::of(oci::Algorithm::Sha512, b"y");
        let t = Tag::parse("v1").unwrap();
        assert_eq!(parse_repo_key(&manifest_link(&r, &d)), Some(RepoKey::Manifest(r.clone(), d.clone())));
        assert_eq!(parse_repo_key(&layer_link(&r, &d)), Some(RepoKey::Layer(r.clone(), d.clone())));
        assert_eq!(parse_repo_key(&tag(&r, &t)), Some(RepoKey::Tag(r.clone(), t)));
        assert_eq!(parse_repo_key(&referrer(&r, &s, &d)), Some(RepoKey::Referrer(r, s, d.clone())));
        assert_eq!(parse_blob_key(&blob(&d)), Some(d));
        assert_eq!(parse_repo_key(&Path::from("repositories/a/_unknown/x")), None);
    }
}
