//! Recipe validation: the rules a recipe's values must follow, checked before anything runs.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use toml::Spanned;

use super::{
    shown, shown_path, Build, Ctx, Install, Output, Package, Parsed, RawRecipe, RecipeError,
    Source, UnresolvedSource, FIXED_ENV,
};
use crate::package::{host_arch, OutputFormat};

/// Checks Debian's package name rules: `[a-z0-9][a-z0-9+.-]+`.
pub(crate) fn package_name(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(
            "not a valid package name (at least 2 characters: lowercase letters, digits, \
             '+', '-', '.', starting with a letter or digit)"
                .into(),
        )
    }
}

/// Checks an upstream version with an optional epoch: `[digits:]digit[A-Za-z0-9.+~-]*`.
pub(crate) fn version(v: &str) -> Result<(), String> {
    let upstream = match v.split_once(':') {
        Some((epoch, rest)) => {
            if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the epoch (before ':') must be a number".into());
            }
            rest
        }
        None => v,
    };
    if !upstream.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err("not a valid version (it must start with a digit)".into());
    }
    if let Some(c) = upstream
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ".+~-".contains(c)))
    {
        return Err(format!(
            "not a valid version ({c:?} is not allowed: use letters, digits, '.', '+', '~', '-')"
        ));
    }
    if upstream.contains("..") {
        return Err("not a valid version (\"..\" is not allowed)".into());
    }
    Ok(())
}

/// Checks a release (Debian revision): `[A-Za-z0-9+.~]+`, starting with a letter or digit.
pub(crate) fn release(r: &str) -> Result<(), String> {
    if !r.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric) {
        return Err("not a valid release (it must start with a letter or digit)".into());
    }
    if let Some(c) = r
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ".+~".contains(c)))
    {
        return Err(format!(
            "not a valid release ({c:?} is not allowed: use letters, digits, '.', '+', '~')"
        ));
    }
    if r.contains("..") {
        return Err("not a valid release (\"..\" is not allowed)".into());
    }
    Ok(())
}

/// Checks a dpkg architecture name: `all`, `any` excluded, `[a-z0-9][a-z0-9-]*`.
pub(crate) fn arch(a: &str) -> Result<(), String> {
    let ok = a
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && a != "any";
    if ok {
        Ok(())
    } else {
        Err("not a valid architecture (use dpkg's names: amd64, arm64, all...)".into())
    }
}

/// Checks a shell variable name that the sandbox does not set itself.
pub(crate) fn env_key(k: &str) -> Result<(), String> {
    let ok = k
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err("is not a valid shell variable name ([A-Za-z_][A-Za-z0-9_]*)".into());
    }
    if FIXED_ENV.contains(&k) {
        return Err(format!(
            "is set by nsroot and cannot be changed (fixed: {})",
            FIXED_ENV.join(", ")
        ));
    }
    Ok(())
}

/// A one-line summary: not empty, no control characters.
pub(super) fn one_line(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else if s.chars().any(char::is_control) {
        Err("must be one line without control characters".into())
    } else {
        Ok(())
    }
}

/// [`rule`] on an optional value; the value itself when it passes.
pub(super) fn checked(
    ctx: &Ctx,
    table: &str,
    key: &str,
    v: Option<Spanned<String>>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<String>, RecipeError> {
    v.map(|v| rule(ctx, table, key, &v, &check).map(|()| v.into_inner()))
        .transpose()
}

/// Applies `rule` to a spanned value, turning its complaint into `file:line: [table] key = value: complaint`.
pub(super) fn rule(
    ctx: &Ctx,
    table: &str,
    key: &str,
    value: &Spanned<String>,
    rule: impl Fn(&str) -> Result<(), String>,
) -> Result<(), RecipeError> {
    rule(value.get_ref()).map_err(|why| {
        ctx.at(
            value.span(),
            format!("[{table}] {key} = {:?}: {why}", shown(value.get_ref())),
        )
    })
}

fn steps(
    ctx: &Ctx,
    table: &str,
    key: &str,
    raw: Option<Vec<Spanned<String>>>,
) -> Result<Vec<String>, RecipeError> {
    let raw = raw.unwrap_or_default();
    for (i, step) in raw.iter().enumerate() {
        let why = if step.get_ref().trim().is_empty() {
            "is empty"
        } else if step.get_ref().contains('\0') {
            "contains a NUL character"
        } else {
            continue;
        };
        return Err(ctx.at(step.span(), format!("[{table}] {key}[{i}] {why}")));
    }
    Ok(raw.into_iter().map(Spanned::into_inner).collect())
}

/// Checks the parsed TOML and builds the typed values.
pub(super) fn check(ctx: &Ctx, raw: RawRecipe) -> Result<Parsed, RecipeError> {
    let p = raw.package.into_inner();
    rule(ctx, "package", "name", &p.name, package_name)?;
    rule(ctx, "package", "version", &p.version, version)?;
    if let Some(r) = &p.release {
        rule(ctx, "package", "release", r, release)?;
    }
    if let Some(a) = &p.arch {
        rule(ctx, "package", "arch", a, arch)?;
    }
    rule(ctx, "package", "summary", &p.summary, one_line)?;
    if let Some(l) = &p.license {
        rule(ctx, "package", "license", l, one_line)?;
    }
    let package = Package {
        name: p.name.into_inner(),
        version: p.version.into_inner(),
        release: p
            .release
            .map_or_else(|| "1".to_string(), Spanned::into_inner),
        arch: p
            .arch
            .map_or_else(|| host_arch().to_string(), Spanned::into_inner),
        summary: p.summary.into_inner(),
        license: p.license.map(Spanned::into_inner),
        description: None,
        homepage: None,
        source_date_epoch: p.source_date_epoch.map(Spanned::into_inner),
    };

    let source = match raw.source {
        None => UnresolvedSource::None,
        Some(s) => {
            let span = s.span();
            let s = s.into_inner();
            match (s.path, s.archive) {
                (Some(_), Some(a)) => {
                    return Err(ctx.at(a.span(), "[source] has both path and archive: use one"))
                }
                (None, None) => {
                    return Err(ctx.at(
                        span,
                        "[source] needs either path = \"DIR\" or archive = \"FILE\"",
                    ))
                }
                (Some(path), None) => {
                    if let Some(sha) = s.sha256 {
                        return Err(ctx.at(
                            sha.span(),
                            "[source] sha256 applies only to archive sources",
                        ));
                    }
                    if let Some(strip) = s.strip_components {
                        return Err(ctx.at(
                            strip.span(),
                            "[source] strip_components applies only to archive sources",
                        ));
                    }
                    relative_path(ctx, "source", "path", &path)?;
                    UnresolvedSource::Path(path)
                }
                (None, Some(archive)) => {
                    relative_path(ctx, "source", "archive", &archive)?;
                    let Some(sha) = s.sha256 else {
                        return Err(ctx.at(
                            archive.span(),
                            "[source] archive needs sha256 = \"<64 hex digits>\"",
                        ));
                    };
                    let hex = sha.get_ref().to_ascii_lowercase();
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ctx.at(
                            sha.span(),
                            format!(
                                "[source] sha256 = {:?}: not a sha256 (64 hex digits)",
                                shown(sha.get_ref())
                            ),
                        ));
                    }
                    UnresolvedSource::Archive {
                        archive,
                        sha256: hex,
                        strip_components: s.strip_components.map_or(0, Spanned::into_inner),
                    }
                }
            }
        }
    };

    let mut build = Build::default();
    if let Some(b) = raw.build {
        if let Some(env) = b.env {
            for (k, v) in env.into_inner() {
                env_key(k.get_ref()).map_err(|why| {
                    ctx.at(
                        k.span(),
                        format!("[build] env: {:?} {why}", shown(k.get_ref())),
                    )
                })?;
                if v.get_ref().contains('\0') {
                    return Err(ctx.at(
                        v.span(),
                        format!(
                            "[build] env {}: contains a NUL character",
                            shown(k.get_ref())
                        ),
                    ));
                }
                build.env.insert(k.into_inner(), v.into_inner());
            }
        }
        build.steps = steps(ctx, "build", "steps", b.steps)?;
        build.check = steps(ctx, "build", "check", b.check)?;
        if let Some(size) = b.tmpfs_size {
            let bytes = crate::sandbox::plan::parse_size(size.get_ref())
                .map_err(|why| ctx.at(size.span(), format!("[build] tmpfs_size: {why}")))?;
            build.tmpfs_size = Some(bytes);
        }
    }
    let install = Install {
        steps: steps(ctx, "install", "steps", raw.install.and_then(|i| i.steps))?,
    };

    let output_span = raw.output.as_ref().map(|o| o.formats.span());
    let output = match raw.output {
        // A [deb], [rpm] or [arch] table alone asks for its package beside the default tar.gz.
        None => {
            let mut formats = vec![OutputFormat::TarGz];
            for (table, format) in [
                (raw.deb.is_some(), OutputFormat::Deb),
                (raw.rpm.is_some(), OutputFormat::Rpm),
                (raw.arch.is_some(), OutputFormat::PkgTarZst),
            ] {
                if table {
                    formats.push(format);
                }
            }
            Output { formats }
        }
        Some(o) => {
            let list_span = o.formats.span();
            let mut seen = BTreeSet::new();
            let mut formats = Vec::new();
            for f in o.formats.into_inner() {
                let Some(format) = OutputFormat::from_name(f.get_ref()) else {
                    let names: Vec<&str> = OutputFormat::ALL.iter().map(|(_, n)| *n).collect();
                    return Err(ctx.at(
                        f.span(),
                        format!(
                            "[output] formats: unknown format {:?} (expected one of: {})",
                            shown(f.get_ref()),
                            names.join(", ")
                        ),
                    ));
                };
                if !seen.insert(format) {
                    return Err(ctx.at(
                        f.span(),
                        format!("[output] formats: {:?} is listed twice", shown(f.get_ref())),
                    ));
                }
                formats.push(format);
            }
            if formats.is_empty() {
                return Err(ctx.at(list_span, "[output] formats must name at least one format"));
            }
            Output { formats }
        }
    };

    let deb = raw.deb.map(|d| super::deb::check(ctx, d)).transpose()?;
    let mut package = package;
    if let Some(d) = &deb {
        package.description = d.description.clone();
        package.homepage = d.homepage.clone();
    }
    if output.formats.contains(&OutputFormat::Deb)
        && crate::package::deb::with_maintainer(deb.as_ref().map(|d| &d.meta)).is_err()
    {
        return Err(match output_span {
            Some(span) => ctx.at(
                span,
                "[output] formats includes \"deb\": add a [deb] table with maintainer = \"Name <email>\"",
            ),
            // No [output]: the [deb] table asked for the .deb.
            None => ctx.at(
                ctx.table_header("deb").unwrap_or(0..0),
                "[deb] makes the build write a .deb: add maintainer = \"Name <email>\" \
                 (or list [output] formats without \"deb\")",
            ),
        });
    }

    let rpm = raw.rpm.map(|r| super::rpm::check_rpm(ctx, r)).transpose()?;
    let arch = raw
        .arch
        .map(|a| super::rpm::check_arch(ctx, a))
        .transpose()?;
    // What the other formats need, checked where the recipe asks for them.
    let meta = crate::package::Meta {
        file: ctx.file.to_path_buf(),
        name: package.name.clone(),
        version: package.version.clone(),
        release: package.release.clone(),
        arch: package.arch.clone(),
        summary: package.summary.clone(),
        description: None,
        homepage: None,
        license: package.license.clone(),
    };
    let asked = |format: OutputFormat, table: &str| match output_span.clone() {
        Some(span) => (
            span,
            format!("[output] formats includes {:?}", format.extension()),
        ),
        None => (
            ctx.table_header(table).unwrap_or(0..0),
            format!("[{table}] makes the build write a .{}", format.extension()),
        ),
    };
    if output.formats.contains(&OutputFormat::Rpm) {
        let rpm_meta = rpm.as_ref().map(|r| r.meta.clone()).unwrap_or_default();
        let (span, why) = asked(OutputFormat::Rpm, "rpm");
        if let Err(need) = crate::package::rpm::license(&meta, &rpm_meta) {
            return Err(ctx.at(span, format!("{why}: {need}")));
        }
        if let Err(bad) = crate::package::rpm::version_rule(&meta) {
            return Err(ctx.at(span, format!("{why}: [package] {bad}")));
        }
    }
    if output.formats.contains(&OutputFormat::PkgTarZst) {
        if let Err(bad) = crate::package::pacman::version_rule(&meta) {
            let (span, why) = asked(OutputFormat::PkgTarZst, "arch");
            return Err(ctx.at(span, format!("{why}: [package] {bad}")));
        }
    }

    Ok(Parsed {
        package,
        source,
        build,
        install,
        output,
        deb,
        rpm,
        arch,
    })
}

/// A path in the recipe must be relative and stay in the recipe directory (lexically; the
/// resolved path is checked again in `resolve`).
fn relative_path(
    ctx: &Ctx,
    table: &str,
    key: &str,
    value: &Spanned<String>,
) -> Result<(), RecipeError> {
    rule(ctx, table, key, value, |p| {
        let path = Path::new(p);
        if p.is_empty() {
            Err("must not be empty".into())
        } else if path.is_absolute() {
            Err("must be a path relative to the recipe's directory".into())
        } else if path.components().any(|c| c == Component::ParentDir) {
            Err("must not leave the recipe's directory (\"..\")".into())
        } else {
            Ok(())
        }
    })
}

impl UnresolvedSource {
    /// Resolves the source against the canonical recipe directory: it must exist, have the
    /// right type and, after following symlinks, stay inside the directory.
    pub(super) fn resolve(self, recipe_dir: &Path, ctx: &Ctx) -> Result<Source, RecipeError> {
        let (value, key, want_dir) = match &self {
            UnresolvedSource::None => return Ok(Source::None),
            UnresolvedSource::Path(p) => (p, "path", true),
            UnresolvedSource::Archive { archive, .. } => (archive, "archive", false),
        };
        let resolved = inside(recipe_dir, value.get_ref()).map_err(|why| {
            ctx.at(
                value.span(),
                format!("[source] {key} = {:?}: {why}", shown(value.get_ref())),
            )
        })?;
        let is_dir = resolved.is_dir();
        if want_dir != is_dir || (!want_dir && !resolved.is_file()) {
            let what = if want_dir {
                "a directory"
            } else {
                "a regular file"
            };
            return Err(ctx.at(
                value.span(),
                format!("[source] {key} = {:?}: not {what}", shown(value.get_ref())),
            ));
        }
        Ok(match self {
            UnresolvedSource::None => Source::None,
            UnresolvedSource::Path(_) => Source::Path { dir: resolved },
            UnresolvedSource::Archive {
                sha256,
                strip_components,
                ..
            } => Source::Archive {
                file: resolved,
                sha256,
                strip_components,
            },
        })
    }
}

/// Resolves `rel` under `dir` (canonical), following symlinks, and refuses a result outside it.
pub(crate) fn inside(dir: &Path, rel: &str) -> Result<std::path::PathBuf, String> {
    let joined = dir.join(rel);
    let resolved = joined.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", shown_path(&joined)),
        _ => format!("cannot resolve {}: {e}", shown_path(&joined)),
    })?;
    if resolved.starts_with(dir) {
        Ok(resolved)
    } else {
        Err(format!(
            "resolves to {}, outside the recipe's directory {}",
            shown_path(&resolved),
            shown_path(dir)
        ))
    }
}
