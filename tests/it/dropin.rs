//! nsroot where fakeroot is used (issue 14): under the name `fakeroot`, with fakeroot's
//! command line; FAKEROOTKEY; nested calls joining the outer session; makepkg and an
//! abuild-style check with nsroot as their `fakeroot`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

/// `DIR/bin/fakeroot` -> nsroot, made by `nsroot install-fakeroot`; returns the bin dir.
fn install(s: &Scratch) -> PathBuf {
    let bin = s.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    s.chown_all();
    let o = s.nsroot(["install-fakeroot", bin.to_str().unwrap()]);
    assert_ok(&o);
    assert_eq!(
        stdout(&o).trim(),
        bin.join("fakeroot").display().to_string()
    );
    bin
}

/// `sh -c script` as the test user with `bin` first on PATH.
fn with_path(s: &Scratch, bin: &Path, script: &str) -> Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env()
        .command("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .current_dir(s.path())
        .output()
        .unwrap()
}

#[test]
fn dropin_fakeroot_command_line_through_the_symlink() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let bin = install(&s);
    let o = with_path(&s, &bin, &format!("{} doctor", env().bin.display()));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("ok       fakeroot on PATH (") && l.contains("is this nsroot")),
        "{}",
        stdout(&o)
    );
    let o = with_path(&s, &bin, "fakeroot -v");
    assert_ok(&o);
    assert!(
        stdout(&o).starts_with("fakeroot version "),
        "{}",
        stdout(&o)
    );
    let o = with_path(
        &s,
        &bin,
        "touch f; fakeroot -s st -- chown 5:6 f && fakeroot -i st stat -c %u:%g f; \
         fakeroot -- sh -c 'exit 7'; echo status=$?; fakeroot no-such-command-x; echo status=$?",
    );
    assert!(stdout(&o).contains("5:6\n"), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("status=7\n"), "{}", stdout(&o));
    assert!(stdout(&o).contains("status=127\n"), "{}", stdout(&o));
    // -b means nothing here and says nothing; -u would change fakeroot's answer: one note.
    let o = with_path(&s, &bin, "fakeroot -b 3 id -u");
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("0\n", ""));
    let o = with_path(&s, &bin, "fakeroot -u id -u");
    assert_eq!(stdout(&o), "0\n");
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("fakeroot: -u ignored"),
        "{}",
        stderr(&o)
    );
    // An unknown option is refused, not run as a command.
    let o = with_path(&s, &bin, "fakeroot -Z true");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn dropin_fakerootkey_and_the_abuild_check() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let bin = install(&s);
    // abuild refuses "root" without FAKEROOTKEY; inside a session both hold.
    let check = r#"if [ "$(id -u)" -eq 0 ] && [ -z "$FAKEROOTKEY" ]; then echo "Do not run abuild as root"; exit 1; fi; echo ok key=$FAKEROOTKEY"#;
    for runner in ["fakeroot", "nsroot"] {
        let cmd = if runner == "nsroot" {
            env().bin.display().to_string()
        } else {
            runner.to_string()
        };
        let o = with_path(&s, &bin, &format!("{cmd} sh -c '{check}'"));
        assert_ok(&o);
        let out = stdout(&o);
        let key = out.trim().strip_prefix("ok key=").unwrap_or("");
        assert!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
    }
}

#[test]
fn dropin_nested_calls_join_the_outer_session() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let bin = install(&s);
    let ns = env().bin.display().to_string();
    for (outer, inner) in [
        (ns.as_str(), ns.as_str()),
        ("fakeroot", "fakeroot"),
        (ns.as_str(), "fakeroot"),
        ("fakeroot", ns.as_str()),
    ] {
        // The inner calls, one through `env -i` (no FAKEROOTKEY, no PATH), from a script.
        s.write(
            "inner.sh",
            &format!(
                "k=$FAKEROOTKEY\n{inner} chown 5:6 f\nstat -c %u:%g f\n\
                 env -i {inner_abs} sh -c 'chown 7:8 f; echo $FAKEROOTKEY' > inner-key\n\
                 stat -c %u:%g f\ntest \"$(cat inner-key)\" = \"$k\" && echo same-session\n",
                inner_abs = if inner == "fakeroot" {
                    bin.join("fakeroot").display().to_string()
                } else {
                    inner.to_string()
                },
            ),
        );
        let script = format!("rm -f f; touch f; {outer} sh inner.sh");
        let o = with_path(&s, &bin, &script);
        assert_ok(&o);
        assert_eq!(
            stdout(&o),
            "5:6\n7:8\nsame-session\n",
            "{outer} / {inner}: {}",
            stderr(&o)
        );
    }
}

/// A PKGBUILD whose package() needs root: owners, setuid and setgid bits, a device.
const PKGBUILD: &str = r#"pkgname=nsroot-dropin
pkgver=1.0
pkgrel=1
pkgdesc="ownership test"
arch=('any')
license=('MIT')
options=(!strip !debug)
package() {
  mkdir -p "$pkgdir/usr/bin" "$pkgdir/srv/shared" "$pkgdir/dev"
  echo hi > "$pkgdir/usr/bin/tool"
  chown 5:6 "$pkgdir/usr/bin/tool"
  chmod 4755 "$pkgdir/usr/bin/tool"
  echo x > "$pkgdir/usr/bin/grp"; chgrp 8 "$pkgdir/usr/bin/grp"
  install -o 7 -g 9 -m 644 /dev/null "$pkgdir/usr/bin/inst"
  chmod 2775 "$pkgdir/srv/shared"
  mknod "$pkgdir/dev/null2" c 1 3
}
"#;

/// makepkg in `dir` with `bin` first on PATH (or the system's fakeroot); returns the
/// package's listing and .MTREE without the lines of the metadata files (whose `# using`
/// line names the fakeroot).
fn makepkg(s: &Scratch, dir: &str, bin: Option<&Path>) -> (String, String) {
    s.write(&format!("{dir}/PKGBUILD"), PKGBUILD);
    let path = match bin {
        Some(b) => format!(
            "{}:{}",
            b.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    let o = env()
        .command("makepkg")
        .args(["-f", "--nodeps"])
        .env("PATH", path)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .current_dir(s.path().join(dir))
        .output()
        .unwrap();
    assert_ok(&o);
    let pkg = s
        .path()
        .join(dir)
        .join("nsroot-dropin-1.0-1-any.pkg.tar.gz");
    let list = Command::new("bsdtar")
        .arg("-tvf")
        .arg(&pkg)
        .output()
        .unwrap();
    assert_ok(&list);
    let mtree = Command::new("sh")
        .arg("-c")
        .arg(format!("bsdtar -xOf {} .MTREE | gzip -dc", pkg.display()))
        .output()
        .unwrap();
    assert_ok(&mtree);
    let meta =
        |l: &&str| !l.contains(".PKGINFO") && !l.contains(".BUILDINFO") && !l.contains(".MTREE");
    (
        stdout(&list)
            .lines()
            .filter(meta)
            .collect::<Vec<_>>()
            .join("\n"),
        stdout(&mtree)
            .lines()
            .filter(meta)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[test]
fn dropin_makepkg_with_nsroot_as_fakeroot_matches_fakeroot() {
    if util::no_userns()
        || util::missing_tool("makepkg")
        || util::missing_tool("bsdtar")
        || util::missing_tool("fakeroot")
    {
        return;
    }
    let s = Scratch::new();
    let bin = install(&s);
    let (ours, our_mtree) = makepkg(&s, "ours", Some(&bin));
    let (theirs, their_mtree) = makepkg(&s, "theirs", None);
    assert!(
        ours.contains("-rwsr-xr-x") && ours.contains("crw-r--r--"),
        "{ours}"
    );
    assert!(
        our_mtree.contains("./usr/bin/tool time=1700000000.0 mode=4755 gid=6 uid=5"),
        "{our_mtree}"
    );
    assert_eq!(ours, theirs);
    assert_eq!(our_mtree, their_mtree);
}

/// What fakeroot's own test suite checks (its `test/t.*` scripts: mknod and chmod of a
/// device, exit statuses, option-like arguments, command substitution, a child started with
/// an empty LD_PRELOAD, owners surviving mv/rm with inodes reused, `chown -R`, setuid bits,
/// writing into a mode-0 directory as root, a tar of it all), as one script run once under
/// the real fakeroot and once under nsroot through the `fakeroot` symlink: the outputs must
/// be the same. (Run by hand with the suite's own scripts from a fakeroot 1.19 tree and a
/// `defs` pointing at the symlink, every test passed that passes under fakeroot here; its
/// `t.xattr` fails under both, as getcap's output format changed.)
#[test]
fn dropin_fakeroot_suite_cases_give_what_fakeroot_gives() {
    if util::no_userns() || util::missing_tool("fakeroot") || util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    let bin = install(&s);
    let script = r#"
        set -e
        umask 022
        mkdir t; cd t
        mknod blk b 3 1; chmod 644 blk; ls -l blk | cut -c1-10
        true; echo true=$?; if false; then echo false=0; else echo false=1; fi
        echo -1 -2
        r="$(sh -c 'shift 2; echo $1' sh 3 a b c)"; echo "substituted=$r"
        touch justafile; LD_PRELOAD= rm justafile; mkdir justafile; ls -ld justafile | cut -c1-10
        for f in a b c x.y; do mkdir -p $f/$f/$f.d; touch $f/$f/file; done
        touch mv.a rm.a mv.b rm.b
        chown daemon:sys mv.a rm.a mv.b rm.b
        mv mv.a gone; rm rm.a; mv mv.b gone2; rm rm.b; rm gone gone2
        for f in a b c x.y; do mkdir -p h/$f; touch h/$f/file $f.file; done
        chown -R daemon:sys b
        chown -R daemon:root c
        chmod -R u+xs b
        chmod u+s a
        chmod 0 h h/*
        echo 0123456789012 > h/h
        cd ..
        tar -cf - t | tar -tvf - | awk '{print $1, $2, $6}' | sort -k3
    "#;
    // Each in a directory of its own: the mode-0 directory made as root stays behind.
    let quoted = script.replace('\'', "'\\''");
    let ours = with_path(
        &s,
        &bin,
        &format!("mkdir n && cd n && fakeroot -- sh -c '{quoted}'"),
    );
    assert_ok(&ours);
    let theirs = with_path(
        &s,
        &bin,
        &format!("mkdir f && cd f && /usr/bin/fakeroot -- sh -c '{quoted}'"),
    );
    assert_ok(&theirs);
    assert_eq!(
        stdout(&ours),
        stdout(&theirs),
        "nsroot (left) and fakeroot (right)"
    );
    let out = stdout(&ours);
    for want in [
        "brw-r--r--",
        "true=0",
        "false=1",
        "-1 -2",
        "substituted=b",
        "drwxr-xr-x",
        "daemon/sys t/b/b/file",
        "daemon/root t/c/",
        "-rw-r--r-- root/root t/h/h",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    // The files that were chowned and removed left no owner to the ones made after them.
    assert!(!out.contains("daemon/sys t/h/"), "{out}");
}
