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
    let var = std::env::var("container").ok().filter(|v| !v.is_empty());
    let cgroup = read_knob("/proc/1/cgroup").unwrap_or_default();
    let found = |engine, evidence: String| Some(Container { engine, evidence });
    // Kubernetes first: its pods run under docker or containerd, whose marks are there too.
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return found(Engine::Kubernetes, "$KUBERNETES_SERVICE_HOST".into());
    }
    if cgroup.contains("kubepods") {
        return found(Engine::Kubernetes, "kubepods in /proc/1/cgroup".into());
    }
    // Then what the engine says in the environment, then the files it leaves.
    match var.as_deref() {
        Some("podman") => return found(Engine::Podman, "$container=podman".into()),
        Some("docker") => return found(Engine::Docker, "$container=docker".into()),
        Some(v) => return found(Engine::Other, format!("$container={v}")),
        None => {}
    }
    if Path::new("/run/.containerenv").exists() {
        found(Engine::Podman, "/run/.containerenv".into())
    } else if Path::new("/.dockerenv").exists() {
        found(Engine::Docker, "/.dockerenv".into())
    } else if cgroup.contains("docker") {
        found(Engine::Docker, "docker in /proc/1/cgroup".into())
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
    let info = read_knob("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with("/proc/") && *p != "/proc/sys/fs/binfmt_misc")
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}
