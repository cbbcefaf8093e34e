//! RPM binary packages: their control data ([`RpmMeta`]) and the writer, built on the `rpm`
//! crate (rpm-rs), which writes the lead, the signature and main headers and the cpio payload.
//!
//! The writer takes the installed tree as the archive writer packed it (a plain tar made
//! with the build's records), so every entry's owner and group names, ids, mode, device
//! numbers and `security.capability` are the ones the `.tar.*` and `.deb` of the same build
//! hold. What nsroot decides, not the crate:
//!
//! - owners and groups by name, the id where the tar has no name (rpm resolves names at
//!   install time, as it does for `%attr`);
//! - `security.capability` becomes `%caps` text (`cap_net_raw=ep`); other extended attributes
//!   have no place in an RPM and are left out;
//! - the directories of the base file system (`/usr`, `/usr/bin`, ...: those Fedora's
//!   `filesystem` package owns) are not owned by the package, as a spec's `%files` would not
//!   list them; every other directory is, with its recorded owner and mode;
//! - files under `/usr/share/{doc,man,info}` are `%doc`, as rpmbuild marks them;
//! - device numbers must fit RPM's 8-bit major and minor (`%dev`); larger ones are refused,
//!   naming the file; FIFOs are stored;
//! - every time field is `SOURCE_DATE_EPOCH` (build time, file mtimes already clamped by the
//!   tar), the build host is [`BUILD_HOST`], and the crate adds no random field, so two
//!   builds give the same bytes.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rpm::{CompressionWithLevel, Dependency, FileOptions, Scriptlet, Timestamp};

use super::Meta;
use crate::archive::{self, ArchiveError, EntryKind, EntryMeta, Section, Visit};
use crate::error::{io_at, InputError};
use crate::fsutil::AtomicFile;

/// The build host every `.rpm` names (`RPMTAG_BUILDHOST`): fixed, so it never varies.
pub const BUILD_HOST: &str = "nsroot";

/// Directories a package does not own: the base file system (Fedora's `filesystem`).
const BASE_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/X11",
    "/etc/opt",
    "/etc/pki",
    "/etc/skel",
    "/etc/sysconfig",
    "/etc/xdg",
    "/home",
    "/lib",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/games",
    "/usr/include",
    "/usr/lib",
    "/usr/lib/debug",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/usr/share/applications",
    "/usr/share/doc",
    "/usr/share/games",
    "/usr/share/icons",
    "/usr/share/info",
    "/usr/share/licenses",
    "/usr/share/locale",
    "/usr/share/man",
    "/usr/share/man/man1",
    "/usr/share/man/man2",
    "/usr/share/man/man3",
    "/usr/share/man/man4",
    "/usr/share/man/man5",
    "/usr/share/man/man6",
    "/usr/share/man/man7",
    "/usr/share/man/man8",
    "/usr/share/man/man9",
    "/usr/share/pixmaps",
    "/usr/src",
    "/var",
    "/var/cache",
    "/var/games",
    "/var/lib",
    "/var/local",
    "/var/log",
    "/var/opt",
    "/var/spool",
    "/var/tmp",
];

/// Payload compression of a `.rpm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RpmCompression {
    /// zstd at level 19, as Fedora's rpmbuild (`w19.zstdio`).
    #[default]
    Zstd,
    /// xz at level 6.
    Xz,
    /// gzip at level 9.
    Gzip,
}

impl RpmCompression {
    /// Every compression with its name in recipes.
    pub const ALL: [(RpmCompression, &'static str); 3] = [
        (RpmCompression::Zstd, "zstd"),
        (RpmCompression::Xz, "xz"),
        (RpmCompression::Gzip, "gzip"),
    ];

    fn with_level(self) -> CompressionWithLevel {
        match self {
            RpmCompression::Zstd => CompressionWithLevel::Zstd(19),
            RpmCompression::Xz => CompressionWithLevel::Xz(6),
            RpmCompression::Gzip => CompressionWithLevel::Gzip(9),
        }
    }
}

/// An RPM scriptlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RpmScript {
    /// `%pre`
    Pre,
    /// `%post`
    Post,
    /// `%preun`
    Preun,
    /// `%postun`
    Postun,
}

impl RpmScript {
    /// Every scriptlet with its key in recipes.
    pub const ALL: [(RpmScript, &'static str); 4] = [
        (RpmScript::Pre, "pre"),
        (RpmScript::Post, "post"),
        (RpmScript::Preun, "preun"),
        (RpmScript::Postun, "postun"),
    ];
}

/// One relation (`Requires:`, `Provides:`...): a name and an optional `(operator, version)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmDep {
    /// A package, a virtual name (`perl(Foo)`) or a file path.
    pub name: String,
    /// `<`, `<=`, `=`, `>=` or `>` and the version.
    pub version: Option<(String, String)>,
}

impl RpmDep {
    fn to_dependency(&self) -> Dependency {
        match &self.version {
            None => Dependency::any(&self.name),
            Some((op, v)) => match op.as_str() {
                "<" => Dependency::less(&self.name, v),
                "<=" => Dependency::less_eq(&self.name, v),
                ">=" => Dependency::greater_eq(&self.name, v),
                ">" => Dependency::greater(&self.name, v),
                _ => Dependency::eq(&self.name, v),
            },
        }
    }
}

/// The control data of a `.rpm` beyond [`Meta`] (a recipe's `[rpm]` table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RpmMeta {
    /// `License:`, when it differs from [`Meta::license`].
    pub license: Option<String>,
    /// `Group:` (default `Unspecified`).
    pub group: Option<String>,
    /// `URL:`, when it differs from [`Meta::homepage`].
    pub url: Option<String>,
    /// `Packager:` (the `[deb]` maintainer when the recipe has one).
    pub packager: Option<String>,
    pub requires: Vec<RpmDep>,
    pub provides: Vec<RpmDep>,
    pub conflicts: Vec<RpmDep>,
    pub obsoletes: Vec<RpmDep>,
    pub recommends: Vec<RpmDep>,
    /// Files marked `%config(noreplace)`, absolute paths as installed.
    pub config_files: Vec<String>,
    /// Scriptlets with the path of each file; its `#!` line names the interpreter.
    pub scripts: Vec<(RpmScript, PathBuf)>,
    /// Payload compression.
    pub compression: RpmCompression,
}

/// The rule that an `.rpm` needs a license, in one place (the recipe check and the writer
/// ask it): `[rpm] license`, else `[package] license`; or what to add.
pub fn license<'a>(meta: &'a Meta, rpm: &'a RpmMeta) -> Result<&'a str, &'static str> {
    rpm.license
        .as_deref()
        .or(meta.license.as_deref())
        .ok_or("an .rpm needs a license: add [package] license = \"SPDX expression\"")
}

/// The rule for RPM versions and releases: no `-` (it separates version from release).
/// Returns which field breaks it.
pub fn version_rule(meta: &Meta) -> Result<(), String> {
    if meta.upstream_version().contains('-') {
        return Err(format!(
            "version {:?}: an RPM version may not contain '-'",
            meta.version
        ));
    }
    if meta.release.contains('-') {
        return Err(format!(
            "release {:?}: an RPM release may not contain '-'",
            meta.release
        ));
    }
    Ok(())
}

/// Errors from writing a `.rpm`.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The control data or a file of the tree cannot go into an RPM (a device number over
    /// 255, a name that is not UTF-8, a missing license, a config file not in the tree).
    #[error("{}", file.display())]
    Invalid {
        /// The recipe file.
        file: PathBuf,
        /// What is wrong, naming the file of the tree.
        #[source]
        reason: InputError,
    },
    /// Reading the packed tree failed.
    #[error(transparent)]
    Tree(#[from] ArchiveError),
    /// The rpm crate refused the package.
    #[error("build the rpm {}: {message}", out.display())]
    Build {
        out: PathBuf,
        /// The crate's error, flattened (it does not implement `Error` with a source chain).
        message: String,
    },
    /// An I/O failure.
    #[error(transparent)]
    Io(#[from] crate::error::IoAt),
}

/// The config-file check shared with the `.deb` writer fails as the `.rpm` writer does.
impl From<super::deb::DebError> for RpmError {
    fn from(e: super::deb::DebError) -> RpmError {
        match e {
            super::deb::DebError::Invalid { file, reason } => RpmError::Invalid { file, reason },
            super::deb::DebError::Io(e) => RpmError::Io(e),
        }
    }
}

fn invalid(file: &Path, msg: impl Into<String>) -> RpmError {
    RpmError::Invalid {
        file: file.to_path_buf(),
        reason: InputError::new(msg),
    }
}

/// One entry of the packed tree, with its content when it is a regular file.
struct Item {
    /// The installed path (`/usr/bin/x`).
    path: String,
    meta: EntryMeta,
    content: Vec<u8>,
}

/// Collects the entries of the packed tree.
struct Collect {
    items: Vec<Item>,
    file: PathBuf,
    bad: Option<RpmError>,
}

impl Visit for Collect {
    fn entry(
        &mut self,
        _section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        if self.bad.is_some() {
            return Ok(());
        }
        let Ok(stored) = std::str::from_utf8(&meta.path) else {
            self.bad = Some(invalid(
                &self.file,
                format!(
                    "{}: an RPM stores file names as UTF-8; this one is not",
                    String::from_utf8_lossy(&meta.path)
                ),
            ));
            return Ok(());
        };
        let path = installed_path(stored);
        if path == "/" {
            return Ok(());
        }
        let mut bytes = Vec::new();
        if meta.kind == EntryKind::File {
            content
                .read_to_end(&mut bytes)
                .map_err(|e| ArchiveError::io("read", &path, e))?;
        }
        self.items.push(Item {
            path,
            meta: meta.clone(),
            content: bytes,
        });
        Ok(())
    }
}

/// `./usr/bin/` -> `/usr/bin`.
fn installed_path(stored: &str) -> String {
    let p = stored.strip_prefix('.').unwrap_or(stored);
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        "/".into()
    } else if p.starts_with('/') {
        p.into()
    } else {
        format!("/{p}")
    }
}

/// Writes `out` (`<stem>.rpm`) from the package's metadata and `tree`, the installed tree
/// packed as a plain tar by the archive writer with the build's records; `destdir` is the
/// tree itself, where config files are checked. Every time field is `source_date_epoch`.
/// The file appears atomically.
///
/// Errors: [`RpmError::Invalid`] for what an RPM cannot hold (naming the file and why),
/// [`RpmError::Tree`] when the tar cannot be read, [`RpmError::Build`] when the crate refuses
/// the package, [`RpmError::Io`] for write failures.
pub fn write_rpm(
    meta: &Meta,
    rpm: &RpmMeta,
    tree: &Path,
    destdir: &Path,
    source_date_epoch: u64,
    out: &Path,
) -> Result<(), RpmError> {
    let license = license(meta, rpm).map_err(|why| invalid(&meta.file, why))?;
    version_rule(meta).map_err(|why| invalid(&meta.file, format!("[package] {why}")))?;
    super::deb::check_config_files(&meta.file, "[rpm] config_files", &rpm.config_files, destdir)?;
    let mut collect = Collect {
        items: Vec::new(),
        file: meta.file.clone(),
        bad: None,
    };
    archive::read_path(tree, &mut collect)?;
    if let Some(e) = collect.bad {
        return Err(e);
    }
    let sde = u32::try_from(source_date_epoch).unwrap_or(u32::MAX);
    let build_err = |e: rpm::Error| RpmError::Build {
        out: out.to_path_buf(),
        message: e.to_string(),
    };

    let mut b = rpm::PackageBuilder::new(
        &meta.name,
        meta.upstream_version(),
        license,
        &meta.rpm_arch(),
        &meta.summary,
    );
    b.using_config(
        rpm::BuildConfig::v4()
            .source_date(Timestamp(sde))
            .compression(rpm.compression.with_level()),
    );
    if let Some(e) = meta.epoch() {
        b.epoch(e);
    }
    b.release(meta.release.as_str());
    b.description(
        meta.description
            .clone()
            .unwrap_or_else(|| meta.summary.clone()),
    );
    if let Some(url) = rpm.url.as_ref().or(meta.homepage.as_ref()) {
        b.url(url.as_str());
    }
    b.group(rpm.group.as_deref().unwrap_or("Unspecified"));
    if let Some(p) = &rpm.packager {
        b.packager(p.as_str());
    }
    b.build_host(BUILD_HOST);
    // One changelog entry, dated SOURCE_DATE_EPOCH (rpmlint asks for a changelog).
    b.add_changelog_entry(
        format!(
            "{} - {}-{}",
            rpm.packager.as_deref().unwrap_or("nsroot"),
            meta.upstream_version(),
            meta.release
        ),
        "- Built by nsroot from its recipe",
        Timestamp(sde),
    );
    for (list, add) in [
        (
            &rpm.requires,
            rpm::PackageBuilder::requires as fn(&mut _, _) -> &mut _,
        ),
        (&rpm.provides, rpm::PackageBuilder::provides),
        (&rpm.conflicts, rpm::PackageBuilder::conflicts),
        (&rpm.obsoletes, rpm::PackageBuilder::obsoletes),
        (&rpm.recommends, rpm::PackageBuilder::recommends),
    ] {
        for d in list {
            add(&mut b, d.to_dependency());
        }
    }
    for (script, path) in &rpm.scripts {
        let body = std::fs::read_to_string(path).map_err(io_at::<RpmError>("read", path))?;
        let s = scriptlet(&body);
        match script {
            RpmScript::Pre => b.pre_install_script(s),
            RpmScript::Post => b.post_install_script(s),
            RpmScript::Preun => b.pre_uninstall_script(s),
            RpmScript::Postun => b.post_uninstall_script(s),
        };
    }

    // Hard links: every name of a set carries the same identity (the first name's path) and
    // the content; the crate stores it once, with the last name, as rpmbuild does.
    let linked: std::collections::BTreeSet<Vec<u8>> = collect
        .items
        .iter()
        .filter(|i| i.meta.kind == EntryKind::HardLink)
        .map(|i| i.meta.link.clone())
        .collect();
    // The content and installed path of each file that hard links name; every other file's
    // content moves into the builder instead of being copied.
    let targets: BTreeMap<Vec<u8>, (Vec<u8>, String)> = collect
        .items
        .iter()
        .filter(|i| i.meta.kind == EntryKind::File && linked.contains(&i.meta.path))
        .map(|i| (i.meta.path.clone(), (i.content.clone(), i.path.clone())))
        .collect();
    for mut item in collect.items {
        let m = &item.meta;
        let options = |o: rpm::FileOptionsBuilder| -> Result<rpm::FileOptionsBuilder, RpmError> {
            let o = o
                .user(owner_name(&m.uname, m.uid))
                .group(owner_name(&m.gname, m.gid))
                .permissions((m.mode & 0o7777) as u16)
                .modified_at(Timestamp(u32::try_from(m.mtime.max(0)).unwrap_or(u32::MAX)));
            let o = match caps_of(m) {
                Some(Ok(text)) => o.caps(text).map_err(|e| {
                    invalid(&meta.file, format!("{}: capabilities: {e}", item.path))
                })?,
                Some(Err(why)) => {
                    return Err(invalid(
                        &meta.file,
                        format!("{}: security.capability: {why}", item.path),
                    ))
                }
                None => o,
            };
            Ok(if rpm.config_files.contains(&item.path) {
                o.config().noreplace()
            } else if m.kind != EntryKind::Dir && is_doc(&item.path) {
                o.doc()
            } else {
                o
            })
        };
        match m.kind {
            EntryKind::Dir => {
                if BASE_DIRS.contains(&item.path.as_str()) {
                    continue;
                }
                b.with_dir_entry(options(FileOptions::dir(&item.path))?)
            }
            EntryKind::File | EntryKind::HardLink => {
                let mut o = options(FileOptions::new(&item.path))?;
                let (content, identity) = if m.kind == EntryKind::File {
                    let id = linked.contains(&m.path).then(|| item.path.clone());
                    (std::mem::take(&mut item.content), id)
                } else {
                    let Some((content, first)) = targets.get(&m.link) else {
                        return Err(invalid(
                            &meta.file,
                            format!("{}: a hard link to a file not in the tree", item.path),
                        ));
                    };
                    (content.clone(), Some(first.clone()))
                };
                if let Some(id) = identity {
                    o = o.hardlink(id);
                }
                b.with_file_contents(content, o)
            }
            EntryKind::Symlink => {
                let target = String::from_utf8(m.link.clone()).map_err(|_| {
                    invalid(
                        &meta.file,
                        format!("{}: an RPM stores link targets as UTF-8", item.path),
                    )
                })?;
                b.with_symlink(options(FileOptions::symlink(&item.path, target))?)
            }
            EntryKind::Char | EntryKind::Block => {
                let (major, minor) = m.dev;
                let (Ok(major), Ok(minor)) = (u8::try_from(major), u8::try_from(minor)) else {
                    return Err(invalid(
                        &meta.file,
                        format!(
                            "{}: device {major},{minor}: an RPM stores device numbers in 8 bits \
                             each (at most 255,255)",
                            item.path
                        ),
                    ));
                };
                let o = if m.kind == EntryKind::Char {
                    FileOptions::character_device(&item.path, major, minor)
                } else {
                    FileOptions::block_device(&item.path, major, minor)
                };
                b.with_special_file(options(o)?)
            }
            EntryKind::Fifo => b.with_special_file(options(FileOptions::fifo(&item.path))?),
            EntryKind::Other(t) => {
                return Err(invalid(
                    &meta.file,
                    format!(
                        "{}: tar entry type {:?} has no RPM equivalent",
                        item.path, t as char
                    ),
                ))
            }
        }
        .map_err(build_err)?;
    }
    let pkg = b.build().map_err(build_err)?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = AtomicFile::create(out, 0o644)
        .map_err(io_at::<RpmError>("create a temporary file in", dir))?;
    {
        let mut w = BufWriter::new(tmp.file());
        pkg.write(&mut w).map_err(build_err)?;
        w.flush().map_err(io_at::<RpmError>("write", out))?;
    }
    tmp.commit().map_err(io_at::<RpmError>("put in place", out))
}

/// One line of a spec's `%files` list, as [`files_list`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesLine {
    /// `%attr(4755,root,games) /usr/bin/x`, `%dir %attr(...) /var/lib/x`,
    /// `%dev(c,1,3) %attr(...) /dev/x`, with `%caps(...)` where the file has capabilities.
    pub line: String,
    /// For a device node: its path below the tree, an empty regular file on disk that only
    /// the records make a device (rpmbuild's `%dev` entries must not exist in the buildroot).
    pub device_placeholder: Option<String>,
}

/// A `%files` list for rpmbuild from `tree` (the buildroot packed as a plain tar by the
/// archive writer, with the records): every entry but the buildroot itself and the base
/// directories (as the writer leaves them out), with `%attr(mode,user,group)` from the
/// records, so the `.rpm` gets the owners the install steps set rather than
/// `%defattr(-,root,root)`. Paths with spaces are quoted and `%` doubled, as spec files need.
///
/// Errors: [`RpmError::Tree`] when the tar cannot be read, [`RpmError::Invalid`] (naming
/// `file`) for a name or capability an RPM cannot hold.
pub fn files_list(tree: &Path, file: &Path) -> Result<Vec<FilesLine>, RpmError> {
    let mut collect = Collect {
        items: Vec::new(),
        file: file.to_path_buf(),
        bad: None,
    };
    archive::read_path(tree, &mut collect)?;
    if let Some(e) = collect.bad {
        return Err(e);
    }
    let mut out = Vec::new();
    for item in &collect.items {
        let m = &item.meta;
        if m.kind == EntryKind::Dir && BASE_DIRS.contains(&item.path.as_str()) {
            continue;
        }
        let mut quoted = item.path.replace('%', "%%");
        if quoted.contains(char::is_whitespace) {
            quoted = format!("\"{quoted}\"");
        }
        let mode = if m.kind == EntryKind::Symlink {
            "-".to_string()
        } else {
            format!("{:04o}", m.mode & 0o7777)
        };
        let attr = format!(
            "%attr({mode},{},{})",
            owner_name(&m.uname, m.uid),
            owner_name(&m.gname, m.gid)
        );
        let mut line = String::new();
        let mut placeholder = None;
        match m.kind {
            EntryKind::Dir => line.push_str("%dir "),
            EntryKind::Char | EntryKind::Block => {
                let t = if m.kind == EntryKind::Char { 'c' } else { 'b' };
                line.push_str(&format!("%dev({t},{},{}) ", m.dev.0, m.dev.1));
                placeholder = Some(item.path.trim_start_matches('/').to_string());
            }
            _ => {}
        }
        match caps_of(m) {
            Some(Ok(text)) => line.push_str(&format!("%caps({text}) ")),
            Some(Err(why)) => {
                return Err(invalid(
                    file,
                    format!("{}: security.capability: {why}", item.path),
                ))
            }
            None => {}
        }
        line.push_str(&attr);
        line.push(' ');
        line.push_str(&quoted);
        out.push(FilesLine {
            line,
            device_placeholder: placeholder,
        });
    }
    Ok(out)
}

/// Documentation, as rpmbuild marks it by itself (`%doc`): what is installed under the
/// doc, man and info directories.
fn is_doc(path: &str) -> bool {
    ["/usr/share/doc/", "/usr/share/man/", "/usr/share/info/"]
        .iter()
        .any(|d| path.starts_with(d))
}

/// A scriptlet from a file: its `#!` line gives the interpreter (default `/bin/sh`).
fn scriptlet(body: &str) -> Scriptlet {
    let prog: Vec<String> = body
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .filter(|p: &Vec<String>| !p.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into()]);
    Scriptlet::new(body).prog(prog)
}

/// The name rpm is to give the owner: the stored name, else the id.
fn owner_name(name: &[u8], id: u64) -> String {
    match std::str::from_utf8(name) {
        Ok(n) if !n.is_empty() => n.into(),
        _ => id.to_string(),
    }
}

/// The `security.capability` of an entry as `%caps` text, if it has one.
fn caps_of(m: &EntryMeta) -> Option<Result<String, String>> {
    m.xattrs
        .iter()
        .find(|(k, _)| k == b"security.capability")
        .map(|(_, v)| caps_text(v))
}

/// Capability names by number, as libcap's `cap_to_text` writes them.
const CAP_NAMES: &[&str] = &[
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// A `security.capability` value (`struct vfs_cap_data`, revision 2 or 3: magic, then
/// permitted and inheritable as two 32-bit halves each; capabilities(7)) as text:
/// `cap_a,cap_b=ep cap_c=ei`, one clause per set of flags, in capability order.
pub fn caps_text(v: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            v.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let magic = word(0).ok_or("too short")?;
    let revision = magic & 0xff00_0000;
    if revision != 0x0200_0000 && revision != 0x0300_0000 {
        return Err(format!("unknown revision {:#x}", revision >> 24));
    }
    if revision == 0x0300_0000 && word(5).is_some_and(|root| root != 0) {
        return Err("a namespaced capability (rootid set) cannot be stored".into());
    }
    let effective = magic & 1 != 0;
    let (p0, i0, p1, i1) = (
        word(1).ok_or("too short")?,
        word(2).ok_or("too short")?,
        word(3).ok_or("too short")?,
        word(4).ok_or("too short")?,
    );
    let permitted = u64::from(p0) | u64::from(p1) << 32;
    let inheritable = u64::from(i0) | u64::from(i1) << 32;
    // Group capabilities by their flags, in order of first appearance.
    let mut clauses: Vec<(String, Vec<&str>)> = Vec::new();
    for (n, name) in CAP_NAMES.iter().enumerate() {
        let (p, i) = (permitted >> n & 1 == 1, inheritable >> n & 1 == 1);
        if !p && !i {
            continue;
        }
        let mut flags = String::new();
        if effective && p {
            flags.push('e');
        }
        if i {
            flags.push('i');
        }
        if p {
            flags.push('p');
        }
        match clauses.iter_mut().find(|(f, _)| *f == flags) {
            Some((_, names)) => names.push(name),
            None => clauses.push((flags, vec![name])),
        }
    }
    if (permitted | inheritable) >> CAP_NAMES.len() != 0 {
        return Err("names a capability this nsroot does not know".into());
    }
    if clauses.is_empty() {
        return Err("holds no capability".into());
    }
    Ok(clauses
        .iter()
        .map(|(f, names)| format!("{}={f}", names.join(",")))
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vfs(magic: u32, p: u64, i: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [
            magic,
            p as u32,
            i as u32,
            (p >> 32) as u32,
            (i >> 32) as u32,
        ] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    #[test]
    fn caps_become_libcap_text() {
        // setcap cap_net_raw+ep: revision 2, effective, permitted bit 13.
        assert_eq!(
            caps_text(&vfs(0x0200_0001, 1 << 13, 0)).unwrap(),
            "cap_net_raw=ep"
        );
        assert_eq!(
            caps_text(&vfs(0x0200_0000, 1 << 13 | 1 << 10, 1 << 0)).unwrap(),
            "cap_chown=i cap_net_bind_service,cap_net_raw=p"
        );
        assert_eq!(
            caps_text(&vfs(0x0200_0001, 1 << 40, 0)).unwrap(),
            "cap_checkpoint_restore=ep"
        );
        let mut v3 = vfs(0x0300_0001, 1 << 13, 0);
        v3.extend_from_slice(&1000u32.to_le_bytes());
        assert!(caps_text(&v3).unwrap_err().contains("rootid"));
        assert!(caps_text(&vfs(0x0100_0000, 1, 0)).is_err());
        assert!(caps_text(b"\x01").is_err());
        assert!(caps_text(&vfs(0x0200_0001, 0, 0)).is_err());
    }

    #[test]
    fn installed_paths() {
        assert_eq!(installed_path("./"), "/");
        assert_eq!(installed_path("./usr/bin/"), "/usr/bin");
        assert_eq!(installed_path("./usr/bin/x"), "/usr/bin/x");
        assert_eq!(installed_path("usr/x"), "/usr/x");
    }

    #[test]
    fn scriptlets_take_their_interpreter_from_the_shebang() {
        let s = scriptlet("#!/bin/bash -e\necho hi\n");
        assert_eq!(s.program, Some(vec!["/bin/bash".into(), "-e".into()]));
        assert_eq!(scriptlet("echo\n").program, Some(vec!["/bin/sh".into()]));
    }

    #[test]
    fn license_and_version_rules() {
        let mut m = Meta {
            file: "r".into(),
            name: "x".into(),
            version: "1.0".into(),
            release: "1".into(),
            arch: "amd64".into(),
            summary: "s".into(),
            description: None,
            homepage: None,
            license: None,
        };
        let mut r = RpmMeta::default();
        assert!(license(&m, &r).is_err());
        m.license = Some("MIT".into());
        assert_eq!(license(&m, &r), Ok("MIT"));
        r.license = Some("GPL-2.0-only".into());
        assert_eq!(license(&m, &r), Ok("GPL-2.0-only"));
        assert_eq!(version_rule(&m), Ok(()));
        m.version = "1:1.0-rc1".into();
        assert!(version_rule(&m)
            .unwrap_err()
            .contains("may not contain '-'"));
    }
}
