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

use crate::archive::{diff_archives, ArchiveError, DiffReport};
use crate::build::Manifest;
use crate::error::{InputError, EXIT_INPUT};
use crate::fsutil::EntryOrder;
use crate::recipe::Recipe;
use crate::sandbox::plan::BUILD_SRC;

/// Errors of `nsroot repro`.
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// A build rejected its input (the build exited 2), or the recipe made no output.
    #[error("{0}")]
    Input(#[source] InputError),
    /// A build failed: run `run` of `runs`, with what the build said.
    #[error("run {run} of {runs}: the build failed: {message}")]
    BuildFailed {
        run: usize,
        runs: usize,
        message: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
    /// Two outputs could not be compared.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ReproError + 'a {
    crate::error::io_at(action, path)
}

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
    /// Why the kernel refused to shift the builds' clocks, when it did.
    pub clocks_refused: Option<String>,
}

/// `nsroot repro` exits with this when the runs differ.
pub const EXIT_NOT_REPRODUCIBLE: i32 = 1;
/// `nsroot repro` exits with this when there is nothing to compare: a build failed (other than
/// on bad input, which is [`EXIT_INPUT`]) or an output could not be read.
pub const EXIT_NO_COMPARISON: i32 = 3;

/// Runs `runs` builds of `recipe` under `work` and compares their outputs.
///
/// Errors: a build that fails, as "run N of M: the build failed: " and the build's own
/// message ([`ReproError::Input`] when the build exited 2, for bad input); an unreadable
/// output.
pub fn repro(recipe: &Recipe, runs: usize, work: &Path) -> Result<ReproReport, ReproError> {
    let exe = std::env::current_exe().map_err(io("locate", Path::new("/proc/self/exe")))?;
    // Each build runs in its own directory: every path it is given must be absolute.
    let work = &std::path::absolute(work).map_err(io("resolve", work))?;
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
            .map_err(io("copy the recipe directory to", &place))?;
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
            .arg(format!("--repro-clock-offset={clock_offset}"))
            .arg("--repro-src-dir")
            .arg(&build_dir)
            .current_dir(&place)
            .envs(env.iter().map(|(k, v)| (k, v)));
        crate::sys::set_umask_in_child(&mut cmd, umask);
        let o = cmd.output().map_err(io("run", &exe))?;
        last_end = Some(Instant::now());
        if !o.status.success() {
            let message = build_error(&o);
            // The build exits 2 for bad input (a recipe or source it rejects): so does repro.
            return Err(if o.status.code() == Some(EXIT_INPUT) {
                ReproError::Input(InputError::new(format!(
                    "run {} of {runs}: the build failed: {message}",
                    i + 1
                )))
            } else {
                ReproError::BuildFailed {
                    run: i + 1,
                    runs,
                    message,
                }
            });
        }
        // What the build could not vary, it says in its manifest.
        let manifest = Manifest::read(&out.join(format!("{}.manifest.json", recipe.output_stem())))
            .map_err(|e| {
                io("read the manifest of", &out)(std::io::Error::other(crate::error::chain(&e)))
            })?;
        if let Some(why) = &manifest.clocks_refused {
            clocks_refused.get_or_insert_with(|| why.clone());
        }
        variations.push(Variation {
            recipe_dir: place,
            build_dir,
            env,
            umask,
            jobs,
            clock_offset_secs: manifest.clock_offset_secs,
            entry_order,
        });
        outs.push(out);
    }

    let c = compare_outputs(&recipe.output_stem(), &outs)?;
    if c.outputs.is_empty() && c.extra_outputs.is_empty() {
        return Err(ReproError::Input(InputError::new(format!(
            "{}: the recipe produced no output",
            recipe.file.display()
        ))));
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
        not_varied: not_varied(work, clocks_refused.clone()),
        clocks_refused,
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
fn output_names(dir: &Path, stem: &str) -> Result<BTreeSet<String>, ReproError> {
    let entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
    let mut names = BTreeSet::new();
    for e in entries {
        let e = e.map_err(io("read", dir))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(stem) && !n.ends_with(".build.log") && !n.ends_with(".manifest.json") {
            names.insert(n);
        }
    }
    Ok(names)
}

/// Compares the outputs in each of `outs` (one directory a run) with run 1's: the set of
/// outputs, then the bytes of each, with a `diff` report for those that differ.
fn compare_outputs(stem: &str, outs: &[PathBuf]) -> Result<Comparison, ReproError> {
    let sets = outs
        .iter()
        .map(|d| output_names(d, stem))
        .collect::<Result<Vec<_>, _>>()?;
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

fn sha256(path: &Path) -> Result<String, ReproError> {
    crate::fsutil::sha256_file(path).map_err(io("read", path))
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
