//! `nsroot diff`: two archives (tar in any compression, or .deb) compared entry by entry.
//!
//! Memory stays bounded whatever the archives hold. The first pass over each archive
//! (`scan`) keeps about 100 bytes an entry: ids of its key and digests of its header and
//! content, whatever the lengths of its name or content. Only the entries whose digests
//! differ, or that one side lacks, are read again and kept in full (`scan::Side`), so memory
//! beyond that follows the size of the report. Those are compared field by field
//! (`compare`); for contents that differ, a last pass fetches just the first differing
//! 64 KiB chunk of each side, which gives the exact first differing offset and, when both
//! sides are small text, a unified diff.
//!
//! After the entries come the differences they do not cover (`raw`): entry order, path
//! spelling, header format and encodings, the end of the tar stream, the compression. Files
//! whose bytes differ never compare equal: what nothing else explains is reported as such.
//! `report` holds the report's types and its text form.

mod compare;
mod raw;
mod report;
mod scan;

use std::path::Path;

pub use report::{DiffReport, Difference, Field};

use super::error::ArchiveError;
use super::list::escape_name;
use super::read::Section;
use scan::{Scan, Side, Wanted};

/// Contents are hashed, located and fetched in chunks this large; text diffs are shown for
/// contents no larger (on both sides).
const CHUNK: usize = 64 * 1024;
/// Chunks fetched per pass of the last reading (so at most 16 MiB per side in memory).
const FETCH_BATCH: usize = 256;

/// Entries are matched by section and path, without leading `./` and trailing `/` (a
/// different spelling is reported on its own).
type Key = (Section, Vec<u8>);

/// Compares the archives at `a` and `b` (each a tar in any compression nsroot reads, or a
/// .deb) entry by entry, then what the entries do not cover: entry order, header bytes, the
/// end of the tar stream, the compression. The report is empty only when the files are the
/// same bytes.
///
/// Errors name the archive: an input error (exit 2) when one does not exist or is not a
/// valid, complete archive; an I/O error when one cannot be read.
pub fn diff_archives(a: &Path, b: &Path) -> Result<DiffReport, ArchiveError> {
    let sa = Scan::read(a)?;
    let sb = Scan::read(b)?;
    let orders = compare::order_differences(&sa, &sb);
    let want = Wanted {
        ids: scan::wanted(&sa, &sb),
        positions: [
            orders.iter().filter_map(|o| o.a.map(|p| p.1)).collect(),
            orders.iter().filter_map(|o| o.b.map(|p| p.1)).collect(),
        ],
    };
    let ea = Side::collect(&sa, 0, &want, &sb)?;
    let eb = Side::collect(&sb, 1, &want, &sa)?;
    let (mut diffs, pending) = compare::compare(&sa, &sb, &ea, &eb);
    compare::locate(&ea, &eb, &mut diffs, &pending)?;
    compare::beyond_entries(&sa, &sb, &orders, (&ea, &eb), &mut diffs);
    Ok(DiffReport {
        a: a.display().to_string(),
        b: b.display().to_string(),
        differences: diffs.into_iter().map(|(_, d)| d).collect(),
    })
}

/// The matching key of an entry.
pub(super) fn key_of(section: Section, path: &[u8]) -> Key {
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
        assert!(compare::is_text(b"hello\n"));
        assert!(!compare::is_text(b"a\0b"));
        assert!(!compare::is_text(b"\xff"));
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
