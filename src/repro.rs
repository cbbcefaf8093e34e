//! `nsroot repro`: build a recipe several times under varied conditions and compare.
//!
//! Each run is a separate `nsroot build` process on a copy of the recipe directory (mtimes
//! kept) in a different place, building at a different path inside the sandbox (`/build/src`,
//! then `/build/run2/src`...: `nsroot build` always uses `/build/src`, so its own builds never
//! depend on the path, but a recipe that embeds it would not reproduce elsewhere), with a
//! different caller environment, user name variables,
//! umask, job count and time of day, its monotonic and boot-time clocks shifted by a
//! different offset (a time namespace, Linux 5.6), and the recipe directory's entries created
//! in a different order (ascending, then descending), which is the order an unsorted
//! `readdir` shows them in where the runs live on a filesystem that lists entries in creation
//! order (tmpfs). What nsroot cannot vary is said in the report: the wall clock inside the
//! sandbox (time namespaces do not shift CLOCK_REALTIME), the listing order where the
//! filesystem imposes its own (ext4's hash order; varying that needs a FUSE layer such as
//! disorderfs), and the clocks where the kernel refuses a time namespace.
//!
//! Exit statuses: 0 REPRODUCIBLE, 1 NOT REPRODUCIBLE, 2 bad input (the recipe does not parse,
//! its source's sha256 does not match, `-o` names a directory in use), 3 nothing to compare:
//! a build failed (the message names the run and gives the build's own error) or an output
//! could not be read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::archive::{diff_archives, DiffReport};
use crate::build::{BUILD_DIR_VAR, CLOCK_OFFSET_VAR};
use crate::cli::ReproArgs;
use crate::error::{exit_code_of, InputError, EXIT_INPUT};
use crate::fsutil::EntryOrder;
use crate::recipe::Recipe;
use crate::sandbox::plan::BUILD_SRC;
use crate::sandbox::CLOCKS_NOT_SHIFTED;

/// What differs between runs.
#[derive(Debug, Clone, Serialize)]
pub struct Variation {
    /// Where the recipe directory was copied to.
    pub recipe_dir: PathBuf,
    /// Where the sources were built, inside the sandbox.
    pub build_dir: PathBuf,
    /// Caller environment variables set (the sandbox must not pass them in).
    pub env: Vec<(String, String)>,
    /// The caller's umask.
    pub umask: u32,
    /// `-j` given to the build.
    pub jobs: usize,
    /// How far the build's CLOCK_MONOTONIC and CLOCK_BOOTTIME were shifted, in seconds; None
    /// when the kernel refused the time namespace.
    pub clock_offset_secs: Option<i64>,
    /// The order the recipe directory's entries were created in, in the copy.
    pub entry_order: EntryOrder,
}

/// The comparison of all runs.
#[derive(Debug, Serialize)]
pub struct ReproReport {
    /// True when every run made the same outputs, with the same bytes.
    pub reproducible: bool,
    /// Each output file name of run 1 with its sha256.
    pub outputs: Vec<(String, String)>,
    /// What each run varied.
    pub runs: Vec<Variation>,
    /// For each output that differs: run number (2..) and the entry-by-entry report.
    pub differences: Vec<(String, usize, DiffReport)>,
    /// Outputs run 1 made and a later run (its number) did not.
    pub missing_outputs: Vec<(String, usize)>,
    /// Outputs a later run (its number) made and run 1 did not.
    pub extra_outputs: Vec<(String, usize)>,
    /// Conditions nsroot did not vary.
    pub not_varied: Vec<String>,
}

/// `nsroot repro` exits with this when the runs differ.
pub const EXIT_NOT_REPRODUCIBLE: i32 = 1;
/// `nsroot repro` exits with this when there is nothing to compare: a build failed (other than
/// on bad input, which is [`EXIT_INPUT`]) or an output could not be read.
pub const EXIT_NO_COMPARISON: i32 = 3;

/// `nsroot repro`: 0 when reproducible, [`EXIT_NOT_REPRODUCIBLE`] when not, and
/// [`EXIT_NO_COMPARISON`] (after printing why) when a build fails or an output cannot be read.
///
/// Errors: input errors only (exit 2): a recipe that does not load, a source a build rejects
/// (sha256 mismatch), an `-o` directory that is not empty.
pub fn run_repro(args: &ReproArgs) -> anyhow::Result<i32> {
    let recipe = Recipe::load(&args.recipe)?;
    let base = match &args.output_dir {
        Some(d) => Work::Kept(output_dir(d)?),
        None => Work::Temp(tempfile::Builder::new().prefix("nsroot-repro-").tempdir()?),
    };
    let report = match repro(&recipe, args.runs as usize, base.path()) {
        Ok(r) => r,
        Err(e) if exit_code_of(&e) == EXIT_INPUT => return Err(e),
        Err(e) => {
            // Keep the runs, so the log the message points to is still there.
            let kept = match base {
                Work::Temp(t) => format!("\n(the runs are kept in {})", t.keep().display()),
                Work::Kept(_) => String::new(),
            };
            eprintln!("nsroot: {e:#}{kept}");
            return Ok(EXIT_NO_COMPARISON);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.reproducible {
        0
    } else {
        EXIT_NOT_REPRODUCIBLE
    })
}

/// The `-o` directory, absolute (the builds run elsewhere): created when missing, used when
/// empty, refused (an input error) when it holds anything, so no run mixes with older ones.
fn output_dir(d: &Path) -> anyhow::Result<PathBuf> {
    let bad = |why: String| InputError::new(format!("-o {}: {why}", d.display()));
    let abs = std::path::absolute(d).map_err(|e| bad(e.to_string()))?;
    match std::fs::read_dir(&abs) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(bad(
                    "the directory is not empty; give a new or empty directory for the runs".into(),
                )
                .into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&abs).map_err(|e| bad(format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(bad(e.to_string()).into()),
    }
    Ok(abs)
}

enum Work {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl Work {
    fn path(&self) -> &Path {
        match self {
            Work::Kept(p) => p,
            Work::Temp(t) => t.path(),
        }
    }
}

/// Runs `runs` builds of `recipe` under `work` and compares their outputs.
///
/// Errors: a build that fails, as "run N of M: the build failed: " and the build's own
/// message (an [`InputError`] when the build exited 2, for bad input); an unreadable output.
pub fn repro(recipe: &Recipe, runs: usize, work: &Path) -> anyhow::Result<ReproReport> {
    let exe = std::env::current_exe()?;
    // Each build runs in its own directory: every path it is given must be absolute.
    let work = &std::path::absolute(work)?;
    let rel_recipe = recipe
        .path
        .strip_prefix(&recipe.recipe_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from("recipe.toml"));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let dir_name = recipe
        .recipe_dir
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "recipe".into());
    let mut variations = Vec::new();
    let mut outs = Vec::new();
    let mut last_end: Option<Instant> = None;
    let mut clocks_refused: Option<String> = None;
    for i in 0..runs {
        // Place, build path, entry order, environment, umask, jobs and clocks differ from run
        // to run.
        let place = if i % 2 == 0 {
            work.join(format!("run{}", i + 1)).join(&dir_name)
        } else {
            work.join(format!("run{}", i + 1))
                .join("a/much/deeper/place")
                .join(&dir_name)
        };
        // Where the filesystem lists entries in creation order, this is the order an
        // unsorted readdir shows in the build (the copy is the overlay's lower layer).
        let entry_order = if i % 2 == 0 {
            EntryOrder::Ascending
        } else {
            EntryOrder::Descending
        };
        crate::fsutil::copy_tree_in_order(&recipe.recipe_dir, &place, entry_order)
            .map_err(|e| anyhow::anyhow!("copy the recipe directory: {e}"))?;
        let env: Vec<(String, String)> = if i % 2 == 0 {
            vec![
                ("TZ".into(), "UTC".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ]
        } else {
            vec![
                ("TZ".into(), "Pacific/Kiritimati".into()),
                ("LANG".into(), "fr_FR.UTF-8".into()),
                ("LC_ALL".into(), "fr_FR.UTF-8".into()),
                ("USER".into(), format!("repro-user-{i}")),
                ("LOGNAME".into(), format!("repro-user-{i}")),
                ("SOURCE_DATE_EPOCH".into(), "1".into()),
                ("NSROOT_REPRO_NOISE".into(), "x".repeat(i * 7 + 1)),
            ]
        };
        let build_dir = if i == 0 {
            PathBuf::from(BUILD_SRC)
        } else {
            PathBuf::from(format!("/build/run{}/src", i + 1))
        };
        let umask = if i % 2 == 0 { 0o022 } else { 0o077 };
        let jobs = if i % 2 == 0 { 1 } else { cpus.max(2) };
        let clock_offset = clock_offset(i);
        let out = work.join(format!("out{}", i + 1));
        // At least a second after the previous run ended (not started: a loaded machine may
        // take longer to reach a step in one run than in the next), so anything that embeds
        // the time shows it.
        if let Some(t) = last_end {
            let since = t.elapsed();
            if since < Duration::from_millis(1100) {
                std::thread::sleep(Duration::from_millis(1100) - since);
            }
        }
        let mut cmd = Command::new(&exe);
        cmd.arg("build")
            .arg(place.join(&rel_recipe))
            .arg("-o")
            .arg(&out)
            .arg("-j")
            .arg(jobs.to_string())
            .current_dir(&place)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(CLOCK_OFFSET_VAR, clock_offset.to_string())
            .env(BUILD_DIR_VAR, &build_dir);
        crate::sys::set_umask_in_child(&mut cmd, umask);
        let o = cmd.output().map_err(|e| {
            anyhow::anyhow!(
                "run {} of {runs}: cannot start {}: {e}",
                i + 1,
                exe.display()
            )
        })?;
        last_end = Some(Instant::now());
        if !o.status.success() {
            let msg = format!(
                "run {} of {runs}: the build failed: {}",
                i + 1,
                build_error(&o)
            );
            // The build exits 2 for bad input (a recipe or source it rejects): so does repro.
            return Err(if o.status.code() == Some(EXIT_INPUT) {
                InputError::new(msg).into()
            } else {
                anyhow::anyhow!(msg)
            });
        }
        let refused = String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.contains(CLOCKS_NOT_SHIFTED))
            .map(|l| l.trim_start_matches("nsroot: warning: ").to_string());
        if let Some(why) = &refused {
            if clocks_refused.is_none() {
                eprintln!("nsroot: warning: {why}");
                clocks_refused = Some(why.clone());
            }
        }
        variations.push(Variation {
            recipe_dir: place,
            build_dir,
            env,
            umask,
            jobs,
            clock_offset_secs: refused.is_none().then_some(clock_offset),
            entry_order,
        });
        outs.push(out);
    }

    let c = compare_outputs(&recipe.output_stem(), &outs)?;
    if c.outputs.is_empty() && c.extra_outputs.is_empty() {
        return Err(InputError::new(format!(
            "{}: the recipe produced no output",
            recipe.file.display()
        ))
        .into());
    }
    Ok(ReproReport {
        reproducible: c.differences.is_empty()
            && c.missing_outputs.is_empty()
            && c.extra_outputs.is_empty(),
        outputs: c.outputs,
        runs: variations,
        differences: c.differences,
        missing_outputs: c.missing_outputs,
        extra_outputs: c.extra_outputs,
        not_varied: not_varied(work, clocks_refused),
    })
}

/// Run `i` (from 0) shifts the build's monotonic and boot-time clocks by `i + 1` times 3
/// days, 1 hour, 1 minute and 1 second: every unit of an uptime differs from run to run.
fn clock_offset(i: usize) -> i64 {
    (i as i64 + 1) * (3 * 86_400 + 3_600 + 60 + 1)
}

/// What the runs could not vary, and why.
fn not_varied(work: &Path, clocks_refused: Option<String>) -> Vec<String> {
    let mut v = vec![
        "the wall clock inside the sandbox (a time namespace cannot shift CLOCK_REALTIME; the \
         runs are a second or more apart)"
            .to_string(),
    ];
    if let Some(why) = clocks_refused {
        v.push(format!("the monotonic and boot-time clocks: {why}"));
    }
    match listing_follows_creation(work) {
        Ok(true) => {}
        Ok(false) => v.push(format!(
            "directory listing order: {} is on {}, which lists a directory's entries in an \
             order of its own (ext4: hash order), whatever order they were created in; put the \
             runs on a tmpfs (-o or TMPDIR) to vary it",
            work.display(),
            fs_name(work)
        )),
        Err(e) => v.push(format!(
            "directory listing order: cannot tell whether {} lists entries in creation order: {e}",
            work.display()
        )),
    }
    v.push("the user: every build runs as root of its own user namespace".into());
    v
}

/// Whether directories under `dir` list their entries in an order that follows the order
/// they were created in (tmpfs, btrfs), so that copying in another order changes what
/// `readdir` shows: two probe directories get the same names, created in opposite orders.
fn listing_follows_creation(dir: &Path) -> std::io::Result<bool> {
    let probe = tempfile::Builder::new()
        .prefix(".listing-order-")
        .tempdir_in(dir)?;
    let names = ["a", "b", "c", "d"];
    let mut listings = Vec::new();
    for (sub, reversed) in [("up", false), ("down", true)] {
        let d = probe.path().join(sub);
        std::fs::create_dir(&d)?;
        let mut order = names.to_vec();
        if reversed {
            order.reverse();
        }
        for n in order {
            std::fs::File::create(d.join(n))?;
        }
        let listed = std::fs::read_dir(&d)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()?;
        listings.push(listed);
    }
    Ok(listings[0] != listings[1])
}

/// A name for the type of the filesystem holding `path`, for messages.
fn fs_name(path: &Path) -> String {
    match crate::sys::fs_type(path) {
        Ok(0xEF53) => "ext2/ext3/ext4".into(),
        Ok(0x0102_1994) => "tmpfs".into(),
        Ok(0x5846_5342) => "xfs".into(),
        Ok(0x9123_683E) => "btrfs".into(),
        Ok(0x794C_7630) => "overlayfs".into(),
        Ok(0x6969) => "nfs".into(),
        Ok(m) => format!("a filesystem of type {m:#x}"),
        Err(e) => format!("an unknown filesystem ({e})"),
    }
}

/// What the build said on stderr, without its own `nsroot: ` prefixes (the caller adds
/// one), or its exit status when it said nothing.
fn build_error(o: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = text
        .trim()
        .lines()
        .map(|l| l.strip_prefix("nsroot: ").unwrap_or(l))
        .collect();
    if lines.is_empty() {
        format!("it ended with {} and printed nothing", o.status)
    } else {
        lines.join("\n")
    }
}

/// The outputs of every run compared with run 1's.
#[derive(Debug, Default)]
struct Comparison {
    outputs: Vec<(String, String)>,
    differences: Vec<(String, usize, DiffReport)>,
    missing_outputs: Vec<(String, usize)>,
    extra_outputs: Vec<(String, usize)>,
}

/// The archives (names starting with `stem`, not the log or manifest) in `dir`, sorted.
fn output_names(dir: &Path, stem: &str) -> anyhow::Result<BTreeSet<String>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("read {}: {e}", dir.display()))?;
    let mut names = BTreeSet::new();
    for e in entries {
        let e = e.map_err(|e| anyhow::anyhow!("read {}: {e}", dir.display()))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(stem) && !n.ends_with(".build.log") && !n.ends_with(".manifest.json") {
            names.insert(n);
        }
    }
    Ok(names)
}

/// Compares the outputs in each of `outs` (one directory a run) with run 1's: the set of
/// outputs, then the bytes of each, with a `diff` report for those that differ.
fn compare_outputs(stem: &str, outs: &[PathBuf]) -> anyhow::Result<Comparison> {
    let sets = outs
        .iter()
        .map(|d| output_names(d, stem))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = Comparison::default();
    let Some(first) = sets.first() else {
        return Ok(c);
    };
    for name in first {
        let a = outs[0].join(name);
        let sha = sha256(&a)?;
        for (i, set) in sets.iter().enumerate().skip(1) {
            if !set.contains(name) {
                c.missing_outputs.push((name.clone(), i + 1));
                continue;
            }
            let b = outs[i].join(name);
            if sha256(&b)? != sha {
                c.differences
                    .push((name.clone(), i + 1, diff_archives(&a, &b)?));
            }
        }
        c.outputs.push((name.clone(), sha));
    }
    for (i, set) in sets.iter().enumerate().skip(1) {
        for name in set.difference(first) {
            c.extra_outputs.push((name.clone(), i + 1));
        }
    }
    Ok(c)
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    crate::fsutil::sha256_file(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))
}

fn print_report(r: &ReproReport) {
    for (i, v) in r.runs.iter().enumerate() {
        let env: Vec<String> = v.env.iter().map(|(k, val)| format!("{k}={val}")).collect();
        let clocks = match v.clock_offset_secs {
            Some(s) => format!("clocks {s:+} s"),
            None => "clocks not shifted".into(),
        };
        let order = match v.entry_order {
            EntryOrder::AsListed => "as listed",
            EntryOrder::Ascending => "ascending",
            EntryOrder::Descending => "descending",
        };
        println!(
            "run {}: {} (built in {}, umask {:03o}, -j {}, {clocks}, entries copied {order}, \
             env {})",
            i + 1,
            v.recipe_dir.display(),
            v.build_dir.display(),
            v.umask,
            v.jobs,
            env.join(" ")
        );
    }
    if r.reproducible {
        println!("REPRODUCIBLE");
        for (name, sha) in &r.outputs {
            println!("{sha}  {name}");
        }
    } else {
        println!("NOT REPRODUCIBLE");
        for (name, run) in &r.missing_outputs {
            println!("{name}: made by run 1, missing from run {run}");
        }
        for (name, run) in &r.extra_outputs {
            println!("{name}: made by run {run}, not by run 1");
        }
        for (name, run, report) in &r.differences {
            println!("{name}: run 1 and run {run} differ:");
            print!("{report}");
        }
    }
    println!("not varied: {}", r.not_varied.join("; "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sets_are_compared_across_runs() {
        let t = tempfile::tempdir().unwrap();
        let outs: Vec<PathBuf> = (1..=3).map(|i| t.path().join(format!("out{i}"))).collect();
        for (dir, names) in outs.iter().zip([
            &["p_1.tar.gz", "p_1.deb", "p_1.build.log"][..],
            &["p_1.tar.gz", "p_1.manifest.json"][..],
            &["p_1.tar.gz", "p_1.deb", "p_1.tar.xz", "other"][..],
        ]) {
            std::fs::create_dir(dir).unwrap();
            for n in names {
                std::fs::write(dir.join(n), "same bytes").unwrap();
            }
        }
        let c = compare_outputs("p_1", &outs).unwrap();
        let names: Vec<&str> = c.outputs.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(names, ["p_1.deb", "p_1.tar.gz"]);
        assert_eq!(c.missing_outputs, [("p_1.deb".to_string(), 2)]);
        assert_eq!(c.extra_outputs, [("p_1.tar.xz".to_string(), 3)]);
        assert!(c.differences.is_empty());
    }

    #[test]
    fn build_errors_lose_their_prefix() {
        let o = std::process::Command::new("sh")
            .args(["-c", "echo 'nsroot: source x: sha256 mismatch' >&2; exit 2"])
            .output()
            .unwrap();
        assert_eq!(build_error(&o), "source x: sha256 mismatch");
        let o = std::process::Command::new("sh")
            .args(["-c", "exit 4"])
            .output()
            .unwrap();
        assert!(
            build_error(&o).contains("printed nothing"),
            "{}",
            build_error(&o)
        );
    }
}
