//! The interposed entry points (glibc's and musl's names, with the 64-bit and `__xstat`-style
//! aliases) and what each does: the real call through the trampoline, then the session's
//! records from the shared table, as the supervisor answers the same call
//! (`src/ownership/supervisor/handlers.rs` in nsroot). Without a table (not in a session,
//! the page or the store not mapped, or the table overflowed) each is the plain system call,
//! which the seccomp filter sends to the supervisor.

use core::ffi::{c_char, c_int, c_uint};

use crate::layout::*;
use crate::sys::{self, direct, raw, ret};
use crate::table::{Fields, Table};

const AT_FDCWD: isize = -100;
const AT_SYMLINK_NOFOLLOW: c_int = 0x100;
const AT_EMPTY_PATH: c_int = 0x1000;
const STATX_BASIC_STATS: u32 = 0x7ff;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const O_WRONLY: usize = 1;
const O_CREAT: usize = 0o100;
const O_EXCL: usize = 0o200;
const O_NOFOLLOW: usize = 0o400_000;
const O_CLOEXEC: usize = 0o2_000_000;
const O_PATH: usize = 0o10_000_000;
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const EPERM: isize = 1;
const EINVAL: isize = 22;

#[repr(C, align(8))]
struct Statx([u8; 256]);

/// The table, when this process answers from it: mapped, and not overflowed.
fn live() -> Option<Table<'static>> {
    sys::table().filter(|t| !t.overflowed())
}

/// statx of `dirfd`/`path` with `flags` into `b` (the real call), then the record applied.
fn statx_patched(
    t: Table<'_>,
    dirfd: isize,
    path: *const c_char,
    flags: c_int,
    mask: u32,
    b: &mut Statx,
) -> isize {
    let r = direct(
        sys::SYS_STATX,
        [
            dirfd as usize,
            path as usize,
            flags as usize,
            (mask | STATX_BASIC_STATS | STATX_BTIME) as usize,
            b.0.as_mut_ptr() as usize,
            0,
        ],
    );
    if r < 0 {
        return r;
    }
    if let Some(f) = t.lookup(key_of(&b.0)) {
        apply(&mut b.0, f);
    }
    0
}

/// fstatat(2) and every stat that is one: the kernel's answer while nothing is recorded,
/// else statx, the record, and `struct stat` built as the kernel builds it.
fn fstatat_impl(dirfd: isize, path: *const c_char, out: *mut u8, flags: c_int) -> c_int {
    let args = [
        dirfd as usize,
        path as usize,
        out as usize,
        flags as usize,
        0,
        0,
    ];
    let Some(t) = live() else {
        return ret(raw(sys::SYS_NEWFSTATAT, args));
    };
    if t.is_empty() {
        return ret(direct(sys::SYS_NEWFSTATAT, args));
    }
    let mut b = Statx([0; 256]);
    let r = statx_patched(t, dirfd, path, flags, 0, &mut b);
    if r < 0 {
        return ret(r);
    }
    if out.is_null() {
        return ret(-14); // EFAULT
    }
    sys::copy_out(out, &stat_from_statx(&b.0));
    0
}

fn statx_impl(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    out: *mut u8,
) -> c_int {
    let args = [
        dirfd as usize,
        path as usize,
        flags as usize,
        mask as usize,
        out as usize,
        0,
    ];
    let Some(t) = live() else {
        return ret(raw(sys::SYS_STATX, args));
    };
    if t.is_empty() {
        return ret(direct(sys::SYS_STATX, args));
    }
    let mut b = Statx([0; 256]);
    let r = statx_patched(t, dirfd as isize, path, flags, mask, &mut b);
    if r < 0 {
        return ret(r);
    }
    if out.is_null() {
        return ret(-14);
    }
    sys::copy_out(out, &b.0);
    0
}

/// Per-process memory of which devices are overlayfs (a record made there first copies the
/// file up, as the supervisor does): 8 entries, round-robin, each the device and the device
/// xor a tag saying overlay or not, so that an entry read half-rewritten by another thread
/// matches neither tag and is a miss.
static FS_CACHE: [core::sync::atomic::AtomicU64; 16] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 16];
static FS_NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
const TAG_OVERLAY: u64 = 0x6f76_6572_6c61_7921;
const TAG_OTHER: u64 = 0x6e6f_7420_6f76_6c21;

fn cached_overlay(dev: u64) -> Option<bool> {
    use core::sync::atomic::Ordering::Relaxed;
    (0..8).find_map(|i| {
        let d = FS_CACHE[2 * i].load(Relaxed);
        let t = FS_CACHE[2 * i + 1].load(Relaxed) ^ d;
        if d != dev {
            return None;
        }
        match t {
            TAG_OVERLAY => Some(true),
            TAG_OTHER => Some(false),
            _ => None,
        }
    })
}

fn remember_overlay(dev: u64, overlay: bool) {
    use core::sync::atomic::Ordering::Relaxed;
    let i = FS_NEXT.fetch_add(1, Relaxed) % 8;
    let tag = if overlay { TAG_OVERLAY } else { TAG_OTHER };
    FS_CACHE[2 * i + 1].store(0, Relaxed);
    FS_CACHE[2 * i].store(dev, Relaxed);
    FS_CACHE[2 * i + 1].store(dev ^ tag, Relaxed);
}

/// `/proc/self/fd/N`, NUL-terminated, in `buf`.
fn fd_path(fd: usize, buf: &mut [u8; 32]) {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut n = fd;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
}

/// The key a record for `dirfd`/`path` belongs under, with the disk's owner: the file
/// stat'ed, copied up first on overlayfs (a record keyed by the lower file would be lost at
/// the copy-up a later write makes).
fn key_for_record(dirfd: isize, path: *const c_char, flags: c_int, b: &mut Statx) -> isize {
    let flags = flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH);
    let r = direct(
        sys::SYS_STATX,
        [
            dirfd as usize,
            path as usize,
            flags as usize,
            (STATX_BASIC_STATS | STATX_BTIME) as usize,
            b.0.as_mut_ptr() as usize,
            0,
        ],
    );
    if r < 0 {
        return r;
    }
    let dev = key_of(&b.0).dev;
    if cached_overlay(dev) == Some(false) {
        return 0;
    }
    let mut oflags = O_PATH | O_CLOEXEC;
    if flags & AT_SYMLINK_NOFOLLOW != 0 {
        oflags |= O_NOFOLLOW;
    }
    // An empty path with AT_EMPTY_PATH names dirfd itself; "" opened relative to it would be
    // ENOENT, so open "." only for a directory fd is wrong too: reopen the fd's own object.
    let mut self_path = [0u8; 32];
    let (at, p) = if flags & AT_EMPTY_PATH != 0 && is_empty(path) {
        if dirfd < 0 {
            return 0;
        }
        fd_path(dirfd as usize, &mut self_path);
        (AT_FDCWD, self_path.as_ptr() as usize)
    } else {
        (dirfd, path as usize)
    };
    let fd = direct(sys::SYS_OPENAT, [at as usize, p, oflags, 0, 0, 0]);
    if fd < 0 {
        return 0; // The statx above decided; nothing more to learn.
    }
    let fd = fd as usize;
    let mut sfs = [0i64; 15];
    let overlay = direct(
        sys::SYS_FSTATFS,
        [fd, sfs.as_mut_ptr() as usize, 0, 0, 0, 0],
    ) == 0
        && sfs[0] == OVERLAYFS_SUPER_MAGIC;
    remember_overlay(dev, overlay);
    if overlay {
        let mode = mode_of(&b.0);
        if mode & S_IFMT == S_IFLNK {
            direct(
                sys::SYS_FCHOWNAT,
                [
                    fd,
                    c"".as_ptr() as usize,
                    u32::MAX as usize,
                    u32::MAX as usize,
                    (AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) as usize,
                    0,
                ],
            );
        } else {
            let mut fp = [0u8; 32];
            fd_path(fd, &mut fp);
            direct(
                sys::SYS_FCHMODAT,
                [
                    AT_FDCWD as usize,
                    fp.as_ptr() as usize,
                    (mode & 0o7777) as usize,
                    0,
                    0,
                    0,
                ],
            );
        }
        let r = direct(
            sys::SYS_STATX,
            [
                fd,
                c"".as_ptr() as usize,
                AT_EMPTY_PATH as usize,
                (STATX_BASIC_STATS | STATX_BTIME) as usize,
                b.0.as_mut_ptr() as usize,
                0,
            ],
        );
        direct(sys::SYS_CLOSE, [fd, 0, 0, 0, 0, 0]);
        return r.min(0);
    }
    direct(sys::SYS_CLOSE, [fd, 0, 0, 0, 0, 0]);
    0
}

fn is_empty(path: *const c_char) -> bool {
    if path.is_null() {
        return true;
    }
    // The first byte only; the kernel reads the rest.
    let mut first = [0u8; 1];
    sys::copy_in(path.cast(), &mut first);
    first[0] == 0
}

/// A chown's id: -1 leaves it as it is.
fn id(v: u32) -> Option<u32> {
    (v != u32::MAX).then_some(v)
}

/// fchownat(2) and every chown that is one: checks the file may be chowned (the session's
/// root owns what the user owns on disk; a file of an unmapped id is EPERM), then records.
fn fchownat_impl(dirfd: isize, path: *const c_char, uid: u32, gid: u32, flags: c_int) -> c_int {
    let args = [
        dirfd as usize,
        path as usize,
        uid as usize,
        gid as usize,
        flags as usize,
        0,
    ];
    let Some(t) = live() else {
        return ret(raw(sys::SYS_FCHOWNAT, args));
    };
    let mut b = Statx([0; 256]);
    let r = key_for_record(dirfd, path, flags, &mut b);
    if r < 0 {
        return ret(r);
    }
    let (euid, overflow_uid) = t.ids();
    let disk_uid = get_u32(&b.0, SX_UID);
    if !(disk_uid == euid || (euid == 0 && disk_uid != overflow_uid)) {
        return ret(-EPERM);
    }
    let (uid, gid) = (id(uid), id(gid));
    if gid.is_some() && mode_of(&b.0) & S_IFMT == S_IFDIR {
        t.set_dir_groups(); // files made in it may take this group (setgid directories)
    }
    match t.update(key_of(&b.0), |f| Fields {
        uid: uid.or(f.uid),
        gid: gid.or(f.gid),
        ..f
    }) {
        Ok(()) => 0,
        // Full: the supervisor records it (and answers from now on).
        Err(_) => ret(raw(sys::SYS_FCHOWNAT, args)),
    }
}

/// mknodat(2): a device node becomes an empty regular file and a record (KF-NO-DEVICES),
/// other types the kernel makes.
fn mknodat_impl(dirfd: isize, path: *const c_char, mode: u32, dev: u64) -> c_int {
    let Ok(kdev) = u32::try_from(dev) else {
        return ret(-EINVAL); // glibc refuses a dev_t the kernel's 32 bits cannot hold
    };
    let args = [
        dirfd as usize,
        path as usize,
        mode as usize,
        kdev as usize,
        0,
        0,
    ];
    let Some(t) = live() else {
        return ret(raw(sys::SYS_MKNODAT, args));
    };
    let kind = mode & S_IFMT;
    if t.dir_groups() {
        // A node made in a setgid directory with a recorded group takes that group: the
        // supervisor looks at the parent (a call from the trampoline would bypass it).
        return ret(raw(sys::SYS_MKNODAT, args));
    }
    if kind != S_IFCHR && kind != S_IFBLK {
        return ret(direct(sys::SYS_MKNODAT, args));
    }
    // O_EXCL: never follows a final symlink, fails with EEXIST like mknod(2). The kernel
    // applies our umask to the bits, as it would to mknod's.
    let fd = direct(
        sys::SYS_OPENAT,
        [
            dirfd as usize,
            path as usize,
            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
            (mode & 0o7777) as usize,
            0,
            0,
        ],
    );
    if fd < 0 {
        return ret(fd);
    }
    let mut b = Statx([0; 256]);
    let r = direct(
        sys::SYS_STATX,
        [
            fd as usize,
            c"".as_ptr() as usize,
            AT_EMPTY_PATH as usize,
            (STATX_BASIC_STATS | STATX_BTIME) as usize,
            b.0.as_mut_ptr() as usize,
            0,
        ],
    );
    direct(sys::SYS_CLOSE, [fd as usize, 0, 0, 0, 0, 0]);
    if r < 0 {
        return ret(r);
    }
    // new_decode_dev (include/linux/kdev_t.h), as the supervisor decodes the 32-bit value.
    let ma = (kdev & 0xfff00) >> 8;
    let mi = (kdev & 0xff) | ((kdev >> 12) & 0xfff00);
    let perm = mode_of(&b.0) & 0o7777;
    match t.update(key_of(&b.0), |f| Fields {
        mode: Some(kind | perm),
        rdev: Some(makedev(ma, mi)),
        ..f
    }) {
        Ok(()) => 0,
        Err(_) => {
            // Full: the supervisor makes it instead (and records it into its own map).
            direct(
                sys::SYS_UNLINKAT,
                [dirfd as usize, path as usize, 0, 0, 0, 0],
            );
            ret(raw(sys::SYS_MKNODAT, args))
        }
    }
}

// The entry points. glibc before 2.33 and programs built against it call the `__xstat`
// family (version 1 on x86_64, the kernel's struct stat); later ones and musl the plain
// names; the `64` names are the same calls on x86_64.

#[no_mangle]
pub extern "C" fn stat(path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, 0)
}
#[no_mangle]
pub extern "C" fn stat64(path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, 0)
}
#[no_mangle]
pub extern "C" fn lstat(path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW)
}
#[no_mangle]
pub extern "C" fn lstat64(path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW)
}
#[no_mangle]
pub extern "C" fn fstat(fd: c_int, out: *mut u8) -> c_int {
    fstatat_impl(fd as isize, c"".as_ptr(), out, AT_EMPTY_PATH)
}
#[no_mangle]
pub extern "C" fn fstat64(fd: c_int, out: *mut u8) -> c_int {
    fstatat_impl(fd as isize, c"".as_ptr(), out, AT_EMPTY_PATH)
}
#[no_mangle]
pub extern "C" fn fstatat(dirfd: c_int, path: *const c_char, out: *mut u8, flags: c_int) -> c_int {
    fstatat_impl(dirfd as isize, path, out, flags)
}
#[no_mangle]
pub extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    out: *mut u8,
    flags: c_int,
) -> c_int {
    fstatat_impl(dirfd as isize, path, out, flags)
}
#[no_mangle]
pub extern "C" fn __xstat(_ver: c_int, path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, 0)
}
#[no_mangle]
pub extern "C" fn __xstat64(_ver: c_int, path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, 0)
}
#[no_mangle]
pub extern "C" fn __lxstat(_ver: c_int, path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW)
}
#[no_mangle]
pub extern "C" fn __lxstat64(_ver: c_int, path: *const c_char, out: *mut u8) -> c_int {
    fstatat_impl(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW)
}
#[no_mangle]
pub extern "C" fn __fxstat(_ver: c_int, fd: c_int, out: *mut u8) -> c_int {
    fstatat_impl(fd as isize, c"".as_ptr(), out, AT_EMPTY_PATH)
}
#[no_mangle]
pub extern "C" fn __fxstat64(_ver: c_int, fd: c_int, out: *mut u8) -> c_int {
    fstatat_impl(fd as isize, c"".as_ptr(), out, AT_EMPTY_PATH)
}
#[no_mangle]
pub extern "C" fn __fxstatat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    out: *mut u8,
    flags: c_int,
) -> c_int {
    fstatat_impl(dirfd as isize, path, out, flags)
}
#[no_mangle]
pub extern "C" fn __fxstatat64(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    out: *mut u8,
    flags: c_int,
) -> c_int {
    fstatat_impl(dirfd as isize, path, out, flags)
}
#[no_mangle]
pub extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    out: *mut u8,
) -> c_int {
    statx_impl(dirfd, path, flags, mask, out)
}
#[no_mangle]
pub extern "C" fn chown(path: *const c_char, uid: u32, gid: u32) -> c_int {
    fchownat_impl(AT_FDCWD, path, uid, gid, 0)
}
#[no_mangle]
pub extern "C" fn lchown(path: *const c_char, uid: u32, gid: u32) -> c_int {
    fchownat_impl(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)
}
#[no_mangle]
pub extern "C" fn fchown(fd: c_int, uid: u32, gid: u32) -> c_int {
    fchownat_impl(fd as isize, c"".as_ptr(), uid, gid, AT_EMPTY_PATH)
}
#[no_mangle]
pub extern "C" fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: u32,
    gid: u32,
    flags: c_int,
) -> c_int {
    fchownat_impl(dirfd as isize, path, uid, gid, flags)
}
#[no_mangle]
pub extern "C" fn mknod(path: *const c_char, mode: u32, dev: u64) -> c_int {
    mknodat_impl(AT_FDCWD, path, mode, dev)
}
#[no_mangle]
pub extern "C" fn mknodat(dirfd: c_int, path: *const c_char, mode: u32, dev: u64) -> c_int {
    mknodat_impl(dirfd as isize, path, mode, dev)
}
#[no_mangle]
pub extern "C" fn __xmknod(_ver: c_int, path: *const c_char, mode: u32, dev: *const u64) -> c_int {
    match sys::read_dev(dev) {
        Some(d) => mknodat_impl(AT_FDCWD, path, mode, d),
        None => ret(-EINVAL),
    }
}
#[no_mangle]
pub extern "C" fn __xmknodat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    mode: u32,
    dev: *const u64,
) -> c_int {
    match sys::read_dev(dev) {
        Some(d) => mknodat_impl(dirfd as isize, path, mode, d),
        None => ret(-EINVAL),
    }
}
