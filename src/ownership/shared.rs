//! The session's record table in shared memory ([`nsroot_preload::table`]): the supervisor
//! and every process that preloads nsroot's library read and write the same records, so the
//! two paths a call can take give the same answers (ARCHITECTURE.md, "How a call finds its
//! way"). The table holds owners, groups, device types and numbers; xattrs stay in the
//! supervisor's map ([`super::Store`]), as only the supervisor serves the xattr calls.

use std::sync::atomic::AtomicU64;

use nsroot_preload::table::{Fields, Full, Key, Table};

use super::store::{Btime, FileId};
use crate::sys::shm::SharedWords;

/// The smallest index: 262,144 slots (2 MiB), filled to three quarters at most.
const MIN_SLOTS: usize = 1 << 18;

/// A session's table and its memory.
#[derive(Debug)]
pub struct SharedTable {
    mem: SharedWords,
    slots: usize,
    log: usize,
}

fn key(id: FileId, btime: Option<Btime>) -> Key {
    Key {
        dev: id.dev,
        ino: id.ino,
        btime: btime.map(|b| (b.sec, b.nsec)),
    }
}

impl SharedTable {
    /// A new empty table with room for at least `records` inodes besides those it will
    /// start with; `euid` and `overflow_uid` are the supervisor's (the library's chown check
    /// uses them as the supervisor does).
    ///
    /// Errors: the memfd or the mapping could not be made.
    pub fn create(records: usize, euid: u32, overflow_uid: u32) -> crate::sys::SysResult<Self> {
        let slots = (records.saturating_add(100_000) / 3 * 4)
            .next_power_of_two()
            .max(MIN_SLOTS);
        // Eight writes a key on average (chown, chgrp, re-chowns), in a log whose untouched
        // pages cost nothing: 2,097,152 records (128 MiB of address space) by default.
        Self::with_sizes(slots, slots * 8, euid, overflow_uid)
    }

    /// [`SharedTable::create`] with `slots` index slots (a power of two) and `log` records.
    pub(crate) fn with_sizes(
        slots: usize,
        log: usize,
        euid: u32,
        overflow_uid: u32,
    ) -> crate::sys::SysResult<Self> {
        let mem = SharedWords::create(c"nsroot-records", Table::words_for(slots, log))?;
        Table::create(mem.words(), slots, log, euid, overflow_uid).ok_or(crate::sys::SysError {
            call: "record table layout".into(),
            errno: nix::errno::Errno::EINVAL,
        })?;
        Ok(SharedTable { mem, slots, log })
    }

    fn table(&self) -> Table<'_> {
        let w: &[AtomicU64] = self.mem.words();
        // Our sizes, not the shared header's, which any process of the session can write.
        Table::with_sizes(w, self.slots, self.log).expect("the mapping create() sized")
    }

    /// The memory, for [`SharedWords::dup_to`].
    pub fn memory(&self) -> &SharedWords {
        &self.mem
    }

    /// True when no inode has a record here.
    pub fn is_empty(&self) -> bool {
        self.table().is_empty()
    }

    /// Inodes with a record here.
    pub fn len(&self) -> usize {
        self.table().keys() as usize
    }

    /// True once a write did not fit: later records go to the supervisor's map.
    pub fn overflowed(&self) -> bool {
        self.table().overflowed()
    }

    /// True once a group was recorded for a directory, by either path.
    pub fn dir_groups(&self) -> bool {
        self.table().dir_groups()
    }

    /// Notes that a directory has a recorded group (the library does it in its chown).
    pub fn set_dir_groups(&self) {
        self.table().set_dir_groups()
    }

    /// The fields recorded for `id` born at `btime`.
    pub fn get(&self, id: FileId, btime: Option<Btime>) -> Option<Fields> {
        self.table().lookup(key(id, btime))
    }

    /// Records what `change` makes of the current fields.
    ///
    /// Errors: [`Full`] when the table is full (it is then marked overflowed).
    pub fn update(
        &self,
        id: FileId,
        btime: Option<Btime>,
        change: impl Fn(Fields) -> Fields,
    ) -> Result<(), Full> {
        self.table().update(key(id, btime), change)
    }

    /// Every record: inode, birth time, fields.
    pub fn records(&self) -> Vec<(FileId, Option<Btime>, Fields)> {
        let mut v = Vec::new();
        self.table().for_each(|k, f| {
            v.push((
                FileId {
                    dev: k.dev,
                    ino: k.ino,
                },
                k.btime.map(|(sec, nsec)| Btime { sec, nsec }),
                f,
            ))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_in_a_memfd_round_trips() {
        let t = SharedTable::create(10, 0, 65534).unwrap();
        assert!(t.is_empty());
        let id = FileId { dev: 1, ino: 2 };
        let b = Some(Btime { sec: 3, nsec: 4 });
        t.update(id, b, |f| Fields { uid: Some(7), ..f }).unwrap();
        assert_eq!(t.get(id, b).unwrap().uid, Some(7));
        assert_eq!(t.get(id, None), None);
        assert_eq!(t.records().len(), 1);
    }
}
