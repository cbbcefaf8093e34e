//! Reading archives back entry by entry, for `diff` and for listing: tar in any compression
//! nsroot reads, .deb (an ar archive whose control and data members are tars) and .rpm
//! (`rpm.rs`: its header's tags and its payload's files).
//!
//! Everything streams: a [`Visit`] gets each entry's header fields and a reader over its
//! content, and whatever it does not read is skipped. A truncated or corrupt input is an input
//! error naming the file (and the member of a .deb), never a silently shorter archive.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::error::ArchiveError;
use super::format::decompress;

/// The magic that starts an ar archive (and so a .deb).
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Where an entry lives: a plain tar archive, or a part of a .deb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// An entry of a tar archive.
    Tar,
    /// An ar member of a .deb (`debian-binary`, `control.tar.xz`, ...).
    Members,
    /// An entry of a .deb's control.tar.
    Control,
    /// An entry of a .deb's data.tar.
    Data,
    /// A file of an .rpm's payload (before the header's tags in reports: a changed file is
    /// the cause, the changed digests in the header its consequence).
    Payload,
    /// A tag of an .rpm's header (its name, its value as text).
    Header,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    HardLink,
    Symlink,
    Dir,
    Char,
    Block,
    Fifo,
    /// Any other tar type flag.
    Other(u8),
}

impl EntryKind {
    fn from_tar(t: tar::EntryType) -> EntryKind {
        match t {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                EntryKind::File
            }
            tar::EntryType::Link => EntryKind::HardLink,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Char => EntryKind::Char,
            tar::EntryType::Block => EntryKind::Block,
            tar::EntryType::Fifo => EntryKind::Fifo,
            other => EntryKind::Other(other.as_byte()),
        }
    }

    /// GNU tar's type character in listings.
    pub fn type_char(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::HardLink => 'h',
            EntryKind::Symlink => 'l',
            EntryKind::Dir => 'd',
            EntryKind::Char => 'c',
            EntryKind::Block => 'b',
            EntryKind::Fifo => 'p',
            EntryKind::Other(b'7') => 'C',
            EntryKind::Other(_) => '-',
        }
    }

    /// A word for reports: "file", "directory", ...
    pub fn word(self) -> String {
        match self {
            EntryKind::File => "file".into(),
            EntryKind::HardLink => "hard link".into(),
            EntryKind::Symlink => "symlink".into(),
            EntryKind::Dir => "directory".into(),
            EntryKind::Char => "character device".into(),
            EntryKind::Block => "block device".into(),
            EntryKind::Fifo => "fifo".into(),
            EntryKind::Other(b) => format!("type {:?}", b as char),
        }
    }
}

/// Everything an entry's headers say (PAX extensions applied).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryMeta {
    /// The path as stored (`./a/b`, directories usually with a trailing `/`).
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// The mode field, permission bits and setuid/setgid/sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Owner and group names; empty when the archive stores none.
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Content bytes.
    pub size: u64,
    /// Seconds since the epoch and the nanoseconds a PAX mtime may add.
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Symlink or hard link target; empty for other kinds.
    pub link: Vec<u8>,
    /// Device major and minor numbers (0, 0 for other kinds).
    pub dev: (u32, u32),
    /// Extended attributes (`SCHILY.xattr.*`), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The ar header of a .deb member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    pub name: Vec<u8>,
    pub mtime: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub size: u64,
}

impl ArMember {
    /// The section whose tar this member holds, if it holds one.
    pub fn tar_section(&self) -> Option<Section> {
        if self.name.starts_with(b"control.tar") {
            Some(Section::Control)
        } else if self.name.starts_with(b"data.tar") {
            Some(Section::Data)
        } else {
            None
        }
    }

    /// The member as an entry of [`Section::Members`]: a file named after the member.
    pub fn as_entry(&self) -> EntryMeta {
        EntryMeta {
            path: self.name.clone(),
            kind: EntryKind::File,
            mode: self.mode & 0o7777,
            uid: self.uid.into(),
            gid: self.gid.into(),
            uname: Vec::new(),
            gname: Vec::new(),
            size: self.size,
            mtime: self.mtime as i64,
            mtime_nsec: 0,
            link: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }
}

/// What reading an archive reports, in archive order.
pub trait Visit {
    /// One entry. `content` yields its `meta.size` bytes; what is left unread is skipped.
    /// Entries of [`Section::Members`] are the .deb members that hold no tar
    /// (`debian-binary`), with their raw content.
    ///
    /// Errors from reading `content` may be returned as they are: a failure of the input
    /// stream becomes an input error naming the archive.
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError>;

    /// A .deb member, before its content or the entries of its tar.
    fn member(&mut self, _member: &ArMember) -> Result<(), ArchiveError> {
        Ok(())
    }

    /// A .deb member holding a tar, after all its entries; `sha256` is over its raw bytes.
    fn tar_member(
        &mut self,
        _member: &ArMember,
        _section: Section,
        _sha256: [u8; 32],
    ) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// What kind of archive was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveType {
    Tar,
    Deb,
    Rpm,
}

/// Reads the archive at `path` (tar with any compression, .deb or .rpm) into `visit`.
///
/// Errors name the path: an input error (exit 2) when it does not exist, is not an archive,
/// or is corrupt or truncated.
pub fn read_path(path: &Path, visit: &mut dyn Visit) -> Result<ArchiveType, ArchiveError> {
    let file = super::format::open_file(path)?;
    read_any(Box::new(file), &path.display().to_string(), visit)
}

/// Reads an archive from `input`; `name` names it in errors.
pub fn read_any<'a>(
    input: Box<dyn Read + 'a>,
    name: &str,
    visit: &mut dyn Visit,
) -> Result<ArchiveType, ArchiveError> {
    let mut buf = BufReader::with_capacity(64 * 1024, input);
    let head = buf
        .fill_buf()
        .map_err(|e| ArchiveError::io("read", name, e))?;
    if head.starts_with(AR_MAGIC) {
        read_deb(buf, name, visit)?;
        Ok(ArchiveType::Deb)
    } else if super::rpm::is_rpm(head) {
        super::rpm::read_rpm(buf, name, visit)?;
        Ok(ArchiveType::Rpm)
    } else {
        let stream = decompress(Box::new(buf), Path::new(name))?;
        read_tar(stream, name, Section::Tar, visit)?;
        Ok(ArchiveType::Tar)
    }
}

/// The input error for a stream that failed while being read: corrupt or truncated.
fn corrupt(name: &str, e: io::Error) -> ArchiveError {
    // tar-rs quotes header bytes in its messages: keep the error on one printable line.
    let msg: String = e
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    ArchiveError::input(
        format!("archive {name}"),
        format!("corrupt or truncated: {msg}"),
    )
}

/// The largest extended header (PAX records, GNU long name or link) read; tar-rs would
/// otherwise buffer whatever size a header claims.
const MAX_EXTENSION: u64 = 1 << 20;

/// Follows the tar stream's headers as the bytes pass and refuses an extended header larger
/// than [`MAX_EXTENSION`] before tar-rs allocates it, so a crafted archive cannot make a
/// reader use gigabytes. PAX `size` records are honoured to find the next header; inside GNU
/// sparse entries it stops looking (passes everything through).
pub struct HeaderGuard<R> {
    inner: R,
    header: [u8; 512],
    filled: usize,
    /// Bytes of entry data (padded to a block) still to pass before the next header.
    skip: u64,
    /// The data of a PAX header being collected, and its real length.
    pax: Option<(Vec<u8>, usize)>,
    /// A PAX `size` that replaces the next header's size field.
    next_size: Option<u64>,
    off: bool,
}

impl<R> HeaderGuard<R> {
    /// Wraps a reader of a tar stream.
    pub fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            header: [0; 512],
            filled: 0,
            skip: 0,
            pax: None,
            next_size: None,
            off: false,
        }
    }

    fn inspect(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() && !self.off {
            if self.skip > 0 {
                let k = (self.skip.min(data.len() as u64)) as usize;
                if let Some((buf, len)) = &mut self.pax {
                    let want = len.saturating_sub(buf.len()).min(k);
                    buf.extend_from_slice(&data[..want]);
                }
                self.skip -= k as u64;
                data = &data[k..];
                if self.skip == 0 {
                    if let Some((buf, _)) = self.pax.take() {
                        self.next_size = pax_size(&buf).or(self.next_size);
                    }
                }
                continue;
            }
            let k = (512 - self.filled).min(data.len());
            self.header[self.filled..self.filled + k].copy_from_slice(&data[..k]);
            self.filled += k;
            data = &data[k..];
            if self.filled == 512 {
                self.filled = 0;
                self.on_header()?;
            }
        }
        Ok(())
    }

    fn on_header(&mut self) -> io::Result<()> {
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let kind = h[156];
        let field = tar_number(&h[124..136]);
        let size = match kind {
            b'x' | b'g' | b'L' | b'K' => {
                let size = field.unwrap_or(u64::MAX);
                if size > MAX_EXTENSION {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "an extended header claims {size} bytes (more than {MAX_EXTENSION})"
                        ),
                    ));
                }
                if kind == b'x' {
                    self.pax = Some((Vec::with_capacity(size as usize), size as usize));
                }
                size
            }
            // GNU sparse entries carry extension blocks of their own: stop following.
            b'S' => {
                self.off = true;
                return Ok(());
            }
            // Links, directories, devices and fifos have no data whatever the field says.
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => {
                self.next_size = None;
                0
            }
            _ => match self.next_size.take().or(field) {
                Some(s) => s,
                None => {
                    self.off = true;
                    return Ok(());
                }
            },
        };
        self.skip = size.next_multiple_of(512);
        if self.skip == 0 {
            if let Some((buf, _)) = self.pax.take() {
                self.next_size = pax_size(&buf).or(self.next_size);
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inspect(&buf[..n])?;
        Ok(n)
    }
}

/// A tar numeric field: octal digits (NUL/space padded) or GNU base-256.
pub(crate) fn tar_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `size` record of PAX extended header data, if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(data).ok()?;
    text.lines().find_map(|rec| {
        let (_, kv) = rec.split_once(' ')?;
        kv.strip_prefix("size=")?.parse().ok()
    })
}

/// Counts the bytes read through it into a shared cell.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A reader over exactly `left` bytes of `inner`: ending early is an error, and an error of
/// the inner stream is remembered, so the caller can tell it from the visitor's own errors.
struct Exact<R> {
    inner: R,
    left: u64,
    failed: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                self.failed = true;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the input ends {} bytes early", self.left),
                ))
            }
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                Err(e)
            }
        }
    }
}

impl<R: Read> Exact<R> {
    /// Skips what is left; errors when the stream ends early.
    fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }
}

/// Hands `content` to the visitor, then skips what it left; a failure of the stream wins over
/// the visitor's own error.
fn visit_content<R: Read>(
    visit: &mut dyn Visit,
    section: Section,
    meta: &EntryMeta,
    content: &mut Exact<R>,
    name: &str,
) -> Result<(), ArchiveError> {
    let result = visit.entry(section, meta, content);
    if content.failed {
        // Re-read to get the stream's error rather than the visitor's wrapping of it.
        let e = content.drain().err().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "read failed in an entry")
        });
        return Err(corrupt(name, e));
    }
    result?;
    content.drain().map_err(|e| corrupt(name, e))
}

/// Reads a tar stream into `visit`, as entries of `section`; `name` names it in errors.
fn read_tar(
    input: Box<dyn Read + '_>,
    name: &str,
    section: Section,
    visit: &mut dyn Visit,
) -> Result<(), ArchiveError> {
    let count = Rc::new(Cell::new(0u64));
    let mut archive = tar::Archive::new(Counting {
        inner: HeaderGuard::new(input),
        count: Rc::clone(&count),
    });
    // End of the last entry's content, rounded up to a block.
    let mut last_end = 0u64;
    let bad = |e: io::Error| corrupt(name, e);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            io::copy(&mut entry, &mut io::sink()).map_err(bad)?;
            last_end = count.get().next_multiple_of(512);
            continue;
        }
        let meta = entry_meta(&mut entry).map_err(bad)?;
        let size = entry.size();
        let mut content = Exact {
            inner: &mut entry,
            left: size,
            failed: false,
        };
        visit_content(visit, section, &meta, &mut content, name)?;
        last_end = count.get().next_multiple_of(512);
    }
    // tar-rs ends at end of input as it ends at the zero block that marks the end: only the
    // latter means the archive is whole.
    if count.get() < last_end + 512 {
        return Err(corrupt(
            name,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the end-of-archive marker is missing",
            ),
        ));
    }
    // Read to the end, so a compressed stream's own end (and checksum) is checked too.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(bad)?;
    Ok(())
}

/// The header fields of a tar entry, with its PAX extensions applied.
fn entry_meta<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<EntryMeta> {
    let h = entry.header();
    let kind = EntryKind::from_tar(h.entry_type());
    let mut meta = EntryMeta {
        path: entry.path_bytes().into_owned(),
        kind,
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        uname: h.username_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
        gname: h.groupname_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
        size: entry.size(),
        mtime: h.mtime()? as i64,
        mtime_nsec: 0,
        link: match kind {
            EntryKind::Symlink | EntryKind::HardLink => entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        dev: match kind {
            EntryKind::Char | EntryKind::Block => (
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            ),
            _ => (0, 0),
        },
        xattrs: Vec::new(),
    };
    // tar-rs applies PAX path, linkpath, size, uid and gid itself; the rest is ours to apply.
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).ok();
            match ext.key_bytes() {
                b"uid" => meta.uid = text.and_then(|t| t.parse().ok()).unwrap_or(meta.uid),
                b"gid" => meta.gid = text.and_then(|t| t.parse().ok()).unwrap_or(meta.gid),
                b"mtime" => {
                    if let Some((s, ns)) = text.and_then(parse_pax_time) {
                        meta.mtime = s;
                        meta.mtime_nsec = ns;
                    }
                }
                b"uname" => meta.uname = value.to_vec(),
                b"gname" => meta.gname = value.to_vec(),
                key => {
                    if let Some(n) = key.strip_prefix(b"SCHILY.xattr.") {
                        meta.xattrs.push((n.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    meta.xattrs.sort();
    Ok(meta)
}

/// A PAX time, `SECONDS[.FRACTION]`, as seconds and nanoseconds.
fn parse_pax_time(t: &str) -> Option<(i64, u32)> {
    let (s, frac) = t.split_once('.').unwrap_or((t, ""));
    let secs: i64 = s.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some((secs, nsec))
}

/// Hashes the bytes read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a .deb (an ar archive): each member, and the entries of its control and data tars.
fn read_deb<R: Read>(input: R, name: &str, visit: &mut dyn Visit) -> Result<(), ArchiveError> {
    let mut ar = ar::Archive::new(input);
    let mut first = true;
    while let Some(member) = ar.next_entry() {
        let member = member.map_err(|e| corrupt(name, e))?;
        let h = member.header();
        let m = ArMember {
            name: h.identifier().to_vec(),
            mtime: h.mtime(),
            uid: h.uid(),
            gid: h.gid(),
            mode: h.mode(),
            size: h.size(),
        };
        if first && m.name != b"debian-binary" {
            return Err(ArchiveError::input(
                format!("archive {name}"),
                "an ar archive whose first member is not debian-binary: not a .deb",
            ));
        }
        first = false;
        visit.member(&m)?;
        let where_ = format!("{name} (member {})", String::from_utf8_lossy(&m.name));
        let mut content = Exact {
            inner: Hashing {
                inner: member,
                hash: Sha256::new(),
            },
            left: m.size,
            failed: false,
        };
        match m.tar_section() {
            Some(section) => {
                let stream = decompress(Box::new(&mut content), Path::new(&where_))?;
                read_tar(stream, &where_, section, visit)?;
                content.drain().map_err(|e| corrupt(&where_, e))?;
                let sha = content.inner.hash.finalize_reset().into();
                visit.tar_member(&m, section, sha)?;
            }
            None => visit_content(
                visit,
                Section::Members,
                &m.as_entry(),
                &mut content,
                &where_,
            )?,
        }
    }
    if first {
        return Err(ArchiveError::input(
            format!("archive {name}"),
            "an empty ar archive: not a .deb",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time("5.5"), Some((5, 500_000_000)));
        assert_eq!(parse_pax_time("5.123456789123"), Some((5, 123_456_789)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
