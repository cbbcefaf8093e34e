//! Issue 16: nsroot stays bounded on any input and refuses early. State files given with
//! `-i` (`nsroot -i`, `nsroot pack -i`) that are not regular files, are huge garbage or hold
//! impossible modes are refused with one line, exit 2, in bounded memory and without hanging.

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nsroot::error::EXIT_INPUT;

use crate::util::{self, stderr, stdout, Scratch};

/// The memory bound of every case here (issue 16): under 64 MiB peak RSS.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// How long a case may take before it counts as hung: far above the second the issue asks
/// for, so a loaded machine does not fail it, far below "forever".
const HANG_AFTER: Duration = Duration::from_secs(20);

/// Runs nsroot with `args` in `s` under `/usr/bin/time -f %M`, in a process group of its own
/// that is killed if it has not ended within [`HANG_AFTER`]. Returns the output, the peak RSS
/// in KiB and the time taken.
pub fn run_bounded(s: &Scratch, args: &[&str]) -> (Output, u64, Duration) {
    run_bounded_for(s, args, HANG_AFTER)
}

/// [`run_bounded`], killed after `hang_after` instead.
pub fn run_bounded_for(
    s: &Scratch,
    args: &[&str],
    hang_after: Duration,
) -> (Output, u64, Duration) {
    use std::os::unix::process::CommandExt;
    let env = util::env();
    let rss_file = s.path().join(".rss");
    let out_file = s.path().join(".stdout");
    let start = Instant::now();
    let mut child = env
        .command("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(&env.bin)
        .args(args)
        .current_dir(s.path())
        .stdin(Stdio::null())
        // A file, not a pipe: a long report must not fill a pipe nobody reads until the end.
        .stdout(fs::File::create(&out_file).unwrap())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > hang_after {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let o = child.wait_with_output().unwrap();
            panic!(
                "nsroot {args:?} hung: killed after {hang_after:?}; stderr: {}",
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let mut o = child.wait_with_output().unwrap();
    o.stdout = fs::read(&out_file).unwrap();
    let _ = fs::remove_file(&out_file);
    let rss = fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = fs::remove_file(&rss_file);
    // time(1) prints "Command exited with non-zero status N" before the figure.
    let kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS figure from /usr/bin/time: {rss:?}"));
    (o, kib, took)
}

/// Asserts exit 2, one `nsroot: ...` line naming every needle, and the memory bound.
#[track_caller]
pub fn assert_refused_bounded(case: &str, o: &Output, kib: u64, needles: &[&str]) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{case}: panic: {err}");
    assert_eq!(o.status.code(), Some(EXIT_INPUT), "{case}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: not one line: {err}");
    assert!(lines[0].starts_with("nsroot: "), "{case}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{case}: {n:?} not named in: {err}");
    }
    assert!(
        kib < RSS_BOUND_KIB,
        "{case}: peak RSS {kib} KiB, over {RSS_BOUND_KIB} KiB"
    );
}

fn cannot_time() -> bool {
    !Path::new("/usr/bin/time").is_file() && util::skip("/usr/bin/time (GNU time) is missing")
}

const HEADER: &str = "nsroot ownership state\nversion 1\n";

/// A scratch dir with `tree/a` and the bad state files: (case, file, words the message holds).
fn bad_state_scratch() -> (Scratch, Vec<(&'static str, String, &'static str)>) {
    let s = Scratch::new();
    s.write("tree/a", "a\n");
    let mut cases = vec![
        ("/dev/zero", "/dev/zero".to_string(), "a character device"),
        (
            "a symlink to /dev/zero",
            "zero".into(),
            "a character device",
        ),
        ("a FIFO", "fifo".into(), "a FIFO"),
        ("a directory", "tree".into(), "a directory"),
        (
            "200 MB of zeros",
            "zeros".into(),
            "not an nsroot state file",
        ),
        (
            "a good header, then a 200 MB line",
            "long-line".into(),
            "line 3 is longer than",
        ),
    ];
    std::os::unix::fs::symlink("/dev/zero", s.path().join("zero")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(s.path().join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    // Sparse: 200 MB that cost the test nothing to write.
    let f = fs::File::create(s.path().join("zeros")).unwrap();
    f.set_len(200_000_000).unwrap();
    fs::write(s.path().join("long-line"), HEADER).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(s.path().join("long-line"))
        .unwrap();
    f.set_len(200_000_000).unwrap();
    for (name, mode, why) in [
        ("mode-170755", "170755", "file type 170000 does not exist"),
        ("mode-10644", "10644", "the file type is a FIFO"),
    ] {
        fs::write(
            s.path().join(name),
            format!("{HEADER}2049 12 - 0 0 {mode} 1,3 -\nend 1\n"),
        )
        .unwrap();
        cases.push((name, name.to_string(), why));
    }
    s.chown_all();
    (s, cases)
}

#[test]
fn issue16_bad_state_files_are_refused_by_pack_at_once_in_bounded_memory() {
    if cannot_time() {
        return;
    }
    let (s, cases) = bad_state_scratch();
    for (case, file, why) in &cases {
        let (o, kib, took) = run_bounded(&s, &["pack", "tree", "-i", file, "-o", "out.tar"]);
        assert_refused_bounded(case, &o, kib, &[file, why]);
        assert!(!s.path().join("out.tar").exists(), "{case}: output written");
        eprintln!("pack -i {case}: refused in {took:?}, peak RSS {kib} KiB");
    }
}

#[test]
fn issue16_bad_state_files_are_refused_by_run_at_once_in_bounded_memory() {
    if cannot_time() || util::no_userns() {
        return;
    }
    let (s, cases) = bad_state_scratch();
    for (case, file, why) in &cases {
        let (o, kib, took) = run_bounded(&s, &["-i", file, "--", "touch", "ran"]);
        assert_refused_bounded(case, &o, kib, &[file, why]);
        assert!(!s.path().join("ran").exists(), "{case}: the command ran");
        eprintln!("run -i {case}: refused in {took:?}, peak RSS {kib} KiB");
    }
}

// ---- `-s PATH` must be able to take the state file's atomic rename ----------------------

/// Runs `sh -c script` in `s` as the test user and checks: exit 2, one `nsroot:` line naming
/// every needle, and the command (`touch ran`) never ran.
#[track_caller]
fn save_refused(s: &Scratch, script: &str, needles: &[&str]) {
    let o = s.sh(script);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{script}: panic: {err}");
    assert_eq!(o.status.code(), Some(EXIT_INPUT), "{script}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{script}: not one line: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{script}: {n:?} not named in: {err}");
    }
    assert!(!s.path().join("ran").exists(), "{script}: the command ran");
}

#[test]
fn issue16_save_path_that_cannot_take_a_rename_is_refused_before_running() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    s.write("tree/a", "a\n");
    std::os::unix::fs::symlink("/dev/null", s.path().join("to-null")).unwrap();
    fs::create_dir(s.path().join("ro")).unwrap();
    s.chown_all();
    fs::set_permissions(
        s.path().join("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let bin = util::env().bin.display().to_string();
    let cases: &[(String, &[&str])] = &[
        // stdout a pipe (the test captures it): a FIFO, which a rename would replace.
        (
            format!("{bin} -s /proc/self/fd/1 -- touch ran"),
            &["-s /proc/self/fd/1", "a FIFO"],
        ),
        // stdout a regular file: the link is in /proc/self/fd, where no file can be made.
        (
            format!("{bin} -s /proc/self/fd/1 -- touch ran > out"),
            &["-s /proc/self/fd/1", "directory /proc/self/fd"],
        ),
        (
            format!("{bin} -s /proc/nsroot-state -- touch ran"),
            &["-s /proc/nsroot-state", "directory /proc"],
        ),
        (
            format!("{bin} -s to-null -- touch ran"),
            &["-s to-null", "a character device"],
        ),
        (
            format!("{bin} -s ro/st -- touch ran"),
            &["-s ro/st", "directory ro", "ermission denied"],
        ),
        (
            format!("{bin} -s tree -- touch ran"),
            &["-s tree", "a directory"],
        ),
        (
            format!("{bin} -s nodir/st -- touch ran"),
            &["-s nodir/st", "does not exist"],
        ),
    ];
    for (script, needles) in cases {
        save_refused(&s, script, needles);
    }
    // A writable place is still accepted, and nothing was left in `ro` by the checks.
    let o = s.sh(&format!("{bin} -s st -- true"));
    util::assert_ok(&o);
    assert!(s.path().join("st").is_file());
    assert_eq!(fs::read_dir(s.path().join("ro")).unwrap().count(), 0);
}

// ---- Source archives: symlinks resolved against the tree as extracted so far ------------

const PACKAGE: &str = "[package]\nname = \"hello\"\nversion = \"1.0\"\nsummary = \"Say hello\"\n";

/// An archive entry: its path, and Some(symlink target) or None for a file holding "x".
type Entry<'a> = (&'a str, Option<&'a str>);

/// A tar of `entries`.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            None => {
                h.set_size(1);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, &b"x"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Materializes a recipe whose source is `tar` in a fresh directory; returns the result and
/// the scratch directory's parent listing after it (so an escape would show).
fn materialize(tar: &[u8]) -> (Result<std::path::PathBuf, String>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("x.tar"), tar).unwrap();
    let sha = nsroot::fsutil::sha256_file(&dir.join("x.tar")).unwrap();
    fs::write(
        dir.join("recipe.toml"),
        format!("{PACKAGE}[source]\narchive = \"x.tar\"\nsha256 = \"{sha}\"\n"),
    )
    .unwrap();
    let r = nsroot::recipe::Recipe::load(&dir.join("recipe.toml")).unwrap();
    let scratch = tmp.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    let out = r.source.materialize(&scratch).map_err(|e| {
        let e = anyhow::Error::from(e);
        assert_eq!(nsroot::error::exit_code_of(e.as_ref()), EXIT_INPUT, "{e:#}");
        format!("{e:#}")
    });
    (out, tmp)
}

#[test]
fn issue16_chained_symlinks_out_of_a_source_archive_are_refused() {
    let cases: &[(&str, &[Entry], &[&str])] = &[
        (
            "up, then esc through it",
            &[("d/up", Some("..")), ("d/esc", Some("up/../.."))],
            &["x.tar", "d/esc", "up/../..", "outside the tree", "d/up"],
        ),
        (
            "esc first, then up under the name it took for a directory",
            &[("d/esc", Some("up/../..")), ("d/up", Some(".."))],
            &["x.tar", "d/up", "d/esc", "would change where"],
        ),
        (
            "a link to a link to the parent",
            &[("a", Some("b/..")), ("b", Some("c")), ("c", Some(".."))],
            &["x.tar", "would change where"],
        ),
        (
            "a file written through a symlink",
            &[("d/up", Some("..")), ("d/up/f", None)],
            &["x.tar", "d/up/f", "through a link"],
        ),
    ];
    for (case, entries, needles) in cases {
        let (out, tmp) = materialize(&tar_of(entries));
        let msg = match out {
            Ok(_) => panic!("{case}: extracted"),
            Err(m) => m,
        };
        assert!(!msg.contains('\n'), "{case}: not one line: {msg}");
        for n in *needles {
            assert!(msg.contains(n), "{case}: {n:?} not named in: {msg}");
        }
        let mut top: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["r", "scratch"], "{case}: something escaped");
    }
    // What stays inside is still extracted: a link before its file, links up within the tree.
    let (out, _tmp) = materialize(&tar_of(&[
        ("lib/libfoo.so", Some("libfoo.so.1")),
        ("lib/libfoo.so.1", None),
        ("d/up", Some("..")),
        ("d/lib", Some("up/lib/libfoo.so")),
    ]));
    let src = out.unwrap();
    assert_eq!(fs::read_to_string(src.join("d/lib")).unwrap(), "x");
}

// ---- Long names and values are cut in recipe messages ------------------------------------

#[test]
fn issue16_megabyte_names_and_values_give_short_recipe_errors() {
    let long = "k".repeat(5_000_000);
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown top-level key",
            format!("{long} = 1\n{PACKAGE}"),
            &["unknown top-level key", "kkk..."],
        ),
        (
            "unknown key in [package]",
            format!("{PACKAGE}{long} = 1\n"),
            &["unknown key", "[package]", "kkk..."],
        ),
        (
            "unknown table",
            format!("{PACKAGE}[{long}]\nx = 1\n"),
            &["unknown top-level key", "kkk..."],
        ),
        (
            "bad name",
            PACKAGE.replace("\"hello\"", &format!("\"{long}!\"")),
            &["name", "kkk..."],
        ),
        (
            "wrong type",
            format!("{PACKAGE}source_date_epoch = \"{long}\"\n"),
            &["source_date_epoch", "kkk..."],
        ),
        (
            "unknown output format",
            format!("{PACKAGE}[output]\nformats = [\"{long}\"]\n"),
            &["formats", "kkk..."],
        ),
        (
            "bad env key",
            format!("{PACKAGE}[build]\nenv = {{ \"{long}-\" = \"1\" }}\n"),
            &["env", "kkk..."],
        ),
        (
            "missing source",
            format!("{PACKAGE}[source]\npath = \"{}\"\n", "d/".repeat(2_000_000)),
            &["path", "d/d/d/", "..."],
        ),
        (
            "bad deb relation",
            format!("{PACKAGE}[deb]\ndepends = [\"{long} (>> 1)!\"]\n"),
            &["depends", "kkk..."],
        ),
    ];
    for (case, text, needles) in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("recipe.toml");
        fs::write(&file, text).unwrap();
        let e = nsroot::recipe::Recipe::load(&file).expect_err(case);
        let e = anyhow::Error::from(e);
        assert_eq!(
            nsroot::error::exit_code_of(e.as_ref()),
            EXIT_INPUT,
            "{case}"
        );
        let msg = format!("{e:#}");
        let head: String = msg.chars().take(300).collect();
        assert!(
            msg.len() < 1024,
            "{case}: a {}-byte message: {head}",
            msg.len()
        );
        assert!(!msg.contains('\n'), "{case}: not one line: {msg}");
        for n in *needles {
            assert!(msg.contains(n), "{case}: {n:?} not in: {msg}");
        }
        eprintln!("{case}: {} bytes: {msg}", msg.len());
    }
    // The command line too: one line on stderr, under 1 KiB.
    let s = Scratch::new();
    s.write("r/recipe.toml", &format!("{PACKAGE}{long} = 1\n"));
    let o = s.nsroot(["build", "r/recipe.toml"]);
    assert_eq!(o.status.code(), Some(EXIT_INPUT), "{}", stderr(&o));
    assert!(o.stderr.len() < 1024, "{} bytes on stderr", o.stderr.len());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

/// A gzipped tar of `n` empty files named by `name(i)`, all dated 2023-11-14, mode 0644
/// except entry `changed` (0600).
fn many_entries(path: &Path, n: usize, name: impl Fn(usize) -> String, changed: Option<usize>) {
    let file = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_mode(if changed == Some(i) { 0o600 } else { 0o644 });
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name(i), &b""[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// Issue 16: `nsroot diff` of archives with many entries keeps memory to what its report
/// needs. Before, 100,000 empty entries against a one-entry archive took 337 MiB, against a
/// one-mode variant 637 MiB, and 100,000 entries with 3,000-byte names against themselves
/// 6.46 GB: now every case stays under 256 MiB and the reports are whole.
#[test]
fn issue16_diff_of_many_entries_stays_under_256_mib() {
    if cannot_time() {
        return;
    }
    const BOUND_KIB: u64 = 256 * 1024;
    let s = Scratch::new();
    let p = |n: &str| s.path().join(n);
    let short = |i: usize| format!("./f{i:06}");
    // 3,000 bytes: 29 directories of 100 bytes and a file name, distinct per entry.
    let long = |i: usize| {
        let dir = format!("d{i:07}{}", "x".repeat(92));
        let mut path = vec![dir.as_str(); 29].join("/");
        path.push_str(&format!("/f{i:07}"));
        path.truncate(3000);
        path
    };
    many_entries(&p("many.tar.gz"), 100_000, short, None);
    many_entries(&p("one.tar.gz"), 1, short, None);
    many_entries(&p("many1.tar.gz"), 100_000, short, Some(5000));
    many_entries(&p("long.tar.gz"), 100_000, long, None);
    s.chown_all();
    let slow = Duration::from_secs(300);
    for (a, b, status, lines) in [
        // 99,999 entries only in a; one entry's mode.
        ("many.tar.gz", "one.tar.gz", 1, 99_999),
        ("many.tar.gz", "many1.tar.gz", 1, 1),
        ("long.tar.gz", "long.tar.gz", 0, 0),
    ] {
        let (o, kib, _) = run_bounded_for(&s, &["diff", a, b], slow);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(status), "{a} {b}: {}", stderr(&o));
        let count = out.lines().last().unwrap_or_default().to_string();
        let want = match lines {
            0 => String::new(),
            1 => "1 difference".into(),
            n => format!("{n} differences"),
        };
        assert_eq!(count, want, "{a} {b}: report ends {count:?}");
        assert!(
            kib < BOUND_KIB,
            "{a} {b}: peak RSS {kib} KiB, over {BOUND_KIB} KiB"
        );
    }
}
