//! The escape battery of issue 12: an untrusted recipe (or a `nsroot run` command) trying to
//! make the ownership supervisor act outside what the build sees, to reach the caller's
//! terminal or keyring, to exhaust the host's memory through a tmpfs, to bypass the emulation
//! through io_uring, to lose a record at an overlay copy-up, or to outlive a `kill -INT`.
//! Each case asserts the host side is untouched and the answer inside is the one real root in
//! a container would get.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::faults::{
    build_command, marker, names, private_tmpdir, signal, wait_bounded, wait_no_processes,
    write_recipe,
};
use crate::isolation::home_of_test_user;
use crate::util::{self, assert_ok, env, stderr, stdout, Scratch, Terminal};

/// Writes recipe `dir` whose install step is `script` (a TOML literal), with `extra` TOML in
/// `[build]`, and builds it; returns nsroot's output and the build log.
fn build_with(s: &Scratch, pkg: &str, build: &str, script: &str) -> (std::process::Output, String) {
    assert!(!script.contains("'''"));
    let recipe = write_recipe(
        s,
        pkg,
        pkg,
        &format!("[build]\n{build}\n[install]\nsteps = ['''\n{script}''']\n"),
    );
    let tmp = private_tmpdir(s, &format!("{pkg}-tmp"));
    let out = s.path().join(format!("{pkg}-out"));
    let o = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(out.join(format!("{pkg}_1.0-1_amd64.build.log")))
        .unwrap_or_default();
    (o, log)
}

/// The line `label: ...` a step printed.
fn answer<'a>(log: &'a str, label: &str) -> &'a str {
    let key = format!("{label}: ");
    log.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no answer for {label}:\n{log}"))
}

/// A shell function `try LABEL CMD...` that prints `LABEL: ok` or `LABEL: <last error line>`.
const TRY: &str = r#"set +e
try() { label=$1; shift; if "$@" >/tmp/out 2>/tmp/err; then echo "$label: ok $(cat /tmp/out)"; else echo "$label: $(tail -n1 /tmp/err)"; fi; }
"#;

/// A host directory the test user owns with one file in it, the canary.
fn canary(s: &Scratch) -> (PathBuf, PathBuf) {
    let dir = s.path().join("canary");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, "canary\n").unwrap();
    s.chown_all();
    (dir, file)
}

fn snapshot(dir: &Path) -> Vec<(String, u32, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (e.path().display().to_string(), m.mode(), m.len())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn escape_build_supervisor_acts_only_inside_the_sandbox() {
    if util::no_userns() || util::missing_tool("setfattr") {
        return;
    }
    let s = Scratch::new();
    let (dir, file) = canary(&s);
    let before = snapshot(&dir);
    let home = home_of_test_user();
    let mark = marker("esc");
    let home_target = home.join(&mark);
    let c = dir.display().to_string();
    let script = format!(
        r#"{TRY}D=$DESTDIR
echo x > $D/f; chown 3:3 $D/f
ln -s {c} $D/c; ln -s {h} $D/h; ln -s / $D/root; ln -s ../../../../../../../.. $D/up
try mknod-abs mknod $D/c/new c 1 3
try mknod-home mknod $D/h/{mark} c 1 3
try chown-abs chown 5:5 $D/c/file
try chgrp-abs chgrp 5 $D/c/file
try setxattr-abs setfattr -n security.nsroot -v 1 $D/c/file
try stat-abs stat -c %i $D/c/file
try chown-rootlink chown 5:5 $D/root{c}/file
try chown-dotdot chown 5:5 $D/../../../../../../..{c}/file
try chown-uplink chown 5:5 $D/up{c}/file
try mknod-uplink mknod $D/up{c}/new2 c 1 3
try chown-proc1 chown 5:5 /proc/1/root{c}/file
try chown-hostpid chown 5:5 /proc/{hostpid}/root{c}/file
try stat-hostpid stat /proc/{hostpid}/cwd
try mknod-proc1 mknod /proc/1/root/build/destdir/p1 c 1 3
try mknod-procself mknod /proc/self/root/build/destdir/ps c 1 3
exec 3<$D/f
try chown-procfd chown 7:7 /proc/self/fd/3
try stat-after-procfd stat -c %u:%g $D/f
try chown-devfd chown 8:8 /dev/fd/3
try stat-after-devfd stat -c %u:%g $D/f
try chown-threadself chown 9:9 /proc/thread-self/fd/3
try stat-procfd stat -L -c %u:%g /proc/self/fd/3
try stat-devfd stat -L -c %u:%g /dev/fd/3
try stat-threadself stat -L -c %u:%g /proc/thread-self/fd/3
try stat-selfcwd stat -c %u:%g /proc/self/cwd/../destdir/f
exec 3<&-
rm -f $D/c $D/h $D/root $D/up
"#,
        h = home.display(),
        // A host process (this test's): not in the sandbox's pid namespace.
        hostpid = std::process::id(),
    );
    let (o, log) = build_with(&s, "escsup", "", &script);
    assert_ok(&o);
    for (label, want) in [
        ("mknod-abs", "No such file or directory"),
        ("mknod-home", "No such file or directory"),
        ("chown-abs", "No such file or directory"),
        ("chgrp-abs", "No such file or directory"),
        ("setxattr-abs", "No such file or directory"),
        ("stat-abs", "No such file or directory"),
        ("chown-rootlink", "No such file or directory"),
        ("chown-dotdot", "No such file or directory"),
        ("chown-uplink", "No such file or directory"),
        ("mknod-uplink", "No such file or directory"),
        // pid 1 is not the step's to look into (it is not dumpable): the kernel says so.
        ("chown-proc1", "Permission denied"),
        ("chown-hostpid", "No such file or directory"),
        ("stat-hostpid", "No such file or directory"),
        ("mknod-proc1", "Permission denied"),
    ] {
        assert!(
            answer(&log, label).contains(want),
            "{label}: {}\n{log}",
            answer(&log, label)
        );
    }
    assert_eq!(answer(&log, "mknod-procself"), "ok ", "{log}");
    for (label, want) in [
        ("stat-after-procfd", "ok 7:7"),
        ("stat-after-devfd", "ok 8:8"),
        ("stat-procfd", "ok 9:9"),
        ("stat-devfd", "ok 9:9"),
        ("stat-threadself", "ok 9:9"),
        ("stat-selfcwd", "ok 9:9"),
    ] {
        assert_eq!(answer(&log, label), want, "{label}\n{log}");
    }
    for label in ["chown-procfd", "chown-devfd", "chown-threadself"] {
        assert_eq!(answer(&log, label), "ok ", "{label}\n{log}");
    }
    // The host: the canary directory as it was, nothing new in the home directory.
    assert_eq!(snapshot(&dir), before, "the canary directory changed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "canary\n");
    assert!(
        !home_target.exists(),
        "{} was created",
        home_target.display()
    );
    // The device made through /proc/self/root is in the package, as a device.
    let list = s.nsroot([
        "list",
        &s.path()
            .join("escsup-out/escsup_1.0-1_amd64.tar.gz")
            .display()
            .to_string(),
    ]);
    assert_ok(&list);
    let dev = stdout(&list)
        .lines()
        .find(|l| l.ends_with(" ./ps"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    assert!(
        dev.starts_with("crw-r--r-- root/root 1,3 "),
        "{}",
        stdout(&list)
    );
}

/// A C program that chroots into argv[1] and then runs mknod(argv[2]) and chown(argv[3]),
/// printing each result: the supervisor must resolve them inside the new root.
const CHROOT_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    if (chroot(argv[1]) != 0 || chdir("/") != 0) { perror("chroot"); return 1; }
    int r = mknod(argv[2], S_IFCHR | 0644, makedev(1, 3));
    printf("mknod: %s\n", r == 0 ? "ok" : strerror(errno));
    r = chown(argv[3], 5, 6);
    printf("chown: %s\n", r == 0 ? "ok" : strerror(errno));
    struct stat st;
    r = stat(argv[3], &st);
    if (r == 0) printf("stat: %u:%u\n", st.st_uid, st.st_gid); else printf("stat: %s\n", strerror(errno));
    return 0;
}
"#;

fn compile(s: &Scratch, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let c = s.path().join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let bin = s.path().join(name);
    let o = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&bin)
        .arg(&c)
        .output()
        .unwrap();
    assert_ok(&o);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.chown_all();
    bin
}

#[test]
fn escape_run_after_chroot_resolves_inside_the_new_root() {
    if util::no_userns() || util::missing_tool("gcc") {
        return;
    }
    let s = Scratch::new();
    let (dir, _file) = canary(&s);
    let bin = compile(&s, "chrootprobe", CHROOT_C, &["-static"]);
    let jail = s.path().join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    std::fs::write(jail.join("inside"), "x").unwrap();
    // In the jail an absolute link to the canary's host path means the jail's own (absent)
    // path, and `..` stops at the jail's root.
    std::os::unix::fs::symlink(&dir, jail.join("c")).unwrap();
    std::os::unix::fs::symlink("/", jail.join("root")).unwrap();
    s.chown_all();
    let before = snapshot(&dir);
    let o = s.nsroot([
        bin.to_str().unwrap(),
        jail.to_str().unwrap(),
        "/c/new",
        "/root/../../../inside",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("mknod: No such file or directory"), "{out}");
    assert!(out.contains("chown: ok"), "{out}");
    assert!(out.contains("stat: 5:6"), "{out}");
    assert_eq!(
        snapshot(&dir),
        before,
        "the host's canary directory changed"
    );
    // Through a symlink inside the jail that leads to the jail's root.
    let o = s.nsroot([
        bin.to_str().unwrap(),
        jail.to_str().unwrap(),
        "/root/dev1",
        "/root/c/../inside",
    ]);
    let out = stdout(&o);
    assert!(out.contains("mknod: ok"), "{out}");
    assert!(jail.join("dev1").exists(), "{out}");
    assert!(!dir.join("dev1").exists());
}

#[test]
fn escape_run_proc_self_fd_means_the_caller() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    s.write("f", "x");
    let o = s.nsroot([
        "sh",
        "-c",
        "exec 3<f; chown 7:8 /proc/self/fd/3 && stat -c %u:%g f && chown 9:9 /dev/fd/3 && \
         stat -L -c %u:%g /dev/fd/3 /proc/thread-self/fd/3",
    ]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "7:8\n9:9\n9:9\n", "{}", stderr(&o));
}

#[test]
fn escape_build_steps_have_no_terminal() {
    if util::no_userns() || util::missing_tool("script") || util::missing_tool("python3") {
        return;
    }
    let s = Scratch::new();
    let script = r#"tty || true
python3 -c '
import fcntl, termios
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print("TIOCSTI-WORKED", fd)
    except OSError as e:
        print("tiocsti-refused", fd, e.errno)
try:
    open("/dev/tty", "rb")
    print("DEVTTY-OPENED")
except OSError as e:
    print("devtty-refused", e.errno)
'
"#;
    let recipe = write_recipe(
        &s,
        "escty",
        "escty",
        &format!("[build]\nsteps = ['''\n{script}''']\n"),
    );
    let out = s.path().join("out");
    let line = format!(
        "{} build {} -o {}; echo \"status=$?\"",
        env().bin.display(),
        recipe.display(),
        out.display()
    );
    let t = Terminal::start(&line, s.path(), &[]);
    t.wait_for("status=", 120);
    let (_, text) = t.finish();
    assert!(text.contains("status=0"), "{text}");
    let log = std::fs::read_to_string(out.join("escty_1.0-1_amd64.build.log")).unwrap();
    assert!(log.contains("not a tty"), "{log}");
    for fd in 0..3 {
        assert!(log.contains(&format!("tiocsti-refused {fd} 25")), "{log}"); // ENOTTY
    }
    assert!(log.contains("devtty-refused 6"), "{log}"); // ENXIO: no controlling terminal
    assert!(!log.contains("WORKED") && !log.contains("OPENED"), "{log}");
}

#[test]
fn escape_build_has_its_own_session_keyring() {
    if util::no_userns() || util::missing_tool("keyctl") {
        return;
    }
    let s = Scratch::new();
    let mark = marker("key");
    let recipe = write_recipe(
        &s,
        "esckey",
        "esckey",
        &format!(
            "[build]\nsteps = ['''\nkeyctl search @s user {mark}-canary && echo KEY-VISIBLE || echo key-hidden\n\
             keyctl add user {mark}-planted x @s >/dev/null && echo planted\n''']\n"
        ),
    );
    let tmp = private_tmpdir(&s, "tmp");
    let script = format!(
        "keyctl new_session >/dev/null && keyctl add user {mark}-canary secret @s >/dev/null || exit 9\n\
         TMPDIR={tmp} {bin} build {recipe} -o out >/dev/null 2>&1; echo build=$?\n\
         keyctl search @s user {mark}-planted >/dev/null 2>&1 && echo PLANT-SURVIVED || echo plant-gone\n\
         {bin} -- keyctl search @s user {mark}-canary >/dev/null && echo run-sees-caller-keys\n",
        tmp = tmp.display(),
        bin = env().bin.display(),
        recipe = recipe.display(),
    );
    let o = s.sh(&script);
    let text = stdout(&o);
    assert!(text.contains("build=0"), "{text}{}", stderr(&o));
    let log = std::fs::read_to_string(s.path().join("out/esckey_1.0-1_amd64.build.log")).unwrap();
    assert!(
        log.contains("key-hidden") && log.contains("planted"),
        "{log}"
    );
    assert!(!log.contains("KEY-VISIBLE"), "{log}");
    assert!(text.contains("plant-gone"), "{text}");
    // Run mode is fakeroot's: the caller's keyring.
    assert!(
        text.contains("run-sees-caller-keys"),
        "{text}{}",
        stderr(&o)
    );
}

#[test]
fn escape_build_tmpfs_is_bounded() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "escfill",
        "escfill",
        "[build]\ntmpfs_size = \"8M\"\nsteps = ['dd if=/dev/zero of=/tmp/fill bs=1M count=24']\n",
    );
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let o = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "/tmp is full: its limit is 8 MiB (raise it with [build] tmpfs_size or --tmpfs-size)"
        ),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    // --tmpfs-size raises it: the same 24 MiB fit.
    let recipe = write_recipe(
        &s,
        "escfit",
        "escfit",
        "[build]\ntmpfs_size = \"8M\"\nsteps = ['dd if=/dev/zero of=/tmp/fill bs=1M count=24 status=none', 'test $(stat -c %s /tmp/fill) -eq 25165824']\n",
    );
    let o = build_command(&recipe, &out, &tmp)
        .arg("--tmpfs-size")
        .arg("32M")
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(names(&tmp).is_empty(), "scratch left: {:?}", names(&tmp));
}

#[test]
fn escape_record_survives_overlay_copy_up() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "esccopy",
        "esccopy",
        "[build]\nsteps = ['chown 5:5 f; echo more >> f; stat -c %u:%g f > /build/home/seen; cat /build/home/seen']\n\
         [install]\nsteps = ['cp -a f $DESTDIR/f']\n",
    );
    s.write("esccopy/src/f", "lower\n");
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let o = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    let log = std::fs::read_to_string(out.join("esccopy_1.0-1_amd64.build.log")).unwrap();
    assert!(log.contains("5:5\n"), "{log}");
    let list = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(out.join("esccopy_1.0-1_amd64.tar.gz"))
        .output()
        .unwrap();
    assert!(stdout(&list).contains(" 5/5 "), "{}", stdout(&list));
    // The sources are untouched.
    assert_eq!(
        std::fs::read_to_string(s.path().join("esccopy/src/f")).unwrap(),
        "lower\n"
    );
}

/// io_uring_setup(2) by raw system call: ENOSYS under emulation (its requests would bypass
/// the filter), and the program is told so instead of being killed.
const URING_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    unsigned char params[120];
    memset(params, 0, sizeof params);
    long r = syscall(SYS_io_uring_setup, 4, params);
    printf("io_uring_setup: %s\n", r >= 0 ? "ok" : strerror(errno));
    return 0;
}
"#;

#[test]
fn escape_io_uring_is_refused_under_emulation() {
    if util::no_userns() || util::missing_tool("gcc") {
        return;
    }
    let s = Scratch::new();
    let bin = compile(&s, "uring", URING_C, &["-static"]);
    let o = s.nsroot([bin.to_str().unwrap()]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "io_uring_setup: Function not implemented\n");
    // --no-emulate has no filter: the kernel's own answer (whatever io_uring_disabled says).
    let bare = s.sh(bin.to_str().unwrap());
    let o = s.nsroot(["--no-emulate", bin.to_str().unwrap()]);
    assert_eq!(stdout(&o), stdout(&bare));
}

#[test]
fn escape_kill_int_stops_a_build() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("kint");
    let recipe = write_recipe(
        &s,
        "esckint",
        "esckint",
        &format!("[build]\nsteps = ['echo started; ln -s /bin/sleep /tmp/{mark}-sleep; /tmp/{mark}-sleep 60']\n"),
    );
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let mut child = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = out.join("esckint_1.0-1_amd64.build.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started")
        || crate::faults::host_processes(&format!("{mark}-sleep 60")).is_empty()
    {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // As a CI runner's cancel or `kill -INT` does: to nsroot alone, not to its group.
    signal(child.id(), libc::SIGINT);
    let sent = Instant::now();
    let st = wait_bounded(&mut child, Duration::from_secs(10), "the interrupted build");
    let took = sent.elapsed();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGINT), "{st:?} after {took:?}");
    assert!(wait_no_processes(&format!("{mark}-sleep 60"), Duration::from_secs(5)).is_empty());
    let left: Vec<String> = names(&out)
        .into_iter()
        .filter(|n| !n.ends_with(".build.log"))
        .collect();
    assert!(left.is_empty(), "outputs left: {left:?}");
    assert!(names(&tmp).is_empty(), "scratch left: {:?}", names(&tmp));
    eprintln!("kill -INT stopped the build in {took:?}");
}
