//! `nsroot build RECIPE`: a recipe built in the sealed sandbox into root-owned outputs.

use std::io::Write;

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
    let result = match build::build(&args.recipe, &opts) {
        Ok(r) => r,
        Err(e) => {
            if let Some(signal) = e.interrupted_by() {
                // Everything is cleaned up: now die by the signal, as the shell expects.
                crate::sys::archive::die_by_signal(signal);
                return Err(BuildError::Interrupted { signal }.into());
            }
            return Err(e.into());
        }
    };
    let mut out = super::stdout();
    for (path, sha) in &result.outputs {
        writeln!(out, "{}  {}", sha, path.display())?;
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
