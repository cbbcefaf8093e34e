//! Recorded ownership: what chown, chgrp and mknod asked for, and how it is persisted.
//!
//! The archive applies records through [`Lookup`]; the store behind it (state files, the
//! seccomp supervisor that fills it) lives in this module's children.

use std::ffi::OsString;
use std::path::Path;

/// What was recorded for one file: each field overrides what the disk says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Owner uid as seen inside the session.
    pub uid: Option<u32>,
    /// Group gid as seen inside the session.
    pub gid: Option<u32>,
    /// Full st_mode (file type and permission bits), e.g. a character device recorded by mknod.
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
