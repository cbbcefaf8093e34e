//! Recipe builds: run a recipe's steps in the build sandbox and archive the result.

use crate::cli::BuildArgs;

/// `nsroot build`: returns the process exit status.
pub fn run_build(_args: &BuildArgs) -> anyhow::Result<i32> {
    anyhow::bail!("nsroot build: not available in this build yet")
}
