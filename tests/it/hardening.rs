//! Issue 8's standing battery of bad input: recipes, options, state files, archives and
//! adversarial trees. Each case must give a clear one-line error naming the file, key or path
//! (exit 2 for usage and input errors), never a panic, and write nothing; trees that can be
//! archived faithfully must be. Tests for the defects it found stay as regression tests.
//!
//! TESTING.md counts the cases and says how to run them.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use nsroot::error::{exit_code_of, EXIT_INPUT};
use nsroot::recipe::{Recipe, Source};

use crate::util::{self, stderr, stdout, Scratch};

// ---- Shared checks ------------------------------------------------------------------------

/// Every file below `dir` with its size, sorted: equal before and after means nothing written.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (e.path().to_path_buf(), e.metadata().unwrap().len())
        })
        .collect();
    v.sort();
    v
}

/// Asserts that nsroot refused with exit 2 and one `nsroot: ...` line naming every `needle`.
#[track_caller]
fn assert_input_error(case: &str, o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{case}: panic: {err}");
    assert_eq!(o.status.code(), Some(EXIT_INPUT), "{case}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    // clap's own usage errors carry a usage hint after the error line.
    let first = lines.first().copied().unwrap_or("");
    assert!(
        first.starts_with("nsroot: ") || first.starts_with("error: "),
        "{case}: not an error line: {err}"
    );
    if first.starts_with("nsroot: ") {
        assert_eq!(lines.len(), 1, "{case}: not one line: {err}");
    }
    for n in needles {
        assert!(first.contains(n), "{case}: {n:?} not named in: {err}");
    }
}

/// Runs `cmd` under `/usr/bin/time -f %M` and returns its output and peak RSS in KiB.
fn with_peak_rss(s: &Scratch, args: &[&OsStr]) -> (Output, u64) {
    let env = util::env();
    let rss_file = s.path().join(".rss");
    let o = env
        .command("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(&env.bin)
        .args(args)
        .current_dir(s.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let rss = fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = fs::remove_file(&rss_file);
    // time(1) prints "Command exited with non-zero status N" before the figure.
    let kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS figure from /usr/bin/time: {rss:?}"));
    (o, kib)
}

/// The bound on nsroot's peak RSS for any archive or tree in this battery: issue 3's target
/// for `pack` (under 64 MiB), which `list` meets too.
const RSS_BOUND_KIB: u64 = 64 * 1024;

fn cannot_time() -> bool {
    !Path::new("/usr/bin/time").is_file() && util::skip("/usr/bin/time (GNU time) is missing")
}

// ---- Recipes, through the parser in-process -----------------------------------------------

const PACKAGE: &str = "[package]\nname = \"hello\"\nversion = \"1.0\"\nsummary = \"Say hello\"\n";

/// Loads `bytes` as `<tmp>/r/recipe.toml` after `setup(<tmp>)` and returns the one-line
/// message, checking: no panic, an error, exit status 2, one line naming the file, nothing
/// written anywhere under the temporary directory.
#[track_caller]
fn recipe_error(case: &str, bytes: &[u8], setup: impl FnOnce(&Path)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("recipe.toml");
    fs::write(&file, bytes).unwrap();
    setup(tmp.path());
    let before = snapshot(tmp.path());
    let result = std::panic::catch_unwind(|| Recipe::load(&file));
    let result = result.unwrap_or_else(|_| panic!("{case}: Recipe::load panicked"));
    let Err(e) = result else {
        panic!("{case}: the recipe loaded")
    };
    let e = anyhow::Error::from(e);
    let msg = format!("{e:#}");
    assert_eq!(exit_code_of(e.as_ref()), EXIT_INPUT, "{case}: {msg}");
    assert!(!msg.contains('\n'), "{case}: not one line: {msg}");
    assert!(
        msg.contains(&file.display().to_string()),
        "{case}: the file is not named: {msg}"
    );
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "{case}: something was written"
    );
    msg
}

/// Recipes that must be refused, each with the words its message must hold (the key).
fn bad_recipes() -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let pkg = |extra: &str| format!("{PACKAGE}{extra}").into_bytes();
    let field = |key: &str, value: &str| {
        let mut p = PACKAGE.to_string();
        p = p.replace(
            &format!("{key} = \"{}\"", original(key)),
            &format!("{key} = {value}"),
        );
        if !p.contains(&format!("{key} = {value}")) {
            p.push_str(&format!("{key} = {value}\n"));
        }
        p.into_bytes()
    };
    let mut cases: Vec<(&'static str, Vec<u8>, Vec<&'static str>)> = vec![
        ("empty file", vec![], vec!["[package]"]),
        (
            "binary garbage",
            b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe\x00\x80".to_vec(),
            vec!["UTF-8"],
        ),
        (
            "text garbage",
            b"\x01\x02 ]][[ ==== \"unterminated".to_vec(),
            vec![":1"],
        ),
        (
            "deep nesting",
            format!("x = {}", "[".repeat(100_000)).into_bytes(),
            vec![],
        ),
        ("name of the wrong type", field("name", "5"), vec!["name"]),
        (
            "version of the wrong type",
            field("version", "[1, 0]"),
            vec!["version"],
        ),
        (
            "steps of the wrong type",
            pkg("[build]\nsteps = \"make\"\n"),
            vec!["steps"],
        ),
        (
            "formats of the wrong type",
            pkg("[output]\nformats = \"tar\"\n"),
            vec!["formats"],
        ),
        (
            "epoch of the wrong type",
            field("source_date_epoch", "\"yesterday\""),
            vec!["source_date_epoch"],
        ),
        (
            "negative epoch",
            field("source_date_epoch", "-1"),
            vec!["source_date_epoch"],
        ),
        (
            "negative strip_components",
            pkg(&format!(
                "[source]\narchive = \"x.tar\"\nsha256 = \"{}\"\nstrip_components = -1\n",
                "0".repeat(64)
            )),
            vec!["strip_components"],
        ),
        ("unknown top-level key", pkg("colour = 1\n"), vec!["colour"]),
        (
            "unknown key in [package]",
            pkg("maintainer = \"me\"\n"),
            vec!["maintainer", "[package]"],
        ),
        ("unknown table", pkg("[biuld]\nsteps = []\n"), vec!["biuld"]),
        (
            "missing [package]",
            b"[build]\nsteps = [\"make\"]\n".to_vec(),
            vec!["[package]"],
        ),
        (
            "missing summary",
            b"[package]\nname = \"hello\"\nversion = \"1.0\"\n".to_vec(),
            vec!["summary"],
        ),
        ("duplicate key", pkg("name = \"again\"\n"), vec!["name"]),
        (
            "PATH in env",
            pkg("[build]\nenv = { PATH = \"/x\" }\n"),
            vec!["PATH"],
        ),
        (
            "bad env name",
            pkg("[build]\nenv = { \"A B\" = \"x\" }\n"),
            vec!["A B"],
        ),
        (
            "NUL in a step",
            pkg("[build]\nsteps = [\"make\\u0000\"]\n"),
            vec!["steps[0]"],
        ),
        (
            "unknown output format",
            pkg("[output]\nformats = [\"zip\"]\n"),
            vec!["zip"],
        ),
        (
            "malformed sha256",
            pkg("[source]\narchive = \"x.tar\"\nsha256 = \"xyz\"\n"),
            vec!["sha256"],
        ),
        (
            "source path escaping",
            pkg("[source]\npath = \"../../etc\"\n"),
            vec!["path", "../../etc"],
        ),
        (
            "absolute source path",
            pkg("[source]\npath = \"/etc\"\n"),
            vec!["path", "/etc"],
        ),
        (
            "source archive escaping",
            pkg(&format!(
                "[source]\narchive = \"../x.tar\"\nsha256 = \"{}\"\n",
                "0".repeat(64)
            )),
            vec!["archive", "../x.tar"],
        ),
        (
            "missing source dir",
            pkg("[source]\npath = \"src\"\n"),
            vec!["path", "does not exist"],
        ),
        (
            "missing source archive",
            pkg(&format!(
                "[source]\narchive = \"gone.tar.gz\"\nsha256 = \"{}\"\n",
                "0".repeat(64)
            )),
            vec!["archive", "gone.tar.gz", "does not exist"],
        ),
    ];
    // A name, version, release or arch with a slash, "..", a space or a control character.
    for (key, values) in [
        (
            "name",
            &[
                "\"a/b\"",
                "\"..\"",
                "\"a..b/..\"",
                "\"a b\"",
                "\"a\\tb\"",
                "\"a\\u0001b\"",
            ][..],
        ),
        (
            "version",
            &[
                "\"1.0/2\"",
                "\"1..0\"",
                "\"1 0\"",
                "\"1.0\\n\"",
                "\"1\\u007f\"",
            ],
        ),
        ("release", &["\"1/2\"", "\"..\"", "\"1 2\"", "\"1\\u0007\""]),
        ("arch", &["\"amd/64\"", "\"..\"", "\"x y\"", "\"x\\r\""]),
    ] {
        for v in values {
            let label: &'static str = Box::leak(format!("{key} = {v}").into_boxed_str());
            let k: &'static str = Box::leak(format!("[package] {key}").into_boxed_str());
            cases.push((label, field(key, v), vec![k]));
        }
    }
    cases
}

/// The value PACKAGE gives `key`, for `bad_recipes` to replace.
fn original(key: &str) -> &'static str {
    match key {
        "name" => "hello",
        "version" => "1.0",
        "summary" => "Say hello",
        _ => "\u{0}",
    }
}

#[test]
fn bad_recipes_are_refused_with_one_line_naming_file_and_key() {
    let cases = bad_recipes();
    for (case, bytes, needles) in &cases {
        let msg = recipe_error(case, bytes, |_| {});
        for n in needles {
            assert!(msg.contains(n), "{case}: {n:?} not named in: {msg}");
        }
    }
    eprintln!("{} bad recipes refused", cases.len());
}

#[test]
fn recipe_source_symlinked_outside_is_refused() {
    let text = format!("{PACKAGE}[source]\npath = \"src\"\n");
    let msg = recipe_error("symlinked source dir", text.as_bytes(), |tmp| {
        fs::create_dir(tmp.join("outside")).unwrap();
        symlink("../outside", tmp.join("r/src")).unwrap();
    });
    assert!(
        msg.contains("path") && msg.contains("outside the recipe's directory"),
        "{msg}"
    );
    // A symlinked archive too.
    let text = format!(
        "{PACKAGE}[source]\narchive = \"x.tar\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    let msg = recipe_error("symlinked source archive", text.as_bytes(), |tmp| {
        fs::write(tmp.join("x.tar"), b"").unwrap();
        symlink("../x.tar", tmp.join("r/x.tar")).unwrap();
    });
    assert!(msg.contains("outside the recipe's directory"), "{msg}");
}

#[test]
fn recipe_sha256_mismatch_extracts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    fs::create_dir(&dir).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("pkg/a").unwrap();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"a\n"[..]).unwrap();
    fs::write(dir.join("x.tar"), b.into_inner().unwrap()).unwrap();
    let claimed = "ab".repeat(32);
    fs::write(
        dir.join("recipe.toml"),
        format!("{PACKAGE}[source]\narchive = \"x.tar\"\nsha256 = \"{claimed}\"\n"),
    )
    .unwrap();
    let r = Recipe::load(&dir.join("recipe.toml")).unwrap();
    assert!(matches!(r.source, Source::Archive { .. }));
    let scratch = tmp.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    let e = anyhow::Error::from(r.source.materialize(&scratch).unwrap_err());
    let msg = format!("{e:#}");
    assert_eq!(exit_code_of(e.as_ref()), EXIT_INPUT, "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains("x.tar") && msg.contains("sha256 mismatch") && msg.contains(&claimed),
        "{msg}"
    );
    assert_eq!(
        fs::read_dir(&scratch).unwrap().count(),
        0,
        "extracted although the sha256 differs"
    );
}

// ---- The command line ---------------------------------------------------------------------

/// A scratch dir with `tree/a` and a valid (empty) state file `st`, owned by the test user.
fn cli_scratch() -> Scratch {
    let s = Scratch::new();
    s.write("tree/a", "a\n");
    s.write(
        "st",
        "nsroot ownership state\nversion 1\n# dev ino btime uid gid mode rdev [xattr...]\nend 0\n",
    );
    s
}

/// Runs nsroot in `s` and checks the refusal: exit 2, one line naming `needles`, nothing
/// written into the scratch directory.
#[track_caller]
fn refused(s: &Scratch, args: &[&str], needles: &[&str]) {
    let before = snapshot(s.path());
    let o = s.nsroot(args);
    assert_input_error(&format!("{args:?}"), &o, needles);
    assert_eq!(
        snapshot(s.path()),
        before,
        "{args:?}: something was written"
    );
}

#[test]
fn conflicting_and_impossible_options_are_refused() {
    let s = cli_scratch();
    let cases: &[(&[&str], &[&str])] = &[
        (&["pack", "tree", "-o", "x.zip"], &["x.zip", "extension"]),
        (
            &["pack", "tree", "--format", "zip", "-o", "x.tar"],
            &["zip"],
        ),
        (&["pack", "tree", "-o", "nodir/x.tar"], &["nodir"]),
        (
            &["pack", "tree", "-o", "tree", "--format", "tar"],
            &["tree"],
        ),
        (&["pack", "tree/a", "-o", "x.tar"], &["tree/a"]),
        (&["pack", "missing", "-o", "x.tar"], &["missing"]),
        (
            &["pack", "tree", "-o", "x.tar.gz", "--level", "50"],
            &["--level 50"],
        ),
        (
            &["pack", "tree", "-o", "x.tar", "--mtime", "yesterday"],
            &["--mtime"],
        ),
        (
            &[
                "pack",
                "tree",
                "-o",
                "x.tar",
                "--owner",
                "no-such-user-here",
            ],
            &["--owner", "no-such-user-here"],
        ),
        (&["pack", "tree", "-o", "x.tar", "--bogus"], &["--bogus"]),
        (&["list", "missing.tar"], &["missing.tar"]),
        (&["--net", "bogus", "true"], &["bogus"]),
    ];
    for (args, needles) in cases {
        refused(&s, args, needles);
    }
    if util::no_userns() {
        return;
    }
    // Run mode: these must be refused before the command runs (it would create `ran`).
    let run_cases: &[(&[&str], &[&str])] = &[
        (&["--no-emulate", "-s", "new-st", "touch", "ran"], &["-s"]),
        (&["--no-emulate", "-i", "st", "touch", "ran"], &["-i"]),
        (&["-l", "libfakeroot.so", "touch", "ran"], &["-l"]),
        (&["--faked", "faked", "touch", "ran"], &["--faked"]),
    ];
    for (args, needles) in run_cases {
        refused(&s, args, needles);
    }
    eprintln!("{} option cases refused", cases.len() + run_cases.len());
}

#[test]
fn pack_output_over_its_own_state_file_is_refused() {
    // `-o st` with `-i st` would replace the recorded ownership with the archive.
    let s = cli_scratch();
    refused(
        &s,
        &["pack", "tree", "-i", "st", "-o", "st", "--format", "tar"],
        &["st"],
    );
}

#[test]
fn list_of_a_directory_is_an_input_error() {
    let s = cli_scratch();
    refused(&s, &["list", "tree"], &["tree"]);
}

#[test]
fn save_file_that_cannot_be_written_is_refused_before_running() {
    if util::no_userns() {
        return;
    }
    // Found only after the command ran, the recorded ownership of a whole build would be lost.
    let s = cli_scratch();
    refused(&s, &["-s", "nodir/st", "touch", "ran"], &["nodir/st"]);
    refused(&s, &["-s", "tree", "touch", "ran"], &["tree"]);
}

// ---- State files, for `nsroot -i` and `nsroot pack -i` ------------------------------------

/// Bad state files: (case, contents, words the message must hold). The file is named too.
fn bad_state_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = "nsroot ownership state\nversion 1\n# dev ino btime uid gid mode rdev [xattr...]\n\
                2049 11 - 0 5 - - -\n2049 12 1.5 6 6 20644 1,3 -\nend 2\n";
    vec![
        (
            "corrupt record",
            good.replace(" 0 5 ", " 0 x ").into_bytes(),
            "bad gid",
        ),
        (
            "corrupt count",
            good.replace("end 2", "end 9").into_bytes(),
            "says 9 records",
        ),
        (
            "corrupt xattr",
            good.replace("1,3 -", "1,3 zz:00").into_bytes(),
            "bad xattr",
        ),
        (
            "truncated mid-record",
            good.as_bytes()[..good.len() - 12].to_vec(),
            "truncated",
        ),
        (
            "truncated before end",
            good.replace("end 2\n", "").into_bytes(),
            "truncated",
        ),
        ("empty", vec![], "empty"),
        (
            "future version",
            good.replace("version 1", "version 7").into_bytes(),
            "newer nsroot",
        ),
        (
            "fakeroot save file",
            b"dev=801,ino=12,mode=100644,uid=0,gid=0,nlink=1,rdev=0\n".to_vec(),
            "fakeroot",
        ),
        (
            "binary",
            b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe".to_vec(),
            "not an nsroot state file",
        ),
        (
            "a tar archive",
            {
                let mut v = b"./\0".to_vec();
                v.resize(1024, 0);
                v
            },
            "not an nsroot state file",
        ),
    ]
}

#[test]
fn bad_state_files_are_refused_by_pack() {
    let s = cli_scratch();
    let cases = bad_state_files();
    for (case, bytes, why) in &cases {
        fs::write(s.path().join("bad-st"), bytes).unwrap();
        s.chown_all();
        let o = s.nsroot(["pack", "tree", "-i", "bad-st", "-o", "out.tar"]);
        assert_input_error(case, &o, &["bad-st", why]);
        assert!(!s.path().join("out.tar").exists(), "{case}: output written");
    }
    refused(
        &s,
        &["pack", "tree", "-i", "missing-st", "-o", "out.tar"],
        &["missing-st", "does not exist"],
    );
    eprintln!("{} bad state files refused by pack", cases.len() + 1);
}

#[test]
fn bad_state_files_are_refused_before_running() {
    if util::no_userns() {
        return;
    }
    let s = cli_scratch();
    let cases = bad_state_files();
    for (case, bytes, why) in &cases {
        fs::write(s.path().join("bad-st"), bytes).unwrap();
        s.chown_all();
        let o = s.nsroot(["-i", "bad-st", "touch", "ran"]);
        assert_input_error(case, &o, &["bad-st", why]);
        assert!(!s.path().join("ran").exists(), "{case}: the command ran");
    }
    refused(
        &s,
        &["-i", "missing-st", "touch", "ran"],
        &["missing-st", "does not exist"],
    );
    eprintln!("{} bad state files refused by run", cases.len() + 1);
}

#[test]
fn state_file_that_is_a_directory_is_an_input_error() {
    let s = cli_scratch();
    refused(
        &s,
        &["pack", "tree", "-i", "tree", "-o", "out.tar"],
        &["tree"],
    );
    if util::no_userns() {
        return;
    }
    refused(&s, &["-i", "tree", "touch", "ran"], &["tree"]);
}

// ---- Archives given to `nsroot list` ------------------------------------------------------

/// A ustar header block: `name`, type `kind`, a raw 12-byte size field.
fn header(name: &[u8], kind: u8, size_field: [u8; 12]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(&size_field);
    h[136..148].copy_from_slice(b"14500000000\0");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn octal_size(n: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    f[..11].copy_from_slice(format!("{n:011o}").as_bytes());
    f
}

/// A member: header then data padded to 512 bytes.
fn member(name: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
    let mut v = header(name, kind, octal_size(data.len() as u64)).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// A valid small archive: three files, then the end-of-archive blocks.
fn small_tar() -> Vec<u8> {
    let mut v = Vec::new();
    for (i, data) in [&b"hello\n"[..], &[7u8; 3000], &[]].iter().enumerate() {
        v.extend(member(format!("./f{i}").as_bytes(), b'0', data));
    }
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Flips a byte in the middle of `v`.
fn corrupt(mut v: Vec<u8>) -> Vec<u8> {
    let mid = v.len() / 2;
    v[mid] ^= 0x55;
    v[mid + 1] ^= 0xaa;
    v
}

/// Writes `bytes` as `name` in `s`, lists it, checks the refusal naming the archive.
#[track_caller]
fn list_refused(s: &Scratch, name: &str, bytes: &[u8]) {
    fs::write(s.path().join(name), bytes).unwrap();
    s.chown_all();
    let o = s.nsroot(["list", name]);
    assert_input_error(name, &o, &[name]);
}

#[test]
fn broken_archives_are_refused_by_list() {
    let s = Scratch::new();
    let tar = small_tar();
    // Sanity: the intact archive lists in every format.
    for (name, bytes) in [
        ("ok.tar", tar.clone()),
        ("ok.tar.gz", gzip(&tar)),
        ("ok.tar.zst", zstd(&tar)),
        ("ok.tar.xz", xz(&tar)),
    ] {
        fs::write(s.path().join(name), bytes).unwrap();
        s.chown_all();
        let o = s.nsroot(["list", name]);
        util::assert_ok(&o);
        assert_eq!(stdout(&o).lines().count(), 3, "{name}: {}", stdout(&o));
    }
    let mut bad_sum = tar.clone();
    bad_sum[0] = b'X';
    let mut bad_octal = tar.clone();
    bad_octal[124..136].copy_from_slice(b"99999999999\0");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("mid-data.tar", tar[..512 + 3].to_vec()),
        ("mid-header.tar", tar[..300].to_vec()),
        ("second-member.tar", tar[..1024 + 100].to_vec()),
        ("checksum.tar", bad_sum),
        ("bad-octal.tar", bad_octal),
        ("text.tar", b"not a tar archive at all ".repeat(40)),
        ("cut.tar.gz", gzip(&tar)[..40].to_vec()),
        ("cut.tar.zst", zstd(&tar)[..30].to_vec()),
        ("cut.tar.xz", xz(&tar)[..60].to_vec()),
        ("header-only.tar.gz", vec![0x1f, 0x8b]),
        ("header-only.tar.zst", vec![0x28, 0xb5, 0x2f, 0xfd]),
        ("header-only.tar.xz", b"\xfd7zXZ\0".to_vec()),
        ("flipped.tar.gz", corrupt(gzip(&tar))),
        ("flipped.tar.zst", corrupt(zstd(&tar))),
        ("flipped.tar.xz", corrupt(xz(&tar))),
    ];
    for (name, bytes) in &cases {
        list_refused(&s, name, bytes);
    }
    eprintln!("{} broken archives refused", cases.len());
}

#[test]
fn compressed_stream_checksum_is_verified() {
    // The tar end blocks come before the compressor's trailer: `list` must still read on to
    // it, or a gzip CRC mismatch goes unnoticed.
    let s = Scratch::new();
    let mut g = gzip(&small_tar());
    let n = g.len();
    g[n - 8] ^= 0xff;
    list_refused(&s, "bad-crc.tar.gz", &g);
}

#[test]
fn garbage_archive_is_refused_in_one_line() {
    // tar-rs quotes the header's bytes in its error; newlines in them must not reach the user
    // raw.
    let s = Scratch::new();
    list_refused(
        &s,
        "text.tar",
        &b"this is not a tar archive at all\n".repeat(40),
    );
}

#[test]
fn unsafe_names_are_listed_not_followed() {
    let s = Scratch::new();
    let mut tar = Vec::new();
    for name in [
        &b"../../etc/passwd"[..],
        b"/etc/shadow",
        b"./a/../../b",
        b"-rf",
        b"new\nline",
    ] {
        tar.extend(member(name, b'0', b"x"));
    }
    let mut link = header(b"./escape", b'2', octal_size(0));
    link[157..157 + 13].copy_from_slice(b"/../../../etc");
    link[148..156].copy_from_slice(b"        ");
    let sum: u32 = link.iter().map(|&b| u32::from(b)).sum();
    link[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&link);
    tar.extend_from_slice(&[0u8; 1024]);
    fs::write(s.path().join("unsafe.tar"), &tar).unwrap();
    s.chown_all();
    let before = snapshot(s.path());
    let o = s.nsroot(["list", "unsafe.tar"]);
    util::assert_ok(&o);
    let out = stdout(&o);
    for shown in [
        " ../../etc/passwd\n",
        " /etc/shadow\n",
        " ./a/../../b\n",
        " -rf\n",
        " new\\012line\n",
        " ./escape -> /../../../etc\n",
    ] {
        assert!(out.contains(shown), "{shown:?} missing:\n{out}");
    }
    assert_eq!(snapshot(s.path()), before, "list wrote something");
}

#[test]
fn huge_header_sizes_are_refused() {
    let s = Scratch::new();
    let mut base256 = [0xffu8; 12];
    base256[0] = 0x80;
    let mut cases = Vec::new();
    for (name, field) in [
        ("octal-8g.tar", octal_size(0o77777777777)),
        ("base256-max.tar", base256),
    ] {
        for kind in [b'0', b'x', b'L'] {
            let mut v = header(b"./big", kind, field).to_vec();
            v.extend_from_slice(&[b'a'; 4096]);
            cases.push((format!("{}-{}", kind as char, name), v));
        }
    }
    for (name, bytes) in &cases {
        list_refused(&s, name, bytes);
    }
    eprintln!("{} huge sizes refused", cases.len());
}

/// Writes a zstd-compressed archive whose first member has type `kind`, a header claiming
/// `claimed` bytes and `actual` bytes of real data, then the stream ends.
fn bomb(path: &Path, kind: u8, claimed: u64, actual: usize) {
    let f = fs::File::create(path).unwrap();
    let mut e = zstd::Encoder::new(f, 1).unwrap();
    e.write_all(&header(b"./PaxHeaders/bomb", kind, octal_size(claimed)))
        .unwrap();
    let chunk = vec![b'9'; 1 << 20];
    let mut left = actual;
    while left > 0 {
        let n = left.min(chunk.len());
        e.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    e.finish().unwrap();
}

/// Lists `name` under /usr/bin/time and checks: a clear input error, bounded peak RSS.
#[track_caller]
fn bomb_refused(s: &Scratch, name: &str) {
    s.chown_all();
    let (o, kib) = with_peak_rss(s, &[OsStr::new("list"), OsStr::new(name)]);
    assert_input_error(name, &o, &[name]);
    assert!(
        kib < RSS_BOUND_KIB,
        "{name}: peak RSS {kib} KiB, bound {RSS_BOUND_KIB} KiB"
    );
}

#[test]
fn extended_header_bombs_are_refused_in_bounded_memory() {
    if cannot_time() {
        return;
    }
    let s = Scratch::new();
    // A PAX header, a GNU long name and a PAX global header each claiming 8 GiB and holding
    // 256 MiB of data (a few KiB compressed), then nothing.
    for (name, kind) in [
        ("pax.tar.zst", b'x'),
        ("longname.tar.zst", b'L'),
        ("global.tar.zst", b'g'),
    ] {
        bomb(&s.path().join(name), kind, 0o77777777777, 256 << 20);
        bomb_refused(&s, name);
    }
}

#[test]
fn thousands_of_pax_records_list_in_bounded_memory() {
    if cannot_time() {
        return;
    }
    let s = Scratch::new();
    let mut records = Vec::new();
    for i in 0..100_000u32 {
        let body = format!(" SCHILY.xattr.user.k{i:06}=v\n");
        // LEN counts itself: the body is 27 bytes, so LEN has two digits.
        records.extend_from_slice(format!("{}{body}", body.len() + 2).as_bytes());
    }
    let mut tar = member(b"./PaxHeaders/f", b'x', &records);
    tar.extend(member(b"./f", b'0', b"data\n"));
    tar.extend_from_slice(&[0u8; 1024]);
    fs::write(s.path().join("records.tar.gz"), gzip(&tar)).unwrap();
    s.chown_all();
    let (o, kib) = with_peak_rss(&s, &[OsStr::new("list"), OsStr::new("records.tar.gz")]);
    // A 3 MiB extended header may be listed, or refused by a limit on extended headers.
    if o.status.success() {
        assert!(stdout(&o).ends_with(" ./f\n"), "{}", stdout(&o));
    } else {
        assert_input_error("records.tar.gz", &o, &["records.tar.gz"]);
    }
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB");
}

// ---- Adversarial trees for `nsroot pack` --------------------------------------------------

/// Packs `tree` in `s` to `out` as the test user and returns the listing (`nsroot list`).
#[track_caller]
fn pack_and_list(s: &Scratch, out: &str) -> String {
    let o = s.nsroot(["pack", "tree", "-o", out]);
    util::assert_ok(&o);
    assert!(!stderr(&o).contains("panicked"));
    let o = s.nsroot(["list", out]);
    util::assert_ok(&o);
    stdout(&o)
}

#[test]
fn symlink_loops_and_links_to_root_and_home_are_stored_not_followed() {
    let s = Scratch::new();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let tree = s.path().join("tree");
    fs::create_dir_all(tree.join("d")).unwrap();
    for (link, target) in [
        ("a", "b"),
        ("b", "a"),
        ("self", "self"),
        ("d/up", ".."),
        ("d/here", "."),
        ("root", "/"),
        ("home", home.as_str()),
        ("proc-root", "/proc/self/root"),
    ] {
        symlink(target, tree.join(link)).unwrap();
    }
    s.chown_all();
    let listing = pack_and_list(&s, "links.tar");
    // Exactly the entries made: nothing behind a link was archived.
    assert_eq!(listing.lines().count(), 10, "{listing}");
    for shown in [
        " ./a -> b\n",
        " ./b -> a\n",
        " ./self -> self\n",
        " ./d/up -> ..\n",
        " ./d/here -> .\n",
        " ./root -> /\n",
        &format!(" ./home -> {home}\n"),
        " ./proc-root -> /proc/self/root\n",
    ] {
        assert!(listing.contains(shown), "{shown:?} missing:\n{listing}");
    }
}

#[test]
fn names_with_newlines_tabs_and_leading_dashes_round_trip() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    let tree = s.path().join("tree");
    let names: [&[u8]; 7] = [
        b"new\nline",
        b"tab\there",
        b"-rf",
        b"--help",
        b"-",
        b" lead space",
        b"bad\xffutf8",
    ];
    fs::create_dir(&tree).unwrap();
    for n in names {
        fs::write(tree.join(OsStr::from_bytes(n)), n).unwrap();
    }
    fs::create_dir(tree.join("-dir\n")).unwrap();
    s.chown_all();
    let listing = pack_and_list(&s, "names.tar");
    for shown in [
        " ./new\\012line\n",
        " ./tab\\011here\n",
        " ./-rf\n",
        " ./--help\n",
        " ./-\n",
        " ./ lead space\n",
        " ./bad\\377utf8\n",
        " ./-dir\\012/\n",
    ] {
        assert!(listing.contains(shown), "{shown:?} missing:\n{listing}");
    }
    // GNU tar gives back exactly these names and contents.
    let o = s.sh("mkdir back && tar -xf names.tar -C back");
    util::assert_ok(&o);
    for n in names {
        let p = s.path().join("back").join(OsStr::from_bytes(n));
        assert_eq!(fs::read(&p).unwrap(), n, "{}", p.display());
    }
    assert!(s.path().join("back/-dir\n").is_dir());
}

#[test]
fn unreadable_file_is_named_and_no_output_is_left() {
    if util::env().uid == 0 {
        util::skip("running as root without a test user: every file is readable");
        return;
    }
    let s = Scratch::new();
    s.write("tree/ok", "ok\n");
    s.write("tree/sub/secret", "secret\n");
    fs::set_permissions(
        s.path().join("tree/sub/secret"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    for out in ["out.tar", "out.tar.gz", "out.tar.zst", "out.tar.xz"] {
        let o = s.nsroot(["pack", "tree", "-o", out]);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        assert!(!o.status.success(), "{out}: packed an unreadable file");
        assert!(o.status.code().is_some(), "{out}: killed by a signal");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("tree/sub/secret") && err.contains("Permission denied"),
            "{err}"
        );
        let left: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "tree")
            .collect();
        assert!(left.is_empty(), "{out}: left behind {left:?}");
    }
}

/// Makes a chain of `depth` directories named `d` below `top` without ever using a path
/// longer than one component (the full path is far beyond PATH_MAX).
fn deep_chain(top: &Path, depth: usize) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = c"d";
    let mut dir = OwnedFd::from(fs::File::open(top).unwrap());
    for _ in 0..depth {
        // SAFETY: plain syscalls on an fd this function owns and a NUL-terminated name.
        let fd = unsafe {
            assert_eq!(libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755), 0);
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
        // SAFETY: fd was just returned by openat and nothing else owns it.
        dir = unsafe { OwnedFd::from_raw_fd(fd) };
    }
}

/// Packed faithfully, as GNU tar packs it: below some 2,000 levels the path exceeds PATH_MAX,
/// and the walk goes on from a descriptor of a directory on the way (`/proc/<pid>/fd/<n>`),
/// a few of them open at any time. Memory stays bounded (one path of the innermost directory,
/// not one per level). Until 2026-12-02 this was refused with a one-line error.
#[test]
fn ten_thousand_deep_directories_are_packed_faithfully_in_bounded_memory() {
    if util::missing_tool("/usr/bin/time") || util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    let tree = s.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let _cleanup = RmRf(tree.clone());
    fs::write(tree.join("top"), "top\n").unwrap();
    deep_chain(&tree, 10_000);
    // World-readable as made; the test user needs no ownership to read it.
    let (o, kib) = with_peak_rss(
        &s,
        &[
            OsStr::new("pack"),
            OsStr::new("tree"),
            OsStr::new("-o"),
            OsStr::new("deep.tar.zst"),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{}", &err[..err.len().min(400)]);
    assert!(err.is_empty(), "{}", &err[..err.len().min(400)]);
    assert!(kib < 64 * 1024, "peak RSS {kib} KiB");
    // GNU tar reads every entry back: DIR, the file, and 10,000 directories, the deepest
    // with a 20,000-byte name.
    let listing = s.sh("tar --zstd -tf deep.tar.zst");
    assert_eq!(listing.status.code(), Some(0), "{}", stderr(&listing));
    let names: Vec<String> = stdout(&listing).lines().map(String::from).collect();
    assert_eq!(
        names.len(),
        10_002,
        "{}",
        &names[..3.min(names.len())].join("\n")
    );
    assert_eq!(names[0], "./");
    let deepest = format!("./{}", "d/".repeat(10_000));
    assert!(names.contains(&deepest), "no {}-byte name", deepest.len());
    assert_eq!(names.last().map(String::as_str), Some("./top"));
    // In byte order of the path, each directory before its contents.
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // nsroot lists it too.
    let ours = s.nsroot(["list", "deep.tar.zst"]);
    assert_eq!(ours.status.code(), Some(0), "{}", stderr(&ours));
    assert_eq!(stdout(&ours).lines().count(), 10_002);
    eprintln!("10,000-deep chain: packed, peak RSS {kib} KiB");
}

/// Past the depth where the walk goes on from a descriptor (`/proc/<pid>/fd/<n>`), a pack run
/// inside a session still sees the session's records: the supervisor resolves those paths in
/// the packer's own /proc (`self` would name the supervisor).
#[test]
fn a_deep_tree_packed_inside_a_session_keeps_its_records() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // 1,500 levels: 3,000 bytes, past the 2,048 where the walk anchors, short of PATH_MAX, so
    // the shell can still chown there by path.
    let script = r#"d=$(printf 'd/%.0s' $(seq 1500)) && mkdir -p "tree/$d" &&
        echo hi > "tree/${d}f" && chown 33:44 "tree/${d}f" && mknod "tree/${d}null" c 1 3 &&
        "$0" pack tree -o t.tar && "$0" list --numeric-owner t.tar"#;
    let o = s.nsroot([
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(script),
        util::env().bin.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let deep = format!("./{}", "d/".repeat(1500));
    let line = |name: &str| {
        out.lines()
            .find(|l| l.ends_with(&format!(" {deep}{name}")))
            .unwrap_or_else(|| panic!("no {name} at depth 1,500"))
            .to_string()
    };
    assert!(
        line("f").starts_with("-rw-r--r-- 33/44 "),
        "{}",
        &line("f")[..40]
    );
    assert!(
        line("null").starts_with("crw-r--r-- 0/0 "),
        "{}",
        &line("null")[..40]
    );
    assert!(line("null").contains(" 1,3 "), "{}", &line("null")[..60]);
}

/// Removes a tree with `rm -rf` on drop, before `Scratch` does: GNU rm copes with any depth,
/// where a recursive removal on a test thread's small stack might not.
struct RmRf(PathBuf);

impl Drop for RmRf {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rm")
            .arg("-rf")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn two_hundred_thousand_entries_pack_in_bounded_memory() {
    if cannot_time() {
        return;
    }
    let s = Scratch::new();
    // On tmpfs when there is one: creating 200,000 files in one ext4 directory took over a
    // minute on the shared CI machine, against 2 s on tmpfs.
    let shm = Path::new("/dev/shm");
    let holder = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("nsroot-wide-")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new()
            .prefix("wide-")
            .tempdir_in(s.path())
    }
    .unwrap();
    fs::set_permissions(holder.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tree = holder.path().join("tree");
    let wide = tree.join("wide");
    fs::create_dir_all(&wide).unwrap();
    for i in 0..200_000u32 {
        fs::File::create(wide.join(format!("entry-{i:06}"))).unwrap();
    }
    // Made world-readable by the umask; only the output needs the test user's ownership.
    let (o, kib) = with_peak_rss(
        &s,
        &[
            OsStr::new("pack"),
            tree.as_os_str(),
            OsStr::new("-o"),
            OsStr::new("wide.tar.zst"),
        ],
    );
    util::assert_ok(&o);
    assert!(kib < RSS_BOUND_KIB, "pack: peak RSS {kib} KiB");
    let (l, list_kib) = with_peak_rss(&s, &[OsStr::new("list"), OsStr::new("wide.tar.zst")]);
    util::assert_ok(&l);
    let out = stdout(&l);
    assert_eq!(out.lines().count(), 200_002);
    assert!(out.contains(" ./wide/entry-199999\n"));
    assert!(list_kib < RSS_BOUND_KIB, "list: peak RSS {list_kib} KiB");
    eprintln!("200,000 entries: pack peak RSS {kib} KiB, list {list_kib} KiB");
}
