//! The packer's core: a sorted, streaming walk of DIR turning each file's full metadata (and
//! its recorded ownership) into a tar entry.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::ArchiveError;
use super::header::{EntryHeader, Kind, TarWriter, Xattrs};
use super::owner::{Db, Names};
use super::{PackOptions, PackSummary};
use crate::ownership::{Lookup, Record};
use crate::sys::archive::InterruptGuard;

/// Content is copied in chunks this large; the interrupt flag is checked between them.
const CHUNK: usize = 256 * 1024;

/// st_mode file type bits (S_IFMT and friends), fixed by POSIX on Linux.
const S_IFMT: u32 = 0o170000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// Major number of a Linux `dev_t` (glibc's encoding, as `makedev` builds it).
pub fn dev_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// Minor number of a Linux `dev_t`.
pub fn dev_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// Files never to archive, by (device, inode): the output being written and the one it
/// replaces, when they lie inside DIR.
pub(crate) type Exclude = Vec<(u64, u64)>;

/// Walks `dir` and writes its entries to `tar`.
pub(crate) fn write_tree<W: Write>(
    dir: &Path,
    tar: &mut TarWriter<W>,
    opts: &PackOptions,
    records: Option<&dyn Lookup>,
    exclude: &Exclude,
    dest: &Path,
) -> Result<PackSummary, ArchiveError> {
    let guard = InterruptGuard::install()
        .map_err(|e| ArchiveError::io("install signal handlers for", dest, e))?;
    let mut packer = Packer {
        opts,
        records,
        tar,
        dest,
        guard: &guard,
        links: HashMap::new(),
        summary: PackSummary::default(),
        buf: vec![0u8; CHUNK],
        progress: Progress::new(opts.progress),
        names: Names::system(),
    };
    // DIR given as a symlink is packed as the directory it points to, as `DIR/` is: a trailing
    // slash makes lstat follow it.
    let root = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => dir.join(""),
        _ => dir.to_path_buf(),
    };
    let meta = std::fs::symlink_metadata(&root).map_err(|e| ArchiveError::io("stat", &root, e))?;
    for (name, content) in &opts.lead {
        packer.lead(name, content)?;
    }
    if !opts.bare_names {
        packer.entry(&root, &root, Path::new(""), &meta)?;
    }
    // The directories being walked, innermost last; memory is their unvisited entries, and
    // one path of the innermost (two, where it is deeper than PATH_MAX allows: see Cursor).
    let mut stack = Vec::new();
    let mut cursor = Cursor::new(&root);
    if meta.is_dir() {
        stack.push(Level::read(cursor.access(), &root)?);
    }
    while let Some(level) = stack.last_mut() {
        packer.check_interrupt()?;
        let Some(child) = level.children.pop() else {
            stack.pop();
            cursor.pop();
            continue;
        };
        let name = OsStr::from_bytes(&child.name);
        let (at, shown) = (cursor.access().join(name), cursor.full().join(name));
        let meta =
            std::fs::symlink_metadata(&at).map_err(|e| ArchiveError::io("stat", &shown, e))?;
        if exclude.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        let rel = shown.strip_prefix(&root).unwrap_or(&shown);
        packer.entry(&at, &shown, rel, &meta)?;
        if meta.is_dir() {
            cursor.push(name, &shown)?;
            stack.push(Level::read(cursor.access(), &shown)?);
        }
    }
    packer.progress.finish();
    Ok(packer.summary)
}

/// Where a usable path to the directory being walked would pass this length, the cursor
/// opens the directory and goes on from `/proc/<pid>/fd/<n>`, so a tree of any depth packs
/// (GNU tar packs a 10,000-deep one; PATH_MAX is 4,096). The `<pid>` is ours as our own /proc
/// shows it, which an ownership supervisor also resolves correctly, unlike `self`.
const ANCHOR_AFTER: usize = 2048;

/// The directory being walked: its path as shown (in messages and, below DIR, in the archive)
/// and a path that reaches it in system calls, the same until the tree gets too deep.
struct Cursor {
    full: Vec<u8>,
    access: Vec<u8>,
    /// One per directory entered: the lengths to return to, and for an anchored directory
    /// the access path it replaced and its open descriptor.
    frames: Vec<Frame>,
}

struct Frame {
    full_len: usize,
    access_len: usize,
    anchor: Option<(Vec<u8>, File)>,
}

impl Cursor {
    fn new(root: &Path) -> Cursor {
        let root = root.as_os_str().as_bytes().to_vec();
        Cursor {
            full: root.clone(),
            access: root,
            frames: Vec::new(),
        }
    }

    fn full(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.full))
    }

    fn access(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.access))
    }

    /// Enters the subdirectory `name` (shown as `shown`).
    fn push(&mut self, name: &OsStr, shown: &Path) -> Result<(), ArchiveError> {
        let mut frame = Frame {
            full_len: self.full.len(),
            access_len: self.access.len(),
            anchor: None,
        };
        self.full.clear();
        self.full.extend_from_slice(shown.as_os_str().as_bytes());
        let at = self.access().join(name);
        if at.as_os_str().len() > ANCHOR_AFTER {
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&at)
                .map_err(|e| ArchiveError::io("open directory", shown, e))?;
            let via = format!("/proc/{}/fd/{}", std::process::id(), dir.as_raw_fd());
            let replaced = std::mem::replace(&mut self.access, via.into_bytes());
            frame.anchor = Some((replaced, dir));
        } else {
            self.access = at.into_os_string().into_vec();
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Leaves the innermost directory entered (nothing, at DIR itself).
    fn pop(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        self.full.truncate(frame.full_len);
        match frame.anchor {
            Some((replaced, _dir)) => self.access = replaced,
            None => self.access.truncate(frame.access_len),
        }
    }
}

/// A directory being walked: the entries not yet visited.
struct Level {
    /// Sorted last-first, so `pop` gives the next one.
    children: Vec<Child>,
}

/// A directory entry as read: its name, and whether it was a directory then (which decides
/// where it sorts).
struct Child {
    name: Box<[u8]>,
    is_dir: bool,
}

impl Level {
    /// Reads the entries of the directory at `dir` (shown as `shown`) and sorts them.
    fn read(dir: &Path, shown: &Path) -> Result<Level, ArchiveError> {
        let mut children = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| ArchiveError::io("read directory", shown, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ArchiveError::io("read directory", shown, e))?;
            // d_type from readdir; an lstat only where the filesystem does not give it.
            let ft = entry
                .file_type()
                .map_err(|e| ArchiveError::io("stat", shown.join(entry.file_name()), e))?;
            children.push(Child {
                name: entry.file_name().into_vec().into_boxed_slice(),
                is_dir: ft.is_dir(),
            });
        }
        children.shrink_to_fit();
        children.sort_unstable_by(|a, b| path_order(b, a));
        Ok(Level { children })
    }
}

/// The byte order of the paths the two entries get in the archive, where a directory's ends
/// in `/`: `a.txt` < `a/` (`.` < `/`). Since everything below `a/` starts with `a/`, walking
/// each directory in this order right after its own entry gives the whole archive in byte
/// order of the path, each directory before its contents, holding one directory's names at a
/// time.
fn path_order(a: &Child, b: &Child) -> std::cmp::Ordering {
    fn key(c: &Child) -> impl Iterator<Item = &u8> {
        c.name.iter().chain(c.is_dir.then_some(&b'/'))
    }
    key(a).cmp(key(b))
}

struct Packer<'a, W: Write> {
    opts: &'a PackOptions,
    records: Option<&'a dyn Lookup>,
    tar: &'a mut TarWriter<W>,
    dest: &'a Path,
    guard: &'a InterruptGuard,
    /// Archive names of files with more than one link, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    summary: PackSummary,
    buf: Vec<u8>,
    progress: Progress,
    /// Names for recorded ids, read from the host's files on first use.
    names: Names,
}

impl<W: Write> Packer<'_, W> {
    fn check_interrupt(&self) -> Result<(), ArchiveError> {
        match self.guard.interrupted() {
            Some(signal) => Err(ArchiveError::Interrupted { signal }),
            None => Ok(()),
        }
    }

    fn write_err(&self, e: io::Error) -> ArchiveError {
        ArchiveError::Write {
            dest: self.dest.to_path_buf(),
            source: e,
        }
    }

    /// Writes one of the files that come before the tree ([`PackOptions::lead`]).
    fn lead(&mut self, name: &[u8], content: &[u8]) -> Result<(), ArchiveError> {
        let header = EntryHeader {
            path: name.to_vec(),
            kind: Kind::File {
                size: content.len() as u64,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: self
                .opts
                .mtime_clamp
                .map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX)),
            xattrs: Vec::new(),
        };
        self.tar.header(&header).map_err(|e| self.write_err(e))?;
        self.tar.content(content).map_err(|e| self.write_err(e))?;
        self.tar
            .pad(content.len() as u64)
            .map_err(|e| self.write_err(e))?;
        self.summary.entries += 1;
        Ok(())
    }

    /// Archives one walked file, reached through `at` and shown as `shown`; `rel` is its path
    /// below DIR (empty for DIR itself).
    fn entry(
        &mut self,
        at: &Path,
        shown: &Path,
        rel: &Path,
        meta: &Metadata,
    ) -> Result<(), ArchiveError> {
        let ft = meta.file_type();
        if ft.is_socket() {
            self.summary
                .warnings
                .push(format!("{}: socket skipped", shown.display()));
            return Ok(());
        }
        let record = self
            .records
            .and_then(|r| r.lookup(at, meta))
            .unwrap_or_default();
        let mut name = if self.opts.bare_names {
            Vec::new()
        } else {
            b"./".to_vec()
        };
        name.extend_from_slice(rel.as_os_str().as_bytes());
        if ft.is_dir() && !rel.as_os_str().is_empty() {
            name.push(b'/');
        }

        let mut kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(at).map_err(|e| ArchiveError::io("read link", shown, e))?;
            Kind::Symlink {
                target: target.into_os_string().into_vec(),
            }
        } else if ft.is_char_device() {
            Kind::Char {
                major: dev_major(meta.rdev()),
                minor: dev_minor(meta.rdev()),
            }
        } else if ft.is_block_device() {
            Kind::Block {
                major: dev_major(meta.rdev()),
                minor: dev_minor(meta.rdev()),
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::File { size: meta.len() }
        };
        let mut mode = meta.mode() & 0o7777;
        if let Some(rec_mode) = record.mode {
            mode = rec_mode & 0o7777;
            // A device node or FIFO recorded by mknod lives on disk as an empty regular file.
            if matches!(kind, Kind::File { .. }) {
                let rdev = record.rdev.unwrap_or(0);
                match rec_mode & S_IFMT {
                    S_IFCHR => {
                        kind = Kind::Char {
                            major: dev_major(rdev),
                            minor: dev_minor(rdev),
                        }
                    }
                    S_IFBLK => {
                        kind = Kind::Block {
                            major: dev_major(rdev),
                            minor: dev_minor(rdev),
                        }
                    }
                    S_IFIFO => kind = Kind::Fifo,
                    _ => {}
                }
            }
        }
        if ft.is_symlink() {
            // Linux ignores a symlink's mode; store what tar does whatever was recorded.
            mode = 0o777;
        }

        // Hard links: the first name carries the content, later ones point to it.
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match self.links.get(&key) {
                Some(first) => {
                    kind = Kind::HardLink {
                        target: first.clone(),
                    }
                }
                None => {
                    self.links.insert(key, name.clone());
                }
            }
        }

        let header = self.header(at, shown, name, kind, mode, meta, &record)?;
        self.progress.entry(shown);
        self.summary.entries += 1;
        if let Kind::File { size } = header.kind {
            // Open before writing the header, so an unreadable file fails before any output.
            let file = self.open_same(at, shown, meta)?;
            self.tar.header(&header).map_err(|e| self.write_err(e))?;
            self.copy(shown, file, size)?;
            self.summary.content_bytes += size;
        } else {
            self.tar.header(&header).map_err(|e| self.write_err(e))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &self,
        at: &Path,
        shown: &Path,
        name: Vec<u8>,
        kind: Kind,
        mode: u32,
        meta: &Metadata,
        record: &Record,
    ) -> Result<EntryHeader, ArchiveError> {
        let opts = self.opts;
        let uid = record.uid.unwrap_or(if opts.owner_from_lstat {
            meta.uid()
        } else {
            opts.owner.id
        });
        let gid = record.gid.unwrap_or(if opts.group_from_lstat {
            meta.gid()
        } else {
            opts.group.id
        });
        // A recorded id other than the default gets the name /etc/passwd or /etc/group give it,
        // as fakeroot + GNU tar and dpkg-deb store; numeric only when it has none.
        let name_of = |id: u32, default: &super::Owner, db: Db| {
            if opts.numeric_owner {
                String::new()
            } else if id == default.id {
                default.name.clone()
            } else if id == 0 {
                "root".to_string()
            } else {
                self.names.name(db, id).unwrap_or_default().to_string()
            }
        };
        // Before 1970 stays negative (a clamp only lowers), stored as GNU tar stores it.
        let mtime = meta.mtime();
        let mtime = opts
            .mtime_clamp
            .map_or(mtime, |c| mtime.min(i64::try_from(c).unwrap_or(i64::MAX)));
        let xattrs = if opts.xattrs {
            read_xattrs(at, shown, record)?
        } else {
            Vec::new()
        };
        Ok(EntryHeader {
            path: name,
            kind,
            mode,
            uid: u64::from(uid),
            gid: u64::from(gid),
            uname: name_of(uid, &opts.owner, Db::Passwd),
            gname: name_of(gid, &opts.group, Db::Group),
            mtime,
            xattrs,
        })
    }

    /// Opens `at` (shown as `path`) for reading, making sure it is still the file that was
    /// walked.
    fn open_same(&self, at: &Path, path: &Path, meta: &Metadata) -> Result<File, ArchiveError> {
        // O_NOFOLLOW and O_NONBLOCK: if the file was swapped for a symlink or FIFO since the
        // walk, fail instead of following or hanging.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(at)
            .map_err(|e| ArchiveError::io("open", path, e))?;
        let now = file
            .metadata()
            .map_err(|e| ArchiveError::io("stat", path, e))?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(ArchiveError::Changed {
                path: path.into(),
                what: "was replaced".into(),
            });
        }
        Ok(file)
    }

    /// Copies exactly `size` bytes; a file that shrinks or grows meanwhile is an error, never
    /// a corrupt archive.
    fn copy(&mut self, path: &Path, mut file: File, size: u64) -> Result<(), ArchiveError> {
        let mut left = size;
        while left > 0 {
            self.check_interrupt()?;
            let want = left.min(CHUNK as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    let what = format!("shrank from {size} to {} bytes", size - left);
                    return Err(ArchiveError::Changed {
                        path: path.into(),
                        what,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::io("read", path, e)),
            };
            self.tar
                .content(&self.buf[..n])
                .map_err(|e| self.write_err(e))?;
            left -= n as u64;
            self.progress.bytes(n as u64);
        }
        loop {
            match file.read(&mut self.buf[..1]) {
                Ok(0) => break,
                Ok(_) => {
                    let what = format!("grew beyond {size} bytes");
                    return Err(ArchiveError::Changed {
                        path: path.into(),
                        what,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::io("read", path, e)),
            }
        }
        self.tar.pad(size).map_err(|e| self.write_err(e))
    }
}

/// The file's extended attributes (not following symlinks) merged with the recorded ones,
/// sorted by name. Of `system.*`, only the POSIX ACLs are kept, as GNU tar's `--xattrs`
/// stores them (`SCHILY.xattr.system.posix_acl_access`, the kernel's binary form): inside a
/// session the supervisor answers for an ACL it recorded, so leaving them out would drop it.
fn read_xattrs(at: &Path, path: &Path, record: &Record) -> Result<Xattrs, ArchiveError> {
    let mut out = Xattrs::new();
    let names = match xattr::list(at) {
        Ok(names) => names.collect::<Vec<_>>(),
        // Filesystems without xattr support have none to store.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
        Err(e) => return Err(ArchiveError::io("list extended attributes of", path, e)),
    };
    for n in names {
        let bytes = n.as_bytes().to_vec();
        if bytes.starts_with(b"system.") && !bytes.starts_with(b"system.posix_acl_") {
            continue;
        }
        match xattr::get(at, &n) {
            Ok(Some(v)) => out.push((bytes, v)),
            // Removed since it was listed: nothing to store.
            Ok(None) => {}
            Err(e) => return Err(ArchiveError::io("read extended attributes of", path, e)),
        }
    }
    for (n, v) in &record.xattrs {
        let n = n.as_bytes().to_vec();
        out.retain(|(k, _)| *k != n);
        out.push((n, v.clone()));
    }
    out.sort();
    Ok(out)
}

/// A progress bar on stderr, shown only when stderr is a terminal and packing has already
/// taken a while (the walk streams, so the tree's size is not known up front).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    shown: bool,
    entries: u64,
}

impl Progress {
    const DELAY: Duration = Duration::from_secs(1);

    fn new(wanted: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (wanted && io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::hidden(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed} {bytes} ({bytes_per_sec}) {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
            entries: 0,
        }
    }

    fn entry(&mut self, path: &Path) {
        if let Some(bar) = &self.bar {
            self.entries += 1;
            if !self.shown && self.start.elapsed() > Self::DELAY {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                self.shown = true;
            }
            // Formatting a path per entry would cost more than packing a small file.
            if self.shown && self.entries.is_multiple_of(256) {
                bar.set_message(format!("{} entries, {}", self.entries, path.display()));
            }
        }
    }

    fn bytes(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_match_libc() {
        for (ma, mi) in [(1, 3), (8, 1), (259, 65536), (4095, 1_048_575), (0, 0)] {
            let dev = libc::makedev(ma, mi);
            assert_eq!((dev_major(dev), dev_minor(dev)), (ma, mi));
        }
    }
}
