//! .deb output, checked with Debian's own tools: dpkg-deb, dpkg and lintian.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nsroot::deb::write_deb;
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
    assert_eq!(exit_code_of(&e), EXIT_INPUT);
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
    assert_eq!(nsroot::deb::installed_size(d).unwrap(), 3 + 1 + 2 + 1);
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
        .contains(&nsroot::recipe::OutputFormat::Deb));
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
