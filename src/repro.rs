//! `nsroot repro`: build a recipe several times under varied conditions and compare.
//!
//! Each run is a separate `nsroot build` process on a copy of the recipe directory (mtimes
//! kept) in a different place, with a different caller environment, user name variables,
//! umask, job count and time of day. What nsroot cannot vary is said in the report: the
//! wall clock inside the sandbox (Linux time namespaces do not shift CLOCK_REALTIME) and the
//! order in which a directory lists its entries (that needs a FUSE layer such as disorderfs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::archive::{diff_archives, DiffReport};
use crate::cli::ReproArgs;
use crate::error::InputError;
use crate::recipe::Recipe;

/// What differs between runs.
#[derive(Debug, Clone, Serialize)]
pub struct Variation {
    /// Where the recipe directory was copied to.
    pub recipe_dir: PathBuf,
    /// Caller environment variables set (the sandbox must not pass them in).
    pub env: Vec<(String, String)>,
    /// The caller's umask.
    pub umask: u32,
    /// `-j` given to the build.
    pub jobs: usize,
}

/// The comparison of all runs.
#[derive(Debug, Serialize)]
pub struct ReproReport {
    /// True when every run gave the same bytes for every output.
    pub reproducible: bool,
    /// Each output file name with the sha256 of run 1.
    pub outputs: Vec<(String, String)>,
    /// What each run varied.
    pub runs: Vec<Variation>,
    /// For each output that differs: run number (2..) and the entry-by-entry report.
    pub differences: Vec<(String, usize, DiffReport)>,
    /// Conditions nsroot did not vary.
    pub not_varied: Vec<String>,
}

/// `nsroot repro`: exit 0 when reproducible, 1 when not.
pub fn run_repro(args: &ReproArgs) -> anyhow::Result<i32> {
    let recipe = Recipe::load(&args.recipe)?;
    let base = match &args.output_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| anyhow::anyhow!("create {}: {e}", d.display()))?;
            Work::Kept(d.clone())
        }
        None => Work::Temp(tempfile::Builder::new().prefix("nsroot-repro-").tempdir()?),
    };
    let report = repro(&recipe, args.runs as usize, base.path())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.reproducible { 0 } else { 1 })
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
/// Errors: a build that fails (its message, with the step and log), or an unreadable output.
pub fn repro(recipe: &Recipe, runs: usize, work: &Path) -> anyhow::Result<ReproReport> {
    let exe = std::env::current_exe()?;
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
    let mut last_start: Option<Instant> = None;
    for i in 0..runs {
        // Place, environment, umask and jobs differ from run to run.
        let place = if i % 2 == 0 {
            work.join(format!("run{}", i + 1)).join(&dir_name)
        } else {
            work.join(format!("run{}", i + 1))
                .join("a/much/deeper/place")
                .join(&dir_name)
        };
        crate::fsutil::copy_tree(&recipe.recipe_dir, &place)
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
        let umask = if i % 2 == 0 { 0o022 } else { 0o077 };
        let jobs = if i % 2 == 0 { 1 } else { cpus.max(2) };
        let out = work.join(format!("out{}", i + 1));
        // At least a second apart, so anything that embeds the time shows it.
        if let Some(t) = last_start {
            let since = t.elapsed();
            if since < Duration::from_millis(1100) {
                std::thread::sleep(Duration::from_millis(1100) - since);
            }
        }
        last_start = Some(Instant::now());
        let mut cmd = Command::new(&exe);
        cmd.arg("build")
            .arg(place.join(&rel_recipe))
            .arg("-o")
            .arg(&out)
            .arg("-j")
            .arg(jobs.to_string())
            .current_dir(&place)
            .envs(env.iter().map(|(k, v)| (k, v)));
        crate::sys::set_umask_in_child(&mut cmd, umask);
        let o = cmd.output()?;
        if !o.status.success() {
            return Err(anyhow::anyhow!(
                "run {} of {}: the build failed: {}",
                i + 1,
                runs,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        variations.push(Variation {
            recipe_dir: place,
            env,
            umask,
            jobs,
        });
        outs.push(out);
    }

    let stem = recipe.output_stem();
    let mut names: Vec<String> = std::fs::read_dir(&outs[0])?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(&stem) && !n.ends_with(".build.log") && !n.ends_with(".manifest.json")
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(InputError::new(format!(
            "{}: the recipe produced no output",
            recipe.file.display()
        ))
        .into());
    }
    let mut outputs = Vec::new();
    let mut differences = Vec::new();
    for name in &names {
        let first = outs[0].join(name);
        outputs.push((name.clone(), sha256(&first)?));
        for (i, out) in outs.iter().enumerate().skip(1) {
            let other = out.join(name);
            if sha256(&other)? != outputs.last().map(|o| o.1.clone()).unwrap_or_default() {
                differences.push((name.clone(), i + 1, diff_archives(&first, &other)?));
            }
        }
    }
    Ok(ReproReport {
        reproducible: differences.is_empty(),
        outputs,
        runs: variations,
        differences,
        not_varied: vec![
            "the wall clock inside the sandbox (runs are only a second or more apart)".into(),
            "directory listing order".into(),
            "the user: every build runs as root of its own user namespace".into(),
        ],
    })
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    crate::fsutil::sha256_file(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))
}

fn print_report(r: &ReproReport) {
    for (i, v) in r.runs.iter().enumerate() {
        let env: Vec<String> = v.env.iter().map(|(k, val)| format!("{k}={val}")).collect();
        println!(
            "run {}: {} (umask {:03o}, -j {}, env {})",
            i + 1,
            v.recipe_dir.display(),
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
        for (name, run, report) in &r.differences {
            println!("{name}: run 1 and run {run} differ:");
            print!("{report}");
        }
    }
    println!("not varied: {}", r.not_varied.join("; "));
}
