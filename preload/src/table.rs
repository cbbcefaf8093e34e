//! The record table that every process of a session shares with the supervisor: an
//! open-addressing index over an append-only log of immutable records, in one memfd mapped
//! `MAP_SHARED`, in safe Rust over atomics.
//!
//! # Why a log of immutable records
//!
//! Builds write the table from many processes at once (make -j), and any of them may be
//! killed in the middle of a write. A lock would then stay held (a robust futex needs the
//! owner's tid, which the supervisor, in another pid namespace, cannot check), and a record
//! updated in place would be torn. Instead a writer takes a fresh record from the log
//! (`fetch_add`), fills it, and publishes it with one compare-and-swap of the slot that indexes
//! its key; an update publishes a new record that replaces the old one the same way. A
//! record is never written after it is published, so a reader that loads a slot (Acquire)
//! sees a whole record, old or new; a writer killed before its CAS leaves an unreachable
//! record and the table as it was, which is the kernel's answer for a call that never
//! returned. A lost CAS retries on the record that won, so concurrent chowns of one file
//! merge their ids as they would in one process.
//!
//! Keys are (st_dev, st_ino) as `ownership/store.rs` keys them; the birth time is part of the
//! record, and a record whose birth time differs belongs to an earlier inode with that
//! number (KF-INODE-REUSE): it is never answered, and the next write starts afresh.
//!
//! When the log or the index is full the table is marked overflowed: the preload library
//! then answers nothing and every call goes to the supervisor, which keeps further records
//! in its own map. Both paths therefore still agree.

use core::sync::atomic::{AtomicU64, Ordering};

/// The first word of a table.
pub const MAGIC: u64 = u64::from_le_bytes(*b"nsrootT1");
/// The layout version, checked by the library (a library of another nsroot build
/// answers nothing rather than misread). 2: the header's directory-group word.
pub const VERSION: u64 = 2;
/// The descriptor number a session's steps inherit the table on (`fcntl(F_GET_SEALS)` and
/// the magic tell it from an unrelated descriptor of that number).
pub const STORE_FD: i32 = 1017;
/// Where the library maps its trampoline page (`syscall; ret`); the seccomp filter allows
/// every call made from this page (`seccomp_data.instruction_pointer`).
pub const TRAMPOLINE_ADDR: u64 = 0x6e73_726f_0000;
/// The trampoline page's size.
pub const TRAMPOLINE_LEN: u64 = 4096;

/// Words of the header.
pub const HEADER_WORDS: usize = 64;
/// Words of one record.
pub const RECORD_WORDS: usize = 8;

const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SLOTS: usize = 2;
const H_RECORDS: usize = 3;
const H_NEXT: usize = 4;
const H_KEYS: usize = 5;
const H_OVERFLOW: usize = 6;
const H_IDS: usize = 7;
/// Non-zero once a group was recorded for a directory, by the library or the supervisor:
/// until then the supervisor answers creating calls without looking (setgid directories).
const H_DIR_GROUPS: usize = 8;

// Record words: dev, ino, btime seconds, btime nanoseconds | flags << 32, uid | gid << 32,
// mode, rdev, unused.
const R_DEV: usize = 0;
const R_INO: usize = 1;
const R_BSEC: usize = 2;
const R_BNSEC_FLAGS: usize = 3;
const R_IDS: usize = 4;
const R_MODE: usize = 5;
const R_RDEV: usize = 6;

const F_BTIME: u64 = 1;
const F_UID: u64 = 2;
const F_GID: u64 = 4;
const F_MODE: u64 = 8;
const F_RDEV: u64 = 16;

/// Which inode a record is for: `st_dev` (glibc's `makedev` encoding), `st_ino`, and the
/// birth time (seconds, nanoseconds) where the filesystem reports one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `stx_btime`, None where the filesystem has none.
    pub btime: Option<(i64, u32)>,
}

/// What a record overrides; None leaves the disk's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields {
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// File type and permission bits mknod asked for (a device node).
    pub mode: Option<u32>,
    /// Device numbers (`makedev` encoding).
    pub rdev: Option<u64>,
}

/// Why a write did not land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The log or the index is full; the table is marked overflowed.
    Overflowed,
}

/// A table over a shared mapping of [`Table::words_for`] words.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    w: &'a [AtomicU64],
    slots: usize,
    records: usize,
}

fn hash(dev: u64, ino: u64) -> u64 {
    // splitmix64's finaliser over both halves of the key.
    let mut h = dev.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ino;
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl<'a> Table<'a> {
    /// Words a table of `slots` index slots (a power of two) and `records` log records
    /// needs.
    pub const fn words_for(slots: usize, records: usize) -> usize {
        HEADER_WORDS + slots + records * RECORD_WORDS
    }

    /// Lays a new, empty table out over `w` (all zero, as a fresh memfd is). `euid` and
    /// `overflow_uid` are the supervisor's, which the library's chown check uses as the
    /// supervisor's does. None when `slots` is not a power of two or `w` is too small.
    pub fn create(
        w: &'a [AtomicU64],
        slots: usize,
        records: usize,
        euid: u32,
        overflow_uid: u32,
    ) -> Option<Table<'a>> {
        if !slots.is_power_of_two() || w.len() < Self::words_for(slots, records) {
            return None;
        }
        w[H_VERSION].store(VERSION, Ordering::Relaxed);
        w[H_SLOTS].store(slots as u64, Ordering::Relaxed);
        w[H_RECORDS].store(records as u64, Ordering::Relaxed);
        // Record 0 is the empty slot's value.
        w[H_NEXT].store(1, Ordering::Relaxed);
        w[H_IDS].store(
            u64::from(euid) | u64::from(overflow_uid) << 32,
            Ordering::Relaxed,
        );
        w[H_MAGIC].store(MAGIC, Ordering::Release);
        Some(Table { w, slots, records })
    }

    /// The table laid out over `w`, if `w` holds one of this layout and size.
    pub fn open(w: &'a [AtomicU64]) -> Option<Table<'a>> {
        if w.len() < HEADER_WORDS
            || w[H_MAGIC].load(Ordering::Acquire) != MAGIC
            || w[H_VERSION].load(Ordering::Relaxed) != VERSION
        {
            return None;
        }
        let slots = w[H_SLOTS].load(Ordering::Relaxed) as usize;
        let records = w[H_RECORDS].load(Ordering::Relaxed) as usize;
        if !slots.is_power_of_two()
            || records > usize::MAX / (2 * RECORD_WORDS)
            || slots > usize::MAX / 4
            || w.len() < Self::words_for(slots, records)
        {
            return None;
        }
        Some(Table { w, slots, records })
    }

    /// The table over `w` with the sizes its creator gave it, whatever the header says now:
    /// the supervisor's view, which a process of the session that scribbles over the shared
    /// header can make answer wrongly for that session but never fault or index out of
    /// bounds. None when `w` is too small for those sizes.
    pub fn with_sizes(w: &'a [AtomicU64], slots: usize, records: usize) -> Option<Table<'a>> {
        (slots.is_power_of_two() && w.len() >= Self::words_for(slots, records)).then_some(Table {
            w,
            slots,
            records,
        })
    }

    /// Number of inodes with a record (never decreases).
    pub fn keys(&self) -> u64 {
        self.w[H_KEYS].load(Ordering::Acquire)
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.keys() == 0
    }

    /// True once a write did not fit: from then on only the supervisor answers.
    pub fn overflowed(&self) -> bool {
        self.w[H_OVERFLOW].load(Ordering::Acquire) != 0
    }

    /// Marks the table overflowed.
    pub fn set_overflowed(&self) {
        self.w[H_OVERFLOW].store(1, Ordering::Release);
    }

    /// True once a group was recorded for a directory ([`Table::set_dir_groups`]).
    pub fn dir_groups(&self) -> bool {
        self.w[H_DIR_GROUPS].load(Ordering::Acquire) != 0
    }

    /// Notes that a directory has a recorded group: from now on the supervisor looks at
    /// the parent of every file created (a new file in a setgid directory takes its group).
    /// Set before the record is published, so no creation after the record misses it.
    pub fn set_dir_groups(&self) {
        self.w[H_DIR_GROUPS].store(1, Ordering::Release);
    }

    /// The supervisor's euid and the overflow uid, as given to [`Table::create`].
    pub fn ids(&self) -> (u32, u32) {
        let v = self.w[H_IDS].load(Ordering::Relaxed);
        (v as u32, (v >> 32) as u32)
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        &self.w[HEADER_WORDS + i]
    }

    fn rec(&self, idx: u64) -> Option<&[AtomicU64]> {
        let idx = idx as usize;
        if idx == 0 || idx >= self.records {
            return None;
        }
        let base = HEADER_WORDS + self.slots + idx * RECORD_WORDS;
        self.w.get(base..base + RECORD_WORDS)
    }

    fn read(r: &[AtomicU64]) -> (Key, Fields) {
        let get = |i: usize| r[i].load(Ordering::Relaxed);
        let bf = get(R_BNSEC_FLAGS);
        let flags = bf >> 32;
        let ids = get(R_IDS);
        let key = Key {
            dev: get(R_DEV),
            ino: get(R_INO),
            btime: (flags & F_BTIME != 0).then(|| (get(R_BSEC) as i64, bf as u32)),
        };
        let fields = Fields {
            uid: (flags & F_UID != 0).then_some(ids as u32),
            gid: (flags & F_GID != 0).then_some((ids >> 32) as u32),
            mode: (flags & F_MODE != 0).then_some(get(R_MODE) as u32),
            rdev: (flags & F_RDEV != 0).then(|| get(R_RDEV)),
        };
        (key, fields)
    }

    fn write(r: &[AtomicU64], key: Key, f: Fields) {
        let mut flags = 0;
        let (bsec, bnsec) = match key.btime {
            Some((s, n)) => {
                flags |= F_BTIME;
                (s as u64, n)
            }
            None => (0, 0),
        };
        flags |= if f.uid.is_some() { F_UID } else { 0 };
        flags |= if f.gid.is_some() { F_GID } else { 0 };
        flags |= if f.mode.is_some() { F_MODE } else { 0 };
        flags |= if f.rdev.is_some() { F_RDEV } else { 0 };
        let set = |i: usize, v: u64| r[i].store(v, Ordering::Relaxed);
        set(R_DEV, key.dev);
        set(R_INO, key.ino);
        set(R_BSEC, bsec);
        set(R_BNSEC_FLAGS, u64::from(bnsec) | flags << 32);
        set(
            R_IDS,
            u64::from(f.uid.unwrap_or(0)) | u64::from(f.gid.unwrap_or(0)) << 32,
        );
        set(R_MODE, u64::from(f.mode.unwrap_or(0)));
        set(R_RDEV, f.rdev.unwrap_or(0));
    }

    /// The record of inode (`dev`, `ino`), whatever its birth time.
    pub fn get(&self, dev: u64, ino: u64) -> Option<(Key, Fields)> {
        let mask = self.slots - 1;
        let mut i = hash(dev, ino) as usize & mask;
        for _ in 0..self.slots {
            let idx = self.slot(i).load(Ordering::Acquire);
            let r = self.rec(idx)?;
            let (k, f) = Self::read(r);
            if k.dev == dev && k.ino == ino {
                return Some((k, f));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The record of `key`; None when there is none or it belongs to an earlier inode with
    /// the same number.
    pub fn lookup(&self, key: Key) -> Option<Fields> {
        let (k, f) = self.get(key.dev, key.ino)?;
        (k.btime == key.btime).then_some(f)
    }

    fn alloc(&self) -> Result<&[AtomicU64], Full> {
        let n = self.w[H_NEXT].fetch_add(1, Ordering::Relaxed);
        match self.rec(n) {
            Some(r) => Ok(r),
            None => {
                self.set_overflowed();
                Err(Full::Overflowed)
            }
        }
    }

    fn index_of(&self, r: &[AtomicU64]) -> u64 {
        let base = HEADER_WORDS + self.slots;
        // r is a sub-slice of w handed out by rec(): its offset gives the index.
        let off = (r.as_ptr() as usize - self.w.as_ptr() as usize) / core::mem::size_of::<u64>();
        ((off - base) / RECORD_WORDS) as u64
    }

    /// Records for `key` what `change` makes of its current fields (empty when there is no
    /// record or it belongs to an earlier inode). Lock-free; safe against concurrent writers
    /// in other processes and against being killed at any point.
    ///
    /// Errors: [`Full::Overflowed`] when the table is full (it is then marked so).
    pub fn update(&self, key: Key, change: impl Fn(Fields) -> Fields) -> Result<(), Full> {
        if self.overflowed() {
            return Err(Full::Overflowed);
        }
        let mask = self.slots - 1;
        let mut i = hash(key.dev, key.ino) as usize & mask;
        let mut fresh: Option<&[AtomicU64]> = None;
        let mut probes = 0;
        loop {
            let cur = self.slot(i).load(Ordering::Acquire);
            let old = match self.rec(cur) {
                None => None,
                Some(r) => {
                    let (k, f) = Self::read(r);
                    if k.dev != key.dev || k.ino != key.ino {
                        probes += 1;
                        if probes >= self.slots {
                            self.set_overflowed();
                            return Err(Full::Overflowed);
                        }
                        i = (i + 1) & mask;
                        continue;
                    }
                    Some(if k.btime == key.btime {
                        f
                    } else {
                        Fields::default()
                    })
                }
            };
            if old.is_none() && self.keys() as usize >= self.slots / 4 * 3 {
                self.set_overflowed();
                return Err(Full::Overflowed);
            }
            let r = match fresh {
                Some(r) => r,
                None => self.alloc()?,
            };
            fresh = Some(r);
            Self::write(r, key, change(old.unwrap_or_default()));
            let new = self.index_of(r);
            if self
                .slot(i)
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                if old.is_none() {
                    self.w[H_KEYS].fetch_add(1, Ordering::AcqRel);
                }
                return Ok(());
            }
            // Another writer won this slot: look again (same key: merge with its record).
        }
    }

    /// Calls `f` for every record.
    pub fn for_each(&self, mut f: impl FnMut(Key, Fields)) {
        for i in 0..self.slots {
            if let Some(r) = self.rec(self.slot(i).load(Ordering::Acquire)) {
                let (k, fl) = Self::read(r);
                f(k, fl);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    const K: Key = Key {
        dev: 7,
        ino: 11,
        btime: Some((100, 5)),
    };

    #[test]
    fn update_merges_and_reuse_starts_afresh() {
        let w = words(Table::words_for(16, 64));
        let t = Table::create(&w, 16, 64, 0, 65534).unwrap();
        assert!(t.is_empty());
        t.update(K, |f| Fields { uid: Some(5), ..f }).unwrap();
        t.update(K, |f| Fields { gid: Some(6), ..f }).unwrap();
        assert_eq!(
            t.lookup(K),
            Some(Fields {
                uid: Some(5),
                gid: Some(6),
                ..Fields::default()
            })
        );
        let newer = Key {
            btime: Some((100, 6)),
            ..K
        };
        assert_eq!(t.lookup(newer), None, "a reused inode number matched");
        t.update(newer, |f| Fields {
            mode: Some(0o20644),
            ..f
        })
        .unwrap();
        assert_eq!(t.lookup(K), None);
        assert_eq!(t.lookup(newer).unwrap().uid, None);
        assert_eq!(t.keys(), 1);
        let t2 = Table::open(&w).unwrap();
        assert_eq!(t2.lookup(newer).unwrap().mode, Some(0o20644));
        assert_eq!(t2.ids(), (0, 65534));
        assert!(!t2.dir_groups());
        t.set_dir_groups();
        assert!(t2.dir_groups());
    }

    #[test]
    fn full_table_overflows() {
        let w = words(Table::words_for(8, 4));
        let t = Table::create(&w, 8, 4, 0, 0).unwrap();
        let mut res = Ok(());
        for ino in 0..10 {
            res = t.update(Key { ino, ..K }, |f| f);
            if res.is_err() {
                break;
            }
        }
        assert_eq!(res, Err(Full::Overflowed));
        assert!(t.overflowed());
    }

    #[test]
    fn foreign_mappings_are_refused() {
        let w = words(HEADER_WORDS + 4);
        assert!(Table::open(&w).is_none());
        let big = words(Table::words_for(16, 16));
        Table::create(&big, 16, 16, 0, 0).unwrap();
        assert!(Table::open(&big[..HEADER_WORDS + 3]).is_none());
    }

    #[test]
    fn threads_write_at_once_and_nothing_is_lost() {
        let w = words(Table::words_for(4096, 40_000));
        let t = Table::create(&w, 4096, 40_000, 0, 0).unwrap();
        std::thread::scope(|s| {
            for th in 0..8u32 {
                let t = &t;
                s.spawn(move || {
                    for ino in 0..1000u64 {
                        t.update(Key { ino, ..K }, |f| Fields {
                            uid: Some(th),
                            gid: f.gid.or(Some(ino as u32)),
                            ..f
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(t.keys(), 1000);
        for ino in 0..1000u64 {
            let f = t.lookup(Key { ino, ..K }).unwrap();
            assert!(f.uid.unwrap() < 8);
            assert_eq!(f.gid, Some(ino as u32));
        }
        let mut n = 0;
        t.for_each(|_, _| n += 1);
        assert_eq!(n, 1000);
    }
}
