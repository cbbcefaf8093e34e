//! `nsroot doctor`: one line per kernel or host feature nsroot uses, ok or the fix.
//!
//! Each check runs in a forked child (namespaces cannot be left once entered), which reports
//! back over a pipe.

use std::path::Path;

use crate::sandbox::diagnose::{self, Engine};
use crate::sandbox::{idmap, plan::BUILD_HOSTNAME};
use crate::sys::{self, CloneFlags, Errno, MsFlags};

/// How a feature came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It works as nsroot wants.
    Works,
    /// It does not, but nsroot falls back (the detail says to what) and goes on.
    Degraded,
    /// It does not, and what needs it fails (the detail or the fix says how to mend it).
    Broken,
}

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    pub status: Status,
    /// Whether nsroot's core (run and build) needs it.
    pub required: bool,
    /// What was found; for a degraded feature what nsroot falls back to, for a broken one
    /// what is wrong.
    pub detail: String,
    /// The exact change that makes it work, where one is known and not already in `detail`.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, required: bool, result: Result<String, String>) -> Check {
        let (status, detail) = match result {
            Ok(d) => (Status::Works, d),
            Err(d) => (Status::Broken, d),
        };
        Check {
            name,
            status,
            required,
            detail,
            fix: None,
        }
    }

    fn degraded(name: &'static str, required: bool, detail: String, fix: String) -> Check {
        Check {
            name,
            status: Status::Degraded,
            required,
            detail,
            fix: Some(fix),
        }
    }

    /// True for a required feature that is broken: nsroot cannot run here.
    pub fn blocks(&self) -> bool {
        self.required && self.status == Status::Broken
    }
}

/// All checks, in the order they are printed.
pub fn checks() -> Vec<Check> {
    let (uid, gid) = sys::ids();
    let base = CloneFlags::CLONE_NEWUSER;
    let enter = move |extra: CloneFlags| -> Result<(), String> {
        sys::unshare(base | extra).map_err(|e| diagnose::unshare_failure(e.errno))?;
        idmap::write_self_map(uid, gid).map_err(|e| e.to_string())
    };
    let container = diagnose::container();
    let engine = container.as_ref().map(|c| c.engine);
    let release = sys::kernel_release();
    let mut out = vec![Check::new("kernel", false, kernel_check(&release))];
    out.push(Check::new(
        "container",
        false,
        Ok(match &container {
            Some(c) => format!("{} ({})", engine_name(c.engine), c.evidence),
            None => "none detected".into(),
        }),
    ));
    out.push(Check::new(
        USERNS,
        true,
        probe(move || enter(CloneFlags::empty())),
    ));
    out.push(seccomp_check(engine));
    out.push(Check::new(
        "mount namespace",
        true,
        probe(move || {
            enter(CloneFlags::CLONE_NEWNS)?;
            make_root_private().map_err(|e| e.to_string())
        }),
    ));
    out.push(proc_check(enter, container.is_some(), engine));
    out.push(Check::new(
        "ipc namespace",
        true,
        probe(move || enter(CloneFlags::CLONE_NEWIPC)),
    ));
    out.push(Check::new(
        "network namespace (lo up)",
        true,
        probe(move || {
            enter(CloneFlags::CLONE_NEWNET)?;
            sys::loopback_up().map_err(|e| e.to_string())
        }),
    ));
    out.push(uts_check(enter));
    out.push(Check::new(
        "tmpfs in a user namespace",
        true,
        probe(move || {
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
    ));
    let overlay = probe(move || {
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
        .map_err(|e| e.to_string())
    });
    out.push(match overlay {
        Ok(d) => Check::new("overlayfs in a user namespace", false, Ok(d)),
        Err(e) => Check::degraded(
            "overlayfs in a user namespace",
            false,
            format!("{e}; nsroot build copies the sources instead"),
            "Linux 5.11 or later".into(),
        ),
    });
    let time = probe(move || {
        enter(CloneFlags::empty())?;
        sys::unshare_time()
            .and_then(|_| sys::set_time_offsets(86_400))
            .map_err(|e| e.to_string())
    });
    out.push(match time {
        Ok(d) => Check::new(
            "time namespace (nsroot repro shifts the sandbox's clocks)",
            false,
            Ok(d),
        ),
        Err(e) => Check::degraded(
            "time namespace (nsroot repro shifts the sandbox's clocks)",
            false,
            format!("{e}; repro then runs with the host's clocks"),
            "Linux 5.6 or later and user.max_time_namespaces > 0".into(),
        ),
    });
    out.push(Check::new(
        "newuidmap/newgidmap and subuid ranges (--map-auto)",
        false,
        match idmap::auto_map(uid, gid) {
            Ok(crate::sandbox::plan::IdMap::Auto { subuid, subgid, .. }) => Ok(format!(
                "subuids {}+{}, subgids {}+{}",
                subuid.0, subuid.1, subgid.0, subgid.1
            )),
            Ok(_) => Ok(String::new()),
            Err(e) => Err(format!("{e} (only --map-auto needs this)")),
        },
    ));
    out.push(emulation_check());
    out.push(ptrace_check());
    out.push(birth_time_check());
    out.push(Check::new("fakeroot on PATH", false, fakeroot_on_path()));
    out.push(Check::new(
        "emulated ABIs",
        false,
        Ok(format!(
            "{}; programs of any other ABI are killed, x32 calls get ENOSYS",
            crate::sys::abi::supported_names().join(", ")
        )),
    ));
    // Without a user namespace every probe that enters one failed at that step: say so once,
    // on the user namespace's line, not as a fallback of each.
    for c in &mut out {
        if c.name != USERNS && c.detail.starts_with(diagnose::UNSHARE_FAILED) {
            c.status = Status::Broken;
            c.detail = format!("not checked: it needs the {USERNS} above");
            c.fix = None;
        }
    }
    out
}

const USERNS: &str = "user namespace (caller mapped to root)";

fn make_root_private() -> Result<(), sys::SysError> {
    sys::mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Podman => "podman",
        Engine::Docker => "docker",
        Engine::Kubernetes => "Kubernetes",
        Engine::Other => "a container",
    }
}

/// A seccomp filter on this process (what container engines install) and which of the calls
/// the sandbox needs it refuses: unshare (fatal), keyctl (the build's own session keyring;
/// a profile that refuses it refuses it the steps too). sethostname has its own line.
fn seccomp_check(engine: Option<Engine>) -> Check {
    const NAME: &str = "seccomp filter on nsroot (a container engine's profile)";
    let (mode, filters) = diagnose::seccomp_mode();
    if mode != 2 {
        return Check::new(NAME, true, Ok("none".into()));
    }
    // In a child, each call as the sandbox makes it; Err names the first one refused.
    let refused = probe(|| {
        sys::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare ({})", e.errno))?;
        sys::join_new_session_keyring().map_err(|e| format!("keyctl ({})", e.errno))
    });
    let found = format!("{filters} filter(s)");
    let switch = diagnose::unconfined_seccomp_switch(engine);
    let broken = |what: String| {
        let mut c = Check::new(NAME, true, Err(format!("{found}; {what}")));
        c.fix = Some(switch.clone());
        c
    };
    match refused {
        Ok(_) => Check::new(
            NAME,
            true,
            Ok(format!("{found}; unshare and keyctl allowed")),
        ),
        Err(r) if r.starts_with("unshare") => {
            broken(format!("it refuses {r}, so no sandbox can be made"))
        }
        // pid 1 goes on where keyctl is ENOSYS: the steps cannot reach any keyring either.
        Err(r) if r.contains("ENOSYS") => Check::new(
            NAME,
            true,
            Ok(format!(
                "{found}; unshare allowed, keyctl refused with ENOSYS, to the steps too: builds \
                 run without a session keyring of their own"
            )),
        ),
        Err(r) => broken(format!(
            "it refuses {r}: nsroot build joins a session keyring of its own and fails"
        )),
    }
}

/// A fresh procfs in a new pid namespace: refused where parts of /proc are covered
/// (KF-PROC-MOUNT), as container engines mask them; nsroot then uses /proc as it is.
fn proc_check(
    enter: impl Fn(CloneFlags) -> Result<(), String> + Copy,
    in_container: bool,
    engine: Option<Engine>,
) -> Check {
    const NAME: &str = "pid namespace with a fresh /proc";
    let fresh = probe(move || {
        enter(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
        // Only the first child is in the new pid namespace.
        probe(|| {
            make_root_private()
                .and_then(|_| {
                    sys::mount(
                        Some(Path::new("proc")),
                        Path::new("/proc"),
                        Some("proc"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                        None,
                    )
                })
                .map_err(|e| e.to_string())
        })
        .map(|_| ())
    });
    match fresh {
        Ok(d) => Check::new(NAME, true, Ok(d)),
        Err(e) if e.contains("EPERM") || e.contains("EACCES") => {
            let covers = diagnose::proc_covers();
            let shown: Vec<&str> = covers.iter().take(6).map(String::as_str).collect();
            let more = covers.len().saturating_sub(shown.len());
            Check::degraded(
                NAME,
                true,
                format!(
                    "{e}: /proc is masked{} ({}{}); nsroot uses {} /proc as it is (bound \
                     read-only in builds), which shows its processes to the steps",
                    if in_container {
                        " by the container engine"
                    } else {
                        ""
                    },
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    if in_container {
                        "the container's"
                    } else {
                        "this"
                    },
                ),
                diagnose::unmask_proc_switch(engine),
            )
        }
        Err(e) => Check::new(NAME, true, Err(e)),
    }
}

/// sethostname in a new UTS namespace: builds set the hostname `nsroot`. A seccomp profile
/// may refuse it; a container that has the name already loses nothing.
fn uts_check(enter: impl Fn(CloneFlags) -> Result<(), String> + Copy) -> Check {
    const NAME: &str = "uts namespace (hostname)";
    let set = probe(move || {
        enter(CloneFlags::CLONE_NEWUTS)?;
        sys::sethostname("nsroot-doctor").map_err(|e| e.to_string())
    });
    match set {
        Err(e) if e.starts_with("sethostname") && e.contains("=> EPERM") => {
            let e = sys::SysError {
                call: "sethostname(\"nsroot-doctor\")".into(),
                errno: Errno::EPERM,
            };
            if sys::hostname() == BUILD_HOSTNAME {
                Check::degraded(
                    NAME,
                    true,
                    format!(
                        "{e}: a seccomp profile refuses sethostname; the hostname is \
                         {BUILD_HOSTNAME} already, which builds keep (`nsroot run --hostname` \
                         with another name fails)"
                    ),
                    diagnose::unconfined_seccomp_switch(diagnose::container().map(|c| c.engine)),
                )
            } else {
                Check::new(
                    NAME,
                    true,
                    Err(format!(
                        "{} (nsroot build needs it; nsroot run without --hostname does not)",
                        diagnose::sethostname_failure(&e, BUILD_HOSTNAME)
                    )),
                )
            }
        }
        r => Check::new(NAME, true, r),
    }
}

/// Seccomp user notification, which ownership emulation is built on (gVisor, WSL1 and
/// kernels before 5.5 lack it).
fn emulation_check() -> Check {
    const NAME: &str = "ownership emulation (seccomp user notification)";
    // In a child: it starts a supervisor thread, and this process stays single-threaded.
    match probe(crate::ownership::emulation_available) {
        Ok(d) => Check::new(NAME, false, Ok(d)),
        Err(e) => {
            let version = std::fs::read_to_string("/proc/version").unwrap_or_default();
            let platform = if version.contains("gVisor") || sys::kernel_release().contains("gvisor")
            {
                " (gVisor has no seccomp user notification)"
            } else if version.contains("Microsoft") {
                " (WSL1 has no seccomp user notification: use WSL2)"
            } else {
                ""
            };
            let mut c = Check::new(
                NAME,
                false,
                Err(format!(
                    "{e}{platform}; without it chown to other ids fails as in a plain user \
                     namespace, and nsroot build cannot record ownership"
                )),
            );
            c.fix = Some(
                "Linux 5.5 or later, or run `nsroot --no-emulate`, which works without it".into(),
            );
            c
        }
    }
}

/// Yama's `kernel.yama.ptrace_scope`: the supervisor reads its targets' memory
/// (process_vm_readv, a ptrace access check). The targets are its descendants, which scope 1
/// allows; 3 forbids every process.
fn ptrace_check() -> Check {
    const NAME: &str = "kernel.yama.ptrace_scope (the supervisor reads the steps' memory)";
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().to_string());
    match scope.as_deref() {
        None => Check::new(NAME, false, Ok("no Yama here: nothing restricts it".into())),
        Some("0") => Check::new(NAME, false, Ok("0".into())),
        Some("1") => Check::new(
            NAME,
            false,
            Ok("1 (descendants only): the steps are the supervisor's descendants".into()),
        ),
        Some("2") => Check::new(
            NAME,
            false,
            Ok(
                "2 (CAP_SYS_PTRACE): the supervisor holds it in the sandbox's user namespace; \
                the emulation line above is the proof"
                    .into(),
            ),
        ),
        Some(v) => {
            let mut c = Check::new(
                NAME,
                false,
                Err(format!(
                    "{v}: no process may read another's memory, so ownership emulation cannot \
                     work; `nsroot --no-emulate` still runs"
                )),
            );
            c.fix = Some(
                "scope 3 cannot be lowered until reboot: set kernel.yama.ptrace_scope = 1 in \
                 /etc/sysctl.d/ and reboot"
                    .into(),
            );
            c
        }
    }
}

/// Birth times (statx STATX_BTIME) on the working directory's filesystem: records are keyed
/// by device, inode and birth time (KF-INODE-REUSE).
fn birth_time_check() -> Check {
    const NAME: &str = "birth times on the working directory's filesystem";
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    match std::fs::metadata(&cwd) {
        Ok(m) if crate::ownership::Btime::of(&m).is_some() => Check::new(
            NAME,
            false,
            Ok(format!(
                "{}: records are keyed by device, inode and birth time",
                cwd.display()
            )),
        ),
        Ok(_) => Check::degraded(
            NAME,
            false,
            format!(
                "{} reports none: records made here are keyed by device and inode alone, so \
                 a record can pass to a file that reuses a deleted file's inode number",
                cwd.display()
            ),
            "work on a filesystem with birth times (ext4, xfs, btrfs, tmpfs on Linux 5.19+)".into(),
        ),
        Err(e) => Check::new(NAME, false, Err(format!("stat {}: {e}", cwd.display()))),
    }
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
