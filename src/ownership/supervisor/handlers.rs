//! The supervisor's answer to each intercepted call: dispatch by number, then the stat,
//! chown, mknod and xattr handlers, each either emulating the call from the store or letting
//! the kernel run it.

use std::ffi::{CStr, OsStr};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use nix::errno::Errno;

use super::create::Create;
use super::target::{fd_path, lock, Ctx, Target, TargetCreds};
use super::{
    Reply, PROBE_ANSWER, PROBE_XATTR, XATTR_CREATE, XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_REPLACE,
    XATTR_SIZE_MAX,
};
use crate::ownership::statx::{self, apply_patch, get_u32, key_of_statx, mode_of, SX_MODE, SX_UID};
use crate::ownership::store::{Btime, FileId, PERM_BITS, S_IFMT};
use crate::sys::abi::{self, Call, IdWidth, StatLayout};
use crate::sys::seccomp as sys;

/// The POSIX ACL xattrs (acl(5)): stored by the kernel when it can map their ids.
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

fn is_acl(name: &[u8]) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// The permission bits an ACL in the kernel's xattr format (include/uapi/linux/posix_acl_xattr.h:
/// a u32 version 2, then entries of u16 tag, u16 perm, u32 id) gives the file's mode: owner,
/// mask or else group, other. None when the value is not a well-formed ACL.
fn acl_perms(v: &[u8]) -> Option<u32> {
    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    let (head, entries) = v.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != 2 || entries.is_empty() || entries.len() % 8 != 0 {
        return None;
    }
    let (mut user, mut group, mut mask, mut other) = (None, None, None, None);
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u32::from(u16::from_le_bytes([e[2], e[3]]));
        if perm > 7 {
            return None;
        }
        match tag {
            USER_OBJ => user = Some(perm),
            GROUP_OBJ => group = Some(perm),
            MASK => mask = Some(perm),
            OTHER => other = Some(perm),
            USER | GROUP => {}
            _ => return None,
        }
    }
    Some((user? << 6) | (mask.or(group)? << 3) | other?)
}

/// A chown's uid and gid; None leaves that one unchanged.
type Ids = (Option<u32>, Option<u32>);

/// chown(2)'s ids as the ABI passes them: -1 (all ones in the id's width) leaves that id
/// unchanged; a 16-bit id is widened as the kernel's low2highuid does.
fn ids(width: IdWidth, uid: u64, gid: u64) -> Ids {
    let id_of = |v: u64| match width {
        IdWidth::Bits16 => (v as u16 != u16::MAX).then_some(u32::from(v as u16)),
        IdWidth::Bits32 => (v as u32 != u32::MAX).then_some(v as u32),
    };
    (id_of(uid), id_of(gid))
}

impl Ctx {
    /// Dispatches by the notification's ABI and number (`sys::abi`'s tables, which the
    /// filter was built from). A 32-bit ABI's arguments are masked to 32 bits first.
    pub(super) fn handle(&mut self, n: &sys::Notif) -> Reply {
        let Some((table, call)) = abi::lookup(n.data.arch, n.data.nr) else {
            return Reply::Continue;
        };
        let mut n = *n;
        if table.word_bits == 32 {
            for v in &mut n.data.args {
                *v &= u64::from(u32::MAX);
            }
        }
        let n = &n;
        let a = n.data.args;
        let at = |d: u64, p: u64| Target::At {
            dirfd: d as i32,
            addr: p,
        };
        let cwd = |p: u64| Target::At {
            dirfd: libc::AT_FDCWD,
            addr: p,
        };
        let fd = |d: u64| Target::Fd(d as i32);
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        match call {
            Call::Stat(l) => self.stat(n, cwd(a[0]), 0, a[1], l, 0),
            Call::Lstat(l) => self.stat(n, cwd(a[0]), nofollow, a[1], l, 0),
            Call::Fstat(l) => self.stat(n, fd(a[0]), 0, a[1], l, 0),
            Call::Fstatat(l) => self.stat(n, at(a[0], a[1]), a[3] as i32, a[2], l, 0),
            Call::Statx => self.stat(
                n,
                at(a[0], a[1]),
                a[2] as i32,
                a[4],
                StatLayout::Statx,
                a[3] as u32,
            ),
            Call::Chown(w) => self.chown(n, cwd(a[0]), ids(w, a[1], a[2]), 0),
            Call::Lchown(w) => self.chown(n, cwd(a[0]), ids(w, a[1], a[2]), nofollow),
            Call::Fchown(w) => self.chown(n, fd(a[0]), ids(w, a[1], a[2]), 0),
            Call::Fchownat => self.chown(
                n,
                at(a[0], a[1]),
                ids(IdWidth::Bits32, a[2], a[3]),
                a[4] as i32,
            ),
            Call::Mknod => self.mknod(n, cwd(a[0]), a[1] as u32, a[2] as u32),
            Call::Mknodat => self.mknod(n, at(a[0], a[1]), a[2] as u32, a[3] as u32),
            Call::Setxattr => self.setxattr(n, cwd(a[0]), 0),
            Call::Lsetxattr => self.setxattr(n, cwd(a[0]), nofollow),
            Call::Fsetxattr => self.setxattr(n, fd(a[0]), 0),
            Call::Getxattr => self.getxattr(n, cwd(a[0]), 0),
            Call::Lgetxattr => self.getxattr(n, cwd(a[0]), nofollow),
            Call::Fgetxattr => self.getxattr(n, fd(a[0]), 0),
            Call::Listxattr => self.listxattr(n, cwd(a[0]), 0),
            Call::Llistxattr => self.listxattr(n, cwd(a[0]), nofollow),
            Call::Flistxattr => self.listxattr(n, fd(a[0]), 0),
            Call::Removexattr => self.removexattr(n, cwd(a[0]), 0),
            Call::Lremovexattr => self.removexattr(n, cwd(a[0]), nofollow),
            Call::Fremovexattr => self.removexattr(n, fd(a[0]), 0),
            Call::Open => self.open_creating(n, cwd(a[0]), a[1] as i32, a[2] as u32),
            Call::Openat => self.open_creating(n, at(a[0], a[1]), a[2] as i32, a[3] as u32),
            Call::Creat => {
                let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
                self.open_creating(n, cwd(a[0]), flags, a[1] as u32)
            }
            Call::Openat2 => self.openat2(n, at(a[0], a[1]), a[2], a[3]),
            Call::Mkdir => self.create(n, cwd(a[0]), Create::Dir { mode: a[1] as u32 }),
            Call::Mkdirat => self.create(n, at(a[0], a[1]), Create::Dir { mode: a[2] as u32 }),
            Call::Symlink => self.create(n, cwd(a[1]), Create::Symlink { target: a[0] }),
            Call::Symlinkat => self.create(n, at(a[1], a[2]), Create::Symlink { target: a[0] }),
        }
    }

    fn stat(
        &mut self,
        n: &sys::Notif,
        t: Target,
        flags: i32,
        out: u64,
        layout: StatLayout,
        mask: u32,
    ) -> Reply {
        if lock(&self.store).is_empty() {
            return Reply::Continue;
        }
        // Bad pointers, bad fds, too long paths, and our own statx failing (ENOENT,
        // EACCES...): the kernel gives the target the same error.
        let mut buf = match self.stat_target(n.pid, t, flags, mask) {
            Ok((_, buf)) => buf,
            Err(Reply::Gone) => return Reply::Gone,
            Err(_) => return Reply::Continue,
        };
        let (id, btime) = key_of_statx(&buf.0);
        let patch = lock(&self.store).patch(id, btime);
        let Some(patch) = patch else {
            return Reply::Continue;
        };
        apply_patch(&mut buf.0, patch);
        let res = match layout {
            StatLayout::Statx => self.write_target(n, out, &buf.0),
            #[cfg(target_arch = "x86_64")]
            StatLayout::X86_64 => self.write_target(n, out, &statx::stat_from_statx(&buf.0)),
            #[cfg(target_arch = "aarch64")]
            StatLayout::Generic64 => {
                self.write_target(n, out, &statx::generic_stat_from_statx(&buf.0))
            }
            #[cfg(target_arch = "x86_64")]
            StatLayout::I386Stat => match statx::i386_stat_from_statx(&buf.0, self.overflow) {
                Ok(s) => self.write_target(n, out, &s),
                Err(e) => return e.into(),
            },
            #[cfg(target_arch = "x86_64")]
            StatLayout::I386Old => match statx::i386_old_stat_from_statx(&buf.0, self.overflow) {
                Ok(s) => self.write_target(n, out, &s),
                Err(e) => return e.into(),
            },
            #[cfg(target_arch = "x86_64")]
            StatLayout::I386Stat64 => {
                // cp_stat64 leaves the padding as the target had it: read it first.
                let mut s = [0u8; statx::I386_STAT64_LEN];
                if sys::read_remote(n.pid, out, &mut s) != Ok(s.len()) {
                    return Errno::EFAULT.into();
                }
                statx::i386_stat64_from_statx(&buf.0, &mut s);
                self.write_target(n, out, &s)
            }
            // No table of this build names the layouts of other architectures.
            #[allow(unreachable_patterns)]
            _ => return Reply::Continue,
        };
        match res {
            Ok(()) => Reply::Value(0),
            Err(r) => r,
        }
    }

    /// Checks that the file exists and may be chowned here, then records the ids.
    fn chown(&mut self, n: &sys::Notif, t: Target, ids: Ids, flags: i32) -> Reply {
        let buf = match self.stat_for_record(n.pid, t, flags) {
            Ok((_, buf)) => buf,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        // The session's processes are its root (as under fakeroot): they may chown what the
        // session's user owns on disk. A file owned by an id outside the user namespace (shown
        // as the overflow uid, KF-OVERFLOW-ID) is EPERM, as chown(2) in the namespace says.
        let disk_uid = get_u32(&buf.0, SX_UID);
        let allowed = disk_uid == self.euid || (self.euid == 0 && disk_uid != self.overflow_uid);
        if !allowed {
            return Errno::EPERM.into();
        }
        let (id, btime) = key_of_statx(&buf.0);
        let mut store = lock(&self.store);
        if ids.1.is_some() && mode_of(&buf.0) & S_IFMT == libc::S_IFDIR {
            store.note_dir_group(); // files made in it may take this group
        }
        store.set_owner(id, btime, ids.0, ids.1);
        Reply::Value(0)
    }

    /// A device node becomes an empty regular file plus a record (KF-NO-DEVICES), with the
    /// group of a setgid parent's record; other types the kernel makes itself, but in such a
    /// parent ([`Ctx::create`]).
    fn mknod(&mut self, n: &sys::Notif, t: Target, mode: u32, dev: u32) -> Reply {
        let kind = mode & S_IFMT;
        if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
            return self.create(n, t, Create::Node { mode });
        }
        let (dir, name) = match self.locate_parent(n.pid, t, false) {
            Ok(found) => found,
            Err(r) => return r,
        };
        let Some(creds) = TargetCreds::read(self.proc.as_fd(), n.pid) else {
            return Reply::Gone;
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        let perm = mode & PERM_BITS & !creds.umask;
        let mut name = name;
        name.push(0);
        let Ok(cname) = CStr::from_bytes_with_nul(&name) else {
            return Errno::EINVAL.into();
        };
        // O_EXCL: never follows a final symlink, fails with EEXIST like mknod(2).
        let file = match sys::openat(
            dir.as_fd(),
            cname,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        ) {
            Ok(f) => f,
            Err(e) => return e.into(),
        };
        // Our umask is not the target's: set the bits it asked for.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(perm));
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).into(),
        };
        if let Some((uid, gid)) = self.handed_ids(&creds, meta.gid()) {
            // By descriptor: the name may already be another file.
            let _ = std::os::unix::fs::fchown(&file, Some(uid), gid);
        }
        let group = if lock(&self.store).dir_groups() {
            self.group_of_setgid_dir(dir.as_fd())
        } else {
            None
        };
        // new_decode_dev (include/linux/kdev_t.h): the ABI passes a 32-bit encoded dev.
        let major = (dev & 0xfff00) >> 8;
        let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let mut store = lock(&self.store);
        let btime = Btime::of(&meta);
        store.set_device(id, btime, kind | perm, libc::makedev(major, minor));
        if group.is_some() {
            store.set_owner(id, btime, None, group);
        }
        Reply::Value(0)
    }

    /// Reads the xattr name argument (args[1]) into `self.name`.
    fn read_name(&mut self, n: &sys::Notif) -> Result<(), Errno> {
        Self::read_str(
            n.pid,
            n.data.args[1],
            &mut self.name,
            XATTR_NAME_MAX,
            Errno::ERANGE,
        )
    }

    /// security.* and trusted.* are refused to an unprivileged or namespaced caller (xattr(7));
    /// those are recorded, the rest run natively. POSIX ACLs are recorded only when the kernel
    /// refuses them (an id the namespace cannot map, KF-OVERFLOW-ID): see [`Ctx::setxattr`].
    fn recorded_namespace(name: &[u8]) -> bool {
        name.starts_with(b"security.") || name.starts_with(b"trusted.") || is_acl(name)
    }

    fn setxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        if let Err(e) = self.read_name(n) {
            return e.into();
        }
        if !Self::recorded_namespace(&self.name) {
            return Reply::Continue;
        }
        let size = a[3] as usize;
        if size > XATTR_SIZE_MAX {
            return Errno::E2BIG.into();
        }
        let mut value = vec![0u8; size];
        if size > 0 && sys::read_remote(n.pid, a[2], &mut value) != Ok(size) {
            return Errno::EFAULT.into();
        }
        let (fd, buf) = match self.stat_for_record(n.pid, t, flags) {
            Ok(found) => found,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        let (id, btime) = key_of_statx(&buf.0);
        let exists = lock(&self.store).xattr(id, btime, &self.name).is_some();
        if a[4] & XATTR_CREATE != 0 && exists {
            return Errno::EEXIST.into();
        }
        let mut acl_mode = None;
        if is_acl(&self.name) {
            // The kernel stores an ACL whose ids the namespace maps; only a refusal of a
            // well-formed one (EINVAL: an unmapped id) is recorded.
            let Some(perms) = acl_perms(&value) else {
                return Errno::EINVAL.into();
            };
            let mut name = self.name.clone();
            name.push(0);
            let Ok(cname) = CStr::from_bytes_with_nul(&name) else {
                return Errno::EINVAL.into();
            };
            let flags = if exists { 0 } else { a[4] as i32 };
            match sys::setxattr(&fd_path(&fd), cname, &value, flags) {
                Ok(()) => {
                    lock(&self.store).remove_xattr(id, btime, &self.name);
                    return Reply::Value(0);
                }
                Err(Errno::EINVAL) => {}
                Err(e) => return e.into(),
            }
            if self.name == ACL_ACCESS {
                acl_mode = Some(perms);
            }
        } else if a[4] & XATTR_REPLACE != 0 && !exists {
            return Errno::ENODATA.into();
        }
        if let Some(perms) = acl_mode {
            // As set_posix_acl does (posix_acl_update_mode): the permission bits become the
            // ACL's owner, mask (or group) and other entries.
            let disk = u32::from(u16::from_ne_bytes([buf.0[SX_MODE], buf.0[SX_MODE + 1]]));
            let _ = sys::touch_metadata(fd.as_fd(), (disk & !0o777) | perms, false);
        }
        lock(&self.store).set_xattr(id, btime, OsStr::from_bytes(&self.name), &value);
        Reply::Value(0)
    }

    fn getxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        if self.read_name(n).is_err() {
            return Reply::Continue;
        }
        let (out, size) = (a[2], a[3] as usize);
        if self.name == PROBE_XATTR.as_bytes() {
            if !self.valid(n) {
                return Reply::Gone;
            }
            // `nsroot:<pid>`: the session's key, the pid of the nsroot that serves it.
            let answer = format!("{PROBE_ANSWER}{}", std::process::id());
            return self.answer_xattr(n, out, size, answer.as_bytes());
        }
        // Fast path: nothing recorded, or a name we never record.
        if !Self::recorded_namespace(&self.name) || !lock(&self.store).has_xattrs() {
            return Reply::Continue;
        }
        let (id, btime, _) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let value = lock(&self.store)
            .xattr(id, btime, &self.name)
            .map(<[u8]>::to_vec);
        let Some(value) = value else {
            return Reply::Continue;
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        self.answer_xattr(n, out, size, &value)
    }

    /// listxattr(2): the names on disk plus the recorded ones (which the kernel refused to
    /// store), so that `cp -a`, `tar --xattrs` and `getfattr -d` carry them.
    fn listxattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        let a = n.data.args;
        let (out, size) = (a[1], a[2] as usize);
        if !lock(&self.store).has_xattrs() {
            return Reply::Continue;
        }
        let (id, btime, fd) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let recorded: Vec<Vec<u8>> = match lock(&self.store).get(id, btime) {
            Some(r) if !r.xattrs.is_empty() => r
                .xattrs
                .iter()
                .map(|(name, _)| name.as_bytes().to_vec())
                .collect(),
            _ => return Reply::Continue,
        };
        let path = fd_path(&fd);
        let mut disk = vec![0u8; XATTR_LIST_MAX];
        let len = match sys::listxattr(&path, &mut disk, true) {
            Ok(len) => len,
            // A filesystem without xattrs has only the recorded ones.
            Err(Errno::ENOTSUP) => 0,
            Err(_) => return Reply::Continue,
        };
        disk.truncate(len);
        let mut list = Vec::with_capacity(len + 64);
        for name in disk.split(|&b| b == 0).filter(|s| !s.is_empty()) {
            if !recorded.iter().any(|r| r == name) {
                list.extend_from_slice(name);
                list.push(0);
            }
        }
        for name in &recorded {
            list.extend_from_slice(name);
            list.push(0);
        }
        if list.len() > XATTR_LIST_MAX {
            return Errno::E2BIG.into();
        }
        if !self.valid(n) {
            return Reply::Gone;
        }
        self.answer_xattr(n, out, size, &list)
    }

    /// removexattr(2) of a recorded name forgets it. A security.* or trusted.* name that is
    /// neither recorded nor on disk is ENODATA, as for root (the kernel would say EPERM to
    /// trusted.* in a user namespace); other cases the kernel handles.
    fn removexattr(&mut self, n: &sys::Notif, t: Target, flags: i32) -> Reply {
        if self.read_name(n).is_err() || !Self::recorded_namespace(&self.name) {
            return Reply::Continue;
        }
        let (id, btime, fd) = match self.recorded_key(n, t, flags) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if !self.valid(n) {
            return Reply::Gone;
        }
        if lock(&self.store).remove_xattr(id, btime, &self.name) {
            return Reply::Value(0);
        }
        let path = fd_path(&fd);
        let mut name = self.name.clone();
        name.push(0);
        let Ok(name) = CStr::from_bytes_with_nul(&name) else {
            return Reply::Continue;
        };
        match sys::getxattr(&path, name, &mut [], true) {
            Err(Errno::ENODATA) => Errno::ENODATA.into(),
            _ => Reply::Continue,
        }
    }

    /// getxattr(2)'s answer: the size when asked with size 0, ERANGE when it does not fit.
    fn answer_xattr(&self, n: &sys::Notif, out: u64, size: usize, value: &[u8]) -> Reply {
        if size == 0 {
            return Reply::Value(value.len() as i64);
        }
        if value.len() > size {
            return Errno::ERANGE.into();
        }
        match self.write_target(n, out, value) {
            Ok(()) => Reply::Value(value.len() as i64),
            Err(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acl_mode_is_owner_mask_other() {
        // setfacl -m u:1:r on a 0644 file: user::rw- user:1:r-- group::r-- mask::r-- other::r--
        let v = acl(&[
            (1, 6, u32::MAX),
            (2, 4, 1),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ]);
        assert_eq!(acl_perms(&v), Some(0o644));
        let v = acl(&[(1, 7, 0), (4, 5, 0), (0x10, 1, 0), (0x20, 0, 0)]);
        assert_eq!(acl_perms(&v), Some(0o710), "the mask, not the group entry");
        assert_eq!(acl_perms(&v[..7]), None);
        assert_eq!(acl_perms(&acl(&[(1, 7, 0), (0x40, 7, 0)])), None);
        assert_eq!(acl_perms(b"\x01\0\0\0"), None);
    }
}
