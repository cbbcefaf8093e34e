//! `nsroot build RECIPE`: a recipe built in the sealed sandbox into root-owned outputs.

use std::io::Write;
use std::path::Path;

use crate::build::{self, BuildError, BuildOptions};
use crate::cli::BuildArgs;
use crate::package::OutputFormat;
use crate::sandbox::plan::BUILD_SRC;

/// `nsroot build`: prints each output's sha256 and path; returns the process exit status.
pub fn run(args: &BuildArgs) -> anyhow::Result<i32> {
    let mut formats: Vec<OutputFormat> = Vec::new();
    for f in args.format.iter().copied() {
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    let opts = BuildOptions {
        output_dir: args.output_dir.clone(),
        formats: (!formats.is_empty()).then_some(formats),
        keep: args.keep,
        shell_on_failure: args.shell_on_failure,
        host_network: args.net,
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        tmpfs_size: args.tmpfs_size,
        verbose: args.verbose,
        clock_offset_secs: args.repro_clock_offset,
        src_dir: match &args.repro_src_dir {
            Some(dir) => build::src_dir(dir)?,
            None => BUILD_SRC.into(),
        },
    };
    let started = std::time::Instant::now();
    let result = match build::build(&args.recipe, &opts) {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                print_failure(args, &e, started)?;
            }
            if let Some(signal) = e.interrupted_by() {
                // Everything is cleaned up: now die by the signal, as the shell expects.
                crate::sys::archive::die_by_signal(signal);
                return Err(BuildError::Interrupted { signal }.into());
            }
            return Err(e.into());
        }
    };
    let mut out = super::stdout();
    if args.json {
        let record = Success {
            manifest: &result.record,
            exit_status: 0,
            log: &result.log,
            manifest_file: &result.manifest,
            kept: result.kept.as_deref(),
        };
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
    } else {
        for (path, sha) in &result.outputs {
            writeln!(out, "{}  {}", sha, path.display())?;
        }
    }
    out.flush()?;
    eprintln!(
        "nsroot: log {}, manifest {}",
        result.log.display(),
        result.manifest.display()
    );
    if let Some(dir) = &result.kept {
        eprintln!("nsroot: work tree kept at {}", dir.display());
    }
    Ok(0)
}

/// `--json` after a successful build: the manifest and where the files are.
#[derive(serde::Serialize)]
struct Success<'a> {
    #[serde(flatten)]
    manifest: &'a build::Manifest,
    exit_status: i32,
    log: &'a Path,
    manifest_file: &'a Path,
    kept: Option<&'a Path>,
}

/// `--json` after a failed build: what is known of it, so that a collector has a record of
/// every build. Nothing is written to the output directory for it.
#[derive(serde::Serialize)]
struct Failure<'a> {
    recipe: String,
    /// sha256 of the recipe file, when it can be read.
    recipe_sha256: Option<String>,
    nsroot_version: &'static str,
    kernel: String,
    /// [`BuildError::kind`].
    exit_reason: &'static str,
    /// The status nsroot exits with (128+N when a signal N stopped the build).
    exit_status: i32,
    /// The whole message, as nsroot prints it on stderr.
    error: String,
    log: Option<&'a str>,
    outputs: [(); 0],
    durations: Durations,
}

#[derive(serde::Serialize)]
struct Durations {
    total_secs: f64,
}

fn print_failure(
    args: &BuildArgs,
    e: &BuildError,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let record = Failure {
        recipe: args.recipe.display().to_string(),
        recipe_sha256: crate::fsutil::sha256_file(&args.recipe).ok(),
        nsroot_version: env!("CARGO_PKG_VERSION"),
        kernel: crate::sys::kernel_release(),
        exit_reason: e.kind(),
        exit_status: match e.interrupted_by() {
            Some(signal) => 128 + signal,
            None => crate::error::exit_code_of(e),
        },
        error: crate::error::chain(e),
        log: e.log(),
        outputs: [],
        durations: Durations {
            total_secs: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        },
    };
    let mut out = super::stdout();
    serde_json::to_writer_pretty(&mut out, &record)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
