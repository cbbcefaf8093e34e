//! The only place with unsafe code, libc and raw nix calls: one wrapper per call.
//!
//! Every wrapper returns [`SysError`], which names the call and its arguments
//! (`mount("proc" on "/proc", fstype "proc") => EPERM: Operation not permitted`), so the layers
//! above never have to guess what failed. Policy lives elsewhere; nothing here decides anything.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod abi;
pub mod archive;
pub mod seccomp;
pub mod shm;

pub use nix::errno::Errno;
pub use nix::mount::{MntFlags, MsFlags};
pub use nix::sched::CloneFlags;
pub use nix::sys::signal::{SigSet, Signal};
pub use nix::sys::signalfd::SignalFd;
pub use nix::sys::wait::WaitStatus;
pub use nix::unistd::Pid;

/// A failed system call: which call, on what, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{call} => {errno}")]
pub struct SysError {
    /// The call and its arguments, e.g. `unshare(CLONE_NEWUSER|CLONE_NEWNS)`.
    pub call: String,
    /// What the kernel said (in the message, so not a `source`: it would print twice).
    pub errno: Errno,
}

/// Result of a wrapped call.
pub type SysResult<T> = Result<T, SysError>;

fn err(call: impl Into<String>) -> impl FnOnce(Errno) -> SysError {
    let call = call.into();
    move |errno| SysError { call, errno }
}

/// The caller's real uid and gid.
pub fn ids() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

/// This process's pid, as seen from its own pid namespace.
pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// `unshare(2)` with the given namespace flags.
pub fn unshare(flags: CloneFlags) -> SysResult<()> {
    nix::sched::unshare(flags).map_err(err(format!("unshare({flags:?})")))
}

/// `unshare(CLONE_NEWTIME)` (Linux 5.6): the children forked afterwards are in a new time
/// namespace, whose clock offsets [`set_time_offsets`] writes (nix 0.30 has no flag for it).
pub fn unshare_time() -> SysResult<()> {
    // SAFETY: unshare(2) takes a flag word and touches no memory of ours.
    let r = unsafe { libc::unshare(libc::CLONE_NEWTIME) };
    Errno::result(r)
        .map(drop)
        .map_err(err("unshare(CLONE_NEWTIME)"))
}

/// Shifts CLOCK_MONOTONIC and CLOCK_BOOTTIME by `secs` in the time namespace our children
/// will enter (`/proc/self/timens_offsets`, time_namespaces(7)). The kernel takes it only
/// before any process is in that namespace, and refuses offsets that would make a clock
/// negative (EINVAL).
pub fn set_time_offsets(secs: i64) -> SysResult<()> {
    write_proc(
        Path::new("/proc/self/timens_offsets"),
        &format!("monotonic {secs} 0\nboottime {secs} 0\n"),
    )
}

/// The filesystem type (`statfs(2)` `f_type`, a magic number such as 0x01021994 for tmpfs)
/// of the filesystem holding `path`.
pub fn fs_type(path: &Path) -> SysResult<u32> {
    let st = nix::sys::statfs::statfs(path).map_err(err(format!("statfs({path:?})")))?;
    // The magic numbers are 32-bit; f_type is a wider signed word on some targets.
    Ok(st.filesystem_type().0 as u32)
}

/// Writes `contents` to a /proc file in one `write(2)`, as the id-map files demand.
pub fn write_proc(path: &Path, contents: &str) -> SysResult<()> {
    use std::io::Write;
    let call = || format!("write({}, {:?})", path.display(), contents.trim_end());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| SysError {
            call: call(),
            errno: io_errno(&e),
        })?;
    f.write_all(contents.as_bytes()).map_err(|e| SysError {
        call: call(),
        errno: io_errno(&e),
    })
}

/// The errno inside an `io::Error` (EIO when it has none).
pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Result of [`fork`].
pub enum Forked {
    /// In the parent: the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// `fork(2)`.
///
/// # Safety
///
/// The child of a multi-threaded process may call only async-signal-safe functions until it
/// execs or exits: the caller must fork while no other thread can hold a lock the child
/// needs, and the child must end in exec or [`exit_now`]. nsroot forks from the main thread
/// of the outer process (at most one other thread, the ownership supervisor, blocked in
/// recvmsg and holding no lock, or the build's log copier, blocked in read; glibc's fork makes
/// malloc safe in the child regardless), for `run_in_child`, the --map-auto helper and
/// doctor's probes. pid 1 starts its steps with `spawn`, not with fork.
pub unsafe fn fork() -> SysResult<Forked> {
    // SAFETY: the caller upholds the contract above.
    match unsafe { nix::unistd::fork() }.map_err(err("fork()"))? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Ends the process at once, without running destructors or atexit handlers (for forked
/// children, which must not flush the parent's buffers twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: the kernel sends `sig` when the parent thread dies.
pub fn set_parent_death_signal(sig: Signal) -> SysResult<()> {
    nix::sys::prctl::set_pdeathsig(sig).map_err(err(format!("prctl(PR_SET_PDEATHSIG, {sig})")))
}

/// `mount(2)`.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> SysResult<()> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(|errno| SysError {
        call: format!(
            "mount({:?} on {:?}, fstype {:?}, {:?}, data {:?})",
            source.unwrap_or(Path::new("none")),
            target,
            fstype.unwrap_or("none"),
            flags,
            data.unwrap_or("")
        ),
        errno,
    })
}

/// `umount2(2)`.
pub fn umount(target: &Path, flags: MntFlags) -> SysResult<()> {
    nix::mount::umount2(target, flags).map_err(err(format!("umount2({target:?}, {flags:?})")))
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> SysResult<()> {
    nix::unistd::pivot_root(new_root, put_old)
        .map_err(err(format!("pivot_root({new_root:?}, {put_old:?})")))
}

/// `chdir(2)`.
pub fn chdir(path: &Path) -> SysResult<()> {
    nix::unistd::chdir(path).map_err(err(format!("chdir({path:?})")))
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> SysResult<()> {
    nix::unistd::sethostname(name).map_err(err(format!("sethostname({name:?})")))
}

/// This UTS namespace's hostname (gethostname(2)); empty if it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Mount flags of the filesystem holding `path` that a remount in a user namespace must keep
/// (KF-RO-REMOUNT: nosuid, nodev, noexec and the atime flags are locked).
pub fn locked_mount_flags(path: &Path) -> SysResult<MsFlags> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::statvfs(path).map_err(err(format!("statvfs({path:?})")))?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    Ok(out)
}

/// Brings the loopback interface up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP) in the
/// current network namespace.
pub fn loopback_up() -> SysResult<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("socket(AF_INET, SOCK_DGRAM)"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(SysError {
            call: "ioctl(SIOCGIFFLAGS, lo)".into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: ifru_flags is the active union member after SIOCGIFFLAGS.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(SysError {
            call: "ioctl(SIOCSIFFLAGS, lo up)".into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Blocks `set` in this thread; returns the previous mask.
pub fn block_signals(set: &SigSet) -> SysResult<SigSet> {
    set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(err("sigprocmask(SIG_BLOCK)"))
}

/// Writes the single-line id maps `0 <uid> 1` and `0 <gid> 1` of the calling process, which
/// has just unshared a user namespace: setgroups denied first, as the kernel requires before
/// an unprivileged gid_map (user_namespaces(7), CVE-2014-8989). Writing `deny` where it is
/// inherited already is harmless.
///
/// Errors: the write that failed, with its path.
pub fn write_single_id_map(uid: u32, gid: u32) -> SysResult<()> {
    write_single_id_map_in(Path::new("/proc/self"), uid, gid)
}

/// [`write_single_id_map`] through `proc_self`, a path naming the calling process's directory
/// in a procfs (`/proc/self`, or a descriptor of it where /proc is bound read-only).
pub fn write_single_id_map_in(proc_self: &Path, uid: u32, gid: u32) -> SysResult<()> {
    write_proc(&proc_self.join("setgroups"), "deny")?;
    write_proc(&proc_self.join("uid_map"), &format!("0 {uid} 1\n"))?;
    write_proc(&proc_self.join("gid_map"), &format!("0 {gid} 1\n"))
}

/// Starts a thread with every signal blocked, so that none meant for this process (a
/// signalfd's, an interrupt guard's) is ever delivered to it.
///
/// Errors: the mask could not be changed, or the thread started.
pub fn spawn_quiet_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let old = block_signals(&SigSet::all()).map_err(|e| std::io::Error::from(e.errno))?;
    let handle = std::thread::Builder::new().name(name.into()).spawn(f);
    set_signal_mask(&old).map_err(|e| std::io::Error::from(e.errno))?;
    handle
}

/// Sets this thread's signal mask to `set`.
pub fn set_signal_mask(set: &SigSet) -> SysResult<()> {
    set.thread_set_mask()
        .map_err(err("sigprocmask(SIG_SETMASK)"))
}

/// A signalfd for `set` (the signals must be blocked), close-on-exec.
pub fn signalfd(set: &SigSet) -> SysResult<SignalFd> {
    use nix::sys::signalfd::SfdFlags;
    SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(err("signalfd()"))
}

/// One signal read from a signalfd: its number and whether the kernel (a terminal, for
/// instance) sent it rather than a process.
#[derive(Debug, Clone, Copy)]
pub struct SigInfo {
    /// The signal number.
    pub signo: i32,
    /// True for SI_KERNEL: sent by the kernel (e.g. the tty driver to a process group).
    pub from_kernel: bool,
}

/// Reads one pending signal from a non-blocking signalfd, if any.
pub fn read_signal(fd: &SignalFd) -> SysResult<Option<SigInfo>> {
    Ok(fd
        .read_signal()
        .map_err(err("read(signalfd)"))?
        .map(|si| SigInfo {
            signo: si.ssi_signo as i32,
            from_kernel: si.ssi_code == libc::SI_KERNEL,
        }))
}

/// `kill(2)`.
pub fn kill(pid: Pid, signo: i32) -> SysResult<()> {
    let sig = Signal::try_from(signo).map_err(err(format!("kill({pid}, {signo})")))?;
    nix::sys::signal::kill(pid, sig).map_err(err(format!("kill({pid}, {sig})")))
}

/// Whether a process `pid` exists in this pid namespace (`kill(pid, 0)`: any answer but
/// ESRCH says it does, EPERM included).
pub fn process_exists(pid: Pid) -> bool {
    !matches!(nix::sys::signal::kill(pid, None), Err(Errno::ESRCH))
}

/// `waitpid(pid, WNOHANG)`: None when no child changed state.
pub fn try_wait(pid: Option<Pid>) -> SysResult<Option<WaitStatus>> {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(st) => Ok(Some(st)),
        Err(Errno::ECHILD) => Ok(None),
        Err(e) => Err(SysError {
            call: format!("waitpid({pid:?}, WNOHANG)"),
            errno: e,
        }),
    }
}

/// Blocking `waitpid(pid)`, retrying on EINTR, until the child exits or is killed.
pub fn wait(pid: Pid) -> SysResult<WaitStatus> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(st),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(SysError {
                    call: format!("waitpid({pid})"),
                    errno: e,
                })
            }
        }
    }
}

/// The shell's convention for a wait status: the exit code, or 128+N for death by signal N.
pub fn exit_code(st: &WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, code) => Some(*code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + *sig as i32),
        _ => None,
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1: forever); returns which of the
/// fds are readable (or hung up).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> SysResult<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    loop {
        match poll(&mut pfds, timeout) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(SysError {
                    call: "poll()".into(),
                    errno: e,
                })
            }
        }
    }
    Ok(pfds
        .iter()
        .map(|p| {
            p.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        })
        .collect())
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(err("pipe2(O_CLOEXEC)"))
}

/// Marks every descriptor from `first` upwards close-on-exec
/// (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`, Linux 5.11).
pub fn cloexec_fds_from(first: u32) -> SysResult<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC the call only sets a flag on descriptors; no descriptor
    // is closed under a Rust owner.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(SysError {
            call: format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Gives an unnamed (`O_TMPFILE`) file the name `path`: `linkat` of `/proc/self/fd/N` with
/// AT_SYMLINK_FOLLOW (open(2), O_TMPFILE).
pub fn link_unnamed(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        fd_path.as_str(),
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("linkat({fd_path}, {}): {e}", path.display()),
        )
    })
}

/// An exclusive `flock(2)` held until dropped.
pub type FileLock = nix::fcntl::Flock<std::fs::File>;

/// Takes an exclusive `flock(2)` on `file` without waiting: None when another open file
/// description holds it.
pub fn try_lock(file: std::fs::File) -> SysResult<Option<FileLock>> {
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(SysError {
            call: "flock(LOCK_EX|LOCK_NB)".into(),
            errno: e,
        }),
    }
}

/// Takes an exclusive `flock(2)` on `file`, waiting for whoever holds it.
pub fn lock(file: std::fs::File) -> SysResult<FileLock> {
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| SysError {
        call: "flock(LOCK_EX)".into(),
        errno: e,
    })
}

/// True when this process may create files in `dir` (`access(2)` with W_OK|X_OK).
pub fn can_write(dir: &Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

/// The parent's pid (`getppid(2)`).
pub fn getppid() -> Pid {
    nix::unistd::getppid()
}

/// Makes `cmd`'s child set its umask to `mask` before exec.
pub fn set_umask_in_child(cmd: &mut std::process::Command, mask: u32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook calls only umask(2), which is async-signal-safe and cannot fail.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
            Ok(())
        });
    }
}

/// `umask(2)`: sets the mask.
pub fn set_umask(mask: u32) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
}

/// What [`spawn`] sets up in the child besides its signals.
pub struct SpawnSetup<'a> {
    /// Open /dev/null as its stdin.
    pub stdin_null: bool,
    /// Duplicate this descriptor onto its stdout and stderr.
    pub output: Option<BorrowedFd<'a>>,
    /// Make it the leader of a new process group (POSIX_SPAWN_SETPGROUP).
    pub own_group: bool,
    /// Make it the leader of a new session without a controlling terminal
    /// (POSIX_SPAWN_SETSID): it cannot open `/dev/tty` (ENXIO) nor reach the caller's
    /// terminal with TIOCSTI, and the terminal's signals do not reach it.
    pub new_session: bool,
}

/// Starts `prog` (a path) with `argv` (whose first element is the name the command sees) and
/// `env`, with every signal at its default action and none blocked, through `posix_spawn(3)`:
/// glibc's runs the child on its own stack in our memory (CLONE_VM|CLONE_VFORK) until exec,
/// so no page table is copied and neither process takes copy-on-write faults before the exec.
/// A file without a `#!` line (ENOEXEC) runs under /bin/sh, as `execvp(3)` and shells do.
///
/// Errors: the errno of the failed exec (or of a file action), as the child saw it.
pub fn spawn(
    prog: &CStr,
    argv: &[CString],
    env: &[CString],
    setup: &SpawnSetup<'_>,
) -> Result<Pid, Errno> {
    use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    let mut actions = PosixSpawnFileActions::init()?;
    if setup.stdin_null {
        actions.add_open(
            0,
            c"/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )?;
    }
    if let Some(fd) = setup.output {
        actions.add_dup2(fd.as_raw_fd(), 1)?;
        actions.add_dup2(fd.as_raw_fd(), 2)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    let mut flags =
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF;
    if setup.own_group {
        attr.set_pgroup(Pid::from_raw(0))?;
        flags |= PosixSpawnFlags::POSIX_SPAWN_SETPGROUP;
    }
    if setup.new_session {
        flags |= PosixSpawnFlags::from_bits_retain(libc::POSIX_SPAWN_SETSID as libc::c_int);
    }
    attr.set_flags(flags)?;
    match posix_spawn(prog, &actions, &attr, argv, env) {
        Err(Errno::ENOEXEC) => {
            let mut sh_argv = Vec::with_capacity(argv.len() + 1);
            sh_argv.push(c"/bin/sh");
            sh_argv.push(prog);
            sh_argv.extend(argv.iter().skip(1).map(CString::as_c_str));
            posix_spawn(c"/bin/sh", &actions, &attr, &sh_argv, env)
        }
        r => r,
    }
}

/// Joins a new, empty, anonymous session keyring (keyctl(2) KEYCTL_JOIN_SESSION_KEYRING with
/// no name): the caller's session keyring is out of reach of this process and its children,
/// and what they add there dies with them.
///
/// Errors: `keyctl(JOIN_SESSION_KEYRING)` with the errno (ENOSYS where a seccomp policy
/// forbids keyctl, which then binds the children too; EDQUOT at the key quota).
pub fn join_new_session_keyring() -> Result<(), SysError> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a NULL name pointer (an anonymous keyring) and integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        return Err(err("keyctl(JOIN_SESSION_KEYRING)")(Errno::last()));
    }
    Ok(())
}

/// True when the filesystem at `path` is mounted `noexec` (statvfs(2)); false when it
/// cannot be asked.
pub fn noexec(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
        .unwrap_or(false)
}

/// The calling process's effective uid (in its user namespace).
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// True when the filesystem at `path` has no free block or no free inode left (statvfs(2));
/// false when it has, or cannot be asked.
pub fn filesystem_full(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .is_ok_and(|v| v.blocks_available() == 0 || (v.files() > 0 && v.files_available() == 0))
}

/// True when `fd` is a terminal whose foreground process group is ours.
pub fn foreground_of_terminal(fd: RawFd) -> bool {
    // SAFETY: the descriptor is only borrowed for the two calls; a closed one fails cleanly.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::unistd::isatty(fd).unwrap_or(false)
        && nix::unistd::tcgetpgrp(fd).is_ok_and(|g| g == nix::unistd::getpgrp())
}

/// Makes `group` the foreground process group of the terminal on `fd`, as a process of the
/// foreground group may. Best effort: a terminal that went away needs nothing.
pub fn give_terminal_foreground(fd: RawFd, group: Pid) {
    // SAFETY: as in foreground_of_terminal.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = nix::unistd::tcsetpgrp(fd, group);
}

/// Makes our process group the terminal's foreground again (on `fd`), from the background:
/// SIGTTOU, which the kernel sends a background group that does this, is blocked meanwhile,
/// as shells do. Best effort.
pub fn take_terminal_foreground(fd: RawFd) {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let Ok(old) = block_signals(&ttou) else {
        return;
    };
    give_terminal_foreground(fd, nix::unistd::getpgrp());
    let _ = set_signal_mask(&old);
}

/// `s` as a C string; `EINVAL` when it holds a NUL byte.
pub fn cstring(s: &OsStr) -> Result<CString, Errno> {
    CString::new(s.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Reads exactly `buf.len()` bytes or up to EOF from a raw descriptor (for small fixed-size
/// messages in forked children, which must not allocate much).
pub fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(SysError {
                    call: "read()".into(),
                    errno: e,
                })
            }
        }
    }
    Ok(n)
}

/// One `read(2)`, retried on EINTR: 0 at end of file.
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            r => return r.map_err(err("read()")),
        }
    }
}

/// Writes all of `buf` to a raw descriptor.
pub fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> SysResult<()> {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::write(fd, &buf[n..]) {
            Ok(k) => n += k,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(SysError {
                    call: "write()".into(),
                    errno: e,
                })
            }
        }
    }
    Ok(())
}

/// Kernel release string (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Looks up a path's target as bytes, for messages.
pub fn display_os(s: &OsStr) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// Closes every descriptor of this process but those in `keep`: all of them, or with
/// `only_cloexec` only those marked close-on-exec (the ones this program opened itself, as
/// Rust's std does, rather than inherited from its caller).
///
/// # Safety
///
/// The caller must never use or drop an owner of a descriptor this closes (pid 1 calls it first
/// thing and leaves through `_exit`, so the owners up its stack never run their destructors).
pub unsafe fn close_fds_except(keep: &[RawFd], only_cloexec: bool) -> SysResult<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .collect();
    keep.sort_unstable();
    keep.dedup();
    if !only_cloexec {
        // close_range(2) (Linux 5.9) over each gap between the kept descriptors.
        let mut first = 0u32;
        for k in keep.iter().copied().chain(std::iter::once(u32::MAX)) {
            if k > first {
                let last = if k == u32::MAX { u32::MAX } else { k - 1 };
                // SAFETY: only descriptors are closed; the caller guarantees (see above) that
                // no live owner of them is used or dropped afterwards.
                let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
                if r < 0 {
                    return Err(SysError {
                        call: format!("close_range({first}, {last}, 0)"),
                        errno: Errno::last(),
                    });
                }
            }
            first = k.saturating_add(1);
        }
        return Ok(());
    }
    // Which descriptors are open: /proc/self/fd, read to the end before closing anything (the
    // directory's own descriptor is listed too and is gone by then: EBADF below, skipped).
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| SysError {
            call: "opendir(/proc/self/fd)".into(),
            errno: io_errno(&e),
        })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if u32::try_from(fd).is_ok_and(|f| keep.binary_search(&f).is_ok()) {
            continue;
        }
        // SAFETY: F_GETFD only reads the descriptor's flags; a closed number gives EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
            // SAFETY: as above, no owner of `fd` is used or dropped afterwards.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, dumpable)`. A process that is not dumpable has its /proc files
/// (fd, mem, environ, root...) owned by root of its memory's user namespace and refuses ptrace
/// access to anyone without CAP_SYS_PTRACE there; exec resets it.
pub fn set_dumpable(dumpable: bool) -> SysResult<()> {
    nix::sys::prctl::set_dumpable(dumpable).map_err(err(format!(
        "prctl(PR_SET_DUMPABLE, {})",
        u8::from(dumpable)
    )))
}

/// `struct mount_attr` of mount_setattr(2) (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// MOUNT_ATTR_RDONLY (linux/mount.h).
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {attr_set = MOUNT_ATTR_RDONLY})` (Linux 5.12):
/// makes the mount at `path` and every mount below it read-only, leaving their other flags
/// (the locked nosuid/nodev/atime ones included) as they are. ENOSYS on older kernels.
pub fn make_readonly_recursive(path: &Path) -> SysResult<()> {
    let call = || format!("mount_setattr({path:?}, AT_RECURSIVE, MOUNT_ATTR_RDONLY)");
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError {
        call: call(),
        errno: Errno::EINVAL,
    })?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `c` is a NUL-terminated path and `attr` a mount_attr we own, both alive for the
    // call; its size is passed so the kernel reads no more than it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(SysError {
            call: call(),
            errno: Errno::last(),
        });
    }
    Ok(())
}
