//! `nsroot doctor`: one line per kernel or host feature nsroot uses: works, degraded (and what
//! nsroot falls back to) or broken, with the fix.

use std::io::Write;

use crate::cli::DoctorArgs;
use crate::doctor::{self, Status};

/// One check as `--json` prints it.
#[derive(serde::Serialize)]
struct JsonCheck<'a> {
    #[serde(flatten)]
    check: &'a doctor::Check,
    /// Not broken: it works, or nsroot falls back.
    ok: bool,
}

/// Runs every check and prints the report; returns 0 when no required feature is broken.
pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    let checks = doctor::checks();
    let broken = checks.iter().filter(|c| c.blocks()).count();
    let mut out = super::stdout();
    if args.json {
        let list: Vec<JsonCheck> = checks
            .iter()
            .map(|c| JsonCheck {
                check: c,
                ok: c.status != Status::Broken,
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(if broken > 0 { 1 } else { 0 });
    }
    for c in &checks {
        let fix = c
            .fix
            .as_ref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        match c.status {
            Status::Works => writeln!(out, "ok       {}{}", c.name, suffix(&c.detail))?,
            Status::Degraded => writeln!(out, "degraded {}: {}{fix}", c.name, c.detail)?,
            Status::Broken if c.required => {
                writeln!(out, "MISSING  {}: {}{fix}", c.name, c.detail)?
            }
            Status::Broken => writeln!(out, "optional {}: {}{fix}", c.name, c.detail)?,
        }
    }
    if broken > 0 {
        writeln!(
            out,
            "{broken} required feature(s) missing: nsroot cannot run here until fixed"
        )?;
    }
    out.flush()?;
    Ok(if broken > 0 { 1 } else { 0 })
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}
