//! The reading passes of `nsroot diff`.
//!
//! The first pass ([`Scan::read`]) keeps, per entry, a 16-byte id of its key and two 16-byte
//! digests (of what its header means with its content's sha256, and of its raw header
//! blocks), plus the entries' order as ids: about 100 bytes an entry, whatever the lengths of
//! its name, link, xattrs or content. [`wanted`] then names the entries whose digests differ
//! or that one side lacks, and the second pass ([`Side::collect`]) keeps those alone in full.
//! So memory follows the number of entries (a little) and the size of the report, never the
//! size of what is the same.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

use super::raw::{FileBytes, RawEntry, RawQueue, RawTar, Tap};
use super::{display_of, key_of, Key, CHUNK};
use crate::archive::error::ArchiveError;
use crate::archive::format::{open_archive, Compression};
use crate::archive::list::escape_name;
use crate::archive::read::{
    read_any, read_path, ArMember, ArchiveType, EntryKind, EntryMeta, Section, Visit, AR_MAGIC,
};

/// A 16-byte digest (of a key, a header's meaning, raw header blocks).
pub(super) type Id = [u8; 16];

/// The id of a matching key.
pub(super) fn key_id(key: &Key) -> Id {
    digest(key)
}

/// sha256 of `value`'s [`Hash`] stream, cut to 16 bytes. Both sides are hashed by this one
/// process, so the stream's layout only has to be the same within it.
fn digest<T: Hash + ?Sized>(value: &T) -> Id {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = Sha(Sha256::new());
    value.hash(&mut h);
    let full: [u8; 32] = h.0.finalize().into();
    let mut id = [0; 16];
    id.copy_from_slice(&full[..16]);
    id
}

/// What the first pass keeps of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Digests {
    /// Of the header's meaning, the content's sha256 and whether it is a .deb's tar member.
    pub meta: Id,
    /// Of the raw header blocks (plain tars whose headers the tap followed).
    pub raw: Option<Id>,
}

/// One archive as the first pass keeps it.
pub(super) struct Scan {
    pub path: PathBuf,
    pub kind: ArchiveType,
    /// Each key's digests (a key stored twice keeps its last entry's, as the comparison does).
    pub digests: HashMap<Id, Digests>,
    /// .deb member names in archive order.
    pub members: Vec<Vec<u8>>,
    /// Every tar entry in archive order (duplicates included).
    pub order: Vec<(Section, Id)>,
    /// The file's bytes: compression, gzip header, sha256.
    pub bytes: FileBytes,
    /// A plain tar's uncompressed stream: sha256, and the end-of-archive bytes when the
    /// headers could be followed to the end.
    pub tar_sha: Option<[u8; 32]>,
    pub end: Option<(u64, bool)>,
    /// The raw header blocks were followed to the end, one group per entry: `Digests::raw`
    /// and the second pass's raw blocks may be trusted.
    pub raw_ok: bool,
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

/// The content's sha256 and, when `chunks`, the crc32 of each CHUNK of it.
fn hash_content(
    content: &mut dyn Read,
    buf: &mut [u8],
    chunks: bool,
    path: &Path,
) -> Result<([u8; 32], Vec<u32>), ArchiveError> {
    let mut sha = Sha256::new();
    let mut crcs = Vec::new();
    loop {
        let n = read_full(content, buf).map_err(|e| ArchiveError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        if chunks {
            crcs.push(crc32fast::hash(&buf[..n]));
        }
    }
    Ok((sha.finalize().into(), crcs))
}

/// Reads the archive at `path` (a .deb when `deb`, else a tar in any compression) and hands
/// every entry to `visit`, with the raw header blocks of a plain tar's entries in `queue`.
/// Returns the archive's type and, for a plain tar, what the tap saw.
fn read_entries(
    path: &Path,
    deb: bool,
    visit: &mut dyn Visit,
    queue: &RawQueue,
) -> Result<(ArchiveType, Option<RawTar>), ArchiveError> {
    if deb {
        return Ok((read_path(path, visit)?, None));
    }
    // A plain tar: the tap follows the uncompressed stream's header blocks as it passes.
    let mut tap = Tap::new(open_archive(path)?, Rc::clone(queue));
    let kind = read_any(Box::new(&mut tap), &path.display().to_string(), visit)?;
    Ok((kind, Some(tap.finish())))
}

/// The first pass's visitor.
struct Digesting<'a> {
    scan: &'a mut Scan,
    queue: RawQueue,
    buf: Vec<u8>,
    /// A plain tar's entries come with raw header blocks to pair.
    tapped: bool,
    /// Tar entries for which the tap had no header blocks.
    unpaired: bool,
}

impl Visit for Digesting<'_> {
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let (sha, _) = if meta.kind == EntryKind::File {
            hash_content(content, &mut self.buf, false, &self.scan.path)?
        } else {
            (Sha256::digest(b"").into(), Vec::new())
        };
        let id = key_id(&key_of(section, &meta.path));
        let raw = if section == Section::Members {
            self.scan.members.push(meta.path.clone());
            None
        } else {
            self.scan.order.push((section, id));
            let raw = self.queue.borrow_mut().pop_front();
            self.unpaired |= raw.is_none() && self.tapped;
            raw.map(|r| digest(&r))
        };
        let meta = digest(&(meta, sha, false));
        self.scan.digests.insert(id, Digests { meta, raw });
        Ok(())
    }

    fn tar_member(
        &mut self,
        member: &ArMember,
        _section: Section,
        sha256: [u8; 32],
    ) -> Result<(), ArchiveError> {
        self.scan.members.push(member.name.clone());
        let id = key_id(&key_of(Section::Members, &member.name));
        let meta = digest(&(&member.as_entry(), sha256, true));
        self.scan.digests.insert(id, Digests { meta, raw: None });
        Ok(())
    }
}

impl Scan {
    /// The first pass over the archive at `path`.
    ///
    /// Errors name the archive: an input error when it is missing or not a valid, complete
    /// archive; an I/O error when it cannot be read.
    pub fn read(path: &Path) -> Result<Scan, ArchiveError> {
        let bytes = FileBytes::read(path)?;
        // A .deb or an .rpm: read whole by the reader (no tar stream to follow).
        let deb = bytes.compression == Compression::None
            && (bytes.head.starts_with(AR_MAGIC) || crate::archive::rpm::is_rpm(&bytes.head));
        let mut scan = Scan {
            path: path.to_path_buf(),
            kind: ArchiveType::Tar,
            digests: HashMap::new(),
            members: Vec::new(),
            order: Vec::new(),
            bytes,
            tar_sha: None,
            end: None,
            raw_ok: false,
        };
        let queue: RawQueue = Rc::new(RefCell::new(VecDeque::new()));
        let mut visit = Digesting {
            scan: &mut scan,
            queue: Rc::clone(&queue),
            buf: vec![0; CHUNK],
            tapped: !deb,
            unpaired: false,
        };
        let (kind, raw) = read_entries(path, deb, &mut visit, &queue)?;
        let unpaired = visit.unpaired;
        scan.kind = kind;
        if let Some(raw) = raw {
            scan.tar_sha = Some(raw.sha);
            if raw.complete && !unpaired && raw.entries == scan.order.len() {
                scan.end = Some((raw.end_len, raw.end_nonzero));
                scan.raw_ok = true;
            }
        }
        if !scan.raw_ok {
            for d in scan.digests.values_mut() {
                d.raw = None;
            }
        }
        Ok(scan)
    }
}

/// What the second pass must collect: every entry one side lacks or whose digests differ,
/// every .deb member, and the entries at `positions` (by side: index into `order`).
pub(super) struct Wanted {
    pub ids: HashSet<Id>,
    pub positions: [HashSet<usize>; 2],
}

/// The entries whose digests differ or that one side lacks, and every .deb member.
pub(super) fn wanted(a: &Scan, b: &Scan) -> HashSet<Id> {
    let mut ids = HashSet::new();
    for (one, other) in [(a, b), (b, a)] {
        for (id, d) in &one.digests {
            if other.digests.get(id) != Some(d) {
                ids.insert(*id);
            }
        }
        for m in &one.members {
            ids.insert(key_id(&key_of(Section::Members, m)));
        }
    }
    ids
}

/// One entry as the second pass keeps it.
pub(super) struct Rec {
    pub display: String,
    pub meta: EntryMeta,
    /// sha256 of the content (the raw bytes, for a .deb member).
    pub sha: [u8; 32],
    /// crc32 of each CHUNK of the content (only when the other side has the entry).
    pub chunks: Vec<u32>,
    /// A .deb member holding a tar (its entries are compared, its bytes only as a whole).
    pub tar_member: bool,
    /// The entry's raw header blocks (plain tars, when the other side has the entry).
    pub raw: Option<RawEntry>,
}

/// One archive as the second pass keeps it: the wanted entries in full.
pub(super) struct Side {
    pub path: PathBuf,
    pub entries: BTreeMap<Key, Rec>,
    /// How the entries at the wanted positions of the scan's `order` are shown.
    pub shown: HashMap<usize, String>,
}

/// The second pass's visitor.
struct Collecting<'a> {
    side: &'a mut Side,
    want: &'a Wanted,
    which: usize,
    /// The other side's digests: chunks and raw blocks are only kept for shared entries.
    other: &'a HashMap<Id, Digests>,
    raw_ok: bool,
    queue: RawQueue,
    position: usize,
    buf: Vec<u8>,
}

impl Visit for Collecting<'_> {
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let raw = if section == Section::Members {
            None
        } else {
            let position = self.position;
            self.position += 1;
            if self.want.positions[self.which].contains(&position) {
                self.side
                    .shown
                    .insert(position, display_of(section, &meta.path));
            }
            self.queue.borrow_mut().pop_front()
        };
        let key = key_of(section, &meta.path);
        let id = key_id(&key);
        if !self.want.ids.contains(&id) {
            return Ok(());
        }
        let shared = self.other.contains_key(&id);
        let (sha, chunks) = if meta.kind == EntryKind::File {
            hash_content(content, &mut self.buf, shared, &self.side.path)?
        } else {
            (Sha256::digest(b"").into(), Vec::new())
        };
        self.side.entries.insert(
            key,
            Rec {
                display: display_of(section, &meta.path),
                meta: meta.clone(),
                sha,
                chunks,
                tar_member: false,
                raw: raw.filter(|_| shared && self.raw_ok),
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
    /// The second pass over `scan`'s archive (side `which`, 0 or 1, of `want`), next to
    /// `other`, the other side's scan.
    ///
    /// Errors: as [`Scan::read`]'s.
    pub fn collect(
        scan: &Scan,
        which: usize,
        want: &Wanted,
        other: &Scan,
    ) -> Result<Side, ArchiveError> {
        let mut side = Side {
            path: scan.path.clone(),
            entries: BTreeMap::new(),
            shown: HashMap::new(),
        };
        if want.ids.is_empty() && want.positions[which].is_empty() {
            // Nothing differs entry by entry: no need to read the archive again.
            return Ok(side);
        }
        let queue: RawQueue = Rc::new(RefCell::new(VecDeque::new()));
        let mut visit = Collecting {
            side: &mut side,
            want,
            which,
            other: &other.digests,
            raw_ok: scan.raw_ok && other.raw_ok,
            queue: Rc::clone(&queue),
            position: 0,
            buf: vec![0; CHUNK],
        };
        read_entries(
            &scan.path,
            scan.kind == ArchiveType::Deb,
            &mut visit,
            &queue,
        )?;
        Ok(side)
    }
}
