//! Durable writes for the filesystem backend.
//!
//! object_store's local backend never calls `fsync`: an acknowledged push could vanish, or
//! come back as a zero-length file under its digest, after a power loss. So every object the
//! filesystem backend writes goes through here instead: the bytes go to a temporary file
//! under `<root>/tmp/`, which is fsynced, then renamed into place, and the directory that
//! received it is fsynced (as is the parent of every directory created on the way) before
//! the write returns. A 201 therefore means the bytes and the pointers to them are on disk.
//!
//! Temporary files live in one folder of their own so that what a crash leaves behind is
//! easy to find: one process owns a filesystem root, so when the store opens, nothing in
//! `tmp/` can belong to a live write and it is all removed ([`clear_tmp`]). object_store's own
//! staging files (`<key>#<n>`, which its listings hide) are only left by older versions;
//! fsck reports them and garbage collection removes them ([`stray_staging_files`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;

use crate::{keys, Result, StoreError};

/// The folder, under the root, of temporary files.
pub(crate) const TMP_DIR: &str = "tmp";

/// Where a key lives under `root`. Keys are built in `keys.rs` from parsed names, digests and
/// ids, whose characters need no escaping, so the key is the relative path.
pub(crate) fn path_of(root: &Path, key: &Key) -> PathBuf {
    root.join(key.as_ref())
}

/// Written bytes after which the kernel is asked to start writing them to disk, so that the
/// fsync at the end waits for the last few MiB only, not for the whole blob: a 256 MiB push
/// otherwise spends half its time in the final fsync.
const WRITEBACK_EVERY: u64 = 2 << 20;

/// A file being written under `tmp/`, removed if dropped before [`TempFile::persist`].
pub(crate) struct TempFile {
    root: PathBuf,
    path: PathBuf,
    /// `None` only while a blocking task holds it.
    file: Option<File>,
    persisted: bool,
    /// Bytes written so far, and how many of them writeback was started for.
    written: u64,
    flushed: u64,
}

impl TempFile {
    pub(crate) async fn create(root: &Path) -> Result<Self> {
        let root = root.to_path_buf();
        let dir = root.join(TMP_DIR);
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let p = path.clone();
        let file = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(format!("create {}", dir.display()), e))?;
            File::create(&p).map_err(|e| StoreError::io(format!("create {}", p.display()), e))
        })
        .await?;
        Ok(TempFile { root, path, file: Some(file), persisted: false, written: 0, flushed: 0 })
    }

    /// Appends buffers, in one blocking call.
    pub(crate) async fn write(&mut self, bufs: Vec<Bytes>) -> Result<()> {
        let mut file = self.take_file()?;
        let path = self.path.clone();
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let end = self.written + len;
        let flush_from = (end - self.flushed >= WRITEBACK_EVERY).then_some(self.flushed);
        let (file, result) = tokio::task::spawn_blocking(move || {
            let r = bufs.iter().try_for_each(|b| file.write_all(b));
            if let (Ok(()), Some(from)) = (&r, flush_from) {
                start_writeback(&file, from, end - from);
            }
            (file, r.map_err(|e| StoreError::io(format!("write {}", path.display()), e)))
        })
        .await
        .map_err(|e| StoreError::io("a blocking write task", std::io::Error::other(e)))?;
        self.file = Some(file);
        result?;
        self.written = end;
        if flush_from.is_some() {
            self.flushed = end;
        }
        Ok(())
    }

    /// Makes the file durable and visible under `key`: fsync, rename, fsync the directory.
    pub(crate) async fn persist(mut self, key: &Key) -> Result<()> {
        let file = self.take_file()?;
        let (root, from, to) = (self.root.clone(), self.path.clone(), path_of(&self.root, key));
        let result = blocking(move || {
            file.sync_all().map_err(|e| StoreError::io(format!("fsync {}", from.display()), e))?;
            drop(file);
            rename_durably(&root, &from, &to)
        })
        .await;
        // Renamed or not, the temporary name is gone or will be removed by Drop.
        self.persisted = result.is_ok();
        result
    }

    fn take_file(&mut self) -> Result<File> {
        self.file
            .take()
            .ok_or_else(|| StoreError::io(format!("write {}", self.path.display()), std::io::Error::other("file already closed")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Unlinking works even while a cancelled blocking task still holds the file.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How much a write must survive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Fsynced, file and directory, before the write returns.
    Synced,
    /// As `Synced`, and readable by the owner only (0600): secrets, such as token signing keys.
    Private,
    /// Atomic but not fsynced: for markers that matter only while the process that wrote them
    /// runs (garbage collection's handshake), since a crash ends both the writer and the
    /// collector that could have seen them.
    Volatile,
}

/// Makes a stored secret readable by its owner only (one written before secrets were), and
/// says whether it had to.
#[cfg(unix)]
pub(crate) async fn make_private(root: &Path, key: &Key) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = path_of(root, key);
    blocking(move || {
        let meta = std::fs::metadata(&path).map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?;
        if meta.permissions().mode() & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::io(format!("chmod 600 {}", path.display()), e))?;
        Ok(true)
    })
    .await
}

#[cfg(not(unix))]
pub(crate) async fn make_private(_root: &Path, _key: &Key) -> Result<bool> {
    Ok(false)
}

/// Writes a small object whole, in one blocking call: temporary file, (fsync,) rename,
/// (fsync the directory). The temporary file is removed if any step fails; a cancelled caller
/// leaves the call to finish either way, so nothing is left half-done.
pub(crate) async fn write_file(root: &Path, key: &Key, bytes: Bytes, durability: Durability) -> Result<()> {
    let (root, to) = (root.to_path_buf(), path_of(root, key));
    blocking(move || {
        let dir = root.join(TMP_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(format!("create {}", dir.display()), e))?;
        let tmp = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        if durability == Durability::Private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        }
        let written = open
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                if durability != Durability::Volatile {
                    f.sync_all()?;
                }
                Ok(())
            })
            .map_err(|e| StoreError::io(format!("write {}", tmp.display()), e));
        let result = written.and_then(|()| match durability {
            Durability::Synced | Durability::Private => rename_durably(&root, &tmp, &to),
            Durability::Volatile => {
                let parent = to.parent().unwrap_or(&root);
                std::fs::create_dir_all(parent).map_err(|e| StoreError::io(format!("create {}", parent.display()), e))?;
                std::fs::rename(&tmp, &to).map_err(|e| StoreError::io(format!("rename {} to {}", tmp.display(), to.display()), e))
            }
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
}

/// Renames an object (already durable itself, e.g. an upload part) and fsyncs the directory
/// that receives it.
pub(crate) async fn rename(root: &Path, from: &Key, to: &Key) -> Result<()> {
    let (root, from, to) = (root.to_path_buf(), path_of(root, from), path_of(root, to));
    blocking(move || rename_durably(&root, &from, &to)).await
}

fn rename_durably(root: &Path, from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().unwrap_or(root);
    create_dirs(root, dir)?;
    std::fs::rename(from, to).map_err(|e| StoreError::io(format!("rename {} to {}", from.display(), to.display()), e))?;
    sync_dir(dir)
}

/// Creates `dir` and any missing parents up to `root`, fsyncing the parent of each directory
/// created, so a new directory's entry survives a crash as well as what is put in it.
fn create_dirs(root: &Path, dir: &Path) -> Result<()> {
    if dir.is_dir() || dir == root {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(root, parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Created concurrently by another write: its writer syncs the parent.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(StoreError::io(format!("create {}", dir.display()), e)),
    }
    sync_dir(dir.parent().unwrap_or(root))
}

/// Asks the kernel to start writing a range of the file to disk, without waiting. Only a
/// hint: on failure the final fsync does all the work.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: sync_file_range(2) takes integers only and touches no memory of ours; the
    // descriptor stays open because `file` is borrowed for the whole call.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(format!("fsync directory {}", dir.display()), e))
}

/// Removes every temporary file under `<root>/tmp/`, and the folders other parts of the
/// server keep there (the mirror spools blobs being fetched in `tmp/mirror/`); returns how
/// many files there were. Only for a store being opened: the root's one process has no
/// write in flight yet.
pub(crate) fn clear_tmp(root: &Path) -> Result<usize> {
    let dir = root.join(TMP_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io(format!("list {}", dir.display()), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("list {}", dir.display()), e))?;
        let path = entry.path();
        let is_dir = entry.file_type().map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?.is_dir();
        if is_dir {
            let mut files = Vec::new();
            walk(&path, true, &mut files);
            std::fs::remove_dir_all(&path).map_err(|e| StoreError::io(format!("remove {}", path.display()), e))?;
            removed += files.len();
        } else {
            std::fs::remove_file(&path).map_err(|e| StoreError::io(format!("remove {}", path.display()), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Temporary files under `root`: everything in `tmp/` and object_store's staging files
/// (`<name>#<n>`) in the store's other folders, with their sizes.
pub(crate) fn stray_staging_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    walk(&root.join(TMP_DIR), true, &mut found);
    for top in [keys::blobs(), keys::repositories(), keys::uploads(), keys::apps(), keys::gc()] {
        walk(&path_of(root, &top), false, &mut found);
    }
    found
}

fn walk(dir: &Path, all: bool, found: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        if meta.is_dir() {
            walk(&path, all, found);
        } else if all || is_staging_name(&entry.file_name().to_string_lossy()) {
            found.push((path, meta.len()));
        }
    }
}

/// Files one blocking task handles in a batch operation ([`each_path`]).
const FILE_BATCH: usize = 256;

/// Runs `op` on the path of every key, [`FILE_BATCH`] files per blocking task and two tasks
/// at once, and returns the results in the keys' order. Why: a collection makes hundreds of
/// thousands of small file operations (flags, checks, removals); one thread hop per file
/// cost more than the system calls themselves.
pub(crate) async fn each_path<T: Send + 'static>(root: &Path, keys: &[Key], op: fn(&Path) -> Result<T>) -> Result<Vec<T>> {
    let chunks: Vec<Vec<PathBuf>> = keys.chunks(FILE_BATCH).map(|c| c.iter().map(|k| path_of(root, k)).collect()).collect();
    let done: Vec<Vec<T>> = futures::stream::iter(chunks)
        .map(|paths| blocking(move || paths.iter().map(|p| op(p)).collect::<Result<Vec<T>>>()))
        .buffered(2)
        .try_collect()
        .await?;
    Ok(done.into_iter().flatten().collect())
}

/// How long ago a file was last written, or `None` when there is none.
pub(crate) fn age_of(path: &Path) -> Result<Option<std::time::Duration>> {
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => Ok(Some(std::time::SystemTime::now().duration_since(t).unwrap_or_default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(format!("stat {}", path.display()), e)),
    }
}

/// Removes a file; one that is already gone is fine.
pub(crate) fn remove_path(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(format!("remove {}", path.display()), e)),
    }
}

/// object_store's staging files are `<name>#<digits>`; no key of ours contains `#`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::io("a blocking file task", std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging_name("abc#1"));
        assert!(is_staging_name("abc#12"));
        assert!(!is_staging_name("abc"));
        assert!(!is_staging_name("abc#"));
        assert!(!is_staging_name("abc#x1"));
    }

    #[tokio::test]
    async fn dropped_temp_file_is_removed_and_persisted_one_is_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TempFile::create(dir.path()).await.unwrap();
        t.write(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]).await.unwrap();
        drop(t);
        assert_eq!(std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);

        write_file(dir.path(), &Key::from("a/b/c"), Bytes::from_static(b"xyz"), Durability::Synced).await.unwrap();
        write_file(dir.path(), &Key::from("a/d"), Bytes::from_static(b"m"), Durability::Volatile).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/d")).unwrap(), b"m");
        assert_eq!(std::fs::read(dir.path().join("a/b/c")).unwrap(), b"xyz");
        assert_eq!(std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);

        std::fs::write(dir.path().join(TMP_DIR).join("left"), b"x").unwrap();
        std::fs::write(dir.path().join("a/b/c#3"), b"x").unwrap();
        assert_eq!(stray_staging_files(dir.path()).len(), 1, "a/ is not a store folder");
        assert_eq!(clear_tmp(dir.path()).unwrap(), 1);
        assert_eq!(clear_tmp(dir.path()).unwrap(), 0);
    }

    #[test]
    fn clearing_tmp_removes_the_folders_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join(TMP_DIR).join("mirror");
        std::fs::create_dir_all(spool.join("deeper")).unwrap();
        std::fs::write(spool.join("fill-1-1"), b"x").unwrap();
        std::fs::write(spool.join("deeper").join("f"), b"x").unwrap();
        std::fs::write(dir.path().join(TMP_DIR).join("left"), b"x").unwrap();
        assert_eq!(clear_tmp(dir.path()).unwrap(), 3, "every file, at any depth");
        assert_eq!(std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
        assert_eq!(clear_tmp(dir.path()).unwrap(), 0);
    }
}
