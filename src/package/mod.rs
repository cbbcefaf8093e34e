//! Package formats: for each, its control data and its writer, side by side.
//!
//! [`Meta`] is what every format says of a package (name, version, architecture, summary...);
//! a recipe build makes one from `[package]` and the format tables, and each writer takes it
//! with its own control data: [`deb`] (`.deb`), [`rpm`] (`.rpm`), [`pacman`]
//! (`.pkg.tar.zst`). Writers know nothing of recipes; the recipe parser only fills these
//! types. [`OutputFormat`] names what a build can write.

pub mod deb;
pub mod pacman;
pub mod rpm;

use std::fmt;
use std::path::PathBuf;

use crate::archive::Format;

/// What every package format says about a package, from the recipe's `[package]` table and
/// the facts that more than one format shares (`[deb]` description and homepage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The file this metadata came from (the recipe), named in error messages.
    pub file: PathBuf,
    /// Package name (`[a-z0-9][a-z0-9+.-]+`, valid in every format).
    pub name: String,
    /// Upstream version, optionally with an epoch (`1:2.0`).
    pub version: String,
    /// Package release (Debian revision, RPM release, pacman pkgrel).
    pub release: String,
    /// Architecture in dpkg's names (`amd64`, `arm64`, `all`...); see [`Meta::rpm_arch`] and
    /// [`Meta::pacman_arch`] for the other formats' names.
    pub arch: String,
    /// One-line summary.
    pub summary: String,
    /// The extended description, possibly several lines.
    pub description: Option<String>,
    /// The project's home page.
    pub homepage: Option<String>,
    /// License (an SPDX expression, or free text).
    pub license: Option<String>,
}

impl Meta {
    /// The epoch of the version (`2` of `2:1.0`), if it has one.
    pub fn epoch(&self) -> Option<u32> {
        let (epoch, _) = self.version.split_once(':')?;
        epoch.parse().ok()
    }

    /// The version without its epoch.
    pub fn upstream_version(&self) -> &str {
        match self.version.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => &self.version,
        }
    }

    /// `[epoch:]version-release`: Debian's and pacman's full version.
    pub fn full_version(&self) -> String {
        format!("{}-{}", self.version, self.release)
    }

    /// The architecture in RPM's names (`x86_64`, `aarch64`, `noarch`...).
    pub fn rpm_arch(&self) -> String {
        arch_for(&self.arch, ArchNames::Rpm)
    }

    /// The architecture in pacman's names (`x86_64`, `aarch64`, `any`...).
    pub fn pacman_arch(&self) -> String {
        arch_for(&self.arch, ArchNames::Pacman)
    }
}

#[derive(Clone, Copy)]
enum ArchNames {
    Rpm,
    Pacman,
}

/// dpkg's architecture names and what RPM and pacman call the same machine.
const ARCHES: &[(&str, &str, &str)] = &[
    ("all", "noarch", "any"),
    ("amd64", "x86_64", "x86_64"),
    ("i386", "i686", "i686"),
    ("arm64", "aarch64", "aarch64"),
    ("armhf", "armv7hl", "armv7h"),
    ("ppc64el", "ppc64le", "powerpc64le"),
    ("ppc64", "ppc64", "powerpc64"),
    ("riscv64", "riscv64", "riscv64"),
    ("s390x", "s390x", "s390x"),
    ("loong64", "loongarch64", "loong64"),
];

fn arch_for(dpkg: &str, names: ArchNames) -> String {
    match ARCHES.iter().find(|(d, _, _)| *d == dpkg) {
        Some((_, rpm, pacman)) => match names {
            ArchNames::Rpm => (*rpm).into(),
            ArchNames::Pacman => (*pacman).into(),
        },
        None => dpkg.into(),
    }
}

/// The host's architecture in dpkg's names (`amd64`, `arm64`...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64el",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        other => other,
    }
}

/// One output format of a build: an archive or a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputFormat {
    /// `tar`
    Tar,
    /// `tar.gz`
    TarGz,
    /// `tar.zst`
    TarZst,
    /// `tar.xz`
    TarXz,
    /// `deb` (a Debian binary package)
    Deb,
    /// `rpm` (an RPM binary package)
    Rpm,
    /// `pkg.tar.zst` (a pacman package)
    PkgTarZst,
}

impl OutputFormat {
    /// Every format with its name in recipes and on the command line, which is also the
    /// output file's extension.
    pub const ALL: [(OutputFormat, &'static str); 7] = [
        (OutputFormat::Tar, "tar"),
        (OutputFormat::TarGz, "tar.gz"),
        (OutputFormat::TarZst, "tar.zst"),
        (OutputFormat::TarXz, "tar.xz"),
        (OutputFormat::Deb, "deb"),
        (OutputFormat::Rpm, "rpm"),
        (OutputFormat::PkgTarZst, "pkg.tar.zst"),
    ];

    /// The name in recipes and the output file's extension (`tar.gz`, `deb`...).
    pub fn extension(self) -> &'static str {
        OutputFormat::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("tar")
    }

    /// Parses a format name.
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }

    /// The plain archive format, or None for a package.
    pub fn archive_format(self) -> Option<Format> {
        match self {
            OutputFormat::Tar => Some(Format::Tar),
            OutputFormat::TarGz => Some(Format::TarGz),
            OutputFormat::TarZst => Some(Format::TarZst),
            OutputFormat::TarXz => Some(Format::TarXz),
            OutputFormat::Deb | OutputFormat::Rpm | OutputFormat::PkgTarZst => None,
        }
    }
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> OutputFormat {
        match f {
            Format::Tar => OutputFormat::Tar,
            Format::TarGz => OutputFormat::TarGz,
            Format::TarZst => OutputFormat::TarZst,
            Format::TarXz => OutputFormat::TarXz,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: &str, arch: &str) -> Meta {
        Meta {
            file: "r.toml".into(),
            name: "demo".into(),
            version: version.into(),
            release: "3".into(),
            arch: arch.into(),
            summary: "s".into(),
            description: None,
            homepage: None,
            license: None,
        }
    }

    #[test]
    fn versions_and_epochs() {
        let m = meta("2:1.0", "amd64");
        assert_eq!(m.epoch(), Some(2));
        assert_eq!(m.upstream_version(), "1.0");
        assert_eq!(m.full_version(), "2:1.0-3");
        let m = meta("1.0", "amd64");
        assert_eq!((m.epoch(), m.upstream_version()), (None, "1.0"));
    }

    #[test]
    fn arch_names_map_per_format() {
        assert_eq!(meta("1", "amd64").rpm_arch(), "x86_64");
        assert_eq!(meta("1", "amd64").pacman_arch(), "x86_64");
        assert_eq!(meta("1", "all").rpm_arch(), "noarch");
        assert_eq!(meta("1", "all").pacman_arch(), "any");
        assert_eq!(meta("1", "arm64").rpm_arch(), "aarch64");
        assert_eq!(meta("1", "mips").rpm_arch(), "mips");
    }

    #[test]
    fn format_names_round_trip() {
        for (f, name) in OutputFormat::ALL {
            assert_eq!(OutputFormat::from_name(name), Some(f));
            assert_eq!(f.extension(), name);
            if let Some(a) = f.archive_format() {
                assert_eq!(OutputFormat::from(a), f);
                assert_eq!(a.extension(), name);
            }
        }
        assert_eq!(OutputFormat::Deb.archive_format(), None);
        assert_eq!(OutputFormat::Rpm.archive_format(), None);
    }
}
