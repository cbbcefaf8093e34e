//! Every `unsafe` of the preload library: raw system calls (directly, or through the
//! trampoline page the seccomp filter lets through), the mappings made at load time, errno,
//! and the copies through the pointers a C caller passed.
//!
//! Nothing here touches a C library except `__errno_location` (glibc and musl both export
//! it; errno is the C ABI's error channel, which an interposed call must use).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::table::{Table, STORE_FD, TRAMPOLINE_ADDR, TRAMPOLINE_LEN};

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
pub const SYS_CLOSE: usize = 3;
pub const SYS_MMAP: usize = 9;
pub const SYS_MPROTECT: usize = 10;
pub const SYS_MUNMAP: usize = 11;
pub const SYS_LSEEK: usize = 8;
pub const SYS_KILL: usize = 62;
pub const SYS_FCNTL: usize = 72;
pub const SYS_FCHMODAT: usize = 268;
pub const SYS_FSTATFS: usize = 138;
pub const SYS_GETPID: usize = 39;
pub const SYS_EXIT_GROUP: usize = 231;
pub const SYS_OPENAT: usize = 257;
pub const SYS_MKNODAT: usize = 259;
pub const SYS_FCHOWNAT: usize = 260;
pub const SYS_NEWFSTATAT: usize = 262;
pub const SYS_UNLINKAT: usize = 263;
pub const SYS_STATX: usize = 332;

const PROT_READ: usize = 1;
const PROT_WRITE: usize = 2;
const PROT_EXEC: usize = 4;
const MAP_SHARED: usize = 1;
const MAP_PRIVATE: usize = 2;
const MAP_ANONYMOUS: usize = 0x20;
const MAP_FIXED_NOREPLACE: usize = 0x10_0000;
const F_GET_SEALS: usize = 1034;
const F_SEAL_SHRINK: isize = 2;
const F_SEAL_GROW: isize = 4;
const SEEK_END: usize = 2;

/// A system call made here: it goes through the seccomp filter like the program's own (the
/// fallback path, and the calls the filter never notifies).
#[inline]
pub fn raw(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: a system call takes its arguments by value; pointer arguments are the C
    // caller's (the kernel checks them and fails with EFAULT) or our own live buffers. The
    // kernel clobbers only rcx and r11, declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// 1 once the trampoline page is mapped, 2 when it cannot be.
static TRAMPOLINE: AtomicUsize = AtomicUsize::new(0);
/// The table's mapping: address and length in words (0 when there is none).
static TABLE_ADDR: AtomicUsize = AtomicUsize::new(0);
static TABLE_WORDS: AtomicUsize = AtomicUsize::new(0);

/// A system call the seccomp filter does not notify: made from the trampoline page when
/// it is mapped (the library's own real calls), else as [`raw`].
#[inline]
pub fn direct(nr: usize, a: [usize; 6]) -> isize {
    if TRAMPOLINE.load(Ordering::Acquire) != 1 {
        return raw(nr, a);
    }
    let ret: isize;
    // SAFETY: the page at TRAMPOLINE_ADDR holds `syscall; ret` and stays mapped for the
    // life of the process (this library never unmaps it); `call` pushes a return address,
    // so the block is not `nostack` (the compiler keeps no red-zone data under rsp here).
    // The arguments are as for `raw`; rcx and r11 are clobbered by the kernel.
    unsafe {
        asm!(
            "call {t}",
            t = in(reg) TRAMPOLINE_ADDR,
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}

/// The session's table, once the trampoline and the table are both mapped.
pub fn table() -> Option<Table<'static>> {
    let addr = TABLE_ADDR.load(Ordering::Acquire);
    if addr == 0 {
        return None;
    }
    let words = TABLE_WORDS.load(Ordering::Relaxed);
    // SAFETY: `addr` is a MAP_SHARED mapping of `words` * 8 bytes (page-aligned, so aligned
    // for AtomicU64) made by `init` and never unmapped; the memfd under it is sealed against
    // shrinking, so every page stays backed. All access is atomic, as the other processes'.
    let w = unsafe { core::slice::from_raw_parts(addr as *const AtomicU64, words) };
    Table::open(w)
}

/// Maps the trampoline page and the session's table; leaves everything unmapped and the
/// library inert (every call then goes through seccomp) when either fails.
pub fn init() {
    let page = raw(
        SYS_MMAP,
        [
            TRAMPOLINE_ADDR as usize,
            TRAMPOLINE_LEN as usize,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
            usize::MAX,
            0,
        ],
    );
    if page as u64 != TRAMPOLINE_ADDR {
        // EEXIST (something lives there), or a kernel before 4.17 that took the address as
        // a hint only.
        if page > 0 {
            raw(
                SYS_MUNMAP,
                [page as usize, TRAMPOLINE_LEN as usize, 0, 0, 0, 0],
            );
        }
        TRAMPOLINE.store(2, Ordering::Release);
        return;
    }
    // syscall; ret
    let code: [u8; 3] = [0x0f, 0x05, 0xc3];
    // SAFETY: the page was just mapped read-write at `page`, 4096 bytes, ours alone.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), page as *mut u8, code.len()) };
    let prot = raw(
        SYS_MPROTECT,
        [
            page as usize,
            TRAMPOLINE_LEN as usize,
            PROT_READ | PROT_EXEC,
            0,
            0,
            0,
        ],
    );
    if prot != 0 {
        raw(
            SYS_MUNMAP,
            [page as usize, TRAMPOLINE_LEN as usize, 0, 0, 0, 0],
        );
        TRAMPOLINE.store(2, Ordering::Release);
        return;
    }
    if !map_table() {
        // Inert: no page left behind either, so a mapped page means a live fast path.
        raw(
            SYS_MUNMAP,
            [page as usize, TRAMPOLINE_LEN as usize, 0, 0, 0, 0],
        );
        TRAMPOLINE.store(2, Ordering::Release);
        return;
    }
    TRAMPOLINE.store(1, Ordering::Release);
}

/// Maps the session's table; false when there is none (or it is not ours).
fn map_table() -> bool {
    // The table: a memfd sealed against shrinking and growing on STORE_FD (anything else on
    // that number is not ours: a file could shrink under the mapping and fault us).
    let fd = STORE_FD as usize;
    let seals = raw(SYS_FCNTL, [fd, F_GET_SEALS, 0, 0, 0, 0]);
    if seals < 0 || seals & (F_SEAL_SHRINK | F_SEAL_GROW) != F_SEAL_SHRINK | F_SEAL_GROW {
        return false;
    }
    let size = raw(SYS_LSEEK, [fd, 0, SEEK_END, 0, 0, 0]);
    if size <= 0 || size as usize % 8 != 0 {
        return false;
    }
    let map = raw(
        SYS_MMAP,
        [0, size as usize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0],
    );
    if map < 0 && map > -4096 {
        return false;
    }
    TABLE_WORDS.store(size as usize / 8, Ordering::Relaxed);
    TABLE_ADDR.store(map as usize, Ordering::Release);
    if table().is_none() {
        TABLE_ADDR.store(0, Ordering::Release);
        raw(SYS_MUNMAP, [map as usize, size as usize, 0, 0, 0, 0]);
        return false;
    }
    true
}

extern "C" {
    fn __errno_location() -> *mut i32;
}

/// A C return value from a system call's: -1 with errno set for -4095..-1.
pub fn ret(r: isize) -> i32 {
    if (-4095..0).contains(&r) {
        // SAFETY: __errno_location returns the calling thread's errno, valid for the
        // thread's life (glibc and musl).
        unsafe { *__errno_location() = -r as i32 };
        -1
    } else {
        r as i32
    }
}

/// Copies `src` to `dst`, a buffer the C caller passed for the call's result (a `struct
/// stat` or `struct statx`, whose size `src` has).
pub fn copy_out(dst: *mut u8, src: &[u8]) {
    // SAFETY: the libc function's contract is that `dst` points to a writable buffer of
    // its result type; a bad pointer faults here where the kernel would say EFAULT (the
    // one difference, as in fakeroot and pseudo). The buffers cannot overlap (src is ours).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
}

/// Copies the first `dst.len()` bytes of the C string `src` (the caller guarantees that
/// many: `dst` is one byte, and a C string has at least its NUL).
pub fn copy_in(src: *const u8, dst: &mut [u8; 1]) {
    // SAFETY: `src` is a non-null C string the caller passed (checked by the caller), which
    // has at least one readable byte.
    dst[0] = unsafe { src.read() };
}

/// Reads the `dev_t` that `__xmknod` takes by pointer.
pub fn read_dev(p: *const u64) -> Option<u64> {
    if p.is_null() {
        return None;
    }
    // SAFETY: __xmknod's contract: `p` points to the caller's dev_t.
    Some(unsafe { p.read_unaligned() })
}

/// Ends the process as abort(3) would (the panic handler; nothing is printed).
pub fn abort() -> ! {
    let pid = raw(SYS_GETPID, [0; 6]);
    raw(SYS_KILL, [pid as usize, 6, 0, 0, 0, 0]);
    loop {
        raw(SYS_EXIT_GROUP, [134, 0, 0, 0, 0, 0]);
    }
}

/// Runs [`init`] when the library is loaded (glibc and musl both run `.init_array`).
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn run_init() {
        init();
    }
    run_init
};
