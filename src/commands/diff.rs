//! `nsroot diff A B`: two archives (tar or .deb) compared entry by entry.

use std::io::Write;
use std::path::Path;

use crate::archive::{diff_archives, ArchiveError};
use crate::cli::DiffArgs;
use crate::error::InputError;

/// `nsroot diff`: 0 when identical, 1 when different; any trouble is exit status 2.
pub fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    let report = diff_archives(&args.a, &args.b).map_err(trouble)?;
    let mut out = super::stdout();
    let werr = |e: std::io::Error| ArchiveError::Write {
        dest: "stdout".into(),
        source: e,
    };
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(|e| werr(e.into()))?;
        writeln!(out).map_err(werr)?;
    } else {
        write!(out, "{report}").map_err(werr)?;
    }
    out.flush().map_err(werr)?;
    drop(out);
    if args.diffoscope && !report.is_empty() {
        run_diffoscope(&args.a, &args.b);
    }
    Ok(if report.is_empty() { 0 } else { 1 })
}

/// As diff(1) and cmp(1), trouble is status 2, whatever it is: an unreadable archive must not
/// read as "different" (status 1).
fn trouble(e: ArchiveError) -> ArchiveError {
    match e {
        ArchiveError::Input { .. } => e,
        other => ArchiveError::Input {
            context: other.to_string(),
            source: InputError::new(crate::error::causes(&other)),
        },
    }
}

/// Runs diffoscope on the two files, its report following ours; says so when it is missing.
fn run_diffoscope(a: &Path, b: &Path) {
    // Looked up here rather than left to exec: a PATH directory this user cannot enter makes
    // exec fail with EACCES, which would read as "cannot run" rather than "not installed".
    let found = crate::fsutil::which("diffoscope");
    let Some(program) = found else {
        eprintln!(
            "nsroot: warning: --diffoscope: diffoscope is not installed (apt-get install \
             diffoscope); the report above is complete without it"
        );
        return;
    };
    match std::process::Command::new(&program).arg(a).arg(b).status() {
        // diffoscope exits 0 when identical and 1 when different.
        Ok(s) if matches!(s.code(), Some(0 | 1)) => {}
        Ok(s) => eprintln!("nsroot: warning: diffoscope failed ({s}); the report above stands"),
        Err(e) => eprintln!("nsroot: warning: cannot run {}: {e}", program.display()),
    }
}
