//! Deterministic, faithful archives: sorted walk -> explicit headers -> tar -> compression.

use crate::cli::{ListArgs, PackArgs};

/// `nsroot pack`: returns the process exit status.
pub fn run_pack(_args: &PackArgs) -> anyhow::Result<i32> {
    anyhow::bail!("nsroot pack: not available in this build yet")
}

/// `nsroot list`: returns the process exit status.
pub fn run_list(_args: &ListArgs) -> anyhow::Result<i32> {
    anyhow::bail!("nsroot list: not available in this build yet")
}
