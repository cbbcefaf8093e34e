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
    /// refuses (KERNEL-NOTES 7), keep the inherited /proc and warn.
    Proc { target: PathBuf, fallback: bool },
    /// A tmpfs at `target`.
    Tmpfs {
        target: PathBuf,
        mode: u32,
        size: Option<String>,
    },
    /// Creates a directory (and parents) if missing.
    Mkdir { path: PathBuf, mode: u32 },
    /// Bind `source` onto `target` (recursively), read-only if asked.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        optional: bool,
    },
    /// An overlay of `lower` with a writable `upper` at `target`.
    Overlay {
        lower: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
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
}

/// Everything the sandbox sets up before the first command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id_map: IdMap,
    /// A network namespace with only `lo`, brought up.
    pub net: bool,
    /// A UTS namespace with this hostname.
    pub hostname: Option<String>,
    /// Mount steps, in order.
    pub mounts: Vec<MountOp>,
}

impl Plan {
    /// The plan of `nsroot run`: the host filesystem as it is, a private mount tree, a fresh
    /// /proc for the new pid namespace.
    pub fn for_run(id_map: IdMap, net: bool, hostname: Option<String>) -> Plan {
        Plan {
            id_map,
            net,
            hostname,
            mounts: vec![
                MountOp::MakePrivate,
                MountOp::Proc {
                    target: "/proc".into(),
                    fallback: true,
                },
            ],
        }
    }

    /// The namespaces this plan unshares, as names (for messages and `--verbose`).
    pub fn namespace_names(&self) -> Vec<&'static str> {
        let mut v = vec!["user", "mount", "pid", "ipc"];
        if self.net {
            v.push("net");
        }
        if self.hostname.is_some() {
            v.push("uts");
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
        if self.net {
            writeln!(f, "network: own namespace, lo up")?;
        }
        if let Some(h) = &self.hostname {
            writeln!(f, "hostname: {h}")?;
        }
        for (i, m) in self.mounts.iter().enumerate() {
            writeln!(f, "mount {}: {}", i + 1, describe(m))?;
        }
        Ok(())
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
    }
}
