//! The state file (`-s FILE`, `-i FILE`, `nsroot pack -i FILE`): format, reader, atomic writer.
//!
//! # Format, version 1
//!
//! A UTF-8 text file, one item per line, `\n` line ends:
//!
//! ```text
//! nsroot ownership state
//! version 1
//! # dev ino btime uid gid mode rdev [xattr...]
//! 2049 1835017 1764470000.123456789 33 33 - - -
//! 2049 1835020 1764470001.000000007 0 0 20644 1,3 -
//! 2049 1835022 1764470002.5 - - - - 736563757269...:01000002...
//! end 3
//! ```
//!
//! - Line 1 is the magic line `nsroot ownership state`; line 2 is `version N`. A reader
//!   refuses any other first line (a foreign file) and a version newer than it knows.
//! - Lines starting with `#` are comments. Each other line up to `end` is one record of seven
//!   or more space-separated fields: `st_dev` and `st_ino` in decimal (`st_dev` as
//!   `makedev(major, minor)` of glibc); the birth time as `SECONDS.NANOSECONDS` (`-` when the
//!   filesystem has none, then the record matches only files without one); uid and gid in
//!   decimal; the full `st_mode` in octal (file type included: a device node made by mknod);
//!   the device numbers as `MAJOR,MINOR`; then `-` or one or more xattrs as
//!   `HEXNAME:HEXVALUE`. A `-` in a field means "not recorded: use the disk's value".
//! - The last line is `end N`, N the number of records: a truncated file has no such line, or a
//!   wrong count, and is refused rather than half-loaded.
//! - Records are sorted by device and inode, so the same records give the same bytes.
//! - A record's mode, when given, is that of a character or block device (`S_IFCHR`,
//!   `S_IFBLK`): mknod's are the only file types recorded (the disk holds an empty regular
//!   file), and a mode whose type does not exist (`170755`) or that a record never carries
//!   (`10644`, a FIFO) is refused naming the line.
//!
//! # Bounds on reading
//!
//! What a state file given with `-i` can make nsroot hold is bounded ([`FILE_LIMITS`]):
//!
//! - it must be a regular file: a directory, FIFO, device or socket is refused from its
//!   `stat(2)` before it is opened (`-i /dev/zero` would never end, `-i FIFO` would wait for a
//!   writer), and again from the open descriptor (opened `O_NONBLOCK`);
//! - the magic line is judged from at most the first 4 KiB, before anything else is read;
//! - it is read line by line (never whole), each line at most 1 MiB (the longest record has
//!   its xattrs, hex-encoded, up to about 500 KiB together);
//! - at most 2,000,000 records and 256 MiB in all.
//!
//! The line that crosses a bound is named in the error (exit 2). Records that come from the
//! sandbox process over a pipe ([`Store::from_bytes`]) are in memory already: only their line
//! length is bounded.
//!
//! The file is written to a temporary file beside the target, flushed with `fsync(2)`, then
//! renamed over the target (rename(2) is atomic), and the directory is synced: a crash or an
//! error leaves either the old file or the new one, never a mix.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::store::{Btime, FileId, Store, S_IFMT};
use super::{OwnershipError, Record};
use crate::error::InputError;

/// First line of every state file.
pub const MAGIC: &str = "nsroot ownership state";
/// The format version this nsroot writes, and the newest it reads.
pub const VERSION: u32 = 1;

/// The longest first line read before the magic line is judged: a foreign file costs no more.
const MAX_FIRST_LINE: usize = 4096;

/// Bounds on what a state file read from disk (`-i`) may make nsroot hold.
pub const FILE_LIMITS: Limits = Limits {
    line_bytes: 1 << 20,
    records: 2_000_000,
    total_bytes: 256 << 20,
};

/// How much a state file may hold; reading stops with an error naming the line that crosses a
/// bound, before it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line, `\n` included.
    pub line_bytes: usize,
    /// The most records.
    pub records: usize,
    /// The most bytes in the whole file.
    pub total_bytes: u64,
}

/// What went wrong while reading state-file contents: the format, or the read itself.
enum ParseError {
    Bad(String),
    Io(std::io::Error),
}

impl From<String> for ParseError {
    fn from(msg: String) -> ParseError {
        ParseError::Bad(msg)
    }
}

impl From<&str> for ParseError {
    fn from(msg: &str) -> ParseError {
        ParseError::Bad(msg.to_string())
    }
}

fn bad(path: &Path, msg: String) -> OwnershipError {
    OwnershipError::BadState {
        path: path.to_path_buf(),
        source: InputError::new(msg),
    }
}

fn to_ownership(path: &Path, e: ParseError) -> OwnershipError {
    match e {
        ParseError::Bad(msg) => bad(path, msg),
        ParseError::Io(source) => OwnershipError::ReadState {
            path: path.to_path_buf(),
            source,
        },
    }
}

impl Store {
    /// Reads a state file written by [`Store::save`], line by line, within [`FILE_LIMITS`].
    ///
    /// Only a regular file is read: a directory, FIFO, device or socket is refused from its
    /// `stat` before it is opened (opening a FIFO for reading would wait for a writer), and the
    /// descriptor is checked again after the open (`O_NONBLOCK`, so even a FIFO swapped in
    /// meanwhile cannot block it).
    ///
    /// Errors: [`OwnershipError::BadState`] (an [`InputError`] in its chain, so nsroot exits
    /// 2) when the file is missing, not a regular file, foreign, truncated, corrupt, over a
    /// limit or from a newer nsroot; [`OwnershipError::ReadState`] for other read failures.
    pub fn load(path: &Path) -> Result<Store, OwnershipError> {
        let read_err = |source| OwnershipError::ReadState {
            path: path.to_path_buf(),
            source,
        };
        let not_regular = |ft| {
            bad(
                path,
                format!("is {}, not a state file", crate::fsutil::kind_of(ft)),
            )
        };
        match std::fs::metadata(path) {
            Ok(m) if !m.file_type().is_file() => return Err(not_regular(m.file_type())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(path, "the file does not exist".into()));
            }
            Err(e) => return Err(read_err(e)),
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.file_type().is_file() {
            return Err(not_regular(meta.file_type()));
        }
        parse(std::io::BufReader::new(file), FILE_LIMITS).map_err(|e| to_ownership(path, e))
    }

    /// Parses state-file contents that came from somewhere other than a file (`origin` names
    /// it in errors), e.g. from the sandbox's process over a pipe. They are in memory already,
    /// so only their lines are bounded, not their number.
    ///
    /// Errors: [`OwnershipError::BadState`].
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Store, OwnershipError> {
        let limits = Limits {
            records: usize::MAX,
            total_bytes: u64::MAX,
            ..FILE_LIMITS
        };
        parse(bytes, limits).map_err(|e| to_ownership(origin, e))
    }

    /// [`Store::load`] on any reader, within `limits`: for tests of the bounds.
    ///
    /// Errors: [`OwnershipError::BadState`] naming `origin`, [`OwnershipError::ReadState`].
    pub fn read_from(
        reader: impl BufRead,
        origin: &Path,
        limits: Limits,
    ) -> Result<Store, OwnershipError> {
        parse(reader, limits).map_err(|e| to_ownership(origin, e))
    }

    /// Writes the records to `path` atomically (see the module docs for the format).
    ///
    /// Errors: [`OwnershipError::SaveState`] naming the step that failed; the previous file at
    /// `path`, if any, is then left as it was.
    pub fn save(&self, path: &Path) -> Result<(), OwnershipError> {
        write_atomically(path, |w| w.write_all(&self.to_bytes()))
    }

    /// The state file contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            format!("{MAGIC}\nversion {VERSION}\n# dev ino btime uid gid mode rdev [xattr...]\n");
        let entries = self.sorted();
        for (id, e) in &entries {
            let r = &e.record;
            let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
            let btime = e
                .btime
                .map_or("-".to_string(), |b| format!("{}.{:09}", b.sec, b.nsec));
            let mode = r.mode.map_or("-".to_string(), |m| format!("{m:o}"));
            let rdev = r.rdev.map_or("-".to_string(), |d| {
                format!("{},{}", libc::major(d), libc::minor(d))
            });
            out.push_str(&format!(
                "{} {} {btime} {} {} {mode} {rdev}",
                id.dev,
                id.ino,
                opt(r.uid),
                opt(r.gid)
            ));
            if r.xattrs.is_empty() {
                out.push_str(" -");
            }
            for (n, v) in &r.xattrs {
                out.push_str(&format!(
                    " {}:{}",
                    hex::encode(n.as_bytes()),
                    hex::encode(v)
                ));
            }
            out.push('\n');
        }
        out.push_str(&format!("end {}\n", entries.len()));
        out.into_bytes()
    }
}

/// Reads the lines of a state file one at a time, each and all of them bounded.
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    /// The number of the line last read, from 1.
    no: usize,
    total: u64,
    limits: Limits,
}

/// One line as read: complete (with its `\n`, which is cut off) or the file's unterminated end.
enum Line<'a> {
    Whole(&'a [u8]),
    Unterminated(&'a [u8]),
}

impl<R: BufRead> Lines<R> {
    /// The next line, at most `max` bytes with its `\n`; None at the end of the input.
    fn next(&mut self, max: usize) -> Result<Option<Line<'_>>, ParseError> {
        self.buf.clear();
        let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        let n = (&mut self.reader)
            .take(cap)
            .read_until(b'\n', &mut self.buf)
            .map_err(ParseError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        self.no += 1;
        self.total += n as u64;
        if self.total > self.limits.total_bytes {
            return Err(format!(
                "line {}: the file is larger than {} bytes, the most a state file may hold",
                self.no, self.limits.total_bytes
            )
            .into());
        }
        match self.buf.strip_suffix(b"\n") {
            Some(line) => Ok(Some(Line::Whole(line))),
            None if n > max => Err(format!(
                "line {} is longer than {max} bytes, the longest a state file may hold",
                self.no
            )
            .into()),
            None => Ok(Some(Line::Unterminated(&self.buf))),
        }
    }
}

/// Parses a state file, line by line; the error says what is wrong and on which line.
fn parse(reader: impl BufRead, limits: Limits) -> Result<Store, ParseError> {
    let mut lines = Lines {
        reader,
        buf: Vec::new(),
        no: 0,
        total: 0,
        limits,
    };
    // The magic line first, from a few KiB at most: a foreign file is refused from its head.
    let first = match lines.next(MAX_FIRST_LINE.min(limits.line_bytes)) {
        Ok(None) => return Err("the file is empty (truncated?)".into()),
        Ok(Some(Line::Whole(l) | Line::Unterminated(l))) => l.to_vec(),
        // Too long for the magic line: judge the part read, cut to whole characters.
        Err(ParseError::Bad(_)) => {
            let mut head = lines.buf.clone();
            if let Err(e) = std::str::from_utf8(&head) {
                if e.error_len().is_none() {
                    head.truncate(e.valid_up_to());
                }
            }
            head
        }
        Err(e) => return Err(e),
    };
    let Ok(first) = std::str::from_utf8(&first) else {
        let head = String::from_utf8_lossy(&first[..first.len().min(40)]).into_owned();
        return Err(format!("not an nsroot state file (not text; it starts with {head:?})").into());
    };
    if first != MAGIC {
        let hint = if first.starts_with("dev=") {
            " (it looks like a fakeroot save file, which nsroot cannot read)"
        } else {
            ""
        };
        let shown: String = first.chars().take(60).collect();
        return Err(format!(
            "not an nsroot state file: the first line is {shown:?}, expected {MAGIC:?}{hint}"
        )
        .into());
    }
    let version = match lines.next(MAX_FIRST_LINE.min(limits.line_bytes))? {
        Some(Line::Whole(l) | Line::Unterminated(l)) => std::str::from_utf8(l)
            .ok()
            .and_then(|l| l.strip_prefix("version "))
            .and_then(|v| v.parse::<u32>().ok()),
        None => return Err("truncated: no version line after the magic line".into()),
    };
    match version {
        Some(VERSION) => {}
        Some(v) if v > VERSION => {
            return Err(format!(
                "format version {v} was written by a newer nsroot; this one reads version {VERSION}"
            )
            .into())
        }
        _ => return Err("line 2: expected \"version N\"".into()),
    }
    let mut store = Store::new();
    let mut count = 0usize;
    loop {
        let no = lines.no + 1;
        let line = match lines.next(limits.line_bytes)? {
            None => break,
            Some(Line::Unterminated(_)) => {
                return Err(format!("truncated: line {no} has no line end").into())
            }
            Some(Line::Whole(l)) => l,
        };
        let line = std::str::from_utf8(line)
            .map_err(|_| format!("line {no}: not text (a state file is UTF-8)"))?;
        if line.starts_with('#') {
            continue;
        }
        if let Some(n) = line.strip_prefix("end ") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("line {no}: bad record count {:?}", cut(n)))?;
            if n != count {
                return Err(format!("line {no}: says {n} records, but {count} precede it").into());
            }
            let mut rest = [0u8; 1];
            if lines.reader.read(&mut rest).map_err(ParseError::Io)? != 0 {
                return Err(format!("line {no}: data after the end line").into());
            }
            return Ok(store);
        }
        if count == limits.records {
            return Err(format!(
                "line {no}: more than {} records, the most a state file may hold",
                limits.records
            )
            .into());
        }
        let (id, btime, rec) = parse_record(line).map_err(|e| format!("line {no}: {e}"))?;
        if store.map.contains_key(&id) {
            return Err(format!(
                "line {no}: inode {} on device {} appears twice",
                id.ino, id.dev
            )
            .into());
        }
        store.insert(id, btime, rec);
        count += 1;
    }
    Err(format!("truncated: no \"end\" line after {count} records").into())
}

/// A field as shown in a message: at most 40 characters of it.
fn cut(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// The file types a record's mode may carry: the device nodes mknod asked for, which the disk
/// holds as empty regular files (KF-NO-DEVICES). The kernel makes every other type itself.
const RECORDED_TYPES: [u32; 2] = [libc::S_IFCHR, libc::S_IFBLK];

/// Checks a record's `st_mode`: a file type that exists, one a record may carry, and no bits
/// above the type.
fn check_mode(s: &str, m: u32) -> Result<(), String> {
    if m & !(S_IFMT | super::store::PERM_BITS) != 0 {
        return Err(format!(
            "bad mode {:?}: bits above the file type (st_mode is at most 0o177777)",
            cut(s)
        ));
    }
    let kind = match m & S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        t if RECORDED_TYPES.contains(&t) => return Ok(()),
        t => {
            return Err(format!(
                "bad mode {:?}: file type {t:o} does not exist (inode(7))",
                cut(s)
            ))
        }
    };
    Err(format!(
        "bad mode {:?}: the file type is {kind}, but a record's mode is that of a character \
         or block device made by mknod (the kernel makes the other types itself)",
        cut(s)
    ))
}

fn parse_record(line: &str) -> Result<(FileId, Option<Btime>, Record), String> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() < 8 {
        return Err(format!("expected at least 8 fields, found {}", f.len()));
    }
    let num = |what: &str, s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("bad {what} {:?}", cut(s)))
    };
    let opt_u32 = |what: &str, s: &str| -> Result<Option<u32>, String> {
        if s == "-" {
            Ok(None)
        } else {
            s.parse::<u32>()
                .map(Some)
                .map_err(|_| format!("bad {what} {:?}", cut(s)))
        }
    };
    let id = FileId {
        dev: num("device", f[0])?,
        ino: num("inode", f[1])?,
    };
    let btime = match f[2] {
        "-" => None,
        s => {
            let (sec, nsec) = s
                .split_once('.')
                .ok_or_else(|| format!("bad birth time {:?}", cut(s)))?;
            let sec = sec
                .parse::<i64>()
                .map_err(|_| format!("bad birth time {:?}", cut(s)))?;
            let nsec = nsec.parse::<u32>().ok().filter(|n| *n < 1_000_000_000);
            Some(Btime {
                sec,
                nsec: nsec.ok_or_else(|| format!("bad birth time {:?}", cut(s)))?,
            })
        }
    };
    let uid = opt_u32("uid", f[3])?;
    let gid = opt_u32("gid", f[4])?;
    let mode = match f[5] {
        "-" => None,
        s => {
            let m = u32::from_str_radix(s, 8).map_err(|_| format!("bad mode {:?}", cut(s)))?;
            check_mode(s, m)?;
            Some(m)
        }
    };
    let rdev = match f[6] {
        "-" => None,
        s => {
            let bad = || format!("bad device numbers {:?}", cut(s));
            let (ma, mi) = s.split_once(',').ok_or_else(bad)?;
            let (ma, mi) = (
                ma.parse::<u32>().map_err(|_| bad())?,
                mi.parse::<u32>().map_err(|_| bad())?,
            );
            Some(libc::makedev(ma, mi))
        }
    };
    let mut xattrs = Vec::new();
    if f[7..] != ["-"] {
        for x in &f[7..] {
            let bad = || format!("bad xattr {:?}", cut(x));
            let (n, v) = x.split_once(':').ok_or_else(bad)?;
            let n = hex::decode(n).map_err(|_| bad())?;
            let v = hex::decode(v).map_err(|_| bad())?;
            if n.is_empty() {
                return Err(bad());
            }
            xattrs.push((OsString::from_vec(n), v));
        }
    }
    Ok((
        id,
        btime,
        Record {
            uid,
            gid,
            mode,
            rdev,
            xattrs,
        },
    ))
}

/// Writes `path` atomically: an unnamed file, fsync, link and rename, fsync the directory.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), OwnershipError> {
    let err = |what: &'static str, source| OwnershipError::SaveState {
        path: path.to_path_buf(),
        what,
        source,
    };
    // Unnamed until complete (gone on any early return, even SIGKILL), then renamed over the
    // target and the directory synced (crate::fsutil::AtomicFile).
    let mut tmp = crate::fsutil::AtomicFile::create(path, 0o600)
        .map_err(|e| err("create a temporary file beside it", e))?;
    write(tmp.file_mut()).map_err(|e| err("write", e))?;
    tmp.commit()
        .map_err(|e| err("put the new file in place over it", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn sample() -> Store {
        let mut s = Store::new();
        let b = Some(Btime {
            sec: 1_764_470_000,
            nsec: 123,
        });
        s.set_owner(FileId { dev: 2049, ino: 10 }, b, Some(33), Some(33));
        s.set_device(
            FileId { dev: 2049, ino: 11 },
            None,
            libc::S_IFCHR | 0o644,
            libc::makedev(1, 3),
        );
        s.set_owner(FileId { dev: 2049, ino: 11 }, None, None, Some(6));
        s.set_xattr(
            FileId { dev: 5, ino: 1 },
            Some(Btime { sec: -3, nsec: 0 }),
            std::ffi::OsStr::new("security.capability"),
            &[1, 0, 0, 2, 0, 32],
        );
        s
    }

    fn load_err(contents: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("st");
        std::fs::write(&p, contents).unwrap();
        let e = Store::load(&p).unwrap_err();
        assert!(matches!(e, OwnershipError::BadState { .. }), "{e:?}");
        // Exit status 2: an InputError must be in the chain.
        let mut src: Option<&dyn Error> = Some(&e);
        let mut found = false;
        while let Some(s) = src {
            found |= s.is::<InputError>();
            src = s.source();
        }
        assert!(found, "no InputError in the chain of {e:?}");
        let any = anyhow::Error::new(e);
        assert_eq!(
            crate::error::exit_code_of(any.as_ref()),
            crate::error::EXIT_INPUT
        );
        let msg = format!("{any:#}");
        assert!(
            msg.contains(&p.display().to_string()),
            "message does not name the file: {msg}"
        );
        msg
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("st");
        let s = sample();
        s.save(&p).unwrap();
        let back = Store::load(&p).unwrap();
        assert_eq!(back, s);
        assert!(back.has_xattrs());
        // Deterministic bytes.
        assert_eq!(std::fs::read(&p).unwrap(), back.to_bytes());
    }

    #[test]
    fn empty_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("st");
        Store::new().save(&p).unwrap();
        assert!(Store::load(&p).unwrap().is_empty());
    }

    #[test]
    fn truncated_files_are_refused() {
        let full = sample().to_bytes();
        // Every proper prefix must fail, none may panic or load partially.
        for n in 0..full.len() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("st");
            std::fs::write(&p, &full[..n]).unwrap();
            assert!(Store::load(&p).is_err(), "prefix of {n} bytes loaded");
        }
        let msg = load_err(&full[..full.len() - 8]);
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn corrupt_record_names_the_line() {
        let text = String::from_utf8(sample().to_bytes())
            .unwrap()
            .replacen(" 33 33 ", " 33 x ", 1);
        let msg = load_err(text.as_bytes());
        assert!(msg.contains("line 5") && msg.contains("bad gid"), "{msg}");
        let msg = load_err(b"nsroot ownership state\nversion 1\n1 2 - - - - -\nend 1\n");
        assert!(msg.contains("at least 8 fields"), "{msg}");
        let msg = load_err(b"nsroot ownership state\nversion 1\n1 2 - 3 - - - -\nend 2\n");
        assert!(msg.contains("says 2 records"), "{msg}");
        let msg = load_err(b"nsroot ownership state\nversion 1\n1 2 - 3 - - - zz:00\nend 1\n");
        assert!(msg.contains("bad xattr"), "{msg}");
    }

    #[test]
    fn modes_of_no_recorded_file_type_are_refused_naming_the_line() {
        for (mode, why) in [
            ("170755", "does not exist"),
            ("10644", "a FIFO"),
            ("100644", "a regular file"),
            ("40755", "a directory"),
            ("644", "does not exist"),
            ("1020644", "bits above the file type"),
        ] {
            let text =
                format!("nsroot ownership state\nversion 1\n1 2 - - - {mode} 1,3 -\nend 1\n");
            let msg = load_err(text.as_bytes());
            assert!(
                msg.contains("line 3") && msg.contains("bad mode") && msg.contains(why),
                "{mode}: {msg}"
            );
        }
        for mode in ["20644", "60660"] {
            let text =
                format!("nsroot ownership state\nversion 1\n1 2 - - - {mode} 1,3 -\nend 1\n");
            let p = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(p.path(), text).unwrap();
            Store::load(p.path()).unwrap();
        }
    }

    /// An endless reader that counts the bytes taken from it.
    struct Endless<'a> {
        head: &'a [u8],
        fill: u8,
        taken: &'a std::cell::Cell<u64>,
    }

    impl std::io::Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = if self.head.is_empty() {
                buf.fill(self.fill);
                buf.len()
            } else {
                let n = self.head.len().min(buf.len());
                buf[..n].copy_from_slice(&self.head[..n]);
                self.head = &self.head[n..];
                n
            };
            self.taken.set(self.taken.get() + n as u64);
            Ok(n)
        }
    }

    fn endless_err(head: &[u8], fill: u8) -> (String, u64) {
        let taken = std::cell::Cell::new(0);
        let r = Endless {
            head,
            fill,
            taken: &taken,
        };
        let e =
            Store::read_from(std::io::BufReader::new(r), Path::new("st"), FILE_LIMITS).unwrap_err();
        (format!("{:#}", anyhow::Error::new(e)), taken.get())
    }

    #[test]
    fn endless_input_is_refused_after_a_bounded_read() {
        // No line end at all: judged from the first line's first 4 KiB.
        let (msg, taken) = endless_err(b"", 0);
        assert!(msg.contains("not an nsroot state file"), "{msg}");
        assert!(taken <= 16 << 10, "read {taken} bytes");
        let (msg, taken) = endless_err(b"", b'x');
        assert!(msg.contains("the first line is \"xxx"), "{msg}");
        assert!(taken <= 16 << 10, "read {taken} bytes");
        // A good header, then an endless line: refused once it is longer than a line may be.
        let (msg, taken) = endless_err(b"nsroot ownership state\nversion 1\n", b'7');
        assert!(msg.contains("line 3 is longer than 1048576 bytes"), "{msg}");
        assert!(taken <= (1 << 20) + (16 << 10), "read {taken} bytes");
        // Endless short lines of garbage: the first one is refused.
        let (msg, taken) = endless_err(b"nsroot ownership state\nversion 1\n", b'\n');
        assert!(msg.contains("line 3: expected at least 8 fields"), "{msg}");
        assert!(taken <= 16 << 10, "read {taken} bytes");
    }

    #[test]
    fn records_bytes_and_lines_are_bounded() {
        let text = sample().to_bytes();
        let read = |limits: Limits| {
            Store::read_from(&text[..], Path::new("st"), limits)
                .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
        };
        assert!(read(FILE_LIMITS).is_ok());
        let msg = read(Limits {
            records: 2,
            ..FILE_LIMITS
        })
        .unwrap_err();
        assert!(
            msg.contains("st") && msg.contains("line 6: more than 2 records"),
            "{msg}"
        );
        let msg = read(Limits {
            total_bytes: 100,
            ..FILE_LIMITS
        })
        .unwrap_err();
        assert!(msg.contains("larger than 100 bytes"), "{msg}");
        let msg = read(Limits {
            line_bytes: 60,
            ..FILE_LIMITS
        })
        .unwrap_err();
        assert!(msg.contains("line 4 is longer than 60 bytes"), "{msg}");
    }

    #[test]
    fn files_that_are_not_regular_are_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let link = dir.path().join("zero-link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for (p, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (&fifo, "a FIFO"),
            (&link, "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = Store::load(p).unwrap_err();
            let any = anyhow::Error::new(e);
            assert_eq!(
                crate::error::exit_code_of(any.as_ref()),
                crate::error::EXIT_INPUT
            );
            let msg = format!("{any:#}");
            assert!(
                msg.contains(&p.display().to_string()) && msg.contains(kind),
                "{msg}"
            );
        }
    }

    #[test]
    fn future_version_is_refused() {
        let msg = load_err(b"nsroot ownership state\nversion 2\nend 0\n");
        assert!(msg.contains("newer nsroot"), "{msg}");
    }

    #[test]
    fn foreign_files_are_refused() {
        let msg = load_err(b"dev=801,ino=12,mode=100644,uid=0,gid=0,nlink=1,rdev=0\n");
        assert!(msg.contains("fakeroot"), "{msg}");
        let msg = load_err(b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe");
        assert!(msg.contains("not an nsroot state file"), "{msg}");
        let msg = load_err(b"");
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_input_error() {
        let msg = load_err_missing();
        assert!(msg.contains("does not exist"), "{msg}");
    }

    fn load_err_missing() -> String {
        let e = Store::load(Path::new("/nonexistent/nsroot-state")).unwrap_err();
        format!("{:#}", anyhow::Error::new(e))
    }

    #[test]
    fn failed_save_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("st");
        sample().save(&p).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = write_atomically(&p, |w| {
            w.write_all(b"nsroot ownership state\nversion 1\n")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(format!("{e}").contains(&p.display().to_string()));
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![OsString::from("st")],
            "temporary file left behind"
        );
        // Saving into a directory that does not exist fails cleanly.
        assert!(sample().save(&dir.path().join("no/such/dir/st")).is_err());
    }
}
