//! Man pages, shell completions and `nsroot help`, all generated from the clap definitions in
//! `cli` (clap_mangen, clap_complete): nothing is written by hand twice.
//!
//! nsroot's command line has two shapes (see `cli`): run mode, whose options are nsroot's own
//! (`RunCli`), and the subcommands (`SubCli`). The pages and completions describe both at once:
//! [`full_command`] is run mode's command with the subcommands added.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{CompletionsArgs, HelpArgs, ManArgs, RunCli, SubCli};
use crate::error::InputError;

/// Errors of `nsroot man`, `completions` and `help`.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// The subcommand named does not exist (exit 2).
    #[error("{what}: no subcommand {:?}", crate::recipe::shown(name))]
    Unknown {
        /// `nsroot man` or `nsroot help`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The subcommands there are, and how to run a command of that name.
        #[source]
        hint: InputError,
    },
    /// Standard output could not be written.
    #[error("cannot write to standard output")]
    Write(#[source] io::Error),
}

/// nsroot as one clap command: run mode's arguments and the subcommands, built (so each
/// subcommand knows its full name, `nsroot build`).
pub fn full_command() -> clap::Command {
    let mut cmd = RunCli::command()
        .subcommands(SubCli::command().get_subcommands().cloned())
        .args_conflicts_with_subcommands(true)
        // The subcommands are listed by clap now, not by run mode's closing text.
        .after_help(None::<&str>)
        .after_long_help(None::<&str>);
    cmd.build();
    cmd
}

/// `cmd` without its hidden arguments, in every subcommand: clap_complete's generators offer
/// hidden options too (fakeroot's meaningless `--lib`, repro's `--repro-*`), which `--help`
/// and the man pages leave out. Only what completion reads is kept: names, arguments,
/// subcommands and their aliases.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(cmd.get_subcommands().map(without_hidden))
        .visible_aliases(
            cmd.get_visible_aliases()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )
        // The built command's own help and version arguments (and any help subcommand)
        // are among those copied.
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    out
}

/// The subcommand `name` (or alias) of `cmd`, or the error naming the ones there are.
fn find<'a>(
    cmd: &'a clap::Command,
    name: &str,
    what: &'static str,
    run_it: &str,
) -> Result<&'a clap::Command, DocsError> {
    cmd.find_subcommand(name).ok_or_else(|| {
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        DocsError::Unknown {
            what,
            name: name.to_string(),
            hint: InputError::new(format!(
                "the subcommands are {}; to run a program called {:?} as root, use \
                 `nsroot -- {run_it}`",
                names.join(", "),
                crate::recipe::shown(name)
            )),
        }
    })
}

/// Writes `bytes` to stdout; a reader that went away (`nsroot man | head`) is no error.
fn emit(bytes: &[u8]) -> Result<i32, DocsError> {
    let mut out = io::stdout().lock();
    // A broken pipe (`nsroot man | head`) ends the command quietly (see `commands`).
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(DocsError::Write)?;
    Ok(0)
}

/// `nsroot man [SUBCOMMAND]`: prints the roff page of nsroot or of the subcommand
/// (`nsroot-build(1)`). Returns the exit status.
///
/// Errors: [`DocsError::Unknown`] for a name that is no subcommand, [`DocsError::Write`].
pub fn run_man(args: &ManArgs) -> anyhow::Result<i32> {
    Ok(emit(&man_page(args.subcommand.as_deref())?)?)
}

/// The roff page of nsroot (None) or of a subcommand.
///
/// Errors: [`DocsError::Unknown`].
pub fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>, DocsError> {
    let full = full_command();
    let cmd = match subcommand {
        None => full.clone(),
        Some(name) => find(&full, name, "nsroot man", &format!("man {name}"))?.clone(),
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(DocsError::Write)?;
    Ok(page)
}

/// `nsroot completions SHELL`: prints the completion script. Returns the exit status.
///
/// Errors: [`DocsError::Write`].
pub fn run_completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    let mut cmd = without_hidden(&full_command());
    clap_complete::generate(args.shell, &mut cmd, "nsroot", &mut script);
    Ok(emit(&script)?)
}

/// `nsroot help [SUBCOMMAND]`: prints what `nsroot --help` or `nsroot SUBCOMMAND --help`
/// prints. Returns the exit status.
///
/// Errors: [`DocsError::Unknown`], [`DocsError::Write`].
pub fn run_help(args: &HelpArgs) -> anyhow::Result<i32> {
    // What the parser itself prints for --help (long or short help, as clap decides).
    let (cmd, argv) = match &args.subcommand {
        None => (RunCli::command(), vec!["nsroot", "--help"]),
        Some(name) => {
            let mut sub = SubCli::command();
            sub.build();
            find(&sub, name, "nsroot help", name)?;
            (sub, vec!["nsroot", name.as_str(), "--help"])
        }
    };
    let help = match cmd.try_get_matches_from(argv) {
        Err(e) => e.render().to_string(),
        Ok(_) => String::new(),
    };
    Ok(emit(help.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_and_the_command_is_consistent() {
        full_command().debug_assert();
        for sub in full_command().get_subcommands() {
            let page = man_page(Some(sub.get_name())).unwrap();
            let head = format!(".TH nsroot-{} 1", sub.get_name());
            assert!(String::from_utf8_lossy(&page).contains(&head), "{head}");
        }
        assert!(matches!(
            man_page(Some("ls")),
            Err(DocsError::Unknown { .. })
        ));
    }

    #[test]
    fn completions_offer_what_help_shows_and_no_hidden_option() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut without_hidden(&full_command()),
                "nsroot",
                &mut script,
            );
            let script = String::from_utf8(script).unwrap();
            for shown in [
                "--format",
                "--net",
                "--hostname",
                "install-fakeroot",
                "--json",
            ] {
                assert!(script.contains(shown), "{shell}: {shown} missing");
            }
            for hidden in [
                "--faked",
                "--lib",
                "--repro-clock-offset",
                "--repro-src-dir",
            ] {
                assert!(!script.contains(hidden), "{shell}: offers {hidden}");
            }
        }
    }

    #[test]
    fn the_subcommand_list_is_the_parser_s() {
        let names: Vec<String> = SubCli::command()
            .get_subcommands()
            .flat_map(|s| {
                std::iter::once(s.get_name().to_string())
                    .chain(s.get_all_aliases().map(str::to_string))
            })
            .collect();
        let mut want: Vec<&str> = crate::cli::SUBCOMMANDS.to_vec();
        want.sort_unstable();
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, want, "cli::SUBCOMMANDS and the subcommands differ");
    }
}
