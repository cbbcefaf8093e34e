//! The recipe's `[rpm]` and `[arch]` tables: what an `.rpm` and a `.pkg.tar.zst` say beyond
//! `[package]` and `[deb]`, checked before anything is built and deserialised into the
//! writers' own types ([`RpmMeta`], [`PacmanMeta`]).

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::deb::{config_paths, script};
use super::validate::{checked, one_line};
use super::{shown, Ctx, RecipeError};
use crate::package::pacman::PacmanMeta;
use crate::package::rpm::{RpmCompression, RpmDep, RpmMeta, RpmScript};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRpm {
    license: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    requires: Option<Vec<Spanned<String>>>,
    provides: Option<Vec<Spanned<String>>>,
    conflicts: Option<Vec<Spanned<String>>>,
    obsoletes: Option<Vec<Spanned<String>>>,
    recommends: Option<Vec<Spanned<String>>>,
    config_files: Option<Vec<Spanned<String>>>,
    pre: Option<Spanned<String>>,
    post: Option<Spanned<String>>,
    preun: Option<Spanned<String>>,
    postun: Option<Spanned<String>>,
    compression: Option<Spanned<String>>,
}

/// The keys of `[rpm]`, for "unknown key" messages (kept in step with [`RawRpm`] by a test).
pub(super) const RPM_KEYS: &[&str] = &[
    "license",
    "group",
    "url",
    "requires",
    "provides",
    "conflicts",
    "obsoletes",
    "recommends",
    "config_files",
    "pre",
    "post",
    "preun",
    "postun",
    "compression",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArch {
    depends: Option<Vec<Spanned<String>>>,
    optdepends: Option<Vec<Spanned<String>>>,
    provides: Option<Vec<Spanned<String>>>,
    conflicts: Option<Vec<Spanned<String>>>,
    replaces: Option<Vec<Spanned<String>>>,
    backup: Option<Vec<Spanned<String>>>,
    install: Option<Spanned<String>>,
    groups: Option<Vec<Spanned<String>>>,
}

/// The keys of `[arch]` (kept in step with [`RawArch`] by a test).
pub(super) const ARCH_KEYS: &[&str] = &[
    "depends",
    "optdepends",
    "provides",
    "conflicts",
    "replaces",
    "backup",
    "install",
    "groups",
];

/// `[rpm]` after lexical checks; `config_files` is None when the table does not list them
/// (the `[deb]` conffiles are then taken).
pub(super) struct UnresolvedRpm {
    pub(super) meta: RpmMeta,
    pub(super) config_files: Option<Vec<String>>,
    scripts: Vec<(RpmScript, &'static str, Spanned<String>)>,
}

/// `[arch]` after lexical checks.
pub(super) struct UnresolvedArch {
    pub(super) meta: PacmanMeta,
    pub(super) backup: Option<Vec<String>>,
    install: Option<Spanned<String>>,
}

fn each<T>(
    ctx: &Ctx,
    table: &str,
    key: &str,
    items: Option<Vec<Spanned<String>>>,
    rule: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, RecipeError> {
    let mut out = Vec::new();
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        out.push(rule(item.get_ref()).map_err(|why| {
            ctx.at(
                item.span(),
                format!("[{table}] {key}[{i}] = {:?}: {why}", shown(item.get_ref())),
            )
        })?);
    }
    Ok(out)
}

fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~^:-".contains(&b))
}

/// `name [op version]`: an RPM relation. The name may be a package, a virtual capability
/// (`perl(Foo::Bar)`, `config(x)`) or an absolute file path; rich dependencies
/// (`(a or b)`) are not accepted.
fn rpm_dep(s: &str) -> Result<RpmDep, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let name = *words.first().ok_or("must not be empty")?;
    if name.starts_with('(') {
        return Err("rich dependencies (\"(a or b)\") are not supported".into());
    }
    let ok_name = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.+-()/:".contains(&b));
    if !ok_name {
        return Err(format!(
            "{:?} is not an RPM name (letters, digits, '_.+-()/:')",
            shown(name)
        ));
    }
    match words[1..] {
        [] => Ok(RpmDep {
            name: name.into(),
            version: None,
        }),
        [op, v] if ["<", "<=", "=", ">=", ">"].contains(&op) && is_version(v) => Ok(RpmDep {
            name: name.into(),
            version: Some((op.into(), v.into())),
        }),
        _ => Err("expected \"NAME\" or \"NAME OP VERSION\" (OP one of < <= = >= >)".into()),
    }
}

/// Checks `[rpm]` and builds its typed value (scripts still unresolved).
pub(super) fn check_rpm(ctx: &Ctx, raw: RawRpm) -> Result<UnresolvedRpm, RecipeError> {
    let t = "rpm";
    let compression = match raw.compression {
        None => RpmCompression::default(),
        Some(c) => RpmCompression::ALL
            .iter()
            .find(|(_, n)| *n == c.get_ref())
            .map(|(c, _)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = RpmCompression::ALL.iter().map(|(_, n)| *n).collect();
                ctx.at(
                    c.span(),
                    format!(
                        "[rpm] compression = {:?}: expected one of: {}",
                        shown(c.get_ref()),
                        names.join(", ")
                    ),
                )
            })?,
    };
    let config_files = raw
        .config_files
        .map(|c| config_paths(ctx, t, "config_files", Some(c)))
        .transpose()?;
    let scripts = [
        (RpmScript::Pre, "pre", raw.pre),
        (RpmScript::Post, "post", raw.post),
        (RpmScript::Preun, "preun", raw.preun),
        (RpmScript::Postun, "postun", raw.postun),
    ]
    .into_iter()
    .filter_map(|(s, k, v)| Some((s, k, v?)))
    .collect();
    Ok(UnresolvedRpm {
        meta: RpmMeta {
            license: checked(ctx, t, "license", raw.license, one_line)?,
            group: checked(ctx, t, "group", raw.group, one_line)?,
            url: checked(ctx, t, "url", raw.url, super::deb::homepage)?,
            packager: None,
            requires: each(ctx, t, "requires", raw.requires, rpm_dep)?,
            provides: each(ctx, t, "provides", raw.provides, rpm_dep)?,
            conflicts: each(ctx, t, "conflicts", raw.conflicts, rpm_dep)?,
            obsoletes: each(ctx, t, "obsoletes", raw.obsoletes, rpm_dep)?,
            recommends: each(ctx, t, "recommends", raw.recommends, rpm_dep)?,
            config_files: Vec::new(),
            scripts: Vec::new(),
            compression,
        },
        config_files,
        scripts,
    })
}

impl UnresolvedRpm {
    /// Resolves the scriptlets against the recipe directory: files starting `#!`.
    pub(super) fn resolve(self, recipe_dir: &Path, ctx: &Ctx) -> Result<RpmMeta, RecipeError> {
        let mut meta = self.meta;
        for (s, key, rel) in self.scripts {
            meta.scripts
                .push((s, script(recipe_dir, ctx, "rpm", key, &rel, true)?));
        }
        Ok(meta)
    }
}

/// A pacman package name: `[a-z0-9@._+-]`, not starting with `-` or `.`.
fn pacman_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && !n.starts_with(['-', '.'])
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@._+-".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "{:?} is not a pacman package name (lowercase letters, digits, '@._+-')",
            shown(n)
        )
    })
}

/// `name[op version]` (no spaces, as in a PKGBUILD); `only_equal` for provides.
fn pacman_dep(s: &str, only_equal: bool) -> Result<String, String> {
    let at = s.find(['<', '>', '=']).unwrap_or(s.len());
    let (name, rest) = s.split_at(at);
    pacman_name(name)?;
    if !rest.is_empty() {
        let op_len = rest.bytes().take_while(|b| b"<>=".contains(b)).count();
        let (op, v) = rest.split_at(op_len);
        let ops: &[&str] = if only_equal {
            &["="]
        } else {
            &["<", "<=", "=", ">=", ">"]
        };
        if !ops.contains(&op) || !is_version(v) {
            return Err(format!(
                "expected \"name\" or \"name{}version\" without spaces",
                ops.join("version\" or \"name")
            ));
        }
    }
    Ok(s.into())
}

/// `name: why` (the reason optional).
fn optdepend(s: &str) -> Result<String, String> {
    let (name, why) = s.split_once(':').unwrap_or((s, ""));
    pacman_name(name.trim_end())?;
    if why.chars().any(char::is_control) {
        return Err("must be one line".into());
    }
    Ok(s.into())
}

/// Checks `[arch]` and builds its typed value (the install script still unresolved).
pub(super) fn check_arch(ctx: &Ctx, raw: RawArch) -> Result<UnresolvedArch, RecipeError> {
    let t = "arch";
    let backup = raw
        .backup
        .map(|b| {
            each(ctx, t, "backup", Some(b), |p| {
                if p.starts_with('/') || p.contains("..") || p.ends_with('/') || p.is_empty() {
                    return Err("a path relative to / as installed (etc/x.conf)".into());
                }
                if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err("may not contain spaces or control characters".into());
                }
                Ok(p.to_string())
            })
        })
        .transpose()?;
    Ok(UnresolvedArch {
        meta: PacmanMeta {
            depends: each(ctx, t, "depends", raw.depends, |d| pacman_dep(d, false))?,
            optdepends: each(ctx, t, "optdepends", raw.optdepends, optdepend)?,
            provides: each(ctx, t, "provides", raw.provides, |d| pacman_dep(d, true))?,
            conflicts: each(ctx, t, "conflicts", raw.conflicts, |d| pacman_dep(d, false))?,
            replaces: each(ctx, t, "replaces", raw.replaces, |d| pacman_dep(d, false))?,
            groups: each(ctx, t, "groups", raw.groups, |g| {
                pacman_name(g).map(|()| g.to_string())
            })?,
            backup: Vec::new(),
            install: None,
            packager: None,
        },
        backup,
        install: raw.install,
    })
}

impl UnresolvedArch {
    /// Resolves the install script (a file beside the recipe, with pacman's functions).
    pub(super) fn resolve(self, recipe_dir: &Path, ctx: &Ctx) -> Result<PacmanMeta, RecipeError> {
        let mut meta = self.meta;
        if let Some(rel) = &self.install {
            meta.install = Some(script(recipe_dir, ctx, "arch", "install", rel, false)?);
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_relations() {
        assert_eq!(rpm_dep("bash").unwrap().version, None);
        assert_eq!(
            rpm_dep("glibc >= 2.34").unwrap().version,
            Some((">=".into(), "2.34".into()))
        );
        assert!(rpm_dep("perl(Foo::Bar)").is_ok());
        assert!(rpm_dep("/bin/sh").is_ok());
        assert!(rpm_dep("(a or b)").unwrap_err().contains("rich"));
        assert!(rpm_dep("a >= ").is_err());
        assert!(rpm_dep("a ~> 1").is_err());
        assert!(rpm_dep("a,b").is_err());
    }

    #[test]
    fn pacman_relations() {
        assert!(pacman_dep("glibc>=2.34", false).is_ok());
        assert!(pacman_dep("glibc", false).is_ok());
        assert!(pacman_dep("glibc >= 2.34", false).is_err());
        assert!(pacman_dep("libfoo.so=1", true).is_ok());
        assert!(pacman_dep("x>=1", true).is_err());
        assert!(pacman_dep("-x", false).is_err());
        assert!(optdepend("bash: for the scripts").is_ok());
        assert!(optdepend("Bash: x").is_err());
    }
}
