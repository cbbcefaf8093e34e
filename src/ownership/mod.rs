//! Recorded ownership: what chown, chgrp, mknod and setxattr asked for, and how it is persisted.
//!
//! The archive applies records through [`Lookup`]; [`Store`] holds them ([`store`]), the state
//! file persists them ([`state`]), and the seccomp supervisor fills and serves them
//! ([`supervisor`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod state;
pub mod store;

pub use store::{Btime, FileId, Store};

/// What was recorded for one file: each field overrides what the disk says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Owner uid as seen inside the session.
    pub uid: Option<u32>,
    /// Group gid as seen inside the session.
    pub gid: Option<u32>,
    /// Full st_mode (file type and permission bits), e.g. a character device recorded by mknod.
    /// From [`Lookup`], the permission bits are the disk's current ones (chmod works on a
    /// recorded device node); in the store they are those mknod asked for.
    pub mode: Option<u32>,
    /// Device numbers of a recorded device node (as `libc::makedev` gives them).
    pub rdev: Option<u64>,
    /// Extended attributes the kernel refused (security.*, trusted.*), recorded instead.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// Finds the record of a file, if any. `meta` is the file's `symlink_metadata`.
pub trait Lookup {
    /// The record for the file at `path`, or None when nothing was recorded for it.
    fn lookup(&self, path: &Path, meta: &std::fs::Metadata) -> Option<Record>;
}

/// Errors of recorded ownership: state files, the seccomp filter and the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// A state file that is missing, foreign, truncated, corrupt or too new.
    #[error("bad state file {path}")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it (exit status 2).
        #[source]
        source: crate::error::InputError,
    },
    /// A state file that could not be read.
    #[error("cannot read state file {path}")]
    ReadState {
        /// The state file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A state file that could not be written; the old one, if any, is intact.
    #[error("cannot save state file {path}: {what} failed")]
    SaveState {
        /// The state file.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
