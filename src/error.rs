//! Exit statuses and the error marker for bad user input.
//!
//! Library modules return `thiserror` enums whose messages name the call and the path. `main`
//! maps the error chain to an exit status with [`exit_code_of`]: usage and input errors (a bad
//! recipe, option, state file or archive) exit 2, everything else 1.

/// Exit status for usage and input errors.
pub const EXIT_INPUT: i32 = 2;
/// Exit status for any other failure.
pub const EXIT_FAILURE: i32 = 1;

/// Bad input from the user: a malformed file, a conflicting option, a missing path.
///
/// Return it (or put it in the `#[source]` chain of your error, never behind
/// `#[error(transparent)]`) to make nsroot exit with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    /// Builds an input error from anything printable.
    pub fn new(msg: impl Into<String>) -> Self {
        InputError(msg.into())
    }
}

/// The exit status for an error chain: [`EXIT_INPUT`] when any link is an [`InputError`].
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<InputError>().is_some() || err.chain().any(|c| c.is::<InputError>()) {
        EXIT_INPUT
    } else {
        EXIT_FAILURE
    }
}
