//! Reading `.rpm` files back (with the rpm crate), for `list`, `diff` and `repro`: the
//! header's tags become entries of [`Section::Header`] (the tag's name, its value as text
//! lines for content) and the payload's files entries of [`Section::Payload`], with what the
//! header says of each (mode, owner and group names, mtime, size, link target, device
//! numbers; `%caps` and the file flags as pseudo-attributes), so every difference between
//! two packages has a name.

use std::collections::HashMap;
use std::io::BufRead;

use num_traits::FromPrimitive;
use rpm::{FileType, IndexData, IndexSignatureTag, IndexTag};

use super::error::ArchiveError;
use super::read::{EntryKind, EntryMeta, Section, Visit};

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

/// Reads the `.rpm` in `input` into `visit`: its tags, then its payload's files in the
/// header's (sorted) order. `name` names it in errors.
///
/// Errors: an input error naming the file when it is not a readable RPM (a bad lead or
/// header, a payload that does not decompress or ends early).
pub fn read_rpm(
    mut input: impl BufRead,
    name: &str,
    visit: &mut dyn Visit,
) -> Result<(), ArchiveError> {
    let bad = |e: &dyn std::fmt::Display| {
        ArchiveError::input(format!("rpm {name}"), format!("not a readable RPM: {e}"))
    };
    let pkg = rpm::Package::parse(&mut input).map_err(|e| bad(&e))?;
    let header = &pkg.metadata.header;
    let signature = &pkg.metadata.signature;
    let skip: Vec<u32> = PER_FILE_TAGS.iter().map(|t| *t as u32).collect();
    let mut tags: Vec<(String, Vec<u8>)> = Vec::new();
    for (sig, entries) in [
        (true, signature.get_all_entries()),
        (false, header.get_all_entries()),
    ] {
        for (tag, data) in entries.map_err(|e| bad(&e))? {
            if !sig && skip.contains(&tag) {
                continue;
            }
            tags.push((tag_name(tag, sig), value_text(&data)));
        }
    }
    for (name, text) in &tags {
        visit.entry(
            Section::Header,
            &tag_entry(name.clone(), text),
            &mut &text[..],
        )?;
    }

    // The payload's order is not the header's: the inode of a file is found by its path.
    let inodes: HashMap<std::path::PathBuf, u32> = pkg
        .metadata
        .get_file_entries()
        .map_err(|e| bad(&e))?
        .iter()
        .map(|e| e.path())
        .zip(
            header
                .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES)
                .unwrap_or_default(),
        )
        .collect();
    let mut files = Vec::new();
    for f in pkg.files().map_err(|e| bad(&e))? {
        let f = f.map_err(|e| bad(&e))?;
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
    for (meta, inode, content) in files {
        let data = match (meta.kind, content) {
            (EntryKind::File, Some(c)) if c.len() as u64 == meta.size => c,
            (EntryKind::File, _) => inode
                .and_then(|i| shared.get(&i).cloned())
                .filter(|c| c.len() as u64 == meta.size)
                .ok_or_else(|| {
                    bad(&format!(
                        "{}: the payload holds no content of its size",
                        String::from_utf8_lossy(&meta.path)
                    ))
                })?,
            _ => Vec::new(),
        };
        let mut r: &[u8] = &data;
        visit.entry(Section::Payload, &meta, &mut r)?;
    }
    Ok(())
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
