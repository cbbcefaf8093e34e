//! Whole-tree file operations shared by the sandbox, builds and repro: copy, remove.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Copies the tree under `from` into `to` (created if missing), keeping modes, symlinks and
/// modification times; other file types (fifos, sockets, devices) are skipped.
///
/// Errors: the first failing operation, with the path in the message.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let ctx = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(to)
        .map_err(ctx("mkdir", to))?;
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
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
}
