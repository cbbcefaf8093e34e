//! Whole-tree file operations shared by the sandbox, builds and repro: copy, remove.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Lowercase hex sha256 of a file's bytes, read streaming.
///
/// Errors: the file cannot be opened or read.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// An output file that appears at its path complete or not at all.
///
/// It is written unnamed (`O_TMPFILE`), so not even SIGKILL can leave a partial file behind,
/// then linked under a temporary name beside the target and renamed over it (rename(2) is
/// atomic), and the directory is synced. Where the filesystem has no `O_TMPFILE` a named
/// temporary file beside the target serves instead, removed on drop. Dropping an
/// `AtomicFile` without [`AtomicFile::commit`] leaves the target as it was.
pub struct AtomicFile {
    file: File,
    target: PathBuf,
    dir: PathBuf,
    named: Option<tempfile::TempPath>,
}

impl AtomicFile {
    /// Starts writing `target` with permission bits `mode` (before the umask).
    ///
    /// Errors: the target's directory is missing or not writable.
    pub fn create(target: &Path, mode: u32) -> io::Result<AtomicFile> {
        let dir = dir_of(target);
        let unnamed = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(mode)
            .custom_flags(libc::O_TMPFILE)
            .open(&dir);
        match unnamed {
            Ok(file) => Ok(AtomicFile {
                file,
                target: target.to_path_buf(),
                dir,
                named: None,
            }),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                let tmp = tempfile::Builder::new()
                    .prefix(&temp_name(target))
                    .permissions(std::fs::Permissions::from_mode(mode))
                    .tempfile_in(&dir)?;
                let (file, path) = tmp.into_parts();
                Ok(AtomicFile {
                    file,
                    target: target.to_path_buf(),
                    dir,
                    named: Some(path),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file being written, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs the data, puts the file at its path and syncs the directory.
    ///
    /// Errors: the step that failed; the target is then unchanged.
    pub fn commit(self) -> io::Result<()> {
        self.file.sync_all()?;
        let tmp = match &self.named {
            Some(path) => path.to_path_buf(),
            None => {
                let tmp = self.dir.join(temp_name(&self.target));
                crate::sys::link_unnamed(&self.file, &tmp)?;
                tmp
            }
        };
        if let Err(e) = std::fs::rename(&tmp, &self.target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Some(path) = self.named {
            // Renamed away: nothing left to remove.
            let _ = path.keep();
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Checks, before any work is done for it, that `target` can be written by an
    /// `AtomicFile`: that what is at the path now (followed through symlinks) is a regular file
    /// or nothing, that it is no mount point, and that a temporary file can be made beside it
    /// (made as [`AtomicFile::create`] makes it, then dropped, which leaves nothing). A
    /// directory that is missing, not writable or on a filesystem without files (`/proc`,
    /// `/sys`: `-s /proc/self/fd/1`) fails here, not after the work.
    ///
    /// Errors: [`TargetError`] saying which of these fails.
    pub fn check(target: &Path) -> Result<(), TargetError> {
        let dir = dir_of(target);
        let dir_meta = match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Err(TargetError::NoDirectory { dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TargetError::NoDirectory { dir })
            }
            Err(source) => return Err(TargetError::Create { dir, source }),
        };
        match std::fs::metadata(target) {
            Ok(m) if !m.is_file() => {
                return Err(TargetError::NotRegular {
                    kind: kind_of(m.file_type()),
                })
            }
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                let link = std::fs::symlink_metadata(target).is_ok_and(|l| l.is_symlink());
                // rename(2) over a mount point fails with EBUSY.
                if !link && m.dev() != dir_meta.dev() {
                    return Err(TargetError::MountPoint);
                }
            }
            // Nothing there yet (or a dangling symlink, which the rename replaces).
            Err(_) => {}
        }
        AtomicFile::create(target, 0o600)
            .map(drop)
            .map_err(|source| TargetError::Create { dir, source })
    }
}

/// Why a path cannot take an [`AtomicFile`] ([`AtomicFile::check`]).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The path names something a rename must not replace.
    #[error("is {kind}, which a file renamed into place would replace (give a new name or a regular file)")]
    NotRegular {
        /// What it is: "a directory", "a character device"...
        kind: &'static str,
    },
    /// The path is a mount point: rename(2) cannot replace it.
    #[error("is a mount point, which a file renamed into place cannot replace")]
    MountPoint,
    /// The directory the file would go in does not exist.
    #[error("directory {} does not exist", dir.display())]
    NoDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// No file can be made in the directory: not writable, or a filesystem without files.
    #[error("cannot make a file in directory {}", dir.display())]
    Create {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What a file that is not a regular file is, for messages.
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// The directory an output file at `target` goes in.
fn dir_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_name(target: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first entry of `search` (a PATH value) holding `name` as a non-directory, the way a
/// shell looks a command up: an empty entry is the working directory, and an entry this user
/// cannot read is skipped (so a missing command is "not found", never "permission denied").
pub fn find_on_path(name: &OsStr, search: &OsStr) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    std::env::split_paths(search)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(name)
            } else {
                dir.join(name)
            }
        })
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
}

/// Where `tool` is on this process's PATH ([`find_on_path`]).
pub fn which(tool: &str) -> Option<PathBuf> {
    find_on_path(OsStr::new(tool), &std::env::var_os("PATH")?)
}

/// The order in which [`copy_tree_in_order`] creates the entries of each directory.
///
/// Some filesystems list a directory in the order its entries were created (tmpfs, newest
/// first), so this decides what an unsorted `readdir` (`ls -f`, `find`, a glob-free `tar`)
/// shows in the copy; others (ext4) list in hash order, whatever the creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryOrder {
    /// The order the source lists them in.
    AsListed,
    /// Byte order of the names.
    Ascending,
    /// Reverse byte order of the names.
    Descending,
}

/// Copies the tree under `from` into `to` (created if missing), keeping modes, symlinks and
/// modification times; other file types (fifos, sockets, devices) are skipped.
///
/// Errors: the first failing operation, with the path in the message.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    copy_tree_in_order(from, to, EntryOrder::AsListed)
}

/// [`copy_tree`], creating each directory's entries in `order`.
///
/// Errors: the first failing operation, with the path in the message.
pub fn copy_tree_in_order(from: &Path, to: &Path, order: EntryOrder) -> io::Result<()> {
    let ctx = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(to)
        .map_err(ctx("mkdir", to))?;
    for entry in creation_walk(from, order) {
        let entry = entry.map_err(io::Error::from)?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let dst = to.join(rel);
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(ctx("stat", entry.path()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .map_err(ctx("mkdir", &dst))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(ctx("readlink", entry.path()))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(ctx("symlink", &dst))?;
            continue;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &dst).map_err(ctx("copy", entry.path()))?;
        } else {
            continue;
        }
        let mtime = filetime::FileTime::from_last_modification_time(&meta);
        filetime::set_file_mtime(&dst, mtime).map_err(ctx("utime", &dst))?;
    }
    // Modes last, deepest first: a read-only directory must not stop its own copy.
    for entry in walkdir::WalkDir::new(from)
        .min_depth(1)
        .contents_first(true)
    {
        let entry = entry.map_err(io::Error::from)?;
        if entry.file_type().is_symlink() {
            continue;
        }
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let dst = to.join(rel);
        if !dst.exists() {
            continue;
        }
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(ctx("stat", entry.path()))?;
        std::fs::set_permissions(&dst, meta.permissions()).map_err(ctx("chmod", &dst))?;
        if entry.file_type().is_dir() {
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            filetime::set_file_mtime(&dst, mtime).map_err(ctx("utime", &dst))?;
        }
    }
    Ok(())
}

/// The walk [`copy_tree_in_order`] creates entries in: depth first, each directory before
/// its entries, each directory's entries in `order`.
fn creation_walk(from: &Path, order: EntryOrder) -> walkdir::WalkDir {
    let walk = walkdir::WalkDir::new(from).min_depth(1);
    match order {
        EntryOrder::AsListed => walk,
        EntryOrder::Ascending => walk.sort_by(|a, b| a.file_name().cmp(b.file_name())),
        EntryOrder::Descending => walk.sort_by(|a, b| b.file_name().cmp(a.file_name())),
    }
}

/// Removes a tree the user owns, first giving back write permission on directories that a
/// build (or overlayfs's work directory, mode 000) took away.
pub fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    for entry in walkdir::WalkDir::new(path).into_iter().filter_entry(|e| {
        if e.file_type().is_dir() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o700));
        }
        true
    }) {
        drop(entry);
    }
    if let Err(e) = std::fs::remove_dir_all(path) {
        eprintln!(
            "nsroot: warning: cannot remove scratch directory {}: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out.bin");
        std::fs::write(&target, "old").unwrap();
        let f = AtomicFile::create(&target, 0o644).unwrap();
        std::io::Write::write_all(&mut f.file(), b"new").unwrap();
        drop(f);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"old",
            "dropped: target untouched"
        );
        let f = AtomicFile::create(&target, 0o644).unwrap();
        std::io::Write::write_all(&mut f.file(), b"new").unwrap();
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "nothing named while writing"
        );
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn check_refuses_what_a_rename_cannot_take_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        AtomicFile::check(&t.path().join("new")).unwrap();
        std::fs::write(t.path().join("old"), "x").unwrap();
        AtomicFile::check(&t.path().join("old")).unwrap();
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "left a file"
        );
        let e = AtomicFile::check(t.path()).unwrap_err();
        assert!(
            matches!(
                e,
                TargetError::NotRegular {
                    kind: "a directory"
                }
            ),
            "{e}"
        );
        let e = AtomicFile::check(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let e = AtomicFile::check(Path::new("/proc/nsroot-unit-test")).unwrap_err();
        assert!(matches!(e, TargetError::Create { .. }), "{e}");
        let e = AtomicFile::check(&t.path().join("no/st")).unwrap_err();
        assert!(matches!(e, TargetError::NoDirectory { .. }), "{e}");
    }

    #[test]
    fn copy_keeps_modes_links_and_mtimes_and_remove_handles_read_only_dirs() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(a.join("ro/sub")).unwrap();
        std::fs::write(a.join("ro/sub/f"), "x").unwrap();
        std::fs::set_permissions(a.join("ro/sub/f"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        std::os::unix::fs::symlink("../nowhere", a.join("ro/link")).unwrap();
        filetime::set_file_mtime(
            a.join("ro/sub/f"),
            filetime::FileTime::from_unix_time(1000, 0),
        )
        .unwrap();
        std::fs::set_permissions(a.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let b = t.path().join("b");
        copy_tree(&a, &b).unwrap();
        let m = std::fs::metadata(b.join("ro/sub/f")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4750);
        assert_eq!(m.mtime(), 1000);
        assert_eq!(
            std::fs::metadata(b.join("ro")).unwrap().mode() & 0o777,
            0o555
        );
        assert_eq!(
            std::fs::read_link(b.join("ro/link")).unwrap(),
            Path::new("../nowhere")
        );
        remove_tree(&b);
        remove_tree(&a);
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn copy_creates_entries_in_the_order_asked() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        for name in ["b", "d/y", "d/x", "a", "c"] {
            let p = a.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, name).unwrap();
        }
        // Which filesystem lists entries in creation order is the integration tests' concern
        // (tests/it/repro.rs); here, the order the copy creates them in.
        for (order, want) in [
            (EntryOrder::Ascending, ["a", "b", "c", "d", "d/x", "d/y"]),
            (EntryOrder::Descending, ["d", "d/y", "d/x", "c", "b", "a"]),
        ] {
            let created: Vec<String> = creation_walk(&a, order)
                .into_iter()
                .map(|e| {
                    let e = e.unwrap();
                    e.path()
                        .strip_prefix(&a)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            assert_eq!(created, want, "{order:?}");
            let b = t.path().join(format!("{order:?}"));
            copy_tree_in_order(&a, &b, order).unwrap();
            assert_eq!(std::fs::read_to_string(b.join("d/x")).unwrap(), "d/x");
        }
    }
}
