//! Tests of `nsroot build` (issue 4): the bundled recipes, the sealed sandbox, errors.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch, Terminal, FG_CHECK};

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
    // `exec`: the signal nsroot passes on reaches sleep itself (a shell waits for its child
    // before it acts on SIGINT).
    let r = recipe(
        &s,
        "slow",
        "[build]\nsteps = ['echo started; exec sleep 30']\n",
    );
    let before = scratch_dirs("slow");
    let mut child = util::env()
        .nsroot()
        .args(["build", r.to_str().unwrap(), "-o"])
        .arg(s.path().join("out"))
        .current_dir(s.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the step runs (its output is in the log).
    wait_for_log_line(&s.path().join("out"), "started");
    let start = Instant::now();
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
    assert!(start.elapsed() < Duration::from_secs(20), "{err}");
    // The build stops with the signal, as the step did, instead of reporting a failed step.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGINT),
        "{err}"
    );
    assert!(!err.contains("exit code 130"), "{err}");
    assert_eq!(
        scratch_dirs("slow"),
        before,
        "scratch directory left behind"
    );
    // No archive or manifest: only the log of what ran before the interrupt.
    assert_eq!(
        names(&s.path().join("out")),
        [format!("{}.build.log", stem("slow"))]
    );
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

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits until some file in `dir` contains `needle` (a build's log, under whatever name).
fn wait_for_log_line(dir: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(needle)
            });
        if seen {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in any file of {dir:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `<name>_1.0-1_<host arch>`, the output stem of `recipe()`'s recipes.
fn stem(name: &str) -> String {
    format!("{name}_1.0-1_{}", nsroot::package::host_arch())
}

#[test]
fn build_log_is_live_at_its_final_path_and_an_interrupt_keeps_the_archives() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "relog",
        "[build]\nsteps = ['echo \"run-$(cat who)\"; if test -e slow; then exec sleep 30; fi']\n",
    );
    s.write("relog/src/who", "first\n");
    assert_ok(&build(&s, &r, &["-o", "out"]));
    let out = s.path().join("out");
    let log = out.join(format!("{}.build.log", stem("relog")));
    let archive = out.join(format!("{}.tar.gz", stem("relog")));
    let (written, sum) = (names(&out), sha256(&archive));
    assert!(std::fs::read_to_string(&log).unwrap().contains("run-first"));

    s.write("relog/src/who", "second\n");
    s.write("relog/src/slow", "");
    let child = util::env()
        .nsroot()
        .args(["build", r.to_str().unwrap(), "-o", "out"])
        .current_dir(s.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What `tail -f` on the log shows while the step runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("run-second")
    {
        assert!(
            Instant::now() < deadline,
            "the running build's log is not at {log:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGINT),
        "{}",
        stderr(&o)
    );
    // The log tells what the last build did; the earlier archive is intact and nothing else
    // was left.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("run-second") && !text.contains("run-first"),
        "{text}"
    );
    assert_eq!(names(&out), written);
    assert_eq!(sha256(&archive), sum);
}

#[test]
fn build_two_builds_into_one_directory_each_write_a_whole_log() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // $NSROOT_JOBS (from -j) tells the two builds apart, and makes their lines differ in
    // length, so that two builds writing one file would interleave visibly.
    let r = recipe(
        &s,
        "twice",
        "[build]\nsteps = ['for i in 1 2 3 4 5 6; do echo \"jobs=$NSROOT_JOBS line $i\"; sleep 0.5; done']\n",
    );
    let run = |jobs: &'static str| {
        let r = r.clone();
        let dir = s.path().to_path_buf();
        std::thread::spawn(move || {
            util::env()
                .nsroot()
                .args(["build", r.to_str().unwrap(), "-o", "out", "-j", jobs])
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    let (a, b) = (run("1"), run("22"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ok(&a);
    assert_ok(&b);
    // Whichever came second waited for the first's log.
    assert!(
        [&a, &b]
            .iter()
            .any(|o| stderr(o).contains("another build is writing")),
        "neither build waited: {} / {}",
        stderr(&a),
        stderr(&b)
    );
    let out = s.path().join("out");
    let log = out.join(format!("{}.build.log", stem("twice")));
    for o in [&a, &b] {
        assert!(
            stderr(o).contains(&format!("nsroot: log {}", log.display())),
            "{}",
            stderr(o)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("==>")).collect();
    let whole =
        |jobs: &str| -> Vec<String> { (1..=6).map(|i| format!("jobs={jobs} line {i}")).collect() };
    assert!(
        lines == whole("1") || lines == whole("22"),
        "not one build's whole log: {text:?}"
    );
    assert_eq!(
        names(&out),
        [
            format!("{}.build.log", stem("twice")),
            format!("{}.manifest.json", stem("twice")),
            format!("{}.tar.gz", stem("twice")),
        ]
    );
}

#[test]
fn build_keep_on_a_failed_build_says_where_the_work_tree_is() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "keptfail",
        "[install]\nsteps = ['touch \"$DESTDIR/made-before-failing\"; exit 4']\n",
    );
    let o = build(&s, &r, &["-o", "out", "--keep"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("failed with exit code 4"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("nsroot: work tree kept at "))
        .unwrap_or_else(|| panic!("no kept path in: {err}"));
    let dir = PathBuf::from(line.rsplit(' ').next().unwrap());
    assert!(dir.join("destdir/made-before-failing").exists(), "{err}");
    assert_ok(&s.sh(&format!("rm -rf {}", dir.display())));
}

#[test]
fn build_missing_source_or_wrong_sha256_is_exit_2_and_writes_nothing() {
    let s = Scratch::new();
    let head = "[package]\nname = \"bad\"\nversion = \"1.0\"\nsummary = \"s\"\n[source]\n";
    s.write("tarball/src/f", "data\n");
    assert_ok(&s.sh("tar -C tarball/src -cf tarball/x.tar f && rm -r tarball/src"));
    let actual = sha256(&s.path().join("tarball/x.tar"));
    let wrong = "ab".repeat(32);
    let cases: &[(&str, String, &[&str])] = &[
        (
            "nodir",
            "path = \"nosuch\"\n".into(),
            &["path = \"nosuch\"", "does not exist"],
        ),
        (
            "noarchive",
            format!("archive = \"x.tar.gz\"\nsha256 = \"{actual}\"\n"),
            &["archive = \"x.tar.gz\"", "does not exist"],
        ),
        (
            "tarball",
            format!("archive = \"x.tar\"\nsha256 = \"{wrong}\"\n"),
            &["x.tar: sha256 mismatch", &wrong, &actual],
        ),
    ];
    for (dir, source, needles) in cases {
        let r = s.write(&format!("{dir}/recipe.toml"), &format!("{head}{source}"));
        let o = build(&s, &r, &["-o", "out"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{dir}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{dir}: one line: {err}");
        assert!(err.starts_with("nsroot: "), "{dir}: {err}");
        for n in needles.iter() {
            assert!(err.contains(n), "{dir}: no {n:?} in: {err}");
        }
        assert!(!s.path().join("out").exists(), "{dir}: wrote out/: {err}");
    }
    assert!(scratch_dirs("bad").is_empty());
}

#[test]
fn build_net_keeps_the_host_network_and_only_with_net() {
    if util::no_userns() {
        return;
    }
    let host_ifaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    let mut host: Vec<&str> = host_ifaces
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    host.sort();
    let routes = std::fs::read_to_string("/proc/net/route")
        .unwrap()
        .lines()
        .skip(1)
        .count();
    if host == ["lo"] || routes == 0 {
        util::skip("the host has no network besides lo to compare with");
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "netprobe",
        "[build]\nsteps = ['echo \"ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | sort | tr \"\\n\" \",\")\"; \
         echo \"routes=$(tail -n +2 /proc/net/route | wc -l)\"']\n",
    );
    let probe = |out: &str, extra: &[&str]| {
        let mut args = vec!["-o", out];
        args.extend_from_slice(extra);
        assert_ok(&build(&s, &r, &args));
        std::fs::read_to_string(
            s.path()
                .join(out)
                .join(format!("{}.build.log", stem("netprobe"))),
        )
        .unwrap()
    };
    let with = probe("with", &["--net"]);
    let without = probe("without", &[]);
    let host_line = format!("ifaces={},", host.join(","));
    assert!(with.contains(&host_line), "want {host_line:?} in: {with}");
    assert!(with.contains(&format!("routes={routes}\n")), "{with}");
    assert!(without.contains("ifaces=lo,\n"), "{without}");
    assert!(without.contains("routes=0\n"), "{without}");
}

#[test]
fn build_format_tar_zst_into_dist_writes_only_that_archive() {
    if util::no_userns() || util::missing_tool("zstd") {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "zst",
        "[install]\nsteps = ['mkdir -p \"$DESTDIR/usr/share/zst\" && echo hi > \"$DESTDIR/usr/share/zst/hi\"']\n\
         [output]\nformats = [\"tar.gz\", \"tar.xz\"]\n",
    );
    let o = build(&s, &r, &["--format", "tar.zst", "-o", "dist/"]);
    assert_ok(&o);
    let dist = s.path().join("dist");
    let archive = dist.join(format!("{}.tar.zst", stem("zst")));
    assert_eq!(
        stdout(&o),
        format!("{}  {}\n", sha256(&archive), archive.display())
    );
    let t = std::process::Command::new("tar")
        .arg("--zstd")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert_ok(&t);
    assert!(
        stdout(&t).lines().any(|l| l == "./usr/share/zst/hi"),
        "{}",
        stdout(&t)
    );
    assert_eq!(
        names(&dist),
        [
            format!("{}.build.log", stem("zst")),
            format!("{}.manifest.json", stem("zst")),
            format!("{}.tar.zst", stem("zst")),
        ]
    );
}

/// The source tree hash as `recipes/README.md` defines it, computed here from the entries'
/// known contents and modes (not by nsroot's code).
fn expected_tree_hash(entries: &[(&str, char, u32, &str)]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (path, kind, mode, body) in entries {
        h.update(format!("{kind}{path}\0{mode:o}\0"));
        match kind {
            'f' => h.update(format!(
                "{} {}",
                body.len(),
                hex::encode(sha2::Sha256::digest(body.as_bytes()))
            )),
            'l' => h.update(body.as_bytes()),
            _ => {}
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[test]
fn build_manifest_records_recipe_source_version_and_outputs() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "mani",
        "[install]\nsteps = ['cp data \"$DESTDIR/\"']\n[output]\nformats = [\"tar\", \"tar.gz\"]\n",
    );
    s.write("mani/src/data", "some data\n");
    s.write("mani/src/sub/run.sh", "#!/bin/sh\n");
    assert_ok(&s.sh(
        "cd mani/src && chmod 644 .keep data && chmod 755 sub sub/run.sh && ln -s sub/run.sh link",
    ));
    let o = build(&s, &r, &["-o", "out"]);
    assert_ok(&o);
    let out = s.path().join("out");
    let text =
        std::fs::read_to_string(out.join(format!("{}.manifest.json", stem("mani")))).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["recipe_sha256"], sha256(&r), "{text}");
    let source = expected_tree_hash(&[
        (".keep", 'f', 0o644, ""),
        ("data", 'f', 0o644, "some data\n"),
        ("link", 'l', 0o777, "sub/run.sh"),
        ("sub", 'd', 0o755, ""),
        ("sub/run.sh", 'f', 0o755, "#!/bin/sh\n"),
    ]);
    assert_eq!(m["source_sha256"], source, "{text}");
    assert_eq!(m["source_date_epoch"], 1_700_000_000, "{text}");
    let version = util::env().nsroot().arg("--version").output().unwrap();
    assert_eq!(
        format!("nsroot {}\n", m["nsroot_version"].as_str().unwrap()),
        stdout(&version),
        "{text}"
    );
    let outputs: Vec<(String, String)> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["file"].as_str().unwrap().to_string(),
                o["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["tar", "tar.gz"]
        .iter()
        .map(|ext| {
            let f = format!("{}.{ext}", stem("mani"));
            let sha = sha256(&out.join(&f));
            (f, sha)
        })
        .collect();
    assert_eq!(outputs, want, "{text}");
    // The source hash follows the sources.
    s.write("mani/src/data", "other data\n");
    assert_ok(&s.sh("chmod 644 mani/src/data"));
    assert_ok(&build(&s, &r, &["-o", "out"]));
    let text =
        std::fs::read_to_string(out.join(format!("{}.manifest.json", stem("mani")))).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_ne!(m["source_sha256"], source, "{text}");
}

#[test]
fn build_ctrl_c_on_a_terminal_stops_the_build_with_the_signal() {
    if util::no_userns() || util::missing_tool("script") {
        return;
    }
    let s = Scratch::new();
    let r = recipe(&s, "ctrlc", "[build]\nsteps = ['echo started; sleep 30']\n");
    let out = s.path().join("out");
    let before = scratch_dirs("ctrlc");
    // As in run.rs: the shell around nsroot traps SIGINT so that it lives to print nsroot's
    // status however many times Ctrl-C is pressed.
    let line = format!(
        "trap 'echo trapped' INT; {} build {} -o {}; echo \"status=$?\"",
        env().bin.display(),
        r.display(),
        out.display()
    );
    let mut t = Terminal::start(&line, s.path(), &[]);
    // The step runs once its output is in the log.
    wait_for_log_line(&out, "started");
    let took = t.press_until_exit(b"\x03", 20);
    let (_, text) = t.finish();
    assert!(
        took < Duration::from_secs(20),
        "Ctrl-C did not stop the build: {text}"
    );
    assert!(text.contains("status=130"), "expected 128+SIGINT: {text:?}");
    assert!(!text.contains("failed with exit code"), "{text}");
    assert_eq!(
        scratch_dirs("ctrlc"),
        before,
        "scratch directory left behind"
    );
    // No archive or manifest: only the log of what ran before the interrupt.
    assert_eq!(
        names(&out),
        [format!("{}.build.log", stem("ctrlc"))],
        "{text}"
    );
}

#[test]
fn build_shell_on_failure_opens_a_shell_in_the_failed_sandbox() {
    if util::no_userns() || util::missing_tool("script") {
        return;
    }
    let s = Scratch::new();
    let r = recipe(
        &s,
        "sof",
        "[build]\nsteps = ['echo made > made-by-step; false']\n",
    );
    let line = format!(
        "{} build {} -o out --shell-on-failure; echo \"build-status=$?\"; {FG_CHECK}",
        env().bin.display(),
        r.display()
    );
    let mut t = Terminal::start(&line, s.path(), &[]);
    // The answer is computed (`$((...))`), so the terminal's echo cannot satisfy it.
    t.type_until(
        b"echo \"uid-$(id -u) $(pwd) $(cat made-by-step) $(hostname) where-$((40+2))\"\n",
        "where-42",
    );
    t.type_once(b"exit\n");
    let (st, text) = t.finish();
    assert!(st.success(), "{text}");
    // Root in the failed step's sandbox, in its directory, with what the step left.
    assert!(
        text.contains("uid-0 /build/src made nsroot where-42"),
        "{text}"
    );
    // The shell (/bin/sh: dash on Debian) had the terminal's foreground in a group it can
    // name, so it gave it back without complaint, and nsroot took it back for the caller.
    assert!(!text.contains("Cannot set tty process group"), "{text}");
    assert!(text.contains("foreground-is-back"), "{text}");
    // The build still fails as the step did, and writes no archive.
    assert!(text.contains("build-status=1"), "{text}");
    assert!(text.contains("failed with exit code 1"), "{text}");
    assert!(
        !names(&s.path().join("out"))
            .iter()
            .any(|n| n.contains(".tar")),
        "{text}"
    );
}
