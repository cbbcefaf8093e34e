//! Tests of `nsroot run`, the fakeroot-style prefix command (issue 2).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch, Terminal, FG_CHECK};

/// Host pids whose command line is exactly `needle` (arguments joined by spaces) (read from the host's /proc).
fn host_processes(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.trim_end() == needle {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// Waits up to 5 s for no host process to match `needle`; returns what is still there.
fn wait_gone(needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = host_processes(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we spawned.
    assert_eq!(
        // SAFETY: kill(2) with integer arguments touches no memory of ours.
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

#[test]
fn run_maps_unprivileged_caller_to_root() {
    if util::no_userns() {
        return;
    }
    assert_ne!(
        env().uid,
        0,
        "namespace tests must run nsroot as a non-root uid"
    );
    let s = Scratch::new();
    let outside = s.sh("id -u");
    assert_eq!(stdout(&outside).trim(), env().uid.to_string());
    let o = s.nsroot(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]);
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["0", "0"], "{out}");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map, ["0", &env().uid.to_string(), "1"]);
}

#[test]
fn run_files_made_inside_belong_to_the_real_user_outside() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot([
        "sh",
        "-c",
        "mkdir -p pkg/usr && touch pkg/usr/f && stat -c %u:%g pkg/usr/f",
    ]);
    assert_ok(&o);
    assert_eq!(
        stdout(&o).trim(),
        "0:0",
        "inside, the new file shows as root's"
    );
    for p in ["pkg", "pkg/usr", "pkg/usr/f"] {
        let m = std::fs::metadata(s.path().join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (env().uid, env().gid), "{p} outside");
    }
    // And the user can delete it all without nsroot.
    assert_ok(&s.sh("rm -rf pkg && test ! -e pkg"));
}

#[test]
fn run_keeps_cwd_and_environment_and_sets_nsroot() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = util::env()
        .nsroot()
        .args(["sh", "-c", "pwd; echo \"$MY_VAR\"; echo \"$NSROOT\""])
        .env("MY_VAR", "kept value")
        .env("NSROOT", "outer-value-is-replaced")
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    let expected = format!("{}\nkept value\n1\n", s.path().display());
    assert_eq!(stdout(&o), expected);
}

#[test]
fn run_passes_exit_status_through() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("exit 255", 255),
        ("kill -TERM $$", 128 + 15),
        ("kill -INT $$", 128 + 2),
        ("kill -KILL $$", 128 + 9),
    ] {
        let o = s.nsroot(["sh", "-c", script]);
        assert_eq!(o.status.code(), Some(code), "{script}: {}", stderr(&o));
    }
}

#[test]
fn run_missing_command_exits_127_and_unexecutable_126() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot(["no-such-command-xyz"]);
    assert_eq!(o.status.code(), Some(127));
    let err = stderr(&o);
    assert!(
        err.contains("no-such-command-xyz: command not found"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let f = s.write("not-exec", "echo hi\n");
    let o = s.nsroot([f.as_os_str()]);
    assert_eq!(o.status.code(), Some(126));
    assert!(
        stderr(&o).contains("not-exec: cannot execute: Permission denied"),
        "{}",
        stderr(&o)
    );

    // A script without #! runs under /bin/sh, as in a shell.
    assert_ok(&s.sh("chmod +x not-exec"));
    let o = s.nsroot([f.as_os_str()]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "hi\n");
}

#[test]
fn run_has_a_fresh_proc_showing_only_the_sandbox() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot([
        "sh",
        "-c",
        "ls /proc | grep -c '^[0-9][0-9]*$'; cat /proc/1/comm; echo $$",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let count: u32 = lines[0].parse().unwrap();
    // pid 1 (nsroot), the shell, ls and grep: a handful, never the host's hundreds.
    assert!(count <= 5, "processes visible inside: {out}");
    assert_eq!(lines[1], "nsroot", "pid 1 is nsroot's init");
    assert_eq!(lines[2], "2", "the command is pid 1's first child");
    let host_pid = std::process::id();
    let o = s.nsroot(["test", "-e", &format!("/proc/{host_pid}/status")]);
    assert!(
        host_pid < 3 || !o.status.success(),
        "host pid {host_pid} visible inside"
    );
}

#[test]
fn run_leaves_no_process_behind() {
    if util::no_userns() || util::missing_tool("pgrep") {
        return;
    }
    let s = Scratch::new();
    let secs = format!("611.{}", std::process::id());
    let needle = format!("sleep {secs}");
    let needle = needle.as_str();
    let script = format!(
        "setsid sleep {secs} & sleep {secs} & (sleep {secs} &) ; nohup sleep {secs} >/dev/null 2>&1 & \
         while [ \"$(pgrep -cx sleep)\" -lt 4 ]; do sleep 0.01; done; echo started"
    );
    let o = s.nsroot(["sh", "-c", &script]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "started");
    let left = wait_gone(needle);
    assert!(
        left.is_empty(),
        "left running after nsroot exited: {left:?}"
    );
}

#[test]
fn run_forwards_sigterm_to_the_command() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mut child = env()
        .nsroot()
        .args([
            "sh",
            "-c",
            "trap 'echo got-TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .current_dir(s.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-TERM\n");
    assert_eq!(status.code(), Some(42));
}

#[test]
fn run_forwards_every_signal_a_process_sends() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // SIGTERM has its own test above; these are the rest of what nsroot forwards.
    for (sig, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGWINCH, "WINCH"),
    ] {
        let script = format!(
            "trap 'echo got-{name}; exit 3' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let mut child = env()
            .nsroot()
            .args(["sh", "-c", &script])
            .current_dir(s.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        signal(child.id(), sig);
        assert_eq!(child.wait().unwrap().code(), Some(3), "{name}");
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, format!("got-{name}\n"));
    }
}

#[test]
fn run_pid_1_reaps_orphans() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // The subshell exits at once, so its sleep is re-parented to pid 1 and exits 0.2 s later:
    // unless pid 1 reaps it, it stays a zombie ("Z" after the command name in /proc/PID/stat).
    let o = s.nsroot([
        "sh",
        "-c",
        "(sleep 0.2 &); sleep 1; for f in /proc/[0-9]*/stat; do read -r l < $f && echo \"$l\"; done",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    let states: Vec<&str> = out
        .lines()
        .filter_map(|l| l.rsplit_once(") ").map(|(_, rest)| &rest[..1]))
        .collect();
    assert!(states.len() >= 2, "no process listed: {out}");
    assert!(!states.contains(&"Z"), "a zombie inside: {out}");
}

#[test]
fn run_has_its_own_ipc_and_mount_namespaces() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("mnt")).unwrap();
    s.chown_all();
    let mut child = env()
        .nsroot()
        .args([
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; mount -t tmpfs none mnt && touch mnt/inside && echo mounted; sleep 30",
        ])
        .current_dir(s.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ipc = String::new();
    out.read_line(&mut ipc).unwrap();
    let mut mounted = String::new();
    out.read_line(&mut mounted).unwrap();
    // While the sandbox lives, its mount is invisible from the host.
    let host_sees = s.path().join("mnt/inside").exists();
    let host_mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert!(ipc.starts_with("ipc:["), "{ipc:?}");
    assert_ne!(
        ipc.trim(),
        host_ipc.to_str().unwrap(),
        "the host's ipc namespace"
    );
    assert_eq!(mounted, "mounted\n", "mount inside failed");
    assert!(!host_sees, "the sandbox's tmpfs shows on the host");
    let mnt = s.path().join("mnt");
    assert!(
        !host_mountinfo.contains(mnt.to_str().unwrap()),
        "host mount table has {}",
        mnt.display()
    );
}

#[test]
fn run_killing_nsroot_kills_the_whole_tree() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // Unique to this run of the suite, so nothing left by another run can match.
    let secs = format!("622.{}", std::process::id());
    let needle = format!("sleep {secs}");
    let needle = needle.as_str();
    let mut child = env()
        .nsroot()
        .args([
            "sh",
            "-c",
            &format!("sleep {secs} & setsid sleep {secs} & echo ready; wait"),
        ])
        .current_dir(s.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    // "ready" can come before the backgrounded shells have exec'd sleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    while host_processes(needle).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = host_processes(needle).len();
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert_eq!(before, 2, "both sleeps run before the kill");
    let left = wait_gone(needle);
    assert!(left.is_empty(), "survived SIGKILL of nsroot: {left:?}");
}

#[test]
fn run_ctrl_c_on_a_terminal_interrupts_the_command() {
    if util::no_userns() || util::missing_tool("script") {
        return;
    }
    let s = Scratch::new();
    // The shell around nsroot traps SIGINT (the terminal signals it too) so that it always
    // lives to print nsroot's status, however many times Ctrl-C is pressed below; the trap
    // is reset to the default action in nsroot and the command.
    let line = format!(
        "trap 'echo trapped' INT; {} sh -c 'echo ready; sleep 30; echo not-reached'; echo \"status=$?\"",
        env().bin.display()
    );
    let mut t = Terminal::start(&line, s.path(), &[]);
    t.wait_for("ready", 30);
    let took = t.press_until_exit(b"\x03", 20);
    let (_, text) = t.finish();
    assert!(
        took < Duration::from_secs(20),
        "Ctrl-C did not stop the command: {text}"
    );
    assert!(!text.contains("not-reached"), "{text}");
    assert!(text.contains("status=130"), "expected 128+SIGINT: {text:?}");
}

#[test]
fn run_and_doctor_without_user_namespaces_name_the_knob_and_the_fix() {
    if util::no_userns() || util::missing_tool("unshare") {
        return;
    }
    // user.max_user_namespaces is per user namespace: 0 in one made for the test switches
    // them off for nsroot inside it, and for nothing else on the machine.
    let bin = env().bin.display().to_string();
    let o = env()
        .command("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; \
             {bin} true; echo \"run=$?\"; {bin} doctor; echo \"doctor=$?\""
        ))
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("run=1\n"), "{out}{err}");
    assert!(out.contains("doctor=1\n"), "{out}{err}");
    let fix = "user.max_user_namespaces is 0: run `sysctl -w user.max_user_namespaces=";
    assert!(
        err.contains("nsroot: cannot create a user namespace") && err.contains(fix),
        "{err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("MISSING  user namespace") && l.contains(fix)),
        "{out}"
    );
    assert!(out.contains("required feature(s) missing"), "{out}");
}

#[test]
fn run_nests_inside_itself() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let bin = env().bin.display().to_string();
    let o = s.nsroot([
        bin.as_str(),
        bin.as_str(),
        "sh",
        "-c",
        "id -u; echo $NSROOT",
    ]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "0\n1\n");
}

#[test]
fn run_works_when_the_caller_is_root() {
    if util::no_userns() {
        return;
    }
    // As root (CI) call the binary directly; otherwise from inside a session, where the caller
    // is uid 0 of a user namespace.
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let o = if unsafe { libc::geteuid() } == 0 {
        Command::new(&env().bin)
            .args(["sh", "-c", "id -u; ls /proc | grep -c '^[0-9]'"])
            .output()
    } else {
        env()
            .nsroot()
            .arg(&env().bin)
            .args(["sh", "-c", "id -u; ls /proc | grep -c '^[0-9]'"])
            .output()
    }
    .unwrap();
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some("0"), "{out}");
    assert!(
        out.lines().nth(1).unwrap().parse::<u32>().unwrap() <= 5,
        "{out}"
    );
}

#[test]
fn run_net_none_gives_only_loopback_and_it_is_up() {
    if util::no_userns() || util::missing_tool("bash") {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot([
        "--net",
        "none",
        "bash",
        "-c",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
         (echo > /dev/tcp/127.0.0.1/9) 2>&1 | sed 's/.*: //'",
    ]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "interfaces: {out}");
    // Down, lo would say "Network is unreachable"; up, nothing listens on port 9.
    assert!(lines.len() > 1, "{out}");
    assert!(
        lines[1..].iter().all(|l| *l == "Connection refused"),
        "only lo, then: {out}"
    );
    // Without --net none, the host's interfaces are there (more than lo on any networked box,
    // and at least lo).
    let o = s.nsroot(["sh", "-c", "tail -n +3 /proc/net/dev | wc -l"]);
    let host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count()
        - 2;
    assert_eq!(stdout(&o).trim(), host.to_string());
}

#[test]
fn run_hostname_sets_a_private_hostname() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = s.nsroot([
        "--hostname",
        "nsroot-box",
        "cat",
        "/proc/sys/kernel/hostname",
    ]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "nsroot-box\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
}

#[test]
fn run_map_auto_maps_a_subordinate_range() {
    if util::no_userns() || util::missing_tool("newuidmap") {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot([
        "--map-auto",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "two lines per map: {out}");
    assert_eq!(rows[0], ["0", &env().uid.to_string(), "1"]);
    assert_eq!(rows[1][0], "1");
    assert!(rows[1][2].parse::<u32>().unwrap() > 0);
}

#[test]
fn run_rejects_fakeroot_only_options_clearly() {
    let s = Scratch::new();
    for args in [
        &["-l", "libfakeroot.so", "true"][..],
        &["--faked", "faked", "true"],
        &["-b", "3", "true"],
    ] {
        let o = s.nsroot(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("has no meaning for nsroot"), "{args:?}: {err}");
    }
    let o = s.nsroot(["--no-such-option"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-option"), "{}", stderr(&o));
    // fakeroot's -v, clap's -V, and --version.
    for flag in ["-v", "-V", "--version"] {
        let o = s.nsroot([flag]);
        assert_ok(&o);
        assert_eq!(
            stdout(&o).trim(),
            format!("nsroot {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
    // -h and --help describe run mode, naming its fakeroot options.
    for flag in ["-h", "--help"] {
        let o = s.nsroot([flag]);
        assert_ok(&o);
        assert!(stdout(&o).contains("-s <FILE>"), "{flag}: {}", stdout(&o));
    }
}

#[test]
fn run_separator_and_command_options_reach_the_command() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // After the command name, everything (even options nsroot knows) belongs to the command.
    let o = s.nsroot(["--", "sh", "-c", "echo \"$0 $1\"", "-s", "--net"]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "-s --net\n");
    // A subcommand name after -- is a command.
    let o = s.nsroot(["--", "pack", "x"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
}

#[test]
fn run_verbose_prints_the_plan() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot(["--verbose", "true"]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("namespaces: user, mount, pid, ipc"), "{err}");
    assert!(
        err.contains(&format!("uid_map: 0 {} 1", env().uid)),
        "{err}"
    );
}

#[test]
fn doctor_reports_every_feature_and_passes_here() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let o = s.nsroot(["doctor"]);
    let out = stdout(&o);
    for feature in [
        "user namespace",
        "mount namespace",
        "pid namespace with a fresh /proc",
        "ipc namespace",
        "network namespace",
        "uts namespace",
        "tmpfs in a user namespace",
        "overlayfs in a user namespace",
        "time namespace",
        "newuidmap/newgidmap",
        "ownership emulation",
    ] {
        let line = out.lines().find(|l| l.contains(feature));
        assert!(line.is_some(), "doctor has no line for {feature}: {out}");
    }
    assert_ok(&o);
    assert!(
        out.lines()
            .filter(|l| l.contains("namespace") || l.contains("ownership emulation"))
            .all(|l| l.starts_with("ok")),
        "{out}"
    );
    // The kernel line gives this kernel's release, as uname does.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok       kernel (") && l.contains(release.trim())),
        "{out}"
    );
}

#[test]
fn run_interactive_dash_leaves_the_terminal_to_the_caller() {
    if util::no_userns() || util::missing_tool("script") || util::missing_tool("dash") {
        return;
    }
    let s = Scratch::new();
    let line = format!(
        "{}; echo \"run-status=$?\"; {FG_CHECK}",
        env().bin.display()
    );
    let dash = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("dash"))
        .find(|p| p.is_file())
        .expect("dash on PATH");
    let mut t = Terminal::start(&line, s.path(), &[("SHELL", dash.as_os_str())]);
    // dash's prompt as root is "# "; the answer is computed, so the echo cannot satisfy it.
    t.type_until(b"", "# ");
    t.type_until(b"echo in-$((40+2))\n", "in-42");
    t.type_once(b"exit 3\n");
    let (st, text) = t.finish();
    assert!(st.success(), "{text}");
    assert!(text.contains("run-status=3"), "{text}");
    // The shell had a foreground group of its own, which it can name inside the pid
    // namespace: no "Cannot set tty process group" on exit, and the caller has the terminal.
    assert!(!text.contains("Cannot set tty process group"), "{text}");
    assert!(text.contains("foreground-is-back"), "{text}");
}

#[test]
fn run_interactive_shell_has_job_control() {
    if util::no_userns() || util::missing_tool("script") || util::missing_tool("bash") {
        return;
    }
    let s = Scratch::new();
    let bin = env().bin.display().to_string();
    let mut t = Terminal::start(
        &bin,
        s.path(),
        &[
            ("SHELL", "/bin/bash".as_ref()),
            ("HOME", s.path().as_os_str()),
        ],
    );
    t.type_until(b"", "# ");
    t.type_until(b"echo uid=$(id -u)\n", "uid=0");
    t.type_once(b"sleep 600\n");
    std::thread::sleep(Duration::from_millis(500));
    // Ctrl-Z stops the foreground job and gives the prompt back.
    t.type_until(b"\x1a", "Stopped");
    // The markers are computed by the shell, so the terminal's echo of the input cannot
    // satisfy them.
    t.type_until(b"jobs -l; echo listed-$((40+2))\n", "listed-42");
    // SIGTERM stays pending while the job is stopped; `fg` continues it into its death.
    t.type_until(b"kill %1; fg\n", "Terminated");
    t.type_once(b"exit\n");
    let (_, text) = t.finish();
    // Once for Ctrl-Z and once for `jobs -l`: bash's job table has the stopped sleep.
    let stopped = text
        .lines()
        .filter(|l| l.contains("Stopped") && l.contains("sleep 600"))
        .count();
    assert!(stopped >= 2, "the stopped job is not listed twice:\n{text}");
    // `fg` names the job it resumes; bash then reports how it ended.
    assert!(
        text.contains("sleep 600\r\nTerminated"),
        "no report of the resumed and terminated job:\n{text}"
    );
}
