//! The system call numbers of each ABI a process under the filter may use, and what each call
//! the supervisor serves is: one table per ABI, read both by the seccomp filter
//! ([`super::seccomp`]) and by the supervisor's dispatch, so the two cannot disagree.
//!
//! The numbers are written out rather than taken from `libc::SYS_*`, which knows only the
//! ABI being compiled for; each table names the kernel file it was checked against, and a unit
//! test compares the native table with libc's constants. Calls at 403 and above (io_uring,
//! the xattrat calls) have one number on every architecture (scripts/syscall.tbl). What the
//! i386 ABI looks like to the filter and the supervisor: KF-COMPAT-ABI.

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "nsroot's seccomp filter knows the system call tables of x86_64 (with i386) and aarch64 only"
);

/// An ABI the filter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// x86_64's 64-bit ABI (x32 calls, which carry `X32_SYSCALL_BIT`, get ENOSYS).
    X86_64,
    /// 32-bit x86 programs on an x86_64 kernel (IA32 emulation).
    I386,
    /// arm64's 64-bit ABI (its 32-bit compat ABI is killed, as any other).
    Aarch64,
}

/// The struct a stat-family call fills in the target's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatLayout {
    /// `struct statx` (include/uapi/linux/stat.h), the same on every ABI.
    Statx,
    /// x86_64's `struct stat` (arch/x86/include/uapi/asm/stat.h, 144 bytes).
    X86_64,
    /// The 64-bit `struct stat` of include/uapi/asm-generic/stat.h (128 bytes), aarch64's.
    Generic64,
    /// i386's `struct stat` (`compat_stat`, 64 bytes, 16-bit ids) of stat, lstat, fstat.
    I386Stat,
    /// i386's packed `struct stat64` (96 bytes) of stat64, lstat64, fstat64, fstatat64.
    I386Stat64,
    /// `struct __old_kernel_stat` (32 bytes, 16-bit inode numbers) of oldstat, oldlstat,
    /// oldfstat, which the x86_64 kernel still serves to i386 programs.
    I386Old,
}

/// How wide the ids of a chown-family call are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdWidth {
    /// `old_uid_t`: i386's chown, lchown, fchown (chown16); -1 is 0xffff.
    Bits16,
    /// `uid_t`.
    Bits32,
}

/// What a notified call is, whatever its number. The argument positions are those of the
/// x86_64 call of the same name (every ABI here passes them in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// stat(path, buf): follows a final symlink.
    Stat(StatLayout),
    /// lstat(path, buf).
    Lstat(StatLayout),
    /// fstat(fd, buf).
    Fstat(StatLayout),
    /// newfstatat/fstatat64(dirfd, path, buf, flags).
    Fstatat(StatLayout),
    /// statx(dirfd, path, flags, mask, buf).
    Statx,
    /// chown(path, uid, gid).
    Chown(IdWidth),
    /// lchown(path, uid, gid).
    Lchown(IdWidth),
    /// fchown(fd, uid, gid).
    Fchown(IdWidth),
    /// fchownat(dirfd, path, uid, gid, flags).
    Fchownat,
    /// mknod(path, mode, dev).
    Mknod,
    /// mknodat(dirfd, path, mode, dev).
    Mknodat,
    /// setxattr(path, name, value, size, flags).
    Setxattr,
    /// lsetxattr(path, name, value, size, flags).
    Lsetxattr,
    /// fsetxattr(fd, name, value, size, flags).
    Fsetxattr,
    /// getxattr(path, name, value, size).
    Getxattr,
    /// lgetxattr(path, name, value, size).
    Lgetxattr,
    /// fgetxattr(fd, name, value, size).
    Fgetxattr,
    /// listxattr(path, list, size).
    Listxattr,
    /// llistxattr(path, list, size).
    Llistxattr,
    /// flistxattr(fd, list, size).
    Flistxattr,
    /// removexattr(path, name).
    Removexattr,
    /// lremovexattr(path, name).
    Lremovexattr,
    /// fremovexattr(fd, name).
    Fremovexattr,
    /// open(path, flags, mode), notified only with O_CREAT in flags.
    Open,
    /// openat(dirfd, path, flags, mode), notified only with O_CREAT in flags.
    Openat,
    /// creat(path, mode): open with O_CREAT|O_WRONLY|O_TRUNC.
    Creat,
    /// openat2(dirfd, path, how, size): its flags are in memory, so always notified.
    Openat2,
    /// mkdir(path, mode).
    Mkdir,
    /// mkdirat(dirfd, path, mode).
    Mkdirat,
    /// symlink(target, path).
    Symlink,
    /// symlinkat(target, dirfd, path).
    Symlinkat,
}

/// One ABI's numbers.
#[derive(Debug)]
pub struct AbiTable {
    /// Which ABI.
    pub abi: Abi,
    /// Its `AUDIT_ARCH_*` (linux/audit.h), what `seccomp_data.arch` holds.
    pub audit_arch: u32,
    /// Width of its pointers, sizes and longs: the supervisor masks the arguments to it (the
    /// kernel hands a 32-bit ABI's arguments over in 64-bit slots).
    pub word_bits: u32,
    /// The calls sent to the supervisor, the stat family first as the hottest.
    pub notified: &'static [(u32, Call)],
    /// The calls sent to the supervisor only when their flags argument (the index given)
    /// has `O_CREAT`: open and openat, which create only then (setgid directories,
    /// ARCHITECTURE.md "Where nsroot follows fakeroot and where the kernel").
    pub notified_if_creating: &'static [(u32, Call, u32)],
    /// Calls answered with ENOSYS: the xattrat calls (programs fall back to the calls we
    /// emulate) and io_uring (its requests run in kernel threads no filter sees, so an
    /// `IORING_OP_STATX` would bypass the emulation; programs fall back to plain calls).
    pub enosys: &'static [u32],
}

/// `AUDIT_ARCH_X86_64` (EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` (EM_386 | __AUDIT_ARCH_LE).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64` (EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

/// setxattrat(2), getxattrat(2), listxattrat(2), removexattrat(2) (Linux 6.13), then
/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on every ABI.
const ENOSYS_CALLS: [u32; 7] = [463, 464, 465, 466, 425, 426, 427];

/// openat2(2) (Linux 5.6): one number on every architecture, as the calls above.
const OPENAT2: u32 = 437;

/// `O_CREAT`, the same on x86_64, i386 and asm-generic (aarch64): the bit the filter tests
/// in open's and openat's flags. `O_TMPFILE` (`__O_TMPFILE | O_DIRECTORY`) does not hold it:
/// an unnamed file is not notified (it takes the disk's group, as a file made elsewhere and
/// moved in keeps its own when `linkat` names it).
pub const O_CREAT: u32 = 0o100;

/// x86_64, checked against arch/x86/entry/syscalls/syscall_64.tbl (and libc, by a test).
#[cfg(target_arch = "x86_64")]
pub const X86_64: AbiTable = AbiTable {
    abi: Abi::X86_64,
    audit_arch: AUDIT_ARCH_X86_64,
    word_bits: 64,
    notified: &[
        (262, Call::Fstatat(StatLayout::X86_64)), // newfstatat
        (332, Call::Statx),
        (5, Call::Fstat(StatLayout::X86_64)),
        (6, Call::Lstat(StatLayout::X86_64)),
        (4, Call::Stat(StatLayout::X86_64)),
        (191, Call::Getxattr),
        (192, Call::Lgetxattr),
        (193, Call::Fgetxattr),
        (92, Call::Chown(IdWidth::Bits32)),
        (93, Call::Fchown(IdWidth::Bits32)),
        (94, Call::Lchown(IdWidth::Bits32)),
        (260, Call::Fchownat),
        (133, Call::Mknod),
        (259, Call::Mknodat),
        (188, Call::Setxattr),
        (189, Call::Lsetxattr),
        (190, Call::Fsetxattr),
        (194, Call::Listxattr),
        (195, Call::Llistxattr),
        (196, Call::Flistxattr),
        (197, Call::Removexattr),
        (198, Call::Lremovexattr),
        (199, Call::Fremovexattr),
        (83, Call::Mkdir),
        (258, Call::Mkdirat),
        (85, Call::Creat),
        (88, Call::Symlink),
        (266, Call::Symlinkat),
        (OPENAT2, Call::Openat2),
    ],
    notified_if_creating: &[(257, Call::Openat, 2), (2, Call::Open, 1)],
    enosys: &ENOSYS_CALLS,
};

/// i386 on an x86_64 kernel, checked against arch/x86/entry/syscalls/syscall_32.tbl and
/// asm/unistd_32.h. chown/lchown/fchown are the 16-bit-id calls; the `32` ones take uid_t.
#[cfg(target_arch = "x86_64")]
pub const I386: AbiTable = AbiTable {
    abi: Abi::I386,
    audit_arch: AUDIT_ARCH_I386,
    word_bits: 32,
    notified: &[
        (300, Call::Fstatat(StatLayout::I386Stat64)), // fstatat64
        (383, Call::Statx),
        (197, Call::Fstat(StatLayout::I386Stat64)), // fstat64
        (196, Call::Lstat(StatLayout::I386Stat64)), // lstat64
        (195, Call::Stat(StatLayout::I386Stat64)),  // stat64
        (106, Call::Stat(StatLayout::I386Stat)),
        (107, Call::Lstat(StatLayout::I386Stat)),
        (108, Call::Fstat(StatLayout::I386Stat)),
        (18, Call::Stat(StatLayout::I386Old)),  // oldstat
        (84, Call::Lstat(StatLayout::I386Old)), // oldlstat
        (28, Call::Fstat(StatLayout::I386Old)), // oldfstat
        (229, Call::Getxattr),
        (230, Call::Lgetxattr),
        (231, Call::Fgetxattr),
        (212, Call::Chown(IdWidth::Bits32)),  // chown32
        (207, Call::Fchown(IdWidth::Bits32)), // fchown32
        (198, Call::Lchown(IdWidth::Bits32)), // lchown32
        (182, Call::Chown(IdWidth::Bits16)),
        (95, Call::Fchown(IdWidth::Bits16)),
        (16, Call::Lchown(IdWidth::Bits16)),
        (298, Call::Fchownat),
        (14, Call::Mknod),
        (297, Call::Mknodat),
        (226, Call::Setxattr),
        (227, Call::Lsetxattr),
        (228, Call::Fsetxattr),
        (232, Call::Listxattr),
        (233, Call::Llistxattr),
        (234, Call::Flistxattr),
        (235, Call::Removexattr),
        (236, Call::Lremovexattr),
        (237, Call::Fremovexattr),
        (39, Call::Mkdir),
        (296, Call::Mkdirat),
        (8, Call::Creat),
        (83, Call::Symlink),
        (304, Call::Symlinkat),
        (OPENAT2, Call::Openat2),
    ],
    notified_if_creating: &[(295, Call::Openat, 2), (5, Call::Open, 1)],
    enosys: &ENOSYS_CALLS,
};

/// aarch64, checked against include/uapi/asm-generic/unistd.h: no stat, lstat, chown, lchown
/// or mknod, only the *at forms (and fstat).
#[cfg(target_arch = "aarch64")]
pub const AARCH64: AbiTable = AbiTable {
    abi: Abi::Aarch64,
    audit_arch: AUDIT_ARCH_AARCH64,
    word_bits: 64,
    notified: &[
        (79, Call::Fstatat(StatLayout::Generic64)), // newfstatat
        (291, Call::Statx),
        (80, Call::Fstat(StatLayout::Generic64)),
        (8, Call::Getxattr),
        (9, Call::Lgetxattr),
        (10, Call::Fgetxattr),
        (55, Call::Fchown(IdWidth::Bits32)),
        (54, Call::Fchownat),
        (33, Call::Mknodat),
        (5, Call::Setxattr),
        (6, Call::Lsetxattr),
        (7, Call::Fsetxattr),
        (11, Call::Listxattr),
        (12, Call::Llistxattr),
        (13, Call::Flistxattr),
        (14, Call::Removexattr),
        (15, Call::Lremovexattr),
        (16, Call::Fremovexattr),
        (34, Call::Mkdirat),
        (36, Call::Symlinkat),
        (OPENAT2, Call::Openat2),
    ],
    notified_if_creating: &[(56, Call::Openat, 2)],
    enosys: &ENOSYS_CALLS,
};

/// The ABIs the filter accepts on this build, the native one first (the filter tests them in
/// this order); any other is killed.
#[cfg(target_arch = "x86_64")]
pub const SUPPORTED: [&AbiTable; 2] = [&X86_64, &I386];
/// See above.
#[cfg(target_arch = "aarch64")]
pub const SUPPORTED: [&AbiTable; 1] = [&AARCH64];

/// Numbers below this are looked up in an array; every notified number is.
const INDEX_LEN: usize = 512;

const fn index(t: &AbiTable) -> [Option<Call>; INDEX_LEN] {
    let mut out = [None; INDEX_LEN];
    let n = t.notified.len();
    let mut i = 0;
    while i < n + t.notified_if_creating.len() {
        let (nr, call) = if i < n {
            t.notified[i]
        } else {
            let (nr, call, _) = t.notified_if_creating[i - n];
            (nr, call)
        };
        assert!(
            (nr as usize) < INDEX_LEN,
            "a notified number is out of the index"
        );
        assert!(out[nr as usize].is_none(), "a number is listed twice");
        out[nr as usize] = Some(call);
        i += 1;
    }
    out
}

#[cfg(target_arch = "x86_64")]
static INDEX: [[Option<Call>; INDEX_LEN]; 2] = [index(&X86_64), index(&I386)];
#[cfg(target_arch = "aarch64")]
static INDEX: [[Option<Call>; INDEX_LEN]; 1] = [index(&AARCH64)];

/// The ABI and the call of a notification (`seccomp_data.arch` and `.nr`); None for a number
/// the filter does not notify.
pub fn lookup(arch: u32, nr: i32) -> Option<(&'static AbiTable, Call)> {
    let k = SUPPORTED.iter().position(|t| t.audit_arch == arch)?;
    let call = (*INDEX[k].get(usize::try_from(nr).ok()?)?)?;
    Some((SUPPORTED[k], call))
}

/// The ABIs this build serves, for `nsroot doctor` and the docs.
pub fn supported_names() -> Vec<&'static str> {
    SUPPORTED
        .iter()
        .map(|t| match t.abi {
            Abi::X86_64 => "x86_64",
            Abi::I386 => "i386",
            Abi::Aarch64 => "aarch64",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers_match_libc() {
        let libc_nr = |c: Call| -> i64 {
            match c {
                Call::Fstatat(_) => libc::SYS_newfstatat,
                Call::Statx => libc::SYS_statx,
                Call::Fstat(_) => libc::SYS_fstat,
                Call::Lstat(_) => libc::SYS_lstat,
                Call::Stat(_) => libc::SYS_stat,
                Call::Getxattr => libc::SYS_getxattr,
                Call::Lgetxattr => libc::SYS_lgetxattr,
                Call::Fgetxattr => libc::SYS_fgetxattr,
                Call::Chown(_) => libc::SYS_chown,
                Call::Fchown(_) => libc::SYS_fchown,
                Call::Lchown(_) => libc::SYS_lchown,
                Call::Fchownat => libc::SYS_fchownat,
                Call::Mknod => libc::SYS_mknod,
                Call::Mknodat => libc::SYS_mknodat,
                Call::Setxattr => libc::SYS_setxattr,
                Call::Lsetxattr => libc::SYS_lsetxattr,
                Call::Fsetxattr => libc::SYS_fsetxattr,
                Call::Listxattr => libc::SYS_listxattr,
                Call::Llistxattr => libc::SYS_llistxattr,
                Call::Flistxattr => libc::SYS_flistxattr,
                Call::Removexattr => libc::SYS_removexattr,
                Call::Lremovexattr => libc::SYS_lremovexattr,
                Call::Fremovexattr => libc::SYS_fremovexattr,
                Call::Open => libc::SYS_open,
                Call::Openat => libc::SYS_openat,
                Call::Creat => libc::SYS_creat,
                Call::Openat2 => libc::SYS_openat2,
                Call::Mkdir => libc::SYS_mkdir,
                Call::Mkdirat => libc::SYS_mkdirat,
                Call::Symlink => libc::SYS_symlink,
                Call::Symlinkat => libc::SYS_symlinkat,
            }
        };
        for &(nr, call) in X86_64.notified {
            assert_eq!(i64::from(nr), libc_nr(call), "{call:?}");
        }
        for &(nr, call, _) in X86_64.notified_if_creating {
            assert_eq!(i64::from(nr), libc_nr(call), "{call:?}");
        }
        assert_eq!(O_CREAT as i32, libc::O_CREAT);
        assert_eq!(libc::O_TMPFILE & libc::O_CREAT, 0);
        assert_eq!(
            &ENOSYS_CALLS[4..],
            &[
                libc::SYS_io_uring_setup as u32,
                libc::SYS_io_uring_enter as u32,
                libc::SYS_io_uring_register as u32
            ]
        );
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_has_only_the_at_forms() {
        assert_eq!(
            lookup(AUDIT_ARCH_AARCH64, 79).map(|(t, c)| (t.abi, c)),
            Some((Abi::Aarch64, Call::Fstatat(StatLayout::Generic64)))
        );
        assert!(AARCH64
            .notified
            .iter()
            .all(|(_, c)| !matches!(c, Call::Stat(_) | Call::Lstat(_) | Call::Chown(_))));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lookup_tells_the_abis_apart() {
        // 4 is stat on x86_64 and write on i386.
        assert_eq!(
            lookup(AUDIT_ARCH_X86_64, 4).map(|(t, c)| (t.abi, c)),
            Some((Abi::X86_64, Call::Stat(StatLayout::X86_64)))
        );
        assert!(lookup(AUDIT_ARCH_I386, 4).is_none());
        assert_eq!(
            lookup(AUDIT_ARCH_I386, 182).map(|(t, c)| (t.abi, c)),
            Some((Abi::I386, Call::Chown(IdWidth::Bits16)))
        );
        assert!(lookup(AUDIT_ARCH_AARCH64, 79).is_none());
        assert!(lookup(AUDIT_ARCH_X86_64, -1).is_none());
        assert!(lookup(AUDIT_ARCH_X86_64, 100_000).is_none());
    }
}
