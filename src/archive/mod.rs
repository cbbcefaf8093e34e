//! Deterministic, faithful archives: sorted walk -> explicit headers -> tar -> compression.
//!
//! `walk` turns DIR into entries, `header` serialises them, `format` and `pargz` compress, and
//! `list` reads any of it back. This file holds the public API and the two commands.

mod diff;
mod error;
mod format;
mod header;
mod list;
mod owner;
mod pargz;
mod read;
mod rpm;
mod walk;

use crate::fsutil::AtomicFile;
use crate::sys::archive::InterruptGuard;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use diff::{diff_archives, DiffReport, Difference, Field};
pub use error::ArchiveError;
pub use format::{decompress, open_archive, open_file, sniff, Compression, Format};
pub use list::{format_time, list, mode_string};
pub use owner::{parse_owner, Db, Names, Owner};
pub use read::{
    read_path, ArMember, ArchiveType, EntryKind, EntryMeta, HeaderGuard, Section, Visit,
};

use crate::ownership::Lookup;
use header::TarWriter;
use walk::Exclude;

/// Output buffer between the tar writer and the compressor or file.
const OUT_BUF: usize = 256 * 1024;

/// How to write an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    pub format: Format,
    /// Compression level, within `format.level_range()`.
    pub level: u32,
    /// Compression threads (gzip and zstd); the output does not depend on it.
    pub jobs: usize,
    /// Owner and group of every entry without a recorded one.
    pub owner: Owner,
    pub group: Owner,
    /// Take the uid (gid) of an entry without a record from lstat instead of `owner`
    /// (`group`), as GNU tar does: inside an nsroot session lstat shows the recorded owners.
    pub owner_from_lstat: bool,
    pub group_from_lstat: bool,
    /// Store ids only, no names.
    pub numeric_owner: bool,
    /// Later mtimes are stored as this (seconds since the epoch).
    pub mtime_clamp: Option<u64>,
    /// Store extended attributes as PAX `SCHILY.xattr.*`.
    pub xattrs: bool,
    /// Show a progress bar on stderr when it is a terminal and packing takes a while.
    pub progress: bool,
    /// Names as pacman packages store them: `usr/bin/x`, not `./usr/bin/x`, and no entry
    /// for DIR itself.
    pub bare_names: bool,
    /// Files written before the tree, in this order (a package's metadata: `.PKGINFO`...):
    /// name and content, each a regular file, mode 0644, root:root, dated `mtime_clamp`
    /// (or 0).
    pub lead: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PackOptions {
    /// Defaults for `format`: its default level, one thread, root:root, no clamp, no xattrs,
    /// no progress bar.
    pub fn new(format: Format) -> PackOptions {
        PackOptions {
            format,
            level: format.default_level(),
            jobs: 1,
            owner: Owner::root(),
            group: Owner::root(),
            owner_from_lstat: false,
            group_from_lstat: false,
            numeric_owner: false,
            mtime_clamp: None,
            xattrs: false,
            progress: false,
            bare_names: false,
            lead: Vec::new(),
        }
    }
}

/// `N` or `@N` seconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Option<u64> {
    s.trim().strip_prefix('@').unwrap_or(s.trim()).parse().ok()
}

/// Where `pack` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, replaced atomically when the archive is complete.
    Path(PathBuf),
    Stdout,
}

impl Output {
    /// `-` is stdout, anything else a path.
    pub fn from_arg(arg: &Path) -> Output {
        if arg == Path::new("-") {
            Output::Stdout
        } else {
            Output::Path(arg.to_path_buf())
        }
    }
}

/// What `pack` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackSummary {
    /// Entries written (hard links and directories included).
    pub entries: u64,
    /// Bytes of file content archived.
    pub content_bytes: u64,
    /// Bytes written to the output (after compression).
    pub output_bytes: u64,
    /// Things skipped, such as sockets, one message each.
    pub warnings: Vec<String>,
}

/// Writes the tree under `dir` as an archive to `out`, applying `records` per entry.
///
/// A file output is written beside its final name and renamed into place once complete and
/// synced; on any error or SIGINT/SIGTERM/SIGHUP nothing is left and an existing file stays
/// untouched. An output inside `dir` is not archived.
///
/// Errors name the path concerned. Input errors (exit 2): `dir` missing or not a directory,
/// the output's directory missing, the output being a directory, stdout a terminal.
pub fn pack(
    dir: &Path,
    out: &Output,
    opts: &PackOptions,
    records: Option<&dyn Lookup>,
) -> Result<PackSummary, ArchiveError> {
    check_dir(dir)?;
    match out {
        Output::Stdout => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(ArchiveError::input(
                    "output -",
                    "refusing to write an archive to a terminal; redirect stdout",
                ));
            }
            let mut exclude = Exclude::new();
            // `-o - > DIR/x.tar` must not archive itself either.
            if let Ok(meta) = stdout
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .and_then(|f| f.metadata())
            {
                if meta.is_file() {
                    exclude.push((meta.dev(), meta.ino()));
                }
            }
            let dest = Path::new("stdout");
            let w = BufWriter::with_capacity(OUT_BUF, stdout.lock());
            let (summary, w) = pack_stream(dir, w, opts, records, &exclude, dest)?;
            w.into_inner().map(drop).map_err(|e| ArchiveError::Write {
                dest: dest.into(),
                source: e.into_error(),
            })?;
            Ok(summary)
        }
        Output::Path(path) => pack_to_file(dir, path, opts, records),
    }
}

fn check_dir(dir: &Path) -> Result<(), ArchiveError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ArchiveError::input(
            format!("DIR {}", dir.display()),
            "not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ArchiveError::input(
            format!("DIR {}", dir.display()),
            "no such directory",
        )),
        Err(e) => Err(ArchiveError::io("stat", dir, e)),
    }
}

fn pack_to_file(
    dir: &Path,
    path: &Path,
    opts: &PackOptions,
    records: Option<&dyn Lookup>,
) -> Result<PackSummary, ArchiveError> {
    let context = || format!("output {}", path.display());
    let existing = std::fs::metadata(path).ok();
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(ArchiveError::input(context(), "is a directory"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ArchiveError::input(
            context(),
            format!("directory {} does not exist", parent.display()),
        ));
    }
    // Held until the output is in place: a signal at any point (walk, compressor, sync,
    // rename) ends in a clean error, never in the default action with a file half-made.
    let guard = InterruptGuard::install()
        .map_err(|e| ArchiveError::io("install signal handlers for", path, e))?;
    // 0666 before the umask, as any newly created file. Unnamed until complete, so even
    // SIGKILL leaves nothing behind.
    let tmp = AtomicFile::create(path, 0o666)
        .map_err(|e| ArchiveError::io("create a temporary file in", parent, e))?;
    let tmp_meta = tmp
        .file()
        .metadata()
        .map_err(|e| ArchiveError::io("stat the temporary file for", path, e))?;
    let mut exclude = vec![(tmp_meta.dev(), tmp_meta.ino())];
    if let Some(m) = &existing {
        exclude.push((m.dev(), m.ino()));
    }
    let w = BufWriter::with_capacity(OUT_BUF, tmp.file());
    // On any error below, `tmp` drops and the partial file is gone.
    let (summary, w) = pack_stream(dir, w, opts, records, &exclude, path)?;
    w.into_inner().map_err(|e| ArchiveError::Write {
        dest: path.into(),
        source: e.into_error(),
    })?;
    if let Some(signal) = guard.interrupted() {
        return Err(ArchiveError::Interrupted { signal });
    }
    tmp.commit()
        .map_err(|e| ArchiveError::io("put in place", path, e))?;
    Ok(summary)
}

/// Writes the tree under `dir` as a tar stream, compressed as `opts.format` says, to `out`,
/// and returns `out` (e.g. for the .deb writer to append the next member).
///
/// Nothing is excluded and `opts.progress` is honoured. Errors name the path concerned;
/// `dir` missing is an input error.
pub fn pack_to_writer<W: Write>(
    dir: &Path,
    out: W,
    opts: &PackOptions,
    records: Option<&dyn Lookup>,
) -> Result<(PackSummary, W), ArchiveError> {
    check_dir(dir)?;
    let (summary, w) = pack_stream(
        dir,
        BufWriter::with_capacity(OUT_BUF, out),
        opts,
        records,
        &Exclude::new(),
        Path::new("output"),
    )?;
    let w = w.into_inner().map_err(|e| ArchiveError::Write {
        dest: "output".into(),
        source: e.into_error(),
    })?;
    Ok((summary, w))
}

/// Counts the bytes that reach the output.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pack_stream<W: Write>(
    dir: &Path,
    out: W,
    opts: &PackOptions,
    records: Option<&dyn Lookup>,
    exclude: &Exclude,
    dest: &Path,
) -> Result<(PackSummary, W), ArchiveError> {
    let werr = |e: io::Error| ArchiveError::Write {
        dest: dest.into(),
        source: e,
    };
    let counting = Counting {
        inner: out,
        count: 0,
    };
    let comp =
        format::Compressor::new(counting, opts.format, opts.level, opts.jobs).map_err(werr)?;
    let mut tar = TarWriter::new(comp);
    let mut summary = walk::write_tree(dir, &mut tar, opts, records, exclude, dest)?;
    let comp = tar.finish().map_err(werr)?;
    let mut counting = comp.finish().map_err(werr)?;
    counting.flush().map_err(werr)?;
    summary.output_bytes = counting.count;
    Ok((summary, counting.inner))
}

#[cfg(test)]
mod tests;
