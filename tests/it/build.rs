//! Tests of `nsroot build` (issue 4): the bundled recipes, the sealed sandbox, errors.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

/// Copies the repository's recipes/ into the scratch dir (as the test user's).
fn copy_recipes(s: &Scratch, dest: &str) -> PathBuf {
    let to = s.path().join(dest);
    std::fs::create_dir_all(&to).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(util::repo().join("recipes"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(st.success());
    s.chown_all();
    to.join("recipes")
}

/// Writes a one-off recipe `name` with the given [build]/[install] TOML under the scratch dir.
fn recipe(s: &Scratch, name: &str, body: &str) -> PathBuf {
    s.write(&format!("{name}/src/.keep"), "");
    s.write(
        &format!("{name}/recipe.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"1.0\"\nsummary = \"test\"\n\
             source_date_epoch = 1700000000\n\n[source]\npath = \"src\"\n\n{body}"
        ),
    )
}

fn build(s: &Scratch, recipe: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build".to_string(), recipe.display().to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    s.nsroot(args)
}

fn sha256(p: &Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// GNU tar's verbose numeric listing of an archive: "mode uid/gid path" per entry.
fn listing(archive: &Path) -> Vec<String> {
    let o = std::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvf")
        .arg(archive)
        .output()
        .unwrap();
    assert_ok(&o);
    stdout(&o)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[1], f[5..].join(" "))
        })
        .collect()
}

/// The test user's scratch directories of recipe `name` under the temp dir.
fn scratch_dirs(name: &str) -> Vec<String> {
    let prefix = format!("nsroot-build-{name}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.metadata().map(|m| m.uid() == env().uid).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn build_every_bundled_recipe_with_expected_owners_and_modes() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipes = copy_recipes(&s, "a");
    let expect: &[(&str, &str, &[&str])] = &[
        (
            "hello",
            "hello_1.0-1_amd64.tar.gz",
            &["-rwxr-xr-x 0/0 ./usr/bin/hello"],
        ),
        (
            "scripts",
            "sysinfo_2.1-1_all.tar.gz",
            &[
                "-rwxr-xr-x 0/0 ./usr/bin/sysinfo",
                "-rw-r--r-- 0/0 ./etc/sysinfo.conf",
            ],
        ),
        (
            "suidtool",
            "scoreboard_0.3-1_amd64.tar.gz",
            &[
                "-rwxr-sr-x 0/60 ./usr/games/scoreboard",
                "-rwsr-xr-x 0/0 ./usr/lib/scoreboard/whoami-helper",
                "-rw-rw-r-- 0/60 ./var/games/scoreboard/scores",
            ],
        ),
        (
            "tarball",
            "tinywc_1.2-1_amd64.tar.xz",
            &["-rwxr-xr-x 0/0 ./usr/bin/tinywc"],
        ),
    ];
    for (dir, archive, entries) in expect {
        let o = build(&s, &recipes.join(dir).join("recipe.toml"), &["-o", "out"]);
        assert_ok(&o);
        let path = s.path().join("out").join(archive);
        assert!(
            stdout(&o).contains(&path.display().to_string()),
            "{}",
            stdout(&o)
        );
        let list = listing(&path);
        for e in *entries {
            assert!(
                list.iter().any(|l| l == e),
                "{archive}: no {e:?} in {list:#?}"
            );
        }
        for l in &list {
            let owner = l.split(' ').nth(1).unwrap();
            assert!(owner.starts_with("0/"), "{archive}: not root-owned: {l}");
        }
        // The manifest records the output's sha256.
        let manifest = std::fs::read_to_string(
            s.path().join("out").join(
                archive.replace(
                    archive
                        .split_once(".tar")
                        .map(|(_, e)| e)
                        .map(|e| format!(".tar{e}"))
                        .unwrap()
                        .as_str(),
                    ".manifest.json",
                ),
            ),
        )
        .unwrap();
        assert!(manifest.contains(&sha256(&path)), "{manifest}");
    }
    // The files the build left on disk belong to the test user, who can delete them.
    assert_ok(&s.sh("rm -rf out && test ! -e out"));
}

#[test]
fn build_is_bit_identical_from_two_directories() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let a = copy_recipes(&s, "first/place");
    copy_recipes(&s, "second");
    // Fresh mtimes on one copy, as a new checkout would have.
    assert_ok(&s.sh("find second -exec touch {} +"));
    let oa = build(&s, &a.join("hello/recipe.toml"), &["-o", "out-a"]);
    assert_ok(&oa);
    std::thread::sleep(Duration::from_millis(1100));
    // Another directory, another cwd, a relative recipe path, another -j and a noisy caller
    // environment: none of it may reach the archive.
    let ob = util::env()
        .nsroot()
        .args([
            "build",
            "recipes/hello/recipe.toml",
            "-o",
            "../out-b",
            "-j",
            "1",
        ])
        .current_dir(s.path().join("second"))
        .env("TZ", "Asia/Tokyo")
        .env("LANG", "de_DE.UTF-8")
        .env("SOME_NOISE", "x")
        .output()
        .unwrap();
    assert_ok(&ob);
    for f in ["hello_1.0-1_amd64.tar.gz", "hello_1.0-1_amd64.deb"] {
        assert_eq!(
            sha256(&s.path().join("out-a").join(f)),
            sha256(&s.path().join("out-b").join(f)),
            "{f} differs between the two builds"
        );
    }
}

#[test]
fn build_never_modifies_the_source_tree() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "vandal",
        "[build]\nsteps = [\n  'echo changed > .keep; rm -f .keep; mkdir -p new/dir; echo x > new/dir/f; chmod 000 new',\n  \
         'for d in /build/src /build /tmp \"$HOME\"; do touch \"$d/written\" 2>/dev/null || true; done',\n]\n\
         [install]\nsteps = ['echo hi > \"$DESTDIR/hi\"']\n",
    );
    s.write("vandal/src/data", "original\n");
    let before = s.sh("cd vandal && find . -printf '%p %m %s %T@\\n' | sort && cat src/data");
    let o = build(&s, &r, &["-o", "out"]);
    assert_ok(&o);
    let after = s.sh("cd vandal && find . -printf '%p %m %s %T@\\n' | sort && cat src/data");
    assert_eq!(stdout(&before), stdout(&after));
    assert!(listing(&s.path().join("out/vandal_1.0-1_amd64.tar.gz"))
        .iter()
        .any(|l| l.ends_with("./hi")));
}

#[test]
fn build_sandbox_is_sealed() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let home = s.sh("echo $HOME");
    let home = stdout(&home).trim().to_string();
    let script = format!(
        "[build]\nsteps = [\n\
         '! touch /etc/nsroot-x 2>/dev/null',\n\
         '! touch /usr/nsroot-x 2>/dev/null',\n\
         '! touch /nsroot-x 2>/dev/null',\n\
         'test ! -e {home}/.nsroot-probe',\n\
         'test ! -e {scratch}',\n\
         'test \"$(cat /proc/sys/kernel/hostname)\" = nsroot',\n\
         'test \"$(ls /proc | grep -c \"^[0-9]\")\" -le 6',\n\
         'test \"$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \")\" = lo',\n\
         'test \"$(tail -n +2 /proc/net/route | wc -l)\" = 0',\n\
         'bash -c \"exec 3<>/dev/tcp/127.0.0.1/9\" 2>&1 | grep -q \"Connection refused\"',\n\
         'test \"$(ls /proc/self/fd | sort -n | tr \"\\\\n\" \" \")\" = \"0 1 2 3 \"',\n\
         'test \"$(id -u)\" = 0 && test \"$HOME\" = /build/home && touch \"$HOME/ok\" /tmp/ok',\n\
         'test \"$(umask)\" = 0022 && test \"$TZ\" = UTC && test \"$LC_ALL\" = C.UTF-8 && test -z \"$SECRET_FROM_CALLER\"',\n\
         'test \"$(head -c 4 /dev/zero | wc -c)\" = 4 && mknod /tmp/zero c 1 5 && test \"$(head -c 4 /tmp/zero | wc -c)\" = 0',\n\
         ]\n",
        scratch = s.path().display(),
    );
    let _ = std::fs::write(Path::new(&home).join(".nsroot-probe"), "");
    let r = recipe(&s, "sealed", &script);
    let o = util::env()
        .nsroot()
        .args(["build", r.to_str().unwrap(), "-o"])
        .arg(s.path().join("out"))
        .env("SECRET_FROM_CALLER", "leak")
        .current_dir(s.path())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(Path::new(&home).join(".nsroot-probe"));
    assert_ok(&o);
    assert!(!Path::new("/etc/nsroot-x").exists() && !Path::new("/nsroot-x").exists());
}

#[test]
fn build_step_failure_names_step_code_and_log_tail_and_writes_no_archive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "broken",
        "[build]\nsteps = ['echo first-step-ran', 'echo about to fail; echo the-last-words >&2; exit 3', 'echo never']\n",
    );
    let o = build(&s, &r, &["-o", "out"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("step 2 of [build] steps"), "{err}");
    assert!(err.contains("failed with exit code 3"), "{err}");
    assert!(err.contains("the-last-words"), "{err}");
    assert!(!err.contains("never"), "{err}");
    let log = std::fs::read_to_string(s.path().join("out/broken_1.0-1_amd64.build.log")).unwrap();
    assert!(
        log.contains("first-step-ran") && log.contains("the-last-words"),
        "{log}"
    );
    let archives: Vec<_> = std::fs::read_dir(s.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tar"))
        .collect();
    assert!(archives.is_empty(), "{archives:?}");
}

#[test]
fn build_daemon_started_by_a_step_leaves_nothing_behind() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "daemon",
        "[build]\nsteps = ['setsid sleep 633.5 > /dev/null 2>&1 < /dev/null &', 'sleep 633.5 &']\n",
    );
    assert_ok(&build(&s, &r, &["-o", "out"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = std::process::Command::new("pgrep")
            .args(["-f", "^sleep 633.5$"])
            .output()
            .unwrap();
        if !o.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "left running: {}", stdout(&o));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn build_interrupted_leaves_no_scratch_and_no_archive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(&s, "slow", "[build]\nsteps = ['echo started; sleep 30']\n");
    let before = scratch_dirs("slow");
    let mut child = util::env()
        .nsroot()
        .args(["build", r.to_str().unwrap(), "-o"])
        .arg(s.path().join("out"))
        .current_dir(s.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the step runs (its header is in the log).
    let log = s.path().join("out/slow_1.0-1_amd64.build.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut err = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .for_each(|l| {
            err.push_str(&l.unwrap());
            err.push('\n');
        });
    let status = child.wait().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("exit code 130"), "{err}");
    assert_eq!(
        scratch_dirs("slow"),
        before,
        "scratch directory left behind"
    );
    assert!(!s.path().join("out/slow_1.0-1_amd64.tar.gz").exists());
}

#[test]
fn build_keep_keeps_the_work_tree() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(&s, "kept", "[install]\nsteps = ['touch \"$DESTDIR/x\"']\n");
    let o = build(&s, &r, &["-o", "out", "--keep"]);
    assert_ok(&o);
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.contains("work tree kept at"))
        .expect(&err);
    let dir = PathBuf::from(line.rsplit(' ').next().unwrap());
    assert!(dir.join("destdir/x").exists(), "{err}");
    assert_ok(&s.sh(&format!("rm -rf {}", dir.display())));
}

#[test]
fn build_bad_recipes_are_clear_input_errors() {
    let s = Scratch::new();
    let cases: &[(&str, &str, &str)] = &[
        ("typo", "[package]\nname = \"x\"\nversion = \"1\"\nsummary = \"s\"\n[build]\nstpes = []\n", "stpes"),
        ("noname", "[package]\nversion = \"1\"\nsummary = \"s\"\n", "name"),
        ("badname", "[package]\nname = \"Bad Name\"\nversion = \"1\"\nsummary = \"s\"\n", "name"),
        ("escape", "[package]\nname = \"esc\"\nversion = \"1\"\nsummary = \"s\"\n[source]\npath = \"../../etc\"\n", "../../etc"),
    ];
    for (dir, text, needle) in cases {
        let r = s.write(&format!("{dir}/recipe.toml"), text);
        let o = build(&s, &r, &["-o", "out"]);
        assert_eq!(o.status.code(), Some(2), "{dir}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("recipe.toml"), "{dir}: {err}");
        assert!(err.contains(needle), "{dir}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{dir}: one line: {err}");
    }
    let o = build(&s, &s.path().join("missing/recipe.toml"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
