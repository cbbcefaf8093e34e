//! `nsroot repro RECIPE`: a recipe built several times under varied conditions, compared.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cli::ReproArgs;
use crate::error::InputError;
use crate::fsutil::EntryOrder;
use crate::recipe::Recipe;
use crate::repro::{repro, ReproError, ReproReport, EXIT_NOT_REPRODUCIBLE, EXIT_NO_COMPARISON};

/// `nsroot repro`: 0 when reproducible, [`EXIT_NOT_REPRODUCIBLE`] when not, and
/// [`EXIT_NO_COMPARISON`] (after printing why) when a build fails or an output cannot be read.
///
/// Errors: input errors only (exit 2): a recipe that does not load, a source a build rejects
/// (sha256 mismatch), an `-o` directory that is not empty.
pub fn run(args: &ReproArgs) -> anyhow::Result<i32> {
    let recipe = Recipe::load(&args.recipe)?;
    let base = match &args.output_dir {
        Some(d) => Work::Kept(output_dir(d)?),
        None => Work::Temp(tempfile::Builder::new().prefix("nsroot-repro-").tempdir()?),
    };
    let report = match repro(&recipe, args.runs as usize, base.path()) {
        Ok(r) => r,
        Err(ReproError::Input(e)) => return Err(e.into()),
        Err(e) => {
            // Keep the runs, so the log the message points to is still there.
            let kept = match base {
                Work::Temp(t) => format!("\n(the runs are kept in {})", t.keep().display()),
                Work::Kept(_) => String::new(),
            };
            eprintln!("nsroot: {}{kept}", crate::error::chain(&e));
            return Ok(EXIT_NO_COMPARISON);
        }
    };
    if let Some(why) = &report.clocks_refused {
        eprintln!("nsroot: warning: the clocks could not be shifted: {why}");
    }
    let mut out = super::stdout();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&report, &mut out)?;
    }
    out.flush()?;
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

fn print_report(r: &ReproReport, out: &mut impl Write) -> io::Result<()> {
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
        writeln!(
            out,
            "run {}: {} (built in {}, umask {:03o}, -j {}, {clocks}, entries copied {order}, \
             env {})",
            i + 1,
            v.recipe_dir.display(),
            v.build_dir.display(),
            v.umask,
            v.jobs,
            env.join(" ")
        )?;
    }
    if r.reproducible {
        writeln!(out, "REPRODUCIBLE")?;
        for (name, sha) in &r.outputs {
            writeln!(out, "{sha}  {name}")?;
        }
    } else {
        writeln!(out, "NOT REPRODUCIBLE")?;
        for (name, run) in &r.missing_outputs {
            writeln!(out, "{name}: made by run 1, missing from run {run}")?;
        }
        for (name, run) in &r.extra_outputs {
            writeln!(out, "{name}: made by run {run}, not by run 1")?;
        }
        for (name, run, report) in &r.differences {
            writeln!(out, "{name}: run 1 and run {run} differ:")?;
            write!(out, "{report}")?;
        }
    }
    writeln!(out, "not varied: {}", r.not_varied.join("; "))?;
    Ok(())
}
