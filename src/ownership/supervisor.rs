//! The seccomp supervisor: answers a session's chown, stat, mknod and xattr calls from the store.
//!
//! It runs on a thread of a process that is not under the filter it serves (it would wait on
//! itself, seccomp_unotify(2)). For each notification it reads the target's path from its
//! memory, resolves it the way the target would (`/proc/<pid>/root`, `/proc/<pid>/cwd`,
//! `/proc/<pid>/fd/<n>`), checks `SECCOMP_IOCTL_NOTIF_ID_VALID` before acting on what it read,
//! then either lets the call run natively (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`) or emulates it.
//!
//! Nesting: a process under a filter with a listener cannot install another one (seccomp(2)
//! fails with EBUSY: the kernel allows one listener per filter chain). A session started
//! inside a session therefore installs nothing and runs under the outer supervisor, which
//! serves its calls, records its chowns and shows it the outer records; [`inside_session`]
//! detects that case by asking the outer supervisor for [`PROBE_XATTR`]. Nothing can wait in
//! a cycle: there is one supervisor, outside every filter.

use std::ffi::{CStr, OsStr};
use std::io::Read;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use nix::errno::Errno;

use super::resolve::{self, Resolution, Start};
use super::store::{effective_mode, Btime, FileId, Store, PERM_BITS, S_IFMT};
use super::OwnershipError;
use crate::sys::seccomp as sys;

/// The xattr name through which a supervisor answers "is this process inside a session?".
/// Any path works; the value is `nsroot`.
pub const PROBE_XATTR: &str = "trusted.nsroot.session";

/// PATH_MAX (limits.h), NUL included.
const PATH_MAX: usize = 4096;
/// XATTR_NAME_MAX and XATTR_SIZE_MAX (linux/limits.h).
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
/// XATTR_LIST_MAX (linux/limits.h): the longest name list listxattr(2) returns.
const XATTR_LIST_MAX: usize = 65536;
const XATTR_CREATE: u64 = 1;
const XATTR_REPLACE: u64 = 2;

/// Counters returned when the supervisor stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisorStats {
    /// Notifications received.
    pub notifications: u64,
    /// Calls answered by emulation (not let through with CONTINUE).
    pub emulated: u64,
}

/// The supervisor of one seccomp listener.
pub struct Supervisor;

impl Supervisor {
    /// Serves `listener` on a new thread until no process uses the filter any more, recording
    /// into and answering from `store`. The thread returns its counters, or
    /// [`OwnershipError::Supervisor`] if the listener itself fails.
    ///
    /// Errors: [`OwnershipError::Thread`] when the thread cannot be started.
    pub fn spawn(
        listener: OwnedFd,
        store: Arc<Mutex<Store>>,
    ) -> Result<JoinHandle<Result<SupervisorStats, OwnershipError>>, OwnershipError> {
        let proc = open_proc()?;
        Supervisor::spawn_with_proc(listener, store, proc)
    }

    /// [`Supervisor::spawn`] with a directory fd of a procfs of this process's pid namespace,
    /// opened with [`open_proc`] before the sandbox mounts a fresh /proc where this process
    /// would see it (the notifications' pids are in this process's pid namespace).
    ///
    /// Errors: [`OwnershipError::Thread`] when the thread cannot be started.
    pub fn spawn_with_proc(
        listener: OwnedFd,
        store: Arc<Mutex<Store>>,
        proc: OwnedFd,
    ) -> Result<JoinHandle<Result<SupervisorStats, OwnershipError>>, OwnershipError> {
        std::thread::Builder::new()
            .name("nsroot-supervisor".into())
            .spawn(move || serve(listener, proc, store))
            .map_err(OwnershipError::Thread)
    }
}

impl Supervisor {
    /// Serves `listener` on the calling thread until no process uses the filter any more (for
    /// callers that must start their thread before unshare(CLONE_NEWPID), after which a process
    /// can no longer create threads).
    ///
    /// Errors: [`OwnershipError::Supervisor`] if the listener fails.
    pub fn serve(
        listener: OwnedFd,
        proc: OwnedFd,
        store: Arc<Mutex<Store>>,
    ) -> Result<SupervisorStats, OwnershipError> {
        serve(listener, proc, store)
    }
}

/// Opens /proc as a directory fd for [`Supervisor::spawn_with_proc`].
///
/// Errors: [`OwnershipError::Proc`].
pub fn open_proc() -> Result<OwnedFd, OwnershipError> {
    std::fs::File::open("/proc")
        .map(OwnedFd::from)
        .map_err(OwnershipError::Proc)
}

/// True when the calling process runs under an nsroot supervisor.
pub fn inside_session() -> bool {
    let mut buf = [0u8; 16];
    // Keep in step with PROBE_XATTR.
    let name = c"trusted.nsroot.session";
    matches!(sys::getxattr(c"/", name, &mut buf, true), Ok(n) if &buf[..n] == b"nsroot")
}

fn serve(
    listener: OwnedFd,
    proc: OwnedFd,
    store: Arc<Mutex<Store>>,
) -> Result<SupervisorStats, OwnershipError> {
    // From 6.6 the kernel switches straight between target and supervisor (SYNC_WAKE_UP), and
    // a receiver blocked in NOTIF_RECV is woken when the last task leaves the filter: we then
    // wait in the ioctl alone, one system call per notification fewer than poll + recv. Older
    // kernels refuse the flag and never wake a blocked receiver: poll first there.
    let poll_first = sys::notif_set_sync_wakeup(listener.as_fd()).is_err();
    let euid = sys::euid();
    let mut ctx = Ctx {
        store,
        euid,
        overflow_uid: std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534),
        path: Vec::with_capacity(PATH_MAX + 1),
        name: Vec::with_capacity(XATTR_NAME_MAX + 1),
        stats: SupervisorStats::default(),
        listener,
        proc,
    };
    let mut n = sys::notif_zeroed();
    loop {
        if poll_first {
            match sys::listener_wait(ctx.listener.as_fd(), -1)
                .map_err(OwnershipError::Supervisor)?
            {
                Some(sys::ListenerState::Hangup) => return Ok(ctx.stats),
                Some(sys::ListenerState::Ready) | None => {}
            }
        }
        match sys::notif_recv(ctx.listener.as_fd(), &mut n) {
            Ok(()) => {}
            // The target died, or was killed, before we took its call; or (blocking, 6.6+) no
            // task is left under the filter, which poll reports as a hangup.
            Err(Errno::ENOENT) => {
                let state = sys::listener_wait(ctx.listener.as_fd(), 0)
                    .map_err(OwnershipError::Supervisor)?;
                if state == Some(sys::ListenerState::Hangup) {
                    return Ok(ctx.stats);
                }
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(OwnershipError::Supervisor(sys::CallError {
                    call: "ioctl(SECCOMP_IOCTL_NOTIF_RECV)",
                    errno,
                }))
            }
        }
        ctx.stats.notifications += 1;
        let reply = ctx.handle(&n);
        let (val, error, flags) = match reply {
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Reply::Value(v) => (v, 0, 0),
            Reply::Errno(e) => (0, -(e as i32), 0),
            // What we read may belong to a recycled pid: act on nothing, answer nobody.
            Reply::Gone => continue,
        };
        if flags == 0 {
            ctx.stats.emulated += 1;
        }
        match sys::notif_send(ctx.listener.as_fd(), n.id, val, error, flags) {
            // The target died or (without WAIT_KILLABLE_RECV) was interrupted by a signal.
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(errno) => {
                return Err(OwnershipError::Supervisor(sys::CallError {
                    call: "ioctl(SECCOMP_IOCTL_NOTIF_SEND)",
                    errno,
                }))
            }
        }
    }
}

/// How to answer one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Let the kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    Continue,
    /// Done by us: return this value.
    Value(i64),
    /// Done by us: fail with this errno.
    Errno(Errno),
    /// The target is gone (or the pid was reused): answer nothing.
    Gone,
}

impl From<Errno> for Reply {
    fn from(e: Errno) -> Reply {
        Reply::Errno(e)
    }
}

/// Where a call's file is: a path relative to a dirfd, or an fd.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `dirfd` (AT_FDCWD or an fd of the target), `addr` of the path in the target's memory
    /// (0 for a NULL path).
    At { dirfd: i32, addr: u64 },
    /// An fd of the target.
    Fd(i32),
}

/// Which struct a stat-family call wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatKind {
    Stat,
    Statx,
}

/// The fields of a record the stat path needs; Copy, so the hot path does not clone a Record.
#[derive(Debug, Clone, Copy)]
struct Patch {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    rdev: Option<u64>,
}

struct Ctx {
    listener: OwnedFd,
    /// The supervisor's own /proc (its pid namespace, which the notifications' pids are in),
    /// opened before the sandbox may mount another procfs over /proc. Paths are relative to it.
    proc: OwnedFd,
    store: Arc<Mutex<Store>>,
    euid: u32,
    overflow_uid: u32,
    /// The target's path, without NUL (reused: no allocation per call).
    path: Vec<u8>,
    /// An xattr name, without NUL (reused).
    name: Vec<u8>,
    stats: SupervisorStats,
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic elsewhere while holding the lock leaves the map consistent (no multi-step edits).
    store.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    fn handle(&mut self, n: &sys::Notif) -> Reply {
        let a = n.data.args;
        let nr = n.data.nr as i64;
        let at = |d: u64, p: u64| Target::At {
            dirfd: d as i32,
            addr: p,
        };
        let cwd = |p: u64| Target::At {
            dirfd: libc::AT_FDCWD,
            addr: p,
        };
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        match nr {
            libc::SYS_stat => self.stat(n, cwd(a[0]), 0, a[1], StatKind::Stat, 0),
            libc::SYS_lstat => self.stat(n, cwd(a[0]), nofollow, a[1], StatKind::Stat, 0),
            libc::SYS_fstat => self.stat(n, Target::Fd(a[0] as i32), 0, a[1], StatKind::Stat, 0),
            libc::SYS_newfstatat => {
                self.stat(n, at(a[0], a[1]), a[3] as i32, a[2], StatKind::Stat, 0)
            }
            libc::SYS_statx => self.stat(
                n,
                at(a[0], a[1]),
                a[2] as i32,
                a[4],
                StatKind::Statx,
                a[3] as u32,
            ),
            libc::SYS_chown => self.chown(n, cwd(a[0]), a[1], a[2], 0),
            libc::SYS_lchown => self.chown(n, cwd(a[0]), a[1], a[2], nofollow),
            libc::SYS_fchown => self.chown(n, Target::Fd(a[0] as i32), a[1], a[2], 0),
            libc::SYS_fchownat => self.chown(n, at(a[0], a[1]), a[2], a[3], a[4] as i32),
            libc::SYS_mknod => self.mknod(n, cwd(a[0]), a[1] as u32, a[2] as u32),
            libc::SYS_mknodat => self.mknod(n, at(a[0], a[1]), a[2] as u32, a[3] as u32),
            libc::SYS_setxattr => self.setxattr(n, cwd(a[0]), 0),
            libc::SYS_lsetxattr => self.setxattr(n, cwd(a[0]), nofollow),
            libc::SYS_fsetxattr => self.setxattr(n, Target::Fd(a[0] as i32), 0),
            libc::SYS_getxattr => self.getxattr(n, cwd(a[0]), 0),
            libc::SYS_lgetxattr => self.getxattr(n, cwd(a[0]), nofollow),
            libc::SYS_fgetxattr => self.getxattr(n, Target::Fd(a[0] as i32), 0),
            libc::SYS_listxattr => self.listxattr(n, cwd(a[0]), 0),
            libc::SYS_llistxattr => self.listxattr(n, cwd(a[0]), nofollow),
            libc::SYS_flistxattr => self.listxattr(n, Target::Fd(a[0] as i32), 0),
            libc::SYS_removexattr => self.removexattr(n, cwd(a[0]), 0),
            libc::SYS_lremovexattr => self.removexattr(n, cwd(a[0]), nofollow),
            libc::SYS_fremovexattr => self.removexattr(n, Target::Fd(a[0] as i32), 0),
            _ => Reply::Continue,
        }
    }

    /// Reads a NUL-terminated string of at most `max` bytes (NUL excluded) at `addr` in the
    /// target into `buf`, a page at a time so that a string ending just before an unmapped
    /// page is still read. `too_long` is the errno for a longer string.
    fn read_str(
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
    fn locate(&mut self, pid: u32, t: Target, flags: i32) -> Result<OwnedFd, Reply> {
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

    fn valid(&self, n: &sys::Notif) -> bool {
        sys::notif_id_valid(self.listener.as_fd(), n.id)
    }

    /// Writes `bytes` at `addr` in the target. The fd is opened before the validity check, so
    /// it cannot belong to a process that took over a recycled pid (seccomp_unotify(2)).
    fn write_target(&self, n: &sys::Notif, addr: u64, bytes: &[u8]) -> Result<(), Reply> {
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

    fn stat(
        &mut self,
        n: &sys::Notif,
        t: Target,
        flags: i32,
        out: u64,
        kind: StatKind,
        mask: u32,
    ) -> Reply {
        if lock(&self.store).is_empty() {
            return Reply::Continue;
        }
        // Bad pointers, bad fds, too long paths, and our own statx failing (ENOENT,
        // EACCES...): the kernel gives the target the same error.
        let mut buf = match self.stat_target(n.pid, t, flags, mask) {
            Ok((_, buf)) => buf,
            Err(Reply::Gone) => return Reply::Gone,
            Err(_) => return Reply::Continue,
        };
        let (id, btime) = key_of_statx(&buf.0);
        let patch = lock(&self.store).get(id, btime).map(|r| Patch {
            uid: r.uid,
            gid: r.gid,
            mode: r.mode,
            rdev: r.rdev,
        });
        let Some(patch) = patch else {
            return Reply::Continue;
        };
        apply_patch(&mut buf.0, patch);
        let res = match kind {
            StatKind::Statx => self.write_target(n, out, &buf.0),
            StatKind::Stat => self.write_target(n, out, &stat_from_statx(&buf.0)),
        };
        match res {
            Ok(()) => Reply::Value(0),
            Err(r) => r,
        }
    }

    /// Checks that the file exists and may be chowned here, then records the ids.
    fn chown(&mut self, n: &sys::Notif, t: Target, uid: u64, gid: u64, flags: i32) -> Reply {
        let buf = match self.stat_for_record(n.pid, t, flags) {
            Ok((_, buf)) => buf,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        // The session's processes are its root (as under fakeroot): they may chown what the
        // session's user owns on disk. A file owned by an id outside the user namespace (shown
        // as the overflow uid, KERNEL-NOTES 3) is EPERM, as chown(2) in the namespace says.
        let disk_uid = get_u32(&buf.0, SX_UID);
        let allowed = disk_uid == self.euid || (self.euid == 0 && disk_uid != self.overflow_uid);
        if !allowed {
            return Errno::EPERM.into();
        }
        // chown(2): -1 leaves that id unchanged; the ABI passes uid_t, a 32-bit value.
        let id_of = |v: u64| (v as u32 != u32::MAX).then_some(v as u32);
        let (id, btime) = key_of_statx(&buf.0);
        lock(&self.store).set_owner(id, btime, id_of(uid), id_of(gid));
        Reply::Value(0)
    }

    /// A device node becomes an empty regular file plus a record (KERNEL-NOTES 5); other
    /// types the kernel makes itself.
    fn mknod(&mut self, n: &sys::Notif, t: Target, mode: u32, dev: u32) -> Reply {
        let kind = mode & S_IFMT;
        if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
            return Reply::Continue;
        }
        let (dir, name) = match self.locate_parent(n.pid, t) {
            Ok(found) => found,
            Err(r) => return r,
        };
        let Some(creds) = TargetCreds::read(self.proc.as_fd(), n.pid) else {
            return Reply::Gone;
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        let perm = mode & PERM_BITS & !creds.umask;
        let mut name = name;
        name.push(0);
        let Ok(cname) = CStr::from_bytes_with_nul(&name) else {
            return Errno::EINVAL.into();
        };
        // O_EXCL: never follows a final symlink, fails with EEXIST like mknod(2).
        let file = match sys::openat(
            dir.as_fd(),
            cname,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        ) {
            Ok(f) => f,
            Err(e) => return e.into(),
        };
        // Our umask is not the target's: set the bits it asked for.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(perm));
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).into(),
        };
        if self.euid == 0 && creds.fsuid != 0 {
            // Running as real root for an unprivileged target: the file must be the target's,
            // who may delete it. The group stays as a setgid directory gave it.
            let gid = (meta.gid() == 0).then_some(creds.fsgid);
            let _ = std::os::unix::fs::fchown(&file, Some(creds.fsuid), gid);
        }
        // new_decode_dev (include/linux/kdev_t.h): the ABI passes a 32-bit encoded dev.
        let major = (dev & 0xfff00) >> 8;
        let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        lock(&self.store).set_device(
            id,
            Btime::of(&meta),
            kind | perm,
            libc::makedev(major, minor),
        );
        Reply::Value(0)
    }

    /// Reads the xattr name argument (args[1]) into `self.name`.
    fn read_name(&mut self, n: &sys::Notif) -> Result<(), Errno> {
        Self::read_str(
            n.pid,
            n.data.args[1],
            &mut self.name,
            XATTR_NAME_MAX,
            Errno::ERANGE,
        )
    }

    /// security.* and trusted.* are refused to an unprivileged or namespaced caller (xattr(7));
    /// those are recorded, the rest run natively.
    fn recorded_namespace(name: &[u8]) -> bool {
        name.starts_with(b"security.") || name.starts_with(b"trusted.")
    }

    fn setxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        if let Err(e) = self.read_name(n) {
            return e.into();
        }
        if !Self::recorded_namespace(&self.name) {
            return Reply::Continue;
        }
        let size = a[3] as usize;
        if size > XATTR_SIZE_MAX {
            return Errno::E2BIG.into();
        }
        let mut value = vec![0u8; size];
        if size > 0 && sys::read_remote(n.pid, a[2], &mut value) != Ok(size) {
            return Errno::EFAULT.into();
        }
        let buf = match self.stat_for_record(n.pid, t, flags) {
            Ok((_, buf)) => buf,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        let (id, btime) = key_of_statx(&buf.0);
        let mut store = lock(&self.store);
        let exists = store.xattr(id, btime, &self.name).is_some();
        if a[4] & XATTR_CREATE != 0 && exists {
            return Errno::EEXIST.into();
        }
        if a[4] & XATTR_REPLACE != 0 && !exists {
            return Errno::ENODATA.into();
        }
        store.set_xattr(id, btime, OsStr::from_bytes(&self.name), &value);
        Reply::Value(0)
    }

    fn getxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        if self.read_name(n).is_err() {
            return Reply::Continue;
        }
        let (out, size) = (a[2], a[3] as usize);
        if self.name == PROBE_XATTR.as_bytes() {
            if !self.valid(n) {
                return Reply::Gone;
            }
            return self.answer_xattr(n, out, size, b"nsroot");
        }
        // Fast path: nothing recorded, or a name we never record.
        if !Self::recorded_namespace(&self.name) || !lock(&self.store).has_xattrs() {
            return Reply::Continue;
        }
        let (id, btime, _) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let value = lock(&self.store)
            .xattr(id, btime, &self.name)
            .map(<[u8]>::to_vec);
        let Some(value) = value else {
            return Reply::Continue;
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        self.answer_xattr(n, out, size, &value)
    }

    /// The directory that would hold the file a creating call (mknod) names, and the name.
    fn locate_parent(&mut self, pid: u32, t: Target) -> Result<(OwnedFd, Vec<u8>), Reply> {
        let Target::At { dirfd, addr } = t else {
            return Err(Reply::Continue);
        };
        Self::read_str(pid, addr, &mut self.path, PATH_MAX - 1, Errno::ENAMETOOLONG)?;
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

    /// Locates the file `t` names ([`Ctx::locate`]) and statx(2)s it with `mask` (and the
    /// call's sync flags): its descriptor and the result.
    fn stat_target(
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
    fn stat_for_record(
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
    fn recorded_key(
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

    /// listxattr(2): the names on disk plus the recorded ones (which the kernel refused to
    /// store), so that `cp -a`, `tar --xattrs` and `getfattr -d` carry them.
    fn listxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        let (out, size) = (a[1], a[2] as usize);
        if !lock(&self.store).has_xattrs() {
            return Reply::Continue;
        }
        let (id, btime, fd) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let recorded: Vec<Vec<u8>> = match lock(&self.store).get(id, btime) {
            Some(r) if !r.xattrs.is_empty() => r
                .xattrs
                .iter()
                .map(|(name, _)| name.as_bytes().to_vec())
                .collect(),
            _ => return Reply::Continue,
        };
        let path = fd_path(&fd);
        let mut disk = vec![0u8; XATTR_LIST_MAX];
        let len = match sys::listxattr(&path, &mut disk, true) {
            Ok(len) => len,
            // A filesystem without xattrs has only the recorded ones.
            Err(Errno::ENOTSUP) => 0,
            Err(_) => return Reply::Continue,
        };
        disk.truncate(len);
        let mut list = Vec::with_capacity(len + 64);
        for name in disk.split(|&b| b == 0).filter(|s| !s.is_empty()) {
            if !recorded.iter().any(|r| r == name) {
                list.extend_from_slice(name);
                list.push(0);
            }
        }
        for name in &recorded {
            list.extend_from_slice(name);
            list.push(0);
        }
        if list.len() > XATTR_LIST_MAX {
            return Errno::E2BIG.into();
        }
        if !self.valid(n) {
            return Reply::Gone;
        }
        self.answer_xattr(n, out, size, &list)
    }

    /// removexattr(2) of a recorded name forgets it. A security.* or trusted.* name that is
    /// neither recorded nor on disk is ENODATA, as for root (the kernel would say EPERM to
    /// trusted.* in a user namespace); other cases the kernel handles.
    fn removexattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        if self.read_name(n).is_err() || !Self::recorded_namespace(&self.name) {
            return Reply::Continue;
        }
        let (id, btime, fd) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        if lock(&self.store).remove_xattr(id, btime, &self.name) {
            return Reply::Value(0);
        }
        let path = fd_path(&fd);
        let mut name = self.name.clone();
        name.push(0);
        let Ok(name) = CStr::from_bytes_with_nul(&name) else {
            return Reply::Continue;
        };
        match sys::getxattr(&path, name, &mut [], true) {
            Err(Errno::ENODATA) => Errno::ENODATA.into(),
            _ => Reply::Continue,
        }
    }

    /// getxattr(2)'s answer: the size when asked with size 0, ERANGE when it does not fit.
    fn answer_xattr(&self, n: &sys::Notif, out: u64, size: usize, value: &[u8]) -> Reply {
        if size == 0 {
            return Reply::Value(value.len() as i64);
        }
        if value.len() > size {
            return Errno::ERANGE.into();
        }
        match self.write_target(n, out, value) {
            Ok(()) => Reply::Value(value.len() as i64),
            Err(r) => r,
        }
    }
}

/// `/proc/self/fd/N` for our descriptor `fd`, for the calls that take no dirfd (listxattr,
/// getxattr): the magic link reaches the object itself, a symlink included (the kernel does
/// not follow the object a magic link jumps to).
fn fd_path(fd: &OwnedFd) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// The fields of /proc/<pid>/status mknod needs (proc_pid_status(5)).
struct TargetCreds {
    umask: u32,
    fsuid: u32,
    fsgid: u32,
}

impl TargetCreds {
    fn read(proc: BorrowedFd<'_>, pid: u32) -> Option<TargetCreds> {
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

fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or_default())
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

// Offsets in struct statx (include/uapi/linux/stat.h).
const SX_MASK: usize = 0;
const SX_BLKSIZE: usize = 4;
const SX_NLINK: usize = 16;
const SX_UID: usize = 20;
const SX_GID: usize = 24;
const SX_MODE: usize = 28;
const SX_INO: usize = 32;
const SX_SIZE: usize = 40;
const SX_BLOCKS: usize = 48;
const SX_ATIME: usize = 64;
const SX_BTIME: usize = 80;
const SX_CTIME: usize = 96;
const SX_MTIME: usize = 112;
const SX_RDEV_MAJOR: usize = 128;
const SX_RDEV_MINOR: usize = 132;
const SX_DEV_MAJOR: usize = 136;
const SX_DEV_MINOR: usize = 140;

/// The store key of a statx result.
fn key_of_statx(b: &[u8; 256]) -> (FileId, Option<Btime>) {
    let dev = libc::makedev(get_u32(b, SX_DEV_MAJOR), get_u32(b, SX_DEV_MINOR));
    let id = FileId {
        dev,
        ino: get_u64(b, SX_INO),
    };
    let btime = (get_u32(b, SX_MASK) & libc::STATX_BTIME != 0).then(|| Btime {
        sec: get_u64(b, SX_BTIME) as i64,
        nsec: get_u32(b, SX_BTIME + 8),
    });
    (id, btime)
}

/// Puts a record's ids, file type and device numbers into a statx result.
fn apply_patch(b: &mut [u8; 256], p: Patch) {
    if let Some(uid) = p.uid {
        put_u32(b, SX_UID, uid);
    }
    if let Some(gid) = p.gid {
        put_u32(b, SX_GID, gid);
    }
    if p.mode.is_some() {
        let disk = u16::from_ne_bytes([b[SX_MODE], b[SX_MODE + 1]]) as u32;
        let rec = super::Record {
            mode: p.mode,
            ..Default::default()
        };
        let m = effective_mode(&rec, disk) as u16;
        b[SX_MODE..SX_MODE + 2].copy_from_slice(&m.to_ne_bytes());
    }
    if let Some(rdev) = p.rdev {
        put_u32(b, SX_RDEV_MAJOR, libc::major(rdev));
        put_u32(b, SX_RDEV_MINOR, libc::minor(rdev));
    }
}

/// new_encode_dev (include/linux/kdev_t.h): how stat(2) encodes st_dev and st_rdev.
fn new_encode_dev(major: u32, minor: u32) -> u64 {
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u64
}

/// The x86_64 `struct stat` (arch/x86/include/uapi/asm/stat.h) that stat, lstat, fstat and
/// newfstatat return, built from a statx result as the kernel's cp_new_stat does.
fn stat_from_statx(b: &[u8; 256]) -> [u8; 144] {
    let mut s = [0u8; 144];
    put_u64(
        &mut s,
        0,
        new_encode_dev(get_u32(b, SX_DEV_MAJOR), get_u32(b, SX_DEV_MINOR)),
    );
    put_u64(&mut s, 8, get_u64(b, SX_INO));
    put_u64(&mut s, 16, get_u32(b, SX_NLINK) as u64);
    put_u32(
        &mut s,
        24,
        u16::from_ne_bytes([b[SX_MODE], b[SX_MODE + 1]]) as u32,
    );
    put_u32(&mut s, 28, get_u32(b, SX_UID));
    put_u32(&mut s, 32, get_u32(b, SX_GID));
    put_u64(
        &mut s,
        40,
        new_encode_dev(get_u32(b, SX_RDEV_MAJOR), get_u32(b, SX_RDEV_MINOR)),
    );
    put_u64(&mut s, 48, get_u64(b, SX_SIZE));
    put_u64(&mut s, 56, get_u32(b, SX_BLKSIZE) as u64);
    put_u64(&mut s, 64, get_u64(b, SX_BLOCKS));
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u64(&mut s, 72 + 16 * i, get_u64(b, t));
        put_u64(&mut s, 80 + 16 * i, get_u32(b, t + 8) as u64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_conversion_matches_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        let mut path = f.as_os_str().as_bytes().to_vec();
        path.push(0);
        let c = CStr::from_bytes_with_nul(&path).unwrap();
        let mut sx = sys::StatxBuf([0; 256]);
        sys::statx(
            None,
            c,
            0,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut sx,
        )
        .unwrap();
        let ours = stat_from_statx(&sx.0);
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(get_u64(&ours, 0), m.dev());
        assert_eq!(get_u64(&ours, 8), m.ino());
        assert_eq!(get_u32(&ours, 24), m.mode());
        assert_eq!(get_u64(&ours, 48), 5);
        assert_eq!(get_u64(&ours, 88) as i64, m.mtime());
        assert_eq!(get_u64(&ours, 96) as i64, m.mtime_nsec());
        let (id, bt) = key_of_statx(&sx.0);
        assert_eq!((id, bt), super::super::store::key_of(&f).unwrap());
    }

    #[test]
    fn probe_name_matches() {
        assert_eq!(c"trusted.nsroot.session".to_bytes(), PROBE_XATTR.as_bytes());
        // Outside any session nobody answers the probe.
        assert!(!inside_session());
    }

    #[test]
    fn patch_keeps_permission_bits_from_disk() {
        let mut b = [0u8; 256];
        b[SX_MODE..SX_MODE + 2].copy_from_slice(&((libc::S_IFREG | 0o4750) as u16).to_ne_bytes());
        let p = Patch {
            uid: Some(33),
            gid: None,
            mode: Some(libc::S_IFCHR | 0o666),
            rdev: Some(libc::makedev(1, 3)),
        };
        apply_patch(&mut b, p);
        assert_eq!(get_u32(&b, SX_UID), 33);
        assert_eq!(
            u16::from_ne_bytes([b[SX_MODE], b[SX_MODE + 1]]) as u32,
            libc::S_IFCHR | 0o4750
        );
        assert_eq!(
            (get_u32(&b, SX_RDEV_MAJOR), get_u32(&b, SX_RDEV_MINOR)),
            (1, 3)
        );
        assert_eq!(new_encode_dev(1, 3), libc::makedev(1, 3));
        assert_eq!(new_encode_dev(259, 70000), libc::makedev(259, 70000));
    }
}
