//! The in-memory store of records, keyed so that a record follows its inode and dies with it.
//!
//! # Why (st_dev, st_ino, birth time)
//!
//! KF-INODE-REUSE offers two keys. We key by device, inode number and birth time (`statx(2)`
//! with `STATX_BTIME`), not by a `user.*` xattr on the inode, because:
//! - one mechanism covers every file type: `user.*` xattrs cannot be set on symlinks, device
//!   nodes, FIFOs or sockets (xattr(7)), so a side table would be needed anyway, and `lchown`
//!   on a symlink is common in packaging;
//! - it writes nothing to the user's tree (no stray `user.nsroot.*` attributes leaking into
//!   `cp -a`, rsync or archives made outside a session), and works on read-only files and on
//!   filesystems that refuse `user.*` xattrs (tmpfs before 6.6, some NFS and FUSE mounts);
//! - the supervisor already calls `statx` for every intercepted stat, so the key costs nothing.
//!
//! Device and inode follow a file through rename and hard links. An inode number is reused
//! after deletion, but the new inode gets a new birth time, so a stale record no longer matches
//! (fakeroot silently applies it; pseudo aborts). On a filesystem that reports no birth time
//! (ext4 with 128-byte inodes, NFS) the key falls back to device and inode alone, as fakeroot
//! does; such records are stored with no birth time and match only files without one.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::shared::SharedTable;
use super::statx::Patch;
use super::{Lookup, Record};

/// File-type bits of `st_mode` (inode(7)).
pub const S_IFMT: u32 = 0o170_000;
/// Permission bits, setuid, setgid and sticky.
pub const PERM_BITS: u32 = 0o7777;

/// Which inode a record belongs to: `st_dev` and `st_ino` as `stat(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// `st_dev` (`libc::makedev` encoding, as `std::os::unix::fs::MetadataExt::dev` gives it).
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// A file's birth time (`stx_btime`), which a reused inode number does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Btime {
    /// Seconds since the epoch (negative before it).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

impl Btime {
    /// The birth time of a `std::fs::Metadata` (std fills it from `statx`), if the filesystem
    /// reports one.
    pub fn of(meta: &std::fs::Metadata) -> Option<Btime> {
        let t = meta.created().ok()?;
        Some(Btime::from_system_time(t))
    }

    fn from_system_time(t: SystemTime) -> Btime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Btime {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Btime {
                        sec: -(d.as_secs() as i64),
                        nsec: 0,
                    }
                } else {
                    Btime {
                        sec: -(d.as_secs() as i64) - 1,
                        nsec: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

/// One stored record and the birth time of the inode it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) btime: Option<Btime>,
    pub(crate) record: Record,
}

/// All records of a session. Not thread-safe by itself: share it as `Arc<Mutex<Store>>`.
///
/// During a session with the fast path, owners, groups and devices live in a table in shared
/// memory ([`Store::share`]) that the preloaded library writes too, and the map keeps the
/// xattrs (and whatever the table had no room for); [`Store::unshare`] folds the table back
/// into the map when the session ends, before the state file is saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Store {
    pub(crate) map: HashMap<FileId, Entry>,
    /// True once any xattr was recorded: lets the supervisor skip getxattr calls cheaply.
    any_xattrs: bool,
    /// True once a directory may have a recorded group: until then the supervisor answers
    /// creating calls without looking at their parent (setgid directories).
    dir_groups: Hint,
    shared: Shared,
}

/// A hint for the supervisor's fast paths, not a record: two stores holding the same
/// records are equal whatever their hints say.
#[derive(Debug, Clone, Copy, Default)]
struct Hint(bool);

impl PartialEq for Hint {
    fn eq(&self, _: &Hint) -> bool {
        true
    }
}
impl Eq for Hint {}

/// The shared table of a running session, if any (compared by identity).
#[derive(Debug, Clone, Default)]
struct Shared(Option<std::sync::Arc<SharedTable>>);

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}
impl Eq for Shared {}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// True when nothing is recorded (the supervisor's fast path).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.shared.0.as_ref().is_none_or(|t| t.is_empty())
    }

    /// Number of recorded inodes (during a shared session, an inode with both a shared
    /// record and an xattr counts twice).
    pub fn len(&self) -> usize {
        self.map.len() + self.shared.0.as_ref().map_or(0, |t| t.len())
    }

    /// Moves the owners, groups and devices into a new table in shared memory and records
    /// them there from now on, until [`Store::unshare`]. `euid` and `overflow_uid` are the
    /// supervisor's. Returns the table (its memory is what the session's processes map).
    ///
    /// Errors: the shared memory could not be made; the store is then unchanged.
    pub fn share(
        &mut self,
        euid: u32,
        overflow_uid: u32,
    ) -> crate::sys::SysResult<std::sync::Arc<SharedTable>> {
        let table = SharedTable::create(self.map.len(), euid, overflow_uid)?;
        Ok(self.share_into(table))
    }

    fn share_into(&mut self, table: SharedTable) -> std::sync::Arc<SharedTable> {
        let table = std::sync::Arc::new(table);
        let mut moved = Vec::new();
        for (id, e) in &self.map {
            let r = &e.record;
            if r.uid.is_none() && r.gid.is_none() && r.mode.is_none() && r.rdev.is_none() {
                continue;
            }
            let f = nsroot_preload::table::Fields {
                uid: r.uid,
                gid: r.gid,
                mode: r.mode,
                rdev: r.rdev,
            };
            if table.update(*id, e.btime, |_| f).is_err() {
                break; // sized for them all; overflowed means the map keeps the rest
            }
            moved.push(*id);
        }
        for id in moved {
            if let Some(e) = self.map.get_mut(&id) {
                e.record.uid = None;
                e.record.gid = None;
                e.record.mode = None;
                e.record.rdev = None;
                if e.record == Record::default() {
                    self.map.remove(&id);
                }
            }
        }
        if self.dir_groups.0 {
            table.set_dir_groups();
        }
        self.shared = Shared(Some(std::sync::Arc::clone(&table)));
        table
    }

    /// True when a directory may have a recorded group (the library's records included):
    /// only then does a new file's parent need a look. A store read from a state file
    /// (which holds no file types) says so as soon as it holds any group.
    pub fn dir_groups(&self) -> bool {
        self.dir_groups.0 || self.shared.0.as_ref().is_some_and(|t| t.dir_groups())
    }

    /// Notes that a directory has a recorded group; call it before recording the group, so
    /// that no file created after the record misses it.
    pub fn note_dir_group(&mut self) {
        self.dir_groups.0 = true;
        if let Some(t) = &self.shared.0 {
            t.set_dir_groups();
        }
    }

    /// Folds the shared table back into the map and detaches it: what the session recorded,
    /// through either path, is then in the map for the state file and the archive. A
    /// record the map made after the table overflowed is newer and wins.
    pub fn unshare(&mut self) {
        let Some(table) = self.shared.0.take() else {
            return;
        };
        self.dir_groups.0 |= table.dir_groups();
        if table.is_empty() {
            // Nothing to fold; reading the index would fault in every page of it.
            return;
        }
        for (id, btime, f) in table.records() {
            match self.map.get_mut(&id) {
                Some(e) if e.btime == btime => {
                    let r = &mut e.record;
                    r.uid = r.uid.or(f.uid);
                    r.gid = r.gid.or(f.gid);
                    r.mode = r.mode.or(f.mode);
                    r.rdev = r.rdev.or(f.rdev);
                }
                Some(e)
                    if e.record.uid.is_some()
                        || e.record.gid.is_some()
                        || e.record.mode.is_some() => {}
                _ => {
                    let xattrs = self
                        .map
                        .get(&id)
                        .filter(|e| e.btime == btime)
                        .map(|e| e.record.xattrs.clone())
                        .unwrap_or_default();
                    self.map.insert(
                        id,
                        Entry {
                            btime,
                            record: Record {
                                uid: f.uid,
                                gid: f.gid,
                                mode: f.mode,
                                rdev: f.rdev,
                                xattrs,
                            },
                        },
                    );
                }
            }
        }
    }

    /// The owner, group, type and device recorded for `id`/`btime` (the stat path): from the
    /// shared table during a shared session, with anything the map holds on top.
    pub(crate) fn patch(&self, id: FileId, btime: Option<Btime>) -> Option<Patch> {
        let shared = self.shared.0.as_ref().and_then(|t| t.get(id, btime));
        let map = self.get(id, btime);
        if shared.is_none() && map.is_none() {
            return None;
        }
        let f = shared.unwrap_or_default();
        let mut p = Patch {
            uid: f.uid,
            gid: f.gid,
            mode: f.mode,
            rdev: f.rdev,
        };
        if let Some(r) = map {
            p.uid = r.uid.or(p.uid);
            p.gid = r.gid.or(p.gid);
            p.mode = r.mode.or(p.mode);
            p.rdev = r.rdev.or(p.rdev);
        }
        Some(p)
    }

    /// True when some record holds an xattr.
    pub fn has_xattrs(&self) -> bool {
        self.any_xattrs
    }

    /// The record of inode `id` born at `btime`; None when nothing is recorded or when the
    /// record belongs to an earlier inode with the same number.
    pub fn get(&self, id: FileId, btime: Option<Btime>) -> Option<&Record> {
        let e = self.map.get(&id)?;
        (e.btime == btime).then_some(&e.record)
    }

    /// The record of `id`/`btime` for update, made empty first when missing or stale.
    fn entry(&mut self, id: FileId, btime: Option<Btime>) -> &mut Record {
        let e = self.map.entry(id).or_insert_with(|| Entry {
            btime,
            record: Record::default(),
        });
        if e.btime != btime {
            // The inode number was reused: the old record must not leak onto the new file.
            *e = Entry {
                btime,
                record: Record::default(),
            };
        }
        &mut e.record
    }

    /// Records a chown: `None` leaves that id as it was (chown(2) with -1).
    pub fn set_owner(
        &mut self,
        id: FileId,
        btime: Option<Btime>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) {
        if let Some(t) = &self.shared.0 {
            let done = t.update(id, btime, |f| nsroot_preload::table::Fields {
                uid: uid.or(f.uid),
                gid: gid.or(f.gid),
                ..f
            });
            if done.is_ok() {
                return;
            }
        }
        let r = self.entry(id, btime);
        if uid.is_some() {
            r.uid = uid;
        }
        if gid.is_some() {
            r.gid = gid;
        }
    }

    /// Records a device node that mknod asked for: `mode` includes the file type
    /// (`S_IFCHR`/`S_IFBLK`), `rdev` is in `libc::makedev` encoding.
    pub fn set_device(&mut self, id: FileId, btime: Option<Btime>, mode: u32, rdev: u64) {
        if let Some(t) = &self.shared.0 {
            let done = t.update(id, btime, |f| nsroot_preload::table::Fields {
                mode: Some(mode),
                rdev: Some(rdev),
                ..f
            });
            if done.is_ok() {
                return;
            }
        }
        let r = self.entry(id, btime);
        r.mode = Some(mode);
        r.rdev = Some(rdev);
    }

    /// Records an extended attribute the kernel would refuse; replaces one of the same name.
    pub fn set_xattr(&mut self, id: FileId, btime: Option<Btime>, name: &OsStr, value: &[u8]) {
        let r = self.entry(id, btime);
        match r.xattrs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_vec(),
            None => r.xattrs.push((name.to_os_string(), value.to_vec())),
        }
        self.any_xattrs = true;
    }

    /// Forgets a recorded xattr; false when there was none of that name. A record left with
    /// nothing in it is dropped.
    pub fn remove_xattr(&mut self, id: FileId, btime: Option<Btime>, name: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let Some(e) = self.map.get_mut(&id).filter(|e| e.btime == btime) else {
            return false;
        };
        let before = e.record.xattrs.len();
        e.record.xattrs.retain(|(n, _)| n.as_bytes() != name);
        let removed = e.record.xattrs.len() != before;
        if e.record == Record::default() {
            self.map.remove(&id);
        }
        removed
    }

    /// A recorded xattr value.
    pub fn xattr(&self, id: FileId, btime: Option<Btime>, name: &[u8]) -> Option<&[u8]> {
        use std::os::unix::ffi::OsStrExt;
        let r = self.get(id, btime)?;
        r.xattrs
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Adds every record of `other`, which wins where both have one.
    pub fn merge(&mut self, other: Store) {
        self.any_xattrs |= other.any_xattrs;
        self.dir_groups.0 |= other.dir_groups.0;
        self.map.extend(other.map);
    }

    /// Inserts a whole entry (used by the state file reader).
    pub(crate) fn insert(&mut self, id: FileId, btime: Option<Btime>, record: Record) {
        self.any_xattrs |= !record.xattrs.is_empty();
        self.dir_groups.0 |= record.gid.is_some();
        self.map.insert(id, Entry { btime, record });
    }

    /// Entries sorted by inode, for a deterministic state file.
    pub(crate) fn sorted(&self) -> Vec<(FileId, &Entry)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, e)| (*k, e)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

/// What a session shows for a file with record `r` whose disk mode is `disk_mode`: the file
/// type comes from the record (a device made by mknod stays one), the permission bits from the
/// disk, so `chmod` keeps working on recorded device nodes (KF-FAKEROOT-HABITS).
pub fn effective_mode(r: &Record, disk_mode: u32) -> u32 {
    match r.mode {
        Some(m) => (m & S_IFMT) | (disk_mode & PERM_BITS),
        None => disk_mode,
    }
}

impl Lookup for Store {
    fn lookup(&self, _path: &Path, meta: &std::fs::Metadata) -> Option<Record> {
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let r = self.get(id, Btime::of(meta))?;
        let mut out = r.clone();
        if out.mode.is_some() {
            out.mode = Some(effective_mode(r, meta.mode()));
        }
        Some(out)
    }
}

/// The birth time of a path's inode, for callers that have a path only (tests, tools).
pub fn key_of(path: &Path) -> std::io::Result<(FileId, Option<Btime>)> {
    let m = std::fs::symlink_metadata(path)?;
    Ok((
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
        Btime::of(&m),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> FileId {
        FileId { dev: 7, ino }
    }
    const B1: Option<Btime> = Some(Btime { sec: 100, nsec: 5 });
    const B2: Option<Btime> = Some(Btime { sec: 100, nsec: 6 });

    #[test]
    fn chown_merges_ids_and_minus_one_keeps() {
        let mut s = Store::new();
        s.set_owner(id(1), B1, Some(33), None);
        s.set_owner(id(1), B1, None, Some(44));
        let r = s.get(id(1), B1).unwrap();
        assert_eq!((r.uid, r.gid), (Some(33), Some(44)));
    }

    #[test]
    fn reused_inode_number_does_not_inherit() {
        let mut s = Store::new();
        s.set_owner(id(1), B1, Some(33), Some(33));
        s.set_device(id(1), B1, 0o20_644, libc::makedev(1, 3));
        assert!(
            s.get(id(1), B2).is_none(),
            "a newer inode with the same number matched"
        );
        // Recording on the new inode starts afresh: no mode or rdev from the old one.
        s.set_owner(id(1), B2, Some(5), None);
        let r = s.get(id(1), B2).unwrap();
        assert_eq!((r.uid, r.gid, r.mode, r.rdev), (Some(5), None, None, None));
        assert!(s.get(id(1), B1).is_none());
    }

    #[test]
    fn no_btime_matches_only_no_btime() {
        let mut s = Store::new();
        s.set_owner(id(2), None, Some(1), None);
        assert!(s.get(id(2), None).is_some());
        assert!(s.get(id(2), B1).is_none());
    }

    #[test]
    fn device_type_from_record_perms_from_disk() {
        let r = Record {
            mode: Some(libc::S_IFCHR | 0o666),
            ..Record::default()
        };
        assert_eq!(
            effective_mode(&r, libc::S_IFREG | 0o600),
            libc::S_IFCHR | 0o600
        );
        let plain = Record::default();
        assert_eq!(
            effective_mode(&plain, libc::S_IFREG | 0o4755),
            libc::S_IFREG | 0o4755
        );
    }

    #[test]
    fn xattr_replace_and_read() {
        let mut s = Store::new();
        assert!(!s.has_xattrs());
        s.set_xattr(id(3), B1, OsStr::new("security.capability"), b"a");
        s.set_xattr(id(3), B1, OsStr::new("security.capability"), b"bb");
        assert!(s.has_xattrs());
        assert_eq!(s.xattr(id(3), B1, b"security.capability"), Some(&b"bb"[..]));
        assert_eq!(s.get(id(3), B1).unwrap().xattrs.len(), 1);
    }

    #[test]
    fn xattr_remove_drops_an_emptied_record() {
        let mut s = Store::new();
        s.set_xattr(id(4), B1, OsStr::new("security.capability"), b"a");
        s.set_xattr(id(4), B1, OsStr::new("trusted.x"), b"b");
        s.set_owner(id(5), B1, Some(1), None);
        s.set_xattr(id(5), B1, OsStr::new("trusted.x"), b"b");
        assert!(!s.remove_xattr(id(4), B2, b"trusted.x"), "stale inode");
        assert!(!s.remove_xattr(id(4), B1, b"trusted.y"));
        assert!(s.remove_xattr(id(4), B1, b"trusted.x"));
        assert_eq!(s.xattr(id(4), B1, b"security.capability"), Some(&b"a"[..]));
        assert!(s.remove_xattr(id(4), B1, b"security.capability"));
        assert!(s.get(id(4), B1).is_none(), "an empty record stays");
        assert!(s.remove_xattr(id(5), B1, b"trusted.x"));
        assert_eq!(
            s.get(id(5), B1).unwrap().uid,
            Some(1),
            "the owner went with the xattr"
        );
    }

    #[test]
    fn lookup_uses_metadata_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "").unwrap();
        let (fid, bt) = key_of(&f).unwrap();
        let mut s = Store::new();
        s.set_device(fid, bt, libc::S_IFBLK | 0o660, libc::makedev(8, 1));
        let meta = std::fs::symlink_metadata(&f).unwrap();
        let r = s.lookup(&f, &meta).unwrap();
        assert_eq!(r.mode, Some(libc::S_IFBLK | (meta.mode() & PERM_BITS)));
        assert_eq!(r.rdev, Some(libc::makedev(8, 1)));
    }

    #[test]
    fn shared_records_round_trip_and_overflow_into_the_map() {
        let mut s = Store::new();
        s.set_owner(id(1), B1, Some(5), None);
        s.set_xattr(id(1), B1, OsStr::new("security.capability"), b"c");
        s.set_device(id(2), B1, libc::S_IFCHR | 0o644, libc::makedev(1, 3));
        let before = s.clone();
        // 8 slots hold 6 inodes; the log holds 12 writes.
        let t = s.share_into(SharedTable::with_sizes(8, 12, 0, 65534).unwrap());
        assert_eq!(
            s.get(id(1), B1).unwrap().uid,
            None,
            "owners moved to the table"
        );
        assert_eq!(t.get(id(1), B1).unwrap().uid, Some(5));
        for ino in 10..20 {
            s.set_owner(id(ino), B1, Some(ino as u32), Some(1));
            s.set_owner(id(ino), B1, None, Some(2));
        }
        assert!(t.overflowed(), "the table filled up");
        // A chgrp after the overflow lands in the map, on top of the table's owner.
        s.set_owner(id(10), B1, None, Some(7));
        let p = s.patch(id(10), B1).unwrap();
        assert_eq!((p.uid, p.gid), (Some(10), Some(7)));
        s.set_owner(id(10), B1, None, Some(2));
        for ino in 10..20 {
            let p = s.patch(id(ino), B1).unwrap();
            assert_eq!((p.uid, p.gid), (Some(ino as u32), Some(2)), "inode {ino}");
        }
        assert_eq!(s.patch(id(2), B1).unwrap().rdev, Some(libc::makedev(1, 3)));
        assert!(s.patch(id(2), B2).is_none(), "a reused inode number");
        s.unshare();
        assert_eq!(
            s.get(id(1), B1),
            before.get(id(1), B1),
            "xattr and owner together"
        );
        assert_eq!(s.get(id(2), B1), before.get(id(2), B1));
        for ino in 10..20 {
            let r = s.get(id(ino), B1).unwrap();
            assert_eq!((r.uid, r.gid), (Some(ino as u32), Some(2)), "inode {ino}");
        }
        assert_eq!(s.len(), 12);
    }

    #[test]
    fn dir_groups_hint_follows_both_paths_and_state_files() {
        let mut s = Store::new();
        s.set_owner(id(1), B1, Some(5), Some(5));
        assert!(
            !s.dir_groups(),
            "set_owner alone says nothing about directories"
        );
        let t = s.share_into(SharedTable::with_sizes(8, 12, 0, 65534).unwrap());
        assert!(!t.dir_groups());
        t.set_dir_groups(); // the library's chgrp of a directory
        assert!(s.dir_groups());
        s.unshare();
        assert!(s.dir_groups(), "kept when the table is folded back");
        let mut fresh = Store::new();
        fresh.note_dir_group();
        let t = fresh.share_into(SharedTable::with_sizes(8, 12, 0, 65534).unwrap());
        assert!(t.dir_groups(), "carried into a new table");
        // A state file holds no file types: any group sets the hint; the hint is no record.
        let mut loaded = Store::new();
        loaded.insert(
            id(3),
            B1,
            Record {
                uid: Some(1),
                ..Record::default()
            },
        );
        assert!(!loaded.dir_groups());
        loaded.insert(
            id(4),
            B1,
            Record {
                gid: Some(8),
                ..Record::default()
            },
        );
        assert!(loaded.dir_groups());
        let mut same = Store::new();
        same.insert(
            id(3),
            B1,
            Record {
                uid: Some(1),
                ..Record::default()
            },
        );
        same.insert(
            id(4),
            B1,
            Record {
                gid: Some(8),
                ..Record::default()
            },
        );
        same.dir_groups = Hint(false);
        assert_eq!(loaded, same);
    }

    #[test]
    fn btime_before_epoch() {
        let t = UNIX_EPOCH - std::time::Duration::new(1, 250);
        assert_eq!(
            Btime::from_system_time(t),
            Btime {
                sec: -2,
                nsec: 999_999_750
            }
        );
    }
}
