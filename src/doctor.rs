//! `nsroot doctor`: one line per kernel or host feature nsroot uses, ok or the fix.
//!
//! Each check runs in a forked child (namespaces cannot be left once entered), which reports
//! back over a pipe.

use std::path::Path;

use crate::sandbox::{diagnose, idmap};
use crate::sys::{self, CloneFlags, MsFlags};

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Ok(detail) or Err(what is wrong and the fix).
    pub result: Result<String, String>,
    /// Whether nsroot's core (run and build) needs it.
    pub required: bool,
}

/// All checks, in the order they are printed.
pub fn checks() -> Vec<Check> {
    let (uid, gid) = sys::ids();
    let base = CloneFlags::CLONE_NEWUSER;
    let enter = move |extra: CloneFlags| -> Result<(), String> {
        sys::unshare(base | extra).map_err(|e| diagnose::unshare_failure(e.errno))?;
        idmap::write_self_map(uid, gid).map_err(|e| e.to_string())
    };
    let release = sys::kernel_release();
    let mut out = vec![Check {
        name: "kernel",
        result: kernel_check(&release),
        required: false,
    }];
    out.push(Check {
        name: "user namespace (caller mapped to root)",
        result: probe(move || enter(CloneFlags::empty())),
        required: true,
    });
    out.push(Check {
        name: "mount namespace",
        result: probe(move || {
            enter(CloneFlags::CLONE_NEWNS)?;
            sys::mount(
                None,
                Path::new("/"),
                None,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None,
            )
            .map_err(|e| e.to_string())
        }),
        required: true,
    });
    out.push(Check {
        name: "pid namespace with a fresh /proc",
        result: probe(move || {
            enter(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
            // Only the first child is in the new pid namespace.
            probe(|| {
                sys::mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
                    .and_then(|_| {
                        sys::mount(
                            Some(Path::new("proc")),
                            Path::new("/proc"),
                            Some("proc"),
                            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                            None,
                        )
                    })
                    .map_err(|e| {
                        format!("{e}: the host's /proc has covered parts (a container?); nsroot falls back to the host's /proc")
                    })
            })
            .map(|_| ())
        }),
        required: true,
    });
    out.push(Check {
        name: "ipc namespace",
        result: probe(move || enter(CloneFlags::CLONE_NEWIPC)),
        required: true,
    });
    out.push(Check {
        name: "network namespace (lo up)",
        result: probe(move || {
            enter(CloneFlags::CLONE_NEWNET)?;
            sys::loopback_up().map_err(|e| e.to_string())
        }),
        required: true,
    });
    out.push(Check {
        name: "uts namespace (hostname)",
        result: probe(move || {
            enter(CloneFlags::CLONE_NEWUTS)?;
            sys::sethostname("nsroot-doctor").map_err(|e| e.to_string())
        }),
        required: true,
    });
    out.push(Check {
        name: "tmpfs in a user namespace",
        result: probe(move || {
            enter(CloneFlags::CLONE_NEWNS)?;
            let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
            sys::mount(
                Some(Path::new("tmpfs")),
                dir.path(),
                Some("tmpfs"),
                MsFlags::empty(),
                None,
            )
            .map_err(|e| e.to_string())
        }),
        required: true,
    });
    out.push(Check {
        name: "overlayfs in a user namespace",
        result: probe(move || {
            let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
            for d in ["lower", "upper", "work", "merged"] {
                std::fs::create_dir(dir.path().join(d)).map_err(|e| format!("mkdir: {e}"))?;
            }
            enter(CloneFlags::CLONE_NEWNS)?;
            let data = format!(
                "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work,userxattr",
                dir.path().display()
            );
            sys::mount(
                Some(Path::new("overlay")),
                &dir.path().join("merged"),
                Some("overlay"),
                MsFlags::empty(),
                Some(&data),
            )
            .map_err(|e| {
                format!("{e}: needs Linux 5.11+; nsroot build falls back to copying the sources")
            })
        }),
        required: false,
    });
    out.push(Check {
        name: "time namespace (nsroot repro shifts the sandbox's clocks)",
        result: probe(move || {
            enter(CloneFlags::empty())?;
            sys::unshare_time()
                .and_then(|_| sys::set_time_offsets(86_400))
                .map_err(|e| {
                    format!("{e}: needs Linux 5.6+ and user.max_time_namespaces > 0; repro then runs with the host's clocks")
                })
        }),
        required: false,
    });
    out.push(Check {
        name: "newuidmap/newgidmap and subuid ranges (--map-auto)",
        result: match idmap::auto_map(uid, gid) {
            Ok(crate::sandbox::plan::IdMap::Auto { subuid, subgid, .. }) => Ok(format!(
                "subuids {}+{}, subgids {}+{}",
                subuid.0, subuid.1, subgid.0, subgid.1
            )),
            Ok(_) => Ok(String::new()),
            Err(e) => Err(format!("{e} (only --map-auto needs this)")),
        },
        required: false,
    });
    out.push(Check {
        name: "ownership emulation (seccomp user notification)",
        // In a child: it starts a supervisor thread, and this process stays single-threaded.
        result: probe(crate::ownership::emulation_available).map_err(|e| {
            format!(
                "{e}; without it chown to other ids fails as in a plain user namespace: \
                 run `nsroot --no-emulate`, which works without it"
            )
        }),
        required: false,
    });
    out.push(Check {
        name: "fakeroot on PATH",
        result: fakeroot_on_path(),
        required: false,
    });
    out.push(Check {
        name: "emulated ABIs",
        result: Ok(format!(
            "{}; programs of any other ABI are killed, x32 calls get ENOSYS",
            crate::sys::abi::supported_names().join(", ")
        )),
        required: false,
    });
    out
}

fn kernel_check(release: &str) -> Result<String, String> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (5, 11) {
        Ok(release.to_string())
    } else {
        Err(format!(
            "{release}: older than 5.11, so overlayfs in a user namespace and seccomp \
             notification features are missing; upgrade the kernel for full function"
        ))
    }
}

/// Which `fakeroot` a tool would find, and whether it is this nsroot.
fn fakeroot_on_path() -> Result<String, String> {
    let Some(found) = crate::fsutil::which("fakeroot") else {
        return Err(
            "none; `nsroot install-fakeroot ~/.local/bin` makes nsroot the fakeroot of \
                    makepkg, abuild and others"
                .to_string(),
        );
    };
    let real = found.canonicalize().unwrap_or_else(|_| found.clone());
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    if me.as_deref() == Some(real.as_path()) {
        Ok(format!("{} is this nsroot", found.display()))
    } else {
        Ok(format!(
            "{} is another program ({}); `nsroot install-fakeroot DIR` with DIR first on PATH \
             makes nsroot the one tools find",
            found.display(),
            real.display()
        ))
    }
}

/// Runs `f` in a forked child and returns what it reported.
fn probe<F: FnOnce() -> Result<(), String>>(f: F) -> Result<String, String> {
    let (mut tx, mut rx) =
        crate::sandbox::channel::pair::<Result<(), String>>().map_err(|e| e.to_string())?;
    // SAFETY: doctor runs single-threaded; the probe child ends in `exit_now`.
    match unsafe { sys::fork() }.map_err(|e| e.to_string())? {
        sys::Forked::Child => {
            drop(rx);
            let sent = tx.send(&f());
            sys::exit_now(i32::from(sent.is_err()))
        }
        sys::Forked::Parent(pid) => {
            drop(tx);
            let answer = rx.recv();
            let st = sys::wait(pid).map_err(|e| e.to_string())?;
            match answer {
                Ok(Some(Ok(()))) => Ok(String::new()),
                Ok(Some(Err(e))) => Err(e),
                _ => Err(format!(
                    "the check's process died (status {:?})",
                    sys::exit_code(&st)
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert!(kernel_check("6.18.44-fc").is_ok());
        assert!(kernel_check("5.11.0").is_ok());
        assert!(kernel_check("5.10.200").is_err());
        assert!(kernel_check("4.19.0-amd64").is_err());
    }
}
