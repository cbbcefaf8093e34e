//! `nsroot pack DIR -o OUT`: a directory as a deterministic, root-owned archive.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::archive::Format;
use crate::archive::{self, parse_owner, ArchiveError, Db, Output, PackOptions};
use crate::cli::PackArgs;
use crate::error::InputError;
use crate::ownership::{self, Lookup, Store};

/// `nsroot pack`: returns the process exit status.
pub fn run(args: &PackArgs) -> anyhow::Result<i32> {
    // Recorded ownership (`nsroot -s FILE`) applies per entry: owners, device nodes, xattrs.
    let records = match &args.load_file {
        Some(state) => Some(Store::load(state)?),
        None => None,
    };
    let opts = options(args)?;
    let out = Output::from_arg(&args.output);
    if let (Some(state), Output::Path(p)) = (&args.load_file, &out) {
        // Replacing the records with the archive would lose them.
        if same_file(state, p) {
            return Err(InputError::new(format!(
                "output {} is the state file given with -i",
                p.display()
            ))
            .into());
        }
    }
    let lookup = records.as_ref().map(|r| r as &dyn Lookup);
    match archive::pack(&args.dir, &out, &opts, lookup) {
        Ok(summary) => {
            for w in &summary.warnings {
                eprintln!("nsroot: warning: {w}");
            }
            Ok(0)
        }
        Err(ArchiveError::Interrupted { signal }) => {
            // The partial output is gone: now die by the signal, as the shell expects.
            crate::sys::archive::die_by_signal(signal);
            Err(ArchiveError::Interrupted { signal }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// True when both paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The options `nsroot pack` was given. The format follows `--format`, else OUT's extension
/// (plain tar for `-`); the clamp follows `--mtime`, else `$SOURCE_DATE_EPOCH`; inside an
/// nsroot session, owners without `--owner`/`--group` come from lstat.
///
/// Errors are input errors: unknown extension, level out of range, bad owner or time.
fn options(args: &PackArgs) -> Result<PackOptions, ArchiveError> {
    let format = match args.format {
        Some(f) => f,
        None if args.output == Path::new("-") => Format::Tar,
        None => Format::from_path(&args.output)?,
    };
    let mut opts = PackOptions::new(format);
    if let Some(level) = args.level {
        let range = format.level_range();
        if format != Format::Tar && !range.contains(&level) {
            return Err(ArchiveError::input(
                format!("--level {level}"),
                format!(
                    "out of range for {} ({}-{})",
                    format.extension(),
                    range.start(),
                    range.end()
                ),
            ));
        }
        opts.level = level;
    }
    opts.jobs = match args.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if let Some(o) = &args.owner {
        opts.owner = parse_owner(o, Db::Passwd)?;
    }
    if let Some(g) = &args.group {
        opts.group = parse_owner(g, Db::Group)?;
    }
    // Inside a session the emulated lstat shows what chown and mknod recorded: store it as
    // GNU tar run there would, unless --owner/--group say otherwise (as they do there).
    if ownership::inside_session() {
        opts.owner_from_lstat = args.owner.is_none();
        opts.group_from_lstat = args.group.is_none();
    }
    opts.numeric_owner = args.numeric_owner;
    opts.xattrs = args.xattrs;
    opts.progress = true;
    opts.mtime_clamp = match &args.mtime {
        Some(t) => Some(archive::parse_time(t).ok_or_else(|| {
            ArchiveError::input(
                format!("--mtime {t:?}"),
                "expected seconds since the epoch, as N or @N",
            )
        })?),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(archive::parse_time(&v).ok_or_else(|| {
                ArchiveError::input(
                    format!("SOURCE_DATE_EPOCH={v:?}"),
                    "expected seconds since the epoch",
                )
            })?),
            _ => None,
        },
    };
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Owner;

    #[test]
    fn options_from_args() {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: PackArgs,
        }
        let parse = |argv: &[&str]| {
            let p = P::try_parse_from(std::iter::once("pack").chain(argv.iter().copied())).unwrap();
            options(&p.a)
        };
        let o = parse(&[
            "d",
            "-o",
            "x.tar.zst",
            "-j",
            "2",
            "--mtime",
            "@5",
            "--owner",
            "bin:2",
        ])
        .unwrap();
        assert_eq!(
            (o.format, o.level, o.jobs, o.mtime_clamp),
            (Format::TarZst, 3, 2, Some(5))
        );
        assert_eq!(
            o.owner,
            Owner {
                name: "bin".into(),
                id: 2
            }
        );
        let o = parse(&["d", "-o", "-"]).unwrap();
        assert_eq!(o.format, Format::Tar);
        let o = parse(&["d", "-o", "x.bin", "--format", "tar.xz", "-L", "9"]).unwrap();
        assert_eq!((o.format, o.level), (Format::TarXz, 9));
        for bad in [
            &["d", "-o", "x.zip"][..],
            &["d", "-o", "x.tgz", "-L", "10"],
            &["d", "-o", "x.tar", "--mtime", "yesterday"],
        ] {
            assert!(
                matches!(parse(bad), Err(ArchiveError::Input { .. })),
                "{bad:?}"
            );
        }
    }
}
