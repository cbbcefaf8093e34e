//! The command line: clap derive structs only. Their doc comments are the `--help` text.
//! The library's own enums that the command line names (the archive and output formats) get
//! their clap `ValueEnum` impls here, so that nothing below this module sees clap.
//!
//! nsroot has two shapes of command line. The fakeroot-compatible one,
//! `nsroot [OPTIONS] [--] [COMMAND [ARGS]...]`, runs a command as root in fresh namespaces
//! (`RunArgs`). The subcommands (`pack`, `list`, `build`, `doctor`, ...) are recognised by their
//! first word; a command that happens to share a subcommand's name (`man`, `help`, `list`...)
//! runs with `nsroot -- NAME` or `nsroot run NAME`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::archive::Format;
use crate::package::OutputFormat;

/// The names that select a subcommand when they are the first argument.
pub const SUBCOMMANDS: &[&str] = &[
    "run",
    "pack",
    "list",
    "inspect",
    "diff",
    "repro",
    "build",
    "doctor",
    "man",
    "completions",
    "help",
    "install-fakeroot",
    "rpm-files",
];

/// Text shown after the run-mode help, listing the subcommands.
const RUN_AFTER_HELP: &str = "\
Subcommands:
  run          Run a command as root in fresh namespaces (the default)
  pack         Write a directory as a deterministic, root-owned archive
  list         List an archive like `tar -tv`; a package's fields too (alias: inspect)
  diff         Compare two archives (tar, .deb or .rpm) entry by entry
  repro        Build a recipe twice under varied conditions and compare the outputs
  build        Build a recipe in a sealed sandbox into a root-owned archive
  doctor       Check what this kernel and host allow, with the fix for what they don't
  man          Print the manual page (roff) of nsroot or of a subcommand
  completions  Print the shell completion script (bash, zsh, fish, elvish, powershell)
  help         Print the help of nsroot or of a subcommand
  install-fakeroot  Put a `fakeroot` symlink to nsroot into a directory (nsroot as fakeroot)
  rpm-files    Print a %files list with %attr lines from the recorded owners (for rpmbuild)

See `nsroot help <SUBCOMMAND>` or `nsroot <SUBCOMMAND> --help` for each. A command named like a
subcommand (the real `man`, say) runs with `nsroot -- man ...` or `nsroot run man ...`.";

/// Run a command as root inside fresh user, mount, pid and ipc namespaces, without sudo.
///
/// A drop-in replacement for fakeroot: `nsroot make install DESTDIR=$PWD/pkg`. With no command,
/// starts an interactive $SHELL.
#[derive(Debug, Parser)]
#[command(
    name = "nsroot",
    version,
    disable_version_flag = true,
    after_help = RUN_AFTER_HELP,
    disable_help_subcommand = true
)]
// The private unit field is clap's version flag, not a non-exhaustive marker.
#[allow(clippy::manual_non_exhaustive)]
pub struct RunCli {
    /// Print version (-v as in fakeroot, or -V)
    #[arg(short = 'v', visible_short_alias = 'V', long = "version", action = clap::ArgAction::Version)]
    version: (),

    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of run mode (`nsroot [OPTIONS] [--] [COMMAND]...`).
#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// Give the command its own network namespace, with only `lo` (up)
    #[arg(long, value_name = "MODE", value_enum)]
    pub net: Option<NetMode>,

    /// Give the command its own UTS namespace with this hostname
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Map a full id range from /etc/subuid and /etc/subgid through newuidmap/newgidmap
    #[arg(long)]
    pub map_auto: bool,

    /// Save the recorded ownership to FILE when the command exits (as fakeroot -s)
    #[arg(short = 's', value_name = "FILE")]
    pub save_file: Option<PathBuf>,

    /// Load recorded ownership from FILE before running (as fakeroot -i)
    #[arg(short = 'i', value_name = "FILE")]
    pub load_file: Option<PathBuf>,

    /// Do not emulate chown/mknod/stat (fastest; chown to other ids then fails as the kernel says)
    #[arg(long)]
    pub no_emulate: bool,

    /// Accepted for fakeroot compatibility (files with no record keep their on-disk view)
    #[arg(short = 'u', long = "unknown-is-real")]
    pub unknown_is_real: bool,

    /// fakeroot's preload library option: has no meaning for nsroot
    #[arg(short = 'l', long = "lib", value_name = "LIB", hide = true)]
    pub fakeroot_lib: Option<String>,

    /// fakeroot's daemon option: has no meaning for nsroot
    #[arg(long = "faked", value_name = "BINARY", hide = true)]
    pub fakeroot_faked: Option<String>,

    /// fakeroot's fd option: has no meaning for nsroot
    #[arg(short = 'b', value_name = "FD", hide = true)]
    pub fakeroot_fd: Option<String>,

    /// Print the setup plan before running it
    #[arg(long)]
    pub verbose: bool,

    /// The command and its arguments (default: $SHELL)
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// Network modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetMode {
    /// A network namespace with only the loopback interface
    None,
    /// The host's network (the default in run mode)
    Host,
}

/// The subcommand form: `nsroot <SUBCOMMAND> ...`.
#[derive(Debug, Parser)]
#[command(name = "nsroot", version, disable_help_subcommand = true)]
pub struct SubCli {
    #[command(subcommand)]
    pub command: Command,
}

/// nsroot's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command as root in fresh namespaces (the default when no subcommand is named)
    Run(RunArgs),
    /// Write a directory as a deterministic, root-owned archive
    Pack(PackArgs),
    /// List an archive's entries like `tar -tv`; a package's fields too (.deb, .rpm, pacman)
    #[command(visible_alias = "inspect")]
    List(ListArgs),
    /// Compare two archives (tar, .deb or .rpm) entry by entry; exit 0 if identical, 1 if not
    Diff(DiffArgs),
    /// Build a recipe twice under varied conditions and compare the outputs
    #[command(
        after_help = "Exit status: 0 reproducible, 1 not reproducible (the differences are \
                      printed), 2 bad input (recipe, sources, -o), 3 a build failed or an \
                      output could not be read (nothing was compared)."
    )]
    Repro(ReproArgs),
    /// Build a recipe in a sealed sandbox into a root-owned archive
    Build(BuildArgs),
    /// Check what this kernel and host allow, with the fix for what they don't
    Doctor(DoctorArgs),
    /// Print the manual page (roff) of nsroot or of a subcommand: `nsroot man build | man -l -`
    ///
    /// To run the man command itself in the sandbox, use `nsroot -- man ...`.
    Man(ManArgs),
    /// Print the shell completion script for SHELL: `source <(nsroot completions bash)`
    Completions(CompletionsArgs),
    /// Print the help of nsroot or of a subcommand (`nsroot help build` = `nsroot build --help`)
    Help(HelpArgs),
    /// Put a `fakeroot` symlink to nsroot into DIR: invoked under that name, nsroot takes
    /// fakeroot's command line, so tools that call `fakeroot` (makepkg, abuild) get nsroot
    InstallFakeroot(InstallFakerootArgs),
    /// Print an rpmbuild `%files` list of DIR with `%attr(mode,user,group)` from the recorded
    /// owners: rpm takes owners from `%attr`/`%defattr`, not from the buildroot
    ///
    /// In a spec's %install, under `nsroot rpmbuild`: `nsroot rpm-files
    /// --rm-device-placeholders %{buildroot} > %{_builddir}/files.list`, then
    /// `%files -f %{_builddir}/files.list`.
    RpmFiles(RpmFilesArgs),
}

/// `nsroot rpm-files DIR`.
#[derive(Debug, Clone, Args)]
pub struct RpmFilesArgs {
    /// The buildroot (rpmbuild's %{buildroot})
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Take the records from this state file (written by `nsroot -s`); inside an nsroot
    /// session they come from the session
    #[arg(short = 'i', value_name = "FILE")]
    pub load_file: Option<PathBuf>,

    /// Remove the empty files that stand for recorded device nodes, listed as %dev(...):
    /// rpmbuild's %dev entries must not exist in the buildroot
    #[arg(long)]
    pub rm_device_placeholders: bool,
}

/// `nsroot install-fakeroot DIR`.
#[derive(Debug, Clone, Args)]
pub struct InstallFakerootArgs {
    /// The directory to put `fakeroot` in (put it first on PATH, e.g. ~/.local/bin)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `nsroot man [SUBCOMMAND]`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (default: nsroot's own page)
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// `nsroot completions SHELL`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// `nsroot help [SUBCOMMAND]`.
#[derive(Debug, Clone, Args)]
pub struct HelpArgs {
    /// The subcommand whose help to print (default: nsroot's own help)
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// The command line's names for [`Format`] (the archive formats `pack` writes); each help
/// line is the variant's `--help` text.
impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Tar, Format::TarGz, Format::TarZst, Format::TarXz]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(archive_value(*self))
    }
}

fn archive_value(f: Format) -> PossibleValue {
    match f {
        Format::Tar => PossibleValue::new("tar").help("Uncompressed tar"),
        Format::TarGz => PossibleValue::new("tar.gz")
            .alias("tgz")
            .help("gzip-compressed tar"),
        Format::TarZst => PossibleValue::new("tar.zst")
            .alias("tzst")
            .help("zstd-compressed tar"),
        Format::TarXz => PossibleValue::new("tar.xz")
            .alias("txz")
            .help("xz-compressed tar"),
    }
}

/// The command line's names for [`OutputFormat`] (what `build` writes): the archive formats
/// and the packages.
impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            OutputFormat::Tar,
            OutputFormat::TarGz,
            OutputFormat::TarZst,
            OutputFormat::TarXz,
            OutputFormat::Deb,
            OutputFormat::Rpm,
            OutputFormat::PkgTarZst,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self.archive_format() {
            Some(f) => archive_value(f),
            None => match self {
                OutputFormat::Deb => PossibleValue::new("deb")
                    .help("Debian binary package (needs a [deb] table with a maintainer)"),
                OutputFormat::Rpm => PossibleValue::new("rpm")
                    .help("RPM binary package (needs a license: [package] or [rpm])"),
                OutputFormat::PkgTarZst => {
                    PossibleValue::new("pkg.tar.zst").help("pacman (Arch Linux) package")
                }
                other => PossibleValue::new(other.extension()),
            },
        })
    }
}

/// `nsroot pack DIR -o OUT`.
#[derive(Debug, Clone, Args)]
pub struct PackArgs {
    /// The directory whose contents become the archive's entries
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Output file (`-` for stdout); the format follows its extension unless --format is given
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,

    /// Archive format, overriding the output's extension
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3; xz 0-9, default 6)
    #[arg(short = 'L', long, value_name = "N")]
    pub level: Option<u32>,

    /// Compress on N threads (gzip and zstd)
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: usize,

    /// Owner of every entry: NAME, NAME:UID or UID (default root:0)
    #[arg(long, value_name = "NAME[:UID]")]
    pub owner: Option<String>,

    /// Group of every entry: NAME, NAME:GID or GID (default root:0)
    #[arg(long, value_name = "NAME[:GID]")]
    pub group: Option<String>,

    /// Store numeric ids only, no user or group names
    #[arg(long)]
    pub numeric_owner: bool,

    /// Clamp mtimes to this time (seconds since the epoch, or @SECONDS); default $SOURCE_DATE_EPOCH
    #[arg(long, value_name = "TIME")]
    pub mtime: Option<String>,

    /// Store extended attributes (PAX SCHILY.xattr)
    #[arg(long)]
    pub xattrs: bool,

    /// Apply recorded ownership from this state file (written by `nsroot -s`)
    #[arg(short = 'i', value_name = "FILE")]
    pub load_file: Option<PathBuf>,
}

/// `nsroot list ARCHIVE`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// The archive to list (`-` for stdin): a tar, its compression detected from its content
    /// (a pacman package's .PKGINFO fields first), a .deb (its control fields, then its
    /// control and data members' entries) or an .rpm (its main tags, then its payload)
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,

    /// Show numeric ids instead of names
    #[arg(long)]
    pub numeric_owner: bool,
}

/// `nsroot diff A B`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The first archive: tar (any compression nsroot reads), .deb or .rpm
    #[arg(value_name = "A")]
    pub a: PathBuf,

    /// The second archive
    #[arg(value_name = "B")]
    pub b: PathBuf,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Also run diffoscope on the two files when they differ (if it is installed)
    #[arg(long, conflicts_with = "json")]
    pub diffoscope: bool,
}

/// `nsroot build RECIPE`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The recipe file (recipes/NAME/recipe.toml)
    #[arg(value_name = "RECIPE")]
    pub recipe: PathBuf,

    /// Output directory for archives, logs and the manifest
    #[arg(
        short = 'o',
        long = "output-dir",
        value_name = "DIR",
        default_value = "out"
    )]
    pub output_dir: PathBuf,

    /// Output formats (comma-separated or repeated), replacing the recipe's list
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<OutputFormat>,

    /// Keep the work tree after the build and print where it is
    #[arg(long)]
    pub keep: bool,

    /// When a step fails, start an interactive shell in the sandbox where it failed
    #[arg(long)]
    pub shell_on_failure: bool,

    /// Allow network access (off by default)
    #[arg(long)]
    pub net: bool,

    /// Parallel jobs exposed to the build as $NSROOT_JOBS (default: number of CPUs)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,

    /// Size limit of each of /tmp, /build/home and /dev/shm in the sandbox, e.g. 4G
    /// (default: the recipe's [build] tmpfs_size, else 1G)
    #[arg(long = "tmpfs-size", value_name = "SIZE", value_parser = crate::sandbox::plan::parse_size)]
    pub tmpfs_size: Option<u64>,

    /// Print the sandbox plan and each step before running it
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Print one JSON record on stdout, for a build farm's collector: the manifest's fields
    /// (recipe, inputs' and outputs' sha256, durations, nsroot version, kernel) and how the
    /// build ended (`exit_reason`, `exit_status`, `error`), for a failed build too
    #[arg(long)]
    pub json: bool,

    /// (for `nsroot repro`) shift the sandbox's monotonic and boot-time clocks by SECS
    #[arg(
        long = "repro-clock-offset",
        value_name = "SECS",
        hide = true,
        allow_negative_numbers = true
    )]
    pub repro_clock_offset: Option<i64>,

    /// (for `nsroot repro`) build the sources at DIR, below /build/, instead of /build/src
    #[arg(long = "repro-src-dir", value_name = "DIR", hide = true)]
    pub repro_src_dir: Option<PathBuf>,
}

/// `nsroot doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON (name, ok, required, detail or fix)
    #[arg(long)]
    pub json: bool,
}

/// `nsroot repro RECIPE`.
#[derive(Debug, Clone, Args)]
pub struct ReproArgs {
    /// The recipe file
    #[arg(value_name = "RECIPE")]
    pub recipe: PathBuf,

    /// How many builds to compare (at least 2)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub runs: u32,

    /// Keep each run's outputs under this directory (default: a temporary one, removed)
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Print the comparison as JSON
    #[arg(long)]
    pub json: bool,
}
