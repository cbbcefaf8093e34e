//! The archive module's error type: every message names the operation and the path.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::InputError;

/// What can go wrong while packing or listing an archive.
///
/// Messages name the operation and the path; the cause follows in the `source` chain (print
/// with `{:#}`). Bad user input carries an [`InputError`] in the chain so the binary exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A system call on `path` failed (`op` is the operation, e.g. "read", "open").
    #[error("{op} {}", shown(path))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the archive stream failed (`dest` is the output file, or "stdout").
    #[error("write {}", dest.display())]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file changed while it was being packed; the archive would not match the tree.
    #[error(
        "{} {what} while it was being packed; nothing was written",
        shown(path)
    )]
    Changed { path: PathBuf, what: String },
    /// SIGINT, SIGTERM or SIGHUP arrived; the partial output was removed.
    #[error("interrupted by signal {signal}; nothing was written")]
    Interrupted { signal: i32 },
    /// The user asked for something impossible (missing DIR, unknown format, bad option).
    #[error("{context}")]
    Input {
        context: String,
        #[source]
        source: InputError,
    },
}

impl ArchiveError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ArchiveError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Bad input: `context` names what (and which path) it concerns, `msg` what is wrong.
    pub(crate) fn input(context: impl Into<String>, msg: impl Into<String>) -> Self {
        ArchiveError::Input {
            context: context.into(),
            source: InputError::new(msg),
        }
    }
}

/// Paths longer than this are shown by their ends only.
const SHOWN_MAX: usize = 256;

/// `path` for a one-line message: whole when short, else its first and last components
/// around `...` and its length (a path too deep to open is 20,000 bytes of `d/d/d`).
fn shown(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() <= SHOWN_MAX {
        return path.display().to_string();
    }
    const END: usize = 48;
    // Cut at a `/` near each end, so whole components are shown where there are any.
    let head = bytes[END..]
        .iter()
        .position(|&b| b == b'/')
        .filter(|&i| i < END)
        .map_or(END, |i| END + i);
    let tail_from = bytes.len() - END;
    let tail = bytes[..tail_from]
        .iter()
        .rposition(|&b| b == b'/')
        .filter(|&i| tail_from - i < END)
        .map_or(tail_from, |i| i + 1);
    format!(
        "{}/.../{} ({} bytes)",
        String::from_utf8_lossy(&bytes[..head]),
        String::from_utf8_lossy(&bytes[tail..]),
        bytes.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_shown_by_their_ends() {
        assert_eq!(shown(Path::new("tree/a b")), "tree/a b");
        let deep = format!("tree{}", "/d".repeat(10_000));
        let s = shown(Path::new(&deep));
        assert!(s.len() < 130, "{s}");
        assert!(
            s.starts_with("tree/d/d/") && s.ends_with("/d/d (20004 bytes)"),
            "{s}"
        );
        assert!(!s.contains("//"), "{s}");
        let one = "x".repeat(1000);
        let s = shown(Path::new(&one));
        assert!(s.starts_with("xxx") && s.ends_with("xx (1000 bytes)") && s.len() < 120);
        let e = ArchiveError::io("stat", deep, io::Error::from_raw_os_error(36));
        assert!(e.to_string().len() < 130, "{e}");
    }
}
