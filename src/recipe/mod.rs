//! Recipes: parse and validate recipe.toml into a typed value, and prepare its sources.
//!
//! [`Recipe::load`] reads the file, checks it strictly (unknown keys, wrong types, missing keys,
//! bad names and versions, sources escaping the recipe directory) and returns a typed value.
//! Every problem is a one-line [`RecipeError`] naming the file, the line and the key, with an
//! [`InputError`] in its source chain so that nsroot exits 2. The format is documented in
//! `recipes/README.md`.
//!
//! Besides reading files, this module only touches the file system in [`Source::materialize`]
//! (extracting an archive into scratch space) and in the source-tree walks.

mod deb;
mod rpm;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::error::InputError;
use crate::package::deb::DebMeta;
use crate::package::pacman::PacmanMeta;
use crate::package::rpm::RpmMeta;
use crate::package::OutputFormat;

pub use source::Compression;

/// Environment variables the sandbox sets itself; a recipe's `[build] env` may not set them.
pub const FIXED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "DESTDIR",
    "SOURCE_DATE_EPOCH",
    "TZ",
    "LC_ALL",
    "NSROOT",
    "FAKEROOTKEY",
    "NSROOT_JOBS",
    "LANG",
    "TMPDIR",
    "SHELL",
    "USER",
    "LOGNAME",
    "TERM",
];

/// Errors from loading a recipe or preparing its sources.
///
/// Every variant caused by the recipe or its sources has an [`InputError`] as its source, so the
/// binary exits 2 for them; only [`RecipeError::Io`] (a failure of the machine, not of the
/// input) exits 1. Print the chain (`{:#}` with anyhow) to see the whole one-line message.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The recipe file is unreadable, malformed or invalid; `line` is 1-based.
    #[error("{}", Location { file, line: *line })]
    Invalid {
        /// The recipe file, as the user named it.
        file: PathBuf,
        /// The line of the offending key or value, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        #[source]
        reason: InputError,
    },
    /// A source archive does not match its sha256 or holds an unsafe or unsupported entry.
    #[error("source archive {}", path.display())]
    BadSource {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        #[source]
        reason: InputError,
    },
    /// An I/O failure while reading sources or writing scratch space.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
}

/// The most characters of a name or value that a message shows.
const SHOWN_CHARS: usize = 100;

/// A name or value (a key, a table, a string from the recipe) as messages
/// show it: its first [`SHOWN_CHARS`] characters, then `...` when there are more. A recipe may
/// hold a key of megabytes; its error must still be one readable line.
pub(crate) fn shown(s: &str) -> String {
    cut(s, SHOWN_CHARS)
}

/// A path as messages show it: cut like [`shown`], but after four times as much, since a
/// path the user gave holds directories of their own before the recipe's part.
pub(crate) fn shown_path(p: &Path) -> String {
    cut(&p.display().to_string(), 4 * SHOWN_CHARS)
}

/// The first `max` characters of `s`, then `...` when there are more.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A message from the TOML parser with every quoted name or value in it (`"..."`, `` `...` ``)
/// cut by [`shown`]: serde puts the offending value in its messages.
fn shown_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(1024));
    let mut rest = msg;
    while let Some(open) = rest.find(['"', '`']) {
        let q = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let close = body.find(q).unwrap_or(body.len());
        out.push_str(&shown(&body[..close]));
        rest = &body[close..];
        if let Some(r) = rest.strip_prefix(q) {
            out.push(q);
            rest = r;
        }
    }
    out.push_str(rest);
    shown_long(&out)
}

/// A whole message cut to ten names' worth, in case it holds an unquoted value.
fn shown_long(msg: &str) -> String {
    cut(msg, 10 * SHOWN_CHARS)
}

/// `file:line` (or just `file`) for messages.
struct Location<'a> {
    file: &'a Path,
    line: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

impl RecipeError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> RecipeError {
        crate::error::io_at(action, path)(source)
    }
}

/// A validated recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The recipe file as the user named it (used in messages).
    pub file: PathBuf,
    /// The canonical path of the recipe file.
    pub path: PathBuf,
    /// The canonical directory holding the recipe; sources and scripts are relative to it.
    pub recipe_dir: PathBuf,
    /// Lowercase hex sha256 of the recipe file's bytes.
    pub recipe_sha256: String,
    /// `[package]`.
    pub package: Package,
    /// `[source]`.
    pub source: Source,
    /// `[build]`.
    pub build: Build,
    /// `[install]`.
    pub install: Install,
    /// `[output]`.
    pub output: Output,
    /// `[deb]`, the Debian metadata of the `.deb` output.
    pub deb: Option<DebMeta>,
    /// `[rpm]`, the `.rpm`'s control data, with what `[deb]` says filled in (its conffiles as
    /// config files, its maintainer as packager) where `[rpm]` does not say; the defaults
    /// without an `[rpm]` table.
    pub rpm: RpmMeta,
    /// `[arch]`, the `.pkg.tar.zst`'s control data, with `[deb]`'s conffiles as backup files
    /// and its maintainer as packager where `[arch]` does not say.
    pub pacman: PacmanMeta,
}

/// `[package]`: what is being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Debian package name rules: `[a-z0-9][a-z0-9+.-]+`.
    pub name: String,
    /// Upstream version, optionally with an epoch (`1:2.0`).
    pub version: String,
    /// Package release (Debian revision), default `"1"`.
    pub release: String,
    /// dpkg architecture name (`amd64`, `arm64`, `all`...), default the host's.
    pub arch: String,
    /// One-line summary.
    pub summary: String,
    /// License (SPDX expression, free text).
    pub license: Option<String>,
    /// The extended description (`[deb] description`), shared by every package format.
    pub description: Option<String>,
    /// The home page (`[deb] homepage`), shared by every package format.
    pub homepage: Option<String>,
    /// A fixed SOURCE_DATE_EPOCH; when absent it comes from the sources' mtimes.
    pub source_date_epoch: Option<u64>,
}

/// `[source]`: where the sources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No `[source]` table: the build starts in an empty directory.
    None,
    /// `path = "src"`: a directory beside the recipe, used in place and never modified.
    Path {
        /// Canonical path of the directory, inside the recipe directory.
        dir: PathBuf,
    },
    /// `archive = "x.tar.gz"`, checked by sha256 and extracted into scratch space.
    Archive {
        /// Canonical path of the archive, inside the recipe directory.
        file: PathBuf,
        /// Expected lowercase hex sha256 of the archive file.
        sha256: String,
        /// Leading path components to drop from each entry (as `tar --strip-components`).
        strip_components: u32,
    },
}

/// `[build]`: the build and check steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Build {
    /// Extra environment for every step (never one of [`FIXED_ENV`]).
    pub env: BTreeMap<String, String>,
    /// Build steps, each run as `sh -e -c STEP` in the source directory.
    pub steps: Vec<String>,
    /// Check (test) steps, run after the build steps.
    pub check: Vec<String>,
    /// The size limit of each of the sandbox's tmpfs mounts (`/tmp`, `/build/home`,
    /// `/dev/shm`), in bytes: `tmpfs_size = "4G"`; None for the default
    /// ([`crate::sandbox::plan::DEFAULT_TMPFS_SIZE`]).
    pub tmpfs_size: Option<u64>,
}

/// `[install]`: steps that write into `$DESTDIR`, as root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Install {
    /// Install steps, each run as `sh -e -c STEP` in the source directory.
    pub steps: Vec<String>,
}

/// `[output]`: what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Output formats, in the recipe's order, without duplicates; never empty.
    pub formats: Vec<OutputFormat>,
}

impl Recipe {
    /// Reads, parses and validates the recipe at `path`.
    ///
    /// Errors: [`RecipeError::Invalid`] for an unreadable file, bad TOML, unknown or missing
    /// keys, wrong types, invalid values, and sources that are missing or escape the recipe
    /// directory; each names the file, the line (when known) and the key.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let invalid = |line, msg: String| RecipeError::Invalid {
            file: path.to_path_buf(),
            line,
            reason: InputError::new(msg),
        };
        let bytes = std::fs::read(path)
            .map_err(|e| invalid(None, format!("cannot read the recipe: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| invalid(None, format!("the recipe is not UTF-8: {e}")))?;
        let canonical = path
            .canonicalize()
            .map_err(|e| invalid(None, format!("cannot resolve the recipe's path: {e}")))?;
        let recipe_dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
        let parsed = parse(&text, path)?;
        let ctx = Ctx {
            file: path,
            text: &text,
        };
        let source = parsed.source.resolve(&recipe_dir, &ctx)?;
        let deb = parsed
            .deb
            .map(|d| d.resolve(&recipe_dir, &ctx))
            .transpose()?;
        let conffiles = deb
            .as_ref()
            .map(|d| d.conffiles.clone())
            .unwrap_or_default();
        let maintainer = deb.as_ref().and_then(|d| d.maintainer.clone());
        let rpm = match parsed.rpm {
            Some(r) => {
                let config_files = r.config_files.clone();
                let mut meta = r.resolve(&recipe_dir, &ctx)?;
                meta.config_files = config_files.unwrap_or_else(|| conffiles.clone());
                meta
            }
            None => RpmMeta {
                config_files: conffiles.clone(),
                ..RpmMeta::default()
            },
        };
        let rpm = RpmMeta {
            packager: maintainer.clone(),
            ..rpm
        };
        let (backup, arch) = match parsed.arch {
            Some(a) => (a.backup.clone(), a.resolve(&recipe_dir, &ctx)?),
            None => (None, PacmanMeta::default()),
        };
        let pacman = PacmanMeta {
            backup: backup.unwrap_or_else(|| {
                conffiles
                    .iter()
                    .map(|c| c.trim_start_matches('/').to_string())
                    .collect()
            }),
            packager: maintainer,
            ..arch
        };
        Ok(Recipe {
            file: path.to_path_buf(),
            path: canonical,
            recipe_dir,
            recipe_sha256: hex::encode(Sha256::digest(text.as_bytes())),
            package: parsed.package,
            source,
            build: parsed.build,
            install: parsed.install,
            output: parsed.output,
            deb,
            rpm,
            pacman,
        })
    }

    /// `<name>_<version>-<release>_<arch>`, the stem of every output file (the epoch, if any,
    /// is left out, as in Debian's file names).
    pub fn output_stem(&self) -> String {
        let m = self.package_meta();
        format!(
            "{}_{}-{}_{}",
            m.name,
            m.upstream_version(),
            m.release,
            m.arch
        )
    }

    /// What the package writers need to know of the package ([`crate::package::Meta`]).
    pub fn package_meta(&self) -> crate::package::Meta {
        let p = &self.package;
        crate::package::Meta {
            file: self.file.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            release: p.release.clone(),
            arch: p.arch.clone(),
            summary: p.summary.clone(),
            description: p.description.clone(),
            homepage: p.homepage.clone(),
            license: p.license.clone(),
        }
    }

    /// Checks that the recipe can give `formats` (which `nsroot build --format` may choose
    /// against the recipe's `[output]`): an `.rpm` needs a license and an RPM version, a
    /// `.pkg.tar.zst` a pacman version. (`.deb`'s maintainer is
    /// [`crate::package::deb::require`].)
    ///
    /// Errors: [`RecipeError::Invalid`] naming the file and what to add.
    pub fn check_formats(&self, formats: &[OutputFormat]) -> Result<(), RecipeError> {
        let meta = self.package_meta();
        let fail = |format: OutputFormat, why: String| RecipeError::Invalid {
            file: self.file.clone(),
            line: None,
            reason: InputError::new(format!("--format {}: {why}", format.extension())),
        };
        if formats.contains(&OutputFormat::Rpm) {
            crate::package::rpm::license(&meta, &self.rpm)
                .map_err(|why| fail(OutputFormat::Rpm, why.into()))?;
            crate::package::rpm::version_rule(&meta)
                .map_err(|why| fail(OutputFormat::Rpm, format!("[package] {why}")))?;
        }
        if formats.contains(&OutputFormat::PkgTarZst) {
            crate::package::pacman::version_rule(&meta)
                .map_err(|why| fail(OutputFormat::PkgTarZst, format!("[package] {why}")))?;
        }
        Ok(())
    }

    /// The full package version: `[epoch:]version-release`.
    pub fn full_version(&self) -> String {
        self.package_meta().full_version()
    }

    /// SOURCE_DATE_EPOCH for the build: the recipe's value, else the newest mtime of any
    /// non-directory entry under `source_dir` (symlinks not followed), else 0 for an empty tree.
    ///
    /// Errors: [`RecipeError::Io`] when the tree cannot be walked.
    pub fn source_date_epoch(&self, source_dir: &Path) -> Result<u64, RecipeError> {
        match self.package.source_date_epoch {
            Some(t) => Ok(t),
            None => source::newest_mtime(source_dir),
        }
    }

    /// A sha256 (lowercase hex) over the sorted source tree: paths, modes, file contents and
    /// link targets, for the build manifest.
    ///
    /// Errors: [`RecipeError::Io`] when the tree cannot be read.
    pub fn source_hash(&self, source_dir: &Path) -> Result<String, RecipeError> {
        source::tree_hash(source_dir)
    }
}

/// The recipe's text and file, to turn spans into lines in messages.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        1 + self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// An error at the line of `span`.
    fn at(&self, span: Range<usize>, msg: impl Into<String>) -> RecipeError {
        RecipeError::Invalid {
            file: self.file.to_path_buf(),
            line: Some(self.line_of(span)),
            reason: InputError::new(msg),
        }
    }

    /// The span of the header line of table `name` (`[name]`), when the text has one.
    fn table_header(&self, name: &str) -> Option<Range<usize>> {
        let header = format!("[{name}]");
        let mut start = 0;
        for line in self.text.split_inclusive('\n') {
            let code = line.split('#').next().unwrap_or("").trim();
            if code == header {
                return Some(start..start + line.len());
            }
            start += line.len();
        }
        None
    }

    /// An error with no line (the whole file).
    fn whole(&self, msg: impl Into<String>) -> RecipeError {
        RecipeError::Invalid {
            file: self.file.to_path_buf(),
            line: None,
            reason: InputError::new(msg),
        }
    }
}

// ---- The raw TOML shape: serde structs with spans, checked by `validate`. ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    package: Spanned<RawPackage>,
    source: Option<Spanned<RawSource>>,
    build: Option<RawBuild>,
    install: Option<RawInstall>,
    output: Option<RawOutput>,
    deb: Option<deb::RawDeb>,
    rpm: Option<rpm::RawRpm>,
    arch: Option<rpm::RawArch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: Spanned<String>,
    version: Spanned<String>,
    release: Option<Spanned<String>>,
    arch: Option<Spanned<String>>,
    summary: Spanned<String>,
    license: Option<Spanned<String>>,
    source_date_epoch: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<Spanned<String>>,
    archive: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    strip_components: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    steps: Option<Vec<Spanned<String>>>,
    check: Option<Vec<Spanned<String>>>,
    tmpfs_size: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstall {
    steps: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    formats: Spanned<Vec<Spanned<String>>>,
}

/// The keys each table accepts, for "unknown key" messages. A unit test keeps these in step
/// with the structs above.
const TABLE_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "package", "source", "build", "install", "output", "deb", "rpm", "arch",
        ],
    ),
    (
        "package",
        &[
            "name",
            "version",
            "release",
            "arch",
            "summary",
            "license",
            "source_date_epoch",
        ],
    ),
    ("source", &["path", "archive", "sha256", "strip_components"]),
    ("build", &["env", "steps", "check", "tmpfs_size"]),
    ("install", &["steps"]),
    ("output", &["formats"]),
    ("deb", deb::KEYS),
    ("rpm", rpm::RPM_KEYS),
    ("arch", rpm::ARCH_KEYS),
];

/// A parsed recipe before the file-system checks of its source.
struct Parsed {
    package: Package,
    source: UnresolvedSource,
    build: Build,
    install: Install,
    output: Output,
    deb: Option<deb::UnresolvedDeb>,
    rpm: Option<rpm::UnresolvedRpm>,
    arch: Option<rpm::UnresolvedArch>,
}

/// `[source]` after lexical checks, before it is resolved against the recipe directory.
enum UnresolvedSource {
    None,
    Path(Spanned<String>),
    Archive {
        archive: Spanned<String>,
        sha256: String,
        strip_components: u32,
    },
}

/// Parses and checks everything that needs no file system: TOML shape, names, versions,
/// env, steps, formats.
fn parse(text: &str, file: &Path) -> Result<Parsed, RecipeError> {
    let ctx = Ctx { file, text };
    let raw: RawRecipe = toml::from_str(text).map_err(|e| toml_error(&ctx, &e))?;
    validate::check(&ctx, raw)
}

/// Turns a toml/serde error into `file:line: message` naming the key.
fn toml_error(ctx: &Ctx, e: &toml::de::Error) -> RecipeError {
    let msg = shown_quoted(&e.message().trim().replace('\n', " "));
    let span = e.span();
    let reason = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let key = shown(key);
        let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        match TABLE_KEYS
            .iter()
            .find(|(_, keys)| *keys == expected.as_slice())
        {
            Some(("", keys)) => format!(
                "unknown top-level key \"{key}\" (expected one of the tables: [{}])",
                keys.join("], [")
            ),
            Some((table, keys)) => {
                format!(
                    "unknown key \"{key}\" in [{table}] (expected one of: {})",
                    keys.join(", ")
                )
            }
            None => format!("unknown key \"{key}\""),
        }
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        let table = span
            .clone()
            .and_then(|s| table_header_before(ctx.text, s.start))
            .map(|t| shown(&t));
        let in_table = |t: &str| {
            TABLE_KEYS
                .iter()
                .any(|(n, keys)| *n == t && keys.contains(&key))
        };
        match table {
            Some(table) if in_table(&table) => format!("missing key \"{key}\" in [{table}]"),
            _ if in_table("") => format!("missing table [{key}]"),
            _ => format!("missing key \"{key}\""),
        }
    } else {
        let start = span.clone().map(|s| s.start);
        let key_table = |s| Some((key_at(ctx.text, s)?, table_header_before(ctx.text, s)));
        match start.and_then(key_table) {
            Some((key, Some(table))) => {
                format!("key \"{}\" in [{}]: {msg}", shown(&key), shown(&table))
            }
            Some((key, None)) => format!("key \"{}\": {msg}", shown(&key)),
            None => msg,
        }
    };
    match span {
        Some(s) => ctx.at(s, reason),
        None => ctx.whole(reason),
    }
}

/// The name of the `[table]` whose header is the last one at or before byte `pos`.
fn table_header_before(text: &str, pos: usize) -> Option<String> {
    // The line holding `pos` counts: a span may start at the header itself.
    let pos = pos.min(text.len());
    let end = text[pos..].find('\n').map_or(text.len(), |n| pos + n);
    text[..end].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?.trim();
        (!inner.is_empty() && !inner.starts_with('[')).then(|| inner.to_string())
    })
}

/// The key on the line holding byte `pos`, for `key = value` lines.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let pos = pos.min(text.len());
    let start = text[..pos].rfind('\n').map_or(0, |n| n + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_string())
}

#[cfg(test)]
mod tests;
