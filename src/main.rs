//! The nsroot binary: parse the command line, call the library, map errors to exit statuses.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use nsroot::cli::{Command, RunCli, SubCli, SUBCOMMANDS};
use nsroot::error::exit_code_of;
use nsroot::fakeroot;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args
        .first()
        .is_some_and(|a| fakeroot::invoked_as_fakeroot(a))
    {
        return exit_with(as_fakeroot(&args));
    }
    let result = match args.get(1).and_then(|a| a.to_str()) {
        Some(first) if SUBCOMMANDS.contains(&first) => dispatch(SubCli::parse_from(&args).command),
        _ => nsroot::sandbox::run_command(&RunCli::parse_from(&args).run),
    };
    exit_with(result)
}

/// nsroot under the name `fakeroot` ([`nsroot::fakeroot`]).
fn as_fakeroot(args: &[OsString]) -> anyhow::Result<i32> {
    match fakeroot::parse(args)? {
        fakeroot::Invocation::Print(text) => {
            print!("{text}");
            Ok(0)
        }
        fakeroot::Invocation::Run { args, notes } => {
            for n in notes {
                eprintln!("{n}");
            }
            nsroot::sandbox::run_command(&args)
        }
    }
}

fn exit_with(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(err) => {
            eprintln!("nsroot: {err:#}");
            ExitCode::from(exit_code_of(&err) as u8)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => nsroot::sandbox::run_command(&args),
        Command::Pack(args) => nsroot::archive::run_pack(&args),
        Command::List(args) => nsroot::archive::run_list(&args),
        Command::Diff(args) => nsroot::archive::run_diff(&args),
        Command::Repro(args) => nsroot::repro::run_repro(&args),
        Command::Build(args) => nsroot::build::run_build(&args),
        Command::Doctor(_) => nsroot::doctor::run_doctor(),
        Command::Man(args) => nsroot::docs::run_man(&args),
        Command::Completions(args) => nsroot::docs::run_completions(&args),
        Command::Help(args) => nsroot::docs::run_help(&args),
        Command::InstallFakeroot(args) => {
            let link = fakeroot::install_link(&args.dir)?;
            println!("{}", link.display());
            Ok(0)
        }
    }
}
