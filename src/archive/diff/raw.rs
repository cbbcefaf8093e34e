//! What `diff` compares below the entries: each entry's raw tar header blocks (format, PAX
//! records, field encodings), the end of the tar stream, and the compressed stream around it.
//!
//! The entry comparison works on what the headers mean; two archives can mean the same and
//! still differ in bytes. This module keeps enough of the bytes to say where.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::archive::error::ArchiveError;
use crate::archive::format::{open_file, sniff, Compression};
use crate::archive::list::escape_name;
use crate::archive::read::tar_number;

/// Extended header data kept per header block (more is hashed into the stream hash only).
const MAX_KEPT: usize = 64 * 1024;

/// One 512-byte header block and, for an extended header (`x`, `g`, `L`, `K`), its data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RawHeader {
    pub block: [u8; 512],
    pub data: Vec<u8>,
}

impl RawHeader {
    fn typeflag(&self) -> u8 {
        self.block[156]
    }

    /// What the block is, for reports: the entry's own header, or an extended one.
    fn role(&self, last: bool) -> &'static str {
        if last {
            return "";
        }
        match self.typeflag() {
            b'x' => "pax header ",
            b'g' => "pax global header ",
            b'L' => "long name header ",
            b'K' => "long link header ",
            _ => "extended header ",
        }
    }
}

/// The header blocks of one entry: extended headers first, the entry's own header last.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RawEntry {
    pub headers: Vec<RawHeader>,
}

impl RawEntry {
    fn main(&self) -> &RawHeader {
        &self.headers[self.headers.len() - 1]
    }

    /// `ustar`, `gnu`, `pax` (ustar with a PAX extended header), `v7`, or a mix (`gnu+pax`).
    pub fn format(&self) -> String {
        let b = &self.main().block;
        let base = if &b[257..263] == b"ustar " && &b[263..265] == b" \0" {
            "gnu"
        } else if &b[257..263] == b"ustar\0" {
            "ustar"
        } else {
            "v7"
        };
        let pax = self.headers.iter().any(|h| h.typeflag() == b'x');
        match (base, pax) {
            ("ustar", true) => "pax".into(),
            (base, true) => format!("{base}+pax"),
            (base, false) => base.into(),
        }
    }

    /// The PAX records of the entry's `x` and `g` headers, `g` ones prefixed `(global) `.
    pub fn pax_records(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for h in &self.headers {
            let prefix = match h.typeflag() {
                b'x' => "",
                b'g' => "(global) ",
                _ => continue,
            };
            for (k, v) in parse_pax(&h.data) {
                out.push((format!("{prefix}{k}"), v));
            }
        }
        out
    }
}

/// PAX records (`LEN KEY=VALUE\n`); a malformed rest is one record named `(malformed)`.
fn parse_pax(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let parsed = (|| {
            let sp = data.iter().position(|b| *b == b' ')?;
            let len: usize = std::str::from_utf8(&data[..sp]).ok()?.parse().ok()?;
            if len <= sp + 1 || len > data.len() {
                return None;
            }
            let rec = &data[sp + 1..len];
            let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
            let eq = rec.iter().position(|b| *b == b'=')?;
            Some((
                String::from_utf8_lossy(&rec[..eq]).into_owned(),
                rec[eq + 1..].to_vec(),
                len,
            ))
        })();
        match parsed {
            Some((k, v, len)) => {
                out.push((k, v));
                data = &data[len..];
            }
            None => {
                out.push(("(malformed)".into(), data.to_vec()));
                break;
            }
        }
    }
    out
}

/// Everything the tap saw of one tar stream.
#[derive(Debug, Default)]
pub(super) struct RawTar {
    /// How many entries' header blocks went into the queue (a trailing `g` header is dropped).
    pub entries: usize,
    /// Bytes from the first zero block to the end of the stream, and whether all are zero.
    pub end_len: u64,
    pub end_nonzero: bool,
    /// sha256 of the whole uncompressed stream.
    pub sha: [u8; 32],
    /// False when the headers could not be followed to the end (GNU sparse entries, an
    /// oversized or malformed header): the queued headers are then not to be trusted.
    pub complete: bool,
}

/// The header blocks of the entries a [`Tap`] has seen and its reader has not yet taken, in
/// archive order. The tap runs ahead of the tar reader by at most the reader's buffer, so
/// this holds a few entries at a time, never the archive's.
pub(super) type RawQueue = Rc<RefCell<VecDeque<RawEntry>>>;

/// A reader that passes an uncompressed tar stream through while following its headers.
pub(super) struct Tap<R> {
    inner: R,
    queue: RawQueue,
    hash: Sha256,
    block: [u8; 512],
    filled: usize,
    /// Data bytes (padded) still to pass before the next header.
    skip: u64,
    /// Data bytes of the current extended header still to keep.
    keep: u64,
    /// Extended headers waiting for their entry's own header.
    group: Vec<RawHeader>,
    /// A PAX `size` record for the next entry.
    next_size: Option<u64>,
    in_end: bool,
    off: bool,
    raw: RawTar,
}

impl<R> Tap<R> {
    /// A tap on `inner` that puts each entry's header blocks into `queue`.
    pub fn new(inner: R, queue: RawQueue) -> Self {
        Tap {
            inner,
            queue,
            hash: Sha256::new(),
            block: [0; 512],
            filled: 0,
            skip: 0,
            keep: 0,
            group: Vec::new(),
            next_size: None,
            in_end: false,
            off: false,
            raw: RawTar {
                complete: true,
                ..RawTar::default()
            },
        }
    }

    /// What was seen; call after the reader was read to its end.
    pub fn finish(mut self) -> RawTar {
        if self.filled > 0 {
            if self.in_end {
                self.raw.end_len += self.filled as u64;
                self.raw.end_nonzero |= self.block[..self.filled].iter().any(|b| *b != 0);
            } else {
                self.off = true;
            }
        }
        if self.off || self.skip > 0 {
            self.raw.complete = false;
        }
        self.raw.sha = self.hash.finalize().into();
        self.raw
    }

    fn inspect(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.off {
            if self.skip > 0 {
                let k = self.skip.min(data.len() as u64) as usize;
                if self.keep > 0 {
                    let want = self.keep.min(k as u64) as usize;
                    if let Some(h) = self.group.last_mut() {
                        if h.data.len() + want <= MAX_KEPT {
                            h.data.extend_from_slice(&data[..want]);
                        }
                    }
                    self.keep -= want as u64;
                    if self.keep == 0 {
                        self.end_extension();
                    }
                }
                self.skip -= k as u64;
                data = &data[k..];
                continue;
            }
            let k = (512 - self.filled).min(data.len());
            self.block[self.filled..self.filled + k].copy_from_slice(&data[..k]);
            self.filled += k;
            data = &data[k..];
            if self.filled == 512 {
                self.filled = 0;
                self.on_block();
            }
        }
    }

    /// An extended header's data is complete: a PAX `size` record sizes the next entry.
    fn end_extension(&mut self) {
        if let Some(h) = self.group.last() {
            if h.typeflag() == b'x' {
                for (k, v) in parse_pax(&h.data) {
                    if k == "size" {
                        self.next_size = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok());
                    }
                }
            }
        }
    }

    fn on_block(&mut self) {
        let b = self.block;
        if self.in_end {
            self.raw.end_len += 512;
            self.raw.end_nonzero |= b.iter().any(|x| *x != 0);
            return;
        }
        if b.iter().all(|x| *x == 0) {
            self.in_end = true;
            self.raw.end_len = 512;
            return;
        }
        let field = tar_number(&b[124..136]);
        match b[156] {
            b'x' | b'g' | b'L' | b'K' => {
                let Some(size) = field.filter(|s| *s <= 1 << 20) else {
                    self.off = true;
                    return;
                };
                self.group.push(RawHeader {
                    block: b,
                    data: Vec::new(),
                });
                self.keep = size;
                self.skip = size.next_multiple_of(512);
                if size == 0 {
                    self.end_extension();
                }
            }
            // GNU sparse entries carry extension blocks of their own: stop following.
            b'S' => self.off = true,
            t => {
                let size = if matches!(t, b'1'..=b'6') {
                    self.next_size = None;
                    0
                } else {
                    match self.next_size.take().or(field) {
                        Some(s) => s,
                        None => {
                            self.off = true;
                            return;
                        }
                    }
                };
                let mut headers = std::mem::take(&mut self.group);
                headers.push(RawHeader {
                    block: b,
                    data: Vec::new(),
                });
                self.queue.borrow_mut().push_back(RawEntry { headers });
                self.raw.entries += 1;
                self.skip = size.next_multiple_of(512);
            }
        }
    }
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.inspect(&buf[..n]);
        Ok(n)
    }
}

/// Which part of the entry comparison explains a header field's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Explains {
    Path,
    Mode,
    Owner,
    Size,
    Mtime,
    Link,
    Device,
    Type,
    Xattrs,
}

/// The fields of a ustar header: name, range, and what already compares their meaning.
const USTAR_FIELDS: &[(&str, usize, usize, Option<Explains>)] = &[
    ("name", 0, 100, Some(Explains::Path)),
    ("mode", 100, 108, Some(Explains::Mode)),
    ("uid", 108, 116, Some(Explains::Owner)),
    ("gid", 116, 124, Some(Explains::Owner)),
    ("size", 124, 136, Some(Explains::Size)),
    ("mtime", 136, 148, Some(Explains::Mtime)),
    ("typeflag", 156, 157, Some(Explains::Type)),
    ("linkname", 157, 257, Some(Explains::Link)),
    ("magic", 257, 263, None),
    ("version", 263, 265, None),
    ("uname", 265, 297, Some(Explains::Owner)),
    ("gname", 297, 329, Some(Explains::Owner)),
    ("devmajor", 329, 337, Some(Explains::Device)),
    ("devminor", 337, 345, Some(Explains::Device)),
    ("prefix", 345, 500, Some(Explains::Path)),
    ("padding", 500, 512, None),
    ("chksum", 148, 156, None),
];

/// GNU headers use the ustar prefix area for these.
const GNU_FIELDS: &[(&str, usize, usize, Option<Explains>)] = &[
    ("atime", 345, 357, None),
    ("ctime", 357, 369, None),
    ("offset", 369, 381, None),
    ("longnames", 381, 385, None),
    ("unused", 385, 386, None),
    ("sparse", 386, 482, None),
    ("isextended", 482, 483, None),
    ("realsize", 483, 495, None),
    ("padding", 495, 512, None),
];

/// PAX keys whose meaning the entry comparison already covers.
fn pax_explained_by(key: &str) -> Option<Explains> {
    match key {
        "path" => Some(Explains::Path),
        "linkpath" => Some(Explains::Link),
        "size" => Some(Explains::Size),
        "uid" | "gid" | "uname" | "gname" => Some(Explains::Owner),
        "mtime" => Some(Explains::Mtime),
        k if k.starts_with("SCHILY.xattr.") => Some(Explains::Xattrs),
        _ => None,
    }
}

fn field_value(b: &[u8]) -> String {
    let trimmed = match b.iter().rposition(|x| *x != 0) {
        Some(i) => &b[..=i],
        None => return "(empty)".into(),
    };
    escape_name(trimmed)
}

/// What kind of header difference: the format, the PAX records, or one field's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderDiff {
    Format,
    PaxRecords,
    Field,
}

/// The differences between two entries' header blocks that `explained` (the differences the
/// entry comparison reported) does not account for: the format, the PAX records not
/// explained, else the first header field whose bytes differ unexplained. Empty when the
/// blocks are the same, or every difference is explained.
pub(super) fn header_differences(
    a: &RawEntry,
    b: &RawEntry,
    explained: &[Explains],
) -> Vec<(HeaderDiff, String, String)> {
    let mut out = Vec::new();
    if a == b || explained.contains(&Explains::Type) {
        return out;
    }
    let (fa, fb) = (a.format(), b.format());
    if fa != fb {
        out.push((HeaderDiff::Format, fa, fb));
    }
    let keep = |recs: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        recs.into_iter()
            .filter(|(k, _)| {
                let bare = k.trim_start_matches("(global) ");
                !pax_explained_by(bare).is_some_and(|e| explained.contains(&e))
            })
            .collect()
    };
    let (ra, rb) = (keep(a.pax_records()), keep(b.pax_records()));
    if ra != rb {
        let only = |x: &[(String, Vec<u8>)], y: &[(String, Vec<u8>)]| {
            let items: Vec<String> = x
                .iter()
                .filter(|r| !y.contains(r))
                .map(|(k, v)| format!("{k}={}", escape_name(v)))
                .collect();
            if items.is_empty() {
                "(none)".to_string()
            } else {
                items.join(", ")
            }
        };
        let (oa, ob) = (only(&ra, &rb), only(&rb, &ra));
        if oa == "(none)" && ob == "(none)" {
            let keys = |r: &[(String, Vec<u8>)]| {
                let k: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
                format!("in the order {}", k.join(", "))
            };
            out.push((HeaderDiff::PaxRecords, keys(&ra), keys(&rb)));
        } else {
            out.push((HeaderDiff::PaxRecords, oa, ob));
        }
    }
    if !out.is_empty() {
        return out;
    }
    if a.headers.len() != b.headers.len() {
        let count = |e: &RawEntry| {
            let kinds: Vec<String> = e
                .headers
                .iter()
                .map(|h| format!("{:?}", h.typeflag() as char))
                .collect();
            format!("blocks {}", kinds.join(" "))
        };
        out.push((HeaderDiff::Field, count(a), count(b)));
        return out;
    }
    let n = a.headers.len();
    for (i, (ha, hb)) in a.headers.iter().zip(&b.headers).enumerate() {
        let last = i + 1 == n;
        let role = ha.role(last);
        let gnu = &ha.block[257..265] == b"ustar  \0";
        let fields = USTAR_FIELDS
            .iter()
            .filter(|f| !(gnu && f.1 >= 345 && f.2 <= 512));
        let fields = fields.chain(GNU_FIELDS.iter().filter(|_| gnu));
        // The checksum follows the other fields: it says something only when they are the same.
        let unsummed = |h: &RawHeader| {
            let mut b = h.block;
            b[148..156].fill(0);
            b
        };
        let others_differ = unsummed(ha) != unsummed(hb);
        // An extended header's data: PAX records were compared above; a GNU long name or
        // link target is the entry's path or link target.
        let data_explained = match ha.typeflag() {
            _ if last => false,
            b'x' | b'g' => true,
            b'L' => explained.contains(&Explains::Path),
            b'K' => explained.contains(&Explains::Link),
            _ => false,
        };
        for &(name, from, to, why) in fields {
            // An extended header mirrors its entry's name, mode, owner and mtime: what
            // explains the entry's fields explains its too. Its size follows its data.
            if why.is_some_and(|w| explained.contains(&w)) {
                continue;
            }
            if (name == "chksum" && others_differ) || (!last && name == "size" && data_explained) {
                continue;
            }
            let (x, y) = (&ha.block[from..to], &hb.block[from..to]);
            if x != y {
                out.push((
                    HeaderDiff::Field,
                    format!("{role}{name} {}", field_value(x)),
                    format!("{role}{name} {}", field_value(y)),
                ));
                return out;
            }
        }
        if ha.data != hb.data && !data_explained {
            out.push((
                HeaderDiff::Field,
                format!("{role}data {}", field_value(&ha.data)),
                format!("{role}data {}", field_value(&hb.data)),
            ));
            return out;
        }
    }
    out
}

/// The archive file as bytes: its compression, gzip header, length and sha256.
#[derive(Debug)]
pub(super) struct FileBytes {
    /// The first bytes (up to 64 KiB).
    pub head: Vec<u8>,
    pub compression: Compression,
    pub gzip: Option<GzipHeader>,
    pub len: u64,
    pub sha: [u8; 32],
}

/// The fields of a gzip member header (RFC 1952).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GzipHeader {
    /// FTEXT and FHCRC (the other flags follow from the fields below).
    pub flags: u8,
    pub mtime: u32,
    /// Extra flags: 2 for the slowest level, 4 for the fastest.
    pub xfl: u8,
    pub os: u8,
    pub extra: Option<Vec<u8>>,
    pub name: Option<Vec<u8>>,
    pub comment: Option<Vec<u8>>,
}

fn parse_gzip(b: &[u8]) -> Option<GzipHeader> {
    if b.len() < 10 || b[0] != 0x1f || b[1] != 0x8b {
        return None;
    }
    let flg = b[3];
    let mut h = GzipHeader {
        flags: flg & 0b11,
        mtime: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        xfl: b[8],
        os: b[9],
        extra: None,
        name: None,
        comment: None,
    };
    let mut rest = &b[10..];
    if flg & 4 != 0 {
        let len = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
        h.extra = Some(rest.get(2..2 + len)?.to_vec());
        rest = &rest[2 + len..];
    }
    let cstr = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let end = rest.iter().position(|x| *x == 0)?;
        let s = rest[..end].to_vec();
        *rest = &rest[end + 1..];
        Some(s)
    };
    if flg & 8 != 0 {
        h.name = Some(cstr(&mut rest)?);
    }
    if flg & 16 != 0 {
        h.comment = Some(cstr(&mut rest)?);
    }
    Some(h)
}

impl FileBytes {
    /// Reads the file at `path` once: its head for the compression, and its hash.
    ///
    /// Errors name the path (missing file: input error).
    pub fn read(path: &Path) -> Result<FileBytes, ArchiveError> {
        let mut f = open_file(path)?;
        let mut hash = Sha256::new();
        let mut head = Vec::new();
        let mut len = 0u64;
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ArchiveError::io("read", path, e)),
            };
            if head.len() < 64 * 1024 {
                head.extend_from_slice(&buf[..n]);
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
        let compression = sniff(&head);
        let gzip = (compression == Compression::Gzip)
            .then(|| parse_gzip(&head))
            .flatten();
        Ok(FileBytes {
            head,
            compression,
            gzip,
            len,
            sha: hash.finalize().into(),
        })
    }

    /// A word for the compression.
    pub fn compression_word(&self) -> &'static str {
        compression_word(self.compression)
    }

    /// `1234 bytes, sha256:...`
    pub fn summary(&self) -> String {
        format!("{} bytes, sha256:{}", self.len, hex::encode(self.sha))
    }
}

fn compression_word(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Xz => "xz",
    }
}

/// The gzip header fields that differ, as `gzip header F V, ...` for each side; None when the
/// headers are the same (or either cannot be parsed, then the bytes say it).
pub(super) fn gzip_header_difference(a: &GzipHeader, b: &GzipHeader) -> Option<(String, String)> {
    let opt = |v: &Option<Vec<u8>>| match v {
        Some(s) => escape_name(s),
        None => "(none)".into(),
    };
    let mut xa = Vec::new();
    let mut xb = Vec::new();
    let mut add = |name: &str, va: String, vb: String| {
        if va != vb {
            xa.push(format!("{name} {va}"));
            xb.push(format!("{name} {vb}"));
        }
    };
    add(
        "flags",
        format!("{:#04x}", a.flags),
        format!("{:#04x}", b.flags),
    );
    add("mtime", a.mtime.to_string(), b.mtime.to_string());
    add("name", opt(&a.name), opt(&b.name));
    add("comment", opt(&a.comment), opt(&b.comment));
    add("extra", opt(&a.extra), opt(&b.extra));
    add("xfl", a.xfl.to_string(), b.xfl.to_string());
    add("os", a.os.to_string(), b.os.to_string());
    if xa.is_empty() {
        return None;
    }
    Some((
        format!("gzip header {}", xa.join(", ")),
        format!("gzip header {}", xb.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8], magic: &[u8; 8], flag: u8) -> RawHeader {
        let mut block = [0u8; 512];
        block[..name.len()].copy_from_slice(name);
        block[100..107].copy_from_slice(b"0000644");
        block[156] = flag;
        block[257..265].copy_from_slice(magic);
        RawHeader {
            block,
            data: Vec::new(),
        }
    }

    #[test]
    fn pax_records_parse_by_length() {
        let recs = parse_pax(b"20 atime=1700000000\n11 a=b\nc=d\n");
        assert_eq!(recs[0], ("atime".to_string(), b"1700000000".to_vec()));
        assert_eq!(recs[1], ("a".to_string(), b"b\nc=d".to_vec()));
        assert_eq!(parse_pax(b"junk")[0].0, "(malformed)");
    }

    #[test]
    fn formats_and_first_unexplained_field() {
        let gnu = RawEntry {
            headers: vec![header(b"a", b"ustar  \0", b'0')],
        };
        let ustar = RawEntry {
            headers: vec![header(b"a", b"ustar\x0000", b'0')],
        };
        assert_eq!(gnu.format(), "gnu");
        assert_eq!(ustar.format(), "ustar");
        let d = header_differences(&gnu, &ustar, &[]);
        assert_eq!(d, [(HeaderDiff::Format, "gnu".into(), "ustar".into())]);

        let mut other = ustar.clone();
        other.headers[0].block[100..107].copy_from_slice(b"0100644");
        let d = header_differences(&ustar, &other, &[]);
        assert_eq!(
            d,
            [(
                HeaderDiff::Field,
                "mode 0000644".into(),
                "mode 0100644".into()
            )]
        );
        // The entry comparison reported the mode: nothing left to say.
        assert!(header_differences(&ustar, &other, &[Explains::Mode]).is_empty());
    }

    #[test]
    fn gzip_headers() {
        let a = parse_gzip(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
        let mut b_bytes = vec![0x1f, 0x8b, 8, 8, 1, 0, 0, 0, 0, 3];
        b_bytes.extend_from_slice(b"a.tar\0");
        let b = parse_gzip(&b_bytes).unwrap();
        assert_eq!(b.name.as_deref(), Some(&b"a.tar"[..]));
        assert_eq!(
            gzip_header_difference(&a, &b),
            Some((
                "gzip header mtime 0, name (none)".into(),
                "gzip header mtime 1, name a.tar".into()
            ))
        );
        assert_eq!(gzip_header_difference(&a, &a), None);
    }
}
