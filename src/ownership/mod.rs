//! Recorded ownership: what chown, chgrp, mknod and setxattr asked for, and how it is persisted.
//!
//! The archive applies records through [`Lookup`]; [`Store`] holds them ([`store`]), the state
//! file persists them ([`state`]), and the seccomp supervisor fills and serves them
//! ([`supervisor`]).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::sys::seccomp as sys;

pub mod fastpath;
pub mod resolve;
pub mod shared;
pub mod state;
mod statx;
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
    /// The seccomp filter could not be installed (in the command's process, before exec).
    #[error("cannot install the seccomp filter that records ownership")]
    Filter(#[source] sys::CallError),
    /// The supervisor's listener failed.
    #[error("ownership supervisor failed")]
    Supervisor(#[source] sys::CallError),
    /// The supervisor thread could not be started.
    #[error("cannot start the ownership supervisor thread")]
    Thread(#[source] std::io::Error),
    /// /proc could not be opened for the supervisor.
    #[error("cannot open /proc for the ownership supervisor")]
    Proc(#[source] std::io::Error),
    /// The supervisor thread panicked.
    #[error("the ownership supervisor thread panicked")]
    Panicked,
    /// A supervised command could not be started or waited for.
    #[error("cannot {what} the supervised command")]
    Command {
        /// spawn or wait for.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The seccomp filter and the supervisor: how a session's calls reach the store.
pub mod supervisor;

pub use supervisor::{inside_session, open_proc, session_key, Supervisor, SupervisorStats};

/// Installs the filter in the calling process: sets no_new_privs, then sends the chown, stat,
/// mknod and xattr families to a listener, which it returns (close-on-exec).
///
/// Call it in the command's process after fork, just before exec, and send the fd to the
/// supervising process with [`send_fd`]. Inside a session it fails with EBUSY (one listener
/// per filter chain): check [`inside_session`] first and then install nothing. It allocates nothing, so it is safe in a forked child
/// of a multithreaded parent. Errors: [`OwnershipError::Filter`] with the call and errno.
pub fn install_filter() -> Result<OwnedFd, OwnershipError> {
    sys::install_filter().map_err(OwnershipError::Filter)
}

pub use crate::sys::seccomp::{recv_fd, send_fd};

/// Runs `cmd` under the filter with a supervisor on a thread of this process, and returns its
/// output (streams you set to `Stdio::piped()` are collected) and the store once every process
/// of the session has exited. Used by tests and `nsroot doctor`; `cmd` must not be reused.
///
/// Inside a session ([`inside_session`]) no second filter can be installed (seccomp(2) allows
/// one listener per filter chain: EBUSY), so the command runs under the outer supervisor,
/// which records its calls, and `store` comes back unchanged. nsroot's sandbox does the same.
///
/// Errors: [`OwnershipError::Command`] when the command cannot start (including a failed
/// filter installation, reported by spawn with its errno), supervisor errors.
#[doc(hidden)]
pub fn run_supervised(cmd: &mut Command, store: Store) -> Result<(Output, Store), OwnershipError> {
    if inside_session() {
        let out = cmd.output().map_err(|e| OwnershipError::Command {
            what: "run",
            source: e,
        })?;
        return Ok((out, store));
    }
    let (ours, theirs) = UnixStream::pair().map_err(|e| OwnershipError::Command {
        what: "create a socket pair for",
        source: e,
    })?;
    sys::install_filter_before_exec(cmd, theirs.as_raw_fd());
    let child = cmd.spawn().map_err(|e| OwnershipError::Command {
        what: "spawn",
        source: e,
    })?;
    drop(theirs);
    let listener = recv_fd(ours.as_fd()).map_err(OwnershipError::Supervisor)?;
    let store = Arc::new(Mutex::new(store));
    let handle = Supervisor::spawn(listener, Arc::clone(&store))?;
    let out = child
        .wait_with_output()
        .map_err(|e| OwnershipError::Command {
            what: "wait for",
            source: e,
        })?;
    handle.join().map_err(|_| OwnershipError::Panicked)??;
    let store = std::mem::take(&mut *store.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((out, store))
}

/// Whether ownership emulation works here, for `nsroot doctor`: runs `true` under the filter
/// with a supervisor. The error says what failed and what the kernel and runtime need
/// (`nsroot doctor` adds that `--no-emulate` runs without it).
pub fn emulation_available() -> Result<(), String> {
    let mut cmd = Command::new("true");
    cmd.stdin(std::process::Stdio::null());
    match run_supervised(&mut cmd, Store::new()) {
        Ok((out, _)) if out.status.success() => Ok(()),
        Ok((out, _)) => Err(format!(
            "a command under the seccomp filter failed ({})",
            out.status
        )),
        Err(e) => {
            let msg = crate::error::chain(&e);
            Err(format!(
                "{msg}; seccomp user notification needs Linux 5.5 or later with CONFIG_SECCOMP_FILTER, \
                 and a container runtime that allows seccomp(2)"
            ))
        }
    }
}
