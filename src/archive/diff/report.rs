//! The report of `nsroot diff`: what differs, entry by entry and beyond, and how it prints.

use std::fmt;

use serde::Serialize;

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
    pub(super) fn label(self) -> &'static str {
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
