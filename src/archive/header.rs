//! Tar headers built by hand: ustar blocks, with PAX extended headers for whatever ustar cannot
//! hold (long or non-UTF-8-safe paths and link targets, sizes of 8 GiB and more, large ids,
//! long owner names, extended attributes).
//!
//! We write these ourselves rather than through tar-rs's `Builder` so that every byte is
//! chosen here: no atime/ctime, fixed PAX header names, no dependence on the host.

use std::io::{self, Write};

/// A tar block.
pub const BLOCK: usize = 512;

/// What an entry is, with what only that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file whose `size` content bytes follow the header.
    File {
        size: u64,
    },
    /// A second name of a file already in the archive under `target`.
    HardLink {
        target: Vec<u8>,
    },
    Symlink {
        target: Vec<u8>,
    },
    Dir,
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// Extended attributes as (name, value) byte strings.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything one entry's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The archive path as bytes (`./a/b`, directories with a trailing `/`).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Owner and group names; empty means "numeric only".
    pub uname: String,
    pub gname: String,
    /// Seconds since the epoch; negative for times before 1970.
    pub mtime: i64,
    /// Extended attributes, stored as `SCHILY.xattr.NAME`, in this order.
    pub xattrs: Xattrs,
}

impl EntryHeader {
    fn typeflag(&self) -> u8 {
        match self.kind {
            Kind::File { .. } => b'0',
            Kind::HardLink { .. } => b'1',
            Kind::Symlink { .. } => b'2',
            Kind::Char { .. } => b'3',
            Kind::Block { .. } => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }

    /// Content bytes that follow the header.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size } => size,
            _ => 0,
        }
    }
}

/// Largest value an octal field of `len` bytes holds (len - 1 digits and a NUL).
fn octal_max(len: usize) -> u64 {
    (1u64 << (3 * (len as u32 - 1))) - 1
}

/// Writes `v` as zero-padded octal plus NUL; false (field left as is) when it does not fit.
fn put_octal(field: &mut [u8], v: u64) -> bool {
    if v > octal_max(field.len()) {
        return false;
    }
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
    true
}

/// GNU base-256 (high bit set, big-endian): what tar-rs and GNU tar read for numbers too large
/// for octal. A PAX record carries the same value for strictly POSIX readers.
fn put_base256(field: &mut [u8], v: u64) {
    field.fill(0);
    let n = field.len();
    field[n - 8..].copy_from_slice(&v.to_be_bytes());
    field[0] |= 0x80;
}

/// Copies `s` into `field` if it fits (a NUL-terminated field may be full, as ustar allows).
fn put_str(field: &mut [u8], s: &[u8]) -> bool {
    if s.len() > field.len() {
        return false;
    }
    field[..s.len()].copy_from_slice(s);
    true
}

/// Splits a path into ustar's prefix (155) and name (100) at a `/`, if it can be.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    // The name part must not be empty; a directory's trailing '/' stays with the name.
    let search_end = path.len().saturating_sub(1);
    (0..search_end)
        .rev()
        .filter(|&i| path[i] == b'/')
        .find_map(|i| {
            let (prefix, name) = (&path[..i], &path[i + 1..]);
            (prefix.len() <= 155 && name.len() <= 100 && !name.is_empty()).then_some((prefix, name))
        })
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting the whole record including itself.
pub fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(s.as_bytes());
}

/// A ustar block with the fields every header shares. A negative mtime is stored as 0 here
/// and in full by a PAX record, as GNU tar's POSIX format does.
fn ustar_block(typeflag: u8, mode: u32, mtime: i64) -> [u8; BLOCK] {
    let mtime = u64::try_from(mtime).unwrap_or(0);
    let mut b = [0u8; BLOCK];
    put_octal(&mut b[100..108], u64::from(mode & 0o7777));
    put_octal(&mut b[108..116], 0);
    put_octal(&mut b[116..124], 0);
    put_octal(&mut b[124..136], 0);
    if !put_octal(&mut b[136..148], mtime) {
        put_base256(&mut b[136..148], mtime);
    }
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b
}

/// Serialises `h` into `out`: an optional PAX header ('x' plus its records) and the ustar
/// header. Content and padding are the caller's.
pub fn encode(h: &EntryHeader, out: &mut Vec<u8>) {
    let mut pax = Vec::new();
    let mut b = ustar_block(h.typeflag(), h.mode, h.mtime);

    match split_ustar(&h.path) {
        Some((prefix, name)) => {
            put_str(&mut b[0..100], name);
            put_str(&mut b[345..500], prefix);
        }
        None => {
            pax_record(&mut pax, b"path", &h.path);
            put_str(&mut b[0..100], &h.path[..100]);
        }
    }
    let link: &[u8] = match &h.kind {
        Kind::HardLink { target } | Kind::Symlink { target } => target,
        _ => &[],
    };
    if !put_str(&mut b[157..257], link) {
        pax_record(&mut pax, b"linkpath", link);
        put_str(&mut b[157..257], &link[..100]);
    }
    for (field, value, key) in [
        (108..116, h.uid, &b"uid"[..]),
        (116..124, h.gid, b"gid"),
        (124..136, h.size(), b"size"),
    ] {
        if !put_octal(&mut b[field.clone()], value) {
            pax_record(&mut pax, key, value.to_string().as_bytes());
            put_base256(&mut b[field], value);
        }
    }
    if h.mtime < 0 || !put_octal(&mut [0u8; 12], h.mtime as u64) {
        pax_record(&mut pax, b"mtime", h.mtime.to_string().as_bytes());
    }
    for (range, name, key) in [
        (265..297, &h.uname, &b"uname"[..]),
        (297..329, &h.gname, b"gname"),
    ] {
        // ustar names are NUL-terminated: 31 bytes at most.
        if name.len() < 32 {
            put_str(&mut b[range], name.as_bytes());
        } else {
            pax_record(&mut pax, key, name.as_bytes());
        }
    }
    // Zeros rather than empty fields for non-devices, which some readers reject.
    let (major, minor) = match h.kind {
        Kind::Char { major, minor } | Kind::Block { major, minor } => (major, minor),
        _ => (0, 0),
    };
    put_octal(&mut b[329..337], u64::from(major));
    put_octal(&mut b[337..345], u64::from(minor));
    for (name, value) in &h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut pax, &key, value);
    }
    // Raw (non-UTF-8) paths go into PAX records as they are, with no `hdrcharset=BINARY`:
    // GNU tar 1.34 warns about that keyword and stores the bytes unchanged anyway.
    if !pax.is_empty() {
        // A fixed name keeps the bytes independent of anything but the entry itself.
        let mut x = ustar_block(b'x', 0o644, h.mtime);
        put_str(&mut x[0..100], b"././@PaxHeader");
        put_octal(&mut x[124..136], pax.len() as u64);
        checksum(&mut x);
        out.extend_from_slice(&x);
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64), 0);
    }
    checksum(&mut b);
    out.extend_from_slice(&b);
}

/// Zero bytes that pad `len` content bytes to a whole block.
pub fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Writes headers, content and the end-of-archive marker to `W`.
pub struct TarWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        TarWriter {
            w,
            buf: Vec::with_capacity(4 * BLOCK),
        }
    }

    /// Writes the header(s) of one entry; its content (if any) must follow through
    /// [`content`](TarWriter::content) and [`pad`](TarWriter::pad).
    pub fn header(&mut self, h: &EntryHeader) -> io::Result<()> {
        self.buf.clear();
        encode(h, &mut self.buf);
        self.w.write_all(&self.buf)
    }

    /// Writes content bytes of the current entry.
    pub fn content(&mut self, data: &[u8]) -> io::Result<()> {
        self.w.write_all(data)
    }

    /// Pads the content of `len` bytes to a block boundary.
    pub fn pad(&mut self, len: u64) -> io::Result<()> {
        self.w.write_all(&[0u8; BLOCK][..padding(len)])
    }

    /// Writes the two zero blocks that end an archive and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &[u8], size: u64) -> EntryHeader {
        EntryHeader {
            path: path.to_vec(),
            kind: Kind::File { size },
            mode: 0o4755,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: 1_700_000_000,
            xattrs: vec![],
        }
    }

    fn parse(bytes: &[u8]) -> Vec<(Vec<u8>, u64, u32, Vec<u8>)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                (
                    e.path_bytes().into_owned(),
                    e.size(),
                    e.header().mode().unwrap(),
                    link,
                )
            })
            .collect()
    }

    fn archive(headers: &[EntryHeader]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for h in headers {
            w.header(h).unwrap();
            let data = vec![b'x'; h.size() as usize];
            w.content(&data).unwrap();
            w.pad(h.size()).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", b"a");
        // 9 counts itself; "10 path=a\n" would too, but the shortest is canonical.
        assert_eq!(out, b"9 path=a\n");
        out.clear();
        // 5 + 1 + 1 + 1 + 1 = 9 bytes without the length: "9" makes 10, which has 2 digits.
        let v = vec![b'v'; 90];
        pax_record(&mut out, b"path", &v);
        let len: usize = std::str::from_utf8(&out[..out.iter().position(|&c| c == b' ').unwrap()])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, out.len());
    }

    #[test]
    fn short_long_and_binary_paths_read_back() {
        let long = [b"./".as_slice(), &[b'd'; 120], b"/", &[b'f'; 150]].concat();
        let unsplittable = [b"./".as_slice(), &[b'g'; 200]].concat();
        let binary = [b"./".as_slice(), &[0xff; 130]].concat();
        let hs = [
            file(b"./a", 3),
            file(&long, 0),
            file(&unsplittable, 700),
            file(&binary, 1),
        ];
        let got = parse(&archive(&hs));
        let paths: Vec<_> = got.iter().map(|g| g.0.clone()).collect();
        assert_eq!(paths, vec![b"./a".to_vec(), long, unsplittable, binary]);
        assert_eq!(got[2].1, 700);
        assert_eq!(got[0].2, 0o4755);
    }

    #[test]
    fn long_link_targets_and_devices() {
        let target = vec![b't'; 300];
        let mut l = file(b"./l", 0);
        l.kind = Kind::Symlink {
            target: target.clone(),
        };
        let mut c = file(b"./null", 0);
        c.kind = Kind::Char { major: 1, minor: 3 };
        let got = parse(&archive(&[l, c.clone()]));
        assert_eq!(got[0].3, target);
        let mut buf = Vec::new();
        encode(&c, &mut buf);
        assert_eq!(buf.len(), BLOCK);
        assert_eq!(buf[156], b'3');
        assert_eq!(&buf[329..337], b"0000001\0");
        assert_eq!(&buf[337..345], b"0000003\0");
    }

    #[test]
    fn sizes_over_8_gib_use_pax_and_base256() {
        let h = file(b"./big", 9 << 30);
        let mut buf = Vec::new();
        encode(&h, &mut buf);
        let text = String::from_utf8_lossy(&buf[BLOCK..2 * BLOCK]);
        assert!(text.contains("size=9663676416\n"), "{text}");
        let ustar = &buf[buf.len() - BLOCK..];
        assert_eq!(ustar[124] & 0x80, 0x80);
        let parsed = tar::Header::from_byte_slice(ustar).size().unwrap();
        assert_eq!(parsed, 9 << 30);
    }

    #[test]
    fn ustar_checksum_matches_tar_rs() {
        let mut buf = Vec::new();
        encode(&file(b"./a", 1), &mut buf);
        let h = tar::Header::from_byte_slice(&buf);
        let stored = u32::from_str_radix(std::str::from_utf8(&buf[148..154]).unwrap(), 8).unwrap();
        assert_eq!(stored, h.cksum().unwrap());
        assert_eq!(h.username().unwrap(), Some("root"));
    }

    #[test]
    fn negative_mtimes_use_a_pax_record_and_zero() {
        let mut h = file(b"./old", 0);
        h.mtime = -5;
        let mut buf = Vec::new();
        encode(&h, &mut buf);
        assert_eq!(buf.len(), 3 * BLOCK);
        let text = String::from_utf8_lossy(&buf[BLOCK..2 * BLOCK]);
        assert!(text.starts_with("12 mtime=-5\n"), "{text}");
        for header in [&buf[..BLOCK], &buf[2 * BLOCK..]] {
            assert_eq!(&header[136..148], b"00000000000\0");
        }
    }
}
