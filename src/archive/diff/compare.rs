//! The comparison of `nsroot diff`: the wanted entries field by field, then what the entries
//! do not cover (order, the end of the tar stream, the compression), then the first
//! differing byte of each differing content.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::Path;

use super::raw::{gzip_header_difference, header_differences, Explains, HeaderDiff};
use super::report::{Difference, Field};
use super::scan::{Rec, Scan, Side};
use super::{key_of, Key, CHUNK, FETCH_BATCH};
use crate::archive::error::ArchiveError;
use crate::archive::list::{escape_name, format_time};
use crate::archive::read::{read_path, ArchiveType, EntryKind, EntryMeta, Section, Visit};

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

/// A content difference whose offset (and text diff) the last pass fills in.
pub(super) struct Pending {
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

/// All differences of the wanted entries (`ea`, `eb`) of the archives scanned as `a` and `b`,
/// but content offsets, sorted, and the content differences left to locate.
pub(super) fn compare(
    a: &Scan,
    b: &Scan,
    ea: &Side,
    eb: &Side,
) -> (Vec<(Key, Difference)>, Vec<Pending>) {
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
    let order = |s: &Scan| -> Vec<Key> {
        s.members
            .iter()
            .map(|m| key_of(Section::Members, m))
            .collect()
    };
    if a.kind == ArchiveType::Deb && b.kind == ArchiveType::Deb && order(a) != order(b) {
        let names = |s: &Scan| {
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

    let keys: BTreeSet<&Key> = ea.entries.keys().chain(eb.entries.keys()).collect();
    // Sections with entry-level differences: a member's bytes then differ for a known reason.
    let mut changed_sections = BTreeSet::new();
    let mut content: Vec<(Key, String, usize, bool)> = Vec::new();
    for key in keys {
        let (ra, rb) = match (ea.entries.get(key), eb.entries.get(key)) {
            (Some(ra), Some(rb)) => (ra, rb),
            (Some(r), None) | (None, Some(r)) => {
                let kind = Some(r.meta.kind.word());
                let (va, vb) = if ea.entries.contains_key(key) {
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
    for (key, ra) in ea.entries.iter().filter(|(_, r)| r.tar_member) {
        let Some(rb) = eb.entries.get(key) else {
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
    let at: HashMap<&Key, usize> = diffs
        .iter()
        .enumerate()
        .filter(|(_, (_, f, _))| *f == Field::Content)
        .map(|(i, (k, _, _))| (k, i))
        .collect();
    let pending = content
        .into_iter()
        .filter_map(|(key, _, chunk, small)| {
            at.get(&key).map(|&index| Pending {
                index,
                key: key.clone(),
                chunk,
                small,
            })
        })
        .collect();
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

/// Where the entries both sides hold come in another order, in one section: the first such
/// position of each side, as (number within the section, index into the scan's `order`),
/// None past the end.
pub(super) struct OrderDifference {
    pub path: &'static str,
    pub a: Option<(usize, usize)>,
    pub b: Option<(usize, usize)>,
}

/// For each section (a plain tar's entries, a .deb's control.tar and data.tar), the first
/// position at which the entries both sides hold come in another order.
pub(super) fn order_differences(a: &Scan, b: &Scan) -> Vec<OrderDifference> {
    let mut out = Vec::new();
    for (section, path) in [
        (Section::Tar, "(archive)"),
        (Section::Control, "control.tar"),
        (Section::Data, "data.tar"),
    ] {
        // (number within the section, index into order, id) of the entries the other holds.
        let common = |s: &Scan, other: &Scan| -> Vec<(usize, usize, super::scan::Id)> {
            s.order
                .iter()
                .enumerate()
                .filter(|(_, (sec, _))| *sec == section)
                .enumerate()
                .filter(|(_, (_, (_, id)))| other.digests.contains_key(id))
                .map(|(n, (i, (_, id)))| (n, i, *id))
                .collect()
        };
        let (ca, cb) = (common(a, b), common(b, a));
        let first = (0..ca.len().max(cb.len())).find(|&i| match (ca.get(i), cb.get(i)) {
            (Some(x), Some(y)) => x.2 != y.2,
            _ => true,
        });
        if let Some(i) = first {
            let at = |c: &[(usize, usize, super::scan::Id)]| c.get(i).map(|e| (e.0, e.1));
            out.push(OrderDifference {
                path,
                a: at(&ca),
                b: at(&cb),
            });
        }
    }
    out
}

/// What the entries do not cover, after them: entry order (`orders`, shown with the names
/// the second pass kept in `ea` and `eb`), the end of the tar stream, the compression, and,
/// when the files still differ unexplained, that they do.
pub(super) fn beyond_entries(
    a: &Scan,
    b: &Scan,
    orders: &[OrderDifference],
    (ea, eb): (&Side, &Side),
    diffs: &mut Vec<(Key, Difference)>,
) {
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
    let show = |side: &Side, at: Option<(usize, usize)>| match at {
        Some((n, i)) => format!(
            "entry {} is {}",
            n + 1,
            side.shown.get(&i).map_or("?", String::as_str)
        ),
        None => "no further entry".to_string(),
    };
    for o in orders {
        push(
            diffs,
            o.path,
            Field::EntryOrder,
            show(ea, o.a),
            show(eb, o.b),
        );
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

/// The last pass: the first differing offset and, for small text, a unified diff.
pub(super) fn locate(
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
pub(super) fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}
