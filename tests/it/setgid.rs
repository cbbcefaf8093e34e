//! Issue 14, setgid directories (ARCHITECTURE.md, "Where nsroot follows fakeroot and where the
//! kernel", item 2): what is created in a setgid directory with a recorded group takes that
//! group, as under real root, through every creating call, from dynamic, static and i386
//! programs, across a saved and loaded state file, and into the archive; a file moved in
//! keeps its own group, and a directory without setgid gives none.

use std::process::Command;

use crate::util::{self, Scratch};

/// `chgrp G PATH` (chown(2) with uid -1); `excl PATH` (open O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC
/// 0666, write "x", then print `gid mode cloexec` of the descriptor from fstat and F_GETFD);
/// `keep PATH` (the same without O_CLOEXEC, prints cloexec 0); `ro PATH` (O_CREAT|O_WRONLY
/// 0444, written to as the new file's creator may); `creat PATH` (creat(2) by
/// number); `openat2 PATH` (openat2(2) with O_CREAT|O_EXCL|O_WRONLY 0644, by number);
/// `mkdir PATH`; `mkfifo PATH`; `symlink TARGET PATH`; `exists PATH` (open O_CREAT|O_EXCL
/// must fail with EEXIST).
const TOOL_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(int fd) {
    struct stat s;
    if (fd < 0) { perror("open"); return 1; }
    if (write(fd, "x", 1) != 1) { perror("write"); return 1; }
    if (fstat(fd, &s)) { perror("fstat"); return 1; }
    int fl = fcntl(fd, F_GETFD);
    printf("%u %o %d\n", (unsigned)s.st_gid, (unsigned)(s.st_mode & 07777), (fl & FD_CLOEXEC) != 0);
    return close(fd) != 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *c = argv[1], *p = argv[2];
    if (!strcmp(c, "chgrp")) return chown(argv[3], -1, atoi(p)) ? (perror("chown"), 1) : 0;
    if (!strcmp(c, "excl")) return report(open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0666));
    if (!strcmp(c, "keep")) return report(open(p, O_CREAT | O_EXCL | O_RDWR, 0666));
    if (!strcmp(c, "ro")) return report(open(p, O_CREAT | O_WRONLY, 0444));
#ifdef SYS_creat
    if (!strcmp(c, "creat")) return report(syscall(SYS_creat, p, 0666));
#else
    if (!strcmp(c, "creat")) return report(open(p, O_CREAT | O_WRONLY | O_TRUNC, 0666));
#endif
    if (!strcmp(c, "openat2")) {
        unsigned long long how[3] = { O_CREAT | O_EXCL | O_WRONLY, 0644, 0 };
        return report(syscall(437, AT_FDCWD, p, how, sizeof how));
    }
    if (!strcmp(c, "mkdir")) return mkdir(p, 0777) ? (perror("mkdir"), 1) : 0;
    if (!strcmp(c, "mkfifo")) return mkfifo(p, 0666) ? (perror("mkfifo"), 1) : 0;
    if (!strcmp(c, "symlink")) return symlink(p, argv[3]) ? (perror("symlink"), 1) : 0;
    if (!strcmp(c, "exists")) {
        int fd = open(p, O_CREAT | O_EXCL | O_RDWR, 0666);
        if (fd >= 0 || errno != EEXIST) { fprintf(stderr, "%s: not EEXIST\n", p); return 1; }
        return 0;
    }
    return 2;
}
"#;

/// Builds the tool as `name` with gcc and `flags`; false (after a skip) when it cannot.
fn build(sc: &Scratch, flags: &[&str], name: &str) -> bool {
    util::build_c(sc, "sg.c", TOOL_C, "gcc", flags, name)
}

/// GNU tar's numeric verbose listing of the archive at `path`.
fn tar_listing(path: &std::path::Path) -> String {
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(path)
        .output()
        .unwrap();
    util::assert_ok(&out);
    util::stdout(&out)
}

/// Each (path, "mode uid/gid") of `want` is a line of `listing` ([`tar_listing`]).
fn assert_listed(listing: &str, want: &[(&str, &str)]) {
    for (name, mode_owner) in want {
        let found = listing.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5 && format!("{} {}", f[0], f[1]) == *mode_owner && f[5] == *name
        });
        assert!(found, "{name} {mode_owner} in:\n{listing}");
    }
}

/// Runs `script` in one session with `args` before it; it must succeed with an empty stderr.
fn session(sc: &Scratch, args: &[&str], script: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["sh", "-c", script]);
    let out = sc.nsroot(&a);
    util::assert_ok(&out);
    assert_eq!(util::stderr(&out), "", "stderr of {script}");
    util::stdout(&out)
}

/// The `%n %g %a` lines of `stat`, as a list.
fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// Coreutils (dynamic: chgrp by the preload library, the creating calls by the supervisor):
/// each kind of object takes group 8 and a new directory keeps setgid; a file moved in
/// keeps group 0; a directory with a recorded group but no setgid gives nothing. The state
/// file saved by `-s` makes a second session (`-i`) do the same, and `pack` stores the
/// groups.
#[test]
fn issue14_setgid_directory_gives_its_recorded_group() {
    if util::no_userns() || util::missing_tool("tar") {
        return;
    }
    let sc = Scratch::new();
    let out = session(
        &sc,
        &["-s", "state"],
        "umask 022 && mkdir d && chgrp 8 d && chmod 2755 d && touch d/f && mkdir d/e && \
         mknod d/p p && ln -s x d/l && mkfifo d/q && (set -C; echo hi > d/x) && \
         (set -C; echo no > d/x) 2>/dev/null; cat d/x && mkdir d/e/deeper/ && \
         touch g && mv g d/g && mkdir n && chgrp 8 n && touch n/f && \
         stat -c '%n %g %a' d d/f d/e d/e/deeper d/p d/l d/q d/x d/g n n/f",
    );
    assert_eq!(
        lines(&out),
        [
            "hi",
            "d 8 2755",
            "d/f 8 644",
            "d/e 8 2755",
            "d/e/deeper 8 2755",
            "d/p 8 644",
            "d/l 8 777",
            "d/q 8 644",
            "d/x 8 644",
            "d/g 0 644",
            "n 8 755",
            "n/f 0 644",
        ],
        "{out}"
    );
    // The disk: the user's own group, setgid kept on the new directory by the kernel.
    let meta = std::fs::metadata(sc.path().join("d/e")).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2755);
    assert_eq!(meta.gid(), util::env().gid);

    // A second session loads the records: a new file there takes the group too, with the
    // process's umask.
    let out = session(
        &sc,
        &["-i", "state"],
        "umask 077 && touch d/h && mkdir d/k && stat -c '%n %g %a' d/f d/g d/h d/k",
    );
    assert_eq!(
        lines(&out),
        ["d/f 8 644", "d/g 0 644", "d/h 8 600", "d/k 8 2700"],
        "{out}"
    );

    // The archive holds the groups.
    let out = sc.nsroot(["pack", "-i", "state", "d", "-o", "d.tar"]);
    util::assert_ok(&out);
    let listing = tar_listing(&sc.path().join("d.tar"));
    assert_listed(
        &listing,
        &[
            ("./f", "-rw-r--r-- 0/8"),
            ("./e/", "drwxr-sr-x 0/8"),
            ("./g", "-rw-r--r-- 0/0"),
            ("./l", "lrwxrwxrwx 0/8"),
        ],
    );
}

/// The C tool, dynamic (its chgrp answered by the preload library) and static (by the
/// supervisor), and i386 where gcc builds it: `O_EXCL` opens hand over a working descriptor
/// with close-on-exec as asked, creat and openat2 by number, mkdir, mkfifo, symlink; an
/// existing name stays EEXIST. Also with `NSROOT_FASTPATH=0` (everything on the seccomp
/// path).
#[test]
fn issue14_setgid_directory_through_every_creating_call() {
    if util::no_userns() {
        return;
    }
    let sc = Scratch::new();
    if !build(&sc, &[], "sgdyn") || !build(&sc, &["-static"], "sgstatic") {
        return;
    }
    let m32 = build(&sc, &["-m32"], "sg32");
    let mut script = String::from(
        "umask 022 && mkdir a b && chmod 2755 a b && ./sgdyn chgrp 8 a && ./sgstatic chgrp 12 b",
    );
    for (tool, dir) in [("sgdyn", "a"), ("sgstatic", "b")] {
        script += &format!(
            " && ./{tool} excl {dir}/x && ./{tool} keep {dir}/k && ./{tool} creat {dir}/c && \
             ./{tool} openat2 {dir}/o && ./{tool} ro {dir}/r && ./{tool} mkdir {dir}/m && ./{tool} mkfifo {dir}/p && \
             ./{tool} symlink x {dir}/l && ./{tool} exists {dir}/x && ./{tool} exists {dir}/l"
        );
    }
    if m32 {
        script += " && ./sg32 excl a/x32 && ./sg32 mkdir a/m32";
    }
    script +=
        " && stat -c '%n %g %a' a/x a/k a/c a/o a/r a/m a/p a/l b/x b/k b/c b/o b/r b/m b/p b/l";
    if m32 {
        script += " a/x32 a/m32";
    }
    let mut want = Vec::new();
    for g in [8, 12] {
        want.extend([
            format!("{g} 644 1"),
            format!("{g} 644 0"),
            format!("{g} 644 0"),
            format!("{g} 644 0"),
            format!("{g} 444 0"),
        ]);
    }
    if m32 {
        want.push("8 644 1".into());
    }
    for (dir, g) in [("a", 8), ("b", 12)] {
        for (name, mode) in [
            ("x", "644"),
            ("k", "644"),
            ("c", "644"),
            ("o", "644"),
            ("r", "444"),
            ("m", "2755"),
            ("p", "644"),
            ("l", "777"),
        ] {
            want.push(format!("{dir}/{name} {g} {mode}"));
        }
    }
    if m32 {
        want.extend(["a/x32 8 644".into(), "a/m32 8 2755".into()]);
    }
    for fastpath in ["1", "0"] {
        let out = util::env()
            .nsroot()
            .env("NSROOT_FASTPATH", fastpath)
            .args(["sh", "-c", &format!("rm -rf a b && {script}")])
            .current_dir(sc.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        util::assert_ok(&out);
        assert_eq!(util::stderr(&out), "", "NSROOT_FASTPATH={fastpath}");
        let out = util::stdout(&out);
        assert_eq!(lines(&out), want, "NSROOT_FASTPATH={fastpath}\n{out}");
    }
}

/// Build mode (the supervisor alone, no preload library): the archive of a recipe whose
/// install step makes a setgid directory of group 8 and files in it holds group 8 for them,
/// and group 0 for a file moved in.
#[test]
fn issue14_setgid_directory_in_a_build_archive() {
    if util::no_userns() || util::missing_tool("tar") {
        return;
    }
    let sc = Scratch::new();
    sc.write("sg/src/.keep", "");
    sc.write(
        "sg/recipe.toml",
        "[package]\nname = \"sg\"\nversion = \"1.0\"\nsummary = \"test\"\n\
         source_date_epoch = 1700000000\n\n[source]\npath = \"src\"\n\n\
         [install]\nsteps = ['cd \"$DESTDIR\" && mkdir -p var/games && chgrp 8 var/games && \
         chmod 2775 var/games && touch var/games/score && mkdir var/games/sub && \
         touch moved && mv moved var/games/']\n",
    );
    let out = sc.nsroot(["build", "sg/recipe.toml", "-o", "out"]);
    util::assert_ok(&out);
    let archive = std::fs::read_dir(sc.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("an archive");
    let listing = tar_listing(&archive);
    assert_listed(
        &listing,
        &[
            ("./var/games/score", "-rw-r--r-- 0/8"),
            ("./var/games/sub/", "drwxr-sr-x 0/8"),
            ("./var/games/moved", "-rw-r--r-- 0/0"),
            ("./var/games/", "drwxrwsr-x 0/8"),
        ],
    );
}
