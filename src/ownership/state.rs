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
//!
//! The file is written to a temporary file beside the target, flushed with `fsync(2)`, then
//! renamed over the target (rename(2) is atomic), and the directory is synced: a crash or an
//! error leaves either the old file or the new one, never a mix.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::store::{Btime, FileId, Store};
use super::{OwnershipError, Record};
use crate::error::InputError;

/// First line of every state file.
pub const MAGIC: &str = "nsroot ownership state";
/// The format version this nsroot writes, and the newest it reads.
pub const VERSION: u32 = 1;

fn bad(path: &Path, msg: String) -> OwnershipError {
    OwnershipError::BadState {
        path: path.to_path_buf(),
        source: InputError::new(msg),
    }
}

impl Store {
    /// Reads a state file written by [`Store::save`].
    ///
    /// Errors: [`OwnershipError::BadState`] (an [`InputError`] in its chain, so nsroot exits
    /// 2) when the file is missing, foreign, truncated, corrupt or from a newer nsroot;
    /// [`OwnershipError::ReadState`] for other read failures.
    pub fn load(path: &Path) -> Result<Store, OwnershipError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(path, "the file does not exist".into()));
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                return Err(bad(path, "is a directory, not a state file".into()));
            }
            Err(e) => {
                return Err(OwnershipError::ReadState {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        parse(&bytes).map_err(|msg| bad(path, msg))
    }

    /// Parses state-file contents that came from somewhere other than a file (`origin` names
    /// it in errors), e.g. from the sandbox's process over a pipe.
    ///
    /// Errors: [`OwnershipError::BadState`].
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Store, OwnershipError> {
        parse(bytes).map_err(|msg| bad(origin, msg))
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

/// Parses a whole state file; the error says what is wrong and on which line.
fn parse(bytes: &[u8]) -> Result<Store, String> {
    if bytes.is_empty() {
        return Err("the file is empty (truncated?)".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        format!("not an nsroot state file (not text; it starts with {head:?})")
    })?;
    let mut lines = text
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    let first = lines
        .next()
        .map(|(_, l)| l.trim_end_matches('\n'))
        .unwrap_or("");
    if first != MAGIC {
        let hint = if first.starts_with("dev=") {
            " (it looks like a fakeroot save file, which nsroot cannot read)"
        } else {
            ""
        };
        let shown: String = first.chars().take(60).collect();
        return Err(format!(
            "not an nsroot state file: the first line is {shown:?}, expected {MAGIC:?}{hint}"
        ));
    }
    let version = match lines.next() {
        Some((_, l)) => l
            .trim_end_matches('\n')
            .strip_prefix("version ")
            .and_then(|v| v.parse::<u32>().ok()),
        None => return Err("truncated: no version line after the magic line".into()),
    };
    match version {
        Some(VERSION) => {}
        Some(v) if v > VERSION => {
            return Err(format!(
                "format version {v} was written by a newer nsroot; this one reads version {VERSION}"
            ))
        }
        _ => return Err("line 2: expected \"version N\"".into()),
    }
    let mut store = Store::new();
    let mut count = 0usize;
    for (no, raw) in lines {
        let Some(line) = raw.strip_suffix('\n') else {
            return Err(format!("truncated: line {no} has no line end"));
        };
        if line.starts_with('#') {
            continue;
        }
        if let Some(n) = line.strip_prefix("end ") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("line {no}: bad record count {n:?}"))?;
            if n != count {
                return Err(format!(
                    "line {no}: says {n} records, but {count} precede it"
                ));
            }
            if text.len() > raw.as_ptr() as usize - text.as_ptr() as usize + raw.len() {
                return Err(format!("line {no}: data after the end line"));
            }
            return Ok(store);
        }
        let (id, btime, rec) = parse_record(line).map_err(|e| format!("line {no}: {e}"))?;
        if store.map.contains_key(&id) {
            return Err(format!(
                "line {no}: inode {} on device {} appears twice",
                id.ino, id.dev
            ));
        }
        store.insert(id, btime, rec);
        count += 1;
    }
    Err(format!("truncated: no \"end\" line after {count} records"))
}

fn parse_record(line: &str) -> Result<(FileId, Option<Btime>, Record), String> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() < 8 {
        return Err(format!("expected at least 8 fields, found {}", f.len()));
    }
    let num = |what: &str, s: &str| s.parse::<u64>().map_err(|_| format!("bad {what} {s:?}"));
    let opt_u32 = |what: &str, s: &str| -> Result<Option<u32>, String> {
        if s == "-" {
            Ok(None)
        } else {
            s.parse::<u32>()
                .map(Some)
                .map_err(|_| format!("bad {what} {s:?}"))
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
                .ok_or_else(|| format!("bad birth time {s:?}"))?;
            let sec = sec
                .parse::<i64>()
                .map_err(|_| format!("bad birth time {s:?}"))?;
            let nsec = nsec.parse::<u32>().ok().filter(|n| *n < 1_000_000_000);
            Some(Btime {
                sec,
                nsec: nsec.ok_or_else(|| format!("bad birth time {s:?}"))?,
            })
        }
    };
    let uid = opt_u32("uid", f[3])?;
    let gid = opt_u32("gid", f[4])?;
    let mode = match f[5] {
        "-" => None,
        s => Some(u32::from_str_radix(s, 8).map_err(|_| format!("bad mode {s:?}"))?),
    };
    let rdev = match f[6] {
        "-" => None,
        s => {
            let bad = || format!("bad device numbers {s:?}");
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
            let bad = || format!("bad xattr {x:?}");
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
        assert_eq!(crate::error::exit_code_of(&any), crate::error::EXIT_INPUT);
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
