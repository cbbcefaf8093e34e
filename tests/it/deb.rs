//! .deb output, checked with Debian's own tools: dpkg-deb, dpkg and lintian.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nsroot::error::{exit_code_of, EXIT_INPUT};
use nsroot::recipe::Recipe;

use crate::util;

const SDE: u64 = 1_700_000_000;

const RECIPE: &str = r#"
[package]
name = "nsroot-demo"
version = "1.0"
arch = "all"
summary = "demonstrate the .deb output of nsroot"
license = "MIT"

[deb]
section = "utils"
priority = "optional"
maintainer = "nsroot maintainers <nsroot@example.org>"
description = """
A small package written by the tests of nsroot, a rootless build sandbox.

It holds a shell script, a configuration file and its documentation."""
homepage = "https://example.org/nsroot"
depends = ["man-db | info", "coreutils (>= 8.0)"]
conffiles = ["/etc/nsroot-demo.conf"]
postinst = "debian/postinst"
prerm = "debian/prerm"

[output]
formats = ["deb"]
"#;

const POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n    \
    mkdir -p \"$DPKG_ROOT/var/lib/nsroot-demo\"\n    \
    echo configured > \"$DPKG_ROOT/var/lib/nsroot-demo/state\"\nfi\n";
const PRERM: &str = "#!/bin/sh\nset -e\nrm -rf \"$DPKG_ROOT/var/lib/nsroot-demo\"\n";

const MAN: &str = ".TH NSROOT-DEMO 1\n.SH NAME\nnsroot-demo \\- print a greeting\n\
    .SH SYNOPSIS\n.B nsroot-demo\n.SH DESCRIPTION\nPrints the greeting set in\n\
    .IR /etc/nsroot-demo.conf .\n";

/// The library's writer, given what a build gives it: the recipe's package metadata and its
/// `[deb]` control data.
fn write_deb(
    recipe: &Recipe,
    destdir: &Path,
    data: &Path,
    data_name: &str,
    sde: u64,
    out: &Path,
) -> Result<(), nsroot::package::deb::DebError> {
    let deb = nsroot::package::deb::require(&recipe.file, recipe.deb.as_ref())?;
    nsroot::package::deb::write_deb(
        &recipe.package_meta(),
        deb,
        destdir,
        data,
        data_name,
        sde,
        out,
    )
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    recipe: Recipe,
    destdir: PathBuf,
    data: PathBuf,
}

fn sh(cwd: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .output()
        .unwrap();
    util::assert_ok(&out);
    util::stdout(&out)
}

fn write_mode(path: &Path, contents: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A recipe, a hand-made installed tree and its data.tar.xz made by GNU tar.
fn fixture() -> Option<Fixture> {
    if util::missing_tool("dpkg-deb") || util::missing_tool("xz") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    fs::write(dir.join("recipe.toml"), RECIPE).unwrap();
    write_mode(&dir.join("debian/postinst"), POSTINST, 0o644);
    write_mode(&dir.join("debian/prerm"), PRERM, 0o644);
    let d = dir.join("dest");
    write_mode(
        &d.join("usr/bin/nsroot-demo"),
        "#!/bin/sh\n. /etc/nsroot-demo.conf\necho \"$greeting\"\n",
        0o755,
    );
    write_mode(&d.join("etc/nsroot-demo.conf"), "greeting=hello\n", 0o644);
    let copyright = fs::read_to_string(util::repo().join("recipes/hello/src/copyright"))
        .unwrap()
        .replace("hello", "nsroot-demo");
    write_mode(
        &d.join("usr/share/doc/nsroot-demo/copyright"),
        &copyright,
        0o644,
    );
    write_mode(&d.join("usr/share/man/man1/nsroot-demo.1"), MAN, 0o644);
    write_mode(
        &d.join("usr/share/doc/nsroot-demo/changelog.Debian"),
        "nsroot-demo (1.0-1) unstable; urgency=medium\n\n  * Test package.\n\n \
         -- nsroot maintainers <nsroot@example.org>  Tue, 14 Nov 2023 22:13:20 +0000\n",
        0o644,
    );
    sh(
        &d,
        "gzip -9n usr/share/man/man1/nsroot-demo.1 usr/share/doc/nsroot-demo/changelog.Debian\n\
         find . -exec touch -h -d @1700000000 {} +\n\
         tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -cJf ../data.tar.xz .",
    );
    let recipe = Recipe::load(&dir.join("recipe.toml")).unwrap();
    Some(Fixture {
        data: dir.join("data.tar.xz"),
        destdir: d,
        recipe,
        dir,
        _tmp: tmp,
    })
}

impl Fixture {
    fn write(&self, name: &str) -> PathBuf {
        let out = self.dir.join(name);
        write_deb(
            &self.recipe,
            &self.destdir,
            &self.data,
            "data.tar.xz",
            SDE,
            &out,
        )
        .unwrap_or_else(|e| panic!("{:#}", anyhow::Error::from(e)));
        out
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    util::assert_ok(&out);
    util::stdout(&out)
}

#[test]
fn deb_fields_match_the_recipe() {
    let Some(f) = fixture() else { return };
    let deb = f.write("nsroot-demo_1.0-1_all.deb");
    let field = |name: &str| run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
    assert_eq!(field("Package"), "nsroot-demo\n");
    assert_eq!(field("Version"), "1.0-1\n");
    assert_eq!(field("Architecture"), "all\n");
    assert_eq!(
        field("Maintainer"),
        "nsroot maintainers <nsroot@example.org>\n"
    );
    assert_eq!(field("Depends"), "man-db | info, coreutils (>= 8.0)\n");
    assert_eq!(field("Section"), "utils\n");
    assert_eq!(field("Priority"), "optional\n");
    assert_eq!(field("Homepage"), "https://example.org/nsroot\n");
    assert_eq!(
        field("Description"),
        "demonstrate the .deb output of nsroot\n \
         A small package written by the tests of nsroot, a rootless build sandbox.\n .\n \
         It holds a shell script, a configuration file and its documentation.\n"
    );
    // Installed-Size as dpkg-gencontrol counts it: 1 KiB per directory (9 with the top one),
    // ceil(size/1024) per file (4 small files and the 1234-byte copyright: 6).
    assert_eq!(field("Installed-Size"), "15\n");
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for member in ["control", "md5sums", "conffiles", "postinst", "prerm"] {
        assert!(
            info.lines()
                .any(|l| l.contains(" bytes,") && l.split_whitespace().any(|w| w == member)),
            "{member} missing:\n{info}"
        );
    }
}

#[test]
fn deb_contents_are_the_data_tar() {
    let Some(f) = fixture() else { return };
    let deb = f.write("x.deb");
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let expected = run(Command::new("tar").arg("-tvJf").arg(&f.data));
    assert_eq!(contents, expected);
    assert!(contents.contains("-rwxr-xr-x 0/0") && contents.contains("./usr/bin/nsroot-demo"));
}

#[test]
fn control_tar_is_root_owned_sorted_and_dated() {
    let Some(f) = fixture() else { return };
    let deb = f.write("x.deb");
    let listing = sh(
        &f.dir,
        &format!(
            "dpkg-deb --ctrl-tarfile '{}' | tar --numeric-owner -tvf - --full-time",
            deb.display()
        ),
    );
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[5]).collect();
    assert_eq!(
        names,
        [
            "./",
            "./conffiles",
            "./control",
            "./md5sums",
            "./postinst",
            "./prerm"
        ]
    );
    for r in &rows {
        assert_eq!(r[1], "0/0", "{r:?}");
        assert_eq!(format!("{} {}", r[3], r[4]), "2023-11-14 22:13:20", "{r:?}");
        let want = if r[5] == "./" {
            "drwxr-xr-x"
        } else if r[5].starts_with("./p") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(r[0], want, "{r:?}");
    }
    let ctl = f.dir.join("ctl");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&ctl));
    assert_eq!(
        fs::read_to_string(ctl.join("conffiles")).unwrap(),
        "/etc/nsroot-demo.conf\n"
    );
    assert_eq!(fs::read_to_string(ctl.join("postinst")).unwrap(), POSTINST);
    // md5sums lists every regular file but the conffile, and they check out.
    let sums = fs::read_to_string(ctl.join("md5sums")).unwrap();
    let paths: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    assert_eq!(
        paths,
        [
            "usr/bin/nsroot-demo",
            "usr/share/doc/nsroot-demo/changelog.Debian.gz",
            "usr/share/doc/nsroot-demo/copyright",
            "usr/share/man/man1/nsroot-demo.1.gz"
        ]
    );
    let out = Command::new("md5sum")
        .arg("-c")
        .arg(ctl.join("md5sums"))
        .current_dir(&f.destdir)
        .output()
        .unwrap();
    util::assert_ok(&out);
}

#[test]
fn ar_members_are_in_dpkg_order_with_fixed_headers() {
    let Some(f) = fixture() else { return };
    let bytes = fs::read(f.write("x.deb")).unwrap();
    assert!(bytes.starts_with(b"!<arch>\n"));
    let mut pos = 8;
    let mut names = Vec::new();
    while pos < bytes.len() {
        let h = &bytes[pos..pos + 60];
        let field = |a: usize, b: usize| String::from_utf8_lossy(&h[a..b]).trim_end().to_string();
        names.push(field(0, 16));
        assert_eq!(field(16, 28), SDE.to_string());
        assert_eq!(
            (field(28, 34), field(34, 40), field(40, 48)),
            ("0".into(), "0".into(), "100644".into())
        );
        let size: usize = field(48, 58).parse().unwrap();
        if names.len() == 1 {
            assert_eq!(&bytes[pos + 60..pos + 64], b"2.0\n");
        }
        pos += 60 + size + size % 2;
    }
    assert_eq!(names, ["debian-binary", "control.tar.xz", "data.tar.xz"]);
}

#[test]
fn two_writes_are_byte_identical() {
    let Some(f) = fixture() else { return };
    let a = fs::read(f.write("a.deb")).unwrap();
    let b = fs::read(f.write("b.deb")).unwrap();
    assert!(a == b, "two writes of the same package differ");
    // The write is atomic: no temporary file is left beside the output.
    let left: Vec<_> = fs::read_dir(&f.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nsroot-deb-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dpkg_installs_the_deb_into_a_root() {
    let Some(f) = fixture() else { return };
    if util::missing_tool("dpkg") {
        return;
    }
    let deb = f.write("x.deb");
    let root = f.dir.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-not-root",
            "--force-script-chrootless",
            "--force-depends",
            "-i",
        ])
        .arg(&deb)
        .output()
        .unwrap();
    util::assert_ok(&out);
    assert_eq!(
        fs::read_to_string(root.join("etc/nsroot-demo.conf")).unwrap(),
        "greeting=hello\n"
    );
    assert_eq!(
        fs::metadata(root.join("usr/bin/nsroot-demo"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_to_string(root.join("var/lib/nsroot-demo/state")).unwrap(),
        "configured\n",
        "postinst did not run"
    );
    let status = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args([
            "-W",
            "-f",
            "${Status} ${Version} ${Conffiles}",
            "nsroot-demo",
        ]));
    assert!(status.starts_with("install ok installed 1.0-1"), "{status}");
    assert!(status.contains("/etc/nsroot-demo.conf"), "{status}");
}

#[test]
fn lintian_reports_no_errors() {
    let Some(f) = fixture() else { return };
    if util::missing_tool("lintian") {
        return;
    }
    let deb = f.write("nsroot-demo_1.0-1_all.deb");
    let out = Command::new("lintian")
        .arg("--no-cfg")
        .arg(&deb)
        .output()
        .unwrap();
    let text = util::stdout(&out) + &util::stderr(&out);
    eprintln!("lintian says:\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{text}"
    );
    assert!(
        out.status.success() || !text.is_empty(),
        "lintian failed without output"
    );
}

#[test]
fn conffile_missing_from_the_tree_is_refused() {
    let Some(f) = fixture() else { return };
    fs::remove_file(f.destdir.join("etc/nsroot-demo.conf")).unwrap();
    let out = f.dir.join("x.deb");
    let e = anyhow::Error::from(
        write_deb(&f.recipe, &f.destdir, &f.data, "data.tar.xz", SDE, &out).unwrap_err(),
    );
    assert_eq!(exit_code_of(e.as_ref()), EXIT_INPUT);
    assert_eq!(
        format!("{e:#}"),
        format!(
            "{}: [deb] conffiles: \"/etc/nsroot-demo.conf\" is not a regular file in the installed tree",
            f.dir.join("recipe.toml").display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn data_member_name_must_match_its_content() {
    let Some(f) = fixture() else { return };
    let out = f.dir.join("x.deb");
    let e = write_deb(&f.recipe, &f.destdir, &f.data, "data.tar.gz", SDE, &out).unwrap_err();
    assert!(format!("{:#}", anyhow::Error::from(e))
        .ends_with("does not match the member name \"data.tar.gz\""));
    let e = write_deb(&f.recipe, &f.destdir, &f.data, "data.tar.bz2", SDE, &out).unwrap_err();
    assert!(
        format!("{:#}", anyhow::Error::from(e)).contains("unknown data member \"data.tar.bz2\"")
    );
    assert!(!out.exists());
}

#[test]
fn installed_size_counts_like_dpkg_gencontrol() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::create_dir_all(d.join("a/b")).unwrap();
    fs::write(d.join("a/empty"), "").unwrap(); // 0 KiB
    fs::write(d.join("a/one"), vec![0u8; 1024]).unwrap(); // 1 KiB
    fs::write(d.join("a/b/two"), vec![0u8; 1025]).unwrap(); // 2 KiB
    fs::hard_link(d.join("a/b/two"), d.join("a/b/two-again")).unwrap(); // counted once
    std::os::unix::fs::symlink("one", d.join("a/link")).unwrap(); // ceil(3/1024) = 1
                                                                  // Directories: the top one, a, a/b: 3.
    assert_eq!(
        nsroot::package::deb::installed_size(d).unwrap(),
        3 + 1 + 2 + 1
    );
}

/// Runs a recipe's steps by hand, as the sandbox will (sh -e -c, a fixed environment, in a
/// copy of the sources), and returns the installed tree.
fn install_by_hand(recipe: &Recipe, work: &Path) -> PathBuf {
    let src = recipe
        .source
        .materialize(&work.join("scratch"))
        .unwrap_or_else(|_| {
            panic!("materialize {}", recipe.file.display());
        });
    let copy = work.join("src");
    run(Command::new("cp").arg("-a").arg(&src).arg(&copy));
    let dest = work.join("dest");
    fs::create_dir_all(&dest).unwrap();
    let home = work.join("home");
    fs::create_dir_all(&home).unwrap();
    let sde = recipe.source_date_epoch(&copy).unwrap();
    let steps = recipe
        .build
        .steps
        .iter()
        .chain(&recipe.build.check)
        .chain(&recipe.install.steps);
    for step in steps {
        let out = Command::new("sh")
            .args(["-e", "-c", step])
            .current_dir(&copy)
            .env_clear()
            .envs(&recipe.build.env)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("DESTDIR", &dest)
            .env("SOURCE_DATE_EPOCH", sde.to_string())
            .env("TZ", "UTC")
            .env("LC_ALL", "C.UTF-8")
            .env("NSROOT", "1")
            .env("NSROOT_JOBS", "2")
            .output()
            .unwrap();
        util::assert_ok(&out);
    }
    dest
}

#[test]
fn hello_recipe_deb_is_reproducible_and_passes_lintian() {
    for tool in ["dpkg-deb", "lintian", "make", "cc", "xz"] {
        if util::missing_tool(tool) {
            return;
        }
    }
    let recipe = Recipe::load(&util::repo().join("recipes/hello/recipe.toml")).unwrap();
    assert!(recipe
        .output
        .formats
        .contains(&nsroot::package::OutputFormat::Deb));
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("scratch")).unwrap();
    let dest = install_by_hand(&recipe, tmp.path());
    let data = tmp.path().join("data.tar.xz");
    sh(
        &dest,
        &format!(
            "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@{SDE} --clamp-mtime -cJf '{}' .",
            data.display()
        ),
    );
    let deb = tmp.path().join(format!("{}.deb", recipe.output_stem()));
    write_deb(&recipe, &dest, &data, "data.tar.xz", SDE, &deb).unwrap();
    let again = tmp.path().join("again.deb");
    write_deb(&recipe, &dest, &data, "data.tar.xz", SDE, &again).unwrap();
    assert!(
        fs::read(&deb).unwrap() == fs::read(&again).unwrap(),
        "two writes differ"
    );
    let field = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .arg("Package")
        .arg("Depends"));
    assert_eq!(field, "Package: hello\nDepends: libc6 (>= 2.34)\n");
    let out = Command::new("lintian")
        .arg("--no-cfg")
        .arg(&deb)
        .output()
        .unwrap();
    let text = util::stdout(&out) + &util::stderr(&out);
    eprintln!("lintian says:\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{text}"
    );
}

// ---- The bundled recipes, built with `nsroot build` as the unprivileged test user ----

/// What one bundled recipe's .deb must hold.
struct Bundled {
    /// The recipe's directory under recipes/.
    dir: &'static str,
    package: &'static str,
    /// `version-release`.
    version: &'static str,
    /// `arch = "all"`; otherwise the host's architecture.
    arch_all: bool,
    /// Entries `dpkg-deb --contents` must list, as "mode owner/group path".
    entries: &'static [&'static str],
    conffiles: &'static [&'static str],
}

const BUNDLED: &[Bundled] = &[
    Bundled {
        dir: "hello",
        package: "hello",
        version: "1.0-1",
        arch_all: false,
        entries: &[
            "-rwxr-xr-x root/root ./usr/bin/hello",
            "-rw-r--r-- root/root ./usr/share/man/man1/hello.1.gz",
            "-rw-r--r-- root/root ./usr/share/doc/hello/copyright",
            "-rw-r--r-- root/root ./usr/share/doc/hello/changelog.Debian.gz",
        ],
        conffiles: &[],
    },
    Bundled {
        dir: "scripts",
        package: "sysinfo",
        version: "2.1-1",
        arch_all: true,
        entries: &[
            "-rwxr-xr-x root/root ./usr/bin/sysinfo",
            "-rw-r--r-- root/root ./etc/sysinfo.conf",
            "-rw-r--r-- root/root ./usr/share/doc/sysinfo/copyright",
        ],
        conffiles: &["/etc/sysinfo.conf"],
    },
    Bundled {
        dir: "suidtool",
        package: "scoreboard",
        version: "0.3-1",
        arch_all: false,
        // The install steps' chgrp and chmod, recorded in the sandbox, reach data.tar.
        entries: &[
            "-rwxr-sr-x root/games ./usr/games/scoreboard",
            "-rwsr-xr-x root/root ./usr/lib/scoreboard/whoami-helper",
            "drwxrwsr-x root/games ./var/games/scoreboard/",
            "-rw-rw-r-- root/games ./var/games/scoreboard/scores",
            "-rw-r--r-- root/root ./usr/share/doc/scoreboard/copyright",
        ],
        conffiles: &[],
    },
    Bundled {
        dir: "tarball",
        package: "tinywc",
        version: "1.2-1",
        arch_all: false,
        entries: &[
            "-rwxr-xr-x root/root ./usr/bin/tinywc",
            "-rw-r--r-- root/root ./usr/share/doc/tinywc/copyright",
            "-rw-r--r-- root/root ./usr/share/doc/tinywc/changelog.Debian.gz",
        ],
        conffiles: &[],
    },
];

/// Copies the repository's recipes/ into the scratch dir (as the test user's).
fn copy_recipes(s: &util::Scratch) -> PathBuf {
    run(Command::new("cp")
        .arg("-a")
        .arg(util::repo().join("recipes"))
        .arg(s.path()));
    s.chown_all();
    s.path().join("recipes")
}

/// `dpkg-deb --contents` as "mode owner/group path" lines.
fn deb_listing(deb: &Path) -> Vec<String> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[1], f[5..].join(" "))
        })
        .collect()
}

fn geteuid() -> u32 {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() }
}

/// Installs `deb` into a fresh root with dpkg and checks what dpkg-query and the disk say.
/// `as_root`: dpkg runs as root (`dpkg --root=DIR -i`) and the installed owners are checked
/// too; otherwise it runs as the unprivileged test user with `--force-not-root` (files then
/// belong to that user, and only modes are checked).
fn install_and_query(s: &util::Scratch, b: &Bundled, deb: &Path, as_root: bool) {
    let root = s.path().join(if as_root {
        "root-as-root"
    } else {
        "root-as-user"
    });
    let mut cmd = if as_root {
        Command::new("dpkg")
    } else {
        for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        s.chown_all();
        let mut c = util::env().command("dpkg");
        c.args([
            "--force-not-root",
            "--force-script-chrootless",
            "--force-bad-path",
        ]);
        c
    };
    // The fresh root has no libc6: the dependencies of the compiled programs cannot be met.
    let out = cmd
        .env("HOME", s.path())
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "-i"])
        .arg(deb)
        .output()
        .unwrap();
    util::assert_ok(&out);

    let query = |args: &[&str]| {
        run(util::env()
            .command("dpkg-query")
            .arg(format!("--root={}", root.display()))
            .args(args)
            .arg(b.package))
    };
    let status = query(&["-W", "-f", "${Status} ${Version}\n${Conffiles}\n"]);
    assert!(
        status.starts_with(&format!("install ok installed {}\n", b.version)),
        "{}: {status}",
        b.package
    );
    for c in b.conffiles {
        assert!(
            status
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{c} "))),
            "{}: conffile {c} not registered:\n{status}",
            b.package
        );
    }
    let files = query(&["-L"]);
    for e in b.entries {
        let (mode, rest) = e.split_once(' ').unwrap();
        let (owner, path) = rest.split_once(' ').unwrap();
        let path = path.trim_start_matches('.').trim_end_matches('/');
        assert!(
            files.lines().any(|l| l == path),
            "{}: dpkg-query -L does not list {path}:\n{files}",
            b.package
        );
        let on_disk = run(Command::new("stat")
            .args(["-c", "%A %U/%G"])
            .arg(root.join(path.trim_start_matches('/'))));
        let (disk_mode, disk_owner) = on_disk.trim().split_once(' ').unwrap();
        assert_eq!(disk_mode, mode, "{}: mode of installed {path}", b.package);
        if as_root {
            assert_eq!(
                disk_owner, owner,
                "{}: owner of installed {path}",
                b.package
            );
        }
    }
}

/// Runs lintian on `deb`: no `E:` lines, exit status 0.
///
/// Warnings the bundled packages keep, on purpose:
/// - `initial-upload-closes-no-bugs` (all four): their changelogs close no Debian bug.
/// - `elevated-privileges 4755 root/root` (scoreboard): the setuid helper is the point of the
///   recipe (the setgid games binary, 2755 root/games, is a standard mode and not reported).
/// - `no-manual-page` (tinywc): the upstream tarball has no man page.
fn lintian_no_errors(deb: &Path) {
    let out = Command::new("lintian")
        .arg("--no-cfg")
        .arg(deb)
        .output()
        .unwrap();
    let text = util::stdout(&out) + &util::stderr(&out);
    eprintln!("lintian {}:\n{text}", deb.display());
    assert!(
        !text.lines().any(|l| l.starts_with("E: ")),
        "lintian errors in {}:\n{text}",
        deb.display()
    );
    assert!(out.status.success(), "lintian failed:\n{text}");
}

/// Builds a bundled recipe twice with `nsroot build` and checks its .deb with dpkg-deb, dpkg,
/// dpkg-query and lintian.
fn check_bundled(dir: &str) {
    let b = BUNDLED.iter().find(|b| b.dir == dir).unwrap();
    if util::no_userns() {
        return;
    }
    for tool in ["dpkg-deb", "dpkg", "dpkg-query", "lintian"] {
        if util::missing_tool(tool) {
            return;
        }
    }
    let s = util::Scratch::new();
    let recipe = copy_recipes(&s).join(dir).join("recipe.toml");
    let arch = if b.arch_all {
        "all"
    } else {
        nsroot::package::host_arch()
    };
    let name = format!("{}_{}_{arch}.deb", b.package, b.version);
    let build = |out: &str| {
        let o = s.nsroot([
            "build".as_ref(),
            recipe.as_os_str(),
            "-o".as_ref(),
            out.as_ref(),
        ]);
        util::assert_ok(&o);
        let deb = s.path().join(out).join(&name);
        assert!(
            util::stdout(&o).contains(&deb.display().to_string()),
            "{}",
            util::stdout(&o)
        );
        deb
    };
    let deb = build("out-1");

    let fields = run(Command::new("dpkg-deb").arg("--field").arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
    ]));
    assert_eq!(
        fields,
        format!(
            "Package: {}\nVersion: {}\nArchitecture: {arch}\n",
            b.package, b.version
        )
    );
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for member in ["control", "md5sums"]
        .into_iter()
        .chain((!b.conffiles.is_empty()).then_some("conffiles"))
    {
        assert!(
            info.lines()
                .any(|l| l.contains(" bytes,") && l.split_whitespace().any(|w| w == member)),
            "{name}: no {member} in:\n{info}"
        );
    }
    if !b.conffiles.is_empty() {
        let listed = run(Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("conffiles"));
        assert_eq!(listed, b.conffiles.join("\n") + "\n");
    }

    let listing = deb_listing(&deb);
    for e in b.entries {
        assert!(
            listing.iter().any(|l| l == e),
            "{name}: no {e:?} in {listing:#?}"
        );
    }
    for l in &listing {
        let owner = l.split(' ').nth(1).unwrap();
        assert!(owner.starts_with("root/"), "{name}: not root-owned: {l}");
    }

    install_and_query(&s, b, &deb, false);
    if geteuid() == 0 {
        install_and_query(&s, b, &deb, true);
    }
    lintian_no_errors(&deb);

    let again = build("out-2");
    assert!(
        fs::read(&deb).unwrap() == fs::read(&again).unwrap(),
        "{name}: two builds differ"
    );
}

#[test]
fn deb_every_bundled_recipe_has_deb_output() {
    let mut dirs: Vec<String> = fs::read_dir(util::repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("recipe.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut covered: Vec<&str> = BUNDLED.iter().map(|b| b.dir).collect();
    covered.sort();
    assert_eq!(
        dirs, covered,
        "every bundled recipe needs a deb_recipe_* test"
    );
    for dir in &dirs {
        let r = Recipe::load(&util::repo().join("recipes").join(dir).join("recipe.toml"))
            .unwrap_or_else(|e| panic!("{dir}: {:#}", anyhow::Error::from(e)));
        assert!(
            r.output
                .formats
                .contains(&nsroot::package::OutputFormat::Deb),
            "{dir}: no deb in [output] formats"
        );
        assert!(
            r.output.formats.len() > 1,
            "{dir}: the tar formats must stay"
        );
        let deb = nsroot::package::deb::require(&r.file, r.deb.as_ref())
            .unwrap_or_else(|e| panic!("{dir}: {:#}", anyhow::Error::from(e)));
        nsroot::package::deb::control_file(&r.package_meta(), deb, 0)
            .unwrap_or_else(|e| panic!("{dir}: {:#}", anyhow::Error::from(e)));
    }
}

#[test]
fn deb_recipe_hello() {
    check_bundled("hello");
}

#[test]
fn deb_recipe_scripts_with_a_conffile() {
    check_bundled("scripts");
}

#[test]
fn deb_recipe_suidtool_keeps_group_games_and_setuid_setgid() {
    check_bundled("suidtool");
}

#[test]
fn deb_recipe_tarball() {
    check_bundled("tarball");
}

// ---- Bad [deb] metadata through `nsroot build` ----

const GOOD_DEB: &str = "[deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n\
    [output]\nformats = [\"tar.gz\", \"deb\"]\n";

/// Writes recipe `dir` (its `[package]` table and `rest`) and runs `nsroot build` on it.
fn build_bad(s: &util::Scratch, dir: &str, package: &str, rest: &str) -> (PathBuf, Output) {
    s.write(&format!("{dir}/src/.keep"), "");
    let r = s.write(
        &format!("{dir}/recipe.toml"),
        &format!(
            "[package]\n{package}summary = \"test\"\nsource_date_epoch = 1700000000\n\n\
             [source]\npath = \"src\"\n\n\
             [install]\nsteps = ['mkdir -p \"$DESTDIR/etc\"; echo x=1 > \"$DESTDIR/etc/present.conf\"']\n\n\
             {rest}"
        ),
    );
    let o = s.nsroot([
        "build".as_ref(),
        r.as_os_str(),
        "-o".as_ref(),
        "out".as_ref(),
    ]);
    (r, o)
}

/// Exit 2 with one line naming the recipe file and containing each of `needles`; nothing
/// built (the output directory, made before the first step, does not exist).
#[track_caller]
fn assert_refused_before_build(s: &util::Scratch, r: &Path, o: &Output, needles: &[&str]) {
    let err = util::stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&r.display().to_string()), "{err}");
    for n in needles {
        assert!(err.contains(n), "no {n:?} in: {err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!s.path().join("out").exists(), "something was built: {err}");
}

#[test]
fn deb_uppercase_package_name_is_refused_before_building() {
    let s = util::Scratch::new();
    let (r, o) = build_bad(
        &s,
        "upper",
        "name = \"Hello\"\nversion = \"1.0\"\n",
        GOOD_DEB,
    );
    assert_refused_before_build(&s, &r, &o, &["recipe.toml:2:", "name = \"Hello\""]);
    let (r, o) = build_bad(
        &s,
        "spaces",
        "name = \"my tool\"\nversion = \"1.0\"\n",
        GOOD_DEB,
    );
    assert_refused_before_build(&s, &r, &o, &["recipe.toml:2:", "name = \"my tool\""]);
}

#[test]
fn deb_invalid_version_is_refused_before_building() {
    let s = util::Scratch::new();
    let (r, o) = build_bad(
        &s,
        "ver",
        "name = \"ver\"\nversion = \"beta-1.0\"\n",
        GOOD_DEB,
    );
    assert_refused_before_build(&s, &r, &o, &["recipe.toml:3:", "version = \"beta-1.0\""]);
    // A version in a relation is checked as strictly.
    let (r, o) = build_bad(
        &s,
        "relver",
        "name = \"relver\"\nversion = \"1.0\"\n",
        "[deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n\
         depends = [\"libc6 (>= 2..34)\"]\n[output]\nformats = [\"deb\"]\n",
    );
    assert_refused_before_build(
        &s,
        &r,
        &o,
        &["recipe.toml:15:", "[deb] depends[0] = \"libc6 (>= 2..34)\""],
    );
}

#[test]
fn deb_output_without_a_maintainer_is_refused_before_building() {
    let s = util::Scratch::new();
    let (r, o) = build_bad(
        &s,
        "nomaint",
        "name = \"nomaint\"\nversion = \"1.0\"\n",
        "[deb]\nsection = \"utils\"\n[output]\nformats = [\"tar.gz\", \"deb\"]\n",
    );
    assert_refused_before_build(&s, &r, &o, &["formats includes \"deb\"", "maintainer"]);
}

#[test]
fn deb_conffile_missing_from_the_tree_fails_the_build_and_writes_nothing() {
    if util::no_userns() {
        return;
    }
    let s = util::Scratch::new();
    let (r, o) = build_bad(
        &s,
        "conf",
        "name = \"conf\"\nversion = \"1.0\"\n",
        "[deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n\
         conffiles = [\"/etc/present.conf\", \"/etc/missing.conf\"]\n\
         [output]\nformats = [\"tar.gz\", \"deb\"]\n",
    );
    let err = util::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: [deb] conffiles: \"/etc/missing.conf\" is not a regular file in the installed tree",
            r.display()
        )),
        "{err}"
    );
    // The steps ran (the check needs the installed tree), but no package, archive or
    // manifest was written.
    let written: Vec<String> = fs::read_dir(s.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        written,
        [format!(
            "conf_1.0-1_{}.build.log",
            nsroot::package::host_arch()
        )],
        "{err}"
    );
    // A directory in place of a conffile is refused the same way.
    let (r, o) = build_bad(
        &s,
        "confdir",
        "name = \"confdir\"\nversion = \"1.0\"\n",
        "[deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n\
         conffiles = [\"/etc\"]\n[output]\nformats = [\"deb\"]\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", util::stderr(&o));
    assert!(
        util::stderr(&o).contains(&format!(
            "{}: [deb] conffiles: \"/etc\" is not a regular file",
            r.display()
        )),
        "{}",
        util::stderr(&o)
    );
}

// ---- Which outputs a [deb] table and --format ask for ----

/// Builds recipe `dir` (an installed file plus `rest`) with `extra` arguments into a
/// directory named after both; returns the output and the names written there, sorted.
fn build_with(s: &util::Scratch, dir: &str, rest: &str, extra: &[&str]) -> (Output, Vec<String>) {
    s.write(&format!("{dir}/src/.keep"), "");
    let r = s.write(
        &format!("{dir}/recipe.toml"),
        &format!(
            "[package]\nname = \"{dir}\"\nversion = \"1.0\"\narch = \"all\"\nsummary = \"test\"\n\
             source_date_epoch = 1700000000\n\n[source]\npath = \"src\"\n\n\
             [install]\nsteps = ['mkdir -p \"$DESTDIR/usr/share/{dir}\"; echo x > \"$DESTDIR/usr/share/{dir}/x\"']\n\n\
             {rest}"
        ),
    );
    let out = format!("out-{dir}{}", extra.join(""));
    let mut args = vec![
        "build".to_string(),
        r.display().to_string(),
        "-o".into(),
        out.clone(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let o = s.nsroot(args);
    let mut written: Vec<String> = fs::read_dir(s.path().join(&out))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    written.sort();
    (o, written)
}

const MAINTAINER_ONLY: &str = "[deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n";

#[test]
fn deb_table_alone_makes_build_write_a_deb_too() {
    if util::no_userns() || util::missing_tool("dpkg-deb") {
        return;
    }
    let s = util::Scratch::new();
    let (o, written) = build_with(&s, "debonly", MAINTAINER_ONLY, &[]);
    util::assert_ok(&o);
    assert_eq!(
        written,
        [
            "debonly_1.0-1_all.build.log",
            "debonly_1.0-1_all.deb",
            "debonly_1.0-1_all.manifest.json",
            "debonly_1.0-1_all.tar.gz",
        ],
        "{}",
        util::stderr(&o)
    );
    let deb = s.path().join("out-debonly/debonly_1.0-1_all.deb");
    assert!(deb_listing(&deb)
        .iter()
        .any(|l| l == "-rw-r--r-- root/root ./usr/share/debonly/x"));
    // An explicit [output] list is the recipe's choice, [deb] or not.
    let (o, written) = build_with(
        &s,
        "debtar",
        &format!("{MAINTAINER_ONLY}[output]\nformats = [\"tar.xz\"]\n"),
        &[],
    );
    util::assert_ok(&o);
    assert!(!written.iter().any(|n| n.ends_with(".deb")), "{written:?}");
}

#[test]
fn deb_format_on_the_command_line_replaces_the_recipe_formats() {
    if util::no_userns() || util::missing_tool("dpkg-deb") {
        return;
    }
    let s = util::Scratch::new();
    let (o, written) = build_with(&s, "clideb", MAINTAINER_ONLY, &["--format", "deb"]);
    util::assert_ok(&o);
    assert_eq!(
        written,
        [
            "clideb_1.0-1_all.build.log",
            "clideb_1.0-1_all.deb",
            "clideb_1.0-1_all.manifest.json",
        ],
        "{}",
        util::stderr(&o)
    );
    run(Command::new("dpkg-deb")
        .arg("--info")
        .arg(s.path().join("out-clideb--formatdeb/clideb_1.0-1_all.deb")));
    let (o, written) = build_with(&s, "clideb", MAINTAINER_ONLY, &["--format", "tar,deb"]);
    util::assert_ok(&o);
    assert_eq!(
        written,
        [
            "clideb_1.0-1_all.build.log",
            "clideb_1.0-1_all.deb",
            "clideb_1.0-1_all.manifest.json",
            "clideb_1.0-1_all.tar",
        ]
    );
    // Without a maintainer, --format deb is refused before anything is built.
    let (o, written) = build_with(&s, "nomaint", "", &["--format", "deb"]);
    assert_eq!(o.status.code(), Some(2), "{}", util::stderr(&o));
    assert!(
        util::stderr(&o).contains("maintainer"),
        "{}",
        util::stderr(&o)
    );
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn deb_table_without_a_maintainer_and_without_output_formats_is_refused() {
    let s = util::Scratch::new();
    let (r, o) = build_bad(
        &s,
        "debnomaint",
        "name = \"debnomaint\"\nversion = \"1.0\"\n",
        "[deb]\nsection = \"utils\"\n",
    );
    assert_refused_before_build(&s, &r, &o, &["recipe.toml:13:", "[deb]", "maintainer"]);
}

#[test]
fn deb_conffile_reached_through_a_symlink_is_refused() {
    if util::no_userns() {
        return;
    }
    let s = util::Scratch::new();
    let cases = [
        // A directory symlink out of DESTDIR: the host's /etc/passwd is not in the package.
        ("confout", "ln -s /etc \"$DESTDIR/etc\"", "/etc/passwd"),
        // A symlink inside DESTDIR is not a conffile's path either.
        (
            "confin",
            "mkdir -p \"$DESTDIR/real\" && echo x=1 > \"$DESTDIR/real/x.conf\" && ln -s real \"$DESTDIR/etc\"",
            "/etc/x.conf",
        ),
    ];
    for (dir, install, conffile) in cases {
        s.write(&format!("{dir}/src/.keep"), "");
        let r = s.write(
            &format!("{dir}/recipe.toml"),
            &format!(
                "[package]\nname = \"{dir}\"\nversion = \"1.0\"\nsummary = \"test\"\n\
                 source_date_epoch = 1700000000\n\n[source]\npath = \"src\"\n\n\
                 [install]\nsteps = ['{install}']\n\n\
                 [deb]\nmaintainer = \"nsroot maintainers <nsroot@example.org>\"\n\
                 conffiles = [\"{conffile}\"]\n[output]\nformats = [\"tar.gz\", \"deb\"]\n"
            ),
        );
        let out = s.path().join(format!("out-{dir}"));
        let o = s.nsroot([
            "build".as_ref(),
            r.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        let err = util::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{dir}: {err}");
        assert!(
            err.contains(&format!("{}: [deb] conffiles: \"{conffile}\"", r.display())),
            "{dir}: {err}"
        );
        assert!(err.contains("symlink"), "{dir}: {err}");
        let written: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            written.iter().all(|n| n.ends_with(".build.log")),
            "{dir}: {written:?}"
        );
    }
}
