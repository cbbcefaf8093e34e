//! 32-bit x86 programs under nsroot (issue 14): the filter lets the i386 ABI through to the
//! supervisor, which answers its chown, mknod, stat and xattr calls with the i386 structs.
//!
//! The probe makes each call by its i386 number with the kernel's own uapi structs, so it does
//! not depend on which stat call glibc picks (glibc 2.36 uses statx for everything); built
//! with `gcc -m32` (Debian's `gcc-multilib`), dynamic and static.

use std::process::Command;

use crate::util::{self, Scratch};

const PROBE32_C: &str = r#"
/* i386 calls by number (arch/x86/entry/syscalls/syscall_32.tbl), structs from the kernel's
 * own uapi headers, so nothing here depends on glibc's choice of stat call. */
#include <asm/stat.h>
#include <linux/fcntl.h>
#include <linux/stat.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#define MAJ(d) (((d) >> 8) & 0xfff)
#define MIN(d) (((d) & 0xff) | (((d) >> 12) & 0xfff00))
static void show64(const char *n, struct stat64 *s) {
    printf("%s %lu:%lu %x %x,%x %llu %lld %lu\n", n, s->st_uid, s->st_gid, s->st_mode,
           (unsigned)MAJ(s->st_rdev), (unsigned)MIN(s->st_rdev), s->st_ino, s->st_size, s->st_mtime);
}
static void showold(const char *n, struct stat *s) {
    printf("%s %u:%u %x %x,%x %lu %lu %lu\n", n, s->st_uid, s->st_gid, s->st_mode,
           (unsigned)MAJ(s->st_rdev), (unsigned)MIN(s->st_rdev), s->st_ino, s->st_size, s->st_mtime);
}
static void showx(const char *n, struct statx *s) {
    printf("%s %u:%u %x %x,%x %llu %llu %lld\n", n, s->stx_uid, s->stx_gid, s->stx_mode,
           s->stx_rdev_major, s->stx_rdev_minor, s->stx_ino, s->stx_size, s->stx_mtime.tv_sec);
}
#define CHECK(e) do { if ((e) != 0) { printf("FAILED %s: %s\n", #e, strerror(errno)); return 1; } } while (0)
int main(int argc, char **argv) {
    struct stat64 s64; struct stat s; struct statx sx; long r;
    const char *files[] = {"f", "g", "l", "d", "b"};
    if (argc > 1 && !strcmp(argv[1], "show")) {
        for (int i = 0; i < 5; i++) {
            const char *f = files[i];
            CHECK(syscall(196, f, &s64)); show64(f, &s64);               /* lstat64 */
            CHECK(syscall(300, AT_FDCWD, f, &s64, AT_SYMLINK_NOFOLLOW)); show64(f, &s64); /* fstatat64 */
            CHECK(syscall(383, AT_FDCWD, f, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx)); showx(f, &sx);
            CHECK(syscall(107, f, &s)); showold(f, &s);                  /* lstat */
        }
        int fd = syscall(5, "f", O_RDONLY);                              /* open */
        CHECK(fd < 0);
        CHECK(syscall(197, fd, &s64)); show64("f", &s64);                /* fstat64 */
        CHECK(syscall(108, fd, &s)); showold("f", &s);                   /* fstat */
        CHECK(syscall(195, "l", &s64)); show64("f", &s64);               /* stat64 follows */
        CHECK(syscall(106, "l", &s)); showold("f", &s);                  /* stat follows */
        struct __old_kernel_stat o;
        r = syscall(84, "f", &o);                                       /* oldlstat */
        printf("oldlstat %s\n", r == 0 ? "ok" : errno == EOVERFLOW ? "EOVERFLOW" : strerror(errno));
        return 0;
    }
    CHECK(syscall(182, "f", 33, 44));                    /* chown16 */
    CHECK(syscall(182, "f", 0xffff, 45));                /* -1 is 0xffff: uid stays 33 */
    CHECK(syscall(212, "g", 70000, 70001));              /* chown32 */
    CHECK(syscall(16, "l", 5, 6));                       /* lchown16 */
    int fd = syscall(5, "g", O_RDONLY);
    CHECK(fd < 0);
    CHECK(syscall(207, fd, -1, 70002));                  /* fchown32 */
    CHECK(syscall(95, fd, 0xffff, 0xffff));              /* fchown16, changes nothing */
    CHECK(syscall(198, "l", 7, -1));                     /* lchown32 */
    CHECK(syscall(298, AT_FDCWD, "f", -1, 46, 0));       /* fchownat */
    CHECK(syscall(14, "d", S_IFCHR | 0644, (1 << 8) | 3));        /* mknod */
    CHECK(syscall(297, AT_FDCWD, "b", S_IFBLK | 0640, (8 << 8) | 17)); /* mknodat */
    CHECK(syscall(226, "f", "security.abi", "i386", 4, 0));       /* setxattr */
    char v[16] = {0};
    long n = syscall(229, "f", "security.abi", v, sizeof v);       /* getxattr */
    printf("getxattr %ld %s\n", n, v);
    r = syscall(425, 1, 0);                                   /* io_uring_setup */
    printf("io_uring_setup %ld %s\n", r, r < 0 && errno == ENOSYS ? "ENOSYS" : "other");
    return 0;
}
"#;

/// Builds the probe with `gcc -m32` (static too when asked); false when the test must skip.
fn build_probe(sc: &Scratch, static_link: bool) -> bool {
    if util::missing_tool("gcc") {
        return false;
    }
    let src = sc.write("abi32.c", PROBE32_C);
    let mut gcc = Command::new("gcc");
    gcc.args(["-m32", "-O1", "-Wall", "-Werror"]);
    if static_link {
        gcc.arg("-static");
    }
    let out = gcc
        .arg("-o")
        .arg(sc.path().join("abi32"))
        .arg(&src)
        .output()
        .unwrap();
    if !out.status.success() {
        util::skip(&format!(
            "gcc -m32 cannot build a 32-bit program here (install gcc-multilib): {}",
            util::stderr(&out).lines().next().unwrap_or_default()
        ));
        return false;
    }
    sc.chown_all();
    true
}

/// What the 32-bit probe shows for a file the 64-bit `stat` printed as `line`, in the order of
/// its `show` mode: lstat64, fstatat64, statx, then the old i386 `struct stat`, whose 16-bit
/// ids show an id above 65535 as the overflow id 65534, as the kernel's high2lowuid does.
fn expected_32(line: &str) -> Vec<String> {
    let mut f: Vec<String> = line.split(' ').map(str::to_string).collect();
    let wide = f.join(" ");
    let short = |id: &str| match id.parse::<u32>() {
        Ok(n) if n > 0xffff => "65534".to_string(),
        _ => id.to_string(),
    };
    let (u, g) = f[1].split_once(':').unwrap();
    f[1] = format!("{}:{}", short(u), short(g));
    vec![wide.clone(), wide.clone(), wide, f.join(" ")]
}

fn i386_calls_see_the_records(static_link: bool) {
    if util::no_userns() {
        return;
    }
    let sc = Scratch::new();
    if !build_probe(&sc, static_link) {
        return;
    }
    let fmt = "%n %u:%g %f %t,%T %i %s %Y";
    let script = format!(
        "umask 022 && touch f g && ln -s f l && ./abi32 && ./abi32 show > shown && \
         stat -c '{fmt}' f g l d b"
    );
    let out = sc.nsroot(["sh", "-c", &script]);
    util::assert_ok(&out);
    // Not killed, and nothing new on stderr (no warning from nsroot or the kernel's ABI).
    assert_eq!(util::stderr(&out), "", "stderr");
    let stdout = util::stdout(&out);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("getxattr 4 i386"), "{stdout}");
    assert_eq!(lines.next(), Some("io_uring_setup -1 ENOSYS"), "{stdout}");
    let native: Vec<&str> = lines.collect();
    assert_eq!(native.len(), 5, "{stdout}");
    // The records, as the 64-bit stat shows them.
    let ids: Vec<&str> = native
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(ids[..3], ["33:46", "70000:70002", "7:6"], "{stdout}");
    let dev: Vec<&str> = native[3].split(' ').collect();
    let blk: Vec<&str> = native[4].split(' ').collect();
    assert_eq!(
        (dev[2], dev[3]),
        ("21a4", "1,3"),
        "a character device 1,3, 0644"
    );
    assert_eq!(
        (blk[2], blk[3]),
        ("61a0", "8,11"),
        "a block device 8,17 (hex 8,11), 0640"
    );
    // The 32-bit view of each file agrees with the 64-bit one, field by field.
    let shown = std::fs::read_to_string(sc.path().join("shown")).unwrap();
    let mut want: Vec<String> = native.iter().flat_map(|l| expected_32(l)).collect();
    // fstat64 and fstat of f, then stat64 and stat through the symlink l (which follow it).
    for _ in 0..2 {
        want.extend(expected_32(native[0])[2..].iter().cloned());
    }
    let mut got: Vec<&str> = shown.lines().collect();
    // oldlstat's 16-bit inode number: EOVERFLOW, as from the kernel, on a filesystem with
    // larger inode numbers (the usual case); an answer on one without.
    let old = got.pop();
    assert!(
        old == Some("oldlstat EOVERFLOW") || old == Some("oldlstat ok"),
        "{shown}"
    );
    assert_eq!(got, want, "32-bit:\n{shown}");
}

#[test]
fn i386_calls_see_the_records_dynamic() {
    i386_calls_see_the_records(false);
}

#[test]
fn i386_calls_see_the_records_static() {
    i386_calls_see_the_records(true);
}
