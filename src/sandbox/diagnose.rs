//! Turns a kernel refusal into the knob that caused it and the command that fixes it
//! (bubblewrap does the same for clone's EPERM/EINVAL/ENOSPC).

use std::path::Path;

use crate::sys::{Errno, SysError};

fn read_knob(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The sysctl knobs that switch unprivileged user namespaces off, with their values here.
/// Each entry: (knob path, current value, the value that blocks, the fix).
pub fn blocking_knobs() -> Vec<String> {
    let mut out = Vec::new();
    if read_knob("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        out.push(
            "user.max_user_namespaces is 0: run `sysctl -w user.max_user_namespaces=15000` \
             (persist it in /etc/sysctl.d/)"
                .to_string(),
        );
    }
    if read_knob("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        out.push(
            "kernel.unprivileged_userns_clone is 0 (Debian's switch): run \
             `sysctl -w kernel.unprivileged_userns_clone=1`"
                .to_string(),
        );
    }
    if read_knob("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        out.push(
            "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 24.04+): the namespace \
             is created without capabilities; add an AppArmor profile granting `userns,` to \
             nsroot, or run `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
                .to_string(),
        );
    }
    out
}

/// How [`unshare_failure`]'s messages start.
pub const UNSHARE_FAILED: &str = "unshare => ";

/// Why `unshare(CLONE_NEWUSER|...)` failed with `errno`, and what to do.
pub fn unshare_failure(errno: Errno) -> String {
    let knobs = blocking_knobs();
    if !knobs.is_empty() {
        return format!("{UNSHARE_FAILED}{errno}: {}", knobs.join("; "));
    }
    let why = match errno {
        Errno::ENOSPC => "the per-user limit of namespaces is reached: raise \
            `sysctl -w user.max_user_namespaces=15000` (and user.max_mnt_namespaces, \
            user.max_pid_namespaces)"
            .to_string(),
        Errno::EPERM if in_container() || seccomp_mode().0 == 2 => format!(
            "a seccomp profile (a container engine's default) refuses unshare: lift it ({}) \
             or allow unshare and clone with namespace flags in the profile",
            unconfined_seccomp_switch(container().map(|c| c.engine))
        ),
        Errno::EPERM => "the kernel refused (a seccomp filter, an LSM policy, or nesting \
            deeper than 32 user namespaces); `nsroot doctor` checks each"
            .to_string(),
        Errno::EINVAL => "this kernel was built without CONFIG_USER_NS, or the caller is \
            multi-threaded or in a chroot"
            .to_string(),
        Errno::ENOMEM => {
            "the pid namespace of the caller is being torn down, or memory ran out".to_string()
        }
        e => format!("unexpected error {e}"),
    };
    format!("{UNSHARE_FAILED}{errno}: {why}")
}

/// Why writing our id map failed (the namespace exists, but we cannot become root in it).
pub fn map_failure(e: &SysError) -> String {
    let mut msg = e.to_string();
    let knobs = blocking_knobs();
    if !knobs.is_empty() {
        msg.push_str(": ");
        msg.push_str(&knobs.join("; "));
    } else if e.errno == Errno::EPERM {
        msg.push_str(": the kernel refused the id map (is this process non-dumpable, or an LSM policy restricting user namespaces?)");
    }
    msg
}

fn in_container() -> bool {
    container().is_some()
}

/// A container engine nsroot can name the switches of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Podman,
    Docker,
    Kubernetes,
    /// Some other engine (`$container` names it: lxc, systemd-nspawn...).
    Other,
}

/// The container this process runs in, as far as it shows: the engine and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub engine: Engine,
    /// What gave it away (`/run/.containerenv`, `$container=podman`...).
    pub evidence: String,
}

/// Detects a container from what engines leave behind: podman's `/run/.containerenv`,
/// Docker's `/.dockerenv`, `$container` (systemd's convention, set by podman, LXC, nspawn),
/// Kubernetes' `$KUBERNETES_SERVICE_HOST` and `kubepods` in `/proc/1/cgroup`.
pub fn container() -> Option<Container> {
    let var = std::env::var("container").ok();
    detect(&Marks {
        container_var: var.as_deref().filter(|v| !v.is_empty()),
        kubernetes_var: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        cgroup: &read_knob("/proc/1/cgroup").unwrap_or_default(),
        containerenv: Path::new("/run/.containerenv").exists(),
        dockerenv: Path::new("/.dockerenv").exists(),
    })
}

/// What [`container`] looks at.
struct Marks<'a> {
    container_var: Option<&'a str>,
    kubernetes_var: bool,
    cgroup: &'a str,
    containerenv: bool,
    dockerenv: bool,
}

fn detect(m: &Marks) -> Option<Container> {
    let found = |engine, evidence: &str| {
        Some(Container {
            engine,
            evidence: evidence.into(),
        })
    };
    // Kubernetes first: its pods run under docker or containerd, whose marks are there too.
    // Then what the engine says in the environment, then the files it leaves.
    if m.kubernetes_var {
        found(Engine::Kubernetes, "$KUBERNETES_SERVICE_HOST")
    } else if m.cgroup.contains("kubepods") {
        found(Engine::Kubernetes, "kubepods in /proc/1/cgroup")
    } else if let Some(v) = m.container_var {
        match v {
            "podman" => found(Engine::Podman, "$container=podman"),
            "docker" => found(Engine::Docker, "$container=docker"),
            v => found(Engine::Other, &format!("$container={v}")),
        }
    } else if m.containerenv {
        found(Engine::Podman, "/run/.containerenv")
    } else if m.dockerenv {
        found(Engine::Docker, "/.dockerenv")
    } else if m.cgroup.contains("docker") {
        found(Engine::Docker, "docker in /proc/1/cgroup")
    } else {
        None
    }
}

/// The engine switch that gives a container an unmasked /proc (so a fresh procfs can be
/// mounted, KF-PROC-MOUNT), for `engine`, or for each engine when unknown.
pub fn unmask_proc_switch(engine: Option<Engine>) -> String {
    const PODMAN: &str = "podman: `--security-opt unmask=ALL`";
    const DOCKER: &str = "docker: `--security-opt systempaths=unconfined`";
    const K8S: &str = "Kubernetes: `securityContext.procMount: Unmasked` with `hostUsers: false`";
    match engine {
        Some(Engine::Podman) => PODMAN.into(),
        Some(Engine::Docker) => DOCKER.into(),
        Some(Engine::Kubernetes) => K8S.into(),
        _ => format!("{PODMAN}; {DOCKER}; {K8S}"),
    }
}

/// The engine switch that lifts a container's seccomp profile, for `engine` or each engine.
pub fn unconfined_seccomp_switch(engine: Option<Engine>) -> String {
    const ENGINES: &str = "podman/docker: `--security-opt seccomp=unconfined`";
    const K8S: &str = "Kubernetes: `securityContext.seccompProfile.type: Unconfined`";
    match engine {
        Some(Engine::Podman) | Some(Engine::Docker) => ENGINES.into(),
        Some(Engine::Kubernetes) => K8S.into(),
        _ => format!("{ENGINES}; {K8S}"),
    }
}

/// The seccomp mode of this process and its number of filters (`Seccomp:` and
/// `Seccomp_filters:` of /proc/self/status): mode 2 is a filter, as container engines install.
pub fn seccomp_mode() -> (u32, u32) {
    let status = read_knob("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("Seccomp:"), field("Seccomp_filters:"))
}

/// Why sethostname(2) failed in the sandbox's new UTS namespace, and the fix. The new
/// namespace is ours, so EPERM there is a seccomp profile (Docker's and podman's default ones
/// allow sethostname only with CAP_SYS_ADMIN in the container).
pub fn sethostname_failure(e: &SysError, name: &str) -> String {
    if e.errno != Errno::EPERM {
        return e.to_string();
    }
    let engine = container().map(|c| c.engine);
    let hostname = match engine {
        Some(Engine::Kubernetes) => format!("`hostname: {name}` in the pod spec"),
        _ => format!("`--hostname {name}`"),
    };
    format!(
        "{e}: a seccomp profile (a container engine's default) refuses sethostname; start the \
         container with {hostname}, which nsroot then keeps, or lift the profile ({})",
        unconfined_seccomp_switch(engine)
    )
}

/// The mount points strictly below `/proc` in this mount namespace that hide part of it
/// (what a container engine masks), from /proc/self/mountinfo. binfmt_misc, which a host
/// mounts on an empty directory the kernel does not count, is left out.
pub fn proc_covers() -> Vec<String> {
    covers_in(&read_knob("/proc/self/mountinfo").unwrap_or_default())
}

fn covers_in(mountinfo: &str) -> Vec<String> {
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with("/proc/") && *p != "/proc/sys/fs/binfmt_misc")
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Marks = Marks {
        container_var: None,
        kubernetes_var: false,
        cgroup: "0::/\n",
        containerenv: false,
        dockerenv: false,
    };

    fn engine(m: &Marks) -> Option<(Engine, String)> {
        detect(m).map(|c| (c.engine, c.evidence))
    }

    #[test]
    fn containers_are_told_apart_kubernetes_first_then_the_variable_then_files() {
        assert_eq!(engine(&NONE), None);
        let k8s = Marks {
            kubernetes_var: true,
            dockerenv: true,
            ..NONE
        };
        assert_eq!(engine(&k8s).unwrap().0, Engine::Kubernetes);
        let pods = Marks {
            cgroup: "12:memory:/kubepods/besteffort/pod1\n",
            container_var: Some("docker"),
            ..NONE
        };
        assert_eq!(engine(&pods).unwrap().0, Engine::Kubernetes);
        // podman sets both $container and /run/.containerenv; a docker host's marks under
        // podman (a CI runner in a container) do not win over podman's variable.
        let podman = Marks {
            container_var: Some("podman"),
            dockerenv: true,
            ..NONE
        };
        assert_eq!(
            engine(&podman),
            Some((Engine::Podman, "$container=podman".into()))
        );
        let lxc = Marks {
            container_var: Some("lxc"),
            ..NONE
        };
        assert_eq!(engine(&lxc), Some((Engine::Other, "$container=lxc".into())));
        let files = Marks {
            containerenv: true,
            dockerenv: true,
            ..NONE
        };
        assert_eq!(engine(&files).unwrap().0, Engine::Podman);
        let docker = Marks {
            cgroup: "1:name=systemd:/docker/abc\n",
            ..NONE
        };
        assert_eq!(engine(&docker).unwrap().0, Engine::Docker);
        // Every engine's switch when the engine is unknown.
        let all = unmask_proc_switch(Some(Engine::Other));
        assert!(all.contains("unmask=ALL") && all.contains("systempaths=unconfined"));
        assert!(all.contains("procMount: Unmasked") && all.contains("hostUsers: false"));
    }

    #[test]
    fn proc_covers_are_the_mounts_below_proc_but_binfmt_misc() {
        let info = "22 1 0:5 / /proc rw - proc proc rw\n\
                    23 22 0:6 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw\n\
                    24 22 0:7 /null /proc/kcore rw - devtmpfs udev rw\n\
                    25 22 0:5 /sys /proc/sys ro - proc proc rw\n\
                    26 1 0:8 / /procx rw - tmpfs tmpfs rw\n";
        assert_eq!(covers_in(info), ["/proc/kcore", "/proc/sys"]);
    }

    #[test]
    fn sethostname_eperm_names_the_hostname_switch() {
        let e = SysError {
            call: "sethostname(\"nsroot\")".into(),
            errno: Errno::EPERM,
        };
        let m = sethostname_failure(&e, "nsroot");
        assert!(m.starts_with("sethostname(\"nsroot\") => EPERM"), "{m}");
        assert!(
            m.contains("refuses sethostname") && m.contains("seccomp=unconfined"),
            "{m}"
        );
        let other = SysError {
            call: "sethostname(\"nsroot\")".into(),
            errno: Errno::EINVAL,
        };
        assert!(!sethostname_failure(&other, "nsroot").contains("seccomp"));
    }
}
