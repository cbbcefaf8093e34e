//! `nsroot list ARCHIVE` (alias `inspect`): an archive listed like `tar -tv`.

use std::io;
use std::path::Path;

use crate::archive;
use crate::cli::ListArgs;

/// `nsroot list`: returns the process exit status.
pub fn run(args: &ListArgs) -> anyhow::Result<i32> {
    // Raw bytes: `list` tells a .deb from a (compressed) tar by their first bytes.
    let (input, name): (Box<dyn io::Read>, &Path) = if args.archive == Path::new("-") {
        (Box::new(io::stdin()), Path::new("stdin"))
    } else {
        (
            Box::new(archive::open_file(&args.archive)?),
            args.archive.as_path(),
        )
    };
    let mut out = super::stdout();
    archive::list(input, name, args.numeric_owner, &mut out)?;
    Ok(0)
}
