//! The sandbox plan: plain data saying which namespaces to create, how ids map and which
//! mount steps pid 1 performs, in order. Printed by `--verbose`, unit-tested without privileges.

use std::fmt;
use std::path::PathBuf;

/// How ids inside map to ids outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    /// The caller alone, as root: `0 <uid> 1` and `0 <gid> 1`, written by nsroot itself.
    Single { uid: u32, gid: u32 },
    /// The caller as root plus a subordinate range through newuidmap/newgidmap.
    Auto {
        uid: u32,
        gid: u32,
        subuid: (u32, u32),
        subgid: (u32, u32),
    },
}

/// One mount-namespace step, executed by pid 1 in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// `mount --make-rprivate /`: nothing propagates back to the host (mount_namespaces(7)).
    MakePrivate,
    /// A fresh procfs at `target` for the new pid namespace; when `fallback` and the kernel
    /// refuses (KF-PROC-MOUNT), the host's /proc serves instead (bound read-only when
    /// `target` is elsewhere), with a warning.
    Proc { target: PathBuf, fallback: bool },
    /// A tmpfs at `target`.
    Tmpfs {
        target: PathBuf,
        mode: u32,
        /// The limit in bytes (and one inode per 4 KiB of it): ENOSPC past it.
        size: Option<u64>,
    },
    /// Creates a directory (and parents) if missing.
    Mkdir { path: PathBuf, mode: u32 },
    /// Bind `source` onto `target` (recursively), read-only if asked: then every mount below
    /// `target` is read-only too.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        optional: bool,
    },
    /// An overlay of `lower` with a writable `upper` at `target`; where the kernel refuses
    /// overlayfs in a user namespace (before 5.11) and `fallback_copy`, `lower` is copied into
    /// `upper` and that is bound at `target` instead.
    Overlay {
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
        fallback_copy: bool,
    },
    /// Creates a symlink `path` -> `target`.
    Symlink { target: PathBuf, path: PathBuf },
    /// Binds a host device node (e.g. /dev/null) onto an empty file at `target`.
    Device { source: PathBuf, target: PathBuf },
    /// A new devpts instance at `target` with /dev/ptmx pointing into it.
    Devpts { target: PathBuf },
    /// `pivot_root` into `new_root`, then detach the old root.
    PivotRoot { new_root: PathBuf },
    /// Remount `target` read-only (keeping its locked flags).
    RemountReadonly { target: PathBuf },
    /// Lock every mount made so far: enter a nested user namespace (mapping root to root) and
    /// a new mount namespace owned by it, so the kernel marks the copied mounts locked
    /// (MNT_LOCK_READONLY and friends, MNT_LOCKED): the steps, root only in the nested
    /// namespace, can neither remount them read-write nor unmount them (mount_namespaces(7),
    /// "Restrictions on mount namespaces"). With `uts`, a UTS namespace too, so the steps may
    /// still set the sandbox's hostname.
    Lock { uts: bool },
}

/// Where the sources are built, inside the build sandbox.
pub const BUILD_SRC: &str = "/build/src";
/// Where the install steps write (`$DESTDIR`), inside the build sandbox.
pub const BUILD_DESTDIR: &str = "/build/destdir";
/// `$HOME` inside the build sandbox.
pub const BUILD_HOME: &str = "/build/home";
/// The hostname of every build (KF-REPRO-ARCHIVE).
pub const BUILD_HOSTNAME: &str = "nsroot";
/// Host directories a build sees, read-only (or as the same symlinks).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

/// The size limit of each of a build's tmpfs mounts (`/tmp`, `/build/home`, `/dev/shm`) unless
/// the recipe or `--tmpfs-size` says otherwise: without one, each could take half of the
/// machine's memory, and one build could push it into the OOM killer.
pub const DEFAULT_TMPFS_SIZE: u64 = 1 << 30;
/// The smallest limit accepted.
const MIN_TMPFS_SIZE: u64 = 1 << 20;

/// Parses a size such as `512M`, `4G`, `1048576` (K, M, G, T: powers of 1024; an optional
/// trailing `B` or `iB`), at least 1 MiB.
///
/// Errors: a message saying what is wrong with it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let not_a_size = || format!("{text:?}: not a size (say 512M or 4G)");
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            if !t[..i].bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_a_size());
            }
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| not_a_size())?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))?;
    if bytes < MIN_TMPFS_SIZE {
        return Err(format!("{text:?}: at least 1M"));
    }
    Ok(bytes)
}

/// Host paths of a build's scratch space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLayout {
    /// Mount point of the new root (an empty directory).
    pub root: PathBuf,
    /// The sources (never written: the overlay's lower layer).
    pub source: PathBuf,
    /// Overlay upper and work directories (same filesystem).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The output tree, bound at [`BUILD_DESTDIR`].
    pub destdir: PathBuf,
    /// Where the sources appear inside: [`BUILD_SRC`], except in `nsroot repro`'s runs that
    /// vary the build path.
    pub src_target: PathBuf,
    /// Keep the host's network (`--net`); otherwise a network namespace with only `lo`.
    pub host_network: bool,
    /// The size limit of each tmpfs (`/tmp`, `/build/home`, `/dev/shm`), in bytes.
    pub tmpfs_size: u64,
}

impl BuildLayout {
    /// The tmpfs mounts with a size limit, as the steps see them: where a failed step may have
    /// run out of space.
    pub fn sized_mounts() -> [&'static str; 3] {
        ["/tmp", BUILD_HOME, "/dev/shm"]
    }
}

/// Everything the sandbox sets up before the first command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id_map: IdMap,
    /// A network namespace with only `lo`, brought up.
    pub own_network: bool,
    /// A UTS namespace with this hostname.
    pub hostname: Option<String>,
    /// Mount steps, in order.
    pub mounts: Vec<MountOp>,
    /// A time namespace whose CLOCK_MONOTONIC and CLOCK_BOOTTIME run this many seconds ahead
    /// of the host's (`nsroot repro` varies it; CLOCK_REALTIME cannot be shifted). Where the
    /// kernel refuses the namespace, the sandbox goes on without it and warns.
    pub time_offset_secs: Option<i64>,
}

impl Plan {
    /// The plan of `nsroot run`: the host filesystem as it is, a private mount tree, a fresh
    /// /proc for the new pid namespace.
    pub fn for_run(id_map: IdMap, own_network: bool, hostname: Option<String>) -> Plan {
        Plan {
            id_map,
            own_network,
            hostname,
            time_offset_secs: None,
            mounts: vec![
                MountOp::MakePrivate,
                MountOp::Proc {
                    target: "/proc".into(),
                    fallback: true,
                },
            ],
        }
    }

    /// The plan of `nsroot build`: a new root on a tmpfs holding the host's system directories
    /// read-only, the sources as an overlay at [`BUILD_SRC`], the output tree at
    /// [`BUILD_DESTDIR`], private /tmp and home, a minimal /dev and a fresh /proc; then
    /// pivot_root, the root made read-only, and every mount locked.
    pub fn for_build(id_map: IdMap, layout: &BuildLayout) -> Plan {
        let root = &layout.root;
        let inside = |p: &str| root.join(p.trim_start_matches('/'));
        let mut m = vec![
            MountOp::MakePrivate,
            MountOp::Tmpfs {
                target: root.clone(),
                mode: 0o755,
                size: None,
            },
        ];
        // Merged-/usr systems have /bin, /lib... as symlinks into /usr: keep them symlinks.
        for dir in SYSTEM_DIRS {
            let host = PathBuf::from(dir);
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&host) {
                        m.push(MountOp::Symlink {
                            target,
                            path: inside(dir),
                        });
                    }
                }
                Ok(meta) if meta.is_dir() => m.push(MountOp::Bind {
                    source: host,
                    target: inside(dir),
                    readonly: true,
                    optional: true,
                }),
                _ => {}
            }
        }
        m.push(MountOp::Overlay {
            lower: layout.source.clone(),
            upper: layout.upper.clone(),
            work: layout.work.clone(),
            target: inside(&layout.src_target.to_string_lossy()),
            fallback_copy: true,
        });
        m.push(MountOp::Bind {
            source: layout.destdir.clone(),
            target: inside(BUILD_DESTDIR),
            readonly: false,
            optional: false,
        });
        m.push(MountOp::Tmpfs {
            target: inside("/tmp"),
            mode: 0o1777,
            size: Some(layout.tmpfs_size),
        });
        m.push(MountOp::Tmpfs {
            target: inside(BUILD_HOME),
            mode: 0o755,
            size: Some(layout.tmpfs_size),
        });
        m.push(MountOp::Mkdir {
            path: inside("/dev"),
            mode: 0o755,
        });
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            m.push(MountOp::Device {
                source: PathBuf::from("/dev").join(dev),
                target: inside("/dev").join(dev),
            });
        }
        m.push(MountOp::Devpts {
            target: inside("/dev/pts"),
        });
        m.push(MountOp::Tmpfs {
            target: inside("/dev/shm"),
            mode: 0o1777,
            size: Some(layout.tmpfs_size),
        });
        for (name, target) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            m.push(MountOp::Symlink {
                target: target.into(),
                path: inside("/dev").join(name),
            });
        }
        // procfs must be mounted while a fully visible /proc is still in this mount
        // namespace, i.e. before pivot_root drops the host's (mount_too_revealing()).
        m.push(MountOp::Proc {
            target: inside("/proc"),
            fallback: true,
        });
        m.push(MountOp::PivotRoot {
            new_root: root.clone(),
        });
        m.push(MountOp::RemountReadonly { target: "/".into() });
        // Last: what is mounted after the lock is not locked.
        m.push(MountOp::Lock { uts: true });
        Plan {
            id_map,
            own_network: !layout.host_network,
            hostname: Some(BUILD_HOSTNAME.into()),
            mounts: m,
            time_offset_secs: None,
        }
    }

    /// The namespaces this plan unshares, as names (for messages and `--verbose`).
    pub fn namespace_names(&self) -> Vec<&'static str> {
        let mut v = vec!["user", "mount", "pid", "ipc"];
        if self.own_network {
            v.push("net");
        }
        if self.hostname.is_some() {
            v.push("uts");
        }
        if self.time_offset_secs.is_some() {
            v.push("time");
        }
        v
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "namespaces: {}", self.namespace_names().join(", "))?;
        match &self.id_map {
            IdMap::Single { uid, gid } => {
                writeln!(f, "uid_map: 0 {uid} 1; gid_map: 0 {gid} 1 (setgroups deny)")?
            }
            IdMap::Auto {
                uid,
                gid,
                subuid,
                subgid,
            } => writeln!(
                f,
                "uid_map: 0 {uid} 1, 1 {} {} (newuidmap); gid_map: 0 {gid} 1, 1 {} {} (newgidmap)",
                subuid.0, subuid.1, subgid.0, subgid.1
            )?,
        }
        if self.own_network {
            writeln!(f, "network: own namespace, lo up")?;
        }
        if let Some(h) = &self.hostname {
            writeln!(f, "hostname: {h}")?;
        }
        if let Some(secs) = self.time_offset_secs {
            writeln!(
                f,
                "clocks: monotonic and boottime {secs:+} s (time namespace; the wall clock is the host's)"
            )?;
        }
        for (i, m) in self.mounts.iter().enumerate() {
            writeln!(f, "mount {}: {}", i + 1, describe(m))?;
        }
        Ok(())
    }
}

impl fmt::Display for MountOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}

fn describe(m: &MountOp) -> String {
    match m {
        MountOp::MakePrivate => "make / recursively private".into(),
        MountOp::Proc { target, .. } => format!("fresh proc on {}", target.display()),
        MountOp::Tmpfs { target, mode, size } => format!(
            "tmpfs on {} (mode {mode:o}{})",
            target.display(),
            size.as_ref()
                .map(|s| format!(", size {s}"))
                .unwrap_or_default()
        ),
        MountOp::Mkdir { path, mode } => format!("mkdir {} (mode {mode:o})", path.display()),
        MountOp::Bind {
            source,
            target,
            readonly,
            ..
        } => format!(
            "bind {} on {}{}",
            source.display(),
            target.display(),
            if *readonly { " read-only" } else { "" }
        ),
        MountOp::Overlay {
            lower,
            upper,
            target,
            ..
        } => format!(
            "overlay on {} (lower {}, upper {})",
            target.display(),
            lower.display(),
            upper.display()
        ),
        MountOp::Symlink { target, path } => {
            format!("symlink {} -> {}", path.display(), target.display())
        }
        MountOp::Device { source, target } => {
            format!("device {} on {}", source.display(), target.display())
        }
        MountOp::Devpts { target } => format!("devpts on {}", target.display()),
        MountOp::PivotRoot { new_root } => format!("pivot_root into {}", new_root.display()),
        MountOp::RemountReadonly { target } => format!("remount {} read-only", target.display()),
        MountOp::Lock { uts } => format!(
            "lock the mounts (nested user{} namespace, root mapped to root)",
            if *uts {
                ", mount and uts"
            } else {
                " and mount"
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_plan_makes_root_private_before_proc() {
        let p = Plan::for_run(
            IdMap::Single {
                uid: 1000,
                gid: 1000,
            },
            false,
            None,
        );
        assert_eq!(p.mounts[0], MountOp::MakePrivate);
        assert!(matches!(p.mounts[1], MountOp::Proc { .. }));
        assert_eq!(p.namespace_names(), ["user", "mount", "pid", "ipc"]);
    }

    #[test]
    fn display_names_maps_and_optional_namespaces() {
        let p = Plan::for_run(
            IdMap::Single {
                uid: 1000,
                gid: 100,
            },
            true,
            Some("box".into()),
        );
        let s = p.to_string();
        assert!(
            s.contains("namespaces: user, mount, pid, ipc, net, uts"),
            "{s}"
        );
        assert!(s.contains("uid_map: 0 1000 1; gid_map: 0 100 1"), "{s}");
        assert!(s.contains("hostname: box"), "{s}");
        assert!(s.contains("mount 1: make / recursively private"), "{s}");
        assert!(
            !s.contains("clocks:"),
            "no time namespace unless asked: {s}"
        );
    }

    #[test]
    fn a_clock_offset_adds_a_time_namespace() {
        let mut p = Plan::for_build(IdMap::Single { uid: 1, gid: 1 }, &layout());
        assert_eq!(
            p.time_offset_secs, None,
            "builds shift no clock unless asked"
        );
        assert!(!p.namespace_names().contains(&"time"));
        p.time_offset_secs = Some(259_261);
        assert!(p.namespace_names().contains(&"time"));
        assert!(
            p.to_string()
                .contains("clocks: monotonic and boottime +259261 s"),
            "{p}"
        );
    }

    fn layout() -> BuildLayout {
        BuildLayout {
            root: "/s/root".into(),
            source: "/home/u/src".into(),
            upper: "/s/upper".into(),
            work: "/s/work".into(),
            destdir: "/s/destdir".into(),
            src_target: BUILD_SRC.into(),
            host_network: false,
            tmpfs_size: DEFAULT_TMPFS_SIZE,
        }
    }

    #[test]
    fn build_tmpfs_mounts_have_a_size_limit() {
        let p = Plan::for_build(IdMap::Single { uid: 1, gid: 1 }, &layout());
        for m in BuildLayout::sized_mounts() {
            let target = std::path::Path::new("/s/root").join(m.trim_start_matches('/'));
            let found = p.mounts.iter().find_map(|op| match op {
                MountOp::Tmpfs {
                    target: t, size, ..
                } if *t == target => Some(*size),
                _ => None,
            });
            assert_eq!(found, Some(Some(DEFAULT_TMPFS_SIZE)), "{m}");
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2097152"), Ok(2 << 20));
        assert!(parse_size("1K").unwrap_err().contains("at least 1M"));
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn build_plan_seals_the_root() {
        let p = Plan::for_build(IdMap::Single { uid: 1, gid: 1 }, &layout());
        assert_eq!(p.mounts[0], MountOp::MakePrivate);
        assert!(p.own_network, "no network unless asked");
        assert_eq!(p.hostname.as_deref(), Some(BUILD_HOSTNAME));
        let pos = |f: &dyn Fn(&MountOp) -> bool| p.mounts.iter().position(f).unwrap();
        let proc = pos(&|m| matches!(m, MountOp::Proc { .. }));
        let pivot = pos(&|m| matches!(m, MountOp::PivotRoot { .. }));
        let ro = pos(&|m| matches!(m, MountOp::RemountReadonly { .. }));
        let lock = pos(&|m| matches!(m, MountOp::Lock { .. }));
        assert!(
            proc < pivot && pivot < ro && ro < lock,
            "proc before pivot, read-only root, then the lock"
        );
        assert_eq!(lock, p.mounts.len() - 1, "nothing mounted after the lock");
        assert_eq!(p.mounts[lock], MountOp::Lock { uts: true });
        // The sources are only ever the overlay's lower layer, never bound writable.
        for m in &p.mounts {
            if let MountOp::Bind {
                source, readonly, ..
            } = m
            {
                assert!(source != &layout().source, "sources bound directly: {m:?}");
                if source.starts_with("/usr") || source.starts_with("/etc") {
                    assert!(readonly, "{m:?}");
                }
            }
        }
        assert!(p
            .mounts
            .iter()
            .any(|m| matches!(m, MountOp::Overlay { lower, target, .. }
            if lower == &layout().source && target == &PathBuf::from("/s/root/build/src"))));
        assert!(p.mounts.iter().any(
            |m| matches!(m, MountOp::Bind { source, target, readonly: false, .. }
            if source == &layout().destdir && target == &PathBuf::from("/s/root/build/destdir"))
        ));
        let with_net = Plan::for_build(
            IdMap::Single { uid: 1, gid: 1 },
            &BuildLayout {
                host_network: true,
                ..layout()
            },
        );
        assert!(!with_net.own_network);
    }
}
