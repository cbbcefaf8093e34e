//! `nsroot diff`: two archives (tar in any compression, or .deb) compared entry by entry.
//!
//! Memory stays bounded whatever the entries' sizes: a first pass over each archive keeps only
//! headers (what they mean and, for plain tars, their raw blocks), a sha256 of each content
//! and a crc32 of each 64 KiB chunk of it. For contents that differ, a second pass fetches
//! just the first differing chunk of each side, which gives the exact first differing offset
//! and, when both sides are small text, a unified diff.
//!
//! After the entries come the differences they do not cover (`diff_raw`): entry order, path
//! spelling, header format and encodings, the end of the tar stream, the compression. Files
//! whose bytes differ never compare equal: what nothing else explains is reported as such.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::diff_raw::{
    gzip_header_difference, header_differences, Explains, FileBytes, HeaderDiff, RawEntry, Tap,
};
use super::error::ArchiveError;
use super::format::{open_archive, Compression};
use super::list::{escape_name, format_time};
use super::read::{
    read_any, read_path, ArMember, ArchiveType, EntryKind, EntryMeta, Section, Visit, AR_MAGIC,
};

/// Contents are hashed, located and fetched in chunks this large; text diffs are shown for
/// contents no larger (on both sides).
const CHUNK: usize = 64 * 1024;
/// Chunks fetched per pass of the second reading (so at most 16 MiB per side in memory).
const FETCH_BATCH: usize = 256;

/// Entries are matched by section and path, without leading `./` and trailing `/` (a
/// different spelling is reported on its own).
type Key = (Section, Vec<u8>);

/// What differs about one entry (or about the archives as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The archives are of different kinds (tar and .deb).
    Format,
    /// The .deb members come in a different order.
    MemberOrder,
    /// The path is in one archive only; `a` or `b` is the entry's kind, the other absent.
    Missing,
    /// A .deb member holding a tar has another name (another compression).
    MemberName,
    /// The same path spelled otherwise (`./a` and `a`, `d/` and `d`).
    PathSpelling,
    Type,
    Mode,
    /// uid/gid and user/group names.
    Owner,
    Size,
    Mtime,
    /// Symlink or hard link target.
    Link,
    /// Device major and minor numbers.
    Device,
    Xattrs,
    /// Content bytes: `a` and `b` are sha256s, `offset` the first differing byte.
    Content,
    /// The tar header format: `ustar`, `gnu`, `pax` (ustar with a PAX header), `v7`.
    HeaderFormat,
    /// PAX records whose meaning no other field compares (`atime`, `ctime`, ...): the
    /// records of each side the other lacks.
    PaxRecords,
    /// The first header field whose bytes differ although no other field explains it (the
    /// same value encoded otherwise, a GNU atime, a PAX header's own name).
    Header,
    /// A .deb member's raw bytes differ although every entry of its tar is the same (another
    /// compression level or tool).
    MemberBytes,
    /// The entries both archives hold come in another order: the first position that
    /// differs, with the entry at it on each side.
    EntryOrder,
    /// What follows the last entry: the end-of-archive zero blocks and padding.
    EndOfArchive,
    /// The compression, or the fields of its header (gzip mtime, name, level flag).
    Compression,
    /// The compressed streams differ although the tar streams are the same.
    CompressedBytes,
    /// The files differ in bytes that nothing above accounts for.
    Bytes,
}

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Format => "format",
            Field::MemberOrder => "member order",
            Field::Missing => "only in",
            Field::MemberName => "member name",
            Field::PathSpelling => "path spelling",
            Field::Type => "type",
            Field::Mode => "mode",
            Field::Owner => "owner",
            Field::Size => "size",
            Field::Mtime => "mtime",
            Field::Link => "link target",
            Field::Device => "device",
            Field::Xattrs => "xattrs",
            Field::Content => "content",
            Field::HeaderFormat => "header format",
            Field::PaxRecords => "pax records",
            Field::Header => "header",
            Field::MemberBytes => "member bytes",
            Field::EntryOrder => "entry order",
            Field::EndOfArchive => "end of archive",
            Field::Compression => "compression",
            Field::CompressedBytes => "compressed stream",
            Field::Bytes => "bytes",
        }
    }

    /// How the report says that this field differs, for the differences found in the bytes.
    fn sentence(self) -> &'static str {
        match self {
            Field::MemberBytes => "member bytes differ though every entry is the same",
            Field::Header => "header bytes differ",
            Field::EntryOrder => "entry order differs",
            Field::CompressedBytes => {
                "compressed stream differs though the tar streams are the same"
            }
            Field::Bytes => "archives differ in bytes not covered by the entry comparison",
            other => other.label(),
        }
    }
}

/// One difference: `path` is the entry as shown (`./etc/motd`, `data.tar:./usr/bin/x`,
/// `debian-binary`), `a` and `b` the values on each side, absent where the side has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub path: String,
    pub field: Field,
    pub a: Option<String>,
    pub b: Option<String>,
    /// For content: the first byte that differs (or where the shorter side ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// For content, when both sides are text of at most 64 KiB: a unified diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified_diff: Option<String>,
}

/// The result of comparing two archives: differences sorted by section, path and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    /// The two archives, as given.
    pub a: String,
    pub b: String,
    pub differences: Vec<Difference>,
}

impl DiffReport {
    /// True when the archives hold the same entries with the same metadata and contents.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }
}

impl fmt::Display for DiffReport {
    /// Nothing when identical; else `--- A`, `+++ B`, one line per difference (content
    /// differences followed by their unified diff) and a count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        writeln!(f, "--- {}", self.a)?;
        writeln!(f, "+++ {}", self.b)?;
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        for d in &self.differences {
            match d.field {
                Field::Missing => {
                    let (side, kind) = match (&d.a, &d.b) {
                        (Some(k), _) => (&self.a, k),
                        (None, Some(k)) => (&self.b, k),
                        (None, None) => (&self.a, &String::new()),
                    };
                    writeln!(f, "{}: only in {side} ({kind})", d.path)?;
                }
                Field::Content => {
                    write!(f, "{}: content differs", d.path)?;
                    if let Some(o) = d.offset {
                        write!(f, " at byte {o}")?;
                    }
                    writeln!(f, " (sha256 {} -> {})", short(&d.a), short(&d.b))?;
                    if let Some(u) = &d.unified_diff {
                        f.write_str(u)?;
                        if !u.ends_with('\n') {
                            writeln!(f)?;
                        }
                    }
                }
                // Differences found in the bytes rather than in an entry's fields: a sentence
                // saying what differs, then the two sides.
                Field::MemberBytes | Field::CompressedBytes | Field::Bytes => writeln!(
                    f,
                    "{}: {} ({} -> {})",
                    d.path,
                    d.field.sentence(),
                    opt(&d.a),
                    opt(&d.b)
                )?,
                Field::Header | Field::EntryOrder => writeln!(
                    f,
                    "{}: {}: {} -> {}",
                    d.path,
                    d.field.sentence(),
                    opt(&d.a),
                    opt(&d.b)
                )?,
                field => writeln!(
                    f,
                    "{}: {} {} -> {}",
                    d.path,
                    field.label(),
                    opt(&d.a),
                    opt(&d.b)
                )?,
            }
        }
        let n = self.differences.len();
        writeln!(f, "{n} difference{}", if n == 1 { "" } else { "s" })
    }
}

/// The first 16 hex digits of a `sha256:` value, for the text report.
fn short(v: &Option<String>) -> String {
    match v {
        Some(s) => s.trim_start_matches("sha256:").chars().take(16).collect(),
        None => "(none)".into(),
    }
}

/// Compares the archives at `a` and `b` (each a tar in any compression nsroot reads, or a
/// .deb) entry by entry, then what the entries do not cover: entry order, header bytes, the
/// end of the tar stream, the compression. The report is empty only when the files are the
/// same bytes.
///
/// Errors name the archive: an input error (exit 2) when one does not exist or is not a
/// valid, complete archive; an I/O error when one cannot be read.
pub fn diff_archives(a: &Path, b: &Path) -> Result<DiffReport, ArchiveError> {
    let sa = Side::collect(a)?;
    let sb = Side::collect(b)?;
    let (mut diffs, pending) = compare(&sa, &sb);
    locate(&sa, &sb, &mut diffs, &pending)?;
    beyond_entries(&sa, &sb, &mut diffs);
    Ok(DiffReport {
        a: a.display().to_string(),
        b: b.display().to_string(),
        differences: diffs.into_iter().map(|(_, d)| d).collect(),
    })
}

/// One entry as the first pass keeps it.
struct Rec {
    display: String,
    meta: EntryMeta,
    /// sha256 of the content (the raw bytes, for a .deb member).
    sha: [u8; 32],
    /// crc32 of each CHUNK of the content.
    chunks: Vec<u32>,
    /// A .deb member holding a tar (its entries are compared, its bytes only as a whole).
    tar_member: bool,
    /// The entry's raw header blocks (plain tars only).
    raw: Option<RawEntry>,
}

/// One archive as the first pass keeps it.
struct Side {
    path: PathBuf,
    kind: ArchiveType,
    entries: BTreeMap<Key, Rec>,
    /// .deb member names in archive order.
    members: Vec<Vec<u8>>,
    /// Every tar entry in archive order (duplicates included), with how it is shown.
    order: Vec<(Key, String)>,
    /// The file's bytes: compression, gzip header, sha256.
    bytes: FileBytes,
    /// A plain tar's uncompressed stream: sha256, and the end-of-archive bytes when the
    /// headers could be followed to the end.
    tar_sha: Option<[u8; 32]>,
    end: Option<(u64, bool)>,
}

/// The matching key of an entry.
fn key_of(section: Section, path: &[u8]) -> Key {
    if section == Section::Members {
        // control.tar.xz and control.tar.gz are the same member, compressed differently.
        for stem in [&b"control.tar"[..], b"data.tar"] {
            if path.starts_with(stem) {
                return (section, stem.to_vec());
            }
        }
        return (section, path.to_vec());
    }
    let mut p = path;
    loop {
        if let Some(r) = p.strip_prefix(b"./") {
            p = r;
        } else if let Some(r) = p.strip_prefix(b"/") {
            p = r;
        } else {
            break;
        }
    }
    while let Some(r) = p.strip_suffix(b"/") {
        p = r;
    }
    if p == b"." {
        p = b"";
    }
    (section, p.to_vec())
}

/// How an entry is shown: its stored path, prefixed by its tar in a .deb.
fn display_of(section: Section, path: &[u8]) -> String {
    let p = escape_name(path);
    match section {
        Section::Tar | Section::Members => p,
        Section::Control => format!("control.tar:{p}"),
        Section::Data => format!("data.tar:{p}"),
        Section::Header => format!("header:{p}"),
        Section::Payload => format!("payload:{p}"),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Collect<'a> {
    side: &'a mut Side,
    buf: Vec<u8>,
}

impl Visit for Collect<'_> {
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let mut sha = Sha256::new();
        let mut chunks = Vec::new();
        if meta.kind == EntryKind::File {
            loop {
                let n = read_full(content, &mut self.buf)
                    .map_err(|e| ArchiveError::io("read", &self.side.path, e))?;
                if n == 0 {
                    break;
                }
                sha.update(&self.buf[..n]);
                chunks.push(crc32fast::hash(&self.buf[..n]));
            }
        }
        let key = key_of(section, &meta.path);
        let display = display_of(section, &meta.path);
        if section == Section::Members {
            self.side.members.push(meta.path.clone());
        } else {
            self.side.order.push((key.clone(), display.clone()));
        }
        self.side.entries.insert(
            key,
            Rec {
                display,
                meta: meta.clone(),
                sha: sha.finalize().into(),
                chunks,
                tar_member: false,
                raw: None,
            },
        );
        Ok(())
    }

    fn tar_member(
        &mut self,
        member: &ArMember,
        _section: Section,
        sha256: [u8; 32],
    ) -> Result<(), ArchiveError> {
        self.side.members.push(member.name.clone());
        self.side.entries.insert(
            key_of(Section::Members, &member.name),
            Rec {
                display: escape_name(&member.name),
                meta: member.as_entry(),
                sha: sha256,
                chunks: Vec::new(),
                tar_member: true,
                raw: None,
            },
        );
        Ok(())
    }
}

impl Side {
    fn collect(path: &Path) -> Result<Side, ArchiveError> {
        let bytes = FileBytes::read(path)?;
        let deb = bytes.compression == Compression::None
            && (bytes.head.starts_with(AR_MAGIC) || super::rpm::is_rpm(&bytes.head));
        let mut side = Side {
            path: path.to_path_buf(),
            kind: ArchiveType::Tar,
            entries: BTreeMap::new(),
            members: Vec::new(),
            order: Vec::new(),
            bytes,
            tar_sha: None,
            end: None,
        };
        let mut visit = Collect {
            side: &mut side,
            buf: vec![0; CHUNK],
        };
        if deb {
            visit.side.kind = read_path(path, &mut visit)?;
            return Ok(side);
        }
        // A plain tar: the tap follows the uncompressed stream's header blocks as it passes.
        let mut tap = Tap::new(open_archive(path)?);
        visit.side.kind = read_any(Box::new(&mut tap), &path.display().to_string(), &mut visit)?;
        let raw = tap.finish();
        side.tar_sha = Some(raw.sha);
        if raw.complete && raw.entries.len() == side.order.len() {
            side.end = Some((raw.end_len, raw.end_nonzero));
            for ((key, _), entry) in side.order.iter().zip(raw.entries) {
                if let Some(rec) = side.entries.get_mut(key) {
                    rec.raw = Some(entry);
                }
            }
        }
        Ok(side)
    }
}

/// The report's order: a .deb's debian-binary (and any member holding no tar), then the
/// control member followed by its entries, then the data member followed by its entries;
/// paths in byte order within each.
fn rank(key: &Key) -> (Section, bool, &[u8]) {
    match (key.0, key.1.as_slice()) {
        (Section::Members, b"control.tar") => (Section::Control, false, b""),
        (Section::Members, b"data.tar") => (Section::Data, false, b""),
        (Section::Control | Section::Data, path) => (key.0, true, path),
        (section, path) => (section, false, path),
    }
}

/// A content difference whose offset (and text diff) the second pass fills in.
struct Pending {
    /// Index into the differences.
    index: usize,
    key: Key,
    /// The first chunk whose crc32 differs.
    chunk: usize,
    /// Both sides are small enough for a text diff.
    small: bool,
}

fn kind_word(k: ArchiveType) -> String {
    match k {
        ArchiveType::Tar => "tar".into(),
        ArchiveType::Deb => "deb".into(),
        ArchiveType::Rpm => "rpm".into(),
    }
}

fn owner_string(m: &EntryMeta) -> String {
    let ids = format!("{}/{}", m.uid, m.gid);
    if m.uname.is_empty() && m.gname.is_empty() {
        return ids;
    }
    let name = |n: &[u8], id: u64| {
        if n.is_empty() {
            id.to_string()
        } else {
            escape_name(n)
        }
    };
    format!(
        "{}/{} ({ids})",
        name(&m.uname, m.uid),
        name(&m.gname, m.gid)
    )
}

fn mtime_string(m: &EntryMeta) -> String {
    let secs = if m.mtime_nsec == 0 {
        m.mtime.to_string()
    } else {
        format!("{}.{:09}", m.mtime, m.mtime_nsec)
    };
    format!(
        "{}:{:02} ({secs})",
        format_time(m.mtime),
        m.mtime.rem_euclid(60)
    )
}

fn xattrs_string(m: &EntryMeta) -> String {
    if m.xattrs.is_empty() {
        return "(none)".into();
    }
    let items: Vec<String> = m
        .xattrs
        .iter()
        .map(|(n, v)| format!("{}={}", escape_name(n), escape_name(v)))
        .collect();
    items.join(", ")
}

fn sha_string(sha: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(sha))
}

/// All differences but content offsets, sorted, and the content differences left to locate.
fn compare(a: &Side, b: &Side) -> (Vec<(Key, Difference)>, Vec<Pending>) {
    let mut diffs: Vec<(Key, Field, Difference)> = Vec::new();
    let mut push = |key: &Key, path: &str, field: Field, va: Option<String>, vb: Option<String>| {
        diffs.push((
            key.clone(),
            field,
            Difference {
                path: path.to_string(),
                field,
                a: va,
                b: vb,
                offset: None,
                unified_diff: None,
            },
        ))
    };
    let top: Key = (Section::Tar, Vec::new());
    if a.kind != b.kind {
        push(
            &top,
            "(archive)",
            Field::Format,
            Some(kind_word(a.kind)),
            Some(kind_word(b.kind)),
        );
    }
    let order = |s: &Side| -> Vec<Key> {
        s.members
            .iter()
            .map(|m| key_of(Section::Members, m))
            .collect()
    };
    if a.kind == ArchiveType::Deb && b.kind == ArchiveType::Deb && order(a) != order(b) {
        let names = |s: &Side| {
            s.members
                .iter()
                .map(|m| escape_name(m))
                .collect::<Vec<_>>()
                .join(", ")
        };
        push(
            &(Section::Members, Vec::new()),
            "(ar members)",
            Field::MemberOrder,
            Some(names(a)),
            Some(names(b)),
        );
    }

    let keys: BTreeSet<&Key> = a.entries.keys().chain(b.entries.keys()).collect();
    // Sections with entry-level differences: a member's bytes then differ for a known reason.
    let mut changed_sections = BTreeSet::new();
    let mut content: Vec<(Key, String, usize, bool)> = Vec::new();
    for key in keys {
        let (ra, rb) = match (a.entries.get(key), b.entries.get(key)) {
            (Some(ra), Some(rb)) => (ra, rb),
            (Some(r), None) | (None, Some(r)) => {
                let kind = Some(r.meta.kind.word());
                let (va, vb) = if a.entries.contains_key(key) {
                    (kind, None)
                } else {
                    (None, kind)
                };
                push(key, &r.display, Field::Missing, va, vb);
                changed_sections.insert(key.0);
                continue;
            }
            (None, None) => continue,
        };
        let (ma, mb) = (&ra.meta, &rb.meta);
        let path = &ra.display;
        let mut local: Vec<(Field, Option<String>, Option<String>)> = Vec::new();
        if ra.tar_member && ma.path != mb.path {
            local.push((
                Field::MemberName,
                Some(escape_name(&ma.path)),
                Some(escape_name(&mb.path)),
            ));
        }
        // A directory's trailing `/` comes and goes with its type.
        let trim = |p: &[u8]| {
            p.strip_suffix(b"/")
                .map(<[u8]>::to_vec)
                .unwrap_or(p.to_vec())
        };
        let retyped = ma.kind != mb.kind && trim(&ma.path) == trim(&mb.path);
        if !ra.tar_member && ma.path != mb.path && !retyped {
            local.push((
                Field::PathSpelling,
                Some(escape_name(&ma.path)),
                Some(escape_name(&mb.path)),
            ));
        }
        if ma.kind != mb.kind {
            local.push((Field::Type, Some(ma.kind.word()), Some(mb.kind.word())));
        }
        if ma.mode != mb.mode {
            local.push((
                Field::Mode,
                Some(format!("{:04o}", ma.mode)),
                Some(format!("{:04o}", mb.mode)),
            ));
        }
        if (ma.uid, ma.gid, &ma.uname, &ma.gname) != (mb.uid, mb.gid, &mb.uname, &mb.gname) {
            local.push((Field::Owner, Some(owner_string(ma)), Some(owner_string(mb))));
        }
        let same_kind = ma.kind == mb.kind;
        if same_kind && !ra.tar_member && ma.size != mb.size {
            local.push((
                Field::Size,
                Some(ma.size.to_string()),
                Some(mb.size.to_string()),
            ));
        }
        if (ma.mtime, ma.mtime_nsec) != (mb.mtime, mb.mtime_nsec) {
            local.push((Field::Mtime, Some(mtime_string(ma)), Some(mtime_string(mb))));
        }
        if same_kind && ma.link != mb.link {
            local.push((
                Field::Link,
                Some(escape_name(&ma.link)),
                Some(escape_name(&mb.link)),
            ));
        }
        if same_kind && ma.dev != mb.dev {
            let dev = |m: &EntryMeta| format!("{},{}", m.dev.0, m.dev.1);
            local.push((Field::Device, Some(dev(ma)), Some(dev(mb))));
        }
        if ma.xattrs != mb.xattrs {
            local.push((
                Field::Xattrs,
                Some(xattrs_string(ma)),
                Some(xattrs_string(mb)),
            ));
        }
        if same_kind && ma.kind == EntryKind::File && !ra.tar_member && ra.sha != rb.sha {
            let chunk = ra
                .chunks
                .iter()
                .zip(&rb.chunks)
                .position(|(x, y)| x != y)
                .unwrap_or(ra.chunks.len().min(rb.chunks.len()));
            let small = ma.size <= CHUNK as u64 && mb.size <= CHUNK as u64;
            content.push((key.clone(), path.clone(), chunk, small));
            local.push((
                Field::Content,
                Some(sha_string(&ra.sha)),
                Some(sha_string(&rb.sha)),
            ));
        }
        if let (Some(xa), Some(xb)) = (&ra.raw, &rb.raw) {
            let explained: Vec<Explains> = local.iter().filter_map(|l| explains(l.0)).collect();
            for (what, va, vb) in header_differences(xa, xb, &explained) {
                let field = match what {
                    HeaderDiff::Format => Field::HeaderFormat,
                    HeaderDiff::PaxRecords => Field::PaxRecords,
                    HeaderDiff::Field => Field::Header,
                };
                local.push((field, Some(va), Some(vb)));
            }
        }
        if !local.is_empty() && !ra.tar_member {
            changed_sections.insert(key.0);
        }
        for (field, va, vb) in local {
            push(key, path, field, va, vb);
        }
    }
    // A tar member's raw bytes are worth a line only when nothing inside explains them.
    for (key, ra) in a.entries.iter().filter(|(_, r)| r.tar_member) {
        let Some(rb) = b.entries.get(key) else {
            continue;
        };
        let section = match key.1.as_slice() {
            b"control.tar" => Section::Control,
            _ => Section::Data,
        };
        // Another name is another compression, already reported: different bytes follow.
        let renamed = ra.meta.path != rb.meta.path;
        if ra.sha != rb.sha && !renamed && !changed_sections.contains(&section) {
            let v = |r: &Rec| format!("{} bytes, {}", r.meta.size, sha_string(&r.sha));
            push(
                key,
                &ra.display,
                Field::MemberBytes,
                Some(v(ra)),
                Some(v(rb)),
            );
        }
    }
    diffs.sort_by(|x, y| (rank(&x.0), x.1).cmp(&(rank(&y.0), y.1)));
    let mut pending = Vec::new();
    for (key, _, chunk, small) in content {
        if let Some(index) = diffs
            .iter()
            .position(|(k, f, _)| *k == key && *f == Field::Content)
        {
            pending.push(Pending {
                index,
                key,
                chunk,
                small,
            });
        }
    }
    (diffs.into_iter().map(|(k, _, d)| (k, d)).collect(), pending)
}

/// Which header bytes an entry-level difference accounts for.
fn explains(field: Field) -> Option<Explains> {
    Some(match field {
        Field::PathSpelling => Explains::Path,
        Field::Type => Explains::Type,
        Field::Mode => Explains::Mode,
        Field::Owner => Explains::Owner,
        Field::Size => Explains::Size,
        Field::Mtime => Explains::Mtime,
        Field::Link => Explains::Link,
        Field::Device => Explains::Device,
        Field::Xattrs => Explains::Xattrs,
        _ => return None,
    })
}

/// The first position at which the entries both sides hold come in another order, as
/// `entry N is PATH` for each side (`no further entry` past the end).
fn order_difference(
    a: &[(Key, String)],
    b: &[(Key, String)],
    a_has: &BTreeMap<Key, Rec>,
    b_has: &BTreeMap<Key, Rec>,
) -> Option<(String, String)> {
    let common = |s: &[(Key, String)], other: &BTreeMap<Key, Rec>| -> Vec<(usize, Key, String)> {
        s.iter()
            .enumerate()
            .filter(|(_, (k, _))| other.contains_key(k))
            .map(|(i, (k, d))| (i, k.clone(), d.clone()))
            .collect()
    };
    let (ca, cb) = (common(a, b_has), common(b, a_has));
    let show = |e: Option<&(usize, Key, String)>| match e {
        Some((i, _, d)) => format!("entry {} is {d}", i + 1),
        None => "no further entry".to_string(),
    };
    (0..ca.len().max(cb.len())).find_map(|i| {
        let (x, y) = (ca.get(i), cb.get(i));
        match (x, y) {
            (Some(x), Some(y)) if x.1 == y.1 => None,
            _ => Some((show(x), show(y))),
        }
    })
}

/// What the entries do not cover, after them: entry order, the end of the tar stream, the
/// compression, and, when the files still differ unexplained, that they do.
fn beyond_entries(a: &Side, b: &Side, diffs: &mut Vec<(Key, Difference)>) {
    let entry_level = diffs.len();
    let push = |diffs: &mut Vec<(Key, Difference)>, path: &str, field, va, vb| {
        diffs.push((
            (Section::Tar, Vec::new()),
            Difference {
                path: path.to_string(),
                field,
                a: Some(va),
                b: Some(vb),
                offset: None,
                unified_diff: None,
            },
        ))
    };
    for (section, path) in [
        (Section::Tar, "(archive)"),
        (Section::Control, "control.tar"),
        (Section::Data, "data.tar"),
    ] {
        let of = |s: &Side| -> Vec<(Key, String)> {
            s.order
                .iter()
                .filter(|(k, _)| k.0 == section)
                .cloned()
                .collect()
        };
        if let Some((va, vb)) = order_difference(&of(a), &of(b), &a.entries, &b.entries) {
            push(diffs, path, Field::EntryOrder, va, vb);
        }
    }
    let plain = a.kind == ArchiveType::Tar && b.kind == ArchiveType::Tar;
    if let (Some(ea), Some(eb)) = (a.end, b.end) {
        if ea != eb {
            let show = |(len, nonzero): (u64, bool)| {
                format!("{len} {} bytes", if nonzero { "non-zero" } else { "zero" })
            };
            push(diffs, "(archive)", Field::EndOfArchive, show(ea), show(eb));
        }
    }
    let (fa, fb) = (&a.bytes, &b.bytes);
    if plain && fa.compression != fb.compression {
        push(
            diffs,
            "(archive)",
            Field::Compression,
            fa.compression_word().into(),
            fb.compression_word().into(),
        );
    } else if let (true, Some(ga), Some(gb)) = (plain, &fa.gzip, &fb.gzip) {
        if let Some((va, vb)) = gzip_header_difference(ga, gb) {
            push(diffs, "(archive)", Field::Compression, va, vb);
        }
    }
    let same_tar = plain && a.tar_sha == b.tar_sha;
    if fa.sha == fb.sha {
        return;
    }
    if same_tar && diffs.len() == entry_level {
        push(
            diffs,
            "(archive)",
            Field::CompressedBytes,
            format!("{}, {}", fa.compression_word(), fa.summary()),
            format!("{}, {}", fb.compression_word(), fb.summary()),
        );
    }
    // Nothing reported accounts for the files' bytes, or for their tar streams' bytes.
    let unexplained = diffs.is_empty()
        || (plain
            && !same_tar
            && diffs
                .iter()
                .all(|(_, d)| matches!(d.field, Field::Compression | Field::CompressedBytes)));
    if unexplained {
        push(diffs, "(archive)", Field::Bytes, fa.summary(), fb.summary());
    }
}

/// Fetches chunk `want[key]` of each wanted entry.
struct Fetch<'a> {
    want: &'a HashMap<Key, usize>,
    got: HashMap<Key, Vec<u8>>,
    path: &'a Path,
}

impl Visit for Fetch<'_> {
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let key = key_of(section, &meta.path);
        let Some(&chunk) = self.want.get(&key) else {
            return Ok(());
        };
        let err = |e| ArchiveError::io("read", self.path, e);
        let skip = (chunk * CHUNK) as u64;
        io::copy(&mut content.take(skip), &mut io::sink()).map_err(err)?;
        let mut bytes = Vec::new();
        content
            .take(CHUNK as u64)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        self.got.insert(key, bytes);
        Ok(())
    }
}

/// Second pass: the first differing offset and, for small text, a unified diff.
fn locate(
    a: &Side,
    b: &Side,
    diffs: &mut [(Key, Difference)],
    pending: &[Pending],
) -> Result<(), ArchiveError> {
    for batch in pending.chunks(FETCH_BATCH) {
        let want: HashMap<Key, usize> = batch.iter().map(|p| (p.key.clone(), p.chunk)).collect();
        let fetch = |side: &Side| -> Result<HashMap<Key, Vec<u8>>, ArchiveError> {
            let mut f = Fetch {
                want: &want,
                got: HashMap::new(),
                path: &side.path,
            };
            read_path(&side.path, &mut f)?;
            Ok(f.got)
        };
        let got_a = fetch(a)?;
        let got_b = fetch(b)?;
        for p in batch {
            let empty = Vec::new();
            let ca = got_a.get(&p.key).unwrap_or(&empty);
            let cb = got_b.get(&p.key).unwrap_or(&empty);
            let within = ca
                .iter()
                .zip(cb)
                .position(|(x, y)| x != y)
                .or_else(|| (ca.len() != cb.len()).then(|| ca.len().min(cb.len())));
            let d = &mut diffs[p.index].1;
            // None only when every chunk's crc32 matched yet the sha256s differ.
            d.offset = within.map(|w| (p.chunk * CHUNK + w) as u64);
            if p.small && is_text(ca) && is_text(cb) {
                let (ta, tb) = (
                    std::str::from_utf8(ca).unwrap_or(""),
                    std::str::from_utf8(cb).unwrap_or(""),
                );
                let text = similar::TextDiff::from_lines(ta, tb)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("{}:{}", a.path.display(), d.path),
                        &format!("{}:{}", b.path.display(), d.path),
                    )
                    .to_string();
                d.unified_diff = Some(text);
            }
        }
    }
    Ok(())
}

/// UTF-8 without NUL bytes.
fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_dot_slash_and_trailing_slash() {
        assert_eq!(
            key_of(Section::Tar, b"./a/b/"),
            key_of(Section::Tar, b"a/b")
        );
        assert_eq!(key_of(Section::Tar, b"./").1, b"");
        assert_eq!(key_of(Section::Tar, b".").1, b"");
        assert_eq!(
            key_of(Section::Members, b"data.tar.xz"),
            key_of(Section::Members, b"data.tar.zst")
        );
        assert_ne!(
            key_of(Section::Data, b"./x"),
            key_of(Section::Control, b"./x")
        );
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert!(is_text(b"hello\n"));
        assert!(!is_text(b"a\0b"));
        assert!(!is_text(b"\xff"));
    }

    #[test]
    fn empty_report_prints_nothing() {
        let r = DiffReport {
            a: "a".into(),
            b: "b".into(),
            differences: vec![],
        };
        assert!(r.is_empty());
        assert_eq!(r.to_string(), "");
    }
}
