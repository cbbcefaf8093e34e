//! The byte layouts the library and the supervisor share: `struct statx`'s offsets, glibc's
//! device number encoding, and x86_64's `struct stat` built from a statx result as the
//! kernel's `cp_new_stat` builds it (nsroot's `ownership/statx.rs` builds the other ABIs').

use crate::table::{Fields, Key};

/// STATX_BTIME (include/uapi/linux/stat.h).
pub const STATX_BTIME: u32 = 0x800;
/// The file-type bits of a mode.
pub const S_IFMT: u32 = 0o170_000;

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

pub fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(v)
}

pub fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(v)
}

pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// glibc's `makedev`: the encoding of `st_dev` and the store's keys.
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (u64::from(major), u64::from(minor));
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

pub fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

pub fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// new_encode_dev (include/linux/kdev_t.h): `struct stat`'s st_dev and st_rdev.
pub fn new_encode_dev(major: u32, minor: u32) -> u64 {
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

pub fn key_of(b: &[u8; 256]) -> Key {
    Key {
        dev: makedev(get_u32(b, SX_DEV_MAJOR), get_u32(b, SX_DEV_MINOR)),
        ino: get_u64(b, SX_INO),
        btime: (get_u32(b, SX_MASK) & STATX_BTIME != 0)
            .then(|| (get_u64(b, SX_BTIME) as i64, get_u32(b, SX_BTIME + 8))),
    }
}

pub fn mode_of(b: &[u8; 256]) -> u32 {
    u32::from(u16::from_ne_bytes([b[SX_MODE], b[SX_MODE + 1]]))
}

/// A record's ids, file type and device numbers put into a statx result (the file type
/// from the record, the permission bits from the disk, as `store::effective_mode`).
pub fn apply(b: &mut [u8; 256], f: Fields) {
    if let Some(uid) = f.uid {
        put_u32(b, SX_UID, uid);
    }
    if let Some(gid) = f.gid {
        put_u32(b, SX_GID, gid);
    }
    if let Some(m) = f.mode {
        let disk = mode_of(b);
        let mode = ((m & S_IFMT) | (disk & 0o7777)) as u16;
        b[SX_MODE..SX_MODE + 2].copy_from_slice(&mode.to_ne_bytes());
    }
    if let Some(rdev) = f.rdev {
        put_u32(b, SX_RDEV_MAJOR, major(rdev));
        put_u32(b, SX_RDEV_MINOR, minor(rdev));
    }
}

/// x86_64's `struct stat` from a statx result, as the kernel's cp_new_stat fills it.
pub fn stat_from_statx(b: &[u8; 256]) -> [u8; 144] {
    let mut s = [0u8; 144];
    put_u64(
        &mut s,
        0,
        new_encode_dev(get_u32(b, SX_DEV_MAJOR), get_u32(b, SX_DEV_MINOR)),
    );
    put_u64(&mut s, 8, get_u64(b, SX_INO));
    put_u64(&mut s, 16, u64::from(get_u32(b, SX_NLINK)));
    put_u32(&mut s, 24, mode_of(b));
    put_u32(&mut s, 28, get_u32(b, SX_UID));
    put_u32(&mut s, 32, get_u32(b, SX_GID));
    put_u64(
        &mut s,
        40,
        new_encode_dev(get_u32(b, SX_RDEV_MAJOR), get_u32(b, SX_RDEV_MINOR)),
    );
    put_u64(&mut s, 48, get_u64(b, SX_SIZE));
    put_u64(&mut s, 56, u64::from(get_u32(b, SX_BLKSIZE)));
    put_u64(&mut s, 64, get_u64(b, SX_BLOCKS));
    for (i, t) in [SX_ATIME, SX_MTIME, SX_CTIME].into_iter().enumerate() {
        put_u64(&mut s, 72 + 16 * i, get_u64(b, t));
        put_u64(&mut s, 80 + 16 * i, u64::from(get_u32(b, t + 8)));
    }
    s
}
