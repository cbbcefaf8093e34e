//! Exit statuses and the error marker for bad user input.
//!
//! Library modules return `thiserror` enums whose messages name the call and the path. The
//! command layer maps the error chain to an exit status with [`exit_code_of`]: usage and input errors (a bad
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

/// An I/O failure on a path: what was being done, to which path, and why. Each module's error
/// type holds it as its `Io` variant, so every such message reads `ACTION PATH: CAUSE`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct IoAt {
    /// What was being done ("read", "create a temporary file in", ...).
    pub action: &'static str,
    /// The path it was done to.
    pub path: std::path::PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// For `map_err`: an [`IoAt`] (or any error made from one) for `action` on `path`.
pub fn io_at<'a, E: From<IoAt>>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> E + 'a {
    move |source| {
        E::from(IoAt {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The whole chain of `err` on one line, `outer: cause: cause`, as anyhow's `{:#}` prints it;
/// for places that hand an error on as text (pid 1's channel, a forked child's report). Each
/// error's message leaves its source out, so nothing is said twice.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The causes of `err` (its chain without `err` itself), joined as [`chain`] joins them.
pub fn causes(err: &dyn std::error::Error) -> String {
    err.source().map(chain).unwrap_or_default()
}

/// The exit status for an error chain: [`EXIT_INPUT`] when any link is an [`InputError`].
pub fn exit_code_of(err: &(dyn std::error::Error + 'static)) -> i32 {
    let mut link = Some(err);
    while let Some(e) = link {
        if e.is::<InputError>() {
            return EXIT_INPUT;
        }
        link = e.source();
    }
    EXIT_FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] InputError);

    #[test]
    fn chain_joins_each_message_once() {
        let e = Outer(InputError::new("inner"));
        assert_eq!(chain(&e), "outer: inner");
        assert_eq!(causes(&e), "inner");
        assert_eq!(causes(&InputError::new("alone")), "");
    }
}
