//! Reading `.rpm` files back (with the rpm crate), for `list`, `diff` and `repro`: the
//! payload's files become entries of [`Section::Payload`] and the header's tags entries of
//! [`Section::Header`] (the tag's name, its value as text lines for content), with what the
//! header says of each (mode, owner and group names, mtime, size, link target, device
//! numbers; `%caps` and the file flags as pseudo-attributes), so every difference between
//! two packages has a name.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use num_traits::FromPrimitive;
use rpm::{FileType, IndexData, IndexSignatureTag, IndexTag};

use super::error::ArchiveError;
use super::format::Compression;
use super::read::{EntryKind, EntryMeta, Section, Visit};

/// The largest `.rpm` file read, and the most its payload may unpack to: the rpm crate holds
/// the file, and this reader every file's content, in memory, so these bound what a package
/// (or a crafted one, a decompression bomb) can make nsroot hold.
const MAX_RPM_BYTES: u64 = 1 << 30;
const MAX_PAYLOAD_BYTES: u64 = 2 << 30;

/// The lead's magic: the first bytes of every `.rpm`.
pub const RPM_MAGIC: &[u8] = &[0xed, 0xab, 0xee, 0xdb];

/// Header tags left out of the entries: they restate the payload's entries field by field
/// (names, modes, sizes, digests...), which the payload entries show by file; or they hold
/// the header's own layout.
const PER_FILE_TAGS: &[IndexTag] = &[
    IndexTag::RPMTAG_BASENAMES,
    IndexTag::RPMTAG_DIRNAMES,
    IndexTag::RPMTAG_DIRINDEXES,
    IndexTag::RPMTAG_FILESIZES,
    IndexTag::RPMTAG_FILEMODES,
    IndexTag::RPMTAG_FILERDEVS,
    IndexTag::RPMTAG_FILEMTIMES,
    IndexTag::RPMTAG_FILEDIGESTS,
    IndexTag::RPMTAG_FILELINKTOS,
    IndexTag::RPMTAG_FILEFLAGS,
    IndexTag::RPMTAG_FILEUSERNAME,
    IndexTag::RPMTAG_FILEGROUPNAME,
    IndexTag::RPMTAG_FILEDEVICES,
    IndexTag::RPMTAG_FILEINODES,
    IndexTag::RPMTAG_FILECAPS,
    IndexTag::RPMTAG_HEADERIMMUTABLE,
];

fn tag_name(tag: u32, signature: bool) -> String {
    let name = if signature {
        IndexSignatureTag::from_u32(tag).map(|t| t.to_string())
    } else {
        IndexTag::from_u32(tag).map(|t| t.to_string())
    };
    let name = name.unwrap_or_else(|| format!("TAG_{tag}"));
    let short = name
        .trim_start_matches("RPMSIGTAG_")
        .trim_start_matches("RPMTAG_");
    if signature {
        format!("signature:{short}")
    } else {
        short.to_string()
    }
}

/// A tag's value as text: one line per element.
fn value_text(data: &IndexData) -> Vec<u8> {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match data {
        IndexData::Null => {}
        IndexData::Char(v) | IndexData::Int8(v) | IndexData::Bin(v) => line(hex::encode(v)),
        IndexData::Int16(v) => v.iter().for_each(|x| line(x.to_string())),
        IndexData::Int32(v) => v.iter().for_each(|x| line(x.to_string())),
        IndexData::Int64(v) => v.iter().for_each(|x| line(x.to_string())),
        IndexData::StringTag(s) => line(s.clone()),
        IndexData::StringArray(v) | IndexData::I18NString(v) => {
            v.iter().for_each(|x| line(x.clone()))
        }
    }
    out.into_bytes()
}

fn tag_entry(name: String, content: &[u8]) -> EntryMeta {
    EntryMeta {
        path: name.into_bytes(),
        kind: EntryKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        uname: Vec::new(),
        gname: Vec::new(),
        size: content.len() as u64,
        mtime: 0,
        mtime_nsec: 0,
        link: Vec::new(),
        dev: (0, 0),
        xattrs: Vec::new(),
    }
}

/// Reads the `.rpm` in `input` into `visit`: its tags, then its payload's files in path
/// order. `name` names it in errors.
///
/// The whole file is read first and its two headers' index sizes and entry offsets are
/// checked against it: the rpm crate allocates what a header claims and indexes its data
/// by the offsets it holds, so a corrupt header would otherwise cost gigabytes or a panic.
/// What the crate still panics on is caught and reported as a corrupt file. Every file's
/// content is held in memory while the package is read (the crate holds the payload too).
///
/// Errors: an input error naming the file when it is not a readable RPM (a bad lead or
/// header, a payload that does not decompress or ends early).
pub fn read_rpm(
    input: impl BufRead,
    name: &str,
    visit: &mut dyn Visit,
) -> Result<(), ArchiveError> {
    let bad = |e: &dyn std::fmt::Display| {
        ArchiveError::input(format!("rpm {name}"), format!("not a readable RPM: {e}"))
    };
    let mut bytes = Vec::new();
    input
        .take(MAX_RPM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ArchiveError::io("read", name, e))?;
    if bytes.len() as u64 > MAX_RPM_BYTES {
        return Err(bad(&format_args!(
            "larger than {} MiB, the most nsroot reads of an .rpm (it holds one whole)",
            MAX_RPM_BYTES >> 20
        )));
    }
    check_headers(&bytes).map_err(|e| bad(&e))?;
    // A panic inside the crate is a corrupt input, reported as such; the default hook would
    // print it first, so a silent one stands in while the crate runs (list, diff and repro
    // read packages on one thread).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| parse(&bytes));
    std::panic::set_hook(hook);
    let (files, tags) = match parsed {
        Ok(r) => r.map_err(|e| bad(&e))?,
        Err(_) => return Err(bad(&"its header is corrupt (the rpm reader failed on it)")),
    };
    // Tags first: `list` prints the fields before the payload.
    for (name, text) in &tags {
        visit.entry(
            Section::Header,
            &tag_entry(name.clone(), text),
            &mut &text[..],
        )?;
    }
    for (meta, data) in &files {
        let mut r: &[u8] = data;
        visit.entry(Section::Payload, meta, &mut r)?;
    }
    Ok(())
}

/// The size of the lead, before the signature header.
const LEAD: usize = 96;

/// Checks the signature and main headers of `b`: magic, and an index and data that fit in
/// the file, every entry's offset and count inside its header's data.
fn check_headers(b: &[u8]) -> Result<(), String> {
    if b.len() < LEAD {
        return Err("shorter than an RPM lead".into());
    }
    let mut at = LEAD;
    for (which, pad) in [("signature", true), ("main", false)] {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        if b.get(at..at + 3) != Some(&[0x8e, 0xad, 0xe8][..]) {
            return Err(format!("no {which} header where one belongs"));
        }
        let (Some(n), Some(size)) = (word(at + 8), word(at + 12)) else {
            return Err(format!("the {which} header is cut short"));
        };
        let (n, size) = (n as usize, size as usize);
        let index = at + 16;
        let data = n
            .checked_mul(16)
            .and_then(|i| index.checked_add(i))
            .filter(|d| d.checked_add(size).is_some_and(|end| end <= b.len()))
            .ok_or_else(|| format!("the {which} header claims more than the file holds"))?;
        for e in 0..n {
            let (Some(kind), Some(offset), Some(count)) = (
                word(index + e * 16 + 4),
                word(index + e * 16 + 8),
                word(index + e * 16 + 12),
            ) else {
                return Err(format!("the {which} header is cut short"));
            };
            let unit: u64 = match kind {
                3 => 2,
                4 => 4,
                5 => 8,
                _ => 1,
            };
            let need = u64::from(count).saturating_mul(unit);
            if offset as usize > size || need > (size - offset as usize) as u64 {
                return Err(format!("an entry of the {which} header points outside it"));
            }
        }
        at = data + size;
        if pad {
            at = at.div_ceil(8) * 8;
        }
    }
    Ok(())
}

/// Refuses a payload that unpacks to more than `max` bytes (counted in a streaming pass before
/// the crate unpacks it into memory), or whose compression nsroot cannot count.
fn payload_within_bounds(payload: &[u8], max: u64) -> Result<(), String> {
    const CPIO: &[&[u8]] = &[b"070701", b"070702", b"07070X"];
    let compression = match Compression::sniff(payload) {
        Some(c) => c,
        None if CPIO.iter().any(|m| payload.starts_with(m)) => Compression::None,
        None => return Err("its payload is compressed in a way nsroot does not read".into()),
    };
    let reader = compression
        .reader(payload)
        .map_err(|e| format!("its payload does not decompress: {e}"))?;
    let unpacked = std::io::copy(&mut reader.take(max + 1), &mut std::io::sink())
        .map_err(|e| format!("its payload does not decompress: {e}"))?;
    if unpacked > max {
        return Err(format!(
            "its payload unpacks to more than {} MiB, the most nsroot reads of an .rpm",
            max >> 20
        ));
    }
    Ok(())
}

/// The payload's files (with their content) and the tags of a checked `.rpm`.
type Parsed = (Vec<(EntryMeta, Vec<u8>)>, Vec<(String, Vec<u8>)>);

fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut input = bytes;
    let pkg = rpm::Package::parse(&mut input).map_err(|e| e.to_string())?;
    payload_within_bounds(&pkg.payload, MAX_PAYLOAD_BYTES)?;
    let header = &pkg.metadata.header;
    let signature = &pkg.metadata.signature;
    let skip: Vec<u32> = PER_FILE_TAGS.iter().map(|t| *t as u32).collect();
    let mut tags: Vec<(String, Vec<u8>)> = Vec::new();
    for (sig, entries) in [
        (true, signature.get_all_entries()),
        (false, header.get_all_entries()),
    ] {
        for (tag, data) in entries.map_err(|e| e.to_string())? {
            if !sig && skip.contains(&tag) {
                continue;
            }
            tags.push((tag_name(tag, sig), value_text(&data)));
        }
    }
    // The payload's order is not the header's: the inode of a file is found by its path.
    let inodes: HashMap<std::path::PathBuf, u32> = pkg
        .metadata
        .get_file_entries()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|e| e.path())
        .zip(
            header
                .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES)
                .unwrap_or_default(),
        )
        .collect();
    let mut files = Vec::new();
    for f in pkg.files().map_err(|e| e.to_string())? {
        let f = f.map_err(|e| e.to_string())?;
        let e = &f.metadata;
        let kind = match e.file_type() {
            FileType::Dir => EntryKind::Dir,
            FileType::SymbolicLink => EntryKind::Symlink,
            FileType::CharacterDevice => EntryKind::Char,
            FileType::BlockDevice => EntryKind::Block,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Regular => EntryKind::File,
            _ => EntryKind::Other(b'?'),
        };
        let mut xattrs = Vec::new();
        if let Some(caps) = e.caps().filter(|c| !c.is_empty()) {
            xattrs.push((b"%caps".to_vec(), caps.as_bytes().to_vec()));
        }
        if !e.flags().is_empty() {
            xattrs.push((b"%flags".to_vec(), format!("{:?}", e.flags()).into_bytes()));
        }
        let meta = EntryMeta {
            path: format!(".{}", e.path().display()).into_bytes(),
            kind,
            mode: u32::from(e.permissions()),
            uid: 0,
            gid: 0,
            uname: e.user().as_bytes().to_vec(),
            gname: e.group().as_bytes().to_vec(),
            size: if kind == EntryKind::File {
                e.size() as u64
            } else {
                0
            },
            mtime: i64::from(u32::from(e.modified_at())),
            mtime_nsec: 0,
            link: e.linkto().unwrap_or("").as_bytes().to_vec(),
            dev: (u32::from(e.rdev_major()), u32::from(e.rdev_minor())),
            xattrs,
        };
        let inode = inodes.get(&e.path()).copied();
        files.push((meta, inode, f.into_content()));
    }
    files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    // Hard links: the payload carries the content once, with the set's last name.
    let mut shared: HashMap<u32, Vec<u8>> = HashMap::new();
    for (meta, inode, content) in &files {
        if let (EntryKind::File, Some(ino), Some(c)) = (meta.kind, inode, content) {
            if !c.is_empty() || meta.size == 0 {
                shared.entry(*ino).or_insert_with(|| c.clone());
            }
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for (meta, inode, content) in files {
        let data = match (meta.kind, content) {
            (EntryKind::File, Some(c)) if c.len() as u64 == meta.size => c,
            (EntryKind::File, _) => inode
                .and_then(|i| shared.get(&i).cloned())
                .filter(|c| c.len() as u64 == meta.size)
                .ok_or_else(|| {
                    format!(
                        "{}: the payload holds no content of its size",
                        String::from_utf8_lossy(&meta.path)
                    )
                })?,
            _ => Vec::new(),
        };
        out.push((meta, data));
    }
    Ok((out, tags))
}

/// True when `head` starts like an `.rpm`.
pub fn is_rpm(head: &[u8]) -> bool {
    head.starts_with(RPM_MAGIC)
}

/// The header tags `nsroot list` shows, in order, with the names `rpm -qi` gives them.
const SHOWN: &[(&str, &str)] = &[
    ("NAME", "Name"),
    ("EPOCH", "Epoch"),
    ("VERSION", "Version"),
    ("RELEASE", "Release"),
    ("ARCH", "Architecture"),
    ("LICENSE", "License"),
    ("GROUP", "Group"),
    ("URL", "URL"),
    ("PACKAGER", "Packager"),
    ("BUILDHOST", "Build Host"),
    ("BUILDTIME", "Build Time"),
    ("PAYLOADCOMPRESSOR", "Payload"),
    ("REQUIRENAME", "Requires"),
    ("PROVIDENAME", "Provides"),
    ("CONFLICTNAME", "Conflicts"),
    ("OBSOLETENAME", "Obsoletes"),
    ("RECOMMENDNAME", "Recommends"),
    ("SUMMARY", "Summary"),
    ("DESCRIPTION", "Description"),
];

/// The field name `nsroot list` shows a header entry under, and its place among the
/// fields, if it shows it.
pub fn shown_field(tag: &[u8]) -> Option<(usize, &'static str)> {
    SHOWN
        .iter()
        .position(|(t, _)| t.as_bytes() == tag)
        .map(|i| (i, SHOWN[i].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_that_unpack_past_the_bound_are_refused_before_they_are_held() {
        let zeros = vec![0u8; 3 << 20];
        let bomb = zstd::encode_all(&zeros[..], 19).unwrap();
        assert!(bomb.len() < 4096, "{}", bomb.len());
        let e = payload_within_bounds(&bomb, 2 << 20).unwrap_err();
        assert!(e.contains("more than 2 MiB"), "{e}");
        assert_eq!(payload_within_bounds(&bomb, 4 << 20), Ok(()));
        assert_eq!(payload_within_bounds(b"070701 a cpio", 1 << 20), Ok(()));
        assert!(payload_within_bounds(b"BZh91AY&SY", 1 << 20)
            .unwrap_err()
            .contains("does not read"));
    }
}
