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

/// Why `unshare(CLONE_NEWUSER|...)` failed with `errno`, and what to do.
pub fn unshare_failure(errno: Errno) -> String {
    let knobs = blocking_knobs();
    if !knobs.is_empty() {
        return format!("unshare => {errno}: {}", knobs.join("; "));
    }
    let why = match errno {
        Errno::ENOSPC => "the per-user limit of namespaces is reached: raise \
            `sysctl -w user.max_user_namespaces=15000` (and user.max_mnt_namespaces, \
            user.max_pid_namespaces)"
            .to_string(),
        Errno::EPERM if Path::new("/.dockerenv").exists() || in_container() => {
            "a container's seccomp policy refuses unshare: run the container with \
             `--security-opt seccomp=unconfined` (Docker/Podman) or allow unshare/clone with \
             namespace flags in its profile"
                .to_string()
        }
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
    format!("unshare => {errno}: {why}")
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
    read_knob("/proc/1/cgroup").is_some_and(|c| c.contains("docker") || c.contains("kubepods"))
        || Path::new("/run/.containerenv").exists()
}
