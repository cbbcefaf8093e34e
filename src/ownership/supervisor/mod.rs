//! The seccomp supervisor: answers a session's chown, stat, mknod and xattr calls from the store,
//! and gives files created in a setgid directory its recorded group (`create`).
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

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::errno::Errno;

use super::resolve::PATH_MAX;
use super::store::Store;
use super::OwnershipError;
use crate::sys::seccomp as sys;

mod create;
mod handlers;
mod target;

use target::Ctx;

/// The xattr name through which a supervisor answers "is this process inside a session?".
/// Any path works; the value is [`PROBE_ANSWER`] and the session's key.
pub const PROBE_XATTR: &str = "trusted.nsroot.session";
/// How the probe's answer starts; the session's key (the serving nsroot's pid) follows.
const PROBE_ANSWER: &str = "nsroot:";

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
    session_key().is_some()
}

/// The key of the nsroot session the calling process runs in (what `FAKEROOTKEY` is set to
/// in it: the pid of the nsroot that serves it), asked of its supervisor; None outside any.
pub fn session_key() -> Option<String> {
    let mut buf = [0u8; 32];
    // Keep in step with PROBE_XATTR.
    let name = c"trusted.nsroot.session";
    let n = sys::getxattr(c"/", name, &mut buf, true).ok()?;
    let key = std::str::from_utf8(&buf[..n])
        .ok()?
        .strip_prefix(PROBE_ANSWER)?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())).then(|| key.to_string())
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
    let overflow_id = |file: &str| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534)
    };
    let overflow_uid = overflow_id("/proc/sys/kernel/overflowuid");
    let mut ctx = Ctx {
        store,
        euid,
        overflow_uid,
        #[cfg(target_arch = "x86_64")]
        overflow: crate::ownership::statx::OverflowIds {
            uid: overflow_uid,
            gid: overflow_id("/proc/sys/kernel/overflowgid"),
        },
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
            // Answered already (SECCOMP_ADDFD_FLAG_SEND).
            Reply::Answered => {
                ctx.stats.emulated += 1;
                continue;
            }
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
pub(super) enum Reply {
    /// Let the kernel run it (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    Continue,
    /// Done by us: return this value.
    Value(i64),
    /// Done by us: fail with this errno.
    Errno(Errno),
    /// The target is gone (or the pid was reused): answer nothing.
    Gone,
    /// Done by us, and answered with the call itself (a descriptor handed over with
    /// SECCOMP_ADDFD_FLAG_SEND): send nothing more.
    Answered,
}

impl From<Errno> for Reply {
    fn from(e: Errno) -> Reply {
        Reply::Errno(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_name_matches() {
        assert_eq!(c"trusted.nsroot.session".to_bytes(), PROBE_XATTR.as_bytes());
        // Outside any session nobody answers the probe.
        assert!(!inside_session());
    }
}
