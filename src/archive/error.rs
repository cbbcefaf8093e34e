//! The archive module's error type: every message names the operation and the path.

use std::io;
use std::path::PathBuf;

use crate::error::InputError;

/// What can go wrong while packing or listing an archive.
///
/// Messages name the operation and the path; the cause follows in the `source` chain (print
/// with `{:#}`). Bad user input carries an [`InputError`] in the chain so the binary exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A system call on `path` failed (`op` is the operation, e.g. "read", "open").
    #[error("{op} {}", path.display())]
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
    #[error("{} {what} while it was being packed; nothing was written", path.display())]
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
