//! `nsroot doctor`: one line per kernel or host feature nsroot uses, ok or the fix.

use std::io::Write;

use crate::cli::DoctorArgs;
use crate::doctor;

/// One check as `--json` prints it.
#[derive(serde::Serialize)]
struct JsonCheck<'a> {
    name: &'a str,
    ok: bool,
    required: bool,
    /// What was found (when ok) or what is wrong and the fix (when not).
    detail: &'a str,
}

/// Runs every check and prints the report; returns 0 when every required feature works.
pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    let checks = doctor::checks();
    let broken = checks
        .iter()
        .filter(|c| c.required && c.result.is_err())
        .count();
    let mut out = super::stdout();
    if args.json {
        let list: Vec<JsonCheck> = checks
            .iter()
            .map(|c| JsonCheck {
                name: c.name,
                ok: c.result.is_ok(),
                required: c.required,
                detail: match &c.result {
                    Ok(d) | Err(d) => d,
                },
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(if broken > 0 { 1 } else { 0 });
    }
    for c in &checks {
        match &c.result {
            Ok(detail) => writeln!(out, "ok       {}{}", c.name, suffix(detail))?,
            Err(fix) if c.required => writeln!(out, "MISSING  {}: {fix}", c.name)?,
            Err(fix) => writeln!(out, "optional {}: {fix}", c.name)?,
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
