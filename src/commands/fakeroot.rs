//! nsroot under the name `fakeroot`: fakeroot's command line, so that tools which call
//! `fakeroot` by name or path (makepkg, abuild, OpenWrt's `staging_dir/host/bin/fakeroot`,
//! `dpkg-buildpackage -rfakeroot`) get nsroot with no change of theirs.
//!
//! `fakeroot [-l|--lib LIB] [-f|--faked BIN] [-s FILE] [-i FILE] [-u|--unknown-is-real]
//! [-b|--fd-base FD] [-h|--help] [-v|--version] [--] [COMMAND [ARGS...]]`. Options stop at the
//! first word that is not one, as fakeroot's `getopt +` does. `-s` and `-i` are nsroot's own;
//! the rest have no meaning here: `-b` changes nothing and is accepted silently, `-l`, `-f` and
//! `-u` would change what fakeroot does, so each says in one line on stderr that it is
//! ignored. The exit status is the command's (127 not found, 126 not executable, 128+N for a
//! signal), as fakeroot's shell script gives.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::RunArgs;
use crate::error::InputError;

/// The version of fakeroot whose command line this follows.
pub const FAKEROOT_VERSION: &str = "1.31";

/// fakeroot's command line.
#[derive(Debug, Parser)]
#[command(
    name = "fakeroot",
    disable_help_flag = true,
    disable_version_flag = true,
    about = "nsroot as fakeroot: run COMMAND as root in a user namespace, recording ownership"
)]
struct FakerootCli {
    /// fakeroot's preload library (ignored: nsroot records ownership through seccomp)
    #[arg(short = 'l', long = "lib", value_name = "LIB")]
    lib: Option<OsString>,
    /// fakeroot's daemon (ignored: nsroot runs none)
    #[arg(short = 'f', long = "faked", value_name = "BIN")]
    faked: Option<OsString>,
    /// Save the recorded ownership to FILE on exit
    #[arg(short = 's', value_name = "FILE")]
    save: Option<PathBuf>,
    /// Load recorded ownership from FILE first
    #[arg(short = 'i', value_name = "FILE")]
    load: Option<PathBuf>,
    /// fakeroot: files with no record show their real owner (see the note it prints)
    #[arg(short = 'u', long = "unknown-is-real")]
    unknown_is_real: bool,
    /// fakeroot's descriptor base for its daemon (nothing to do here)
    #[arg(short = 'b', long = "fd-base", value_name = "FD")]
    fd_base: Option<OsString>,
    /// Print help
    #[arg(short = 'h', long = "help")]
    help: bool,
    /// Print version
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// The command (default: $SHELL)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// What a `fakeroot` command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run a session; the notes (one line each) go to stderr first.
    Run { args: RunArgs, notes: Vec<String> },
    /// Print this and exit 0 (`-h`, `-v`).
    Print(String),
}

/// True when `argv0` names fakeroot: `fakeroot`, or a `fakeroot-*` variant (Debian's
/// alternatives are `fakeroot-sysv` and `fakeroot-tcp`), by its file name.
pub fn invoked_as_fakeroot(argv0: &OsStr) -> bool {
    let name = Path::new(argv0)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    name == "fakeroot" || name.starts_with("fakeroot-")
}

/// nsroot under the name `fakeroot`: returns the exit status.
pub fn run(args: &[OsString]) -> anyhow::Result<i32> {
    match parse(args)? {
        Invocation::Print(text) => {
            let mut out = super::stdout();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(0)
        }
        Invocation::Run { args, notes } => {
            for n in notes {
                eprintln!("{n}");
            }
            super::run::run_command(&args)
        }
    }
}

/// Parses fakeroot's command line (`args[0]` is the program name).
///
/// Errors: an unknown option or a missing option value, as an [`InputError`] (exit 2) whose
/// message is clap's.
pub fn parse(args: &[OsString]) -> Result<Invocation, InputError> {
    let cli = FakerootCli::try_parse_from(args).map_err(|e| {
        InputError::new(
            e.render()
                .to_string()
                .trim_end()
                .trim_start_matches("error: ")
                .to_string(),
        )
    })?;
    // clap takes an unknown `-Z` for the command; fakeroot's getopt refuses it (a command
    // that starts with `-` follows `--`).
    if let Some(first) = cli.command.first() {
        let dashed = args
            .iter()
            .skip(1)
            .take_while(|a| *a != first)
            .any(|a| a == "--");
        if first.as_encoded_bytes().starts_with(b"-") && !dashed {
            return Err(InputError::new(format!(
                "unknown option {} (fakeroot --help lists them)",
                first.to_string_lossy()
            )));
        }
    }
    if cli.help {
        use clap::CommandFactory;
        return Ok(Invocation::Print(
            FakerootCli::command().render_help().to_string(),
        ));
    }
    if cli.version {
        return Ok(Invocation::Print(format!(
            "fakeroot version {FAKEROOT_VERSION} (nsroot {}: seccomp and user namespaces, no LD_PRELOAD)\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let mut notes = Vec::new();
    if cli.lib.is_some() {
        notes.push("fakeroot: -l/--lib ignored: nsroot preloads no library".to_string());
    }
    if cli.faked.is_some() {
        notes.push("fakeroot: --faked ignored: nsroot runs no faked daemon".to_string());
    }
    if cli.unknown_is_real {
        notes.push(
            "fakeroot: -u ignored: files with no record show as root's when they are yours \
             (nobody's when they are another user's), as without -u"
                .to_string(),
        );
    }
    let args = RunArgs {
        save_file: cli.save,
        load_file: cli.load,
        command: cli.command,
        ..RunArgs::default()
    };
    Ok(Invocation::Run { args, notes })
}

/// `nsroot install-fakeroot DIR`: prints the link made.
pub fn install(args: &crate::cli::InstallFakerootArgs) -> anyhow::Result<i32> {
    let link = install_link(&args.dir)?;
    let mut out = super::stdout();
    writeln!(out, "{}", link.display())?;
    out.flush()?;
    Ok(0)
}

/// Puts a symlink `DIR/fakeroot` to this nsroot binary, so
/// that DIR first on PATH makes nsroot the `fakeroot` every tool finds. An existing
/// `DIR/fakeroot` is replaced only when it is a symlink (another tool's binary is left alone).
///
/// Errors: DIR is missing or not writable, or holds a `fakeroot` that is not a symlink.
fn install_link(dir: &Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.canonicalize()?;
    if !dir.is_dir() {
        return Err(InputError::new(format!("{}: not a directory", dir.display())).into());
    }
    let link = dir.join("fakeroot");
    if let Ok(meta) = link.symlink_metadata() {
        if !meta.file_type().is_symlink() {
            return Err(InputError::new(format!(
                "{} exists and is not a symlink; move it away first",
                link.display()
            ))
            .into());
        }
    }
    // Made beside and renamed over: the old link stays until the new one is in place.
    let tmp = dir.join(format!(".fakeroot.nsroot-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&exe, &tmp)
        .map_err(|e| anyhow::anyhow!("symlink {} -> {}: {e}", tmp.display(), exe.display()))?;
    std::fs::rename(&tmp, &link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("rename {} to {}: {e}", tmp.display(), link.display())
    })?;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> (RunArgs, Vec<String>) {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(&args).unwrap() {
            Invocation::Run { args, notes } => (args, notes),
            Invocation::Print(p) => panic!("printed {p}"),
        }
    }

    #[test]
    fn names_that_mean_fakeroot() {
        for n in [
            "fakeroot",
            "/usr/bin/fakeroot",
            "staging_dir/host/bin/fakeroot",
            "fakeroot-sysv",
        ] {
            assert!(invoked_as_fakeroot(OsStr::new(n)), "{n}");
        }
        for n in ["nsroot", "/usr/bin/nsroot", "fakeroots", "myfakeroot"] {
            assert!(!invoked_as_fakeroot(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn options_stop_at_the_command() {
        let (a, notes) = run(&["fakeroot", "-s", "st", "-i", "in", "--", "ls", "-l"]);
        assert_eq!(a.save_file.as_deref(), Some(Path::new("st")));
        assert_eq!(a.load_file.as_deref(), Some(Path::new("in")));
        assert_eq!(a.command, ["ls", "-l"]);
        assert!(notes.is_empty());
        let (a, _) = run(&["fakeroot", "make", "-s", "install"]);
        assert_eq!(a.command, ["make", "-s", "install"]);
        assert_eq!(a.save_file, None);
        let (a, _) = run(&["fakeroot"]);
        assert!(a.command.is_empty());
    }

    #[test]
    fn meaningless_options_are_accepted_with_a_note_where_they_matter() {
        let (a, notes) = run(&[
            "fakeroot", "-b", "3", "-u", "-l", "/x.so", "--faked", "f", "id",
        ]);
        assert_eq!(a.command, ["id"]);
        assert_eq!(notes.len(), 3, "{notes:?}");
        let (_, notes) = run(&["fakeroot", "-b", "3", "true"]);
        assert!(notes.is_empty());
    }

    #[test]
    fn help_version_and_bad_options() {
        let args = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        match parse(&args(&["fakeroot", "-v"])).unwrap() {
            Invocation::Print(p) => assert!(p.starts_with("fakeroot version "), "{p}"),
            other => panic!("{other:?}"),
        }
        match parse(&args(&["fakeroot", "--help"])).unwrap() {
            Invocation::Print(p) => assert!(p.contains("--unknown-is-real"), "{p}"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&args(&["fakeroot", "-Z", "x"])).is_err());
        assert!(parse(&args(&["fakeroot", "-s"])).is_err());
    }
}
