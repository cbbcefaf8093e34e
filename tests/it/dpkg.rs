//! nsroot as the gain-root command of Debian's tooling (`dpkg-buildpackage -rnsroot`) and as
//! `$(FAKEROOT)` in a Makefile, each checked against what fakeroot gives (issues 2 and 6).
//!
//! The Debian source packages live under tests/fixtures/debian/; each one's debian/rules
//! appends `uid=<id -u> nsroot=<$NSROOT> fakerootkey=<set if FAKEROOTKEY is set, even empty>`
//! to `../gain-root.log` during the binary target, so a test can tell which gain-root command
//! (if any) ran it.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

use crate::util::{self, Scratch};

/// The build time every build sees (2023-11-14 22:13:20 UTC, the fixtures' changelog date).
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// Skips (or fails, in strict mode) when namespaces or a needed host tool are missing.
fn cannot_run(tools: &[&str]) -> bool {
    util::no_userns() || tools.iter().any(|t| util::missing_tool(t))
}

const DPKG_TOOLS: &[&str] = &["dpkg-buildpackage", "dpkg-deb", "dh", "fakeroot"];

/// Copies a fixture tree, keeping file modes (debian/rules must stay executable).
fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// PATH with the directory of the nsroot under test first.
fn path_with_nsroot() -> OsString {
    let bin_dir = util::env().bin.parent().unwrap().to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&rest))).unwrap()
}

/// `program` run as the test uid in `dir`, under `umask 022` and a small, fixed environment:
/// no DEB_*, MAKEFLAGS, FAKEROOTKEY or LD_PRELOAD leaks in from whoever runs the suite.
fn hermetic(program: &str, dir: &Path, home: &Path) -> Command {
    let env = util::env();
    let user = env
        .drop_to
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| env.uid.to_string());
    let mut cmd = env.command("sh");
    cmd.env_clear()
        .env("PATH", path_with_nsroot())
        .env("HOME", home)
        .env("USER", &user)
        .env("LOGNAME", &user)
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .args(["-c", "umask 022 && exec \"$@\"", "sh", program])
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

/// One `dpkg-buildpackage -b` run of a fixture in its own scratch directory.
struct DebBuild {
    scratch: Scratch,
    /// The source tree (scratch/<fixture>).
    src: PathBuf,
    output: Output,
}

impl DebBuild {
    /// Builds `fixture` with `-r<gain_root>` plus `extra` options, as the test uid.
    fn run(fixture: &str, gain_root: &str, extra: &[&str]) -> DebBuild {
        let scratch = Scratch::new();
        let src = scratch.path().join(fixture);
        copy_tree(
            &util::repo().join("tests/fixtures/debian").join(fixture),
            &src,
        );
        scratch.chown_all();
        let output = hermetic("dpkg-buildpackage", &src, scratch.path())
            .args(["-b", "-us", "-uc"])
            .arg(format!("-r{gain_root}"))
            .args(extra)
            .output()
            .unwrap();
        DebBuild {
            scratch,
            src,
            output,
        }
    }

    /// Both output streams, for failure messages and for what dpkg-buildpackage printed.
    fn transcript(&self) -> String {
        format!(
            "status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.output.status,
            util::stdout(&self.output),
            util::stderr(&self.output)
        )
    }

    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "dpkg-buildpackage failed: {}",
            self.transcript()
        );
        self
    }

    /// The one .deb the build wrote next to the source tree.
    #[track_caller]
    fn deb(&self) -> PathBuf {
        let debs: Vec<PathBuf> = std::fs::read_dir(self.scratch.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        assert_eq!(debs.len(), 1, "expected one .deb, got {debs:?}");
        debs.into_iter().next().unwrap()
    }

    /// `dpkg-deb -c` of the .deb: mode, owner/group, size, mtime and name of each entry.
    fn listing(&self) -> String {
        let out = Command::new("dpkg-deb")
            .arg("-c")
            .arg(self.deb())
            .output()
            .unwrap();
        util::assert_ok(&out);
        util::stdout(&out)
    }

    fn sha256(&self) -> String {
        hex::encode(Sha256::digest(std::fs::read(self.deb()).unwrap()))
    }

    /// What debian/rules recorded during the binary target (one line a run).
    fn gain_root_log(&self) -> String {
        let log = self.scratch.path().join("gain-root.log");
        std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", log.display(), self.transcript()))
    }
}

/// The line debian/rules records when nsroot ran the binary target: uid 0, NSROOT=1 (which
/// fakeroot never sets) and FAKEROOTKEY set, as nsroot sets it in every session (issue 14) for
/// the scripts that test it.
const UNDER_NSROOT: &str = "uid=0 nsroot=1 fakerootkey=set\n";
/// The line debian/rules records when fakeroot ran the binary target.
const UNDER_FAKEROOT: &str = "uid=0 nsroot= fakerootkey=set\n";

/// The line debian/rules records when no gain-root command ran the binary target.
fn unprivileged_line() -> String {
    format!("uid={} nsroot= fakerootkey=\n", util::env().uid)
}

/// Asserts that the two builds produced the same .deb, listing first (the clearer message).
#[track_caller]
fn assert_same_deb(nsroot: &DebBuild, fakeroot: &DebBuild) {
    assert_eq!(
        nsroot.listing(),
        fakeroot.listing(),
        "dpkg-deb -c differs: left nsroot, right fakeroot"
    );
    assert_eq!(
        nsroot.sha256(),
        fakeroot.sha256(),
        "the .deb files differ although their listings match"
    );
}

/// Asserts that every line of `expected` appears in `listing` (modes, owners and names; the
/// size and date columns are skipped).
#[track_caller]
fn assert_listing_has(listing: &str, expected: &[(&str, &str, &str)]) {
    let entries: Vec<(&str, &str, &str)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0], f[1], *f.last().unwrap())
        })
        .collect();
    for want in expected {
        assert!(
            entries.contains(want),
            "{want:?} missing from the listing:\n{listing}"
        );
    }
}

/// Asserts the build ran as the unprivileged test uid and left its files owned by it.
#[track_caller]
fn assert_owned_by_test_user(path: &Path) {
    let env = util::env();
    assert_ne!(env.uid, 0, "the build must run as a non-root uid");
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (env.uid, env.gid),
        "{} is not owned by the test user",
        path.display()
    );
}

#[test]
fn dpkg_plain_matches_fakeroot() {
    if cannot_run(DPKG_TOOLS) {
        return;
    }
    let nsroot = DebBuild::run("plain", "nsroot", &[]);
    nsroot.assert_ok();
    assert_eq!(
        nsroot.gain_root_log(),
        UNDER_NSROOT,
        "{}",
        nsroot.transcript()
    );
    assert!(
        util::stderr(&nsroot.output).contains(" nsroot debian/rules binary\n"),
        "dpkg-buildpackage did not run the binary target under nsroot: {}",
        nsroot.transcript()
    );
    // Made inside the session by dh_install, owned by the real user outside.
    assert_owned_by_test_user(&nsroot.src.join("debian/nsroot-plain/usr/bin/hello-nsroot"));
    assert_owned_by_test_user(&nsroot.deb());

    let fakeroot = DebBuild::run("plain", "fakeroot", &[]);
    fakeroot.assert_ok();
    assert_eq!(fakeroot.gain_root_log(), UNDER_FAKEROOT);

    assert_listing_has(
        &nsroot.listing(),
        &[
            ("drwxr-xr-x", "root/root", "./usr/bin/"),
            ("-rwxr-xr-x", "root/root", "./usr/bin/hello-nsroot"),
            (
                "-rw-r--r--",
                "root/root",
                "./usr/share/doc/nsroot-plain/README",
            ),
        ],
    );
    assert_same_deb(&nsroot, &fakeroot);
}

#[test]
fn dpkg_norootreq_matches_fakeroot() {
    if cannot_run(DPKG_TOOLS) {
        return;
    }
    // Rules-Requires-Root: no, so dpkg-buildpackage runs debian/rules binary without either
    // gain-root command, and dh_builddeb asks dpkg-deb for root-owned entries.
    let nsroot = DebBuild::run("norootreq", "nsroot", &[]);
    nsroot.assert_ok();
    assert_eq!(nsroot.gain_root_log(), unprivileged_line());
    assert_owned_by_test_user(&nsroot.deb());

    let fakeroot = DebBuild::run("norootreq", "fakeroot", &[]);
    fakeroot.assert_ok();
    assert_eq!(fakeroot.gain_root_log(), unprivileged_line());

    assert_listing_has(
        &nsroot.listing(),
        &[
            ("-rwxr-xr-x", "root/root", "./usr/bin/hello-norootreq"),
            (
                "-rw-r--r--",
                "root/root",
                "./usr/share/doc/nsroot-norootreq/README",
            ),
        ],
    );
    assert_same_deb(&nsroot, &fakeroot);
}

#[test]
fn dpkg_norootreq_forced_gain_root_matches_fakeroot() {
    if cannot_run(DPKG_TOOLS) {
        return;
    }
    // --rules-requires-root makes dpkg-buildpackage use the gain-root command even though the
    // package says it needs none (setting DEB_RULES_REQUIRES_ROOT would be overwritten).
    let nsroot = DebBuild::run("norootreq", "nsroot", &["--rules-requires-root"]);
    nsroot.assert_ok();
    assert_eq!(
        nsroot.gain_root_log(),
        UNDER_NSROOT,
        "{}",
        nsroot.transcript()
    );
    assert_owned_by_test_user(
        &nsroot
            .src
            .join("debian/nsroot-norootreq/usr/bin/hello-norootreq"),
    );

    let fakeroot = DebBuild::run("norootreq", "fakeroot", &["--rules-requires-root"]);
    fakeroot.assert_ok();
    assert_eq!(fakeroot.gain_root_log(), UNDER_FAKEROOT);

    assert_listing_has(
        &nsroot.listing(),
        &[("-rwxr-xr-x", "root/root", "./usr/bin/hello-norootreq")],
    );
    assert_same_deb(&nsroot, &fakeroot);
}

/// Needs recorded ownership (issue 5): debian/rules chowns to root:games and daemon:daemon,
/// which a single-id user namespace refuses with EINVAL.
#[test]
fn dpkg_owners_matches_fakeroot() {
    if cannot_run(DPKG_TOOLS) {
        return;
    }
    // fakeroot first: it defines what the package must contain.
    let fakeroot = DebBuild::run("owners", "fakeroot", &[]);
    fakeroot.assert_ok();
    assert_eq!(fakeroot.gain_root_log(), UNDER_FAKEROOT);
    let expected = [
        ("-rwxr-sr-x", "root/games", "./usr/games/owners-score"),
        (
            "-rwsr-xr-x",
            "root/root",
            "./usr/lib/nsroot-owners/owners-suid",
        ),
        ("drwxrwsr-x", "root/games", "./var/games/nsroot-owners/"),
        (
            "-rw-rw-r--",
            "root/games",
            "./var/games/nsroot-owners/scores",
        ),
        ("drwxr-x---", "daemon/daemon", "./var/lib/nsroot-owners/"),
    ];
    assert_listing_has(&fakeroot.listing(), &expected);

    let nsroot = DebBuild::run("owners", "nsroot", &[]);
    nsroot.assert_ok();
    assert_eq!(
        nsroot.gain_root_log(),
        UNDER_NSROOT,
        "{}",
        nsroot.transcript()
    );
    // The chowns were recorded, not applied: the user can still delete the tree.
    assert_owned_by_test_user(
        &nsroot
            .src
            .join("debian/nsroot-owners/var/lib/nsroot-owners"),
    );
    assert_owned_by_test_user(
        &nsroot
            .src
            .join("debian/nsroot-owners/usr/games/owners-score"),
    );
    assert_listing_has(&nsroot.listing(), &expected);
    assert_same_deb(&nsroot, &fakeroot);
}

/// Copies the make fixture into a fresh scratch directory owned by the test user.
fn make_fixture() -> Scratch {
    let scratch = Scratch::new();
    copy_tree(&util::repo().join("tests/fixtures/make"), scratch.path());
    scratch.chown_all();
    scratch
}

#[test]
fn make_fakeroot_var_runs_each_line_under_nsroot() {
    if cannot_run(&["make"]) {
        return;
    }
    let scratch = make_fixture();
    let out = hermetic("make", scratch.path(), scratch.path())
        .args(["FAKEROOT=nsroot", "install-pkg"])
        .output()
        .unwrap();
    util::assert_ok(&out);
    // make echoes each recipe line: every one went through nsroot.
    assert!(
        util::stdout(&out).contains("nsroot install -m 755 tool pkg/usr/bin/\n"),
        "{}",
        util::stdout(&out)
    );
    let pkg = scratch.path().join("pkg");
    assert_eq!(std::fs::read_to_string(pkg.join("uid")).unwrap(), "0\n");
    // Inside, the user's own files look root-owned ...
    assert_eq!(
        std::fs::read_to_string(pkg.join("stat")).unwrap(),
        "0:0 755 pkg/usr/bin/tool\n"
    );
    // ... and outside they belong to the user, with the modes install gave them.
    for (rel, mode) in [
        ("usr/bin", 0o755),
        ("usr/bin/tool", 0o755),
        ("usr/share/doc/tool/README", 0o644),
        ("uid", 0o644),
    ] {
        let path = pkg.join(rel);
        assert_owned_by_test_user(&path);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            mode,
            "{}",
            path.display()
        );
    }
}

#[test]
fn make_fakeroot_var_stops_at_a_failing_line() {
    if cannot_run(&["make"]) {
        return;
    }
    let scratch = make_fixture();
    let out = hermetic("make", scratch.path(), scratch.path())
        .args(["FAKEROOT=nsroot", "fail-pkg"])
        .output()
        .unwrap();
    // GNU make exits 2 whatever the recipe's status, and names the status it stopped on.
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(
        util::stderr(&out).contains("fail-pkg] Error 7"),
        "{}",
        util::stderr(&out)
    );
    let failed = scratch.path().join("failed");
    assert_owned_by_test_user(&failed);
    assert!(
        !failed.join("not-reached").exists(),
        "make ran the line after the failing one"
    );
}
