//! Faults (issue 8): signals at random points of `nsroot build` and `nsroot pack`, a full
//! disk, and steps that fork a thousand children, never read stdin or flood stdout.
//!
//! Every run gets a unique marker (in its recipe or tree path, and in the name of every
//! long-lived process a step starts) and a private `$TMPDIR`, so "nothing of the build is
//! alive" and "no scratch directory is left" are exact, whatever else runs on the machine.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

/// Kills per signal in the random-point loops (recorded in TESTING.md).
pub(crate) const BUILD_KILLS: usize = 50;
pub(crate) const PACK_KILLS: usize = 50;

/// A tiny deterministic generator (Knuth's MMIX LCG): the same seed, the same kill points.
pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// A marker unique to this test process and `tag`: lowercase, so it fits a package name.
pub(crate) fn marker(tag: &str) -> String {
    format!("fxmark{}{tag}", std::process::id())
}

/// Host processes whose command line contains `needle`, as "pid: cmdline".
pub(crate) fn host_processes(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {}", cmd.trim_end()));
            }
        }
    }
    found
}

/// Polls until no host process matches `needle` or `timeout` passes; returns what is left.
pub(crate) fn wait_no_processes(needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = host_processes(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` up to `timeout`; kills it (and fails) if it is still running then.
pub(crate) fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped yet (at worst a zombie).
    unsafe { libc::kill(pid as i32, sig) };
}

pub(crate) fn sha256(path: &Path) -> String {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// Sorted names in `dir` (empty if it does not exist).
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A private, test-user-owned directory to serve as `$TMPDIR` (where builds keep scratch).
pub(crate) fn private_tmpdir(s: &Scratch, name: &str) -> PathBuf {
    let p = s.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    s.chown_all();
    p
}

/// Writes recipe `dir/recipe.toml` for package `pkg` with the given [build]/[install] TOML,
/// a `src/` directory, and `.tar.gz` plus `.deb` output.
pub(crate) fn write_recipe(s: &Scratch, dir: &str, pkg: &str, body: &str) -> PathBuf {
    s.write(&format!("{dir}/src/.keep"), "");
    s.write(
        &format!("{dir}/recipe.toml"),
        &format!(
            "[package]\nname = \"{pkg}\"\nversion = \"1.0\"\nsummary = \"test\"\n\
             source_date_epoch = 1700000000\n\n[source]\npath = \"src\"\n\n{body}\n\
             [output]\nformats = [\"tar.gz\", \"deb\"]\n\n\
             [deb]\nmaintainer = \"t <t@example.org>\"\ndescription = \"t\"\n"
        ),
    )
}

/// `nsroot build RECIPE -o OUT` as the test user, with `$TMPDIR` = `tmp` (the run's private
/// scratch space) and stdin from /dev/null; the caller sets the rest and runs it.
pub(crate) fn build_command(recipe: &Path, out: &Path, tmp: &Path) -> Command {
    let mut c = env().nsroot();
    c.arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null());
    c
}

/// [`build_command`] started in `s`, stdout discarded and stderr to the file `log` (a pipe
/// would keep a killed build's survivors from ever reaching EOF).
fn spawn_build(s: &Scratch, recipe: &Path, out: &Path, tmp: &Path, log: &Path) -> Child {
    let err = File::create(log).unwrap();
    build_command(recipe, out, tmp)
        .current_dir(s.path())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Scratch directories a later build reported as reclaimed.
fn reclaimed(stderr_text: &str) -> Vec<String> {
    stderr_text
        .lines()
        .filter_map(|l| l.strip_prefix("nsroot: reclaimed "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn signame(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        _ => "signal",
    }
}

/// `n` builds of a small recipe, each sent `sig` after a random delay spread over a whole
/// build (set-up, steps, packing); after each: nothing of it alive, the earlier archives
/// intact and alone in the output directory, no scratch left (after SIGKILL: reclaimed by a
/// later build, which says so).
/// The span random signal delays are drawn from, for runs that take `took`: 1.3 times that,
/// so that some signals land after the end too, and at least 50 ms.
fn span_of(took: Duration) -> u64 {
    (took.as_millis() as u64 * 13 / 10).max(50)
}

/// Ends a random-point loop of `n` `runs` sent `sig`: prints the tally, then fails on any
/// problem, and when fewer than a third were interrupted (the loop would have tested
/// little but finished runs).
fn conclude(runs: &str, sig: i32, n: usize, interrupted: usize, problems: &[String]) {
    eprintln!(
        "{}: {n} {runs} signalled, {interrupted} interrupted, {} completed first",
        signame(sig),
        n - interrupted
    );
    assert!(
        problems.is_empty(),
        "{} problems in {n} {runs} sent {}:\n{}",
        problems.len(),
        signame(sig),
        problems.join("\n")
    );
    // Not vacuous: most signals landed while the run was going.
    assert!(
        interrupted * 3 >= n,
        "only {interrupted} of {n} interrupted"
    );
}

fn build_killed_at_random_points(sig: i32, n: usize, seed: u64) {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker(&format!("b{sig}"));
    let pkg = "fxbuild";
    let recipe = write_recipe(
        &s,
        &mark,
        pkg,
        &format!(
            "[build]\nsteps = [\n  \
             'for i in $(seq 100); do echo line $i; done',\n  \
             'ln -s /bin/sleep /tmp/{mark}-sleep && /tmp/{mark}-sleep 0.15',\n]\n\
             [install]\nsteps = ['mkdir -p \"$DESTDIR/usr/share/fx\" && \
             for i in $(seq 300); do seq $i > \"$DESTDIR/usr/share/fx/f$i\"; done && \
             chmod 4755 \"$DESTDIR/usr/share/fx/f1\"']\n"
        ),
    );
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let errlog = s.path().join("stderr.txt");
    let stem = format!("{pkg}_1.0-1_amd64");
    let archives = [format!("{stem}.tar.gz"), format!("{stem}.deb")];
    let expected: BTreeSet<String> = archives
        .iter()
        .cloned()
        .chain([format!("{stem}.build.log"), format!("{stem}.manifest.json")])
        .collect();

    // The earlier archives, and how long a whole build takes: the fastest of three, since the
    // first one of a busy suite can be several times slower than the rest, and a span from it
    // would send most signals after the builds had finished.
    let mut full = Duration::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut c = spawn_build(&s, &recipe, &out, &tmp, &errlog);
        let st = wait_bounded(&mut c, Duration::from_secs(60), "a timing build");
        full = full.min(t0.elapsed());
        assert!(
            st.success(),
            "{}",
            std::fs::read_to_string(&errlog).unwrap()
        );
    }
    let sums: Vec<String> = archives.iter().map(|a| sha256(&out.join(a))).collect();

    let mut rng = Lcg::new(seed);
    let mut span = span_of(full);
    let mut problems = Vec::new();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut interrupted = 0;
    for i in 0..n {
        let delay = Duration::from_millis(rng.below(span));
        let t0 = Instant::now();
        let mut c = spawn_build(&s, &recipe, &out, &tmp, &errlog);
        std::thread::sleep(delay);
        signal(c.id(), sig);
        let st = wait_bounded(&mut c, Duration::from_secs(60), "a signalled build");
        let err = std::fs::read_to_string(&errlog).unwrap_or_default();
        if st.success() {
            // It finished before the signal: builds run faster now than when timed (the
            // suite's load varies), so narrow the span to what this one took at most.
            span = span.min(span_of(t0.elapsed()));
        } else {
            interrupted += 1;
        }
        let what = format!("{} #{i} after {delay:?} ({st:?})", signame(sig));
        for r in reclaimed(&err) {
            if !pending.remove(&r) {
                problems.push(format!("{what}: reclaimed {r}, which no killed build left"));
            }
        }
        let left = wait_no_processes(&mark, Duration::from_secs(10));
        if !left.is_empty() {
            problems.push(format!("{what}: still running: {left:?}"));
        }
        let in_out: BTreeSet<String> = names(&out).into_iter().collect();
        let stray: Vec<_> = in_out.difference(&expected).collect();
        if !stray.is_empty() {
            problems.push(format!("{what}: beside the archives: {stray:?}"));
            for f in stray {
                let _ = std::fs::remove_file(out.join(f));
            }
        }
        for (a, sum) in archives.iter().zip(&sums) {
            let p = out.join(a);
            if !p.exists() || sha256(&p) != *sum {
                problems.push(format!("{what}: {a} missing or changed"));
            }
        }
        for d in names(&tmp) {
            if sig == libc::SIGKILL {
                pending.insert(d);
            } else {
                problems.push(format!("{what}: scratch left: {d}"));
                let _ = Command::new("rm").arg("-rf").arg(tmp.join(&d)).status();
            }
        }
    }
    // A build run to the end reclaims whatever killed builds left, and leaves nothing itself.
    let mut c = spawn_build(&s, &recipe, &out, &tmp, &errlog);
    let st = wait_bounded(&mut c, Duration::from_secs(60), "the last build");
    let err = std::fs::read_to_string(&errlog).unwrap_or_default();
    assert!(st.success(), "{err}");
    for r in reclaimed(&err) {
        pending.remove(&r);
    }
    if !pending.is_empty() {
        problems.push(format!("never reclaimed: {pending:?}"));
    }
    if !names(&tmp).is_empty() {
        problems.push(format!("scratch left after all: {:?}", names(&tmp)));
    }
    conclude("builds", sig, n, interrupted, &problems);
}

#[test]
fn faults_build_sigint_at_random_points_loses_nothing() {
    build_killed_at_random_points(libc::SIGINT, BUILD_KILLS, 0x5eed_0001);
}

#[test]
fn faults_build_sigterm_at_random_points_loses_nothing() {
    build_killed_at_random_points(libc::SIGTERM, BUILD_KILLS, 0x5eed_0002);
}

#[test]
fn faults_build_sigkill_at_random_points_loses_nothing() {
    build_killed_at_random_points(libc::SIGKILL, BUILD_KILLS, 0x5eed_0003);
}

/// A tree of `files` small files and one larger file, with content from the LCG (so the
/// compressors have work), under `s/<name>`.
pub(crate) fn make_tree(s: &Scratch, name: &str, files: usize, big: usize) -> PathBuf {
    let root = s.path().join(name);
    let mut rng = Lcg::new(42);
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| {
                if i % 7 == 0 {
                    rng.below(256) as u8
                } else {
                    b'a' + (i % 23) as u8
                }
            })
            .collect()
    };
    for i in 0..files {
        let d = root.join(format!("d{:02}", i % 40));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i:05}")), bytes(2048 + i % 4096)).unwrap();
    }
    std::fs::write(root.join("big.bin"), bytes(big)).unwrap();
    s.chown_all();
    root
}

/// `n` packs of a largish tree, each sent `sig` after a random delay spread over a whole
/// pack; after each the earlier archive at the output path is intact and nothing lies beside
/// it.
fn pack_killed_at_random_points(sig: i32, n: usize, seed: u64) {
    let s = Scratch::new();
    let mark = marker(&format!("p{sig}"));
    let tree = make_tree(&s, &mark, 1500, 6 << 20);
    let out = s.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    s.chown_all();
    let formats = ["x.tar", "x.tar.zst"];
    let mut sums = Vec::new();
    let mut spans = Vec::new();
    for f in formats {
        let t0 = Instant::now();
        let o = s.nsroot([
            "pack".as_ref(),
            tree.as_os_str(),
            "-o".as_ref(),
            out.join(f).as_os_str(),
        ]);
        assert_ok(&o);
        spans.push(span_of(t0.elapsed()));
        sums.push(sha256(&out.join(f)));
    }
    let expected: Vec<String> = names(&out);
    let mut rng = Lcg::new(seed);
    let mut problems = Vec::new();
    let mut interrupted = 0;
    for i in 0..n {
        let k = i % formats.len();
        let target = out.join(formats[k]);
        let delay = Duration::from_millis(rng.below(spans[k]));
        let t0 = Instant::now();
        let mut c = env()
            .nsroot()
            .arg("pack")
            .arg(&tree)
            .arg("-o")
            .arg(&target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        signal(c.id(), sig);
        let st = wait_bounded(&mut c, Duration::from_secs(60), "a signalled pack");
        if st.success() {
            // Finished before the signal: narrow the span (see build_killed_at_random_points).
            spans[k] = spans[k].min(span_of(t0.elapsed()));
        } else {
            interrupted += 1;
        }
        let what = format!("{} #{i} after {delay:?} ({st:?})", signame(sig));
        let left = host_processes(&mark);
        if !left.is_empty() {
            problems.push(format!("{what}: still running: {left:?}"));
        }
        let now = names(&out);
        if now != expected {
            problems.push(format!("{what}: {now:?}, expected {expected:?}"));
            for f in now.iter().filter(|f| !expected.contains(f)) {
                let _ = std::fs::remove_file(out.join(f));
            }
        }
        if !target.exists() || sha256(&target) != sums[k] {
            problems.push(format!("{what}: {} missing or changed", formats[k]));
        }
    }
    conclude("packs", sig, n, interrupted, &problems);
}

#[test]
fn faults_pack_sigint_at_random_points_keeps_the_earlier_archive() {
    pack_killed_at_random_points(libc::SIGINT, PACK_KILLS, 0x5eed_0011);
}

#[test]
fn faults_pack_sigterm_at_random_points_keeps_the_earlier_archive() {
    pack_killed_at_random_points(libc::SIGTERM, PACK_KILLS, 0x5eed_0012);
}

#[test]
fn faults_pack_sigkill_at_random_points_keeps_the_earlier_archive() {
    pack_killed_at_random_points(libc::SIGKILL, PACK_KILLS, 0x5eed_0013);
}

/// Polls `path` until it contains `needle` (the build log streams each step's output).
pub(crate) fn wait_for_text(path: &Path, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "{} never contained {needle:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn faults_build_sigkill_during_a_step_kills_the_whole_build() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("kstep");
    let recipe = write_recipe(
        &s,
        &mark,
        "fxkstep",
        &format!(
            "[build]\nsteps = ['ln -s /bin/sleep /tmp/{mark}-sleep && echo started && \
             /tmp/{mark}-sleep 60']\n"
        ),
    );
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let mut c = spawn_build(&s, &recipe, &out, &tmp, &s.path().join("err"));
    wait_for_text(
        &out.join("fxkstep_1.0-1_amd64.build.log"),
        "started",
        Duration::from_secs(30),
    );
    signal(c.id(), libc::SIGKILL);
    c.wait().unwrap();
    // The kernel tears the sandbox down (parent-death signal, then pid 1's namespace):
    // nothing may wait for the 60 s step to end.
    let left = wait_no_processes(&mark, Duration::from_secs(5));
    for p in &left {
        let pid = p.split(':').next().unwrap().parse::<u32>().unwrap();
        signal(pid, libc::SIGKILL);
    }
    assert!(left.is_empty(), "alive 5 s after SIGKILL: {left:#?}");
}

/// Runs `script` with `sh -c` inside `nsroot --no-emulate` (a mount namespace where the test
/// user may mount a small tmpfs), in the scratch directory, with `$NSROOT` the binary.
fn in_mount_ns(s: &Scratch, script: &str) -> std::process::Output {
    env()
        .nsroot()
        .args(["--no-emulate", "--", "sh", "-c", script])
        .env("NSR", &env().bin)
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn faults_pack_to_a_full_disk_says_no_space_and_keeps_the_earlier_archive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    make_tree(&s, "big", 50, 3 << 20);
    s.write("small-tree/hello", "hello\n");
    s.write("small/.keep", "");
    let o = in_mount_ns(
        &s,
        "set -e; mount -t tmpfs -o size=1m tmpfs small\n\
         \"$NSR\" pack small-tree -o \"$PWD/small/x.tar\"\n\
         sha256sum small/x.tar\n\
         if \"$NSR\" pack big -o \"$PWD/small/x.tar\"; then echo PACKED; fi\n\
         sha256sum small/x.tar; ls -A small",
    );
    assert_ok(&o);
    let out = stdout(&o);
    let err = stderr(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!out.contains("PACKED"), "{out}");
    assert_eq!(lines.len(), 3, "{out}\n{err}");
    assert_eq!(lines[0], lines[1], "the earlier archive changed");
    assert_eq!(lines[2], "x.tar", "something partial stays: {out}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!("{}/small/x.tar", s.path().display())),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

#[test]
fn faults_build_output_on_a_full_disk_says_no_space_and_leaves_nothing() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "r",
        "fxfull",
        "[install]\nsteps = ['head -c 3000000 /dev/urandom > \"$DESTDIR/big\"']\n",
    );
    let tmp = private_tmpdir(&s, "tmp");
    s.write("small/.keep", "");
    let o = in_mount_ns(
        &s,
        &format!(
            "mount -t tmpfs -o size=1m tmpfs small || exit 99\n\
             TMPDIR={} \"$NSR\" build {} -o \"$PWD/small\"; echo rc=$?; ls -A small",
            tmp.display(),
            recipe.display()
        ),
    );
    let out = stdout(&o);
    let err = stderr(&o);
    assert_eq!(
        out, "rc=1\nfxfull_1.0-1_amd64.build.log\n",
        "only the log may stay\n{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!(
            "{}/small/fxfull_1.0-1_amd64.tar.gz",
            s.path().display()
        )),
        "{err}"
    );
    assert!(names(&tmp).is_empty(), "scratch left: {:?}", names(&tmp));
}

#[test]
fn faults_build_destdir_on_a_full_disk_fails_clearly_and_leaves_nothing() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "r",
        "fxdest",
        "[install]\nsteps = ['dd if=/dev/zero of=\"$DESTDIR/big\" bs=64k count=100']\n",
    );
    s.write("small/.keep", "");
    // The scratch space, DESTDIR's home, on a 1 MiB tmpfs.
    let o = in_mount_ns(
        &s,
        &format!(
            "mount -t tmpfs -o size=1m tmpfs small || exit 99\n\
             TMPDIR=\"$PWD/small\" \"$NSR\" build {} -o \"$PWD/out\"; echo rc=$?; ls -A small",
            recipe.display()
        ),
    );
    let err = stderr(&o);
    assert_eq!(stdout(&o), "rc=1\n", "scratch left on the full disk\n{err}");
    assert!(err.contains("step 1 of [install] steps"), "{err}");
    assert!(
        err.contains("/build/destdir/big") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(names(&s.path().join("out"))
        .iter()
        .all(|n| n.ends_with(".build.log")));
}

#[test]
fn faults_build_step_forking_a_thousand_children_stays_responsive() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let mark = marker("fork");
    let fork = format!(
        "ln -sf /bin/sleep /tmp/{mark}-sleep && i=0 && \
         while [ $i -lt 1000 ]; do /tmp/{mark}-sleep 600 & i=$((i+1)); done"
    );
    // Step 1 leaves a thousand orphans behind; step 2 starts a thousand more and waits.
    let recipe = write_recipe(
        &s,
        &mark,
        "fxfork",
        &format!("[build]\nsteps = ['{fork}; echo first', '{fork}; echo forked; wait']\n"),
    );
    let tmp = private_tmpdir(&s, "tmp");
    let out = s.path().join("out");
    let mut c = spawn_build(&s, &recipe, &out, &tmp, &s.path().join("err"));
    wait_for_text(
        &out.join("fxfork_1.0-1_amd64.build.log"),
        "forked",
        Duration::from_secs(60),
    );
    // "forked" can come before the last children have exec'd the sleep.
    let needle = format!("{mark}-sleep 600");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut running = host_processes(&needle).len();
    while running < 1000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        running = host_processes(&needle).len();
    }
    assert!(
        (1000..1100).contains(&running),
        "{running} children alive: the first step's should be gone, the second's there"
    );
    let t0 = Instant::now();
    signal(c.id(), libc::SIGTERM);
    let st = wait_bounded(
        &mut c,
        Duration::from_secs(20),
        "the build with 1000 children",
    );
    let took = t0.elapsed();
    assert!(!st.success());
    let left = wait_no_processes(&mark, Duration::from_secs(10));
    assert!(
        left.is_empty(),
        "{} left, e.g. {:?}",
        left.len(),
        left.first()
    );
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    assert!(names(&tmp).is_empty(), "scratch left: {:?}", names(&tmp));
    // The steps got the SIGTERM, and so did the build: it cleaned up and died by it.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGTERM),
        "{st:?}: {}",
        std::fs::read_to_string(s.path().join("err")).unwrap()
    );
}

#[test]
fn faults_build_step_reading_stdin_gets_eof_even_from_a_caller_that_never_closes_it() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "r",
        "fxstdin",
        "[build]\nsteps = ['cat > /tmp/in && test ! -s /tmp/in && echo got-eof', \
         'if read -r line; then echo READ; else echo read-eof; fi']\n",
    );
    let out = s.path().join("out");
    let tmp = private_tmpdir(&s, "tmp");
    // Our end of the pipe stays open all along: a step reading the caller's stdin would hang.
    let mut c = build_command(&recipe, &out, &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let st = wait_bounded(
        &mut c,
        Duration::from_secs(60),
        "a build whose steps read stdin",
    );
    drop(c.stdin.take());
    assert!(st.success());
    let log = std::fs::read_to_string(out.join("fxstdin_1.0-1_amd64.build.log")).unwrap();
    assert!(log.contains("got-eof") && log.contains("read-eof"), "{log}");
}

#[test]
fn faults_build_step_writing_200_mb_keeps_nsroot_small_and_its_messages_bounded() {
    if util::no_userns() || util::missing_tool("time") {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(
        &s,
        "r",
        "fxflood",
        "[build]\nsteps = ['head -c 200000000 /dev/zero; exit 3']\n",
    );
    let out = s.path().join("out");
    let tmp = private_tmpdir(&s, "tmp");
    let rss = s.path().join("rss");
    let t0 = Instant::now();
    let o = env()
        .command("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(&env().bin)
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&out)
        .env("TMPDIR", &tmp)
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t0.elapsed();
    let log = out.join("fxflood_1.0-1_amd64.build.log");
    let log_len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&log);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", &err[..err.len().min(2000)]);
    assert!(err.contains("exit code 3"));
    // The failure message carries a bounded tail of the log, not 200 MB.
    assert!(
        o.stderr.len() < 70 * 1024,
        "{} bytes on stderr",
        o.stderr.len()
    );
    // Streamed to the log in full, without passing through nsroot's memory.
    assert!(log_len >= 200_000_000, "log is {log_len} bytes");
    let kb: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(kb < 100 * 1024, "nsroot peaked at {kb} KiB");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(names(&tmp).is_empty());
}

/// A build killed between making its scratch directory and locking the pid file in it leaves
/// a directory with no pid file (seen once in `faults_build_sigkill_at_random_points...`):
/// the next build reclaims it when the creator's pid in its name is gone, and still leaves
/// alone a tree kept with `--keep` and one whose creator lives.
#[test]
fn faults_build_reclaims_a_scratch_dir_killed_before_its_pid_file() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = write_recipe(&s, "r", "fxpidless", "[build]\nsteps = ['true']\n");
    let tmp = private_tmpdir(&s, "tmp");
    // A pid that is surely gone: a child that has exited and been reaped.
    let dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let live_pid = std::process::id();
    for (name, kept) in [
        (format!("nsroot-build-fxpidless-p{dead_pid}-Dead01"), false),
        (format!("nsroot-build-fxpidless-p{dead_pid}-Kept01"), true),
        (format!("nsroot-build-fxpidless-p{live_pid}-Live01"), false),
    ] {
        std::fs::create_dir(tmp.join(&name)).unwrap();
        std::fs::write(tmp.join(&name).join("junk"), "x").unwrap();
        if kept {
            std::fs::write(tmp.join(&name).join("kept"), "").unwrap();
        }
    }
    s.chown_all();
    let out = s.path().join("out");
    let o = build_command(&recipe, &out, &tmp)
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_ok(&o);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        reclaimed(&err),
        [format!("nsroot-build-fxpidless-p{dead_pid}-Dead01")],
        "{err}"
    );
    let left: BTreeSet<String> = names(&tmp).into_iter().collect();
    let want: BTreeSet<String> = [
        format!("nsroot-build-fxpidless-p{dead_pid}-Kept01"),
        format!("nsroot-build-fxpidless-p{live_pid}-Live01"),
    ]
    .into_iter()
    .collect();
    assert_eq!(left, want);
}
