//! Executes the mount steps of a plan, in pid 1, one short kernel sequence each.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::plan::MountOp;
use crate::sys::{self, Errno, MntFlags, MsFlags, SysError};

/// A mount step that failed, with the step and the call.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct MountError {
    /// The step, as `--verbose` prints it.
    pub step: String,
    #[source]
    pub source: SysError,
}

/// Runs `ops` in order; returns warnings about fallbacks taken.
pub fn execute(ops: &[MountOp]) -> Result<Vec<String>, MountError> {
    let mut warnings = Vec::new();
    for op in ops {
        apply(op, &mut warnings).map_err(|source| MountError {
            step: op.to_string(),
            source,
        })?;
    }
    Ok(warnings)
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

fn apply(op: &MountOp, warnings: &mut Vec<String>) -> Result<(), SysError> {
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
                // KERNEL-NOTES 7: refused where the host's /proc is partly covered (some
                // containers); the inherited /proc still works but shows host processes.
                Err(e) if *fallback && matches!(e.errno, Errno::EPERM | Errno::EACCES) => {
                    warnings.push(format!(
                        "cannot mount a fresh /proc ({e}); using the host's /proc, which shows host processes"
                    ));
                    if target != Path::new("/proc") {
                        sys::mount(
                            Some(Path::new("/proc")),
                            target,
                            None,
                            MsFlags::MS_BIND | MsFlags::MS_REC,
                            None,
                        )?;
                        remount_readonly(target)?;
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
                data.push_str(&format!(",size={s}"));
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
                remount_readonly(target)?;
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
            // overlayfs in a user namespace needs `userxattr` (Linux 5.11, KERNEL-NOTES 11).
            let data = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                escape_overlay(lower),
                escape_overlay(upper),
                escape_overlay(work)
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
    }
}

/// KERNEL-NOTES 10: the remount must repeat the locked flags of the mount or it is EPERM.
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

/// Escapes the characters overlayfs's option parser treats specially (`\`, `,`, `:`).
fn escape_overlay(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
