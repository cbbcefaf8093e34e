//! `nsroot doctor`: one line per kernel or host feature nsroot uses, ok or the fix.

/// Runs every check and prints the report; returns 0 when the core features work.
pub fn run_doctor() -> anyhow::Result<i32> {
    anyhow::bail!("nsroot doctor: not available in this build yet")
}
