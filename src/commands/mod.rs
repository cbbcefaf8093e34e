//! The command layer: one file per subcommand, turning parsed command lines (`cli`) into
//! library calls and their results into output and an exit status.
//!
//! This layer alone sees clap's types, uses `anyhow`, writes to stdout and stderr and picks
//! exit statuses; the modules below it take typed options and return data and typed errors.
//! Statuses: what the command says (a run's command status, `diff`'s 1 for "different"...),
//! 2 for bad input ([`crate::error::InputError`] anywhere in the chain), 1 for any other
//! failure. A closed stdout (`nsroot list big.tar | head`) ends the command quietly with
//! status 0, as ripgrep does: the reader has what it wanted.

mod build;
mod diff;
pub mod docs;
mod doctor;
pub mod fakeroot;
mod list;
mod pack;
mod repro;
mod rpm_files;
mod run;

use std::ffi::OsString;
use std::io::{self, BufWriter, StdoutLock};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Command, RunCli, SubCli, SUBCOMMANDS};
use crate::error::exit_code_of;

/// The whole program: `argv` parsed as nsroot's (or fakeroot's) command line and run.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let result = if args
        .first()
        .is_some_and(|a| fakeroot::invoked_as_fakeroot(a))
    {
        fakeroot::run(&args)
    } else {
        match args.get(1).and_then(|a| a.to_str()) {
            Some(first) if SUBCOMMANDS.contains(&first) => {
                dispatch(SubCli::parse_from(&args).command)
            }
            _ => run::run_command(&RunCli::parse_from(&args).run),
        }
    };
    exit_with(result)
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run::run_command(&args),
        Command::Pack(args) => pack::run(&args),
        Command::List(args) => list::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Repro(args) => repro::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Man(args) => docs::run_man(&args),
        Command::Completions(args) => docs::run_completions(&args),
        Command::Help(args) => docs::run_help(&args),
        Command::InstallFakeroot(args) => fakeroot::install(&args),
        Command::RpmFiles(args) => rpm_files::run(&args),
    }
}

/// Standard output, buffered, for a command's report.
fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

fn exit_with(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nsroot: {err:#}");
            ExitCode::from(exit_code_of(err.as_ref()) as u8)
        }
    }
}

/// True when the error comes from writing into a pipe whose reader has gone.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
