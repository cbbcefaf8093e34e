//! `nsroot doctor`'s lines for where nsroot runs (issue 16): a masked /proc and the engine's
//! switch, birth times on the working directory's filesystem, ptrace_scope, `--json`.

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

/// `nsroot doctor --json` run by `sh -c SCRIPT` (which calls `"$NSROOT" doctor --json`) as
/// the test user, in `dir`, parsed; also the exit status.
fn doctor_json(dir: &std::path::Path, script: &str) -> (Vec<serde_json::Value>, i32) {
    let o = env()
        .command("sh")
        .arg("-c")
        .arg(script)
        .env("NSROOT", &env().bin)
        .env_remove("container")
        .current_dir(dir)
        .output()
        .unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json is not JSON ({e}): {}\n{}",
            stdout(&o),
            stderr(&o)
        )
    });
    (list, o.status.code().unwrap_or(-1))
}

/// The check whose name starts with `name`.
fn line<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no check {name:?} in {list:?}"))
}

#[test]
fn issue16_doctor_json_has_every_line_with_a_status() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let (list, code) = doctor_json(s.path(), "exec \"$NSROOT\" doctor --json");
    assert_eq!(code, 0, "{list:?}");
    for name in [
        "kernel",
        "container",
        "user namespace",
        "seccomp filter on nsroot",
        "pid namespace with a fresh /proc",
        "uts namespace",
        "ownership emulation (seccomp user notification)",
        "kernel.yama.ptrace_scope",
        "birth times on the working directory's filesystem",
    ] {
        let c = line(&list, name);
        let status = c["status"].as_str().unwrap();
        assert!(
            ["works", "degraded", "broken"].contains(&status),
            "{name}: {c}"
        );
        assert_eq!(c["ok"], serde_json::json!(status != "broken"), "{c}");
        assert!(c["required"].is_boolean() && c["detail"].is_string(), "{c}");
    }
    // Here (no masking, no profile, a Yama-less or permissive kernel) these work.
    for name in [
        "user namespace",
        "pid namespace with a fresh /proc",
        "ownership emulation",
        "kernel.yama.ptrace_scope",
        "birth times",
    ] {
        assert_eq!(line(&list, name)["status"], "works", "{name}: {list:?}");
    }
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    let detail = line(&list, "kernel.yama.ptrace_scope")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    match yama {
        Some(v) => assert!(detail.starts_with(v.trim()), "{detail}"),
        None => assert!(detail.starts_with("no Yama"), "{detail}"),
    }
}

#[test]
fn issue16_doctor_masked_proc_is_degraded_and_names_the_engine_switch() {
    if util::no_userns() || util::missing_tool("unshare") {
        return;
    }
    let s = Scratch::new();
    // A tmpfs over /proc/fs in a namespace of the test's own: /proc is then masked as a
    // container engine masks it, and a fresh procfs is refused (KF-PROC-MOUNT).
    let masked = "unshare --user --map-root-user --mount sh -c \
                  'mount -t tmpfs none /proc/fs || exit 99; exec env container=podman \"$NSROOT\" doctor --json'";
    let (list, code) = doctor_json(s.path(), masked);
    let proc = line(&list, "pid namespace with a fresh /proc");
    assert_eq!(proc["status"], "degraded", "{proc}");
    let detail = proc["detail"].as_str().unwrap();
    assert!(
        detail.contains("EPERM") && detail.contains("/proc/fs"),
        "{detail}"
    );
    assert!(detail.contains("bound read-only in builds"), "{detail}");
    assert_eq!(proc["fix"], "podman: `--security-opt unmask=ALL`", "{proc}");
    assert_eq!(
        line(&list, "container")["detail"],
        "podman ($container=podman)"
    );
    assert_eq!(code, 0, "a masked /proc is degraded, not broken: {list:?}");

    // An engine nsroot has no switch for: every engine's switch; the text form says degraded.
    let o = env()
        .command("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs none /proc/fs || exit 99; exec \"$NSROOT\" doctor")
        .env("NSROOT", &env().bin)
        .env("container", "lxc")
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    let out = stdout(&o);
    let text = out
        .lines()
        .find(|l| l.starts_with("degraded pid namespace with a fresh /proc: "))
        .unwrap_or_else(|| panic!("{out}"));
    for switch in [
        "--security-opt unmask=ALL",
        "--security-opt systempaths=unconfined",
        "procMount: Unmasked",
        "hostUsers: false",
    ] {
        assert!(text.contains(switch), "{switch}: {text}");
    }
}

#[test]
fn issue16_doctor_birth_times_degraded_where_the_filesystem_has_none() {
    if util::no_userns() {
        return;
    }
    // procfs reports no birth time; the scratch directory's filesystem (under $TMPDIR) does.
    let (list, _) = doctor_json(
        std::path::Path::new("/proc"),
        "exec \"$NSROOT\" doctor --json",
    );
    let c = line(&list, "birth times");
    assert_eq!(c["status"], "degraded", "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("/proc reports none") && detail.contains("device and inode alone"),
        "{detail}"
    );
    assert!(c["fix"].as_str().unwrap().contains("birth times"), "{c}");
    let s = Scratch::new();
    let (list, _) = doctor_json(s.path(), "exec \"$NSROOT\" doctor --json");
    assert_eq!(line(&list, "birth times")["status"], "works");
}
