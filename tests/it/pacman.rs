//! `.pkg.tar.zst` output (issue 15): the bundled recipes' pacman packages read by `pacman
//! -Qip` and bsdtar, their `.MTREE` checked against the files, installed with `pacman --root`
//! inside nsroot, built twice from two places; repro of a package that embeds the time.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::rpm::{build_twice, cannot_run, run, time_recipe};
use crate::util::{assert_ok, stderr, stdout, Scratch};

struct Bundled {
    dir: &'static str,
    stem: &'static str,
    /// `pacman -Qip` lines.
    info: &'static [&'static str],
    /// `bsdtar -tvf` lines must hold these (mode, owner, group ... path).
    entries: &'static [(&'static str, &'static str)],
    /// `.PKGINFO` lines.
    pkginfo: &'static [&'static str],
}

const BUNDLED: &[Bundled] = &[
    Bundled {
        dir: "hello",
        stem: "hello_1.0-1_amd64",
        info: &[
            "Name            : hello",
            "Version         : 1.0-1",
            "Architecture    : x86_64",
        ],
        entries: &[("-rwxr-xr-x  0 root   root", "usr/bin/hello")],
        pkginfo: &["depend = glibc>=2.34", "license = MIT"],
    },
    Bundled {
        dir: "scripts",
        stem: "sysinfo_2.1-1_all",
        info: &[
            "Name            : sysinfo",
            "Version         : 2.1-1",
            "Architecture    : any",
        ],
        entries: &[("-rw-r--r--  0 root   root", "etc/sysinfo.conf")],
        pkginfo: &[
            "backup = etc/sysinfo.conf",
            "optdepend = procps-ng: free(1) for the memory line",
        ],
    },
    Bundled {
        dir: "suidtool",
        stem: "scoreboard_0.3-1_amd64",
        info: &["Name            : scoreboard", "Groups          : games"],
        entries: &[
            ("-rwxr-sr-x  0 root   games", "usr/games/scoreboard"),
            (
                "-rwsr-xr-x  0 root   root",
                "usr/lib/scoreboard/whoami-helper",
            ),
            ("drwxrwsr-x  0 root   games", "var/games/scoreboard/"),
        ],
        pkginfo: &[
            "group = games",
            "packager = nsroot maintainers <nsroot@example.org>",
        ],
    },
    Bundled {
        dir: "tarball",
        stem: "tinywc_1.2-1_amd64",
        info: &["Name            : tinywc", "Version         : 1.2-1"],
        entries: &[("-rwxr-xr-x  0 root   root", "usr/bin/tinywc")],
        pkginfo: &["pkgver = 1.2-1"],
    },
];

/// One `.MTREE` line: the path and its keywords, with `/set` defaults applied.
fn mtree(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut defaults: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut words = line.split(' ');
        let first = words.next().unwrap();
        let kv = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        if first == "/set" {
            defaults.extend(kv);
            continue;
        }
        let mut keys = defaults.clone();
        keys.extend(kv);
        out.push((first.trim_start_matches("./").to_string(), keys));
    }
    out
}

fn check_bundled(dir: &str) {
    let b = BUNDLED.iter().find(|b| b.dir == dir).unwrap();
    if cannot_run(&["pacman", "bsdtar"]) {
        return;
    }
    let s = Scratch::new();
    let pkg = &build_twice(&s, dir, "pkg.tar.zst", b.stem);

    let info = run(Command::new("pacman").arg("-Qip").arg(pkg));
    for l in b.info {
        assert!(info.lines().any(|i| i == *l), "{dir}: no {l:?} in:\n{info}");
    }
    let listing = run(Command::new("bsdtar").arg("-tvf").arg(pkg));
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names[..3],
        [".PKGINFO", ".BUILDINFO", ".MTREE"],
        "{listing}"
    );
    for (attrs, path) in b.entries {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(attrs) && l.ends_with(&format!(" {path}"))),
            "{dir}: no {attrs} ... {path} in:\n{listing}"
        );
    }
    let pkginfo = run(Command::new("bsdtar")
        .args(["-xOf"])
        .arg(pkg)
        .arg(".PKGINFO"));
    for l in b.pkginfo {
        assert!(
            pkginfo.lines().any(|i| i == *l),
            "{dir}: no {l:?} in:\n{pkginfo}"
        );
    }
    let builddate: u64 = pkginfo
        .lines()
        .find_map(|l| l.strip_prefix("builddate = "))
        .unwrap()
        .parse()
        .unwrap();

    // The .MTREE's sizes and checksums match the files; extracted as the test user.
    let x = s.path().join("x");
    fs::create_dir(&x).unwrap();
    s.chown_all();
    let o = crate::util::env()
        .command("bsdtar")
        .arg("-xf")
        .arg(pkg)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert_ok(&o);
    let gz = fs::read(x.join(".MTREE")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let entries = mtree(&text);
    assert!(entries.len() > 3, "{text}");
    for (path, keys) in &entries {
        let on_disk = x.join(path);
        let meta = fs::symlink_metadata(&on_disk).unwrap_or_else(|e| panic!("{path}: {e}"));
        match keys.get("type").map(String::as_str) {
            Some("file") => {
                let bytes = fs::read(&on_disk).unwrap();
                assert_eq!(keys["size"], bytes.len().to_string(), "{path}");
                assert_eq!(keys["sha256digest"], hex(&Sha256::digest(&bytes)), "{path}");
                assert_eq!(keys["md5digest"], hex(&md5::Md5::digest(&bytes)), "{path}");
            }
            Some("dir") => assert!(meta.is_dir(), "{path}"),
            Some("link") => assert_eq!(
                fs::read_link(&on_disk).unwrap().to_string_lossy(),
                keys["link"].as_str(),
                "{path}"
            ),
            other => panic!("{path}: type {other:?}"),
        }
        // Clamped to SOURCE_DATE_EPOCH, the package's build date.
        let time: u64 = keys["time"].strip_suffix(".0").unwrap().parse().unwrap();
        assert!(time <= builddate, "{path}: time {time} after {builddate}");
    }

    // Installed with pacman inside nsroot: every file has the .MTREE's mode and owner.
    let script = format!(
        "set -e; mkdir -p root/var/lib/pacman\n\
         pacman --root \"$PWD/root\" --dbpath \"$PWD/root/var/lib/pacman\" --noconfirm \
           --nodeps --nodeps -U '{}' >/dev/null\n\
         cd root; bsdtar -tf '{}' | grep -v '^\\.' | while read -r f; do \
           stat -c '%n %a %u %g' \"${{f%/}}\"; done",
        pkg.display(),
        pkg.display()
    );
    let o = s.nsroot(["sh", "-c", &script]);
    assert_ok(&o);
    let installed = stdout(&o);
    for (path, keys) in entries.iter().filter(|(p, _)| !p.starts_with('.')) {
        let mode = if keys.get("type").map(String::as_str) == Some("link") {
            "777"
        } else {
            keys["mode"].as_str()
        };
        let want = format!("{path} {mode} {} {}", keys["uid"], keys["gid"]);
        assert!(
            installed.lines().any(|l| l == want),
            "{dir}: installed, not {want:?}:\n{installed}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn pacman_recipe_hello() {
    check_bundled("hello");
}

#[test]
fn pacman_recipe_scripts_with_a_backup_file() {
    check_bundled("scripts");
}

#[test]
fn pacman_recipe_suidtool_keeps_group_games_and_setuid_setgid() {
    check_bundled("suidtool");
}

#[test]
fn pacman_recipe_tarball() {
    check_bundled("tarball");
}

#[test]
fn pacman_repro_catches_a_recipe_that_embeds_the_time() {
    if cannot_run(&[]) {
        return;
    }
    let s = Scratch::new();
    let r = time_recipe(&s, "pkg.tar.zst");
    let o = s.nsroot(["repro".as_ref(), r.as_os_str()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("NOT REPRODUCIBLE"), "{out}");
    assert!(
        out.contains("usr/share/embeds/built-at: content differs at byte "),
        "{out}"
    );
    // The .MTREE holds the file's checksums, so it differs too.
    assert!(out.contains(".MTREE: content differs"), "{out}");
}

#[test]
fn pacman_install_script_backup_and_relations() {
    if cannot_run(&["pacman", "bsdtar"]) {
        return;
    }
    let s = Scratch::new();
    s.write(
        "withinstall/arch/x.install",
        "post_install() {\n  echo installed\n}\n",
    );
    let r = super::rpm::write_recipe(
        &s,
        "withinstall",
        "[package]\nname = \"withinstall\"\nversion = \"2:1.5\"\nrelease = \"3\"\narch = \"all\"\n\
         summary = \"s\"\nlicense = \"MIT\"\nsource_date_epoch = 1700000000\n\
         [install]\nsteps = ['mkdir -p \"$DESTDIR/etc\"', 'echo a=1 > \"$DESTDIR/etc/w.conf\"']\n\
         [deb]\nmaintainer = \"A Person <a@example.org>\"\nconffiles = [\"/etc/w.conf\"]\n\
         [arch]\ninstall = \"arch/x.install\"\ndepends = [\"bash>=5\"]\nprovides = [\"wi=1.5\"]\n\
         conflicts = [\"other\"]\nreplaces = [\"old\"]\n\
         [output]\nformats = [\"pkg.tar.zst\"]\n",
    );
    let o = super::rpm::build(&s, &r, &s.path().join("out"), None);
    assert_ok(&o);
    let pkg = s.path().join("out/withinstall_1.5-3_all.pkg.tar.zst");
    let listing = run(Command::new("bsdtar").arg("-tf").arg(&pkg));
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names[..4],
        [".PKGINFO", ".BUILDINFO", ".MTREE", ".INSTALL"],
        "{listing}"
    );
    let info = run(Command::new("pacman").arg("-Qip").arg(&pkg));
    for want in [
        "Version         : 2:1.5-3",
        "Architecture    : any",
        "Install Script  : Yes",
        "Depends On      : bash>=5",
        "Provides        : wi=1.5",
        "Conflicts With  : other",
        "Replaces        : old",
        "Packager        : A Person <a@example.org>",
    ] {
        assert!(info.lines().any(|l| l == want), "no {want:?} in:\n{info}");
    }
    let pkginfo = run(Command::new("bsdtar").arg("-xOf").arg(&pkg).arg(".PKGINFO"));
    assert!(
        pkginfo.lines().any(|l| l == "backup = etc/w.conf"),
        "{pkginfo}"
    );
}
