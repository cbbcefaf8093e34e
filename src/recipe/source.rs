//! Recipe sources on disk: sha256 checks, safe archive extraction, tree hash and newest mtime.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{shown_path, RecipeError, Source};
use crate::error::InputError;

pub use crate::archive::Compression;

fn bad_source(path: &Path, msg: impl Into<String>) -> RecipeError {
    RecipeError::BadSource {
        path: path.to_path_buf(),
        reason: InputError::new(msg),
    }
}

/// Lowercase hex sha256 of a file's bytes.
pub(crate) fn sha256_file(path: &Path) -> Result<String, RecipeError> {
    crate::fsutil::sha256_file(path).map_err(|e| RecipeError::io("read", path, e))
}

impl Source {
    /// Makes the sources available and returns the directory the steps run in.
    ///
    /// A path source returns its canonical directory (no copy; the caller must never write
    /// to it). An archive source is checked against its sha256, then extracted into
    /// `scratch/src` (created here) with `strip_components` applied, refusing absolute paths,
    /// `..`, links that leave the tree (resolved through the links extracted before them),
    /// entries that would redirect an earlier link, writes through symlinks and device nodes.
    /// No `[source]` gives an empty `scratch/src`.
    ///
    /// Errors: [`RecipeError::BadSource`] for a sha256 mismatch (naming both hashes), an
    /// unsupported compression or an unsafe entry; [`RecipeError::Io`] for read/write failures.
    pub fn materialize(&self, scratch: &Path) -> Result<PathBuf, RecipeError> {
        match self {
            Source::Path { dir } => Ok(dir.clone()),
            Source::None => {
                let dest = scratch.join("src");
                fs::create_dir(&dest).map_err(|e| RecipeError::io("create directory", &dest, e))?;
                Ok(dest)
            }
            Source::Archive {
                file,
                sha256,
                strip_components,
            } => {
                let actual = sha256_file(file)?;
                if &actual != sha256 {
                    return Err(bad_source(
                        file,
                        format!("sha256 mismatch: the recipe says {sha256}, the file has {actual}"),
                    ));
                }
                let dest = scratch.join("src");
                fs::create_dir(&dest).map_err(|e| RecipeError::io("create directory", &dest, e))?;
                extract(file, &dest, *strip_components)?;
                Ok(dest)
            }
        }
    }
}

/// The relative destination of an archive member after stripping, or None when stripping
/// leaves nothing (the entry is skipped, as GNU tar does). `..` and absolute paths are refused.
fn member_path(archive: &Path, raw: &[u8], strip: u32) -> Result<Option<PathBuf>, RecipeError> {
    let name = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut parts = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad_source(
                    archive,
                    format!("entry {:?} has an absolute path", shown_path(name)),
                ))
            }
            Component::ParentDir => {
                return Err(bad_source(
                    archive,
                    format!("entry {:?} contains \"..\"", shown_path(name)),
                ))
            }
        }
    }
    let strip = strip as usize;
    if parts.len() <= strip {
        return Ok(None);
    }
    Ok(Some(parts[strip..].iter().collect()))
}

/// Refuses a path whose existing ancestors (below `root`) include a symlink or non-directory,
/// so that nothing is ever written through a link.
fn check_parents(archive: &Path, root: &Path, rel: &Path) -> Result<(), RecipeError> {
    let mut cur = root.to_path_buf();
    let mut comps = rel.components().peekable();
    while let Some(c) = comps.next() {
        if comps.peek().is_none() {
            break;
        }
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad_source(
                    archive,
                    format!(
                        "entry {:?} would be written through a link or file",
                        shown_path(rel)
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&cur)
                    .map_err(|e| RecipeError::io("create directory", &cur, e))?;
            }
            Err(e) => return Err(RecipeError::io("inspect", &cur, e)),
        }
    }
    Ok(())
}

/// The most symlinks one resolution follows, as the kernel's (MAXSYMLINKS, path_resolution(7)).
const MAX_LINKS: usize = 40;

/// A name in the tree that the resolution of an extracted symlink went through: a later entry
/// there would change where that symlink leads.
#[derive(Debug, Clone)]
enum Through {
    /// A symlink, followed: nothing may replace it.
    Symlink,
    /// Not extracted yet, taken for a directory: only a directory may appear there.
    Missing,
}

/// The names earlier symlinks resolve through, each with that symlink and its target (for the
/// message refusing an entry that would redirect it).
type Depends = std::collections::HashMap<PathBuf, (Through, String, String)>;

/// Resolves `target`, the target of the symlink at `link_rel`, in the tree under `root` as
/// extracted so far, as the kernel would: from the link's directory, following the symlinks
/// already there (at most [`MAX_LINKS`]), taking a name not extracted yet for a directory.
/// Returns why it leaves the tree, if it does, and records in `depends` each name the
/// resolution went through that a later entry could turn into a way out.
fn resolve_in_tree(
    archive: &Path,
    root: &Path,
    link_rel: &Path,
    target: &Path,
    depends: &mut Depends,
) -> Result<(), RecipeError> {
    let shown_link = shown_path(link_rel);
    let shown_target = shown_path(target);
    let mut cur: Vec<std::ffi::OsString> = link_rel
        .parent()
        .map(|p| p.iter().map(|c| c.to_os_string()).collect())
        .unwrap_or_default();
    let mut queue: std::collections::VecDeque<std::ffi::OsString> =
        std::collections::VecDeque::new();
    let push_front = |queue: &mut std::collections::VecDeque<_>, t: &Path| {
        if t.is_absolute() {
            return Err("an absolute path".to_string());
        }
        for c in t.components().rev() {
            queue.push_front(c.as_os_str().to_os_string());
        }
        Ok(())
    };
    let outside = |why: String| {
        format!("symlink {shown_link:?} -> {shown_target:?} points outside the tree ({why})")
    };
    let mut seen = Vec::new();
    push_front(&mut queue, target).map_err(|w| bad_source(archive, outside(w)))?;
    let mut followed = 0usize;
    let mut why: Option<String> = None;
    while let Some(c) = queue.pop_front() {
        if c == "." {
            continue;
        }
        if c == ".." {
            if cur.pop().is_none() {
                why = Some(match seen.last() {
                    Some(via) => format!("through {via}"),
                    None => "a \"..\" above the top of the tree".to_string(),
                });
                break;
            }
            continue;
        }
        cur.push(c);
        let rel: PathBuf = cur.iter().collect();
        let last = queue.is_empty();
        match fs::symlink_metadata(root.join(&rel)) {
            Ok(m) if m.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_LINKS {
                    why = Some(format!("more than {MAX_LINKS} symlinks to follow"));
                    break;
                }
                let next = fs::read_link(root.join(&rel))
                    .map_err(|e| RecipeError::io("read link", &root.join(&rel), e))?;
                let shown_rel = shown_path(&rel);
                seen.push(format!(
                    "the symlink {shown_rel:?} -> {:?}",
                    shown_path(&next)
                ));
                if !last {
                    depends.entry(rel).or_insert((
                        Through::Symlink,
                        shown_link.clone(),
                        shown_target.clone(),
                    ));
                }
                cur.pop();
                if let Err(w) = push_front(&mut queue, &next) {
                    why = Some(format!("{} leads to {w}", seen.last().unwrap()));
                    break;
                }
            }
            Ok(_) => {}
            Err(_) if !last => {
                depends.entry(rel).or_insert((
                    Through::Missing,
                    shown_link.clone(),
                    shown_target.clone(),
                ));
            }
            Err(_) => {}
        }
    }
    match why {
        None => Ok(()),
        Some(w) => Err(bad_source(archive, outside(w))),
    }
}

/// Refuses an entry at `rel` that would change where an earlier symlink leads: any entry over a
/// symlink one resolved through, a symlink where one took a missing name for a directory.
fn check_depends(
    archive: &Path,
    rel: &Path,
    is_symlink: bool,
    depends: &Depends,
) -> Result<(), RecipeError> {
    let Some((through, link, target)) = depends.get(rel) else {
        return Ok(());
    };
    let redirects = match through {
        Through::Symlink => true,
        Through::Missing => is_symlink,
    };
    if redirects {
        return Err(bad_source(
            archive,
            format!(
                "entry {:?} would change where the earlier symlink {link:?} -> {target:?} leads, \
             which resolves through it",
                shown_path(rel)
            ),
        ));
    }
    Ok(())
}

/// Removes whatever is at `path` (not following links) so that a new entry replaces it.
fn clear(path: &Path) -> Result<(), RecipeError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => fs::remove_file(path).map_err(|e| RecipeError::io("remove", path, e)),
        Err(_) => Ok(()),
    }
}

fn extract(archive: &Path, dest: &Path, strip: u32) -> Result<(), RecipeError> {
    let mut f = File::open(archive).map_err(|e| RecipeError::io("open", archive, e))?;
    let mut head = [0u8; 6];
    let n = f
        .read(&mut head)
        .map_err(|e| RecipeError::io("read", archive, e))?;
    let compression = Compression::sniff(&head[..n]).ok_or_else(|| {
        bad_source(
            archive,
            "unsupported compression (use gzip, xz, zstd or none)",
        )
    })?;
    let f = File::open(archive).map_err(|e| RecipeError::io("open", archive, e))?;
    let reader = compression
        .reader(BufReader::new(f))
        .map_err(|e| RecipeError::io("read", archive, e))?;
    // Bounded: a crafted extended header cannot make the extraction buffer gigabytes.
    let mut tar = tar::Archive::new(crate::archive::HeaderGuard::new(reader));
    let read_err = |e| RecipeError::io("read", archive, e);
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let mut depends = Depends::new();
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = member_path(archive, &raw, strip)? else {
            continue;
        };
        check_parents(archive, dest, &rel)?;
        let header = entry.header();
        check_depends(archive, &rel, header.entry_type().is_symlink(), &depends)?;
        let out = dest.join(&rel);
        let mode = header.mode().map_err(read_err)? & 0o777;
        let mtime = header.mtime().map_err(read_err)?;
        let kind = header.entry_type();
        let shown = shown_path(&rel);
        if kind.is_dir() {
            clear(&out)?;
            if !out.is_dir() {
                fs::create_dir(&out).map_err(|e| RecipeError::io("create directory", &out, e))?;
            }
            dirs.push((out, mode, mtime));
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            clear(&out)?;
            let mut file = File::create(&out).map_err(|e| RecipeError::io("create", &out, e))?;
            io::copy(&mut entry, &mut file).map_err(|e| RecipeError::io("write", &out, e))?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| RecipeError::io("chmod", &out, e))?;
            drop(file);
            set_mtime(&out, mtime)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(read_err)?
                .ok_or_else(|| bad_source(archive, format!("symlink {shown:?} has no target")))?
                .into_owned();
            // Resolved against the tree as extracted so far, through the symlinks already
            // in it: `d/up -> ..` then `d/esc -> up/../..` leaves the tree, which a
            // lexical check from `d` does not see.
            // The new link replaces what was there first, as the kernel will then see it.
            clear(&out)?;
            resolve_in_tree(archive, dest, &rel, &target, &mut depends)?;
            std::os::unix::fs::symlink(&target, &out)
                .map_err(|e| RecipeError::io("symlink", &out, e))?;
            set_mtime(&out, mtime)?;
        } else if kind.is_hard_link() {
            let raw_target = entry
                .link_name_bytes()
                .ok_or_else(|| bad_source(archive, format!("hard link {shown:?} has no target")))?
                .into_owned();
            let Some(target_rel) = member_path(archive, &raw_target, strip)? else {
                return Err(bad_source(
                    archive,
                    format!("hard link {shown:?} points outside the tree"),
                ));
            };
            check_parents(archive, dest, &target_rel)?;
            let target = dest.join(&target_rel);
            if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
                return Err(bad_source(
                    archive,
                    format!(
                        "hard link {shown:?} points to {:?}, not an earlier file",
                        shown_path(&target_rel)
                    ),
                ));
            }
            clear(&out)?;
            fs::hard_link(&target, &out).map_err(|e| RecipeError::io("link", &out, e))?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            // Metadata only: the tar crate applies local ones to the next entry.
        } else {
            return Err(bad_source(
                archive,
                format!("entry {shown:?} has an unsupported type ({:?}): sources hold files, directories and links", kind),
            ));
        }
    }
    // Directories last, deepest first: writing their contents changed their mtimes.
    for (dir, mode, mtime) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))
            .map_err(|e| RecipeError::io("chmod", dir, e))?;
        set_mtime(dir, *mtime)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) -> Result<(), RecipeError> {
    let t = filetime::FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    filetime::set_symlink_file_times(path, t, t)
        .map_err(|e| RecipeError::io("set the mtime of", path, e))
}

/// All entries below `root` (not `root` itself), sorted by the byte order of their paths.
fn sorted_entries(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>, RecipeError> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let e = e.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            RecipeError::io("walk", &path, e.into())
        })?;
        let meta = e
            .metadata()
            .map_err(|err| RecipeError::io("inspect", e.path(), err.into()))?;
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_path_buf();
        out.push((rel, meta));
    }
    out.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(out)
}

/// The newest mtime of any non-directory entry below `root`, or 0 when there is none.
pub(super) fn newest_mtime(root: &Path) -> Result<u64, RecipeError> {
    let entries = sorted_entries(root)?;
    Ok(entries
        .iter()
        .filter(|(_, m)| !m.is_dir())
        .map(|(_, m)| u64::try_from(m.mtime()).unwrap_or(0))
        .max()
        .unwrap_or(0))
}

/// sha256 over the sorted tree. Each entry adds: a type letter, the path, NUL, the mode in
/// octal, NUL, then for a file its size and sha256, for a link its target, and a newline.
pub(super) fn tree_hash(root: &Path) -> Result<String, RecipeError> {
    let mut h = Sha256::new();
    for (rel, meta) in sorted_entries(root)? {
        let path = root.join(&rel);
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            b'd'
        } else if ft.is_file() {
            b'f'
        } else if ft.is_symlink() {
            b'l'
        } else {
            b'o'
        };
        h.update([kind]);
        h.update(rel.as_os_str().as_bytes());
        h.update(format!("\0{:o}\0", meta.mode() & 0o7777));
        if ft.is_file() {
            h.update(format!("{} {}", meta.len(), sha256_file(&path)?));
        } else if ft.is_symlink() {
            let target =
                fs::read_link(&path).map_err(|e| RecipeError::io("read link", &path, e))?;
            h.update(target.as_os_str().as_bytes());
        }
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_recognises_magic_bytes() {
        assert_eq!(
            Compression::sniff(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::sniff(b"\xfd7zXZ\0"), Some(Compression::Xz));
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::sniff(b"BZh91AY"), None);
        assert_eq!(Compression::sniff(b"hello/\0\0"), Some(Compression::None));
    }

    #[test]
    fn member_paths_are_stripped_and_checked() {
        let a = Path::new("x.tar");
        assert_eq!(
            member_path(a, b"./pkg-1/src/a.c", 1).unwrap(),
            Some(PathBuf::from("src/a.c"))
        );
        assert_eq!(member_path(a, b"pkg-1/", 1).unwrap(), None);
        assert_eq!(member_path(a, b"a", 0).unwrap(), Some(PathBuf::from("a")));
        let abs = member_path(a, b"/etc/passwd", 0).unwrap_err();
        assert!(format!("{:?}", abs).contains("absolute path"), "{abs:?}");
        let up = member_path(a, b"pkg/../../x", 1).unwrap_err();
        assert!(format!("{:?}", up).contains("\\\"..\\\""), "{up:?}");
    }

    #[test]
    fn symlink_targets_are_resolved_against_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        let a = Path::new("x.tar");
        let mut deps = Depends::new();
        let ok = |link: &str, target: &str, deps: &mut Depends| {
            resolve_in_tree(a, root, Path::new(link), Path::new(target), deps)
        };
        ok("a/b/l", "../c", &mut deps).unwrap();
        ok("a/b/l", "./c/../d", &mut deps).unwrap();
        assert!(ok("a/b/l", "../../../c", &mut deps).is_err());
        assert!(ok("b", "..", &mut deps).is_err());
        assert!(ok("b", "/etc/passwd", &mut deps).is_err());
        // Chained: each alone stays inside lexically, together they leave.
        std::os::unix::fs::symlink("..", root.join("a/up")).unwrap();
        let e = ok("a/esc", "up/../..", &mut deps).unwrap_err();
        let msg = format!("{:#}", anyhow::Error::new(e));
        assert!(
            msg.contains("a/esc") && msg.contains("outside the tree") && msg.contains("a/up"),
            "{msg}"
        );
        // A loop of links ends, and is not an escape.
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        let e = ok("l", "loop1/x", &mut deps).unwrap_err();
        assert!(format!("{:#}", anyhow::Error::new(e)).contains("more than 40 symlinks"));
        // A name not there yet is taken for a directory, and recorded: only a directory
        // may appear there later.
        let mut deps = Depends::new();
        ok("s", "later/../x", &mut deps).unwrap();
        assert!(check_depends(a, Path::new("later"), true, &deps).is_err());
        assert!(check_depends(a, Path::new("later"), false, &deps).is_ok());
        ok("s2", "a/up/b", &mut deps).unwrap();
        assert!(check_depends(a, Path::new("a/up"), false, &deps).is_err());
    }
}
