//! seccomp user notification (seccomp_unotify(2)): the filter, listener ioctls, target memory,
//! fd passing, and the file calls the supervisor makes on the target's behalf.
//!
//! The BPF program is hand-built here rather than through libseccomp: it is one short section
//! per ABI of [`super::abi`]'s tables (about 90 instructions on x86_64 with i386), libc already
//! has every constant and struct, it lives in a `static` (so installing it after
//! fork allocates nothing, which a `pre_exec` hook in a multithreaded parent needs), and nsroot
//! keeps building with no C library, pkg-config or `libseccomp-dev` on the machine.

use std::ffi::{c_void, CStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use libc::sock_filter;
use nix::errno::Errno;

use super::abi::{Abi, SUPPORTED};

/// A failed system call: its name and errno. Small and `Copy`, so a child can build one
/// between fork and exec without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{call} => {errno}")]
pub struct CallError {
    /// The call and its notable arguments, e.g. `seccomp(SET_MODE_FILTER)`.
    pub call: &'static str,
    /// What the kernel said.
    pub errno: Errno,
}

impl CallError {
    fn last(call: &'static str) -> CallError {
        CallError {
            call,
            errno: Errno::last(),
        }
    }
}

/// Syscall numbers with this bit set are the x32 ABI (arch/x86/include/uapi/asm/unistd.h).
#[cfg(target_arch = "x86_64")]
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The preload library's trampoline page (`nsroot_preload::table`): calls made from it are
/// the library's own real calls and are allowed, whatever their number.
#[cfg(target_arch = "x86_64")]
const TRAMPOLINE: u64 = nsroot_preload::table::TRAMPOLINE_ADDR;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    TRAMPOLINE.is_multiple_of(4096) && nsroot_preload::table::TRAMPOLINE_LEN == 4096,
    "the filter tests one page"
);

/// Instructions of one ABI's section: [trampoline test: load ip high, test, load ip low,
/// mask, test], load nr, [x32 test], one test per number, jump to allow.
const fn section_len(i: usize) -> usize {
    let t = SUPPORTED[i];
    let x32 = if matches!(t.abi, Abi::X86_64) { 1 } else { 0 };
    1 + x32 + t.notified.len() + t.notified_if_creating.len() + t.enosys.len() + 1
}

/// The argument positions that hold a flags word the filter tests for `O_CREAT` (open's 1,
/// openat's 2): one shared block each, after the sections (load the argument's low word,
/// test the bit: notify or allow). The low word is the whole of `int flags` on every ABI.
const CREAT_ARGS: [u32; 2] = [1, 2];

/// The trampoline test that a notified x86_64 call passes through before it is notified:
/// load ip high, test, load ip low, mask, test.
#[cfg(target_arch = "x86_64")]
const IP_TEST_LEN: usize = 5;
#[cfg(not(target_arch = "x86_64"))]
const IP_TEST_LEN: usize = 0;

/// Where the block testing argument `arg` starts, counted back from allow.
const fn creat_block(arg: u32) -> usize {
    let mut i = 0;
    while i < CREAT_ARGS.len() {
        if CREAT_ARGS[i] == arg {
            return (CREAT_ARGS.len() - i) * 2 + IP_TEST_LEN;
        }
        i += 1;
    }
    panic!("a flags argument without its block in CREAT_ARGS")
}

/// Load arch, one test per ABI, kill; the sections; the O_CREAT blocks; the trampoline
/// test; allow, notify, ENOSYS.
const FILTER_LEN: usize = {
    let mut n = 1 + SUPPORTED.len() + 1 + 2 * CREAT_ARGS.len() + IP_TEST_LEN + 3;
    let mut i = 0;
    while i < SUPPORTED.len() {
        n += section_len(i);
        i += 1;
    }
    n
};

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump from instruction `at` to `to` when true, to the next when false.
const fn jump_to(code: u32, k: u32, at: usize, to: usize) -> sock_filter {
    let off = to - (at + 1);
    assert!(off <= u8::MAX as usize, "a filter jump is too long");
    sock_filter {
        code: code as u16,
        jt: off as u8,
        jf: 0,
        k,
    }
}

/// The program, one section per ABI of [`SUPPORTED`] (`sys::abi`): an ABI not listed -> kill
/// the process (a foreign ABI would bypass every number: fail closed, seccomp(2) "Caveats");
/// x32 -> ENOSYS, as on kernels built without x32; each notified call -> USER_NOTIF; open
/// and openat -> USER_NOTIF when their flags hold `O_CREAT`, else allow; the ENOSYS calls ->
/// ENOSYS; else allow. A call made from the preload library's trampoline page (x86_64) is
/// allowed where it would be notified.
///
/// Each section reads nothing but the arch and the number before it reaches allow, so the
/// kernel's action cache (seccomp_cache_prepare, Linux 5.11) proves every other number
/// always allowed and those calls skip the filter altogether; only an intercepted number
/// goes on to its arguments or the instruction pointer.
const fn build_filter() -> [sock_filter; FILTER_LEN] {
    use libc::{BPF_ABS, BPF_JA, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};
    const ARCH_OFFSET: u32 = 4; // offsetof(struct seccomp_data, arch)
    const NR_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    const ARGS_OFFSET: u32 = 16; // offsetof(struct seccomp_data, args): u64 each
    #[cfg(target_arch = "x86_64")]
    const IP_OFFSET: u32 = 8; // offsetof(struct seccomp_data, instruction_pointer)
    let allow = FILTER_LEN - 3;
    let notify = FILTER_LEN - 2;
    let enosys = FILTER_LEN - 1;
    let ip_test = allow - IP_TEST_LEN;
    // Where a call to notify goes: on x86_64 through the trampoline test.
    let to_notify = if IP_TEST_LEN > 0 { ip_test } else { notify };
    let mut p = [stmt(0, 0); FILTER_LEN];
    p[0] = stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET);
    let kill = 1 + SUPPORTED.len();
    p[kill] = stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS);
    let mut start = kill + 1;
    let mut a = 0;
    while a < SUPPORTED.len() {
        let t = SUPPORTED[a];
        p[1 + a] = jump_to(BPF_JMP | BPF_JEQ | BPF_K, t.audit_arch, 1 + a, start);
        let mut i = start;
        p[i] = stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET);
        i += 1;
        if matches!(t.abi, Abi::X86_64) {
            #[cfg(target_arch = "x86_64")]
            {
                p[i] = jump_to(BPF_JMP | libc::BPF_JGE | BPF_K, X32_SYSCALL_BIT, i, enosys);
            }
            i += 1;
        }
        let mut j = 0;
        while j < t.notified.len() {
            // Only x86_64 code runs in the trampoline page (it lies above 4 GiB).
            let to = if matches!(t.abi, Abi::X86_64) {
                to_notify
            } else {
                notify
            };
            p[i] = jump_to(BPF_JMP | BPF_JEQ | BPF_K, t.notified[j].0, i, to);
            i += 1;
            j += 1;
        }
        j = 0;
        while j < t.notified_if_creating.len() {
            let (nr, _, arg) = t.notified_if_creating[j];
            p[i] = jump_to(BPF_JMP | BPF_JEQ | BPF_K, nr, i, allow - creat_block(arg));
            i += 1;
            j += 1;
        }
        j = 0;
        while j < t.enosys.len() {
            p[i] = jump_to(BPF_JMP | BPF_JEQ | BPF_K, t.enosys[j], i, enosys);
            i += 1;
            j += 1;
        }
        p[i] = stmt(BPF_JMP | BPF_JA, (allow - (i + 1)) as u32);
        i += 1;
        assert!(i == start + section_len(a), "section length");
        start = i;
        a += 1;
    }
    let mut b = 0;
    while b < CREAT_ARGS.len() {
        // args[k] low word (little-endian): O_CREAT set -> notify, else allow.
        let at = allow - creat_block(CREAT_ARGS[b]);
        assert!(at == start + 2 * b, "block position");
        p[at] = stmt(BPF_LD | BPF_W | BPF_ABS, ARGS_OFFSET + 8 * CREAT_ARGS[b]);
        p[at + 1] = sock_filter {
            code: (BPF_JMP | BPF_JSET | BPF_K) as u16,
            jt: (to_notify - (at + 2)) as u8,
            jf: (allow - (at + 2)) as u8,
            k: super::abi::O_CREAT,
        };
        b += 1;
    }
    assert!(start + 2 * CREAT_ARGS.len() == ip_test, "program length");
    // instruction_pointer (offset 8, a u64: low word first on little-endian) within the
    // trampoline page: allow (KF-SECCOMP-IP). The page is only a `syscall; ret` gadget that
    // any code of the process could call; what it bypasses is emulation, not isolation (the
    // kernel then runs the call as the process, as with --no-emulate).
    #[cfg(target_arch = "x86_64")]
    {
        let i = ip_test;
        p[i] = stmt(BPF_LD | BPF_W | BPF_ABS, IP_OFFSET + 4);
        p[i + 1] = sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: (notify - (i + 2)) as u8,
            k: (TRAMPOLINE >> 32) as u32,
        };
        p[i + 2] = stmt(BPF_LD | BPF_W | BPF_ABS, IP_OFFSET);
        p[i + 3] = stmt(libc::BPF_ALU | libc::BPF_AND | BPF_K, !0xfff);
        p[i + 4] = sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: (notify - (i + 5)) as u8,
            k: TRAMPOLINE as u32,
        };
    }
    p[allow] = stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW);
    p[notify] = stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF);
    p[enosys] = stmt(
        BPF_RET | BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    );
    p
}

static FILTER: [sock_filter; FILTER_LEN] = build_filter();

/// Sets no_new_privs and installs the filter on the calling thread; returns the listener.
///
/// Allocates nothing, so it is safe between fork and exec. Errors: the failing call and errno
/// (`prctl` EINVAL on a kernel without no_new_privs, `seccomp` EINVAL/EBUSY without user
/// notification support).
pub fn install_filter() -> Result<OwnedFd, CallError> {
    // seccomp(2): without CAP_SYS_ADMIN a filter needs no_new_privs first.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(CallError::last("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    let prog = libc::sock_fprog {
        len: FILTER_LEN as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    // WAIT_KILLABLE_RECV (6.0): once the supervisor has a call, only a fatal signal interrupts
    // the target; otherwise a signal would restart a mknod the supervisor already did, and the
    // restarted call would fail with EEXIST (seccomp_unotify(2), "Interaction with signals").
    let mut flags =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    loop {
        // SAFETY: prog points to a static program of FILTER_LEN instructions, alive for the
        // call; the kernel copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if fd >= 0 {
            // SAFETY: a new listener fd (opened close-on-exec by the kernel) that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = CallError::last("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)");
        if err.errno == Errno::EINVAL && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
            flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV; // kernel before 6.0
            continue;
        }
        return Err(err);
    }
}

/// Registers a `pre_exec` hook on `cmd` that installs the filter and sends the listener over
/// the unix socket `sock` (which must stay open until `cmd.spawn()` returns).
pub fn install_filter_before_exec(cmd: &mut Command, sock: RawFd) {
    let hook = move || -> io::Result<()> {
        let listener =
            install_filter().map_err(|e| io::Error::from_raw_os_error(e.errno as i32))?;
        // SAFETY: the caller keeps `sock` open until spawn returns, i.e. past this hook.
        let sock = unsafe { BorrowedFd::borrow_raw(sock) };
        send_fd(sock, &listener).map_err(|e| io::Error::from_raw_os_error(e.errno as i32))?;
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only makes system calls (prctl, seccomp,
    // sendmsg, close) on stack data: no allocation, no locks.
    unsafe { cmd.pre_exec(hook) };
}

/// Control-message buffer for one fd, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS (unix(7)), with one data byte.
/// Allocates nothing.
pub fn send_fd(sock: BorrowedFd<'_>, fd: &impl AsRawFd) -> Result<(), CallError> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: msg_control points to 64 aligned bytes, more than CMSG_SPACE(4); CMSG_FIRSTHDR
    // therefore returns a pointer inside cbuf, and CMSG_DATA one with 4 bytes of room.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: msg and everything it points to live on this stack frame.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        if Errno::last() != Errno::EINTR {
            return Err(CallError::last("sendmsg(SCM_RIGHTS)"));
        }
    }
}

/// Receives one fd sent by [`send_fd`], close-on-exec. EOF (the peer closed without sending,
/// e.g. it failed before) is `ECONNRESET`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, CallError> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    let n = loop {
        // SAFETY: msg and its buffers live on this stack frame.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || Errno::last() != Errno::EINTR {
            break n;
        }
    };
    if n < 0 {
        return Err(CallError::last("recvmsg(SCM_RIGHTS)"));
    }
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR checks the length and
    // returns null when there is no header; CMSG_DATA of an SCM_RIGHTS header of CMSG_LEN(4)
    // or more holds at least one fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || c.is_null() {
            return Err(CallError {
                call: "recvmsg(SCM_RIGHTS): no fd",
                errno: Errno::ECONNRESET,
            });
        }
        if (*c).cmsg_level != libc::SOL_SOCKET
            || (*c).cmsg_type != libc::SCM_RIGHTS
            || (*c).cmsg_len < libc::CMSG_LEN(4) as usize
        {
            return Err(CallError {
                call: "recvmsg(SCM_RIGHTS): no fd",
                errno: Errno::EPROTO,
            });
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A notification as the kernel gives it (seccomp_unotify(2)).
pub type Notif = libc::seccomp_notif;

/// An all-zero notification, ready for [`notif_recv`] (which requires zeroed input).
pub fn notif_zeroed() -> Notif {
    // SAFETY: seccomp_notif is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// What `poll` said about the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// A notification is waiting.
    Ready,
    /// No task uses the filter any more: the session is over.
    Hangup,
}

/// Waits until the listener has a notification or no targets are left; `timeout_ms` -1
/// waits for ever, 0 only looks. None when the timeout passed with neither.
pub fn listener_wait(
    listener: BorrowedFd<'_>,
    timeout_ms: i32,
) -> Result<Option<ListenerState>, CallError> {
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one pollfd on the stack.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(CallError::last("poll(seccomp listener)"));
        }
        if p.revents & libc::POLLIN != 0 {
            return Ok(Some(ListenerState::Ready));
        }
        if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Ok(Some(ListenerState::Hangup));
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

/// SECCOMP_IOCTL_NOTIF_RECV, which blocks until a call arrives. ENOENT means the target died
/// before we took its call or, from Linux 6.6 (which wakes a blocked receiver when the filter
/// loses its last task), that no task uses the filter any more: [`listener_wait`] with timeout
/// 0 tells which.
pub fn notif_recv(listener: BorrowedFd<'_>, n: &mut Notif) -> Result<(), Errno> {
    *n = notif_zeroed();
    // SAFETY: the ioctl writes one seccomp_notif into `n`, which we own.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            n as *mut Notif,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// SECCOMP_IOCTL_NOTIF_SEND: `error` is 0 or a negative errno; `flags` may be
/// SECCOMP_USER_NOTIF_FLAG_CONTINUE. ENOENT means the target died or was interrupted.
pub fn notif_send(
    listener: BorrowedFd<'_>,
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
) -> Result<(), Errno> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from our stack.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND (Linux 5.14): installs a copy of
/// our `fd` in the target as its lowest free descriptor (close-on-exec when `cloexec`) and
/// answers call `id` with that number, atomically: the target's call returns it. Errors:
/// ENOENT (the target died or was interrupted), EMFILE (its table is full), EINVAL or
/// ENOTTY before 5.14 (the call is then still waiting for an answer).
pub fn notif_addfd_send(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
) -> Result<i32, Errno> {
    let mut addfd = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd from our stack; `fd` is borrowed, so it
    // stays open for the call (the kernel takes its own reference).
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            &mut addfd as *mut libc::seccomp_notif_addfd,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID: true while the target still waits for call `id`, i.e. the pid
/// we read memory from is still that target.
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from our stack.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        ) == 0
    }
}

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (linux/seccomp.h, 6.6).
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// Asks for synchronous wake-ups (6.6): the kernel then switches straight between target and
/// supervisor on one CPU instead of waking the other side through the scheduler, which makes
/// each round trip much cheaper. EINVAL on older kernels.
pub fn notif_set_sync_wakeup(listener: BorrowedFd<'_>) -> Result<(), CallError> {
    // SAFETY: SET_FLAGS takes its flags by value as the ioctl argument.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if r < 0 {
        Err(CallError::last(
            "ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS, FD_SYNC_WAKE_UP)",
        ))
    } else {
        Ok(())
    }
}

/// Reads target memory with process_vm_readv(2); returns the bytes read (short at an unmapped
/// page). Check [`notif_id_valid`] afterwards before trusting them.
pub fn read_remote(pid: u32, addr: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` covers `buf`, which we borrow mutably; the kernel checks `remote` against
    // the other process's address space and never touches ours through it.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// The raw `struct statx` (256 bytes), kept as bytes so that fields newer than libc's struct
/// survive the copy to the target.
#[repr(C, align(8))]
pub struct StatxBuf(pub [u8; 256]);

/// statx(2) into a raw buffer. `dirfd` None is AT_FDCWD.
pub fn statx(
    dirfd: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: i32,
    mask: u32,
    out: &mut StatxBuf,
) -> Result<(), Errno> {
    let dfd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is NUL-terminated; `out` is 256 writable bytes, the size of struct statx.
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            dfd,
            path.as_ptr(),
            flags,
            mask,
            out.0.as_mut_ptr(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// getxattr(2) (`follow`) or lgetxattr(2) into `buf`; an empty buf asks for the size.
pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8], follow: bool) -> Result<usize, Errno> {
    let (p, n, b, len) = (
        path.as_ptr(),
        name.as_ptr(),
        buf.as_mut_ptr().cast::<c_void>(),
        buf.len(),
    );
    // SAFETY: path and name are NUL-terminated; buf is `len` writable bytes.
    let r = unsafe {
        if follow {
            libc::getxattr(p, n, b, len)
        } else {
            libc::lgetxattr(p, n, b, len)
        }
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// setxattr(2) of `value` with `flags` (XATTR_CREATE, XATTR_REPLACE); `path` is followed (a
/// `/proc/self/fd/N` magic link reaches the object itself).
pub fn setxattr(path: &CStr, name: &CStr, value: &[u8], flags: i32) -> Result<(), Errno> {
    // SAFETY: path and name are NUL-terminated; value is `len` readable bytes.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast::<c_void>(),
            value.len(),
            flags,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// listxattr(2) (`follow`) or llistxattr(2) into `buf`; an empty buf asks for the size.
pub fn listxattr(path: &CStr, buf: &mut [u8], follow: bool) -> Result<usize, Errno> {
    let (p, b, len) = (
        path.as_ptr(),
        buf.as_mut_ptr().cast::<libc::c_char>(),
        buf.len(),
    );
    // SAFETY: path is NUL-terminated; buf is `len` writable bytes.
    let r = unsafe {
        if follow {
            libc::listxattr(p, b, len)
        } else {
            libc::llistxattr(p, b, len)
        }
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// openat(2) with `flags` (O_CLOEXEC added) and `mode`, as a `File`.
pub fn openat(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
) -> Result<std::fs::File, Errno> {
    // SAFETY: `path` is NUL-terminated; the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::openat(
            dirfd.as_raw_fd(),
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// A call that returns 0 or -1 with errno.
fn done(r: libc::c_int) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// mkdirat(2) of `name` in `dir`. The kernel applies our umask: callers set the bits
/// they mean afterwards ([`fchmodat`]).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated.
    done(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

/// mknodat(2) of `name` in `dir` (a FIFO, socket or regular file: `dev` 0).
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> Result<(), Errno> {
    let (mode, dev) = (mode as libc::mode_t, dev as libc::dev_t);
    // SAFETY: `name` is NUL-terminated.
    done(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) })
}

/// symlinkat(2): `name` in `dir`, pointing to `target`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated.
    done(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// fchmodat(2) of `name` in `dir` to `mode` (which a symlink does not have: not for those).
pub fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated.
    done(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
}

/// fchownat(2) of `name` in `dir` with AT_SYMLINK_NOFOLLOW; None leaves that id.
pub fn lchownat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Errno> {
    let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
    let nofollow = libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: `name` is NUL-terminated; -1 leaves an id unchanged.
    done(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, nofollow) })
}

/// unlinkat(2) of `name` in `dir` (`AT_REMOVEDIR` in `flags` for a directory).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated.
    done(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// openat2(2) with `oflags` (O_CLOEXEC added) and the RESOLVE_* bits `resolve`.
/// ENOSYS before Linux 5.6.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    oflags: i32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(oflags | libc::O_CLOEXEC))
        .resolve(ResolveFlag::from_bits_retain(resolve));
    nix::fcntl::openat2(dirfd, path, how)
}

/// The target of the symbolic link `fd` (an O_PATH|O_NOFOLLOW descriptor of it) into `buf`,
/// readlinkat(2) with an empty path; returns its length (at most `buf.len()`).
pub fn readlink_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the path is a NUL-terminated literal; `buf` is `len` writable bytes.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// The `f_type` of the filesystem `fd` is on (fstatfs(2)).
pub fn fs_magic(fd: BorrowedFd<'_>) -> Result<i64, Errno> {
    nix::sys::statfs::fstatfs(fd).map(|s| s.filesystem_type().0)
}

/// `PROC_SUPER_MAGIC` (linux/magic.h).
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// `OVERLAYFS_SUPER_MAGIC` (linux/magic.h).
pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Makes overlayfs copy the file `fd` (an O_PATH descriptor) up into the upper layer without
/// changing it: chmod to its own mode (a symlink, which has no mode to set, gets a chown that
/// changes nothing). overlayfs copies up on every setattr.
pub fn touch_metadata(fd: BorrowedFd<'_>, mode: u32, is_symlink: bool) -> Result<(), Errno> {
    let r = if is_symlink {
        // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH names `fd` itself; -1 ids
        // change nothing (a symlink has no setuid bits to lose).
        unsafe {
            libc::fchownat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                u32::MAX,
                u32::MAX,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        }
    } else {
        let mut path = [0u8; 32];
        let mut w = &mut path[..];
        let _ = io::Write::write_fmt(&mut w, format_args!("/proc/self/fd/{}\0", fd.as_raw_fd()));
        // SAFETY: `path` holds a NUL-terminated string (zero-filled past it); chmod follows
        // the magic link to `fd`'s file.
        unsafe { libc::chmod(path.as_ptr().cast(), mode & 0o7777) }
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A new close-on-exec descriptor of what `fd` refers to (F_DUPFD_CLOEXEC).
pub fn dup_fd(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    fd.try_clone_to_owned()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on (arch, nr) as the kernel would: the opcodes build_filter emits.
    fn run(arch: u32, nr: u32) -> u32 {
        run_at(arch, nr, 0x5555_0000_1234)
    }

    /// [`run`] for a call made at instruction address `ip`.
    fn run_at(arch: u32, nr: u32, ip: u64) -> u32 {
        run_with(arch, nr, ip, [0; 6])
    }

    /// [`run_at`] with the call's arguments.
    fn run_with(arch: u32, nr: u32, ip: u64, args: [u64; 6]) -> u32 {
        let load = |k: u32| match k {
            0 => nr,
            4 => arch,
            8 => ip as u32,
            12 => (ip >> 32) as u32,
            k @ 16..=63 if k % 4 == 0 => {
                let a = args[(k as usize - 16) / 8];
                if k % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            k => panic!("load of offset {k}"),
        };
        interpret(|k| Some(load(k))).expect("every load answered")
    }

    /// The program run with `load` answering its loads (by offset in seccomp_data); None as
    /// soon as `load` cannot answer one.
    fn interpret(load: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let mut pc = 0;
        let mut acc = 0u32;
        loop {
            let ins = FILTER[pc];
            let code = u32::from(ins.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => acc = load(ins.k)?,
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= ins.k,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                    pc += usize::from(if acc >= ins.k { ins.jt } else { ins.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += usize::from(if acc & ins.k != 0 { ins.jt } else { ins.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += ins.k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return Some(ins.k),
                c => panic!("opcode {c:#x} at {}", pc - 1),
            }
        }
    }

    #[test]
    fn every_abi_table_reaches_its_answer() {
        let errno = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        for t in SUPPORTED {
            for &(nr, _) in t.notified {
                assert_eq!(run(t.audit_arch, nr), libc::SECCOMP_RET_USER_NOTIF, "{nr}");
            }
            for &nr in t.enosys {
                assert_eq!(run(t.audit_arch, nr), errno, "{nr}");
            }
            // open/openat: notified with O_CREAT (whatever else is set, the high word
            // included), allowed without it: O_RDONLY, O_TMPFILE, O_DIRECTORY.
            for &(nr, _, arg) in t.notified_if_creating {
                let with = |flags: u64| {
                    let mut args = [0u64; 6];
                    args[arg as usize] = flags;
                    run_with(t.audit_arch, nr, 0x5555_0000_1234, args)
                };
                let creat = libc::O_CREAT as u64;
                for flags in [
                    creat,
                    creat | libc::O_EXCL as u64 | 1,
                    creat | 0xffff_0000_0000,
                ] {
                    assert_eq!(with(flags), libc::SECCOMP_RET_USER_NOTIF, "{nr} {flags:#o}");
                }
                for flags in [0, libc::O_TMPFILE as u64 | 2, !creat] {
                    assert_eq!(with(flags), libc::SECCOMP_RET_ALLOW, "{nr} {flags:#o}");
                }
                // Another argument holding the bit changes nothing.
                let mut args = [0u64; 6];
                args[(arg as usize + 1) % 6] = creat;
                assert_eq!(
                    run_with(t.audit_arch, nr, 0x5555_0000_1234, args),
                    libc::SECCOMP_RET_ALLOW
                );
            }
            for nr in 0..600 {
                if !t.notified.iter().any(|&(n, _)| n == nr) && !t.enosys.contains(&nr) {
                    assert_eq!(run(t.audit_arch, nr), libc::SECCOMP_RET_ALLOW, "{nr}");
                }
            }
        }
        // aarch32 on arm64, or anything else: killed.
        assert_eq!(run(0x4000_0028, 1), libc::SECCOMP_RET_KILL_PROCESS);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                run(super::super::abi::AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 4),
                errno
            );
            // i386's 4 is write: allowed; x86_64's 4 is stat: notified.
            assert_eq!(
                run(super::super::abi::AUDIT_ARCH_I386, 4),
                libc::SECCOMP_RET_ALLOW
            );
            assert_eq!(
                run(super::super::abi::AUDIT_ARCH_X86_64, 4),
                libc::SECCOMP_RET_USER_NOTIF
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn calls_from_the_trampoline_page_are_allowed() {
        use super::super::abi::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
        let stat = 4;
        for ip in [TRAMPOLINE, TRAMPOLINE + 2, TRAMPOLINE + 4095] {
            assert_eq!(
                run_at(AUDIT_ARCH_X86_64, stat, ip),
                libc::SECCOMP_RET_ALLOW,
                "{ip:#x}"
            );
        }
        for ip in [
            TRAMPOLINE - 1,
            TRAMPOLINE + 4096,
            TRAMPOLINE ^ (1 << 40),
            TRAMPOLINE as u32 as u64,
        ] {
            assert_eq!(
                run_at(AUDIT_ARCH_X86_64, stat, ip),
                libc::SECCOMP_RET_USER_NOTIF,
                "{ip:#x}"
            );
        }
        // A creating open from the page is the library's own (it makes none but mknod's
        // device files, which it leaves to the supervisor while a directory has a group).
        let mut args = [0u64; 6];
        args[2] = libc::O_CREAT as u64;
        assert_eq!(
            run_with(AUDIT_ARCH_X86_64, 257, TRAMPOLINE, args),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run_with(AUDIT_ARCH_X86_64, 257, TRAMPOLINE + 4096, args),
            libc::SECCOMP_RET_USER_NOTIF
        );
        // i386 calls never pass (the library is x86_64 code): i386's 106 is stat.
        assert_eq!(
            run_at(AUDIT_ARCH_I386, 106, TRAMPOLINE),
            libc::SECCOMP_RET_USER_NOTIF
        );
    }

    /// seccomp_is_const_allow (kernel/seccomp.c): the program for one number, knowing only
    /// the arch and the number; None where it would need anything else.
    fn const_action(arch: u32, nr: u32) -> Option<u32> {
        interpret(|k| match k {
            0 => Some(nr),
            4 => Some(arch),
            _ => None,
        })
    }

    /// Every number the filter does not intercept reaches allow on the number alone, so the
    /// kernel's action cache lets those calls skip the filter.
    #[test]
    fn every_call_not_intercepted_is_provably_allowed() {
        for t in SUPPORTED {
            for nr in 0..600 {
                let intercepted = t.notified.iter().any(|&(n, _)| n == nr)
                    || t.notified_if_creating.iter().any(|&(n, _, _)| n == nr)
                    || t.enosys.contains(&nr);
                let action = const_action(t.audit_arch, nr);
                if intercepted {
                    assert_ne!(action, Some(libc::SECCOMP_RET_ALLOW), "{nr}");
                } else {
                    assert_eq!(action, Some(libc::SECCOMP_RET_ALLOW), "{nr}");
                }
            }
        }
    }

    #[test]
    fn filter_jumps_stay_in_range() {
        for (i, ins) in FILTER.iter().enumerate() {
            if u32::from(ins.code) == libc::BPF_JMP | libc::BPF_JA {
                assert!(
                    i + 1 + (ins.k as usize) < FILTER_LEN,
                    "jump {i} leaves the program"
                );
            } else if u32::from(ins.code) & 0x07 == libc::BPF_JMP {
                assert!(
                    i + 1 + usize::from(ins.jt.max(ins.jf)) < FILTER_LEN,
                    "jump {i} leaves the program"
                );
            } else if u32::from(ins.code) & 0x07 == libc::BPF_RET {
                assert!(
                    i >= FILTER_LEN - 3 || i == 1 + SUPPORTED.len(),
                    "return at {i}"
                );
            }
        }
        assert_eq!(
            FILTER[FILTER_LEN - 1].k,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(FILTER[FILTER_LEN - 2].k, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(FILTER[FILTER_LEN - 3].k, libc::SECCOMP_RET_ALLOW);
    }
}
