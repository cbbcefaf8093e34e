//! The byte layout of `struct statx` and `struct stat` (x86_64), which the supervisor reads
//! and writes as raw bytes so that fields newer than libc's structs survive the copy to the
//! target: store keys from a statx result, records patched into it, and the `stat` a
//! stat-family call wants built from it as the kernel's `cp_new_stat` does.

use super::store::{effective_mode, Btime, FileId};

/// The fields of a record the stat path needs; Copy, so the hot path does not clone a Record.
#[derive(Debug, Clone, Copy)]
pub struct Patch {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub rdev: Option<u64>,
}

pub fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or_default())
}

pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

// Offsets in struct statx (include/uapi/linux/stat.h).
pub const SX_MASK: usize = 0;
pub const SX_BLKSIZE: usize = 4;
pub const SX_NLINK: usize = 16;
pub const SX_UID: usize = 20;
pub const SX_GID: usize = 24;
pub const SX_MODE: usize = 28;
pub const SX_INO: usize = 32;
pub const SX_SIZE: usize = 40;
pub const SX_BLOCKS: usize = 48;
pub const SX_ATIME: usize = 64;
pub const SX_BTIME: usize = 80;
pub const SX_CTIME: usize = 96;
pub const SX_MTIME: usize = 112;
pub const SX_RDEV_MAJOR: usize = 128;
pub const SX_RDEV_MINOR: usize = 132;
pub const SX_DEV_MAJOR: usize = 136;
pub const SX_DEV_MINOR: usize = 140;
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

/// new_encode_dev (include/linux/kdev_t.h): how stat(2) encodes st_dev and st_rdev.
pub fn new_encode_dev(major: u32, minor: u32) -> u64 {
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u64
}

/// The x86_64 `struct stat` (arch/x86/include/uapi/asm/stat.h) that stat, lstat, fstat and
/// newfstatat return, built from a statx result as the kernel's cp_new_stat does.
pub fn stat_from_statx(b: &[u8; 256]) -> [u8; 144] {
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
    use crate::sys::seccomp as sys;
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

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
