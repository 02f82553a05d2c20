//! The object keys of the storage model (see ARCHITECTURE.md). Every key is built here from
//! parsed types only, so no client input can reach outside its prefix.

//!
//! Keys read back from listings are parsed here too, beside the builders, into the same types
//! (`None` for a key of another shape): the layout is spelled out in one file only.

use object_store::path::Path;
use oci::{AppId, Digest, RepoName, Tag};

use crate::UploadId;

/// `blobs/<alg>/<first two hex>/<hex>`: content-addressed bytes.
pub fn blob(d: &Digest) -> Path {
    Path::from(format!("blobs/{}/{}/{}", d.algorithm().as_str(), &d.hex()[..2], d.hex()))
}

/// Folder of every blob.
pub fn blobs() -> Path {
    Path::from("blobs")
}

/// A random value rewritten by every removal of a tag or link on a shared store, which
/// replicas read to know when their cached pointers may be stale (`generation.rs`).
pub fn cache_generation() -> Path {
    Path::from("cache/generation")
}

/// Folder of every repository.
pub fn repositories() -> Path {
    Path::from("repositories")
}

/// An object that never exists, asked for to check the store answers.
pub fn ping() -> Path {
    Path::from("wharfage-ping")
}

/// What a readiness check writes and removes again: in `blobs/`, where pushes and stagings
/// write, so a folder that cannot be written there fails the check. No digest parses from
/// it, so listings of blobs (garbage collection, fsck) skip it.
pub fn write_probe() -> Path {
    Path::from("blobs/ready-probe")
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
pub fn upload(id: &UploadId) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// Upload session state (JSON).
pub fn upload_state(id: &UploadId) -> Path {
    Path::from(format!("uploads/{id}/state.json"))
}

/// One chunk of an upload session's data, under a name unique to that chunk (see `uploads.rs`).
pub fn upload_part(id: &UploadId, name: &str) -> Path {
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

/// Folder of everything garbage collection writes (protections, deletion flags, history).
pub fn gc() -> Path {
    Path::from("gc")
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

/// A batch of a collection run's deletion flags: a file naming the digests (one per line)
/// the run is removing.
pub fn deleting(run: &str, batch: u64) -> Path {
    Path::from(format!("gc/deleting/{run}/{batch:08}"))
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

/// Every mirror pull record.
pub fn mirror_pulls() -> Path {
    Path::from("mirror/pulled")
}

/// The record that a mirrored manifest was pulled: an empty object whose modification time
/// is the (coarse) time of the last pull, which garbage collection compares with the
/// mirror's retention.
pub fn mirror_pull(r: &RepoName, d: &Digest) -> Path {
    Path::from(format!("mirror/pulled/{r}/{}/{}", d.algorithm().as_str(), d.hex()))
}

/// The repository and manifest of a mirror pull record.
pub fn parse_mirror_pull_key(key: &Path) -> Option<(RepoName, Digest)> {
    let rest = key.as_ref().strip_prefix("mirror/pulled/")?;
    let (repo_alg, hex) = rest.rsplit_once('/')?;
    let (repo, alg) = repo_alg.rsplit_once('/')?;
    Some((RepoName::parse(repo).ok()?, digest_of(alg, hex)?))
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

/// Splits `repositories/<name>/_<rest>` into the name and `_<rest>`. A repository's own
/// folders start with `_`, which no component of a repository name can, so the first `/_`
/// ends the name.
fn split_repo_key(key: &Path) -> Option<(RepoName, &str)> {
    let rest = key.as_ref().strip_prefix("repositories/")?;
    let idx = rest.find("/_")?;
    Some((RepoName::parse(&rest[..idx]).ok()?, &rest[idx + 1..]))
}

/// Whether a folder directly under a repository's is one of the repository's own
/// (`_tags`, `_manifests`, ...) rather than the next component of a longer repository name.
pub fn is_repo_data_folder(name: &str) -> bool {
    name.starts_with('_')
}

/// Parses a key under `repositories/`; `None` for anything else (unknown keys are left alone).
pub fn parse_repo_key(key: &Path) -> Option<RepoKey> {
    let (repo, rest) = split_repo_key(key)?;
    let parts: Vec<&str> = rest.split('/').collect();
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

/// The repository any object under `repositories/<name>/_...` belongs to, whatever the object
/// is: one object of any kind is enough for the repository to exist.
pub fn repo_of_key(key: &Path) -> Option<RepoName> {
    split_repo_key(key).map(|(repo, _)| repo)
}

/// The digest of a key under `blobs/`.
pub fn parse_blob_key(key: &Path) -> Option<Digest> {
    let parts: Vec<&str> = key.as_ref().split('/').collect();
    match parts.as_slice() {
        ["blobs", alg, _, hex] => digest_of(alg, hex),
        _ => None,
    }
}

/// What an object under an upload session's folder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadObject {
    /// `state.json`
    State,
    /// `part-<name>`: one chunk, by its own name.
    Part(String),
    /// Anything else in the session's folder (what an interrupted write may leave): still
    /// the session's bytes, removed with it.
    Other,
}

/// Parses a key under `uploads/<id>/` into the session and the object; `None` for a key
/// outside any session's folder or a folder name that is no upload id.
pub fn parse_upload_key(key: &Path) -> Option<(UploadId, UploadObject)> {
    let rest = key.as_ref().strip_prefix("uploads/")?;
    let (id, object) = rest.split_once('/')?;
    let id = UploadId::parse(id)?;
    let object = match object {
        "state.json" => UploadObject::State,
        _ => match object.strip_prefix("part-") {
            Some(name) if !name.is_empty() && !name.contains('/') => UploadObject::Part(name.to_string()),
            _ => UploadObject::Other,
        },
    };
    Some((id, object))
}

/// The app whose staging records' folder holds the key (a record, or what an interrupted
/// write left beside one): the apps that have stagings are read from these keys.
pub fn staging_app_of_key(key: &Path) -> Option<AppId> {
    let mut parts = key.as_ref().split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("apps"), Some(app), Some("stagings"), Some(_)) => AppId::parse(app).ok(),
        _ => None,
    }
}

/// The digest a `gc/protect/<alg>/<hex>` key protects.
pub fn parse_protect_key(key: &Path) -> Option<Digest> {
    let rest = key.as_ref().strip_prefix("gc/protect/")?;
    let (alg, hex) = rest.split_once('/')?;
    digest_of(alg, hex)
}

/// The collection run a key under `gc/deleting/` belongs to: the run a folder
/// `gc/deleting/<run>` names, or whose folder holds a flag.
pub fn deleting_run_of_key(key: &Path) -> Option<&str> {
    let rest = key.as_ref().strip_prefix("gc/deleting/")?;
    let run = rest.split('/').next()?;
    (!run.is_empty()).then_some(run)
}

#[cfg(test)]
mod mirror_key_tests {
    use super::*;

    #[test]
    fn mirror_pull_keys_round_trip() {
        let r = RepoName::parse("docker.io/library/redis").unwrap();
        let d = Digest::of(oci::Algorithm::Sha256, b"m");
        assert_eq!(parse_mirror_pull_key(&mirror_pull(&r, &d)), Some((r, d)));
        for bad in ["mirror/pulled/sha256/abc", "mirror/pulled/x/sha256/zz", "repositories/x/_tags/t", "mirror/pulled/"] {
            assert_eq!(parse_mirror_pull_key(&Path::from(bad)), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> (Digest, Digest) {
        (Digest::of(oci::Algorithm::Sha256, b"x"), Digest::of(oci::Algorithm::Sha512, b"y"))
    }

    #[test]
    fn repository_keys_parse_back() {
        let r = RepoName::parse("a/b").unwrap();
        let (d, s) = digests();
        let t = Tag::parse("v1").unwrap();
        assert_eq!(parse_repo_key(&manifest_link(&r, &d)), Some(RepoKey::Manifest(r.clone(), d.clone())));
        assert_eq!(parse_repo_key(&layer_link(&r, &s)), Some(RepoKey::Layer(r.clone(), s.clone())));
        assert_eq!(parse_repo_key(&tag(&r, &t)), Some(RepoKey::Tag(r.clone(), t.clone())));
        assert_eq!(parse_repo_key(&referrer(&r, &s, &d)), Some(RepoKey::Referrer(r.clone(), s, d.clone())));
        for key in [manifest_link(&r, &d), layer_link(&r, &d), tag(&r, &t), referrers(&r, &d).join("x")] {
            assert_eq!(repo_of_key(&key), Some(r.clone()), "{key}");
        }
        assert_eq!(parse_blob_key(&blob(&d)), Some(d));
    }

    #[test]
    fn malformed_repository_keys_parse_to_none() {
        for key in [
            "repositories/a/_unknown/x",
            "repositories/a/_tags/v1/x",
            "repositories/a/_tags/-bad",
            "repositories/a/_manifests/sha256/zz",
            "repositories/a/_manifests/md5/00",
            "repositories/a/_referrers/sha256/00/nodash",
            "repositories/a",
            "repositories/UPPER/_tags/v1",
            "blobs/sha256/aa/x/_tags/v1",
            "uploads/x/_tags/v1",
        ] {
            assert_eq!(parse_repo_key(&Path::from(key)), None, "{key}");
        }
        assert_eq!(repo_of_key(&Path::from("repositories/a")), None);
        assert_eq!(repo_of_key(&Path::from("repositories/UPPER/_tags/v1")), None);
        assert_eq!(repo_of_key(&Path::from("apps/a/_x")), None);
        for key in ["blobs/sha256/aa", "blobs/sha256/aa/bb/cc", "blobs/sha256/aa/zz", "repositories/sha256/aa/00"] {
            assert_eq!(parse_blob_key(&Path::from(key)), None, "{key}");
        }
    }

    #[test]
    fn repository_data_folders_are_told_from_name_components() {
        let r = RepoName::parse("a/b").unwrap();
        let folder = tags(&r);
        let name = folder.filename().unwrap();
        assert!(is_repo_data_folder(name));
        assert!(!is_repo_data_folder("b") && !is_repo_data_folder("b_c"));
    }

    #[test]
    fn upload_keys_parse_back() {
        let id = UploadId::parse("0d5ac0d8-4a43-4bd3-9e7b-d4e1ba4a5d0c").unwrap();
        assert_eq!(parse_upload_key(&upload_state(&id)), Some((id.clone(), UploadObject::State)));
        assert_eq!(parse_upload_key(&upload_part(&id, "c0ffee")), Some((id.clone(), UploadObject::Part("c0ffee".into()))));
        assert_eq!(parse_upload_key(&upload(&id).join("state.json#3")), Some((id.clone(), UploadObject::Other)));
        for key in ["uploads", "uploads/not-an-id/state.json", "blobs/sha256/aa/bb"] {
            assert_eq!(parse_upload_key(&Path::from(key)), None, "{key}");
        }
        assert_eq!(parse_upload_key(&upload(&id)), None, "the folder itself is no object of the session");
    }

    #[test]
    fn staging_keys_name_their_app() {
        let app = AppId::parse("shop-web").unwrap();
        let id = crate::StagingId::new(1_700_000_000_000);
        assert_eq!(staging_app_of_key(&staging(&app, &id)), Some(app.clone()));
        assert_eq!(staging_app_of_key(&stagings(&app).join("x.json#2")), Some(app.clone()));
        let cred = crate::CredentialId::parse("0123456789abcdef").unwrap();
        for key in [current(&app), pull_credential(&app, &cred), stagings(&app), Path::from("apps/Not An App/stagings/x.json")] {
            assert_eq!(staging_app_of_key(&key), None, "{key}");
        }
    }

    #[test]
    fn gc_keys_parse_back() {
        let (d, s) = digests();
        assert_eq!(parse_protect_key(&protect(&d)), Some(d.clone()));
        assert_eq!(parse_protect_key(&protect(&s)), Some(s.clone()));
        assert_eq!(deleting_run_of_key(&deleting("run1", 0)), Some("run1"));
        assert_eq!(deleting_run_of_key(&deleting("run2", 12)), Some("run2"));
        assert_eq!(deleting_run_of_key(&deleting_run("run1")), Some("run1"));
        for key in ["gc/protect/sha256", "gc/protect/sha256/zz", "gc/deleting/run1/sha256/00", "blobs/sha256/aa/00"] {
            assert_eq!(parse_protect_key(&Path::from(key)), None, "{key}");
        }
        for key in ["gc/deleting", "gc/protect/run1", "gc/history/x.json"] {
            assert_eq!(deleting_run_of_key(&Path::from(key)), None, "{key}");
        }
    }
}
