//! The supervisor's access to a target: its memory (the path and name arguments, the answer
//! written back), its credentials, and the file a call names, located as the target itself
//! would ([`crate::ownership::resolve`]).

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use super::{Reply, SupervisorStats, PATH_MAX};
use crate::ownership::resolve::{self, Resolution, Start};
use crate::ownership::statx::{key_of_statx, SX_MODE};
use crate::ownership::store::{Btime, FileId, Store, S_IFMT};
use crate::sys::seccomp as sys;

/// Where a call's file is: a path relative to a dirfd, or an fd.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    /// `dirfd` (AT_FDCWD or an fd of the target), `addr` of the path in the target's memory
    /// (0 for a NULL path).
    At { dirfd: i32, addr: u64 },
    /// An fd of the target.
    Fd(i32),
}

pub(super) struct Ctx {
    pub(super) listener: OwnedFd,
    /// The supervisor's own /proc (its pid namespace, which the notifications' pids are in),
    /// opened before the sandbox may mount another procfs over /proc. Paths are relative to it.
    pub(super) proc: OwnedFd,
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) euid: u32,
    pub(super) overflow_uid: u32,
    /// The overflow ids a 16-bit id field shows for a larger id (i386's old stat calls).
    #[cfg(target_arch = "x86_64")]
    pub(super) overflow: crate::ownership::statx::OverflowIds,
    /// The target's path, without NUL (reused: no allocation per call).
    pub(super) path: Vec<u8>,
    /// An xattr name, without NUL (reused).
    pub(super) name: Vec<u8>,
    pub(super) stats: SupervisorStats,
}

pub(super) fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic elsewhere while holding the lock leaves the map consistent (no multi-step edits).
    store.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    /// Reads a NUL-terminated string of at most `max` bytes (NUL excluded) at `addr` in the
    /// target into `buf`, a page at a time so that a string ending just before an unmapped
    /// page is still read. `too_long` is the errno for a longer string.
    pub(super) fn read_str(
        pid: u32,
        addr: u64,
        buf: &mut Vec<u8>,
        max: usize,
        too_long: Errno,
    ) -> Result<(), Errno> {
        buf.clear();
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        let mut a = addr;
        loop {
            // A short first read: most paths are short, and copying to the end of the page
            // costs more than a second call for the rare long one.
            let room = 4096 - (a % 4096) as usize;
            let chunk = if buf.is_empty() { room.min(256) } else { room };
            let want = chunk.min(max + 1 - buf.len());
            let start = buf.len();
            buf.resize(start + want, 0);
            let got = match sys::read_remote(pid, a, &mut buf[start..]) {
                Ok(0) | Err(_) => {
                    buf.truncate(start);
                    return Err(Errno::EFAULT);
                }
                Ok(got) => got,
            };
            buf.truncate(start + got);
            if let Some(nul) = buf[start..].iter().position(|&b| b == 0) {
                buf.truncate(start + nul);
                return Ok(());
            }
            if buf.len() > max {
                return Err(too_long);
            }
            a += got as u64;
        }
    }

    /// The object the call names, resolved as the target would resolve it
    /// ([`super::resolve`]): an `O_PATH` descriptor. `flags` are the call's AT_* flags.
    /// Err(Continue) when only the kernel can resolve it as the target; Err(Gone) when the
    /// target died; else the errno the target's own call would get.
    pub(super) fn locate(&mut self, pid: u32, t: Target, flags: i32) -> Result<OwnedFd, Reply> {
        let found = match t {
            Target::Fd(fd) => resolve::target_fd(self.proc.as_fd(), pid, fd).map(Resolution::Found),
            Target::At { dirfd, addr } => {
                let empty_ok = flags & libc::AT_EMPTY_PATH != 0;
                if addr == 0 && empty_ok {
                    self.path.clear(); // statx(2) accepts NULL with AT_EMPTY_PATH since 6.11
                } else {
                    Self::read_str(pid, addr, &mut self.path, PATH_MAX - 1, Errno::ENAMETOOLONG)?;
                }
                if self.path.is_empty() && !empty_ok {
                    return Err(Errno::ENOENT.into());
                }
                let start = if dirfd == libc::AT_FDCWD {
                    Start::Cwd
                } else if dirfd < 0 && self.path.first() != Some(&b'/') {
                    return Err(Errno::EBADF.into());
                } else {
                    Start::Dirfd(dirfd)
                };
                let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
                resolve::resolve(self.proc.as_fd(), pid, start, &self.path, follow)
            }
        };
        match found {
            Ok(Resolution::Found(fd)) => Ok(fd),
            Ok(Resolution::Kernel) => Err(Reply::Continue),
            Err(Errno::ESRCH) => Err(Reply::Gone),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory that would hold the file a creating call (mknod) names, and the name.
    /// `dir`: the call makes a directory (mkdir), whose name may end in slashes.
    pub(super) fn locate_parent(
        &mut self,
        pid: u32,
        t: Target,
        dir: bool,
    ) -> Result<(OwnedFd, Vec<u8>), Reply> {
        let Target::At { dirfd, addr } = t else {
            return Err(Reply::Continue);
        };
        Self::read_str(pid, addr, &mut self.path, PATH_MAX - 1, Errno::ENAMETOOLONG)?;
        while dir && self.path.len() > 1 && self.path.ends_with(b"/") {
            self.path.pop();
        }
        let start = if dirfd == libc::AT_FDCWD {
            Start::Cwd
        } else {
            Start::Dirfd(dirfd)
        };
        match resolve::resolve_parent(self.proc.as_fd(), pid, start, &self.path) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(Reply::Continue),
            Err(Errno::ESRCH) => Err(Reply::Gone),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn valid(&self, n: &sys::Notif) -> bool {
        sys::notif_id_valid(self.listener.as_fd(), n.id)
    }

    /// Writes `bytes` at `addr` in the target. The fd is opened before the validity check, so
    /// it cannot belong to a process that took over a recycled pid (seccomp_unotify(2)).
    pub(super) fn write_target(
        &self,
        n: &sys::Notif,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), Reply> {
        let mut p = Vec::with_capacity(32);
        let _ = write!(p, "{}/mem\0", n.pid);
        let path = CStr::from_bytes_with_nul(&p).map_err(|_| Reply::Gone)?;
        let mem =
            sys::openat(self.proc.as_fd(), path, libc::O_WRONLY, 0).map_err(|_| Reply::Gone)?;
        if !self.valid(n) {
            return Err(Reply::Gone);
        }
        mem.write_all_at(bytes, addr)
            .map_err(|_| Reply::Errno(Errno::EFAULT))
    }

    /// Locates the file `t` names ([`Ctx::locate`]) and statx(2)s it with `mask` (and the
    /// call's sync flags): its descriptor and the result.
    pub(super) fn stat_target(
        &mut self,
        pid: u32,
        t: Target,
        flags: i32,
        mask: u32,
    ) -> Result<(OwnedFd, sys::StatxBuf), Reply> {
        let fd = self.locate(pid, t, flags)?;
        let mut buf = sys::StatxBuf([0; 256]);
        sys::statx(
            Some(fd.as_fd()),
            c"",
            libc::AT_EMPTY_PATH | (flags & libc::AT_STATX_SYNC_TYPE),
            mask | libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut buf,
        )?;
        Ok((fd, buf))
    }

    /// [`Ctx::stat_target`] for a call that records: on overlayfs the file is first copied up
    /// (a record keyed by the lower file's birth time would be lost at the copy-up a later
    /// write makes), and the key is the upper file's.
    pub(super) fn stat_for_record(
        &mut self,
        pid: u32,
        t: Target,
        flags: i32,
    ) -> Result<(OwnedFd, sys::StatxBuf), Reply> {
        let (fd, buf) = self.stat_target(pid, t, flags, 0)?;
        if sys::fs_magic(fd.as_fd()) != Ok(sys::OVERLAYFS_SUPER_MAGIC) {
            return Ok((fd, buf));
        }
        let mode = u16::from_ne_bytes([buf.0[SX_MODE], buf.0[SX_MODE + 1]]) as u32;
        let _ = sys::touch_metadata(fd.as_fd(), mode, mode & S_IFMT == libc::S_IFLNK);
        let mut after = sys::StatxBuf([0; 256]);
        sys::statx(
            Some(fd.as_fd()),
            c"",
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut after,
        )?;
        Ok((fd, after))
    }

    /// The store key of the file `t` names and its descriptor; Err(Continue) when it cannot
    /// be resolved, as the kernel's own call will then fail the same way.
    pub(super) fn recorded_key(
        &mut self,
        n: &sys::Notif,
        t: Target,
        flags: i32,
    ) -> Result<(FileId, Option<Btime>, OwnedFd), Reply> {
        let (fd, buf) = match self.stat_target(n.pid, t, flags, 0) {
            Ok(r) => r,
            Err(Reply::Gone) => return Err(Reply::Gone),
            Err(_) => return Err(Reply::Continue),
        };
        let (id, btime) = key_of_statx(&buf.0);
        Ok((id, btime, fd))
    }
}

/// `/proc/self/fd/N` for our descriptor `fd`, for the calls that take no dirfd (listxattr,
/// getxattr): the magic link reaches the object itself, a symlink included (the kernel does
/// not follow the object a magic link jumps to).
pub(super) fn fd_path(fd: &OwnedFd) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// The fields of /proc/<pid>/status mknod needs (proc_pid_status(5)).
pub(super) struct TargetCreds {
    pub(super) umask: u32,
    pub(super) fsuid: u32,
    pub(super) fsgid: u32,
}

impl TargetCreds {
    pub(super) fn read(proc: BorrowedFd<'_>, pid: u32) -> Option<TargetCreds> {
        let path = std::ffi::CString::new(format!("{pid}/status")).ok()?;
        let mut s = String::new();
        sys::openat(proc, &path, libc::O_RDONLY, 0)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        let field = |key: &str| s.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        let umask = u32::from_str_radix(field("Umask:")?, 8).ok()?;
        // "Uid:\treal\teffective\tsaved\tfilesystem"
        let fs_id = |key: &str| field(key)?.split_whitespace().nth(3)?.parse::<u32>().ok();
        Some(TargetCreds {
            umask,
            fsuid: fs_id("Uid:")?,
            fsgid: fs_id("Gid:")?,
        })
    }
}
