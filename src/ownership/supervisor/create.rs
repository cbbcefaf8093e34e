//! Creating calls in a setgid directory with a recorded group (ARCHITECTURE.md, "Where
//! nsroot follows fakeroot and where the kernel", item 2): open and openat with `O_CREAT`,
//! creat, openat2, mkdir, mkdirat, symlink, symlinkat and mknod of a FIFO, socket or regular
//! file. The kernel gives a new object the group of a setgid parent (inode_init_owner); on
//! disk that is the user's group, so the supervisor makes the object itself, exactly as the
//! kernel would (the target's umask, no final symlink followed, EEXIST left to the kernel),
//! and records the parent's recorded group for it. Every other case is the kernel's:
//! CONTINUE, without reading the target's memory while no directory has a recorded group.
//!
//! The uid is left unrecorded: the new object shows the disk's owner, as every other new
//! file of the session does. Unix sockets made by bind(2) are not notified and keep the
//! disk's group, as does an `O_TMPFILE` file (unnamed; `linkat` later names it like a file
//! moved in, which keeps its own group).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::target::{lock, Ctx, Target, TargetCreds};
use super::{Reply, PATH_MAX};
use crate::ownership::statx::{get_u32, key_of_statx, mode_of, SX_GID, SX_UID};
use crate::ownership::store::{PERM_BITS, S_IFMT};
use crate::sys::seccomp as sys;

/// What a creating call other than open asks for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Create {
    /// mkdir, mkdirat: the mode argument.
    Dir { mode: u32 },
    /// mknod, mknodat of a FIFO, socket or regular file: the mode argument, type included.
    Node { mode: u32 },
    /// symlink, symlinkat: the address of the link's target string.
    Symlink { target: u64 },
}

/// Where a new object goes and the group it takes.
pub(super) struct Inherit {
    /// The parent directory, as the target resolves it.
    pub(super) dir: OwnedFd,
    /// The last component.
    pub(super) name: CString,
    /// The parent's recorded group.
    pub(super) gid: u32,
    pub(super) creds: TargetCreds,
}

/// `struct open_how` (linux/openat2.h) as openat2(2) of this size reads it.
const OPEN_HOW_LEN: usize = 24;

impl Ctx {
    /// The group a new object in `dir` takes: the recorded one, when `dir` is setgid on disk.
    pub(super) fn group_of_setgid_dir(&self, dir: BorrowedFd<'_>) -> Option<u32> {
        self.setgid_dir(dir).map(|(gid, _)| gid)
    }

    /// [`Ctx::group_of_setgid_dir`], with the directory's statx.
    fn setgid_dir(&self, dir: BorrowedFd<'_>) -> Option<(u32, sys::StatxBuf)> {
        let mut buf = sys::StatxBuf([0; 256]);
        sys::statx(
            Some(dir),
            c"",
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut buf,
        )
        .ok()?;
        let mode = mode_of(&buf.0);
        if mode & S_IFMT != libc::S_IFDIR || mode & libc::S_ISGID == 0 {
            return None;
        }
        let (id, btime) = key_of_statx(&buf.0);
        let gid = lock(&self.store).patch(id, btime)?.gid?;
        Some((gid, buf))
    }

    /// False when the supervisor is real root and the target's fsuid and fsgid could not
    /// write and search the directory of statx `dir` by its mode (supplementary groups and
    /// ACLs aside: the kernel then decides, without the group), so that the supervisor never
    /// creates where the target could not.
    fn target_may_create_in(&self, dir: &sys::StatxBuf, c: &TargetCreds) -> bool {
        if self.euid != 0 || c.fsuid == 0 {
            return true; // the supervisor has no more privilege than the target
        }
        let shift = if get_u32(&dir.0, SX_UID) == c.fsuid {
            6
        } else if get_u32(&dir.0, SX_GID) == c.fsgid {
            3
        } else {
            0
        };
        (mode_of(&dir.0) >> shift) & 0o3 == 0o3
    }

    /// The parent of the object `t` names (`is_dir`: a directory, whose name may end in
    /// slashes), when it is setgid with a recorded group, and the target's credentials,
    /// checked valid. Err(Continue) in every other case (the kernel's
    /// answer, errors included), Err(Gone) when the target died.
    fn inherit(&mut self, n: &sys::Notif, t: Target, is_dir: bool) -> Result<Inherit, Reply> {
        let (dir, mut name) = match self.locate_parent(n.pid, t, is_dir) {
            Ok(found) => found,
            Err(Reply::Gone) => return Err(Reply::Gone),
            Err(_) => return Err(Reply::Continue),
        };
        let (gid, stx) = self.setgid_dir(dir.as_fd()).ok_or(Reply::Continue)?;
        name.push(0);
        let name = CString::from_vec_with_nul(name).map_err(|_| Reply::Continue)?;
        let creds = TargetCreds::read(self.proc.as_fd(), n.pid).ok_or(Reply::Gone)?;
        if !self.target_may_create_in(&stx, &creds) {
            return Err(Reply::Continue);
        }
        if !self.valid(n) {
            return Err(Reply::Gone);
        }
        Ok(Inherit {
            dir,
            name,
            gid,
            creds,
        })
    }

    /// After the supervisor made `name` in `dir` for the target: the ids the kernel would
    /// have given it when the supervisor is real root ([`Ctx::handed_ids`]), its mode when our
    /// umask took bits the target's did not (`want`; None for a symlink), and the record
    /// of its group.
    fn adopt(&self, at: &Inherit, want: Option<u32>) -> Result<(), Errno> {
        let mut buf = sys::StatxBuf([0; 256]);
        sys::statx(
            Some(at.dir.as_fd()),
            &at.name,
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut buf,
        )?;
        if let Some((uid, gid)) = self.handed_ids(&at.creds, get_u32(&buf.0, SX_GID)) {
            let _ = sys::lchownat(at.dir.as_fd(), &at.name, Some(uid), gid);
        }
        if let Some(want) = want {
            if mode_of(&buf.0) & PERM_BITS != want {
                sys::fchmodat(at.dir.as_fd(), &at.name, want)?;
            }
        }
        let (id, btime) = key_of_statx(&buf.0);
        lock(&self.store).set_owner(id, btime, None, Some(at.gid));
        Ok(())
    }

    /// Running as real root for an unprivileged target, a file the supervisor made must be
    /// the target's, who may delete it: the uid and gid to give it (the group stays as a
    /// setgid directory gave it, `gid` on disk); None when the supervisor is not root.
    pub(super) fn handed_ids(&self, c: &TargetCreds, gid: u32) -> Option<(u32, Option<u32>)> {
        (self.euid == 0 && c.fsuid != 0).then(|| (c.fsuid, (gid == 0).then_some(c.fsgid)))
    }

    /// mkdir, mknod (FIFO, socket, regular file) and symlink in a setgid directory with a
    /// recorded group; anything else, or a failure, is the kernel's.
    pub(super) fn create(&mut self, n: &sys::Notif, t: Target, what: Create) -> Reply {
        if !lock(&self.store).dir_groups() {
            return Reply::Continue;
        }
        let mut target = Vec::new();
        if let Create::Symlink { target: addr } = what {
            if Self::read_str(n.pid, addr, &mut target, PATH_MAX - 1, Errno::ENAMETOOLONG).is_err()
            {
                return Reply::Continue;
            }
        }
        if let Create::Node { mode } = what {
            if !matches!(
                mode & S_IFMT,
                0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK
            ) {
                return Reply::Continue;
            }
        }
        let at = match self.inherit(n, t, matches!(what, Create::Dir { .. })) {
            Ok(at) => at,
            Err(r) => return r,
        };
        let umask = at.creds.umask;
        let (dir, name) = (at.dir.as_fd(), at.name.as_c_str());
        // The kernel's modes: mkdir keeps the sticky bit and a setgid parent adds S_ISGID
        // (the disk does that for us too); mknod keeps every permission bit; a symlink has
        // none.
        let (made, want) = match what {
            Create::Dir { mode } => {
                let want = (mode & 0o1777 & !umask) | libc::S_ISGID;
                (sys::mkdirat(dir, name, want), Some(want))
            }
            Create::Node { mode } => {
                let want = mode & PERM_BITS & !umask;
                let kind = match mode & S_IFMT {
                    0 => libc::S_IFREG,
                    k => k,
                };
                (sys::mknodat(dir, name, kind | want, 0), Some(want))
            }
            Create::Symlink { .. } => {
                target.push(0);
                match CString::from_vec_with_nul(target) {
                    Ok(target) => (sys::symlinkat(&target, dir, name), None),
                    Err(_) => return Reply::Continue,
                }
            }
        };
        // EEXIST, EACCES, ENOSPC...: the kernel's own call gives the target its answer.
        if made.is_err() {
            return Reply::Continue;
        }
        match self.adopt(&at, want) {
            Ok(()) => Reply::Value(0),
            Err(e) => e.into(),
        }
    }

    /// open, openat and creat with `O_CREAT` (the filter notifies no other open) in a setgid
    /// directory with a recorded group. The supervisor creates the file (`O_EXCL`: a name
    /// that exists, a symlink included, is the kernel's); without `O_EXCL` the kernel then
    /// opens the file just made (CONTINUE), with `O_EXCL` (or a mode that denies the access
    /// asked for) the target gets our descriptor
    /// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND), as its own open would have
    /// made it: the same flags, close-on-exec as it asked.
    pub(super) fn open_creating(
        &mut self,
        n: &sys::Notif,
        t: Target,
        flags: i32,
        mode: u32,
    ) -> Reply {
        // O_PATH ignores O_CREAT; O_CREAT|O_DIRECTORY is EINVAL; O_TMPFILE holds O_DIRECTORY.
        if flags & libc::O_CREAT == 0
            || flags & (libc::O_PATH | libc::O_DIRECTORY) != 0
            || !lock(&self.store).dir_groups()
        {
            return Reply::Continue;
        }
        let at = match self.inherit(n, t, false) {
            Ok(at) => at,
            Err(r) => return r,
        };
        let want = mode & PERM_BITS & !at.creds.umask;
        // The kernel's open that creates a file checks no permission on it: a mode that
        // denies the owner the access asked for (`open(O_CREAT|O_WRONLY, 0444)`) would make
        // a later open of the file just made fail, so the descriptor is handed over then too.
        let need = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => 0o400,
            libc::O_WRONLY => 0o200,
            _ => 0o600,
        };
        let hand = flags & libc::O_EXCL != 0 || want & need != need;
        let oflags = if hand {
            (flags & !(libc::O_CLOEXEC | libc::O_TRUNC)) | libc::O_EXCL
        } else {
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL
        };
        let Ok(file) = sys::openat(at.dir.as_fd(), &at.name, oflags, want) else {
            return Reply::Continue;
        };
        if let Err(e) = self.adopt(&at, Some(want)) {
            return e.into();
        }
        if !hand {
            return Reply::Continue;
        }
        let cloexec = flags & libc::O_CLOEXEC != 0;
        match sys::notif_addfd_send(self.listener.as_fd(), n.id, file.as_fd(), cloexec) {
            Ok(_) => Reply::Answered,
            Err(Errno::ENOENT) => Reply::Gone,
            // EMFILE, or a kernel before 5.14: undo, and let the kernel answer (it makes the
            // file with the disk's group where it can).
            Err(_) => {
                let _ = sys::unlinkat(at.dir.as_fd(), &at.name, 0);
                Reply::Continue
            }
        }
    }

    /// openat2(2): its flags are in `struct open_how`, read only while a directory has a
    /// recorded group. A `resolve` restriction, or a struct of another size, is the kernel's.
    pub(super) fn openat2(&mut self, n: &sys::Notif, t: Target, how: u64, size: u64) -> Reply {
        if size != OPEN_HOW_LEN as u64 || !lock(&self.store).dir_groups() {
            return Reply::Continue;
        }
        let mut b = [0u8; OPEN_HOW_LEN];
        if sys::read_remote(n.pid, how, &mut b) != Ok(OPEN_HOW_LEN) {
            return Reply::Continue;
        }
        let word =
            |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (flags, mode, resolve) = (word(0), word(1), word(2));
        // openat2 refuses unknown flags and a mode with bits beyond 07777: the kernel's.
        if resolve != 0 || flags > u64::from(u32::MAX) || mode & !u64::from(PERM_BITS) != 0 {
            return Reply::Continue;
        }
        self.open_creating(n, t, flags as i32, mode as u32)
    }
}
