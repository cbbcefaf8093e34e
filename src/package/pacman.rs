//! pacman packages (`.pkg.tar.zst`): their control data ([`PacmanMeta`]) and the writer.
//!
//! A pacman package is a zstd-compressed tar whose first entries are `.PKGINFO` (the
//! package's fields), `.BUILDINFO` (how it was built), `.MTREE` (a gzipped mtree(5) of
//! every entry: type, uid, gid, mode, time, size, md5 and sha256, link target) and, with an
//! install script, `.INSTALL`; then the tree with names as makepkg's bsdtar stores them
//! (`usr/bin/x`). The archive writer writes all of it (the metadata as its lead files), so
//! owners, modes, devices and xattrs are the tar outputs' own; `.MTREE` is computed from the
//! same tree packed by the same writer. Every time is `SOURCE_DATE_EPOCH`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use super::Meta;
use crate::archive::{
    self, ArchiveError, EntryKind, EntryMeta, Format, PackOptions, Section, Visit,
};
use crate::error::InputError;
use crate::ownership::Lookup;

/// The control data of a `.pkg.tar.zst` beyond [`Meta`] (a recipe's `[arch]` table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PacmanMeta {
    /// `depend`: `name[op version]`, as in a PKGBUILD.
    pub depends: Vec<String>,
    /// `optdepend`: `name: reason`.
    pub optdepends: Vec<String>,
    pub provides: Vec<String>,
    pub conflicts: Vec<String>,
    pub replaces: Vec<String>,
    /// `backup`: config files, relative to `/` (`etc/x.conf`).
    pub backup: Vec<String>,
    /// `group`.
    pub groups: Vec<String>,
    /// The install script (`.INSTALL`: pacman's `post_install()` and friends).
    pub install: Option<PathBuf>,
    /// `packager` (the `[deb]` maintainer when the recipe has one).
    pub packager: Option<String>,
}

/// The rule for pacman versions: `pkgver` may not contain `-` (it separates pkgrel).
pub fn version_rule(meta: &Meta) -> Result<(), String> {
    if meta.upstream_version().contains('-') {
        return Err(format!(
            "version {:?}: a pacman pkgver may not contain '-'",
            meta.version
        ));
    }
    Ok(())
}

/// Errors from writing a `.pkg.tar.zst`.
#[derive(Debug, thiserror::Error)]
pub enum PacmanError {
    /// The control data does not fit the tree (a backup file missing from it) or the format.
    #[error("{}", file.display())]
    Invalid {
        file: PathBuf,
        #[source]
        reason: InputError,
    },
    /// Reading the packed tree or writing the package failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Reading the install script (or the tree) failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
}

/// The backup-file check shared with the `.deb` writer fails as the pacman writer does.
impl From<super::deb::DebError> for PacmanError {
    fn from(e: super::deb::DebError) -> PacmanError {
        match e {
            super::deb::DebError::Invalid { file, reason } => PacmanError::Invalid { file, reason },
            super::deb::DebError::Io(e) => PacmanError::Io(e),
        }
    }
}

/// The `.MTREE` lines and the installed size, from the packed tree.
struct Mtree {
    lines: Vec<String>,
    /// Bytes of regular files (each content once) and symlink targets.
    size: u64,
    /// Digests of each file's content, by stored name, for its hard links.
    digests: std::collections::HashMap<Vec<u8>, (u64, String, String)>,
}

impl Visit for Mtree {
    fn entry(
        &mut self,
        _section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let name = String::from_utf8_lossy(&meta.path);
        let rel = name.trim_start_matches("./").trim_end_matches('/');
        if rel.is_empty() || rel == "." {
            return Ok(());
        }
        let mut line = format!("./{}", mtree_escape(rel.as_bytes()));
        let mut key = |k: &str, v: String| {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(&v);
        };
        key("time", format!("{}.0", meta.mtime));
        if meta.uid != 0 {
            key("uid", meta.uid.to_string());
        }
        if meta.gid != 0 {
            key("gid", meta.gid.to_string());
        }
        if meta.mode != 0o644 {
            key("mode", format!("{:o}", meta.mode));
        }
        match meta.kind {
            EntryKind::File | EntryKind::HardLink => {
                let (size, md5, sha) = if meta.kind == EntryKind::File {
                    let mut md5 = Md5::new();
                    let mut sha = Sha256::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = content
                            .read(&mut buf)
                            .map_err(|e| ArchiveError::io("read", rel, e))?;
                        if n == 0 {
                            break;
                        }
                        md5.update(&buf[..n]);
                        sha.update(&buf[..n]);
                    }
                    let d = (
                        meta.size,
                        hex::encode(md5.finalize()),
                        hex::encode(sha.finalize()),
                    );
                    self.size += meta.size;
                    self.digests.insert(meta.path.clone(), d.clone());
                    d
                } else {
                    self.digests.get(&meta.link).cloned().unwrap_or_default()
                };
                key("size", size.to_string());
                key("md5digest", md5);
                key("sha256digest", sha);
            }
            EntryKind::Dir => key("type", "dir".into()),
            EntryKind::Symlink => {
                self.size += meta.link.len() as u64;
                key("type", "link".into());
                key("link", mtree_escape(&meta.link));
            }
            EntryKind::Char => key("type", "char".into()),
            EntryKind::Block => key("type", "block".into()),
            EntryKind::Fifo => key("type", "fifo".into()),
            EntryKind::Other(_) => {}
        }
        self.lines.push(line);
        Ok(())
    }
}

/// A name as mtree(5) writes it: bytes outside printable ASCII, space, `#`, `=` and `\`
/// as `\ooo`.
fn mtree_escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !b"#=\\".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\{b:03o}"));
        }
    }
    s
}

/// An mtree line for one of the metadata files, which the mtree lists too (as makepkg's).
fn mtree_file(name: &str, content: &[u8], mtime: u64) -> String {
    format!(
        "./{name} time={mtime}.0 size={} md5digest={} sha256digest={}",
        content.len(),
        hex::encode(Md5::digest(content)),
        hex::encode(Sha256::digest(content))
    )
}

/// Writes `out` (`<stem>.pkg.tar.zst`): the metadata computed from `tree` (the installed tree
/// packed as a plain tar by the archive writer with the build's records) and then the tree
/// `destdir` itself, packed by the archive writer with `records`. `jobs` zstd threads; every
/// time is `source_date_epoch`. The file appears atomically.
///
/// Errors: [`PacmanError::Invalid`] for a version pacman cannot hold or a backup file that is
/// not a regular file in `destdir`; [`PacmanError::Archive`] for reading and writing.
#[allow(clippy::too_many_arguments)]
pub fn write_pacman(
    meta: &Meta,
    pac: &PacmanMeta,
    tree: &Path,
    destdir: &Path,
    records: Option<&dyn Lookup>,
    source_date_epoch: u64,
    jobs: usize,
    out: &Path,
) -> Result<(), PacmanError> {
    let invalid = |msg: String| PacmanError::Invalid {
        file: meta.file.clone(),
        reason: InputError::new(msg),
    };
    version_rule(meta).map_err(|why| invalid(format!("[package] {why}")))?;
    let backup: Vec<String> = pac.backup.iter().map(|b| format!("/{b}")).collect();
    super::deb::check_config_files(&meta.file, "[arch] backup", &backup, destdir)?;
    let mut mtree = Mtree {
        lines: Vec::new(),
        size: 0,
        digests: Default::default(),
    };
    archive::read_path(tree, &mut mtree)?;

    let pkgver = meta.full_version();
    let packager = pac.packager.as_deref().unwrap_or("Unknown Packager");
    let arch = meta.pacman_arch();
    let mut info = String::new();
    let mut field = |k: &str, v: &str| {
        info.push_str(k);
        info.push_str(" = ");
        info.push_str(v);
        info.push('\n');
    };
    field("pkgname", &meta.name);
    field("pkgbase", &meta.name);
    field("pkgver", &pkgver);
    field("pkgdesc", &meta.summary);
    if let Some(url) = &meta.homepage {
        field("url", url);
    }
    field("builddate", &source_date_epoch.to_string());
    field("packager", packager);
    field("size", &(mtree.size.div_ceil(1024) * 1024).to_string());
    field("arch", &arch);
    if let Some(l) = &meta.license {
        field("license", l);
    }
    for (key, list) in [
        ("replaces", &pac.replaces),
        ("group", &pac.groups),
        ("conflict", &pac.conflicts),
        ("provides", &pac.provides),
        ("backup", &pac.backup),
        ("depend", &pac.depends),
        ("optdepend", &pac.optdepends),
    ] {
        for v in list {
            field(key, v);
        }
    }
    let pkginfo = format!(
        "# Generated by nsroot {}\n# using nsroot\n{info}",
        env!("CARGO_PKG_VERSION")
    );
    let buildinfo = format!(
        "format = 2\npkgname = {name}\npkgbase = {name}\npkgver = {pkgver}\npkgarch = {arch}\n\
         packager = {packager}\nbuilddate = {source_date_epoch}\nbuilddir = /build\n\
         startdir = /build\nbuildtool = nsroot\nbuildtoolver = {}\n",
        env!("CARGO_PKG_VERSION"),
        name = meta.name,
    );
    let install = match &pac.install {
        Some(p) => Some(std::fs::read(p).map_err(crate::error::io_at::<PacmanError>("read", p))?),
        None => None,
    };

    let mut lines = vec![
        mtree_file(".BUILDINFO", buildinfo.as_bytes(), source_date_epoch),
        mtree_file(".PKGINFO", pkginfo.as_bytes(), source_date_epoch),
    ];
    if let Some(i) = &install {
        lines.push(mtree_file(".INSTALL", i, source_date_epoch));
    }
    lines.extend(mtree.lines);
    lines.sort();
    let text = format!(
        "#mtree\n/set type=file uid=0 gid=0 mode=644\n{}\n",
        lines.join("\n")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gz_err = |e| ArchiveError::io("compress", ".MTREE", e);
    gz.write_all(text.as_bytes()).map_err(gz_err)?;
    let mtree_gz = gz.finish().map_err(gz_err)?;

    let mut opts = PackOptions::new(Format::TarZst);
    opts.mtime_clamp = Some(source_date_epoch);
    opts.jobs = jobs.max(1);
    opts.xattrs = true;
    opts.bare_names = true;
    opts.lead = vec![
        (b".PKGINFO".to_vec(), pkginfo.into_bytes()),
        (b".BUILDINFO".to_vec(), buildinfo.into_bytes()),
        (b".MTREE".to_vec(), mtree_gz),
    ];
    if let Some(i) = install {
        opts.lead.push((b".INSTALL".to_vec(), i));
    }
    archive::pack(
        destdir,
        &archive::Output::Path(out.to_path_buf()),
        &opts,
        records,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtree_names_escape_like_libarchive() {
        assert_eq!(mtree_escape(b"usr/bin/a"), "usr/bin/a");
        assert_eq!(mtree_escape(b"a b#c=d\\e"), "a\\040b\\043c\\075d\\134e");
        assert_eq!(mtree_escape(b"caf\xc3\xa9"), "caf\\303\\251");
    }

    #[test]
    fn version_needs_no_dash() {
        let mut m = Meta {
            file: "r".into(),
            name: "x".into(),
            version: "2:1.0".into(),
            release: "1".into(),
            arch: "all".into(),
            summary: "s".into(),
            description: None,
            homepage: None,
            license: None,
        };
        assert_eq!(version_rule(&m), Ok(()));
        m.version = "1.0-rc".into();
        assert!(version_rule(&m).is_err());
    }
}
