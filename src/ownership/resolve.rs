//! Path resolution for the supervisor: a path a target names, resolved exactly as the target's
//! own thread would resolve it, never as the supervisor would.
//!
//! The supervisor lives outside the sandbox (the host's root, mount namespace and /proc), so
//! the obvious `/proc/<pid>/root/<path>` is wrong: an absolute symlink met on the way restarts
//! at the *supervisor's* `/` (the host), `..` can climb out of the target's root, and
//! `/proc/self` means the supervisor. Instead every walk starts from the target's own root,
//! cwd or dirfd (opened through the magic links of our /proc, which reach its objects in its
//! mount namespace) and keeps to the target's rules:
//!
//! - **Fast path**: one `openat2(2)` that refuses every symlink (`RESOLVE_NO_SYMLINKS`), for an
//!   absolute path from the target's root with `RESOLVE_IN_ROOT` (so `..` stops there, as
//!   chroot(2) makes it), for a relative path without `..` from its cwd or dirfd. Most calls of
//!   a build (`/build/destdir/usr/...`, names in the cwd) name no symlink and end here.
//! - **Walk**: otherwise, one component at a time (`O_PATH|O_NOFOLLOW`), `..` stopping at the
//!   target's root, each symlink read and expanded by us (an absolute one from the target's
//!   root), at most [`MAX_LINKS`] of them (ELOOP). On procfs, `self` and `thread-self` become
//!   the target's own pid and tid *in that procfs's pid namespace*, and a magic link
//!   (`/proc/<pid>/fd/N`, `cwd`, `root`, `exe`, ...) is followed only when it is the target's
//!   own process: the kernel would check the target's ptrace access to any other process, which
//!   the supervisor cannot mirror, so such a path is [`Resolution::Kernel`]: the call is left
//!   to the kernel, which runs it as the target (with its permissions, and without emulation).
//!
//! Whatever the path, the supervisor then acts only on the descriptor this returns: an object
//! the target itself can reach.

use std::ffi::CStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::sys::seccomp as sys;

/// SYMLOOP_MAX as the kernel has it (namei.c `MAXSYMLINKS`).
pub const MAX_LINKS: u32 = 40;
/// PATH_MAX (limits.h), NUL included.
pub const PATH_MAX: usize = 4096;
/// The procfs root's inode number (fs/proc/root.c `PROC_ROOT_INO`).
const PROC_ROOT_INO: u64 = 1;

use super::statx::{
    get_u32, get_u64, STATX_MNT_ID, SX_DEV_MAJOR, SX_DEV_MINOR, SX_INO, SX_MNT_ID, SX_MODE,
};

/// Where a relative path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The target's working directory (AT_FDCWD).
    Cwd,
    /// A directory descriptor of the target.
    Dirfd(i32),
}

/// The outcome of resolving a target's path.
#[derive(Debug)]
pub enum Resolution {
    /// An `O_PATH` descriptor of the object the target's call names.
    Found(OwnedFd),
    /// The path goes through something whose resolution rests on the target's own permission
    /// (another process's magic link): only the kernel, running the call as the target, can
    /// resolve it.
    Kernel,
}

/// The ids of an object's statx: enough to tell whether two descriptors are the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    dev: (u32, u32),
    ino: u64,
    mnt: u64,
    mode: u32,
}

fn place(fd: BorrowedFd<'_>) -> Result<Place, Errno> {
    let mut buf = sys::StatxBuf([0; 256]);
    sys::statx(
        Some(fd),
        c"",
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        libc::STATX_TYPE | libc::STATX_INO | STATX_MNT_ID,
        &mut buf,
    )?;
    let b = &buf.0;
    Ok(Place {
        dev: (get_u32(b, SX_DEV_MAJOR), get_u32(b, SX_DEV_MINOR)),
        ino: get_u64(b, SX_INO),
        mnt: get_u64(b, SX_MNT_ID),
        mode: u16::from_ne_bytes([b[SX_MODE], b[SX_MODE + 1]]) as u32,
    })
}

fn is_symlink(p: &Place) -> bool {
    p.mode & libc::S_IFMT == libc::S_IFLNK
}

fn is_dir(p: &Place) -> bool {
    p.mode & libc::S_IFMT == libc::S_IFDIR
}

fn cstr(bytes: &mut Vec<u8>) -> Result<&CStr, Errno> {
    bytes.push(0);
    CStr::from_bytes_with_nul(bytes).map_err(|_| Errno::EINVAL)
}

fn open_path(dir: BorrowedFd<'_>, name: &[u8], follow: bool) -> Result<OwnedFd, Errno> {
    let mut n = Vec::with_capacity(name.len() + 1);
    n.extend_from_slice(name);
    let flags = libc::O_PATH | if follow { 0 } else { libc::O_NOFOLLOW };
    sys::openat(dir, cstr(&mut n)?, flags, 0).map(OwnedFd::from)
}

/// Opens `/proc/<tid>/<what>` of our procfs (`root`, `cwd`, `fd/N`): the target's object.
fn open_of_target(
    proc: BorrowedFd<'_>,
    tid: u32,
    what: std::fmt::Arguments<'_>,
) -> Result<OwnedFd, Errno> {
    let mut p = Vec::with_capacity(48);
    let _ = write!(p, "{tid}/{what}");
    // The target's own objects, whatever they are: the magic link is followed.
    open_path(proc, &p, true).map_err(|e| match e {
        // The thread is gone: its call will never see an answer.
        Errno::ENOENT | Errno::ESRCH => Errno::ESRCH,
        e => e,
    })
}

/// The target's root directory.
pub fn target_root(proc: BorrowedFd<'_>, tid: u32) -> Result<OwnedFd, Errno> {
    open_of_target(proc, tid, format_args!("root"))
}

/// The object the target's descriptor `fd` refers to (EBADF when it has none).
pub fn target_fd(proc: BorrowedFd<'_>, tid: u32, fd: i32) -> Result<OwnedFd, Errno> {
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    open_of_target(proc, tid, format_args!("fd/{fd}")).map_err(|e| match e {
        Errno::ESRCH => Errno::EBADF,
        e => e,
    })
}

fn target_start(proc: BorrowedFd<'_>, tid: u32, start: Start) -> Result<OwnedFd, Errno> {
    match start {
        Start::Cwd => open_of_target(proc, tid, format_args!("cwd")),
        Start::Dirfd(fd) => target_fd(proc, tid, fd),
    }
}

/// Resolves `path` as thread `tid` would for a call starting at `start`: the final symlink
/// followed when `follow`. `path` empty means `start` itself (AT_EMPTY_PATH; the caller checks
/// the flag). Errors are the errno the target's own call would get; ESRCH when the target is
/// gone.
pub fn resolve(
    proc: BorrowedFd<'_>,
    tid: u32,
    start: Start,
    path: &[u8],
    follow: bool,
) -> Result<Resolution, Errno> {
    if path.is_empty() {
        return target_start(proc, tid, start).map(Resolution::Found);
    }
    let absolute = path[0] == b'/';
    let root = if absolute {
        Some(target_root(proc, tid)?)
    } else {
        None
    };
    let base = match &root {
        Some(r) => sys::dup_fd(r.as_fd())?,
        None => target_start(proc, tid, start)?,
    };
    let dotdot = path.split(|&b| b == b'/').any(|c| c == b"..");
    if absolute || !dotdot {
        let mut resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        resolve |= if absolute {
            libc::RESOLVE_IN_ROOT
        } else {
            libc::RESOLVE_BENEATH
        };
        let flags = libc::O_PATH | if follow { 0 } else { libc::O_NOFOLLOW };
        let mut p = path.to_vec();
        match sys::openat2(base.as_fd(), cstr(&mut p)?, flags, resolve) {
            Ok(fd) => return Ok(Resolution::Found(fd)),
            // A symlink, an escape from the start, a rename race, or no openat2 (before 5.6):
            // walk. Anything else is the target's answer too.
            Err(Errno::ELOOP | Errno::EXDEV | Errno::EAGAIN | Errno::ENOSYS | Errno::E2BIG) => {}
            Err(e) => return Err(e),
        }
    }
    let root = match root {
        Some(r) => r,
        None => target_root(proc, tid)?,
    };
    Walk::new(proc, tid, root)?.run(base, path, follow)
}

/// Resolves the directory that would hold the last component of `path` (for a call that
/// creates it, mknod): that directory and the name. A last component of `.` or `..` is
/// EEXIST, as mknod(2) says for it; a trailing slash is ENOENT or EEXIST.
pub fn resolve_parent(
    proc: BorrowedFd<'_>,
    tid: u32,
    start: Start,
    path: &[u8],
) -> Result<Option<(OwnedFd, Vec<u8>)>, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.ends_with(b"/") {
        return match resolve(proc, tid, start, path, true)? {
            Resolution::Found(_) => Err(Errno::EEXIST),
            Resolution::Kernel => Ok(None),
        };
    }
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (&path[..1], &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    if name == b"." || name == b".." {
        return Err(Errno::EEXIST);
    }
    match resolve(proc, tid, start, dir, true)? {
        Resolution::Found(fd) => Ok(Some((fd, name.to_vec()))),
        Resolution::Kernel => Ok(None),
    }
}

/// The target's pid and tid as one procfs instance numbers them.
#[derive(Debug, Clone, Copy)]
struct OwnIds {
    tgid: u32,
    tid: u32,
}

/// Where in a procfs the walk is: the components below its root.
#[derive(Debug, Clone)]
struct InProc {
    dev: (u32, u32),
    /// The procfs root, to find the target's ids in it.
    root: Option<std::rc::Rc<OwnedFd>>,
    below: Vec<Vec<u8>>,
    own: Option<Option<OwnIds>>,
}

/// The component-by-component walk (see the module's doc).
struct Walk<'a> {
    proc: BorrowedFd<'a>,
    tid: u32,
    root: OwnedFd,
    root_place: Place,
    links: u32,
}

impl<'a> Walk<'a> {
    fn new(proc: BorrowedFd<'a>, tid: u32, root: OwnedFd) -> Result<Walk<'a>, Errno> {
        let root_place = place(root.as_fd())?;
        Ok(Walk {
            proc,
            tid,
            root,
            root_place,
            links: 0,
        })
    }

    /// The components of `path`, in reverse, onto `todo` (so `pop` gives the next one).
    fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
        // A trailing slash asks for a directory, following a final symlink: keep it as ".".
        if path.len() > 1 && path.ends_with(b"/") {
            todo.push(b".".to_vec());
        }
        for c in path.split(|&b| b == b'/').rev() {
            if !c.is_empty() {
                todo.push(c.to_vec());
            }
        }
    }

    fn proc_state(
        &self,
        fd: BorrowedFd<'_>,
        p: &Place,
        from: Option<&InProc>,
        name: Option<&[u8]>,
    ) -> Option<InProc> {
        if p.ino == PROC_ROOT_INO && sys::fs_magic(fd) == Ok(sys::PROC_SUPER_MAGIC) {
            return Some(InProc {
                dev: p.dev,
                root: sys::dup_fd(fd).ok().map(std::rc::Rc::new),
                below: Vec::new(),
                own: None,
            });
        }
        let mut s = from?.clone();
        if s.dev != p.dev {
            return None;
        }
        match name {
            Some(b"..") => {
                s.below.pop();
            }
            Some(n) => s.below.push(n.to_vec()),
            None => return None,
        }
        Some(s)
    }

    fn run(mut self, start: OwnedFd, path: &[u8], follow: bool) -> Result<Resolution, Errno> {
        let mut todo = Vec::new();
        Self::push_components(&mut todo, path);
        let mut cur = start;
        let mut cur_place = place(cur.as_fd())?;
        let mut in_proc = self.proc_state(cur.as_fd(), &cur_place, None, None);
        if path[0] == b'/' {
            cur = sys::dup_fd(self.root.as_fd())?;
            cur_place = self.root_place;
            in_proc = self.proc_state(cur.as_fd(), &cur_place, None, None);
        }
        while let Some(name) = todo.pop() {
            let last = todo.is_empty();
            if name == b"." {
                if !is_dir(&cur_place) {
                    return Err(Errno::ENOTDIR);
                }
                continue;
            }
            if name == b".." {
                if !is_dir(&cur_place) {
                    return Err(Errno::ENOTDIR);
                }
                if cur_place == self.root_place {
                    continue; // the target's root: `..` of it is itself
                }
                let up = open_path(cur.as_fd(), b"..", false)?;
                let up_place = place(up.as_fd())?;
                in_proc = match &in_proc {
                    Some(s) if s.dev == up_place.dev && !s.below.is_empty() => {
                        let mut s = s.clone();
                        s.below.pop();
                        Some(s)
                    }
                    _ => self.proc_state(up.as_fd(), &up_place, None, None),
                };
                cur = up;
                cur_place = up_place;
                continue;
            }
            let next = open_path(cur.as_fd(), &name, false)?;
            let next_place = place(next.as_fd())?;
            if !is_symlink(&next_place) || (last && !follow) {
                in_proc = self.proc_state(next.as_fd(), &next_place, in_proc.as_ref(), Some(&name));
                cur = next;
                cur_place = next_place;
                continue;
            }
            self.links += 1;
            if self.links > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            let on_proc = sys::fs_magic(next.as_fd()) == Ok(sys::PROC_SUPER_MAGIC);
            if on_proc {
                let Some(state) = in_proc.as_mut() else {
                    // A procfs symlink we cannot place: its meaning may be a process's.
                    return Ok(Resolution::Kernel);
                };
                if state.below.is_empty() {
                    // At a procfs root: `self` and `thread-self` mean the reader, so the target.
                    if name == b"self" || name == b"thread-self" {
                        let own = match state.own {
                            Some(own) => own,
                            None => {
                                let own = self.own_ids(state);
                                state.own = Some(own);
                                own
                            }
                        };
                        let Some(own) = own else {
                            return Err(Errno::ENOENT); // not visible in that procfs
                        };
                        let mut target = Vec::with_capacity(32);
                        if name == b"self" {
                            let _ = write!(target, "{}", own.tgid);
                        } else {
                            let _ = write!(target, "{}/task/{}", own.tgid, own.tid);
                        }
                        Self::push_components(&mut todo, &target);
                        continue;
                    }
                    // Plain procfs symlinks (mounts -> self/mounts): expanded below.
                } else {
                    // A magic link under /proc/<pid>/: the target's own process only.
                    let own = match state.own {
                        Some(own) => own,
                        None => {
                            let own = self.own_ids(state);
                            state.own = Some(own);
                            own
                        }
                    };
                    let pid_dir = state.below[0].as_slice();
                    let mine = own.is_some_and(|o| {
                        pid_dir == o.tgid.to_string().as_bytes()
                            || pid_dir == o.tid.to_string().as_bytes()
                    });
                    if !mine {
                        return Ok(Resolution::Kernel);
                    }
                    let jumped = open_path(cur.as_fd(), &name, true)?;
                    let jumped_place = place(jumped.as_fd())?;
                    in_proc = self.proc_state(jumped.as_fd(), &jumped_place, None, None);
                    cur = jumped;
                    cur_place = jumped_place;
                    if !last && !is_dir(&cur_place) {
                        return Err(Errno::ENOTDIR);
                    }
                    continue;
                }
            }
            let mut target = vec![0u8; PATH_MAX];
            let len = sys::readlink_fd(next.as_fd(), &mut target)?;
            if len == 0 {
                return Err(Errno::ENOENT);
            }
            target.truncate(len);
            Self::push_components(&mut todo, &target);
            if target[0] == b'/' {
                cur = sys::dup_fd(self.root.as_fd())?;
                cur_place = self.root_place;
                in_proc = self.proc_state(cur.as_fd(), &cur_place, None, None);
            }
        }
        Ok(Resolution::Found(cur))
    }

    /// The target's pid and tid in the procfs whose root is `state.root`: the level of its
    /// `NStgid`/`NSpid` (proc_pid_status(5), read from our procfs) whose entry in that procfs
    /// is the same process (same innermost pid namespace, same innermost pid).
    fn own_ids(&self, state: &InProc) -> Option<OwnIds> {
        let root = state.root.as_ref()?;
        let ours = read_status(self.proc, self.tid)?;
        let ns = ns_ino(self.proc, &self.tid.to_string())?;
        for k in (0..ours.tgids.len()).rev() {
            let cand = ours.tgids[k];
            let theirs = read_status(root.as_fd(), cand);
            let same = theirs.is_some_and(|t| t.tgids.last() == ours.tgids.last())
                && ns_ino(root.as_fd(), &cand.to_string()) == Some(ns);
            if same {
                return Some(OwnIds {
                    tgid: cand,
                    tid: *ours.pids.get(k)?,
                });
            }
        }
        None
    }
}

/// The `NStgid` and `NSpid` lines of `<pid>/status` in the procfs `dir`.
struct NsIds {
    tgids: Vec<u32>,
    pids: Vec<u32>,
}

fn read_status(dir: BorrowedFd<'_>, pid: u32) -> Option<NsIds> {
    use std::io::Read;
    let path = std::ffi::CString::new(format!("{pid}/status")).ok()?;
    let mut s = String::new();
    sys::openat(dir, &path, libc::O_RDONLY, 0)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut s)
        .ok()?;
    let list = |key: &str| -> Option<Vec<u32>> {
        let line = s.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_whitespace().map(|v| v.parse().ok()).collect()
    };
    Some(NsIds {
        tgids: list("NStgid:")?,
        pids: list("NSpid:")?,
    })
}

/// The inode of `<pid>/ns/pid` in the procfs `dir` (its pid namespace).
fn ns_ino(dir: BorrowedFd<'_>, pid: &str) -> Option<u64> {
    let fd = open_path(dir, format!("{pid}/ns/pid").as_bytes(), true).ok()?;
    place(fd.as_fd()).ok().map(|p| p.ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn proc() -> OwnedFd {
        std::fs::File::open("/proc").unwrap().into()
    }

    fn tid() -> u32 {
        // SAFETY: gettid has no arguments and cannot fail.
        unsafe { libc::gettid() as u32 }
    }

    fn found(r: Result<Resolution, Errno>) -> Place {
        match r.unwrap() {
            Resolution::Found(fd) => place(fd.as_fd()).unwrap(),
            Resolution::Kernel => panic!("left to the kernel"),
        }
    }

    #[test]
    fn resolves_like_the_kernel_in_our_own_tree() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::write(base.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("b/f", base.join("a/rel")).unwrap();
        std::os::unix::fs::symlink(base.join("a/b"), base.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../a/./b/../b/f", base.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        let p = proc();
        let f_ino = std::fs::metadata(base.join("a/b/f")).unwrap().ino();
        for path in ["a/rel", "abs/f", "a/b/up", "a/b/../b/./f", "abs/../b/f"] {
            let full = base.join(path);
            let got = found(resolve(
                p.as_fd(),
                tid(),
                Start::Cwd,
                full.as_os_str().as_encoded_bytes(),
                true,
            ));
            assert_eq!(got.ino, f_ino, "{path}");
        }
        // Not following the last link gives the link.
        let link = base.join("a/rel");
        let got = found(resolve(
            p.as_fd(),
            tid(),
            Start::Cwd,
            link.as_os_str().as_encoded_bytes(),
            false,
        ));
        assert!(is_symlink(&got));
        let lp = base.join("loop");
        let err = resolve(
            p.as_fd(),
            tid(),
            Start::Cwd,
            lp.as_os_str().as_encoded_bytes(),
            true,
        );
        assert_eq!(err.unwrap_err(), Errno::ELOOP);
        let missing = base.join("a/nothing/f");
        let err = resolve(
            p.as_fd(),
            tid(),
            Start::Cwd,
            missing.as_os_str().as_encoded_bytes(),
            true,
        );
        assert_eq!(err.unwrap_err(), Errno::ENOENT);
        let notdir = base.join("a/b/f/x");
        let err = resolve(
            p.as_fd(),
            tid(),
            Start::Cwd,
            notdir.as_os_str().as_encoded_bytes(),
            true,
        );
        assert_eq!(err.unwrap_err(), Errno::ENOTDIR);
    }

    #[test]
    fn proc_self_means_the_target() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("f")).unwrap();
        use std::os::fd::AsRawFd;
        let ino = f.metadata().unwrap().ino();
        let p = proc();
        for path in [
            format!("/proc/self/fd/{}", f.as_raw_fd()),
            format!("/dev/fd/{}", f.as_raw_fd()),
            format!("/proc/thread-self/fd/{}", f.as_raw_fd()),
        ] {
            let got = found(resolve(p.as_fd(), tid(), Start::Cwd, path.as_bytes(), true));
            assert_eq!(got.ino, ino, "{path}");
        }
        // Another process's magic link is the kernel's to resolve.
        let r = resolve(p.as_fd(), tid(), Start::Cwd, b"/proc/1/root/etc", true).unwrap();
        assert!(matches!(r, Resolution::Kernel));
    }

    #[test]
    fn parent_of_a_path() {
        let p = proc();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("new");
        let (dir, name) = resolve_parent(
            p.as_fd(),
            tid(),
            Start::Cwd,
            path.as_os_str().as_encoded_bytes(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(name, b"new");
        assert_eq!(
            place(dir.as_fd()).unwrap().ino,
            std::fs::metadata(d.path()).unwrap().ino()
        );
        assert_eq!(
            resolve_parent(p.as_fd(), tid(), Start::Cwd, b"/tmp/..").unwrap_err(),
            Errno::EEXIST
        );
    }
}
