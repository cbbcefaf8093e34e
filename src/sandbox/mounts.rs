//! Executes the mount steps of a plan, in pid 1, one short kernel sequence each.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::plan::MountOp;
use crate::sys::{self, CloneFlags, Errno, MntFlags, MsFlags, SysError};

/// A mount step that failed, with the step and the call.
#[derive(Debug, thiserror::Error)]
#[error("{step}")]
pub struct MountError {
    /// The step, as `--verbose` prints it.
    pub step: String,
    /// The call that failed.
    #[source]
    pub source: SysError,
}

/// Runs `ops` in order; returns warnings about fallbacks taken.
pub fn execute(ops: &[MountOp]) -> Result<Vec<String>, MountError> {
    let mut state = State::default();
    for op in ops {
        apply(op, &mut state).map_err(|source| MountError {
            step: op.to_string(),
            source,
        })?;
    }
    Ok(state.warnings)
}

/// What one step leaves for the later ones.
#[derive(Default)]
struct State {
    /// Fallbacks taken, for the user.
    warnings: Vec<String>,
    /// Where the lock writes its id maps: `/proc/self`, or, once the container's /proc is
    /// bound read-only in its place (KF-PROC-MOUNT), a descriptor of this process's directory
    /// in the writable procfs it came from, opened before the bind.
    proc_self: Option<std::fs::File>,
}

fn io(call: String) -> impl FnOnce(std::io::Error) -> SysError {
    move |e| SysError {
        call,
        errno: sys::io_errno(&e),
    }
}

fn mkdir_p(path: &Path, mode: u32) -> Result<(), SysError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io(format!("mkdir -p {}", path.display())))
}

fn touch(path: &Path) -> Result<(), SysError> {
    if let Some(parent) = path.parent() {
        mkdir_p(parent, 0o755)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(|_| ())
        .map_err(io(format!("create {}", path.display())))
}

fn apply(op: &MountOp, state: &mut State) -> Result<(), SysError> {
    let warnings = &mut state.warnings;
    match op {
        // mount_namespaces(7): without this, mounts made here could propagate to the host.
        MountOp::MakePrivate => sys::mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None,
        ),
        MountOp::Proc { target, fallback } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mkdir_p(target, 0o555)?;
            match sys::mount(Some(Path::new("proc")), target, Some("proc"), flags, None) {
                // KF-PROC-MOUNT: refused where the host's /proc is partly covered (some
                // containers); the inherited /proc still works but shows host processes.
                Err(e) if *fallback && matches!(e.errno, Errno::EPERM | Errno::EACCES) => {
                    let container = super::diagnose::container();
                    warnings.push(format!(
                        "cannot mount a fresh /proc ({e}): parts of {} /proc are masked; using \
                         it as it is{}, which shows its processes; for a fresh one, {}",
                        if container.is_some() {
                            "the container's"
                        } else {
                            "this"
                        },
                        if target != Path::new("/proc") {
                            " (bound read-only)"
                        } else {
                            ""
                        },
                        super::diagnose::unmask_proc_switch(container.map(|c| c.engine))
                    ));
                    if target != Path::new("/proc") {
                        // The lock writes id maps after pivot_root, where this bind is
                        // read-only (EROFS): keep a way into the writable original.
                        let dir = std::fs::OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                            .open("/proc/self")
                            .map_err(io("open /proc/self".into()))?;
                        state.proc_self = Some(dir);
                        sys::mount(
                            Some(Path::new("/proc")),
                            target,
                            None,
                            MsFlags::MS_BIND | MsFlags::MS_REC,
                            None,
                        )?;
                        readonly_recursive(target)?;
                    }
                    Ok(())
                }
                r => r,
            }
        }
        MountOp::Tmpfs { target, mode, size } => {
            mkdir_p(target, 0o755)?;
            let mut data = format!("mode={mode:o}");
            if let Some(s) = size {
                // Empty files take no blocks but kernel memory: bound their number too.
                data.push_str(&format!(",size={s},nr_inodes={}", (s / 4096).max(1024)));
            }
            sys::mount(
                Some(Path::new("tmpfs")),
                target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(&data),
            )
        }
        MountOp::Mkdir { path, mode } => {
            mkdir_p(path, *mode)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .map_err(io(format!("chmod {:o} {}", mode, path.display())))
        }
        MountOp::Bind {
            source,
            target,
            readonly,
            optional,
        } => {
            let meta = match std::fs::metadata(source) {
                Ok(m) => m,
                Err(_) if *optional => return Ok(()),
                Err(e) => return Err(io(format!("stat {}", source.display()))(e)),
            };
            if meta.is_dir() {
                mkdir_p(target, 0o755)?;
            } else {
                touch(target)?;
            }
            sys::mount(
                Some(source),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            if *readonly {
                readonly_recursive(target)?;
            }
            Ok(())
        }
        MountOp::Overlay {
            lower,
            upper,
            work,
            target,
            fallback_copy,
        } => {
            mkdir_p(target, 0o755)?;
            // The layers by descriptor: overlayfs shows its options in /proc/self/mountinfo as
            // given, and the build must not see where the user keeps the sources (nor, with
            // them, the scratch directory's random name). No option escaping is needed either.
            let [l, u, w] = [lower, upper, work].map(|p| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                    .open(p)
                    .map_err(io(format!("open {}", p.display())))
            });
            let (l, u, w) = (l?, u?, w?);
            // overlayfs in a user namespace needs `userxattr` (Linux 5.11, KF-OVERLAY-USERNS).
            let data = format!(
                "lowerdir=/proc/self/fd/{},upperdir=/proc/self/fd/{},workdir=/proc/self/fd/{},\
                 userxattr",
                l.as_raw_fd(),
                u.as_raw_fd(),
                w.as_raw_fd()
            );
            let mounted = sys::mount(
                Some(Path::new("overlay")),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(&data),
            );
            match mounted {
                Err(e)
                    if *fallback_copy
                        && matches!(e.errno, Errno::EPERM | Errno::EINVAL | Errno::ENODEV) =>
                {
                    warnings.push(format!(
                        "overlayfs refused ({e}); copying the sources instead"
                    ));
                    crate::fsutil::copy_tree(lower, upper).map_err(|e| SysError {
                        call: format!("copy {} to {}", lower.display(), upper.display()),
                        errno: sys::io_errno(&e),
                    })?;
                    sys::mount(
                        Some(upper),
                        target,
                        None,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None,
                    )
                }
                r => r,
            }
        }
        MountOp::Symlink { target, path } => {
            if let Some(parent) = path.parent() {
                mkdir_p(parent, 0o755)?;
            }
            std::os::unix::fs::symlink(target, path).map_err(io(format!(
                "symlink {} -> {}",
                path.display(),
                target.display()
            )))
        }
        MountOp::Device { source, target } => {
            touch(target)?;
            sys::mount(Some(source), target, None, MsFlags::MS_BIND, None)
        }
        MountOp::Devpts { target } => {
            mkdir_p(target, 0o755)?;
            sys::mount(
                Some(Path::new("devpts")),
                target,
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=620"),
            )
        }
        MountOp::PivotRoot { new_root } => {
            // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
            // only the new tree (pivot_root(2), "NOTES").
            sys::chdir(new_root)?;
            sys::pivot_root(Path::new("."), Path::new("."))?;
            sys::umount(Path::new("."), MntFlags::MNT_DETACH)?;
            sys::chdir(Path::new("/"))
        }
        MountOp::RemountReadonly { target } => remount_readonly(target),
        MountOp::Lock { uts } => {
            let (uid, gid) = sys::ids();
            let mut flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
            if *uts {
                flags |= CloneFlags::CLONE_NEWUTS;
            }
            // The mounts copied into a mount namespace owned by a less privileged user
            // namespace are locked (mount_namespaces(7)); our root maps to the same root, so
            // files and recorded ownership look the same from inside.
            sys::unshare(flags)?;
            let dir = match &state.proc_self {
                // The magic link leads into the writable procfs (its mount, not the bind's).
                Some(f) => PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
                None => PathBuf::from("/proc/self"),
            };
            sys::write_single_id_map_in(&dir, uid, gid)
        }
    }
}

/// Makes `target` and every mount below it read-only: mount_setattr(2) with AT_RECURSIVE
/// (Linux 5.12); before that, a remount of each, found in /proc/self/mountinfo.
fn readonly_recursive(target: &Path) -> Result<(), SysError> {
    match sys::make_readonly_recursive(target) {
        Err(e) if e.errno == Errno::ENOSYS => {
            remount_readonly(target)?;
            let info = std::fs::read_to_string("/proc/self/mountinfo")
                .map_err(io("read /proc/self/mountinfo".into()))?;
            for point in mount_points_below(&info, target) {
                remount_readonly(&point)?;
            }
            Ok(())
        }
        r => r,
    }
}

/// The mount points of `mountinfo` (proc(5)) strictly below `dir`, in mount order.
fn mount_points_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(OsString::from_vec(unescape_mountinfo(p))))
        .filter(|p| p != dir && p.starts_with(dir))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash...).
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// KF-RO-REMOUNT: the remount must repeat the locked flags of the mount or it is EPERM.
fn remount_readonly(target: &Path) -> Result<(), SysError> {
    let locked = sys::locked_mount_flags(target)?;
    sys::mount(
        None,
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_below_a_dir_unescaped() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 0:5 / /r/usr rw - ext4 /dev/sda1 rw\n\
                    31 30 0:6 / /r/usr/src rw - tmpfs tmpfs rw\n\
                    32 30 0:7 / /r/usr/my\\040dir rw - tmpfs tmpfs rw\n\
                    33 22 0:8 / /r/usrx rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points_below(info, Path::new("/r/usr")),
            [PathBuf::from("/r/usr/src"), PathBuf::from("/r/usr/my dir")]
        );
    }
}
