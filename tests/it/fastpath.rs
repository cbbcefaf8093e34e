//! Issue 18, the in-process fast path: dynamically linked programs answered by the preload
//! library from the shared record table, everything else by the supervisor, and the two
//! giving the same answers. A small C tool (`fp.c`), built dynamic, `-static` (always the
//! seccomp path), with musl and with `-m32`, makes the calls and prints what it sees.

use std::process::Command;

use crate::util::{self, Scratch};

/// The tool: `show DIR` prints every entry as `find -printf '%u:%g %m %y %D %p\n'` does
/// (names from /etc/passwd and /etc/group, as find's NSS `files` lookup gives them);
/// `chown U G PATH...`, `lchown U G PATH...`; `mknod PATH c|b MAJOR MINOR`; `writer K N DIR`
/// (parallel writer K: chgrp every file i of DIR/0..N-1 to i, chown file i to 100+i when
/// i % 16 == K, stat each after its chown and fail if the group is not there);
/// `loop DIR N` (chown DIR/0..N-1 to n:n for n = 1, 2, ... until killed); `fastpath`
/// (prints 1 when this process has the trampoline page mapped, 0 if not).
const TOOL_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <fcntl.h>

static const char *name_of(const char *db, unsigned id, char *buf) {
    FILE *f = fopen(db, "r");
    char line[512];
    sprintf(buf, "%u", id);
    if (!f) return buf;
    while (fgets(line, sizeof line, f)) {
        char *name = strtok(line, ":");
        strtok(NULL, ":");
        char *num = strtok(NULL, ":");
        if (name && num && (unsigned)atol(num) == id) { strcpy(buf, name); break; }
    }
    fclose(f);
    return buf;
}

/* A walk by lstat and readdir, both called through the PLT (nftw would call the C
   library's internal lstat, which no preload library sees). */
static int show(const char *p) {
    char u[256], g[256];
    char y = '?';
    struct stat s;
    if (lstat(p, &s)) { perror(p); return 1; }
    switch (s.st_mode & S_IFMT) {
        case S_IFREG: y = 'f'; break; case S_IFDIR: y = 'd'; break;
        case S_IFLNK: y = 'l'; break; case S_IFCHR: y = 'c'; break;
        case S_IFBLK: y = 'b'; break; case S_IFIFO: y = 'p'; break;
        case S_IFSOCK: y = 's'; break;
    }
    printf("%s:%s %o %c %lu %s\n", name_of("/etc/passwd", s.st_uid, u),
           name_of("/etc/group", s.st_gid, g), s.st_mode & 07777, y,
           (unsigned long)s.st_dev, p);
    if (y == 'd') {
        DIR *d = opendir(p);
        struct dirent *e;
        char sub[4096];
        if (!d) { perror(p); return 1; }
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
                if (show(sub)) return 1;
            }
        closedir(d);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "show")) return show(argv[2]);
    if (!strcmp(argv[1], "chown") || !strcmp(argv[1], "lchown")) {
        int l = argv[1][0] == 'l';
        for (int i = 4; i < argc; i++)
            if ((l ? lchown : chown)(argv[i], atoi(argv[2]), atoi(argv[3]))) { perror(argv[i]); return 1; }
        return 0;
    }
    if (!strcmp(argv[1], "mknod")) {
        mode_t t = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
        if (mknod(argv[2], t | 0640, makedev(atoi(argv[4]), atoi(argv[5])))) { perror("mknod"); return 1; }
        return 0;
    }
    if (!strcmp(argv[1], "writer")) {
        int k = atoi(argv[2]), n = atoi(argv[3]);
        char p[4096];
        struct stat s;
        for (int i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/%d", argv[4], i);
            if (chown(p, -1, i)) { perror(p); return 1; }
            if (i % 16 == k && chown(p, 100 + i, -1)) { perror(p); return 1; }
            if (stat(p, &s) || s.st_gid != (gid_t)i) { fprintf(stderr, "%s: gid %u\n", p, s.st_gid); return 1; }
            if (i % 16 == k && s.st_uid != (uid_t)(100 + i)) { fprintf(stderr, "%s: uid %u\n", p, s.st_uid); return 1; }
        }
        return 0;
    }
    if (!strcmp(argv[1], "loop")) {
        int n = atoi(argv[3]);
        char p[4096];
        for (unsigned v = 1;; v++)
            for (int i = 0; i < n; i++) {
                snprintf(p, sizeof p, "%s/%d", argv[2], i);
                if (chown(p, v, v)) { perror(p); return 1; }
            }
    }
    if (!strcmp(argv[1], "fastpath")) {
        FILE *m = fopen("/proc/self/maps", "r");
        char line[512];
        int found = 0;
        while (m && fgets(line, sizeof line, m))
            if (!strncmp(line, "6e73726f0000-6e73726f1000 r-xp", 30)) found = 1;
        printf("%d\n", found);
        return 0;
    }
    return 2;
}
"#;

/// Builds the tool as `name` with `cc` and `flags`; false (after a skip) when it cannot.
fn build(sc: &Scratch, cc: &str, flags: &[&str], name: &str) -> bool {
    util::build_c(sc, "fp.c", TOOL_C, cc, flags, name)
}

/// The dynamic and the static tool, or None (after a skip).
fn tools(sc: &Scratch) -> Option<()> {
    if util::no_userns() {
        return None;
    }
    (build(sc, "gcc", &[], "fpdyn") && build(sc, "gcc", &["-static"], "fpstatic")).then_some(())
}

fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Runs `script` in one nsroot session, with the fast path on; stderr must stay empty.
fn session(sc: &Scratch, args: &[&str], script: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["sh", "-c", script]);
    let out = sc.nsroot(&a);
    util::assert_ok(&out);
    // The shell's own notice of a job killed on purpose is the one line allowed.
    let err = util::stderr(&out);
    let noise: Vec<&str> = err.lines().filter(|l| *l != "Killed").collect();
    assert!(noise.is_empty(), "stderr of {script}: {noise:?}");
    util::stdout(&out)
}

const TREE: &str = "umask 022 && mkdir -p t/d && touch t/a t/b t/d/c && ln -s a t/l && \
                    mkfifo t/p && chmod 4755 t/b";

/// The same tree shown by `find` and by the dynamic tool (the library answers) and by the
/// static tool (the supervisor answers) must be identical, before and after chowns, a chgrp
/// and mknods made by a dynamic program (`chown`, `mknod`) and by the static tool.
#[test]
fn issue18_dynamic_and_static_programs_agree() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let fmt = "'%u:%g %m %y %D %p\\n'";
    let script = format!(
        "{TREE} && ./fpdyn fastpath && ./fpstatic fastpath && \
         find t -printf {fmt} > find0 && ./fpdyn show t > dyn0 && ./fpstatic show t > sta0 && \
         chown 1:2 t/a && chown -h 3:4 t/l && chgrp 8 t/d && mknod t/null c 1 3 && \
         ./fpstatic chown 5 6 t/b && ./fpstatic lchown 7 7 t/d/c && \
         ./fpstatic mknod t/sda b 8 1 && \
         find t -printf {fmt} > find1 && ./fpdyn show t > dyn1 && ./fpstatic show t > sta1 && \
         stat -c '%n %t,%T' t/null t/sda && for f in find0 dyn0 sta0 find1 dyn1 sta1; do \
         echo == $f; sort $f; done"
    );
    let out = session(&sc, &[], &script);
    let mut parts = out.split("== ");
    let head = parts.next().unwrap();
    // The dynamic tool runs with the trampoline page mapped, the static one without.
    assert!(head.starts_with("1\n0\n"), "fast path in use: {head:?}");
    assert!(
        head.contains("t/null 1,3\n") && head.contains("t/sda 8,1\n"),
        "{head}"
    );
    let lists: Vec<Vec<String>> = parts
        .map(|p| sorted(p.split_once('\n').unwrap().1))
        .collect();
    assert_eq!(lists[0], lists[1], "find and the dynamic tool, empty store");
    assert_eq!(lists[0], lists[2], "dynamic and static, empty store");
    assert_eq!(
        lists[3], lists[4],
        "find and the dynamic tool, with records"
    );
    assert_eq!(lists[3], lists[5], "dynamic and static, with records");
    let after = lists[3].join("\n");
    for want in [
        "daemon:bin 644 f",
        "sys:adm 777 l",
        "games:disk 4755 f",
        "lp:lp 644 f",
        "root:mail 755 d",
        "root:root 644 c",
        "root:root 640 b",
    ] {
        assert!(after.contains(want), "{want} missing in\n{after}");
    }
}

/// 16 dynamic writers chgrp and chown the same 1,000 files at once, each checking its own
/// writes with stat; then the static tool (the supervisor) sees every record, nothing lost.
#[test]
fn issue18_parallel_writers_lose_nothing() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let script = "mkdir w && cd w && seq 0 999 | xargs touch && cd .. && \
                  for k in $(seq 0 15); do ./fpdyn writer $k 1000 w & done; \
                  st=0; for k in $(seq 0 15); do wait %$((k + 1)) || st=1; done; \
                  [ $st = 0 ] && ./fpstatic show w";
    let out = session(&sc, &[], script);
    let lines: Vec<&str> = out.lines().filter(|l| !l.ends_with(" w")).collect();
    assert_eq!(lines.len(), 1000, "{out}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let group = std::fs::read_to_string("/etc/group").unwrap();
    let name = |db: &str, id: u32| {
        db.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == id.to_string()).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| id.to_string())
    };
    for l in lines {
        let (owner, rest) = l.split_once(' ').unwrap();
        let i: u32 = rest.rsplit('/').next().unwrap().parse().unwrap();
        let want = format!("{}:{}", name(&passwd, 100 + i), name(&group, i));
        assert_eq!(owner, want, "file {i}");
    }
}

/// A writer killed with SIGKILL in the middle of a loop of chowns, again and again (after
/// 10-60 ms each: about a million chowns a second on the fast path, and the table's log
/// holds two million writes), leaves
/// a table whose every record is whole (uid = gid, as each chown set them) and that the
/// session saves (`-s`) and the next one loads (`-i`) and shows through the static tool.
#[test]
fn issue18_sigkilled_writers_leave_a_readable_store() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let script = "mkdir k && cd k && seq 0 199 | xargs touch && cd .. && \
                  for r in 1 2 3 4 5 6; do ./fpdyn loop k 200 & p=$!; \
                  sleep 0.0$r; kill -9 $p; wait $p; done; ./fpdyn fastpath; ./fpdyn show k";
    let inside = session(&sc, &["-s", "state"], script);
    let inside = inside
        .strip_prefix("1\n")
        .unwrap_or_else(|| panic!("the writers ran on the fast path: {inside}"));
    let loaded = session(&sc, &["-i", "state"], "./fpstatic show k");
    assert_eq!(
        sorted(inside),
        sorted(&loaded),
        "the next session reads the same"
    );
    let mut chowned = 0;
    for l in loaded
        .lines()
        .chain(inside.lines())
        .filter(|l| !l.ends_with(" k"))
    {
        let (owner, _) = l.split_once(' ').unwrap();
        let (u, g) = owner.split_once(':').unwrap();
        // Names where /etc has them: compare through the ids the loop wrote (n:n).
        if u != "root" || g != "root" {
            chowned += 1;
        }
        let id = |s: &str, db: &str| -> String {
            std::fs::read_to_string(db)
                .unwrap()
                .lines()
                .find_map(|x| {
                    let f: Vec<&str> = x.split(':').collect();
                    (f[0] == s).then(|| f[2].to_string())
                })
                .unwrap_or_else(|| s.to_string())
        };
        assert_eq!(
            id(u, "/etc/passwd"),
            id(g, "/etc/group"),
            "torn record: {l}"
        );
    }
    assert!(chowned > 0, "the writer recorded nothing:\n{loaded}");
}

/// A 32-bit program (its own ELF class: the loader finds the empty i386 library and says
/// nothing) and a musl program (the library loaded through the literal `$LIB` directory) see
/// the records, and nothing appears on stderr.
#[test]
fn issue18_i386_and_musl_programs() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let m32 = build(&sc, "gcc", &["-m32"], "fp32");
    let musl = build(&sc, "musl-gcc", &[], "fpmusl");
    if !m32 || !musl {
        return;
    }
    let script = "mkdir t && touch t/a t/b && chown 3:4 t/a && ./fpmusl chown 5 6 t/b && \
                  ./fpmusl fastpath && ./fp32 fastpath && ./fpstatic show t && echo == && \
                  ./fpmusl show t && echo == && ./fp32 show t";
    let out = session(&sc, &[], script);
    let (head, rest) = out.split_at(4);
    assert_eq!(
        head, "1\n0\n",
        "musl uses the fast path, i386 the supervisor"
    );
    let parts: Vec<Vec<String>> = rest.split("==\n").map(sorted).collect();
    assert_eq!(parts[0], parts[1], "musl");
    assert_eq!(parts[0], parts[2], "i386");
    let all = parts[0].join("\n");
    assert!(all.contains("sys:adm 644 f") && all.contains("games:") && all.contains("t/b"));
}

/// The user's own LD_PRELOAD library keeps working beside nsroot's, which comes after it.
#[test]
fn issue18_user_ld_preload_is_kept() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let lib = sc.write(
        "mine.c",
        "#include <stdio.h>\n__attribute__((constructor)) static void mark(void) \
         { FILE *f = fopen(\"marks\", \"a\"); if (f) { fputs(\"mine\\n\", f); fclose(f); } }\n",
    );
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(sc.path().join("libmine.so"))
        .arg(&lib)
        .output()
        .unwrap();
    util::assert_ok(&out);
    // Made by the test user: setpriv, run as root, loads the library too.
    sc.write("marks", "");
    let mine = sc.path().join("libmine.so");
    let out = util::env()
        .nsroot()
        .args([
            "sh",
            "-c",
            "touch f && chown 9:9 f && stat -c %u:%g f && echo \"$LD_PRELOAD\" && \
             ./fpdyn fastpath",
        ])
        .env("LD_PRELOAD", &mine)
        .current_dir(sc.path())
        .output()
        .unwrap();
    util::assert_ok(&out);
    assert_eq!(util::stderr(&out), "");
    let text = util::stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "9:9");
    let preload: Vec<&str> = lines[1].split(':').collect();
    assert_eq!(
        preload[0],
        mine.to_str().unwrap(),
        "the user's library first"
    );
    assert!(preload[1].ends_with("/$LIB/libnsroot.so"), "{}", lines[1]);
    assert_eq!(lines[2], "1", "nsroot's library still loads");
    let marks = std::fs::read_to_string(sc.path().join("marks")).unwrap();
    assert!(
        marks.lines().count() >= 4,
        "the user's library ran: {marks}"
    );
}

/// A program built with AddressSanitizer, which aborts when a preloaded library comes before
/// its runtime, runs in a session (nsroot sets `verify_asan_link_order=0`) and prints nothing
/// on stderr; with the user's own `ASAN_OPTIONS` kept.
#[test]
fn issue18_asan_programs_run() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    if !build(&sc, "gcc", &["-fsanitize=address"], "fpasan") {
        return;
    }
    let out = util::env()
        .nsroot()
        .args([
            "sh",
            "-c",
            "touch f && ./fpasan chown 4 5 f && ./fpasan show f && echo \"$ASAN_OPTIONS\"",
        ])
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .current_dir(sc.path())
        .output()
        .unwrap();
    util::assert_ok(&out);
    assert_eq!(util::stderr(&out), "");
    let text = util::stdout(&out);
    assert!(text.starts_with("sync:tty 644 f "), "{text}");
    assert!(
        text.ends_with("detect_leaks=0:verify_asan_link_order=0\n"),
        "{text}"
    );
}

/// Processes the fast path cannot reach take the seccomp path silently and get the same
/// answers: one whose descriptor 1017 was closed (as by programs that close every
/// descriptor), one whose environment was cleared (`env -i`), one started with `LD_PRELOAD=`.
#[test]
fn issue18_processes_without_the_fast_path_fall_back_silently() {
    let sc = Scratch::new();
    if tools(&sc).is_none() {
        return;
    }
    let script = "touch a b c && ./fpdyn fastpath && \
                  bash -c 'exec 1017<&-; ./fpdyn fastpath; ./fpdyn chown 1 2 a' && \
                  env -i ./fpdyn fastpath && env -i ./fpdyn chown 3 4 b && \
                  LD_PRELOAD= ./fpdyn chown 5 6 c && \
                  ./fpdyn show a && ./fpdyn show b && ./fpdyn show c && \
                  ./fpstatic show a && ./fpstatic show b && ./fpstatic show c";
    let out = session(&sc, &[], script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1", "0", "0"], "{out}");
    assert_eq!(lines[3..6], lines[6..9], "dynamic and static views");
    let owners: Vec<&str> = lines[3..6]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(owners, ["daemon:bin", "sys:adm", "games:disk"]);
}
