//! `nsroot rpm-files DIR`: an rpmbuild `%files` list with `%attr` lines from the records.

use std::io::Write;

use crate::archive::{self, Format, PackOptions};
use crate::cli::RpmFilesArgs;
use crate::ownership::{self, Lookup, Store};
use crate::package::rpm;

/// `nsroot rpm-files`: prints one `%files` line per entry of DIR; returns the exit status.
pub fn run(args: &RpmFilesArgs) -> anyhow::Result<i32> {
    let records = match &args.load_file {
        Some(state) => Some(Store::load(state)?),
        None => None,
    };
    // DIR packed by the archive writer, as `nsroot pack` would: owners from the records,
    // or inside a session from the emulated lstat.
    let mut opts = PackOptions::new(Format::Tar);
    opts.xattrs = true;
    if ownership::inside_session() {
        opts.owner_from_lstat = true;
        opts.group_from_lstat = true;
    }
    let tmp = tempfile::Builder::new()
        .prefix("nsroot-rpm-files-")
        .suffix(".tar")
        .tempfile()?;
    let lookup = records.as_ref().map(|r| r as &dyn Lookup);
    archive::pack(
        &args.dir,
        &archive::Output::Path(tmp.path().to_path_buf()),
        &opts,
        lookup,
    )?;
    let lines = rpm::files_list(tmp.path(), &args.dir)?;
    let mut out = super::stdout();
    for l in &lines {
        writeln!(out, "{}", l.line)?;
    }
    out.flush()?;
    if args.rm_device_placeholders {
        for p in lines.iter().filter_map(|l| l.device_placeholder.as_ref()) {
            let path = args.dir.join(p);
            std::fs::remove_file(&path)
                .map_err(|e| anyhow::anyhow!("remove {}: {e}", path.display()))?;
        }
    }
    Ok(0)
}
