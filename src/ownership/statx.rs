//! The byte layout of `struct statx` and of each ABI's `struct stat` (x86_64, asm-generic's
//! 64-bit one for aarch64, i386's `stat`, `stat64` and `__old_kernel_stat`), which the
//! supervisor reads and writes as raw bytes so that fields newer than libc's structs survive
//! the copy to the target: store keys from a statx result, records patched into it, and the
//! `stat` a stat-family call wants built from it as the kernel's `cp_*_stat` functions do.

#[cfg(target_arch = "x86_64")]
use nix::errno::Errno;

use super::store::{effective_mode, Btime, FileId};

/// The fields of a record the stat path needs; Copy, so the hot path does not clone a Record.
#[derive(Debug, Clone, Copy)]
pub struct Patch {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub rdev: Option<u64>,
}

// Offsets in struct statx, the byte helpers, new_encode_dev and the x86_64 struct stat:
// shared with the preload library, which builds the same answers.
#[cfg(target_arch = "x86_64")]
pub use nsroot_preload::layout::stat_from_statx;
pub use nsroot_preload::layout::{
    get_u32, get_u64, mode_of, new_encode_dev, put_u32, put_u64, SX_ATIME, SX_BLKSIZE, SX_BLOCKS,
    SX_BTIME, SX_CTIME, SX_DEV_MAJOR, SX_DEV_MINOR, SX_GID, SX_INO, SX_MASK, SX_MODE, SX_MTIME,
    SX_NLINK, SX_RDEV_MAJOR, SX_RDEV_MINOR, SX_SIZE, SX_UID,
};
pub const SX_MNT_ID: usize = 144;
/// STATX_MNT_ID (Linux 5.8; libc 0.2 has no constant for it).
pub const STATX_MNT_ID: u32 = 0x1000;

/// The store key of a statx result.
pub fn key_of_statx(b: &[u8; 256]) -> (FileId, Option<Btime>) {
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
pub fn apply_patch(b: &mut [u8; 256], p: Patch) {
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

/// The 64-bit `struct stat` of include/uapi/asm-generic/stat.h (aarch64's fstat and
/// newfstatat), built as cp_new_stat does.
#[cfg(any(target_arch = "aarch64", test))]
pub fn generic_stat_from_statx(b: &[u8; 256]) -> [u8; 128] {
    let mut s = [0u8; 128];
    put_u64(&mut s, 0, dev_of(b, SX_DEV_MAJOR));
    put_u64(&mut s, 8, get_u64(b, SX_INO));
    put_u32(&mut s, 16, mode_of(b));
    put_u32(&mut s, 20, get_u32(b, SX_NLINK));
    put_u32(&mut s, 24, get_u32(b, SX_UID));
    put_u32(&mut s, 28, get_u32(b, SX_GID));
    put_u64(&mut s, 32, dev_of(b, SX_RDEV_MAJOR));
    put_u64(&mut s, 48, get_u64(b, SX_SIZE));
    put_u32(&mut s, 56, get_u32(b, SX_BLKSIZE));
    put_u64(&mut s, 64, get_u64(b, SX_BLOCKS));
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u64(&mut s, 72 + 16 * i, get_u64(b, t));
        put_u64(&mut s, 80 + 16 * i, get_u32(b, t + 8) as u64);
    }
    s
}

/// st_dev or st_rdev (`major` is the offset of the statx major field) in new_encode_dev form.
fn dev_of(b: &[u8; 256], major: usize) -> u64 {
    new_encode_dev(get_u32(b, major), get_u32(b, major + 4))
}

/// The overflow ids (`/proc/sys/kernel/overflow{u,g}id`), shown for an id a 16-bit field
/// cannot hold (high2lowuid, include/linux/highuid.h).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct OverflowIds {
    pub uid: u32,
    pub gid: u32,
}

#[cfg(target_arch = "x86_64")]
fn low16(id: u32, overflow: u32) -> u16 {
    if id > 0xffff {
        overflow as u16
    } else {
        id as u16
    }
}

/// i386's `struct stat` (`compat_stat`, arch/x86/include/asm/compat.h, 64 bytes) of stat,
/// lstat and fstat (106-108), as the kernel's cp_compat_stat builds it: EOVERFLOW for an inode
/// number above 32 bits, a link count above 16 bits or a size above 2 GiB - 1; 16-bit ids.
#[cfg(target_arch = "x86_64")]
pub fn i386_stat_from_statx(b: &[u8; 256], ov: OverflowIds) -> Result<[u8; 64], Errno> {
    let ino = get_u64(b, SX_INO);
    let nlink = get_u32(b, SX_NLINK);
    let size = get_u64(b, SX_SIZE);
    if ino > u64::from(u32::MAX) || nlink > 0xffff || size > 0x7fff_ffff {
        return Err(Errno::EOVERFLOW);
    }
    let mut s = [0u8; 64];
    put_u32(&mut s, 0, dev_of(b, SX_DEV_MAJOR) as u32);
    put_u32(&mut s, 4, ino as u32);
    s[8..10].copy_from_slice(&(mode_of(b) as u16).to_ne_bytes());
    s[10..12].copy_from_slice(&(nlink as u16).to_ne_bytes());
    s[12..14].copy_from_slice(&low16(get_u32(b, SX_UID), ov.uid).to_ne_bytes());
    s[14..16].copy_from_slice(&low16(get_u32(b, SX_GID), ov.gid).to_ne_bytes());
    put_u32(&mut s, 16, dev_of(b, SX_RDEV_MAJOR) as u32);
    put_u32(&mut s, 20, size as u32);
    put_u32(&mut s, 24, get_u32(b, SX_BLKSIZE));
    put_u32(&mut s, 28, get_u64(b, SX_BLOCKS) as u32);
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u32(&mut s, 32 + 8 * i, get_u64(b, t) as u32);
        put_u32(&mut s, 36 + 8 * i, get_u32(b, t + 8));
    }
    Ok(s)
}

/// Size of i386's packed `struct stat64`.
#[cfg(target_arch = "x86_64")]
pub const I386_STAT64_LEN: usize = 96;

/// Fills i386's packed `struct stat64` (arch/x86/include/uapi/asm/stat.h, 96 bytes) of
/// stat64, lstat64, fstat64 and fstatat64 in `s`, which holds what the target's buffer held:
/// the kernel's cp_stat64 (arch/x86/kernel/sys_ia32.c) writes field by field and leaves the
/// two padding words as they were.
#[cfg(target_arch = "x86_64")]
pub fn i386_stat64_from_statx(b: &[u8; 256], s: &mut [u8; I386_STAT64_LEN]) {
    let ino = get_u64(b, SX_INO);
    put_u64(s, 0, dev_of(b, SX_DEV_MAJOR));
    put_u32(s, 12, ino as u32); // __st_ino
    put_u32(s, 16, mode_of(b));
    put_u32(s, 20, get_u32(b, SX_NLINK));
    put_u32(s, 24, get_u32(b, SX_UID));
    put_u32(s, 28, get_u32(b, SX_GID));
    put_u64(s, 32, dev_of(b, SX_RDEV_MAJOR));
    put_u64(s, 44, get_u64(b, SX_SIZE));
    put_u32(s, 52, get_u32(b, SX_BLKSIZE));
    put_u64(s, 56, get_u64(b, SX_BLOCKS));
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u32(s, 64 + 8 * i, get_u64(b, t) as u32);
        put_u32(s, 68 + 8 * i, get_u32(b, t + 8));
    }
    put_u64(s, 88, ino);
}

/// `struct __old_kernel_stat` (32 bytes) of i386's oldstat, oldlstat and oldfstat, as the
/// kernel's cp_old_stat builds it: EOVERFLOW for an inode number or link count above 16 bits;
/// old_encode_dev numbers, 16-bit ids, the size truncated to 32 bits (a 64-bit kernel does not
/// check it).
#[cfg(target_arch = "x86_64")]
pub fn i386_old_stat_from_statx(b: &[u8; 256], ov: OverflowIds) -> Result<[u8; 32], Errno> {
    let ino = get_u64(b, SX_INO);
    let nlink = get_u32(b, SX_NLINK);
    if ino > 0xffff || nlink > 0xffff {
        return Err(Errno::EOVERFLOW);
    }
    let old_dev = |major: usize| ((get_u32(b, major) << 8) | get_u32(b, major + 4)) as u16;
    let mut s = [0u8; 32];
    let halves = [
        old_dev(SX_DEV_MAJOR),
        ino as u16,
        mode_of(b) as u16,
        nlink as u16,
        low16(get_u32(b, SX_UID), ov.uid),
        low16(get_u32(b, SX_GID), ov.gid),
        old_dev(SX_RDEV_MAJOR),
    ];
    for (i, h) in halves.into_iter().enumerate() {
        s[2 * i..2 * i + 2].copy_from_slice(&h.to_ne_bytes());
    }
    put_u32(&mut s, 16, get_u64(b, SX_SIZE) as u32);
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u32(&mut s, 20 + 4 * i, get_u64(b, t) as u32);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn stat_conversion_matches_the_kernel() {
        use crate::sys::seccomp as sys;
        use std::ffi::CStr;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
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

    fn sample() -> [u8; 256] {
        let mut b = [0u8; 256];
        put_u32(&mut b, SX_DEV_MAJOR, 8);
        put_u32(&mut b, SX_DEV_MINOR, 1);
        put_u64(&mut b, SX_INO, 1234);
        put_u32(&mut b, SX_NLINK, 2);
        b[SX_MODE..SX_MODE + 2].copy_from_slice(&((libc::S_IFCHR | 0o640) as u16).to_ne_bytes());
        put_u32(&mut b, SX_UID, 70000);
        put_u32(&mut b, SX_GID, 8);
        put_u32(&mut b, SX_RDEV_MAJOR, 1);
        put_u32(&mut b, SX_RDEV_MINOR, 3);
        put_u64(&mut b, SX_SIZE, 5);
        put_u32(&mut b, SX_BLKSIZE, 4096);
        put_u64(&mut b, SX_BLOCKS, 8);
        put_u64(&mut b, SX_MTIME, 1_700_000_000);
        put_u32(&mut b, SX_MTIME + 8, 42);
        b
    }

    #[test]
    fn generic_stat_layout() {
        let s = generic_stat_from_statx(&sample());
        assert_eq!(get_u64(&s, 0), new_encode_dev(8, 1));
        assert_eq!(get_u64(&s, 8), 1234);
        assert_eq!(get_u32(&s, 16), libc::S_IFCHR | 0o640);
        assert_eq!((get_u32(&s, 24), get_u32(&s, 28)), (70000, 8));
        assert_eq!(get_u64(&s, 32), new_encode_dev(1, 3));
        assert_eq!(get_u64(&s, 48), 5);
        assert_eq!((get_u64(&s, 88), get_u64(&s, 96)), (1_700_000_000, 42));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn i386_layouts() {
        let ov = OverflowIds {
            uid: 65534,
            gid: 65534,
        };
        let b = sample();
        let u16_at = |s: &[u8], o: usize| u16::from_ne_bytes([s[o], s[o + 1]]);
        let s = i386_stat_from_statx(&b, ov).unwrap();
        assert_eq!(get_u32(&s, 4), 1234);
        assert_eq!(u16_at(&s, 8) as u32, libc::S_IFCHR | 0o640);
        assert_eq!((u16_at(&s, 12), u16_at(&s, 14)), (65534, 8), "high2lowuid");
        assert_eq!(get_u32(&s, 16) as u64, new_encode_dev(1, 3));
        assert_eq!((get_u32(&s, 40), get_u32(&s, 44)), (1_700_000_000, 42));
        let mut s64 = [0xaa; I386_STAT64_LEN];
        i386_stat64_from_statx(&b, &mut s64);
        assert_eq!(&s64[8..12], &[0xaa; 4], "padding is left alone");
        assert_eq!((get_u32(&s64, 12), get_u64(&s64, 88)), (1234, 1234));
        assert_eq!((get_u32(&s64, 24), get_u32(&s64, 28)), (70000, 8));
        assert_eq!(get_u64(&s64, 44), 5);
        assert_eq!((get_u32(&s64, 72), get_u32(&s64, 76)), (1_700_000_000, 42));
        let old = i386_old_stat_from_statx(&b, ov).unwrap();
        assert_eq!((u16_at(&old, 0), u16_at(&old, 2)), ((8 << 8) | 1, 1234));
        assert_eq!(u16_at(&old, 12), (1 << 8) | 3);
        assert_eq!(get_u32(&old, 24), 1_700_000_000);
        let mut big = b;
        put_u64(&mut big, SX_INO, 1 << 32);
        assert_eq!(i386_stat_from_statx(&big, ov), Err(Errno::EOVERFLOW));
        put_u64(&mut big, SX_INO, 70000);
        assert!(i386_stat_from_statx(&big, ov).is_ok());
        assert_eq!(i386_old_stat_from_statx(&big, ov), Err(Errno::EOVERFLOW));
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
