//! Recipe builds: run a recipe's steps in the sealed build sandbox and archive the result.
//!
//! The sequence: load and validate the recipe; make a private scratch directory; materialize
//! the sources (a path source is used in place as an overlay's lower layer, never written;
//! an archive is checked against its sha256 first); only then create the output directory;
//! run every step in one sandbox (pid 1 runs them in order, stopping at the first failure),
//! logging live into `<stem>.build.log` (locked, so two builds of a recipe into one directory
//! take turns); archive the output tree with the records the build made; write a manifest.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::archive::{self, ArchiveError, PackOptions};
use crate::fsutil::AtomicFile;
use crate::ownership::{self, Lookup, Store};
use crate::package::deb::{self, DebError};
use crate::package::pacman::{self, PacmanError};
use crate::package::rpm::{self, RpmError};
use crate::package::OutputFormat;
use crate::recipe::{Recipe, RecipeError};
use crate::sandbox::plan::{BuildLayout, IdMap, Plan, BUILD_DESTDIR, BUILD_HOME};
use crate::sandbox::{self, Output, SandboxError, Spec, Step};
use crate::sys;
use crate::sys::archive::InterruptGuard;

/// The PATH of every build step.
pub const BUILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Prefix of scratch directories (under $TMPDIR or /tmp).
const SCRATCH_PREFIX: &str = "nsroot-build-";
/// How many log lines a failed step shows.
const TAIL_LINES: usize = 25;

/// Errors of `nsroot build`.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The recipe or its sources are wrong (exit 2).
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A step exited non-zero.
    #[error("{step} (`{command}`) failed with exit code {code}{note}\n--- last lines of {log} ---\n{tail}--- full log: {log}")]
    StepFailed {
        step: String,
        command: String,
        code: i32,
        /// What nsroot knows of the cause (a full tmpfs), starting with a newline; or empty.
        note: String,
        tail: String,
        log: String,
    },
    /// The sandbox could not be set up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Archiving the output tree failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Writing the .deb failed, or its metadata is wrong.
    #[error(transparent)]
    Deb(#[from] DebError),
    /// Writing the .rpm failed, or its metadata is wrong.
    #[error(transparent)]
    Rpm(#[from] RpmError),
    /// Writing the .pkg.tar.zst failed, or its metadata is wrong.
    #[error(transparent)]
    Pacman(#[from] PacmanError),
    /// Recorded ownership could not be read back.
    #[error(transparent)]
    Ownership(#[from] ownership::OwnershipError),
    /// A signal (SIGINT, SIGTERM, SIGHUP) stopped the build; scratch space is removed.
    #[error("interrupted by signal {signal}")]
    Interrupted { signal: i32 },
    /// nsroot build was started inside another nsroot session that emulates ownership.
    #[error("nsroot build cannot run inside an nsroot session that records ownership (its supervisor would get this build's records); run the outer nsroot with --no-emulate, or build outside it")]
    Nested,
    /// A file operation on the build's own files failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
}

impl BuildError {
    /// What ended the build, as one word a farm's collector can group by (`nsroot build
    /// --json`'s `exit_reason`): `bad-input`, `step-failed`, `sandbox`, `archive`, `deb`,
    /// `rpm`, `pacman`, `ownership`, `interrupted`, `nested` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            BuildError::Recipe(_) => "bad-input",
            BuildError::StepFailed { .. } => "step-failed",
            BuildError::Sandbox(_) => "sandbox",
            _ if self.interrupted_by().is_some() => "interrupted",
            BuildError::Archive(_) => "archive",
            BuildError::Deb(_) => "deb",
            BuildError::Rpm(_) => "rpm",
            BuildError::Pacman(_) => "pacman",
            BuildError::Ownership(_) => "ownership",
            BuildError::Interrupted { .. } => "interrupted",
            BuildError::Nested => "nested",
            BuildError::Io(_) => "io",
        }
    }

    /// The build log, when the build got as far as writing one.
    pub fn log(&self) -> Option<&str> {
        match self {
            BuildError::StepFailed { log, .. } => Some(log),
            _ => None,
        }
    }

    /// The signal that stopped the build, when a signal did.
    pub fn interrupted_by(&self) -> Option<i32> {
        match self {
            BuildError::Interrupted { signal }
            | BuildError::Archive(ArchiveError::Interrupted { signal })
            | BuildError::Rpm(RpmError::Tree(ArchiveError::Interrupted { signal }))
            | BuildError::Pacman(PacmanError::Archive(ArchiveError::Interrupted { signal })) => {
                Some(*signal)
            }
            _ => None,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    crate::error::io_at(action, path)
}

/// What a build takes besides the recipe.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where archives, the log and the manifest go (created if missing, once the recipe and
    /// its sources are verified).
    pub output_dir: PathBuf,
    /// Formats overriding the recipe's `[output] formats`.
    pub formats: Option<Vec<OutputFormat>>,
    /// Keep the scratch directory.
    pub keep: bool,
    /// Start an interactive shell in the sandbox when a step fails.
    pub shell_on_failure: bool,
    /// Keep the host's network.
    pub host_network: bool,
    /// `$NSROOT_JOBS`.
    pub jobs: usize,
    /// The size limit of the sandbox's tmpfs mounts, overriding the recipe's.
    pub tmpfs_size: Option<u64>,
    /// Print the plan and each step.
    pub verbose: bool,
    /// Shift the sandbox's monotonic and boot-time clocks by this many seconds (a time
    /// namespace); `nsroot repro` asks, with `--repro-clock-offset`.
    pub clock_offset_secs: Option<i64>,
    /// Where the sources appear inside the sandbox and the steps run: [`BUILD_SRC`], or another
    /// path that [`src_dir`] accepts when `nsroot repro` varies it (`--repro-src-dir`).
    pub src_dir: PathBuf,
}

/// What a successful build wrote.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Each output file with its sha256.
    pub outputs: Vec<(PathBuf, String)>,
    /// The build log.
    pub log: PathBuf,
    /// The manifest (JSON).
    pub manifest: PathBuf,
    /// What the manifest says.
    pub record: Manifest,
    /// The scratch directory, when kept.
    pub kept: Option<PathBuf>,
}

/// Builds the recipe at `recipe_path`.
///
/// Errors: [`BuildError::Recipe`] for a bad recipe or source (exit 2; nothing is written, not
/// even the output directory), [`BuildError::StepFailed`] naming the step, its exit code and
/// the log's tail, and the sandbox's, archiver's and filesystem errors with the path
/// concerned. On any error no archive is written. With `keep`, a failed build still keeps its
/// work tree and says where on stderr (the error carries no result to say it).
pub fn build(recipe_path: &Path, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    let started = Instant::now();
    // Until the build returns, SIGINT/SIGTERM/SIGHUP set a flag checked between phases, so
    // the scratch directory is always removed and no output is half-written. (While the
    // steps run, the signals are blocked and passed on to them instead.)
    let guard =
        InterruptGuard::install().map_err(io("install signal handlers for", recipe_path))?;
    if ownership::inside_session() {
        return Err(BuildError::Nested);
    }
    let recipe = Recipe::load(recipe_path)?;
    let formats = opts
        .formats
        .clone()
        .unwrap_or_else(|| recipe.output.formats.clone());
    // Check .deb metadata before anything is built.
    if formats.contains(&OutputFormat::Deb) {
        deb::require(&recipe.file, recipe.deb.as_ref())?;
    }
    recipe.check_formats(&formats)?;
    let scratch = Scratch::create(&recipe.package.name)?;
    let result = build_in(&recipe, &formats, opts, &scratch, &guard, started);
    if !opts.keep {
        drop(scratch);
        return result;
    }
    let kept = scratch.keep();
    match result {
        Ok(r) => Ok(BuildResult {
            kept: Some(kept),
            ..r
        }),
        Err(e) => {
            eprintln!("nsroot: work tree kept at {}", kept.display());
            Err(e)
        }
    }
}

fn build_in(
    recipe: &Recipe,
    formats: &[OutputFormat],
    opts: &BuildOptions,
    scratch: &Scratch,
    guard: &InterruptGuard,
    started: Instant,
) -> Result<BuildResult, BuildError> {
    let check = || match guard.interrupted() {
        Some(signal) => Err(BuildError::Interrupted { signal }),
        None => Ok(()),
    };
    let dir = scratch.path();
    let source = recipe.source.materialize(dir)?;
    check()?;
    let sde = recipe.source_date_epoch(&source)?;
    let source_hash = recipe.source_hash(&source)?;
    // The recipe and its sources are verified: from here on the build writes for the user.
    std::fs::create_dir_all(&opts.output_dir).map_err(io("create", &opts.output_dir))?;
    let out_dir = opts
        .output_dir
        .canonicalize()
        .map_err(io("resolve", &opts.output_dir))?;
    let out_dir = out_dir.as_path();
    let layout = BuildLayout {
        root: dir.join("root"),
        source,
        upper: dir.join("upper"),
        work: dir.join("work"),
        destdir: dir.join("destdir"),
        src_target: opts.src_dir.clone(),
        host_network: opts.host_network,
        tmpfs_size: opts
            .tmpfs_size
            .or(recipe.build.tmpfs_size)
            .unwrap_or(crate::sandbox::plan::DEFAULT_TMPFS_SIZE),
    };
    for d in [&layout.root, &layout.upper, &layout.work, &layout.destdir] {
        std::fs::create_dir(d).map_err(io("create", d))?;
    }
    // The destdir's own mode is the archive's `./` entry: make it independent of the umask.
    std::fs::set_permissions(&layout.destdir, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", &layout.destdir))?;

    let (uid, gid) = sys::ids();
    let mut plan = Plan::for_build(IdMap::Single { uid, gid }, &layout);
    plan.time_offset_secs = opts.clock_offset_secs;
    if opts.verbose {
        eprint!("{plan}");
    }
    let stem = recipe.output_stem();
    let log = BuildLog::create(out_dir, &stem)?;
    run_and_pack(Job {
        recipe,
        formats,
        opts,
        out_dir,
        scratch: dir,
        layout: &layout,
        plan,
        sde,
        source_hash,
        stem: &stem,
        log: &log,
        check: &check,
        started,
    })
}

/// What [`run_and_pack`] works on.
struct Job<'a> {
    recipe: &'a Recipe,
    formats: &'a [OutputFormat],
    opts: &'a BuildOptions,
    out_dir: &'a Path,
    scratch: &'a Path,
    layout: &'a BuildLayout,
    plan: Plan,
    sde: u64,
    source_hash: String,
    stem: &'a str,
    log: &'a BuildLog,
    check: &'a dyn Fn() -> Result<(), BuildError>,
    /// When `nsroot build` started, for the manifest's durations.
    started: Instant,
}

/// Runs the steps into the log, then writes the archives and the manifest.
fn run_and_pack(job: Job<'_>) -> Result<BuildResult, BuildError> {
    let Job {
        recipe,
        formats,
        opts,
        out_dir,
        scratch: dir,
        layout,
        plan,
        sde,
        source_hash,
        stem,
        log,
        check,
        started,
    } = job;

    let steps = steps_of(recipe);
    if opts.verbose {
        for s in &steps {
            eprintln!("nsroot: {}", s.name);
        }
    }
    let store = Arc::new(Mutex::new(Store::new()));
    // The steps write into a pipe that a thread here copies into the log: never the log file
    // itself, which a step could otherwise chmod, truncate or set attributes on.
    let (log_read, log_pipe) = sys::pipe().map_err(SandboxError::from)?;
    let mut log_file = log.file()?;
    let copier = sys::spawn_quiet_thread("nsroot-log", move || {
        let mut r = std::fs::File::from(log_read);
        std::io::copy(&mut r, &mut log_file).map(drop)
    })
    .map_err(io("start the log thread for", &log.path))?;
    let spec = Spec {
        plan,
        steps: steps.clone(),
        on_failure: opts.shell_on_failure.then(|| Step {
            name: "shell on failure".into(),
            argv: vec!["/bin/sh".into(), "-i".into()],
            interactive: true,
        }),
        env: environment(&recipe.build.env, sde, opts.jobs),
        cwd: Some(opts.src_dir.clone()),
        umask: Some(0o022),
        close_fds: true,
        stdin_null: true,
        output: Output::To(log_pipe),
        sealed: true,
        watched_mounts: BuildLayout::sized_mounts()
            .iter()
            .map(PathBuf::from)
            .collect(),
        emulation: Some(store),
    };
    let sandbox_started = Instant::now();
    let ran = sandbox::run_in_child(spec);
    let steps_secs = sandbox_started.elapsed().as_secs_f64();
    // Every writer is gone (the sandbox's processes with it, and our end with the spec).
    let copied = copier.join();
    let (outcome, records) = ran?;
    match copied {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(io("write", &log.path)(e)),
        Err(_) => {
            return Err(io("write", &log.path)(std::io::Error::other(
                "copier panicked",
            )))
        }
    }
    check()?;
    if outcome.interrupted {
        return Err(BuildError::Interrupted {
            signal: libc::SIGINT,
        });
    }
    for w in &outcome.warnings {
        eprintln!("nsroot: warning: {w}");
    }
    let note: String = outcome
        .full
        .iter()
        .map(|m| {
            format!(
                "\n{} is full: its limit is {} MiB (raise it with [build] tmpfs_size or --tmpfs-size)",
                m.display(),
                layout.tmpfs_size >> 20
            )
        })
        .collect();
    // The messages name the log's final path: it is there when they are printed.
    if let Some((i, code)) = outcome.steps.iter().enumerate().find(|(_, c)| **c != 0) {
        return Err(BuildError::StepFailed {
            step: steps[i].name.clone(),
            command: recipe_command(&steps[i]),
            code: *code,
            note,
            tail: log.tail(TAIL_LINES),
            log: log.path.display().to_string(),
        });
    }
    if outcome.steps.len() != steps.len() {
        return Err(BuildError::StepFailed {
            step: "the build".into(),
            command: "nsroot".into(),
            code: outcome.code,
            note,
            tail: log.tail(TAIL_LINES),
            log: log.path.display().to_string(),
        });
    }
    let records = records.unwrap_or_default();
    let lookup: &dyn Lookup = &records;

    // Check the .deb metadata against the installed tree before any archive is written.
    if let (true, Some(d)) = (formats.contains(&OutputFormat::Deb), &recipe.deb) {
        deb::check_tree(&recipe.file, d, &layout.destdir)?;
    }
    for (format, what, paths) in [
        (
            OutputFormat::Rpm,
            "[rpm] config_files",
            recipe.rpm.config_files.clone(),
        ),
        (
            OutputFormat::PkgTarZst,
            "[arch] backup",
            recipe
                .pacman
                .backup
                .iter()
                .map(|b| format!("/{b}"))
                .collect(),
        ),
    ] {
        if formats.contains(&format) {
            deb::check_config_files(&recipe.file, what, &paths, &layout.destdir)?;
        }
    }
    // The .rpm and .pkg.tar.zst writers read the tree as the archive writer packs it.
    let mut tree: Option<PathBuf> = None;
    let mut packed_tree = || -> Result<PathBuf, BuildError> {
        if let Some(t) = &tree {
            return Ok(t.clone());
        }
        let t = dir.join("tree.tar");
        let mut popts = PackOptions::new(archive::Format::Tar);
        popts.mtime_clamp = Some(sde);
        popts.xattrs = true;
        archive::pack(
            &layout.destdir,
            &archive::Output::Path(t.clone()),
            &popts,
            Some(lookup),
        )?;
        tree = Some(t.clone());
        Ok(t)
    };
    let pack_started = Instant::now();
    let mut outputs = Vec::new();
    for format in formats {
        check()?;
        let out = out_dir.join(format!("{stem}.{}", format.extension()));
        match (format, format.archive_format()) {
            (_, Some(f)) => {
                let mut popts = PackOptions::new(f);
                popts.mtime_clamp = Some(sde);
                popts.jobs = opts.jobs.clamp(1, 8);
                popts.xattrs = true;
                archive::pack(
                    &layout.destdir,
                    &archive::Output::Path(out.clone()),
                    &popts,
                    Some(lookup),
                )?;
            }
            (OutputFormat::Rpm, None) => rpm::write_rpm(
                &recipe.package_meta(),
                &recipe.rpm,
                &packed_tree()?,
                &layout.destdir,
                sde,
                &out,
            )?,
            (OutputFormat::PkgTarZst, None) => pacman::write_pacman(
                &recipe.package_meta(),
                &recipe.pacman,
                &packed_tree()?,
                &layout.destdir,
                Some(lookup),
                sde,
                opts.jobs.clamp(1, 8),
                &out,
            )?,
            (_, None) => {
                let data = dir.join("data.tar.xz");
                let mut popts = PackOptions::new(archive::Format::TarXz);
                popts.mtime_clamp = Some(sde);
                archive::pack(
                    &layout.destdir,
                    &archive::Output::Path(data.clone()),
                    &popts,
                    Some(lookup),
                )?;
                deb::write_deb(
                    &recipe.package_meta(),
                    deb::require(&recipe.file, recipe.deb.as_ref())?,
                    &layout.destdir,
                    &data,
                    "data.tar.xz",
                    sde,
                    &out,
                )?;
            }
        }
        let sha = crate::fsutil::sha256_file(&out).map_err(io("read", &out))?;
        outputs.push((out, sha));
    }

    let manifest_path = out_dir.join(format!("{stem}.manifest.json"));
    let manifest = Manifest {
        recipe: recipe.file.display().to_string(),
        recipe_sha256: recipe.recipe_sha256.clone(),
        source_sha256: source_hash,
        source_date_epoch: sde,
        nsroot_version: env!("CARGO_PKG_VERSION").into(),
        outputs: outputs
            .iter()
            .map(|(p, sha)| ManifestOutput {
                file: p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: sha.clone(),
            })
            .collect(),

        clock_offset_secs: opts
            .clock_offset_secs
            .filter(|_| outcome.clocks_refused.is_none()),
        clocks_refused: outcome.clocks_refused.clone(),
        kernel: sys::kernel_release(),
        exit_reason: "success".into(),
        warnings: outcome.warnings.clone(),
        durations: Durations {
            // From the start of `nsroot build`: recipe checks, sources, sandbox, steps, archives.
            total_secs: round_ms(started.elapsed().as_secs_f64()),
            steps_secs: round_ms(steps_secs),
            pack_secs: round_ms(pack_started.elapsed().as_secs_f64()),
        },
    };
    check()?;
    let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    text.push('\n');
    write_atomically(&manifest_path, text.as_bytes())?;
    Ok(BuildResult {
        outputs,
        log: log.path.clone(),
        manifest: manifest_path,
        record: manifest,
        kept: None,
    })
}

/// The build log, written live at its final path `<out>/<stem>.build.log`, so that
/// `tail -f` follows a build and a failure message names a file that has the whole log.
///
/// It is locked (`flock`) for the whole build: a second build of the same recipe into the
/// same directory waits for the first to end (and says so) instead of writing into its log.
/// The lock dies with the build's last process, however it ends.
struct BuildLog {
    /// Open and locked; the steps write through duplicates of it.
    file: sys::FileLock,
    path: PathBuf,
}

impl BuildLog {
    fn create(out_dir: &Path, stem: &str) -> Result<BuildLog, BuildError> {
        let path = out_dir.join(format!("{stem}.build.log"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io("create", &path))?;
        let lock_err = |e: sys::SysError| io("lock", &path)(std::io::Error::from(e.errno));
        let waiting = file.try_clone().map_err(io("open", &path))?;
        let file = match sys::try_lock(file).map_err(lock_err)? {
            Some(locked) => locked,
            None => {
                eprintln!(
                    "nsroot: another build is writing {}; waiting for it to end",
                    path.display()
                );
                sys::lock(waiting).map_err(lock_err)?
            }
        };
        // Only now that the log is ours: the previous build's log gives way to this one's.
        file.set_len(0).map_err(io("truncate", &path))?;
        Ok(BuildLog { file, path })
    }

    /// A descriptor of the log for the steps' output.
    fn file(&self) -> Result<File, BuildError> {
        self.file
            .try_clone()
            .map_err(io("duplicate the descriptor of", &self.path))
    }

    /// The last `n` lines written so far.
    fn tail(&self, n: usize) -> String {
        tail(&self.path, n)
    }
}

/// The manifest written beside the outputs (`<stem>.manifest.json`): what went in, what came
/// out, and the facts of the run a collector (or `nsroot repro`) needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The recipe file, as given.
    pub recipe: String,
    /// sha256 of the recipe file.
    pub recipe_sha256: String,
    /// sha256 over the sources as materialized.
    pub source_sha256: String,
    /// The SOURCE_DATE_EPOCH every output's times are clamped to.
    pub source_date_epoch: u64,
    /// The nsroot that built.
    pub nsroot_version: String,
    /// Each output file (name in the output directory) with its sha256.
    pub outputs: Vec<ManifestOutput>,
    /// How far the sandbox's monotonic and boot-time clocks were shifted, when they were.
    #[serde(default)]
    pub clock_offset_secs: Option<i64>,
    /// Why the kernel refused a clock shift that was asked for, when it did.
    #[serde(default)]
    pub clocks_refused: Option<String>,
    /// The kernel release the build ran on (uname -r).
    #[serde(default)]
    pub kernel: String,
    /// How the build ended: `success` in a manifest (a failed build writes none; `nsroot
    /// build --json` reports it with [`BuildError::kind`]).
    #[serde(default)]
    pub exit_reason: String,
    /// Fallbacks the sandbox took (a container's /proc used as it is, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How long the build took.
    #[serde(default)]
    pub durations: Durations,
}

/// A build's times, in seconds (to the millisecond).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Durations {
    /// The whole build, up to the manifest.
    pub total_secs: f64,
    /// The sandbox: set-up and every step.
    pub steps_secs: f64,
    /// The archives and the .deb.
    pub pack_secs: f64,
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// One output of a build, in the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ManifestOutput {
    /// The file name in the output directory.
    pub file: String,
    /// Its sha256, in hex.
    pub sha256: String,
}

impl Manifest {
    /// Reads a manifest that `nsroot build` wrote.
    ///
    /// Errors: the file cannot be read or is not a manifest.
    pub fn read(path: &Path) -> Result<Manifest, BuildError> {
        // Bounded: a manifest is a few hundred bytes per output.
        let mut text = Vec::new();
        File::open(path)
            .and_then(|f| f.take(16 << 20).read_to_end(&mut text))
            .map_err(io("read", path))?;
        serde_json::from_slice(&text).map_err(|e| io("parse", path)(std::io::Error::other(e)))
    }
}

/// The recipe's steps, in order, each `sh -e -c STEP`.
fn steps_of(recipe: &Recipe) -> Vec<Step> {
    let mut steps = Vec::new();
    for (section, list) in [
        ("[build] steps", &recipe.build.steps),
        ("[build] check", &recipe.build.check),
        ("[install] steps", &recipe.install.steps),
    ] {
        for (i, cmd) in list.iter().enumerate() {
            steps.push(Step {
                name: format!("step {} of {section}", i + 1),
                argv: vec!["/bin/sh".into(), "-e".into(), "-c".into(), cmd.into()],
                interactive: false,
            });
        }
    }
    steps
}

fn recipe_command(step: &Step) -> String {
    step.argv
        .last()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` as a build path other than [`BUILD_SRC`]: absolute, normal components only, below
/// /build/ and clear of the directories the sandbox puts there itself.
///
/// Errors: an [`InputError`](crate::error::InputError) naming the value.
pub fn src_dir(path: &Path) -> Result<PathBuf, crate::error::InputError> {
    use std::path::Component;
    // Collected from its components: `/build/./src` is `/build/src`.
    let p: PathBuf = path.components().collect();
    let normal = p.is_absolute()
        && p.components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)));
    let taken = [BUILD_DESTDIR, BUILD_HOME]
        .iter()
        .any(|t| p.starts_with(t) || Path::new(t).starts_with(&p));
    if !normal || !p.starts_with("/build") || p.components().count() < 3 || taken {
        return Err(crate::error::InputError::new(format!(
            "build path {}: not a directory below /build/ (other than {BUILD_DESTDIR} and \
             {BUILD_HOME})",
            crate::recipe::shown_path(path)
        )));
    }
    Ok(p)
}

/// The fixed environment of every step: nothing leaks in from the caller. Every variable set
/// here is in [`crate::recipe::FIXED_ENV`], so a recipe's `env` cannot set it (a unit test
/// checks).
fn environment(recipe_env: &BTreeMap<String, String>, sde: u64, jobs: usize) -> Vec<OsString> {
    let mut env = recipe_env.clone();
    for (k, v) in [
        ("PATH", BUILD_PATH.to_string()),
        ("HOME", BUILD_HOME.to_string()),
        ("DESTDIR", BUILD_DESTDIR.to_string()),
        ("SOURCE_DATE_EPOCH", sde.to_string()),
        ("TZ", "UTC".into()),
        ("LC_ALL", "C.UTF-8".into()),
        ("LANG", "C.UTF-8".into()),
        ("NSROOT", "1".into()),
        // As fakeroot's: scripts test it (makepkg, abuild). A fixed value, since a build's
        // environment must not vary; a nested nsroot finds the session by its supervisor.
        (crate::sandbox::SESSION_VAR, "1".into()),
        ("NSROOT_JOBS", jobs.to_string()),
        ("TMPDIR", "/tmp".into()),
        ("SHELL", "/bin/sh".into()),
        ("USER", "root".into()),
        ("LOGNAME", "root".into()),
        ("TERM", "dumb".into()),
    ] {
        env.insert(k.into(), v);
    }
    env.into_iter()
        .map(|(k, v)| OsString::from(format!("{k}={v}")))
        .collect()
}

/// The last `n` lines of the log (bounded: reads at most the last 64 KiB).
fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let tmp = AtomicFile::create(path, 0o644).map_err(io("create a temporary file for", path))?;
    tmp.file().write_all(bytes).map_err(io("write", path))?;
    tmp.commit().map_err(io("put in place", path))
}

/// A build's private scratch directory: removed when dropped (even where the build left
/// directories without write permission), unless kept. Its `pid` file stays locked
/// (`flock`) while the build lives, so a later build reclaims the directory of one that was
/// killed, and never one that runs (whatever pid namespace either is in).
struct Scratch {
    path: Option<PathBuf>,
    _lock: Option<sys::FileLock>,
}

impl Scratch {
    fn create(name: &str) -> Result<Scratch, BuildError> {
        let base = std::env::temp_dir();
        reclaim_stale(&base);
        // The name carries the creator's pid: a build killed before its pid file exists
        // leaves a directory that reclaim_stale can still tell is nobody's.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{name}-p{}-", std::process::id()))
            .tempdir_in(&base)
            .map_err(io("create a scratch directory in", &base))?
            .keep();
        // Locked before it gets the name reclaim_stale looks for, so no other build can ever
        // see it unlocked while this one lives.
        let (new, pid) = (dir.join("pid.new"), dir.join("pid"));
        std::fs::write(&new, std::process::id().to_string()).map_err(io("write", &new))?;
        let file = File::open(&new).map_err(io("open", &new))?;
        let lock = sys::try_lock(file).map_err(|e| io("lock", &new)(e.errno.into()))?;
        std::fs::rename(&new, &pid).map_err(io("rename", &new))?;
        Ok(Scratch {
            path: Some(dir),
            _lock: lock,
        })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    fn keep(mut self) -> PathBuf {
        let path = self.path.take().unwrap_or_default();
        // Marked kept, then without its pid file: a kept tree is never reclaimed.
        let _ = File::create(path.join(KEPT));
        let _ = std::fs::remove_file(path.join("pid"));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            crate::fsutil::remove_tree(&p);
        }
    }
}

/// Removes scratch directories of this user's builds that no build holds any more (their
/// `pid` file is not locked), saying so.
fn reclaim_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let (uid, _) = sys::ids();
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let path = e.path();
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == uid => {}
            _ => continue,
        }
        let creator = creator_pid(&e.file_name().to_string_lossy());
        // Held, where there is a pid file, until the tree is gone.
        let _lock = match File::open(path.join("pid")) {
            // Locked while its build lives, in whatever pid namespace that build runs.
            Ok(file) => match sys::try_lock(file) {
                Ok(Some(lock)) => Some(lock),
                _ => continue,
            },
            // No pid file: a kept tree, or one whose build was killed (or is now) between
            // making the directory and locking its pid file. The creator's pid in the name
            // tells: gone from this pid namespace, it is stale. (A creator in another pid
            // namespace that shows no such pid here is only in that window for microseconds.)
            Err(_) => {
                let gone = !path.join(KEPT).exists()
                    && creator.is_some_and(|pid| !sys::process_exists(sys::Pid::from_raw(pid)));
                if !gone {
                    continue;
                }
                None
            }
        };
        let pid = std::fs::read_to_string(path.join("pid"))
            .map(|p| p.trim().to_string())
            .ok()
            .or_else(|| creator.map(|p| p.to_string()))
            .unwrap_or_default();
        eprintln!(
            "nsroot: reclaimed {} left by an interrupted build (pid {pid})",
            path.display()
        );
        crate::fsutil::remove_tree(&path);
    }
}

/// The marker of a scratch directory kept with `--keep`.
const KEPT: &str = "kept";

/// The creator's pid in a scratch directory's name (`nsroot-build-NAME-pPID-XXXXXX`).
fn creator_pid(name: &str) -> Option<i32> {
    let (rest, _random) = name.rsplit_once('-')?;
    let (_, pid) = rest.rsplit_once("-p")?;
    pid.parse().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_carry_their_creator() {
        assert_eq!(creator_pid("nsroot-build-hello-p1234-AbC123"), Some(1234));
        assert_eq!(creator_pid("nsroot-build-a-p-b-p77-x9"), Some(77));
        assert_eq!(creator_pid("nsroot-build-hello-AbC123"), None);
        assert_eq!(creator_pid("nsroot-build-hello-p0-AbC123"), None);
    }

    #[test]
    fn a_recipe_may_set_no_variable_the_build_sets() {
        let recipe_env = BTreeMap::from([("CFLAGS".to_string(), "-O2".to_string())]);
        let env = environment(&recipe_env, 1, 2);
        for var in &env {
            let var = var.to_string_lossy();
            let key = var.split_once('=').map_or(var.as_ref(), |(k, _)| k);
            assert!(
                key == "CFLAGS" || crate::recipe::FIXED_ENV.contains(&key),
                "{key} is set by the build but a recipe may set it too"
            );
        }
        assert!(env.iter().any(|v| v == "CFLAGS=-O2"));
    }

    #[test]
    fn repro_build_dirs_stay_below_build_and_clear_of_destdir_and_home() {
        for (ok, is) in [
            ("/build/src", "/build/src"),
            ("/build/run2/src", "/build/run2/src"),
            ("/build/./src/", "/build/src"),
        ] {
            assert_eq!(src_dir(ok.as_ref()).unwrap(), PathBuf::from(is), "{ok}");
        }
        for bad in [
            "build/src",
            "/build",
            "/build/",
            "/build/destdir",
            "/build/destdir/x",
            "/build/home",
            "/build/../etc",
            "/tmp/src",
            "",
        ] {
            let e = src_dir(bad.as_ref()).unwrap_err().to_string();
            assert!(e.contains("not a directory below /build/"), "{bad}: {e}");
        }
    }
}
