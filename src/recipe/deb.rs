//! The recipe's `[deb]` table: Debian control metadata, checked before anything is built
//! and deserialised into [`DebMeta`] (the writer's own type).

use std::path::{Component, Path};

use serde::Deserialize;
use toml::Spanned;

use super::validate::{checked, inside, package_name, version};
use super::{shown, Ctx, RecipeError};
use crate::package::deb::DebMeta;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeb {
    section: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    maintainer: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    homepage: Option<Spanned<String>>,
    pre_depends: Option<Vec<Spanned<String>>>,
    depends: Option<Vec<Spanned<String>>>,
    recommends: Option<Vec<Spanned<String>>>,
    suggests: Option<Vec<Spanned<String>>>,
    enhances: Option<Vec<Spanned<String>>>,
    breaks: Option<Vec<Spanned<String>>>,
    conflicts: Option<Vec<Spanned<String>>>,
    provides: Option<Vec<Spanned<String>>>,
    replaces: Option<Vec<Spanned<String>>>,
    conffiles: Option<Vec<Spanned<String>>>,
    preinst: Option<Spanned<String>>,
    postinst: Option<Spanned<String>>,
    prerm: Option<Spanned<String>>,
    postrm: Option<Spanned<String>>,
}

/// The keys of `[deb]`, for "unknown key" messages (kept in step with [`RawDeb`] by a test).
pub(super) const KEYS: &[&str] = &[
    "section",
    "priority",
    "maintainer",
    "description",
    "homepage",
    "pre_depends",
    "depends",
    "recommends",
    "suggests",
    "enhances",
    "breaks",
    "conflicts",
    "provides",
    "replaces",
    "conffiles",
    "preinst",
    "postinst",
    "prerm",
    "postrm",
];

const PRIORITIES: &[&str] = &["required", "important", "standard", "optional", "extra"];

/// `[deb]` after lexical checks; scripts are resolved against the recipe directory later.
pub(super) struct UnresolvedDeb {
    pub(super) meta: DebMeta,
    /// The extended description, shared by every package format.
    pub(super) description: Option<String>,
    /// The home page, shared by every package format.
    pub(super) homepage: Option<String>,
    scripts: Vec<(&'static str, Spanned<String>)>,
}

fn section(s: &str) -> Result<(), String> {
    let ok = s
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-./".contains(&b));
    ok.then_some(())
        .ok_or_else(|| "not a valid section (lowercase letters, digits, '+-./')".into())
}

fn priority(p: &str) -> Result<(), String> {
    PRIORITIES.contains(&p).then_some(()).ok_or_else(|| {
        format!(
            "not a priority (expected one of: {})",
            PRIORITIES.join(", ")
        )
    })
}

fn maintainer(m: &str) -> Result<(), String> {
    let ok = m.chars().all(|c| !c.is_control())
        && m.split_once(" <").is_some_and(|(name, rest)| {
            !name.trim().is_empty() && rest.ends_with('>') && rest[..rest.len() - 1].contains('@')
        })
        && m.matches('<').count() == 1;
    ok.then_some(())
        .ok_or_else(|| "expected \"Full Name <email@address>\"".into())
}

pub(super) fn homepage(h: &str) -> Result<(), String> {
    let ok = (h.starts_with("https://") || h.starts_with("http://"))
        && h.len() > 8
        && !h.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(())
        .ok_or_else(|| "expected an http:// or https:// URL without spaces".into())
}

fn description(d: &str) -> Result<(), String> {
    if d.trim().is_empty() {
        return Err("must not be empty (leave it out instead)".into());
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn conffile(c: &str) -> Result<(), String> {
    let p = Path::new(c);
    if !p.is_absolute() {
        return Err("a conffile must be an absolute path (as installed, e.g. /etc/x.conf)".into());
    }
    if c.ends_with('/')
        || p.components()
            .any(|c| c == Component::ParentDir || c == Component::CurDir)
    {
        return Err(
            "a conffile must be a plain file path (no \"..\", \".\" or trailing \"/\")".into(),
        );
    }
    if c.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a conffile path may not contain spaces or control characters".into());
    }
    Ok(())
}

/// Checks one relation item: `name[:arch] [(op version)] [[arch ...]] [<profile>]`,
/// with `|` between alternatives when `alternatives` is true.
pub(crate) fn relation(item: &str, alternatives: bool, only_equal: bool) -> Result<(), String> {
    if item.contains(',') {
        return Err("one relation per list item (no ',')".into());
    }
    let alts: Vec<&str> = item.split('|').collect();
    if alts.len() > 1 && !alternatives {
        return Err("alternatives ('|') are not allowed in this field".into());
    }
    for alt in alts {
        let mut rest = alt.trim();
        let end = rest
            .find(|c: char| c.is_whitespace() || "([<".contains(c))
            .unwrap_or(rest.len());
        let (name, tail) = rest.split_at(end);
        let pkg = name.split_once(':').map_or(name, |(n, _)| n);
        if let Some((_, qual)) = name.split_once(':') {
            if qual.is_empty()
                || !qual
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!("{:?}: bad architecture qualifier", shown(name)));
            }
        }
        package_name(pkg).map_err(|why| format!("{:?}: {why}", shown(pkg)))?;
        rest = tail.trim_start();
        if let Some(r) = rest.strip_prefix('(') {
            let (inner, after) = r
                .split_once(')')
                .ok_or("unclosed '(' in a version constraint")?;
            let inner = inner.trim();
            let op_len = inner.bytes().take_while(|b| b"<=>".contains(b)).count();
            let (op, ver) = inner.split_at(op_len);
            let ops: &[&str] = if only_equal {
                &["="]
            } else {
                &["<<", "<=", "=", ">=", ">>"]
            };
            if !ops.contains(&op) {
                return Err(format!(
                    "{:?} is not a version operator here (use one of: {})",
                    shown(op),
                    ops.join(" ")
                ));
            }
            version(ver.trim()).map_err(|why| format!("{:?}: {why}", shown(ver.trim())))?;
            rest = after.trim_start();
        }
        if let Some(r) = rest.strip_prefix('[') {
            let (inner, after) = r
                .split_once(']')
                .ok_or("unclosed '[' in an architecture list")?;
            let ok = !inner.trim().is_empty()
                && inner.split_whitespace().all(|a| {
                    let a = a.strip_prefix('!').unwrap_or(a);
                    !a.is_empty()
                        && a.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !ok {
                return Err(format!("[{}] is not an architecture list", shown(inner)));
            }
            rest = after.trim_start();
        }
        while let Some(r) = rest.strip_prefix('<') {
            let (_, after) = r.split_once('>').ok_or("unclosed '<' in a build profile")?;
            rest = after.trim_start();
        }
        if !rest.is_empty() {
            return Err(format!(
                "unexpected {:?} after the package name",
                shown(rest)
            ));
        }
    }
    Ok(())
}

/// Checks `[deb]` and builds its typed value (scripts still unresolved).
pub(super) fn check(ctx: &Ctx, raw: RawDeb) -> Result<UnresolvedDeb, RecipeError> {
    let one = |key: &str, v: Option<Spanned<String>>, rule: fn(&str) -> Result<(), String>| {
        checked(ctx, "deb", key, v, rule)
    };
    let section = one("section", raw.section, section)?.unwrap_or_else(|| "misc".into());
    let priority = one("priority", raw.priority, priority)?.unwrap_or_else(|| "optional".into());
    let maintainer = one("maintainer", raw.maintainer, maintainer)?;
    let description = one("description", raw.description, description)?;
    let homepage = one("homepage", raw.homepage, homepage)?;

    // (control field, recipe key, items, alternatives allowed, only '=' allowed)
    let lists = [
        ("Pre-Depends", "pre_depends", raw.pre_depends, true, false),
        ("Depends", "depends", raw.depends, true, false),
        ("Recommends", "recommends", raw.recommends, true, false),
        ("Suggests", "suggests", raw.suggests, true, false),
        ("Enhances", "enhances", raw.enhances, true, false),
        ("Breaks", "breaks", raw.breaks, false, false),
        ("Conflicts", "conflicts", raw.conflicts, false, false),
        ("Provides", "provides", raw.provides, false, true),
        ("Replaces", "replaces", raw.replaces, false, false),
    ];
    let mut relations = Vec::new();
    for (field, key, items, alternatives, only_equal) in lists {
        let items = items.unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            relation(item.get_ref(), alternatives, only_equal).map_err(|why| {
                ctx.at(
                    item.span(),
                    format!("[deb] {key}[{i}] = {:?}: {why}", shown(item.get_ref())),
                )
            })?;
        }
        if !items.is_empty() {
            relations.push((
                field,
                items
                    .into_iter()
                    .map(|s| s.get_ref().trim().to_string())
                    .collect(),
            ));
        }
    }

    let conffiles = config_paths(ctx, "deb", "conffiles", raw.conffiles)?;

    let scripts: Vec<(&'static str, Spanned<String>)> = [
        ("postinst", raw.postinst),
        ("postrm", raw.postrm),
        ("preinst", raw.preinst),
        ("prerm", raw.prerm),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some((name, v?)))
    .collect();
    Ok(UnresolvedDeb {
        meta: DebMeta {
            section,
            priority,
            maintainer,
            relations,
            conffiles,
            scripts: Vec::new(),
        },
        description,
        homepage,
        scripts,
    })
}

impl UnresolvedDeb {
    /// Resolves script paths: each must be a file inside the recipe directory starting `#!`.
    pub(super) fn resolve(self, recipe_dir: &Path, ctx: &Ctx) -> Result<DebMeta, RecipeError> {
        let mut meta = self.meta;
        for (name, rel) in self.scripts {
            let path = script(recipe_dir, ctx, "deb", name, &rel, true)?;
            meta.scripts.push((name, path));
        }
        Ok(meta)
    }
}

/// Resolves `[table] key = "rel"`, a script beside the recipe: a file inside the recipe
/// directory, starting `#!` when `shebang` is true.
pub(super) fn script(
    recipe_dir: &Path,
    ctx: &Ctx,
    table: &str,
    key: &str,
    rel: &Spanned<String>,
    shebang: bool,
) -> Result<std::path::PathBuf, RecipeError> {
    let fail = |why: String| {
        ctx.at(
            rel.span(),
            format!("[{table}] {key} = {:?}: {why}", shown(rel.get_ref())),
        )
    };
    if Path::new(rel.get_ref()).is_absolute() {
        return Err(fail(
            "must be a path relative to the recipe's directory".into(),
        ));
    }
    let path = inside(recipe_dir, rel.get_ref()).map_err(fail)?;
    let head = std::fs::read(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if shebang && !head.starts_with(b"#!") {
        return Err(fail(
            "a maintainer script must start with \"#!\" (e.g. #!/bin/sh)".into(),
        ));
    }
    if !shebang && std::str::from_utf8(&head).is_err() {
        return Err(fail("must be UTF-8 text".into()));
    }
    Ok(path)
}

/// Checks a list of absolute paths as installed (`[deb] conffiles`, `[rpm] config_files`):
/// each as [`conffile`], none twice.
pub(super) fn config_paths(
    ctx: &Ctx,
    table: &str,
    key: &str,
    raw: Option<Vec<Spanned<String>>>,
) -> Result<Vec<String>, RecipeError> {
    let mut out: Vec<String> = Vec::new();
    for (i, c) in raw.unwrap_or_default().into_iter().enumerate() {
        conffile(c.get_ref()).map_err(|why| {
            ctx.at(
                c.span(),
                format!("[{table}] {key}[{i}] = {:?}: {why}", shown(c.get_ref())),
            )
        })?;
        if out.contains(c.get_ref()) {
            return Err(ctx.at(
                c.span(),
                format!("[{table}] {key}: {:?} is listed twice", shown(c.get_ref())),
            ));
        }
        out.push(c.into_inner());
    }
    Ok(out)
}
