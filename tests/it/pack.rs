//! Tests of `nsroot pack` and `nsroot list` (issue 3), checked against GNU tar and gzip.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{self, assert_ok, stderr, stdout, Scratch};

/// SOURCE_DATE_EPOCH used where the listing is compared: 2023-11-14 22:13:20 UTC.
const SDE: &str = "1700000000";
const SDE_TIME: &str = "2023-11-14 22:13";

/// Builds (as the test uid, umask 022) a tree with every kind of entry under `tree/`.
fn make_tree(s: &Scratch) {
    let script = r#"
        set -e
        umask 022
        mkdir -p tree/bin tree/empty tree/sgid tree/tmp
        printf 'hello\n' > tree/bin/su && chmod 4755 tree/bin/su
        printf 'x' > tree/bin/wall && chmod 2755 tree/bin/wall
        chmod 2775 tree/sgid && chmod 1777 tree/tmp
        ln tree/bin/su tree/bin/su-link
        ln -s /nonexistent/target tree/dangling
        ln -s ../bin/su tree/rel
        mkfifo tree/fifo
        D=$(printf 'd%.0s' $(seq 120)); F=$(printf 'f%.0s' $(seq 150))
        mkdir tree/$D && printf 'long\n' > tree/$D/$F
        printf 'n' > tree/$(printf 'n%.0s' $(seq 110))
        ln -s "$(printf 't%.0s' $(seq 200))" tree/longlink
        printf 'b' > "tree/bad$(printf '\377')name"
    "#;
    assert_ok(&s.sh(script));
}

/// The listing `make_tree` must give, in archive order (whitespace normalised).
fn expected_listing() -> Vec<String> {
    let d = "d".repeat(120);
    let f = "f".repeat(150);
    let n = "n".repeat(110);
    let t = "t".repeat(200);
    [
        "drwxr-xr-x 0/0 0 ./".to_string(),
        r"-rw-r--r-- 0/0 1 ./bad\377name".into(),
        "drwxr-xr-x 0/0 0 ./bin/".into(),
        "-rwsr-xr-x 0/0 6 ./bin/su".into(),
        "hrwsr-xr-x 0/0 0 ./bin/su-link link to ./bin/su".into(),
        "-rwxr-sr-x 0/0 1 ./bin/wall".into(),
        "lrwxrwxrwx 0/0 0 ./dangling -> /nonexistent/target".into(),
        format!("drwxr-xr-x 0/0 0 ./{d}/"),
        format!("-rw-r--r-- 0/0 5 ./{d}/{f}"),
        "drwxr-xr-x 0/0 0 ./empty/".into(),
        "prw-r--r-- 0/0 0 ./fifo".into(),
        format!("lrwxrwxrwx 0/0 0 ./longlink -> {t}"),
        format!("-rw-r--r-- 0/0 1 ./{n}"),
        "lrwxrwxrwx 0/0 0 ./rel -> ../bin/su".into(),
        "drwxrwsr-x 0/0 0 ./sgid/".into(),
        "drwxrwxrwt 0/0 0 ./tmp/".into(),
    ]
    .into_iter()
    .map(|l| {
        // Insert the clamped time after the size column.
        let mut parts: Vec<&str> = l.splitn(4, ' ').collect();
        let rest = parts.pop().unwrap();
        format!("{} {SDE_TIME} {rest}", parts.join(" "))
    })
    .collect()
}

fn normalise(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Runs GNU tar (as whoever runs the suite) in `dir`, UTC, and returns its stdout.
fn gnu_tar(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_ok(&o);
    stdout(&o)
}

fn pack_sde(s: &Scratch, args: &[&str]) -> std::process::Output {
    util::env()
        .nsroot()
        .arg("pack")
        .args(args)
        .env("SOURCE_DATE_EPOCH", SDE)
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn gnu_tar_lists_every_kind_of_entry_as_expected() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    make_tree(&s);
    for out in ["t.tar", "t.tar.gz", "t.tar.zst", "t.tar.xz"] {
        assert_ok(&pack_sde(&s, &["tree", "-o", out]));
        let listing = gnu_tar(s.path(), &["--numeric-owner", "-tvvf", out]);
        assert_eq!(normalise(&listing), expected_listing(), "{out}");
        // nsroot list prints GNU tar's columns exactly, with names and without.
        let ours = s.nsroot(["list", "--numeric-owner", out]);
        assert_ok(&ours);
        assert_eq!(
            stdout(&ours),
            gnu_tar(s.path(), &["--numeric-owner", "-tvf", out]),
            "{out}"
        );
        let ours = s.nsroot(["list", out]);
        assert_eq!(stdout(&ours), gnu_tar(s.path(), &["-tvf", out]), "{out}");
        assert!(stdout(&ours).contains(" root/root "), "{}", stdout(&ours));
    }
}

#[test]
fn list_reads_stdin_and_detects_format_by_content() {
    let s = Scratch::new();
    make_tree(&s);
    assert_ok(&pack_sde(&s, &["tree", "-o", "t.tar.zst"]));
    // A misleading name: detection must go by the magic bytes.
    fs::rename(s.path().join("t.tar.zst"), s.path().join("t.tar.gz")).unwrap();
    let o = s.sh(&format!(
        "{} list --numeric-owner - < t.tar.gz",
        util::env().bin.display()
    ));
    assert_ok(&o);
    assert_eq!(normalise(&stdout(&o)), expected_listing());
}

#[test]
fn sockets_are_skipped_with_a_warning() {
    let s = Scratch::new();
    s.write("tree/a", "a\n");
    // Bound by the test process itself: no python or socat needed. The listener is dropped at
    // once; the socket file stays.
    drop(std::os::unix::net::UnixListener::bind(s.path().join("tree/sock")).unwrap());
    s.chown_all();
    let o = s.nsroot(["pack", "tree", "-o", "t.tar"]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("tree/sock: socket skipped"),
        "{}",
        stderr(&o)
    );
    let listing = gnu_tar(s.path(), &["-tf", "t.tar"]);
    assert_eq!(listing, "./\n./a\n");
}

/// Compares the extracted tree with the source: types, modes, sizes, contents, link targets,
/// clamped mtimes, hard links and (when the suite is root) root ownership.
fn compare_trees(src: &Path, dst: &Path, clamp: i64, as_root: bool) {
    let walk = |root: &Path| -> Vec<_> {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap().path().strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    let (a, b) = (walk(src), walk(dst));
    assert_eq!(a, b, "different paths");
    for rel in &a {
        let (sp, dp) = (src.join(rel), dst.join(rel));
        let (sm, dm) = (
            fs::symlink_metadata(&sp).unwrap(),
            fs::symlink_metadata(&dp).unwrap(),
        );
        let what = rel.display();
        assert_eq!(sm.file_type(), dm.file_type(), "{what}");
        if sm.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&sp).unwrap(),
                fs::read_link(&dp).unwrap(),
                "{what}"
            );
            continue;
        }
        let mask = if as_root { 0o7777 } else { 0o777 };
        assert_eq!(sm.mode() & mask, dm.mode() & mask, "{what}");
        assert_eq!(dm.mtime(), sm.mtime().min(clamp), "{what}");
        if as_root {
            assert_eq!((dm.uid(), dm.gid()), (0, 0), "{what}");
        }
        if sm.is_file() {
            assert_eq!(fs::read(&sp).unwrap(), fs::read(&dp).unwrap(), "{what}");
            assert_eq!(sm.nlink(), dm.nlink(), "{what}");
        }
    }
}

#[test]
fn gnu_tar_extracts_the_same_tree() {
    let s = Scratch::new();
    make_tree(&s);
    let su = s.path().join("tree/bin/su");
    let xattrs_ok = xattr::set(&su, "user.nsroot.test", b"v\0al").is_ok();
    assert_ok(&pack_sde(
        &s,
        &["tree", "-o", "t.tar.gz", "--xattrs", "-j", "2"],
    ));
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let dest = tempfile::tempdir().unwrap();
    let mut tar = Command::new("tar");
    tar.args(["--numeric-owner", "-xpf"])
        .arg(s.path().join("t.tar.gz"))
        .arg("-C")
        .arg(dest.path());
    if xattrs_ok {
        tar.args(["--xattrs", "--xattrs-include=user.*"]);
    }
    assert_ok(&tar.output().unwrap());
    compare_trees(
        &s.path().join("tree"),
        dest.path(),
        SDE.parse().unwrap(),
        as_root,
    );
    let ino = |p: &str| fs::metadata(dest.path().join(p)).unwrap().ino();
    assert_eq!(ino("bin/su"), ino("bin/su-link"));
    assert!(fs::symlink_metadata(dest.path().join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    if xattrs_ok {
        let got = xattr::get(dest.path().join("bin/su"), "user.nsroot.test").unwrap();
        assert_eq!(got.as_deref(), Some(&b"v\0al"[..]));
    } else {
        util::skip("this filesystem refuses user.* xattrs: xattr round trip not checked");
    }
}

#[test]
fn same_tree_gives_same_bytes_from_two_dirs_umasks_and_times() {
    let s = Scratch::new();
    make_tree(&s);
    // cp -a keeps modes and mtimes: the copy is the same tree at another path.
    assert_ok(&s.sh("umask 077 && mkdir other && cp -a tree other/copy"));
    for ext in ["tar", "tar.gz", "tar.zst", "tar.xz"] {
        let a = format!("a.{ext}");
        let b = format!("b.{ext}");
        assert_ok(&s.sh(&format!(
            "umask 022 && {} pack tree -o {a}",
            util::env().bin.display()
        )));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_ok(&s.sh(&format!(
            "umask 077 && cd other && {} pack copy -o ../{b} -j 2",
            util::env().bin.display()
        )));
        let (x, y) = (
            fs::read(s.path().join(&a)).unwrap(),
            fs::read(s.path().join(&b)).unwrap(),
        );
        assert!(x == y, "{ext}: packing the copy gave different bytes");
    }
    // With a clamp, a tree made at another time (other mtimes) gives the same bytes too.
    assert_ok(&s.sh("umask 022 && mkdir later && cp -r --preserve=mode,links tree later/t"));
    assert_ok(&pack_sde(&s, &["tree", "-o", "c.tar.gz"]));
    assert_ok(&pack_sde(&s, &["later/t", "-o", "d.tar.gz"]));
    assert!(
        fs::read(s.path().join("c.tar.gz")).unwrap()
            == fs::read(s.path().join("d.tar.gz")).unwrap()
    );
}

#[test]
fn two_thread_gzip_is_one_valid_stream_equal_to_the_tree() {
    if util::missing_tool("gzip") {
        return;
    }
    let s = Scratch::new();
    // Several MiB so the stream spans many 256 KiB blocks.
    // Machine code (a copy of nsroot) once made zlib-rs state leak between blocks.
    assert_ok(&s.sh(&format!(
        "mkdir -p tree/a && seq 1 900000 > tree/a/nums && head -c 3000000 /dev/zero > tree/zeros \
         && cp {} tree/a/binary && echo x > tree/x",
        util::env().bin.display()
    )));
    assert_ok(&s.nsroot(["pack", "tree", "-o", "t.tar.gz", "-j", "2"]));
    assert_ok(&s.nsroot(["pack", "tree", "-o", "t.tar"]));
    let o = Command::new("gzip")
        .arg("-t")
        .arg(s.path().join("t.tar.gz"))
        .output()
        .unwrap();
    assert_ok(&o);
    let o = Command::new("gzip")
        .arg("-dc")
        .arg(s.path().join("t.tar.gz"))
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(
        o.stdout == fs::read(s.path().join("t.tar")).unwrap(),
        "gzip -d output differs from the plain tar"
    );
    // One member: its trailer's ISIZE is the whole tar's length.
    let gz = fs::read(s.path().join("t.tar.gz")).unwrap();
    let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap());
    assert_eq!(isize as usize, o.stdout.len());
    let dest = tempfile::tempdir().unwrap();
    let x = Command::new("tar")
        .arg("-xzf")
        .arg(s.path().join("t.tar.gz"))
        .arg("-C")
        .arg(dest.path())
        .output()
        .unwrap();
    assert_ok(&x);
    let d = Command::new("diff")
        .arg("-r")
        .arg(s.path().join("tree"))
        .arg(dest.path())
        .output()
        .unwrap();
    assert_ok(&d);
}

#[test]
fn files_over_8_gib_are_stored_whole() {
    let s = Scratch::new();
    let o = s.sh("mkdir tree && truncate -s 9G tree/big && echo after > tree/zz");
    if !o.status.success() {
        util::skip(&format!(
            "cannot make a sparse 9 GiB file here: {}",
            stderr(&o)
        ));
        return;
    }
    let script = format!(
        "set -o pipefail 2>/dev/null; {} pack tree -o - | TZ=UTC tar --numeric-owner -tvvf -",
        util::env().bin.display()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    let listing = normalise(&stdout(&o));
    assert!(
        listing[1].contains(" 9663676416 ") && listing[1].ends_with("./big"),
        "{listing:?}"
    );
    assert!(listing[2].ends_with("./zz"), "{listing:?}");
    let script = format!(
        "{} pack tree -o - | tar -xOf - ./zz",
        util::env().bin.display()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(stdout(&o), "after\n");
}

#[test]
fn bad_input_exits_2_naming_the_path() {
    let s = Scratch::new();
    assert_ok(&s.sh("mkdir tree && echo a > tree/a"));
    for (args, needle) in [
        (&["pack", "missing-dir", "-o", "x.tar"][..], "missing-dir"),
        (&["pack", "tree", "-o", "no/such/dir/x.tar"], "no/such/dir"),
        (&["pack", "tree", "-o", "x.zip"], "x.zip"),
        (&["pack", "tree", "-o", "tree", "--format", "tar"], "tree"),
        (&["list", "missing.tar.gz"], "missing.tar.gz"),
    ] {
        let o = s.nsroot(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    assert!(!s.path().join("x.zip").exists());
}

#[test]
fn failed_pack_leaves_no_output_and_keeps_the_old_one() {
    if util::env().uid == 0 {
        util::skip("running as root without a test user: every file is readable");
        return;
    }
    let s = Scratch::new();
    assert_ok(
        &s.sh(
            "mkdir tree && echo a > tree/a && echo secret > tree/locked && chmod 000 tree/locked",
        ),
    );
    for out in ["new.tar.gz", "old.tar.zst"] {
        if out.starts_with("old") {
            s.write(out, "previous contents");
        }
        let o = s.nsroot(["pack", "tree", "-o", out]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("open tree/locked"), "{}", stderr(&o));
        let names: Vec<String> = fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "tree")
            .collect();
        if out.starts_with("old") {
            assert_eq!(names, vec![out.to_string()]);
            assert_eq!(
                fs::read_to_string(s.path().join(out)).unwrap(),
                "previous contents"
            );
        } else {
            assert!(names.is_empty(), "{names:?}");
        }
    }
}

#[test]
fn output_inside_the_tree_is_not_archived() {
    let s = Scratch::new();
    assert_ok(&s.sh("mkdir tree && echo a > tree/a"));
    // Twice: the second run also finds the previous output in the tree.
    for _ in 0..2 {
        assert_ok(&s.nsroot(["pack", "tree", "-o", "tree/self.tar.gz"]));
        assert_eq!(
            gnu_tar(s.path(), &["-tzf", "tree/self.tar.gz"]),
            "./\n./a\n"
        );
    }
    let o = s.sh(&format!(
        "{} pack tree -o - > tree/s.tar",
        util::env().bin.display()
    ));
    assert_ok(&o);
    assert_eq!(
        gnu_tar(s.path(), &["-tf", "tree/s.tar"]),
        "./\n./a\n./self.tar.gz\n"
    );
}

#[test]
fn sigint_removes_the_partial_output() {
    let s = Scratch::new();
    // Several GiB of zeros keep a debug build busy for seconds.
    let o = s.sh("mkdir tree && truncate -s 6G tree/big");
    if !o.status.success() {
        util::skip("cannot make a sparse file here");
        return;
    }
    let mut child = util::env()
        .nsroot()
        .args(["pack", "tree", "-o", "out.tar.gz"])
        .current_dir(s.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the (unnamed, O_TMPFILE) output is open, so the signal surely lands
    // mid-pack: /proc shows it as "<dir>/#<inode> (deleted)".
    let fd_dir = std::path::PathBuf::from(format!("/proc/{}/fd", child.id()));
    let tmp_exists = || {
        fs::read_dir(&fd_dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                fs::read_link(e.path()).is_ok_and(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.starts_with(&s.path().display().to_string()) && l.contains("/#")
                })
            })
    };
    let start = std::time::Instant::now();
    while !tmp_exists() {
        assert!(
            start.elapsed().as_secs() < 20,
            "no temporary output appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "pack ended before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // setpriv execs nsroot: the child's pid is nsroot's.
    assert_ok(
        &Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .output()
            .unwrap(),
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    let names: Vec<_> = fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("tree")], "left behind");
}

/// A recorded id is stored with the name /etc/passwd or /etc/group gives it (`root/games`), as
/// fakeroot + GNU tar store it, not as a bare number.
#[test]
fn recorded_ids_get_their_names_as_with_fakeroot_and_gnu_tar() {
    if util::no_userns() || util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    let chown = "chown 0:60 tree/f && chown 1:1 tree/g";
    assert_ok(&s.sh("mkdir tree && echo a > tree/f && echo b > tree/g"));
    assert_ok(&s.nsroot(["-s", "state", "--", "sh", "-c", chown]));
    assert_ok(&s.nsroot(["pack", "-i", "state", "tree", "-o", "ours.tar"]));
    let listing = gnu_tar(s.path(), &["-tvf", "ours.tar"]);
    let owners: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    // The names this host gives ids 60 (group) and 1 (user and group), as tar would show.
    let group_60 = gnu_tar_name(&s, "--group", "60");
    let user_1 = gnu_tar_name(&s, "--owner", "1");
    let group_1 = gnu_tar_name(&s, "--group", "1");
    assert_eq!(
        owners,
        [
            "root/root".to_string(),
            format!("root/{group_60}"),
            format!("{user_1}/{group_1}")
        ],
        "{listing}"
    );
    assert!(
        listing.contains("root/games"),
        "Debian's games group: {listing}"
    );
    // fakeroot + GNU tar give the very same archive entries.
    if util::missing_tool("fakeroot") {
        return;
    }
    assert_ok(&s.sh(&format!(
        "fakeroot sh -c '{chown} && tar --sort=name -C tree -cf theirs.tar .'"
    )));
    assert_same_entries_as_gnu_tar(&s, "theirs.tar", "ours.tar");
}

/// The name GNU tar stores for a bare numeric `--owner`/`--group` id (looked up in the host's
/// files); the id itself when there is none.
fn gnu_tar_name(s: &Scratch, flag: &str, id: &str) -> String {
    let o = s.sh(&format!(
        "echo x > n.$$ && tar {flag}={id} -cf - n.$$ | tar -tvf - ; rm -f n.$$"
    ));
    assert_ok(&o);
    let owner = stdout(&o).split_whitespace().nth(1).unwrap().to_string();
    let (u, g) = owner.split_once('/').unwrap();
    if flag == "--owner" { u } else { g }.to_string()
}

/// Regression (audit): DIR given as a symlink to a directory was stored as a symlink `./`,
/// which GNU tar cannot extract. It is packed as the directory it points to, as `link/` is.
#[test]
fn dir_given_as_a_symlink_is_packed_as_its_target() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    assert_ok(
        &s.sh("mkdir -p tree/sub && echo a > tree/sub/f && ln -s ../x tree/l && ln -s tree link"),
    );
    assert_ok(&pack_sde(&s, &["tree", "-o", "t.tar"]));
    assert_ok(&pack_sde(&s, &["link", "-o", "l.tar"]));
    assert_ok(&pack_sde(&s, &["link/", "-o", "slash.tar"]));
    let read = |n: &str| fs::read(s.path().join(n)).unwrap();
    assert!(
        read("l.tar") == read("t.tar"),
        "link: not the tree's archive"
    );
    assert!(
        read("slash.tar") == read("t.tar"),
        "link/: not the tree's archive"
    );
    let dest = tempfile::tempdir().unwrap();
    let o = Command::new("tar")
        .arg("-xf")
        .arg(s.path().join("l.tar"))
        .arg("-C")
        .arg(dest.path())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(fs::read(dest.path().join("sub/f")).unwrap(), b"a\n");
}

/// Entries come in byte order of their stored path (`./a.txt` before `./a/`, `./a/b`), which
/// puts each directory right before its contents: `LC_ALL=C sort` agrees with the archive.
#[test]
fn entries_are_in_byte_order_of_their_path() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    assert_ok(&s.sh(
        "mkdir -p tree/a/b tree/a-b tree/a0 && touch tree/a.txt tree/a/b/c tree/a/z tree/a-b/x \
         tree/a0/y tree/A",
    ));
    assert_ok(&s.nsroot(["pack", "tree", "-o", "t.tar"]));
    let listing = gnu_tar(s.path(), &["-tf", "t.tar"]);
    let got: Vec<&str> = listing.lines().collect();
    assert_eq!(
        got,
        [
            "./", "./A", "./a-b/", "./a-b/x", "./a.txt", "./a/", "./a/b/", "./a/b/c", "./a/z",
            "./a0/", "./a0/y"
        ]
    );
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(got, sorted);
}

/// Regression (audit): inside an nsroot session the emulated lstat shows the recorded owners
/// and device nodes; pack stores them as GNU tar in the same session does (it stored
/// root/root for everything).
#[test]
fn inside_a_session_owners_come_from_lstat_as_with_gnu_tar() {
    if util::no_userns() || util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    assert_ok(&s.sh("mkdir -p t/d && echo a > t/a && echo b > t/b && echo c > t/d/c"));
    let script = format!(
        "set -e; mknod t/null c 1 3; chown 0:60 t/a; chown 1:1 t/b t/d; chmod 4755 t/b; \
         {} pack t -o ours.tar; tar --sort=name -C t -cf theirs.tar .",
        util::env().bin.display()
    );
    assert_ok(&s.nsroot(["sh", "-c", &script]));
    let ours = gnu_tar(s.path(), &["-tvf", "ours.tar"]);
    let theirs = gnu_tar(s.path(), &["-tvf", "theirs.tar"]);
    assert_eq!(ours, theirs);
    let lines = normalise(&ours);
    assert!(lines[1].starts_with("-rw-r--r-- root/games 2 "), "{ours}");
    assert!(lines[5].starts_with("crw-r--r-- root/root 1,3 "), "{ours}");
    let numeric = gnu_tar(s.path(), &["--numeric-owner", "-tvf", "ours.tar"]);
    assert_eq!(
        numeric,
        gnu_tar(s.path(), &["--numeric-owner", "-tvf", "theirs.tar"])
    );
    assert!(
        normalise(&numeric)[2].starts_with("-rwsr-xr-x 1/1 2 "),
        "{numeric}"
    );
    // `nsroot diff` compares every header field GNU tar's listing does not show.
    assert_same_entries_as_gnu_tar(&s, "theirs.tar", "ours.tar");
}

/// Regression (audit): a negative mtime was stored as 0. GNU tar's POSIX format stores it as a
/// PAX `mtime` record; a clamp never raises it.
#[test]
fn negative_mtimes_are_stored_as_gnu_tar_stores_them() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    assert_ok(&s.sh("mkdir tree && echo a > tree/old && touch -d @-5 tree/old"));
    let theirs = "tar --format=posix --sort=name --owner=root --group=root \
                  --mtime=@1700000000 --clamp-mtime -C tree -cf theirs.tar .";
    assert_ok(&s.sh(theirs));
    assert_ok(&pack_sde(&s, &["tree", "-o", "ours.tar"]));
    let list = |f: &str| gnu_tar(s.path(), &["--full-time", "-tvf", f]);
    assert_eq!(list("ours.tar"), list("theirs.tar"));
    assert!(
        list("ours.tar").contains(" 1969-12-31 23:59:55 ./old\n"),
        "{}",
        list("ours.tar")
    );
    let ours = s.nsroot(["list", "ours.tar"]);
    assert_ok(&ours);
    assert_eq!(stdout(&ours), gnu_tar(s.path(), &["-tvf", "ours.tar"]));
    let dest = tempfile::tempdir().unwrap();
    let o = Command::new("tar")
        .arg("-xf")
        .arg(s.path().join("ours.tar"))
        .arg("-C")
        .arg(dest.path())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(fs::metadata(dest.path().join("old")).unwrap().mtime(), -5);
}

/// `--owner`/`--group` with ids, names and NAME:ID, and `--numeric-owner`, store what GNU tar
/// stores: a bare id gets the name the host's files give it (`1` is daemon on Debian).
#[test]
fn owner_group_and_numeric_owner_match_gnu_tar() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    assert_ok(&s.sh("mkdir -p tree/d && echo a > tree/d/f"));
    for opts in [
        &["--owner", "1", "--group", "1"][..],
        &["--owner", "0", "--group", "60"],
        &["--owner", "daemon", "--group", "2"],
        &["--owner", "builder:1234", "--group", "staff:50"],
        &["--owner", "4242", "--group", "4243"],
        &["--numeric-owner", "--owner", "1", "--group", "1"],
        &["--numeric-owner"],
    ] {
        let mut ours = vec!["pack", "tree", "-o", "ours.tar"];
        ours.extend_from_slice(opts);
        assert_ok(&s.nsroot(&ours));
        let mut theirs = String::from("tar --sort=name");
        let mut i = 0;
        while i < opts.len() {
            if opts[i] == "--numeric-owner" {
                theirs.push_str(" --numeric-owner");
                i += 1;
            } else {
                theirs.push_str(&format!(" {}={}", opts[i], opts[i + 1]));
                i += 2;
            }
        }
        // nsroot's defaults are root:root; GNU tar's the files' owners.
        if !opts.contains(&"--owner") {
            theirs.push_str(" --owner=0 --group=0");
        }
        theirs.push_str(" -C tree -cf theirs.tar .");
        assert_ok(&s.sh(&theirs));
        for flags in [&["-tvf"][..], &["--numeric-owner", "-tvf"]] {
            let list = |f: &str| {
                let mut args = flags.to_vec();
                args.push(f);
                gnu_tar(s.path(), &args)
            };
            assert_eq!(list("ours.tar"), list("theirs.tar"), "{opts:?} {flags:?}");
        }
    }
    let listing = gnu_tar(s.path(), &["-tvf", "ours.tar"]);
    assert!(listing.contains(" 0/0 "), "{listing}");
}

/// Starts `nsroot pack tree -o out.tar.gz` on a tree holding a 4 GiB sparse `big`, waits until
/// it has read part of `big` (its file offset in /proc), calls `change(big)`, and returns the
/// output.
fn pack_while_changing(s: &Scratch, change: impl FnOnce(&Path)) -> std::process::Output {
    let child = util::env()
        .nsroot()
        .args(["pack", "tree", "-o", "out.tar.gz"])
        .current_dir(s.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let big = s.path().join("tree/big");
    // setpriv execs nsroot: the child's pid is nsroot's.
    let pid = child.id();
    let read_pos = || -> Option<u64> {
        for e in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            if fs::read_link(e.path()).is_ok_and(|l| l == big) {
                let info = fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    e.file_name().to_string_lossy()
                ))
                .ok()?;
                return info
                    .lines()
                    .find_map(|l| l.strip_prefix("pos:"))
                    .and_then(|p| p.trim().parse().ok());
            }
        }
        None
    };
    let start = std::time::Instant::now();
    loop {
        if read_pos().is_some_and(|p| p > 0) {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "pack never started reading tree/big"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    change(&big);
    child.wait_with_output().unwrap()
}

/// Regression test of walk.rs's copy: a file that grows or shrinks while it is copied fails
/// the pack with one line naming it, and leaves no output (never a corrupt archive).
#[test]
fn file_that_grows_or_shrinks_while_packed_fails_cleanly() {
    const SIZE: u64 = 4 << 30;
    fn shrink(big: &Path) {
        let f = fs::OpenOptions::new().write(true).open(big).unwrap();
        f.set_len(1 << 20).unwrap();
    }
    fn grow(big: &Path) {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(big).unwrap();
        f.write_all(&[b'x'; 4096]).unwrap();
    }
    let cases = [
        ("shrank from 4294967296 to ", shrink as fn(&Path)),
        ("grew beyond 4294967296 bytes", grow),
    ];
    for (what, change) in cases {
        let s = Scratch::new();
        let o = s.sh(&format!(
            "mkdir tree && truncate -s {SIZE} tree/big && echo z > tree/z"
        ));
        if !o.status.success() {
            util::skip("cannot make a sparse file here");
            return;
        }
        let o = pack_while_changing(&s, change);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("nsroot: ") && err.contains("tree/big ") && err.contains(what),
            "{what}: {err}"
        );
        let names: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tree")], "left behind");
    }
}

/// `nsroot diff` of GNU tar's archive `theirs` and nsroot's `ours` finds the same entries,
/// owners, names, modes and contents: what may differ is only how GNU tar encodes them (its
/// gnu header format and 10 KiB records) and its per-directory entry order against nsroot's
/// byte order of the path.
fn assert_same_entries_as_gnu_tar(s: &Scratch, theirs: &str, ours: &str) {
    let o = s.nsroot(["diff", theirs, ours]);
    let report = stdout(&o);
    let other: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
        .filter(|l| !l.ends_with(" differences") && !l.ends_with(" difference"))
        .filter(|l| {
            !(l.contains("header format gnu -> ")
                || l.contains("end of archive")
                || l.contains("entry order differs"))
        })
        .collect();
    assert!(
        matches!(o.status.code(), Some(0 | 1)) && other.is_empty(),
        "{report}{}",
        stderr(&o)
    );
}

/// Three corpora of different shapes for the gzip size comparison: pseudo-English text in
/// 2,000 files, 20,000 binary fragments of 16-512 bytes cut from a program, and a tree of real
/// programs and libraries (perl's, which every Debian system has, and two programs).
fn gzip_corpora(s: &Scratch) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut x = 0x2545_f491_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let text = s.path().join("text");
    fs::create_dir(&text).unwrap();
    let words: Vec<String> = (0..3000)
        .map(|_| {
            let len = 2 + next() % 8;
            (0..len)
                .map(|_| b"etaoinshrdlucmfwypvbgkjqxz"[(next() % 26) as usize] as char)
                .collect()
        })
        .collect();
    for i in 0..2000 {
        let mut body = String::new();
        for _ in 0..5 + next() % 56 {
            let n = 3 + next() % 12;
            let line: Vec<&str> = (0..n)
                .map(|_| words[(next() % 3000) as usize].as_str())
                .collect();
            body.push_str(&line.join(" "));
            body.push_str(".\n");
        }
        fs::write(text.join(format!("f{i:04}.txt")), body).unwrap();
    }
    let bin = s.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let program = fs::read("/usr/bin/bash").unwrap();
    for i in 0..20_000 {
        let n = 16 + (next() % 497) as usize;
        let at = (next() as usize) % (program.len() - n);
        fs::write(bin.join(format!("b{i:05}")), &program[at..at + n]).unwrap();
    }
    let tree = s.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let perl = Path::new("/usr/lib/x86_64-linux-gnu/perl-base");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(perl)
        .args(["/usr/bin/bash", "/usr/bin/perl"])
        .arg(&tree)
        .status()
        .unwrap();
    assert!(copied.success(), "cp {} failed", perl.display());
    s.chown_all();
    vec![("text", text), ("small binaries", bin), ("programs", tree)]
}

/// Issue 16: `nsroot pack -L N` is never larger than `gzip -N` of the same tar, for every N,
/// on three corpora (the engine's levels are mapped to gzip's). Sizes are deterministic, so
/// this is a test; the speeds are the benchmark's (benches/pack.sh).
#[test]
fn issue16_gzip_output_is_never_larger_than_gzip_at_the_same_level() {
    if util::missing_tool("gzip") {
        return;
    }
    let s = Scratch::new();
    let mut larger = Vec::new();
    for (name, dir) in gzip_corpora(&s) {
        let tar = s.path().join("plain.tar");
        assert_ok(&s.nsroot([
            "pack".as_ref(),
            dir.as_os_str(),
            "-o".as_ref(),
            tar.as_os_str(),
        ]));
        for level in 1..=9 {
            let ours = s.nsroot([
                "pack".as_ref(),
                dir.as_os_str(),
                "-o".as_ref(),
                "-".as_ref(),
                "--format".as_ref(),
                "tar.gz".as_ref(),
                "-L".as_ref(),
                level.to_string().as_ref(),
            ]);
            assert_ok(&ours);
            let gzip = Command::new("gzip")
                .arg(format!("-{level}"))
                .arg("-c")
                .arg(&tar)
                .output()
                .unwrap();
            assert!(gzip.status.success());
            if ours.stdout.len() > gzip.stdout.len() {
                larger.push(format!(
                    "{name} -L {level}: {} bytes, gzip -{level} {}",
                    ours.stdout.len(),
                    gzip.stdout.len()
                ));
            }
        }
    }
    assert!(larger.is_empty(), "larger than gzip: {larger:#?}");
}
