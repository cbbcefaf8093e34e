//! Debian binary packages: their control data ([`DebMeta`]), the control member made from it,
//! and the ar file.
//!
//! [`write_deb`] writes `debian-binary`, `control.tar.xz` and the data member (an already
//! compressed `data.tar.*` that the archive module wrote) into an ar archive, as dpkg-deb does.
//! Every byte is a function of its inputs: members and tar entries carry
//! SOURCE_DATE_EPOCH, root ownership and fixed modes, and tar entries are sorted.

use crate::fsutil::AtomicFile;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::Meta;
use crate::archive::Compression;
use crate::error::InputError;

/// The control data of a `.deb` beyond [`Meta`] (a recipe's `[deb]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebMeta {
    /// `Section:`, default `misc`.
    pub section: String,
    /// `Priority:`, default `optional`.
    pub priority: String,
    /// `Maintainer:` (`Name <email>`); a `.deb` needs one ([`with_maintainer`]).
    pub maintainer: Option<String>,
    /// Relation fields in control-file order (`Pre-Depends`, `Depends`, ...), only non-empty
    /// ones, each with its items (an item may hold alternatives, `a | b`).
    pub relations: Vec<(&'static str, Vec<String>)>,
    /// Absolute paths of conffiles, in the recipe's order.
    pub conffiles: Vec<String>,
    /// Maintainer scripts (`preinst`, `postinst`, `prerm`, `postrm`), sorted by name, with the
    /// path of each file.
    pub scripts: Vec<(&'static str, PathBuf)>,
}

/// The rule that a `.deb` needs a maintainer, in one place: the recipe check (when a build
/// is to write a `.deb`), the build (when `--format deb` asks for one) and the writer all ask
/// it. Returns the control data, or what to add.
pub fn with_maintainer(deb: Option<&DebMeta>) -> Result<&DebMeta, &'static str> {
    let deb = deb.ok_or("a .deb needs a [deb] table with maintainer = \"Name <email>\"")?;
    match deb.maintainer {
        Some(_) => Ok(deb),
        None => Err("a .deb needs [deb] maintainer = \"Name <email>\""),
    }
}

/// [`with_maintainer`] as an error naming `file` (the recipe).
///
/// Errors: [`DebError::Invalid`] when there is no control data or no maintainer.
pub fn require<'a>(file: &Path, deb: Option<&'a DebMeta>) -> Result<&'a DebMeta, DebError> {
    with_maintainer(deb).map_err(|why| invalid(file, why))
}

/// The data member names dpkg accepts, with the compression each must hold.
pub const DATA_NAMES: &[(&str, Compression)] = &[
    ("data.tar", Compression::None),
    ("data.tar.gz", Compression::Gzip),
    ("data.tar.xz", Compression::Xz),
    ("data.tar.zst", Compression::Zstd),
];

/// xz preset for control.tar (fixed, so output is reproducible).
const CONTROL_XZ_LEVEL: u32 = 6;

/// Errors from writing a `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The recipe's `[deb]` metadata does not fit the installed tree or the call (a conffile
    /// missing from the tree, no `[deb]` table, a bad data member name).
    #[error("{}", file.display())]
    Invalid {
        /// The recipe file (or the data tar, for a bad data member).
        file: PathBuf,
        /// What is wrong.
        #[source]
        reason: InputError,
    },
    /// An I/O failure reading the tree or writing the package.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DebError + 'a {
    crate::error::io_at(action, path)
}

fn invalid(file: &Path, msg: impl Into<String>) -> DebError {
    DebError::Invalid {
        file: file.to_path_buf(),
        reason: InputError::new(msg),
    }
}

/// Writes `out` (`<stem>.deb`) from the package's metadata, the installed tree `destdir` and
/// the compressed data tar `data_tar`, stored under the member name `data_name`
/// (`data.tar.xz`, `data.tar.zst`, `data.tar.gz` or `data.tar`). Every timestamp is
/// `source_date_epoch`. The file appears atomically (a temporary file beside `out`, renamed).
///
/// Errors: [`DebError::Invalid`] when there is no maintainer, a conffile is not a regular
/// file in `destdir`, or `data_name` is unknown or does not match the data tar's
/// compression; [`DebError::Io`] for read and write failures.
pub fn write_deb(
    meta: &Meta,
    deb: &DebMeta,
    destdir: &Path,
    data_tar: &Path,
    data_name: &str,
    source_date_epoch: u64,
    out: &Path,
) -> Result<(), DebError> {
    let want = DATA_NAMES
        .iter()
        .find(|(n, _)| *n == data_name)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = DATA_NAMES.iter().map(|(n, _)| *n).collect();
            invalid(
                data_tar,
                format!(
                    "unknown data member {data_name:?} (expected one of: {})",
                    names.join(", ")
                ),
            )
        })?;
    let mut head = [0u8; 6];
    let mut data = File::open(data_tar).map_err(io_err("open", data_tar))?;
    let n = read_head(&mut data, &mut head).map_err(io_err("read", data_tar))?;
    if Compression::sniff(&head[..n]) != Some(want) {
        return Err(invalid(
            data_tar,
            format!("its content does not match the member name {data_name:?}"),
        ));
    }
    let data_len = data.metadata().map_err(io_err("inspect", data_tar))?.len();
    let data = File::open(data_tar).map_err(io_err("open", data_tar))?;

    let control = control_tar_xz(meta, deb, destdir, source_date_epoch)?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = AtomicFile::create(out, 0o644).map_err(io_err("create a temporary file in", dir))?;
    {
        let file = io::BufWriter::new(tmp.file());
        let mut ar = ar::Builder::new(file);
        let member = |name: &str, size: u64| {
            let mut h = ar::Header::new(name.as_bytes().to_vec(), size);
            h.set_mtime(source_date_epoch);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mode(0o100644);
            h
        };
        let w = io_err("write", out);
        ar.append(&member("debian-binary", 4), &b"2.0\n"[..])
            .map_err(w)?;
        ar.append(
            &member("control.tar.xz", control.len() as u64),
            control.as_slice(),
        )
        .map_err(io_err("write", out))?;
        ar.append(&member(data_name, data_len), BufReader::new(data))
            .map_err(io_err("write", out))?;
        ar.into_inner()
            .map_err(io_err("write", out))?
            .flush()
            .map_err(io_err("write", out))?;
    }
    tmp.file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err("chmod", out))?;
    tmp.commit().map_err(io_err("put in place", out))
}

fn read_head(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Every entry of `destdir` (not itself) with its path relative to it, sorted by byte order.
fn tree(destdir: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>, DebError> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(destdir)
        .min_depth(1)
        .follow_links(false)
    {
        let e = e.map_err(|e| {
            let path = e.path().unwrap_or(destdir).to_path_buf();
            io_err("walk", &path)(e.into())
        })?;
        let meta = e
            .metadata()
            .map_err(|err| io_err("inspect", e.path())(err.into()))?;
        out.push((
            e.path()
                .strip_prefix(destdir)
                .unwrap_or(e.path())
                .to_path_buf(),
            meta,
        ));
    }
    out.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(out)
}

/// Installed-Size in KiB as dpkg-gencontrol computes it: ceil(size/1024) for each regular
/// file and symlink (a hard-linked file once), 1 for every other entry, the top directory
/// included.
///
/// Errors: [`DebError::Io`] when the tree cannot be walked.
pub fn installed_size(destdir: &Path) -> Result<u64, DebError> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 1; // destdir itself
    for (_, m) in tree(destdir)? {
        let ft = m.file_type();
        if ft.is_file() || ft.is_symlink() {
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.len().div_ceil(1024);
        } else {
            total += 1;
        }
    }
    Ok(total)
}

/// The `control` file with the given Installed-Size.
///
/// Errors: [`DebError::Invalid`] when there is no maintainer.
pub fn control_file(meta: &Meta, deb: &DebMeta, installed_size: u64) -> Result<String, DebError> {
    let maintainer = require(&meta.file, Some(deb))?
        .maintainer
        .as_deref()
        .unwrap_or_default();
    let mut c = String::new();
    let mut field = |name: &str, value: &str| {
        c.push_str(name);
        c.push_str(": ");
        c.push_str(value);
        c.push('\n');
    };
    field("Package", &meta.name);
    field("Version", &meta.full_version());
    field("Architecture", &meta.arch);
    field("Maintainer", maintainer);
    field("Installed-Size", &installed_size.to_string());
    for (name, items) in &deb.relations {
        field(name, &items.join(", "));
    }
    field("Section", &deb.section);
    field("Priority", &deb.priority);
    if let Some(h) = &meta.homepage {
        field("Homepage", h);
    }
    let mut description = meta.summary.trim().to_string();
    if let Some(long) = &meta.description {
        for line in long.trim_matches('\n').lines() {
            let line = line.trim_end();
            description.push('\n');
            description.push_str(if line.is_empty() { " ." } else { " " });
            if !line.is_empty() {
                description.push_str(line);
            }
        }
    }
    field("Description", &description);
    Ok(c)
}

/// Checks the `.deb`'s control data against the installed tree `destdir`: every conffile
/// must be a regular file there (not a directory, a symlink or missing), reached without
/// going through a symlink: each component is looked at with `lstat`, inside `destdir`, so a
/// link such as `etc -> /etc` can never make a host file pass for one of the package's.
/// `nsroot build` calls it before it writes any archive, so a bad conffile leaves no output
/// at all.
///
/// Errors: [`DebError::Invalid`] naming `file` (the recipe) and the conffile.
pub fn check_tree(file: &Path, deb: &DebMeta, destdir: &Path) -> Result<(), DebError> {
    check_config_files(file, "[deb] conffiles", &deb.conffiles, destdir)
}

/// Checks that every one of `paths` (config files, as installed) is a regular file in
/// `destdir`, reached through directories only: the rule of [`check_tree`], which the RPM and
/// pacman writers apply to their config files too. `what` names the list in messages
/// (`[deb] conffiles`).
///
/// Errors: [`DebError::Invalid`] naming `file` and the path.
pub fn check_config_files(
    file: &Path,
    what: &str,
    paths: &[String],
    destdir: &Path,
) -> Result<(), DebError> {
    for c in paths {
        if let Err(why) = conffile_in_tree(destdir, c) {
            return Err(invalid(file, format!("{what}: {c:?} {why}")));
        }
    }
    Ok(())
}

/// Walks `conffile` (absolute, already checked lexically: no `..`) component by component
/// below `destdir`, without following symlinks.
fn conffile_in_tree(destdir: &Path, conffile: &str) -> Result<(), String> {
    let mut path = destdir.to_path_buf();
    let mut shown = String::new();
    let mut parts = Path::new(conffile)
        .components()
        .filter(|p| matches!(p, std::path::Component::Normal(_)))
        .peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        shown.push('/');
        shown.push_str(&part.as_os_str().to_string_lossy());
        let last = parts.peek().is_none();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => return Err("is not a regular file in the installed tree".into()),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(if last {
                "is not a regular file in the installed tree (it is a symlink)".into()
            } else {
                format!("is not a regular file in the installed tree ({shown} is a symlink)")
            });
        }
        if (last && !ft.is_file()) || (!last && !ft.is_dir()) {
            return Err("is not a regular file in the installed tree".into());
        }
    }
    if shown.is_empty() {
        return Err("is not a regular file in the installed tree".into());
    }
    Ok(())
}

/// `md5sums`: one `<md5>  <path>` line per regular file of `destdir` except conffiles (as
/// dh_md5sums), in byte order of the path.
fn md5sums(destdir: &Path, conffiles: &[String]) -> Result<String, DebError> {
    let mut out = String::new();
    for (rel, m) in tree(destdir)? {
        if !m.file_type().is_file() {
            continue;
        }
        let abs = format!("/{}", rel.display());
        if conffiles.contains(&abs) {
            continue;
        }
        let path = destdir.join(&rel);
        let mut f = File::open(&path).map_err(io_err("open", &path))?;
        let mut h = Md5::new();
        io::copy(&mut f, &mut h).map_err(io_err("read", &path))?;
        out.push_str(&format!(
            "{}  {}\n",
            hex::encode(h.finalize()),
            rel.display()
        ));
    }
    Ok(out)
}

/// control.tar.xz: `./`, then control, md5sums, conffiles and the maintainer scripts, sorted,
/// root-owned, with mtime `mtime`.
fn control_tar_xz(
    meta: &Meta,
    deb: &DebMeta,
    destdir: &Path,
    mtime: u64,
) -> Result<Vec<u8>, DebError> {
    let conffiles: &[String] = &deb.conffiles;
    check_tree(&meta.file, deb, destdir)?;
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    files.push((
        "control".into(),
        0o644,
        control_file(meta, deb, installed_size(destdir)?)?.into_bytes(),
    ));
    let sums = md5sums(destdir, conffiles)?;
    if !sums.is_empty() {
        files.push(("md5sums".into(), 0o644, sums.into_bytes()));
    }
    if !conffiles.is_empty() {
        files.push((
            "conffiles".into(),
            0o644,
            (conffiles.join("\n") + "\n").into_bytes(),
        ));
    }
    for (name, path) in &deb.scripts {
        let bytes = fs::read(path).map_err(io_err("read", path))?;
        files.push(((*name).into(), 0o755, bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let tar_err = io_err("build control.tar for", &meta.file);
    let mut tar = tar::Builder::new(Vec::new());
    tar.append(
        &header("./", tar::EntryType::Directory, 0o755, 0, mtime),
        io::empty(),
    )
    .map_err(tar_err)?;
    for (name, mode, bytes) in &files {
        let h = header(
            &format!("./{name}"),
            tar::EntryType::Regular,
            *mode,
            bytes.len() as u64,
            mtime,
        );
        tar.append(&h, bytes.as_slice())
            .map_err(io_err("build control.tar for", &meta.file))?;
    }
    let raw = tar
        .into_inner()
        .map_err(io_err("build control.tar for", &meta.file))?;
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), CONTROL_XZ_LEVEL);
    xz.write_all(&raw)
        .map_err(io_err("compress control.tar for", &meta.file))?;
    xz.finish()
        .map_err(io_err("compress control.tar for", &meta.file))
}

/// A GNU tar header with every field set explicitly; `name` keeps its `./` as dpkg-deb's do.
fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    // set_path would drop the leading "./": the names are short, so write them directly.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    // Cannot fail: "root" fits the 32-byte fields.
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h.set_mtime(mtime);
    h.set_size(size);
    h.set_cksum();
    h
}

#[cfg(test)]
mod tests;
