//! The sandbox: namespaces, id maps, the process tree (outer supervisor, pid 1, command).

use crate::cli::RunArgs;

/// `nsroot [run]`: runs the command as root in fresh namespaces, returns its exit status.
pub fn run_command(_args: &RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not available yet")
}
