//! Isolation of build mode (issue 8): each escape attempt made from inside a build step, and
//! each refusal asserted positively (from the host where the host can tell, otherwise from
//! the step's own report: `refused:LABEL` when the attempt failed, `ESCAPED:LABEL` when not).

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::faults::{
    build_command, host_processes, marker, names, private_tmpdir, signal, wait_bounded,
    wait_for_text, wait_no_processes, write_recipe,
};
use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

/// One step that tries each `(label, shell condition)` and reports `refused:` or `ESCAPED:`.
fn attempts(list: &[(&str, String)]) -> String {
    list.iter()
        .map(|(label, cond)| {
            format!("if {cond}; then echo ESCAPED:{label}; else echo refused:{label}; fi\n")
        })
        .collect()
}

/// A recipe `pkg` whose steps are the given shell scripts (TOML multi-line literals).
fn recipe_of(s: &Scratch, pkg: &str, steps: &[String]) -> PathBuf {
    let body: String = steps
        .iter()
        .map(|st| {
            assert!(!st.contains("'''"));
            format!("'''\n{st}''',\n")
        })
        .collect();
    write_recipe(s, pkg, pkg, &format!("[build]\nsteps = [\n{body}]\n"))
}

/// Builds `pkg` to completion; returns nsroot's output and the build log.
fn build(s: &Scratch, pkg: &str, steps: &[String]) -> (Output, String) {
    let recipe = recipe_of(s, pkg, steps);
    let tmp = private_tmpdir(s, "tmp");
    let out = s.path().join("out");
    let o = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out.join(format!("{pkg}_1.0-1_amd64.build.log")))
        .unwrap_or_default();
    assert!(names(&tmp).is_empty(), "scratch left: {:?}", names(&tmp));
    (o, log)
}

/// Asserts the build succeeded and every attempt reported a refusal.
#[track_caller]
fn assert_all_refused(o: &Output, log: &str, labels: &[&str]) {
    assert_ok(o);
    assert!(!log.contains("ESCAPED:"), "{log}");
    for l in labels {
        assert!(
            log.contains(&format!("refused:{l}\n")),
            "no refusal of {l}:\n{log}"
        );
    }
}

/// The test user's home directory (from the passwd database).
pub(crate) fn home_of_test_user() -> PathBuf {
    let o = Command::new("getent")
        .arg("passwd")
        .arg(env().uid.to_string())
        .output()
        .unwrap();
    PathBuf::from(
        stdout(&o)
            .trim()
            .split(':')
            .nth(5)
            .unwrap_or("/nonexistent"),
    )
}

/// Starts `<marker>-sleep 600` outside any sandbox, as the test user.
fn host_sleeper(s: &Scratch, mark: &str) -> (Child, String) {
    let link = s.path().join(format!("{mark}-sleep"));
    std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
    let child = env().command(&link).arg("600").spawn().unwrap();
    (child, format!("{mark}-sleep 600"))
}

#[test]
fn isolation_build_cannot_write_to_the_host() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("write");
    std::fs::create_dir_all(s.path().join("sibling")).unwrap();
    s.chown_all();
    // Host directories the test user may write to, outside the build's output.
    let mut dirs: Vec<PathBuf> = vec![
        home_of_test_user(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
        PathBuf::from("/dev/shm"),
        s.path().to_path_buf(),
        s.path().join("isowrite"),
        s.path().join("isowrite/src"),
        s.path().join("sibling"),
    ];
    dirs.retain(|d| d.starts_with(s.path()) || writable_by_test_user(d));
    let mut script = String::from("set +e\n");
    for d in &dirs {
        for via in ["", "/proc/self/root", "/proc/1/root", "/proc/1/cwd"] {
            script.push_str(&format!(
                "touch {via}{d}/{mark} 2>/dev/null; mkdir -p {via}{d}/{mark}.d 2>/dev/null\n",
                d = d.display()
            ));
        }
    }
    script.push_str("echo attempted\n");
    let (o, log) = build(&s, "isowrite", &[script]);
    assert_ok(&o);
    assert!(log.contains("attempted"), "{log}");
    for d in &dirs {
        for name in [mark.clone(), format!("{mark}.d")] {
            let p = d.join(&name);
            let there = p.exists();
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_dir(&p);
            assert!(!there, "the build wrote {} on the host", p.display());
        }
    }
    eprintln!("{} host directories tried, 4 ways each", dirs.len());
}

fn writable_by_test_user(d: &Path) -> bool {
    env()
        .command("test")
        .arg("-w")
        .arg(d)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn isolation_build_cannot_read_the_users_home() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("home");
    let home = home_of_test_user();
    if !writable_by_test_user(&home) && util::skip("the test user has no writable home") {
        return;
    }
    let secret = home.join(format!(".{mark}"));
    let content = format!("secret-{mark}-content");
    let o = env()
        .command("sh")
        .arg("-c")
        .arg(format!(
            "umask 077 && echo {content} > {0} && cat {0}",
            secret.display()
        ))
        .output()
        .unwrap();
    // Control: the user can read it outside.
    assert_eq!(stdout(&o).trim(), content, "{}", stderr(&o));
    let h = home.display();
    let list = [
        ("home-path", format!("cat {}", secret.display())),
        (
            "home-proc1",
            format!("cat /proc/1/root{}", secret.display()),
        ),
        (
            "home-self",
            format!("cat /proc/self/root{}", secret.display()),
        ),
        ("home-listing", format!("ls -A {h} | grep -q {mark}")),
        (
            "home-anywhere",
            format!("find / -xdev -name '.{mark}' 2>/dev/null | grep -q ."),
        ),
    ];
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    let (o, log) = build(&s, "isohome", &[attempts(&list)]);
    let _ = std::fs::remove_file(&secret);
    assert_all_refused(&o, &log, &labels);
    assert!(!log.contains(&content), "{log}");
}

#[test]
fn isolation_build_mounts_do_not_name_the_users_source_directory() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let (o, log) = build(
        &s,
        "isomntinfo",
        &["cat /proc/self/mountinfo\n".to_string()],
    );
    assert_ok(&o);
    // The sources are an overlay whose layers were given by descriptor: mountinfo shows
    // those, not where the user keeps the recipe (the source directory is its lower layer).
    let overlay = log
        .lines()
        .find(|l| l.contains(" /build/src ") && l.contains(" - overlay "))
        .unwrap_or_else(|| panic!("no overlay at /build/src:\n{log}"));
    assert!(
        overlay.contains("lowerdir=/proc/self/fd/")
            && overlay.contains("upperdir=/proc/self/fd/")
            && overlay.contains("workdir=/proc/self/fd/"),
        "{overlay}"
    );
    let source = s.path().join("isomntinfo");
    assert!(!log.contains(&*source.to_string_lossy()), "{log}");
}

#[test]
fn isolation_build_cannot_see_signal_or_trace_host_processes() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("proc");
    let (mut sleeper, needle) = host_sleeper(&s, &mark);
    let pid = sleeper.id();
    let mut list = vec![
        ("see-pid", format!("test -e /proc/{pid}")),
        (
            "see-cmdline",
            format!(
                "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q '{mark}-[s]leep'"
            ),
        ),
        ("kill0-pid", format!("kill -0 {pid} 2>/dev/null")),
        ("kill-pid", format!("kill -TERM {pid} 2>/dev/null")),
        (
            "killall-name",
            format!("n={mark}-; killall -q \"${{n}}sleep\""),
        ),
        ("pkill-name", format!("pkill -f '{mark}-[s]leep'")),
        ("mem-read", format!("head -c 1 /proc/{pid}/mem 2>/dev/null")),
    ];
    for (tool, cmd) in [
        (
            "strace",
            format!("timeout 10 strace -qq -p {pid} -e trace=none"),
        ),
        (
            "gdb",
            format!("timeout 20 gdb -q -batch -p {pid} -ex 'kill'"),
        ),
    ] {
        if !util::missing_tool(tool) {
            list.push((tool, format!("{cmd} >/dev/null 2>&1")));
        }
    }
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    let (o, log) = build(&s, "isoproc", &[attempts(&list)]);
    // Still running, untraced.
    let alive = sleeper.try_wait().unwrap().is_none();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(alive, "the build killed a host process");
    assert!(status.contains("TracerPid:\t0\n"), "{status}");
    assert!(host_processes(&needle).is_empty());
    assert_all_refused(&o, &log, &labels);
}

#[test]
fn isolation_build_mounts_do_not_reach_the_host() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("mount");
    let script = format!(
        "mount -t tmpfs tmpfs /usr/share && touch /usr/share/{mark}\n\
         mount -t tmpfs tmpfs /etc && touch /etc/{mark}\n\
         echo mounted-{mark}; exec sleep 60\n"
    );
    let recipe = recipe_of(&s, "isomount", &[script]);
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let before = mountinfo();
    let mut c = build_command(&recipe, &out, &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // While the step holds its mounts, the host (and the test user) sees none of them.
    wait_for_text(
        &out.join("isomount_1.0-1_amd64.build.log"),
        &format!("mounted-{mark}"),
        Duration::from_secs(30),
    );
    let during = mountinfo();
    let seen_usr = Path::new("/usr/share").join(&mark).exists();
    let seen_etc = Path::new("/etc").join(&mark).exists();
    let user_view = env()
        .command("sh")
        .arg("-c")
        .arg(format!(
            "ls /usr/share/{mark} /etc/{mark} 2>/dev/null; cat /proc/self/mountinfo"
        ))
        .output()
        .unwrap();
    signal(c.id(), libc::SIGTERM);
    wait_bounded(&mut c, Duration::from_secs(30), "the mounting build");
    assert!(!seen_usr && !seen_etc, "a mount inside reached the host");
    assert_eq!(before, during, "the host's mount table changed");
    assert!(!stdout(&user_view).contains(&mark));
    assert_eq!(
        stdout(&user_view)
            .lines()
            .filter(|l| l.contains(" /usr/share "))
            .count(),
        before
            .lines()
            .filter(|l| l.contains(" /usr/share "))
            .count()
    );
}

#[test]
fn isolation_build_device_nodes_do_not_work() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/").unwrap());
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let read = |node: &str, kind: &str, m: u32, n: u32| {
        format!(
            "mknod /tmp/{node} {kind} {m} {n} && test -{kind} /tmp/{node} && \
             test \"$(head -c 512 /tmp/{node} | wc -c)\" != 0"
        )
    };
    let list = [
        ("dev-zero", read("zero", "c", 1, 5)),
        ("dev-mem", read("mem", "c", 1, 1)),
        ("dev-kmsg", read("kmsg", "c", 1, 11)),
        ("dev-rootdisk", read("disk", "b", maj, min)),
        (
            "dev-existing-disk",
            format!("test \"$(head -c 512 /dev/block/{maj}:{min} 2>/dev/null | wc -c)\" != 0"),
        ),
    ];
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    // Control: the recorded nodes look like devices to stat (mknod "worked").
    let control = "mknod /tmp/n c 1 5 && test -c /tmp/n && echo control-ok\n".to_string();
    let (o, log) = build(&s, "isodev", &[control, attempts(&list)]);
    assert!(log.contains("control-ok"), "{log}");
    assert_all_refused(&o, &log, &labels);
}

#[test]
fn isolation_build_sees_no_network_interface_but_lo() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let host_ifaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    let host_addr = Command::new("hostname")
        .arg("-I")
        .output()
        .map(|o| {
            stdout(&o)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let mut list = vec![
        (
            "proc-net-dev",
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | grep -qvx lo".to_string(),
        ),
        (
            "sys-class-net",
            "ls /sys/class/net 2>/dev/null | grep -qvx lo".to_string(),
        ),
        (
            "ip-link",
            "ip -o link 2>/dev/null | cut -d: -f2 | tr -d ' ' | grep -qvx lo".to_string(),
        ),
        (
            "route",
            "tail -n +2 /proc/net/route | grep -q .".to_string(),
        ),
    ];
    if !host_addr.is_empty() && !host_addr.contains(':') {
        list.push((
            "connect-host",
            format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{host_addr}/22' 2>/dev/null"),
        ));
    }
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    let control = "tail -n +3 /proc/net/dev | grep -q '^ *lo:' && echo lo-present\n".to_string();
    let (o, log) = build(&s, "isonet", &[control, attempts(&list)]);
    assert!(log.contains("lo-present"), "{log}");
    assert_all_refused(&o, &log, &labels);
    eprintln!(
        "host has {} interfaces; {} attempts",
        host_ifaces.lines().count().saturating_sub(2),
        labels.len()
    );
}

#[test]
fn isolation_build_cannot_change_the_host_hostname() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("uts");
    let read = || std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let before = read();
    let script = format!(
        "(echo {mark} > /proc/sys/kernel/hostname) 2>/dev/null || hostname {mark}\n\
         echo inside=$(cat /proc/sys/kernel/hostname)\n"
    );
    let (o, log) = build(&s, "isouts", &[script]);
    let after = read();
    assert_ok(&o);
    // The attempt took effect in the build's own UTS namespace...
    assert!(log.contains(&format!("inside={mark}")), "{log}");
    // ...and not on the host.
    assert_eq!(before, after);
    assert!(!after.contains(&mark));
}

#[test]
fn isolation_build_leaves_no_process_alive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("daemon");
    let daemon = format!(
        "ln -sf /bin/sleep /tmp/{mark}-sleep\n\
         setsid nohup sh -c \"trap '' HUP TERM INT; (/tmp/{mark}-sleep 600 &) ; \
         /tmp/{mark}-sleep 600\" </dev/null >/dev/null 2>&1 &\n\
         i=0; until cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q '{mark}-sleep 600'; do \
         i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done; echo daemon-running\n"
    );
    let (o, log) = build(&s, "isodaemon", &[daemon.clone(), daemon]);
    assert_ok(&o);
    assert_eq!(log.matches("daemon-running").count(), 2, "{log}");
    let left = wait_no_processes(&format!("{mark}-sleep"), Duration::from_secs(5));
    for p in &left {
        signal(p.split(':').next().unwrap().parse().unwrap(), libc::SIGKILL);
    }
    assert!(left.is_empty(), "alive after the build: {left:?}");
}

#[test]
fn isolation_build_inherits_no_descriptor_from_nsroot() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("fd");
    let file = s.write(&format!("{mark}.txt"), "leak\n");
    let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: open(2) without O_CLOEXEC, then F_DUPFD to a high number (also without
    // CLOEXEC): every child we spawn inherits it, as a careless caller's would.
    let fd: RawFd = unsafe {
        let low = libc::open(path.as_ptr(), libc::O_RDONLY);
        assert!(low >= 0);
        let high = libc::fcntl(low, libc::F_DUPFD, 70);
        libc::close(low);
        high
    };
    // Control: run mode keeps descriptors (make's jobserver needs them): it is there.
    let control = s.nsroot(["sh", "-c", &format!("readlink /proc/self/fd/{fd}")]);
    let script = format!(
        "echo fds-begin; ls /proc/$$/fd; echo fds-end\n\
         if test -e /proc/self/fd/{fd}; then echo ESCAPED:fd; else echo refused:fd; fi\n\
         if ls -l /proc/$$/fd/ | grep -q {mark}; then echo ESCAPED:fd-path; else echo refused:fd-path; fi\n"
    );
    let (o, log) = build(&s, "isofd", &[script]);
    // SAFETY: closes the descriptor this test opened.
    unsafe { libc::close(fd) };
    assert!(
        stdout(&control).contains(&mark),
        "control: {}",
        stderr(&control)
    );
    assert_all_refused(&o, &log, &["fd", "fd-path"]);
    // What the step's shell had open from its exec: exactly stdin, stdout and stderr.
    let fds: Vec<&str> = log
        .lines()
        .skip_while(|l| *l != "fds-begin")
        .skip(1)
        .take_while(|l| *l != "fds-end")
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{log}");
}

#[test]
fn isolation_build_proc_root_and_cwd_show_the_sandbox() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("root");
    // A marker on the host's root (when we may write there) and one in the scratch dir.
    let mut markers = vec![s.write(&format!("{mark}.host"), "x")];
    if env().drop_to.is_some() {
        let p = PathBuf::from("/").join(format!("{mark}.hostroot"));
        std::fs::write(&p, "x").unwrap();
        markers.push(p);
    }
    let mut list = Vec::new();
    let mut controls = String::new();
    for via in [
        "/proc/self/root",
        "/proc/1/root",
        "/proc/1/cwd",
        "/proc/self/root/proc/1/root",
        "/proc/self/cwd/../../../..",
    ] {
        // What the path shows is the sandbox's root: /build/src is there. pid 1 is not
        // dumpable, so its root and cwd links are closed to the steps altogether.
        if via.contains("/proc/1/") {
            controls.push_str(&format!(
                "test -d /proc/1 && ! ls {via}/ >/dev/null 2>&1 && echo closed:{via}\n"
            ));
        } else {
            controls.push_str(&format!("test -d {via}/build/src && echo sandbox:{via}\n"));
        }
        // ...and no host file is.
        for m in &markers {
            list.push((via, format!("test -e {via}{}", m.display())));
        }
    }
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    let (o, log) = build(&s, "isoroot", &[controls, attempts(&list)]);
    for m in &markers {
        let _ = std::fs::remove_file(m);
    }
    for via in &labels {
        let seen = if via.contains("/proc/1/") {
            "closed"
        } else {
            "sandbox"
        };
        assert!(log.contains(&format!("{seen}:{via}\n")), "{via}: {log}");
    }
    assert_all_refused(&o, &log, &labels);
    assert_eq!(log.matches("refused:").count(), list.len(), "{log}");
}

/// Attempts, from a step, to reach what pid 1 holds open: the host's /proc (opened for the
/// supervisor), the caller's descriptors, and pid 1's environment and memory.
fn pid1_attempts(s: &Scratch, mark: &str, host_mark: &str) -> Vec<(&'static str, String)> {
    let target = s.path().join(host_mark);
    let t = target.display();
    vec![
        ("pid1-fd-list", "ls /proc/1/fd >/dev/null 2>&1".to_string()),
        (
            "pid1-fd-open",
            "n=0; for f in /proc/1/fd/*; do \
             timeout 2 dd if=\"$f\" of=/dev/null bs=1 count=0 2>/dev/null && n=$((n+1)); \
             ls \"$f/\" >/dev/null 2>&1 && n=$((n+1)); done; test $n != 0"
                .to_string(),
        ),
        (
            "pid1-fd-hostproc",
            "n=0; for f in /proc/1/fd/*; do for p in \"$f\"/[0-9]*; do \
             test -L \"$p/root\" && n=$((n+1)); done; done 2>/dev/null; test $n != 0"
                .to_string(),
        ),
        (
            "pid1-fd-cmdline",
            format!(
                "cat /proc/1/fd/*/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' \
                 | grep -q '{mark}-[s]leep'"
            ),
        ),
        (
            "pid1-fd-write",
            format!(
                "for p in /proc/1/fd/*/[0-9]*; do touch \"$p/root{t}\"; done 2>/dev/null; \
                 ls /proc/1/fd/*/[0-9]*/root{t} >/dev/null 2>&1"
            ),
        ),
        (
            "pid1-environ",
            "test \"$(cat /proc/1/environ 2>/dev/null | wc -c)\" != 0".to_string(),
        ),
        (
            "pid1-mem",
            "test \"$(head -c 1 /proc/1/mem 2>/dev/null | wc -c)\" != 0".to_string(),
        ),
    ]
}

#[test]
fn isolation_build_cannot_reach_pid1_descriptors() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("pidfd");
    let host_mark = format!("{mark}.host");
    // A host process whose command line only the host's /proc shows.
    let (mut sleeper, _) = host_sleeper(&s, &mark);
    let list = pid1_attempts(&s, &mark, &host_mark);
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    // Controls: a step still starts normally, and exec made it dumpable again (its own fds
    // are there to list), and pid 1 exists.
    let control = "ls /proc/self/fd >/dev/null && test -d /proc/1 && echo control-ok\n".to_string();
    let (o, log) = build(&s, "isopidfd", &[control, attempts(&list)]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let written = s.path().join(&host_mark).exists();
    assert!(log.contains("control-ok"), "{log}");
    assert!(
        !written,
        "a step wrote on the host through pid 1's descriptors"
    );
    assert_all_refused(&o, &log, &labels);
}

#[test]
fn isolation_run_pid1_descriptors_closed_callers_kept() {
    if util::no_userns() {
        return;
    }
    // Run mode shows the host by design; only check that pid 1 holds nothing of nsroot's own
    // for a command to pick up, while the caller's descriptors still reach the command.
    let s = Scratch::new();
    let mark = marker("runfd");
    let file = s.write(&format!("{mark}.txt"), "kept\n");
    let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an inheritable descriptor at a high number, as a caller's jobserver would be.
    let fd: RawFd = unsafe {
        let low = libc::open(path.as_ptr(), libc::O_RDONLY);
        assert!(low >= 0);
        let high = libc::fcntl(low, libc::F_DUPFD, 71);
        libc::close(low);
        high
    };
    let o = s.nsroot([
        "sh",
        "-c",
        &format!(
            "cat /proc/self/fd/{fd}; \
             if ls /proc/1/fd >/dev/null 2>&1; then echo ESCAPED:list; else echo refused:list; fi"
        ),
    ]);
    // SAFETY: closes the descriptor this test opened.
    unsafe { libc::close(fd) };
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("kept\n"), "{out}{}", stderr(&o));
    assert!(out.contains("refused:list"), "{out}");
}

/// Runs `nsroot build` for `pkg` as the test user inside a private mount namespace of the
/// (root) test process, after `setup` ran there as root; `after` runs there once the build is
/// done. Returns nsroot's output (with `after`'s stdout appended) and the build log; None
/// (after a skip) when the suite does not run as root.
fn build_in_private_mounts(
    s: &Scratch,
    pkg: &str,
    steps: &[String],
    setup: &str,
    after: &str,
) -> Option<(Output, String)> {
    if env().drop_to.is_none() {
        util::skip("mounting under /usr for the test needs the suite to run as root");
        return None;
    }
    if util::missing_tool("unshare") {
        return None;
    }
    let recipe = recipe_of(s, pkg, steps);
    let tmp = private_tmpdir(s, "tmp");
    let out = s.path().join("out");
    let mut inner = env().nsroot();
    inner.arg("build").arg(&recipe).arg("-o").arg(&out);
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "set -e; {setup}\nset +e; \"$@\"; st=$?; {after}\nexit $st"
        ))
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let o = c
        .env("TMPDIR", &tmp)
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out.join(format!("{pkg}_1.0-1_amd64.build.log")))
        .unwrap_or_default();
    Some((o, log))
}

/// A tmpfs the test user may write to (mode 1777), mounted on `dir` in the private mount
/// namespace, with a control that the test user can write there outside nsroot.
fn writable_tmpfs_setup(dir: &str, mark: &str) -> String {
    let e = env();
    format!(
        "mount -t tmpfs -o mode=1777 tmpfs {dir}\n\
         setpriv --reuid={u} --regid={g} --clear-groups -- touch {dir}/{mark}.control\n\
         test -e {dir}/{mark}.control && rm {dir}/{mark}.control && echo control-writable",
        u = e.uid,
        g = e.gid
    )
}

#[test]
fn isolation_build_readonly_binds_are_recursive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("rorec");
    let list = [
        (
            "usr-submount-touch",
            format!("touch /usr/src/{mark} 2>/dev/null"),
        ),
        (
            "usr-submount-mkdir",
            format!("mkdir /usr/src/{mark}.d 2>/dev/null"),
        ),
    ];
    let labels: Vec<&str> = list.iter().map(|(l, _)| *l).collect();
    let control = "grep -q ' /usr/src ' /proc/self/mountinfo && echo control-submount\n";
    let Some((o, log)) = build_in_private_mounts(
        &s,
        "isororec",
        &[control.to_string(), attempts(&list)],
        &writable_tmpfs_setup("/usr/src", &mark),
        "echo AFTER:; ls -A /usr/src",
    ) else {
        return;
    };
    let out = stdout(&o);
    assert!(out.contains("control-writable"), "{out}{}", stderr(&o));
    assert!(log.contains("control-submount"), "{log}");
    let after = out.split("AFTER:").nth(1).unwrap_or("missing");
    assert!(
        !after.contains(&mark),
        "the build wrote under /usr/src: {after}"
    );
    assert_all_refused(&o, &log, &labels);
}

#[test]
fn isolation_build_cannot_remount_or_unmount_host_binds() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("remount");
    let mut list = Vec::new();
    for dir in ["/usr", "/etc", "/usr/src", "/"] {
        list.push((dir, format!("mount -o remount,rw,bind {dir} 2>/dev/null")));
    }
    list.push(("remount-root", "mount -o remount,rw / 2>/dev/null".into()));
    // Whatever the attempts before did, writing below stays refused: after the remounts, and
    // again after the unmounts.
    let touches = |list: &mut Vec<(&str, String)>| {
        for dir in ["/usr/src", "/usr", "/etc", ""] {
            list.push((dir, format!("touch {dir}/{mark} 2>/dev/null")));
        }
    };
    touches(&mut list);
    for dir in ["/usr/src", "/usr", "/etc"] {
        list.push((
            dir,
            format!("umount {dir} 2>/dev/null || umount -l {dir} 2>/dev/null"),
        ));
    }
    touches(&mut list);
    let labels: Vec<String> = list
        .iter()
        .enumerate()
        .map(|(i, (d, _))| format!("{i}{d}"))
        .collect();
    let list: Vec<(&str, String)> = labels
        .iter()
        .zip(list)
        .map(|(l, (_, c))| (l.as_str(), c))
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let Some((o, log)) = build_in_private_mounts(
        &s,
        "isoremount",
        &[attempts(&list)],
        &writable_tmpfs_setup("/usr/src", &mark),
        "echo AFTER:; ls -A /usr/src",
    ) else {
        return;
    };
    let out = stdout(&o);
    assert!(out.contains("control-writable"), "{out}{}", stderr(&o));
    let after = out.split("AFTER:").nth(1).unwrap_or("missing");
    assert!(
        !after.contains(&mark),
        "the build wrote under /usr/src: {after}"
    );
    assert_all_refused(&o, &log, &labels);
}

/// The host pid of the sandbox's pid 1 above host process `pid`: the nearest ancestor whose
/// innermost pid (the last NSpid field) is 1.
fn sandbox_pid1_above(pid: u32) -> Option<u32> {
    let mut p = pid;
    for _ in 0..16 {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_owned)
        };
        if field("NSpid:")?.split_whitespace().last() == Some("1") {
            return Some(p);
        }
        p = field("PPid:")?.parse().ok()?;
    }
    None
}

#[test]
fn isolation_build_pid1_holds_only_what_it_needs() {
    if util::no_userns() {
        return;
    }
    // Seen from the host: root may read a non-dumpable process's descriptors, the test user
    // may not.
    if env().drop_to.is_none() {
        util::skip("reading pid 1's descriptors from the host needs the suite to run as root");
        return;
    }
    let s = Scratch::new();
    let mark = marker("pid1fds");
    let script =
        format!("ln -s /bin/sleep /tmp/{mark}-sleep\necho running-{mark}\n/tmp/{mark}-sleep 60\n");
    let recipe = recipe_of(&s, "isopid1fds", &[script]);
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let mut c = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_text(
        &out.join("isopid1fds_1.0-1_amd64.build.log"),
        &format!("running-{mark}"),
        Duration::from_secs(30),
    );
    let mut fds = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fds.is_empty() && std::time::Instant::now() < deadline {
        let sleeper = host_processes(&format!("{mark}-sleep 60"));
        let pid1 = sleeper
            .first()
            .and_then(|l| l.split(':').next()?.parse().ok())
            .and_then(sandbox_pid1_above);
        if let Some(pid1) = pid1 {
            for e in std::fs::read_dir(format!("/proc/{pid1}/fd"))
                .unwrap()
                .flatten()
            {
                let target = std::fs::read_link(e.path()).unwrap_or_default();
                let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
                fds.push((e.file_name().to_string_lossy().into_owned(), target, is_dir));
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    signal(c.id(), libc::SIGTERM);
    wait_bounded(&mut c, Duration::from_secs(30), "the sleeping build");
    assert!(!fds.is_empty(), "pid 1 not found");
    for (fd, target, is_dir) in &fds {
        // The host's /proc (the supervisor's) or any directory; the scratch space's lock file.
        assert!(
            !is_dir,
            "pid 1 holds directory {} as fd {fd}",
            target.display()
        );
        assert!(
            !target.starts_with(&tmp) && !target.starts_with("/proc"),
            "pid 1 holds {} as fd {fd}",
            target.display()
        );
    }
}
