//! Recorded ownership (issue 5): the seccomp supervisor, the store and state files, tested
//! through `ownership::run_supervised` without a user namespace.
//!
//! When the suite runs as root, each session runs in a copy of this test binary started as
//! the unprivileged test user (`child_session`), so that the supervisor and the command are
//! both unprivileged, as under `nsroot`; the store travels through state files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nsroot::ownership::{self, Lookup, Store};

use crate::util::{self, Scratch};

const CHILD_VAR: &str = "NSROOT_IT_CHILD_DIR";

/// This test binary, where the test user can run it.
fn test_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let me = std::env::current_exe().unwrap();
        let env = util::env();
        if env.drop_to.is_none() {
            return me;
        }
        let copy = env.root_dir.join("it-ownership");
        std::fs::copy(&me, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    })
    .clone()
}

/// The command that runs `script` as its own session: the supervisor and `sh -c script` run
/// in a fresh process of this test binary (see `child_session`). `io` is a directory for the
/// session's streams and state files.
fn session_command(dir: &Path, script: &str, io: &Path) -> Command {
    let mut c = util::env().command(test_exe());
    c.args([
        "--exact",
        "ownership::child_session",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_VAR, io)
    .env("NSROOT_IT_SCRIPT", script)
    .env("NSROOT_IT_CWD", dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// A session's result.
struct Session {
    status: i32,
    stdout: String,
    stderr: String,
    store: Store,
}

/// Runs `sh -c script` in `dir` under the supervisor, starting from `store`.
fn session(dir: &Path, script: &str, store: &Store) -> Session {
    let io = Scratch::new();
    store.save(&io.path().join("in")).unwrap();
    io.chown_all();
    let out = session_command(dir, script, io.path()).output().unwrap();
    let read = |n: &str| std::fs::read_to_string(io.path().join(n)).unwrap_or_default();
    let status = read("status").trim().parse().unwrap_or_else(|_| {
        panic!(
            "the session runner failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            util::stdout(&out),
            util::stderr(&out)
        )
    });
    let s = Session {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
        store: Store::load(&io.path().join("out")).unwrap(),
    };
    eprintln!(
        "script: {script}\nstatus {}\nstdout:\n{}stderr:\n{}",
        s.status, s.stdout, s.stderr
    );
    s
}

/// `session`, asserting success.
#[track_caller]
fn ok_session(dir: &Path, script: &str, store: &Store) -> Session {
    let s = session(dir, script, store);
    assert_eq!(
        s.status, 0,
        "script failed: {script}\nstderr:\n{}",
        s.stderr
    );
    s
}

/// The body of a session, run in a fresh process of this binary by `session` (ignored
/// otherwise). Streams, exit status and the final store go to files in $NSROOT_IT_CHILD_DIR.
#[test]
#[ignore = "helper process of the ownership tests"]
fn child_session() {
    let Some(io) = std::env::var_os(CHILD_VAR).map(PathBuf::from) else {
        return;
    };
    let script = std::env::var("NSROOT_IT_SCRIPT").unwrap();
    let cwd = std::env::var("NSROOT_IT_CWD").unwrap();
    let store = Store::load(&io.join("in")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(&cwd)
        .env_remove(CHILD_VAR)
        .env("NSROOT_IT_EXE", std::env::current_exe().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, store) = ownership::run_supervised(&mut cmd, store).unwrap();
    std::fs::write(io.join("stdout"), &out.stdout).unwrap();
    std::fs::write(io.join("stderr"), &out.stderr).unwrap();
    store.save(&io.join("out")).unwrap();
    std::fs::write(
        io.join("status"),
        out.status.code().unwrap_or(128).to_string(),
    )
    .unwrap();
}

fn ids() -> String {
    let env = util::env();
    format!("{}:{}", env.uid, env.gid)
}

#[test]
fn emulation_is_available() {
    ownership::emulation_available().unwrap();
}

#[test]
fn doctor_reports_ownership_emulation() {
    let out = Scratch::new().nsroot(["doctor"]);
    let stdout = util::stdout(&out);
    let line = stdout
        .lines()
        .find(|l| l.contains("ownership emulation (seccomp user notification)"));
    assert!(
        line.is_some_and(|l| l.starts_with("ok ")),
        "doctor: {stdout}"
    );
}

#[test]
fn chown_then_stat_ls_find_show_recorded_owner() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch f && chown 33:33 f && stat -c %u:%g f && ls -ln f | awk '{print $3\":\"$4}' \
         && find . -name f -printf '%U:%G\\n' && chgrp 44 f && stat -c %u:%g f",
        &Store::new(),
    );
    assert_eq!(s.stdout, "33:33\n33:33\n33:33\n33:44\n");
    // On disk the file stays the user's, who can always delete it.
    let m = std::fs::metadata(sc.path().join("f")).unwrap();
    assert_eq!(format!("{}:{}", m.uid(), m.gid()), ids());
    assert_eq!(s.store.len(), 1);
}

/// A C program doing each call through the raw syscall, so every entry of the filter is
/// exercised; built static and dynamic.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
static void show(const char *what, struct stat *st) {
    printf("%s %u:%u %o %u,%u\n", what, st->st_uid, st->st_gid, st->st_mode,
           major(st->st_rdev), minor(st->st_rdev));
}
int main(void) {
    struct stat st;
    int fd = open("f", O_CREAT | O_WRONLY, 0644);
    if (fd < 0 || close(fd)) return 10;
    if (syscall(SYS_chown, "f", 33, 44)) return 11;
    if (syscall(SYS_stat, "f", &st)) return 12; show("stat", &st);
    if (symlink("f", "l")) return 13;
    if (syscall(SYS_lchown, "l", 5, 6)) return 14;
    if (syscall(SYS_lstat, "l", &st)) return 15; show("lstat", &st);
    if (syscall(SYS_stat, "l", &st)) return 16; show("stat-l", &st);
    fd = open("f", O_RDONLY);
    if (syscall(SYS_fchown, fd, -1, 45)) return 17;
    if (syscall(SYS_fstat, fd, &st)) return 18; show("fstat", &st);
    int dfd = open(".", O_RDONLY | O_DIRECTORY);
    if (syscall(SYS_fchownat, dfd, "f", 34, -1, 0)) return 19;
    if (syscall(SYS_newfstatat, dfd, "f", &st, 0)) return 20; show("fstatat", &st);
    if (syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH)) return 21; show("emptypath", &st);
    struct statx sx;
    if (syscall(SYS_statx, AT_FDCWD, "f", 0, STATX_BASIC_STATS, &sx)) return 22;
    printf("statx %u:%u\n", sx.stx_uid, sx.stx_gid);
    if (syscall(SYS_mknod, "d", S_IFCHR | 0666, makedev(1, 3))) return 23;
    if (syscall(SYS_mknodat, dfd, "b", S_IFBLK | 0640, makedev(8, 17))) return 24;
    if (stat("d", &st)) return 25; show("dev", &st);
    if (lstat("b", &st)) return 26; show("blk", &st);
    if (syscall(SYS_statx, dfd, "b", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx)) return 27;
    printf("statx-blk %o %u,%u\n", sx.stx_mode, sx.stx_rdev_major, sx.stx_rdev_minor);
    if (syscall(SYS_chown, "missing", 1, 1) == 0) return 28;
    perror("chown missing");
    if (syscall(SYS_mknod, "d", S_IFCHR | 0666, makedev(1, 3)) == 0) return 29;
    perror("mknod again");
    return 0;
}
"#;

const PROBE_EXPECTED: &str =
    "stat 33:44 100644 0,0\nlstat 5:6 120777 0,0\nstat-l 33:44 100644 0,0\n\
fstat 33:45 100644 0,0\nfstatat 34:45 100644 0,0\nemptypath 34:45 100644 0,0\nstatx 34:45\n\
dev 0:0 20644 1,3\nblk 0:0 60640 8,17\nstatx-blk 60640 8,17\n";

fn probe_test(static_link: bool) {
    if util::missing_tool("gcc") {
        return;
    }
    let sc = Scratch::new();
    let src = sc.write("probe.c", PROBE_C);
    let mut gcc = Command::new("gcc");
    if static_link {
        gcc.arg("-static");
    }
    let out = gcc
        .arg("-O1")
        .arg("-o")
        .arg(sc.path().join("probe"))
        .arg(&src)
        .output()
        .unwrap();
    util::assert_ok(&out);
    sc.chown_all();
    let s = ok_session(sc.path(), "umask 022 && ./probe", &Store::new());
    // mknod's files take the session's ids on disk: 0:0 is not a default, fix the expectation.
    let expected = PROBE_EXPECTED
        .replace("dev 0:0", &format!("dev {}", ids()))
        .replace("blk 0:0", &format!("blk {}", ids()));
    assert_eq!(s.stdout, expected);
    assert!(
        s.stderr
            .contains("chown missing: No such file or directory"),
        "{}",
        s.stderr
    );
    assert!(
        s.stderr.contains("mknod again: File exists"),
        "{}",
        s.stderr
    );
    // Device nodes are empty regular files on disk.
    let d = std::fs::symlink_metadata(sc.path().join("d")).unwrap();
    assert!(d.file_type().is_file() && d.len() == 0);
    assert_eq!(d.mode() & 0o7777, 0o644, "the target's umask 022 applies");
    if static_link {
        let file = Command::new("file").arg(sc.path().join("probe")).output();
        if let Ok(f) = file {
            let f = util::stdout(&f);
            assert!(f.contains("statically linked") || f.is_empty(), "{f}");
        }
    }
}

#[test]
fn every_call_is_emulated_for_a_dynamic_program() {
    probe_test(false);
}

#[test]
fn every_call_is_emulated_for_a_static_program() {
    probe_test(true);
}

#[test]
fn mknod_device_stays_a_device_through_chmod() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "mknod d c 1 3 && stat -c '%F:%t:%T' d && chmod 600 d && stat -c '%F:%a' d && ls -ln d | cut -c1",
        &Store::new(),
    );
    assert_eq!(
        s.stdout,
        "character special file:1:3\ncharacter special file:600\nc\n"
    );
    let m = std::fs::symlink_metadata(sc.path().join("d")).unwrap();
    assert!(
        m.file_type().is_file(),
        "the device is a regular file on disk"
    );
    // A FIFO is made by the kernel, not recorded.
    let s = ok_session(sc.path(), "mkfifo p && stat -c %F p", &s.store);
    assert_eq!(s.stdout, "fifo\n");
    assert_eq!(s.store.len(), 1);
}

#[test]
fn records_follow_rename_and_hard_links() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch f && chown 5:6 f && mv f g && ln g h && mkdir sub && mv h sub/h && stat -c %u:%g g sub/h",
        &Store::new(),
    );
    assert_eq!(s.stdout, "5:6\n5:6\n");
}

#[test]
fn cp_a_keeps_recorded_owners_and_cp_r_does_not() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "mkdir t && touch t/f && ln -s f t/l && chown -R 33:33 t && chown -h 7:7 t/l && cp -a t a && cp -r t r \
         && stat -c %u:%g a/f a && stat -c %u:%g -- a/l && stat -c %u:%g r/f",
        &Store::new(),
    );
    // cp -r makes new files and chowns nothing: they show the unrecorded view (the disk owner
    // here; 0:0 inside nsroot's user namespace).
    assert_eq!(s.stdout, format!("33:33\n33:33\n7:7\n{}\n", ids()));
}

#[test]
fn cp_p_and_chown_reference() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch ref f && chown 7:8 ref && chown --reference=ref f && cp -p ref c && stat -c %u:%g f c",
        &Store::new(),
    );
    assert_eq!(s.stdout, "7:8\n7:8\n");
}

#[test]
fn chown_after_chmod_6755_keeps_setid_bits_and_umask_022_gives_644() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "umask 022 && touch f g && chmod 6755 f && chown 33:33 f && stat -c %a f g",
        &Store::new(),
    );
    assert_eq!(s.stdout, "6755\n644\n");
}

#[test]
fn chown_errors_are_the_kernels() {
    let sc = Scratch::new();
    let s = session(sc.path(), "chown 1:1 missing", &Store::new());
    assert_ne!(s.status, 0);
    assert!(
        s.stderr.contains("No such file or directory"),
        "{}",
        s.stderr
    );
    // A file owned by someone else (root here): EPERM, as the kernel says to namespace root for
    // a file outside its user namespace.
    let s = session(sc.path(), "chown 1:1 /etc/passwd", &Store::new());
    assert_ne!(s.status, 0);
    assert!(s.stderr.contains("Operation not permitted"), "{}", s.stderr);
    assert!(s.store.is_empty());
}

#[test]
fn gnu_tar_archives_recorded_owners_and_devices() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "mkdir t && touch t/f && chown 33:44 t/f && mknod t/d c 1 3 && chown 0:6 t/d \
         && tar --numeric-owner -cvf - t | tar --numeric-owner -tvf - | sort -k6 | awk '{print $1, $2, $3}'",
        &Store::new(),
    );
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", s.stdout);
    assert!(lines[1].starts_with("crw-r--r-- 0/6 1,3"), "{}", s.stdout);
    assert!(lines[2].starts_with("-rw-r--r-- 33/44"), "{}", s.stdout);
}

#[test]
fn env_i_and_empty_ld_preload_children_are_covered() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch f && chown 33:33 f && env -i /usr/bin/stat -c %u:%g f && LD_PRELOAD= stat -c %u:%g f \
         && env -i /bin/sh -c 'chown 9:9 f' && stat -c %u:%g f",
        &Store::new(),
    );
    assert_eq!(s.stdout, "33:33\n33:33\n9:9\n");
}

#[test]
fn state_file_carries_records_to_a_second_session() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch f && chown 33:33 f && mknod d b 8 1",
        &Store::new(),
    );
    let st = sc.path().join("state");
    s.store.save(&st).unwrap();
    let loaded = Store::load(&st).unwrap();
    assert_eq!(loaded, s.store);
    let s2 = ok_session(sc.path(), "stat -c %u:%g f && stat -c %F:%t:%T d", &loaded);
    assert_eq!(s2.stdout, "33:33\nblock special file:8:1\n");
    // The archiver's view agrees.
    let meta = std::fs::symlink_metadata(sc.path().join("f")).unwrap();
    let r = loaded.lookup(&sc.path().join("f"), &meta).unwrap();
    assert_eq!((r.uid, r.gid), (Some(33), Some(33)));
}

/// Regression test for KF-INODE-REUSE: a recorded file deleted outside any session, whose
/// inode number is then reused, must not inherit the record.
#[test]
fn reused_inode_does_not_inherit_a_record() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch victim && chown 33:33 victim && chmod 4755 victim",
        &Store::new(),
    );
    let victim = sc.path().join("victim");
    let ino = std::fs::metadata(&victim).unwrap().ino();
    std::fs::remove_file(&victim).unwrap();
    let mut reused = None;
    for i in 0..20_000 {
        let p = sc.path().join(format!("n{i}"));
        std::fs::write(&p, "").unwrap();
        if std::fs::metadata(&p).unwrap().ino() == ino {
            reused = Some(p);
            break;
        }
    }
    let Some(reused) = reused else {
        util::skip("the filesystem did not reuse the inode number within 20000 files");
        return;
    };
    sc.chown_all();
    let meta = std::fs::symlink_metadata(&reused).unwrap();
    assert!(
        s.store.lookup(&reused, &meta).is_none(),
        "the archiver would apply a stale record"
    );
    let name = reused.file_name().unwrap().to_str().unwrap();
    let s2 = ok_session(sc.path(), &format!("stat -c %u:%g {name}"), &s.store);
    assert_eq!(s2.stdout, format!("{}\n", ids()));
}

#[test]
fn setcap_and_getcap_work_inside() {
    if util::missing_tool("setcap") || util::missing_tool("getcap") {
        return;
    }
    let sc = Scratch::new();
    // setcap raises CAP_SETFCAP in its own set first: give it one, as nsroot's namespace root.
    if util::no_userns() {
        return;
    }
    let s = ok_session(
        sc.path(),
        "touch f && unshare --user --map-root-user sh -c 'setcap cap_net_raw+ep f && getcap f'",
        &Store::new(),
    );
    assert!(s.stdout.contains("f cap_net_raw=ep"), "{}", s.stdout);
    let meta = std::fs::symlink_metadata(sc.path().join("f")).unwrap();
    let r = s.store.lookup(&sc.path().join("f"), &meta).unwrap();
    assert_eq!(r.xattrs.len(), 1);
    assert_eq!(r.xattrs[0].0, "security.capability");
}

/// Raw list/remove xattr calls (issue 5: recorded security.* and trusted.* attributes are
/// listed next to those on disk and can be removed), built static and dynamic.
const XATTR_PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static void show(const char *what, const char *buf, long n) {
    printf("%s %ld", what, n);
    for (long i = 0; i < n; i += strlen(buf + i) + 1) printf(" %s", buf + i);
    printf("\n");
}
int main(void) {
    char buf[256];
    int fd = open("f", O_CREAT | O_RDWR, 0644);
    if (fd < 0) return 10;
    if (syscall(SYS_setxattr, "f", "trusted.a", "1", 1, 0)) return 11;
    if (syscall(SYS_fsetxattr, fd, "security.b", "22", 2, 0)) return 12;
    if (syscall(SYS_setxattr, "f", "user.c", "3", 1, 0) && errno != ENOTSUP) return 13;
    long need = syscall(SYS_listxattr, "f", NULL, 0);
    long n = syscall(SYS_listxattr, "f", buf, sizeof buf);
    if (need != n) return 14;
    show("list", buf, n);
    if (syscall(SYS_listxattr, "f", buf, 3) != -1 || errno != ERANGE) return 15;
    if (symlink("f", "l")) return 16;
    n = syscall(SYS_llistxattr, "l", buf, sizeof buf);
    show("llist-link", buf, n);
    n = syscall(SYS_flistxattr, fd, buf, sizeof buf);
    show("flist", buf, n);
    if (syscall(SYS_removexattr, "f", "trusted.a")) return 17;
    if (syscall(SYS_removexattr, "f", "trusted.a") != -1 || errno != ENODATA) return 18;
    if (syscall(SYS_getxattr, "f", "trusted.a", buf, sizeof buf) != -1 || errno != ENODATA)
        return 19;
    n = syscall(SYS_listxattr, "f", buf, sizeof buf);
    show("after-remove", buf, n);
    if (syscall(SYS_fremovexattr, fd, "security.b")) return 20;
    if (syscall(SYS_lsetxattr, "f", "trusted.d", "4", 1, 0)) return 21;
    if (syscall(SYS_lremovexattr, "f", "trusted.d")) return 22;
    n = syscall(SYS_flistxattr, fd, buf, sizeof buf);
    show("after-all", buf, n);
    /* listxattrat and removexattrat (Linux 6.13) answer ENOSYS: callers fall back. */
    if (syscall(465, AT_FDCWD, "f", 0, buf, sizeof buf) != -1 || errno != ENOSYS) return 23;
    if (syscall(466, AT_FDCWD, "f", 0, "trusted.a") != -1 || errno != ENOSYS) return 24;
    return 0;
}
"#;

fn xattr_probe_test(static_link: bool) {
    if util::missing_tool("gcc") {
        return;
    }
    let sc = Scratch::new();
    let src = sc.write("xprobe.c", XATTR_PROBE_C);
    let mut gcc = Command::new("gcc");
    if static_link {
        gcc.arg("-static");
    }
    let out = gcc
        .args(["-O1", "-o"])
        .arg(sc.path().join("xprobe"))
        .arg(&src)
        .output()
        .unwrap();
    util::assert_ok(&out);
    sc.chown_all();
    let s = ok_session(sc.path(), "./xprobe", &Store::new());
    // user.c is on disk where the filesystem takes user.* xattrs (it comes first: disk names,
    // then recorded ones); the symlink has none of its own.
    let user = if s.stdout.contains("user.c") {
        " user.c"
    } else {
        ""
    };
    let ulen = if user.is_empty() { 0 } else { 7 };
    let expected = format!(
        "list {} {user} trusted.a security.b\nllist-link 0\nflist {} {user} trusted.a security.b\n\
         after-remove {}{user} security.b\nafter-all {}{user}\n",
        21 + ulen,
        21 + ulen,
        11 + ulen,
        ulen
    )
    .replace("  ", " ")
    .replace(" \n", "\n");
    assert_eq!(s.stdout, expected, "stderr: {}", s.stderr);
    let meta = std::fs::symlink_metadata(sc.path().join("f")).unwrap();
    assert!(
        s.store.lookup(&sc.path().join("f"), &meta).is_none(),
        "removing the last recorded xattr leaves no record"
    );
}

#[test]
fn list_and_remove_recorded_xattrs_for_a_dynamic_program() {
    xattr_probe_test(false);
}

#[test]
fn list_and_remove_recorded_xattrs_for_a_static_program() {
    xattr_probe_test(true);
}

#[test]
fn cp_a_and_tar_xattrs_carry_recorded_capabilities() {
    for tool in ["setcap", "getcap", "tar"] {
        if util::missing_tool(tool) {
            return;
        }
    }
    if util::no_userns() {
        return;
    }
    let sc = Scratch::new();
    // setcap raises CAP_SETFCAP in its own set first: give it one, as nsroot's namespace root.
    let s = ok_session(
        sc.path(),
        "touch f && unshare --user --map-root-user sh -c '\
           setcap cap_net_raw+ep f && cp -a f g && cp -r f h && getcap f g h && \
           tar --xattrs -cf t.tar f && mkdir x && \
           tar --xattrs --xattrs-include=\"*\" -C x -xf t.tar && getcap x/f && \
           setcap -r g && getcap g && echo removed'",
        &Store::new(),
    );
    assert_eq!(
        s.stdout, "f cap_net_raw=ep\ng cap_net_raw=ep\nx/f cap_net_raw=ep\nremoved\n",
        "stderr: {}",
        s.stderr
    );
    let tar = std::fs::read(sc.path().join("t.tar")).unwrap();
    assert!(
        tar.windows(32)
            .any(|w| w == b"SCHILY.xattr.security.capability"),
        "the archive has no security.capability header"
    );
}

#[test]
fn setcap_getcap_cp_a_under_nsroot_run() {
    for tool in ["setcap", "getcap"] {
        if util::missing_tool(tool) {
            return;
        }
    }
    if util::no_userns() {
        return;
    }
    let sc = Scratch::new();
    let out = sc.nsroot([
        "sh",
        "-c",
        "touch f && setcap cap_net_raw+ep f && getcap f && cp -a f g && getcap g \
         && setcap -r f && getcap f && echo done",
    ]);
    util::assert_ok(&out);
    assert_eq!(
        util::stdout(&out),
        "f cap_net_raw=ep\ng cap_net_raw=ep\ndone\n"
    );
}

#[test]
fn nested_session_sees_outer_records() {
    let sc = Scratch::new();
    // The inner session is another run of this binary's session runner, started inside the
    // outer session: it finds the outer supervisor and runs under it (one listener per chain).
    let inner_io = Scratch::new();
    Store::new().save(&inner_io.path().join("in")).unwrap();
    inner_io.chown_all();
    let inner = format!(
        "NSROOT_IT_CHILD_DIR={io} NSROOT_IT_CWD=$PWD \
         NSROOT_IT_SCRIPT='stat -c %u:%g f && chown 1:2 g && stat -c %u:%g g && mknod d c 1 5 && stat -c %t:%T d' \
         \"$NSROOT_IT_EXE\" --exact ownership::child_session --ignored --nocapture --test-threads=1 >/dev/null \
         && cat {io}/stdout {io}/stderr",
        io = inner_io.path().display()
    );
    let s = ok_session(
        sc.path(),
        &format!("touch f g && chown 33:33 f && {inner} && stat -c %u:%g g"),
        &Store::new(),
    );
    let status = std::fs::read_to_string(inner_io.path().join("status")).unwrap();
    assert_eq!(status, "0");
    // Inner sees the outer record of f; its own calls are recorded in the outer session.
    assert_eq!(s.stdout, "33:33\n1:2\n1:5\n1:2\n");
    assert_eq!(s.store.len(), 3);
}

/// The filter fails closed where it does not emulate: an x32 call gets ENOSYS, setxattrat
/// gets ENOSYS. A 32-bit `int 0x80` call is the i386 ABI (AUDIT_ARCH_I386, its own numbers),
/// which the filter knows since issue 14: getpid (20 there) runs, it is no longer killed.
#[test]
fn foreign_abis_fail_closed() {
    if util::missing_tool("gcc") {
        return;
    }
    let sc = Scratch::new();
    let src = sc.write(
        "abi.c",
        r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (!strcmp(argv[1], "x32")) {
        long r = syscall(0x40000000 | SYS_getpid);
        printf("x32 %ld %s\n", r, r < 0 && errno == ENOSYS ? "ENOSYS" : "other");
    } else if (!strcmp(argv[1], "xattrat")) {
        long r = syscall(463, -100, "f", 0, "security.x", 0, 0);
        printf("setxattrat %ld %s\n", r, r < 0 && errno == ENOSYS ? "ENOSYS" : "other");
    } else {
        long r = 20; /* getpid on i386 */
        __asm__ volatile("int $0x80" : "+a"(r) : : "memory");
        printf("int80 returned %ld\n", r);
    }
    return 0;
}
"#,
    );
    let out = Command::new("gcc")
        .arg("-o")
        .arg(sc.path().join("abi"))
        .arg(&src)
        .output()
        .unwrap();
    util::assert_ok(&out);
    sc.chown_all();
    let s = ok_session(sc.path(), "./abi x32 && ./abi xattrat", &Store::new());
    assert_eq!(s.stdout, "x32 -1 ENOSYS\nsetxattrat -1 ENOSYS\n");
    let s = session(sc.path(), "./abi int80; echo status $?", &Store::new());
    let pid: i64 = s
        .stdout
        .strip_prefix("int80 returned ")
        .and_then(|r| r.strip_suffix("\nstatus 0\n"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{}", s.stdout));
    assert!(pid > 0, "i386 getpid answered {pid}");
}

/// Issue 14: `setfacl -m u:1:r` was EINVAL (the namespace cannot map uid 1, KF-OVERFLOW-ID).
/// An ACL the kernel refuses is recorded like a `security.*` xattr: getfacl reads it back,
/// the mode's group bits follow its mask as the kernel would set them, a default ACL too, and
/// `nsroot pack --xattrs` archives it (inside the session and from the state file alike), as
/// GNU tar stores ACLs under `--xattrs`; GNU tar extracts it with the ids.
#[test]
fn issue14_posix_acls_naming_other_ids_are_recorded_and_archived() {
    if util::no_userns()
        || util::missing_tool("setfacl")
        || util::missing_tool("getfacl")
        || util::missing_tool("tar")
    {
        return;
    }
    let sc = Scratch::new();
    let script = format!(
        "umask 022 && mkdir d && touch d/f && setfacl -m u:1:r,g:8:rw d/f && getfacl -n d/f && \
         stat -c %a d/f && setfacl -d -m u:2:rx d && getfacl -n d && \
         {} pack --xattrs d -o in.tar",
        util::env().bin.display()
    );
    let out = sc.nsroot(["-s", "state", "sh", "-c", &script]);
    util::assert_ok(&out);
    let text = util::stdout(&out);
    for want in [
        "user:1:r--\n",
        "group:8:rw-\n",
        "mask::rw-\n",
        "\n664\n",
        "default:user:2:r-x\n",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    let out = sc.nsroot(["pack", "-i", "state", "--xattrs", "d", "-o", "out.tar"]);
    util::assert_ok(&out);
    let inside = std::fs::read(sc.path().join("in.tar")).unwrap();
    let outside = std::fs::read(sc.path().join("out.tar")).unwrap();
    let key = b"SCHILY.xattr.system.posix_acl_access=";
    assert!(
        inside.windows(key.len()).any(|w| w == key),
        "in the session"
    );
    assert_eq!(
        inside, outside,
        "packed inside the session and from the state file"
    );
    let x = sc.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xf"])
        .arg(sc.path().join("out.tar"))
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    util::assert_ok(&out);
    let out = Command::new("getfacl")
        .arg("-n")
        .arg(x.join("f"))
        .output()
        .unwrap();
    util::assert_ok(&out);
    assert!(
        util::stdout(&out).contains("user:1:r--\n"),
        "{}",
        util::stdout(&out)
    );
}
