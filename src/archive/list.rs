//! `nsroot list`: a `tar -tv`-style listing of any archive nsroot reads.

use std::io::{self, Read, Write};
use std::path::Path;

use super::error::ArchiveError;
use super::read::{read_any, ArMember, ArchiveType, EntryKind, EntryMeta, Section, Visit};

/// `ls -l`-style mode: type character then rwx triplets with s/S/t/T.
///
/// `type_char` is GNU tar's: `-` file, `h` hard link, `l` symlink, `d`, `c`, `b`, `p`.
pub fn mode_string(type_char: char, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(type_char);
    let bits = [(0o400, 'r'), (0o200, 'w'), (0o100, 'x')];
    for (shift, special, set_lower, set_upper) in [
        (0, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (6, 0o1000, 't', 'T'),
    ] {
        for (i, (bit, c)) in bits.iter().enumerate() {
            let on = mode & (bit >> shift) != 0;
            if i == 2 && mode & special != 0 {
                s.push(if on { set_lower } else { set_upper });
            } else {
                s.push(if on { *c } else { '-' });
            }
        }
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC, as `TZ=UTC tar -tv` shows it.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A name made printable as GNU tar's default quoting does: invalid UTF-8 bytes and control
/// characters become `\ooo`, a backslash `\\`.
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        out.push_str(&format!("\\{byte:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out
}

/// Column state GNU tar keeps across lines: the owner/size column only ever widens.
struct Columns {
    ugswidth: usize,
}

impl Columns {
    fn new() -> Columns {
        Columns { ugswidth: 19 }
    }

    fn line(&mut self, mode: &str, owner: &str, size: &str, time: &str, rest: &str) -> String {
        let pad = owner.len() + 1 + size.len();
        self.ugswidth = self.ugswidth.max(pad);
        let width = self.ugswidth - pad + size.len();
        format!("{mode} {owner} {size:>width$} {time} {rest}")
    }
}

/// Writes one line per entry of the archive `input` to `out`, in `tar -tv` style.
///
/// A tar (any compression) lists as GNU tar does. A .deb shows its control file's fields,
/// then the listing of its control member and of its data member, each under a heading
/// naming the member. An .rpm shows its main fields (name, version, requires...), then its
/// payload's files under `payload:`. Returns the number of entries listed.
///
/// `name` is used in errors; a malformed archive is an input error (exit 2).
pub fn list(
    input: Box<dyn Read + '_>,
    name: &Path,
    numeric_owner: bool,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let mut lister = Lister {
        out,
        numeric_owner,
        cols: Columns::new(),
        count: 0,
        control_text: None,
        control_lines: Vec::new(),
        header_done: false,
        rpm_fields: Vec::new(),
    };
    let kind = read_any(input, &name.display().to_string(), &mut lister)?;
    if kind == ArchiveType::Deb {
        lister.deb_header()?;
    }
    if kind == ArchiveType::Rpm && !lister.header_done {
        lister.rpm_header()?;
    }
    lister.out.flush().map_err(werr)?;
    Ok(lister.count)
}

/// The largest control file shown (dpkg itself refuses far smaller ones).
const CONTROL_MAX: u64 = 1024 * 1024;

fn werr(e: io::Error) -> ArchiveError {
    ArchiveError::Write {
        dest: "stdout".into(),
        source: e,
    }
}

struct Lister<'o> {
    out: &'o mut dyn Write,
    numeric_owner: bool,
    cols: Columns,
    count: u64,
    /// A .deb's `control` file, once read.
    control_text: Option<Vec<u8>>,
    /// The control member's heading and listing, printed after the fields.
    control_lines: Vec<String>,
    /// Whether a .deb's fields and control listing (an .rpm's fields) were printed.
    header_done: bool,
    /// An .rpm's fields as `rpm -qi` names them, with their values, until printed.
    rpm_fields: Vec<((usize, &'static str), String)>,
}

impl Lister<'_> {
    fn line(&mut self, meta: &EntryMeta) -> String {
        let who = |name: &[u8], id: u64| {
            if self.numeric_owner || name.is_empty() {
                id.to_string()
            } else {
                escape_name(name)
            }
        };
        let owner = format!(
            "{}/{}",
            who(&meta.uname, meta.uid),
            who(&meta.gname, meta.gid)
        );
        let size = if matches!(meta.kind, EntryKind::Char | EntryKind::Block) {
            format!("{},{}", meta.dev.0, meta.dev.1)
        } else {
            meta.size.to_string()
        };
        let mut rest = escape_name(&meta.path);
        match meta.kind {
            EntryKind::Symlink => rest = format!("{rest} -> {}", escape_name(&meta.link)),
            EntryKind::HardLink => rest = format!("{rest} link to {}", escape_name(&meta.link)),
            _ => {}
        }
        self.cols.line(
            &mode_string(meta.kind.type_char(), meta.mode),
            &owner,
            &size,
            &format_time(meta.mtime),
            &rest,
        )
    }

    /// Prints an .rpm's fields (`Name: scoreboard`, one line each, lists joined by `, `,
    /// the description indented), then the payload's heading.
    fn rpm_header(&mut self) -> Result<(), ArchiveError> {
        let mut fields = std::mem::take(&mut self.rpm_fields);
        fields.sort_by_key(|(rank, _)| *rank);
        for ((_, field), text) in fields {
            let lines: Vec<&str> = text.lines().collect();
            let value = if field == "Description" {
                lines.iter().map(|l| format!("\n {l}")).collect::<String>()
            } else {
                format!(" {}", lines.join(", "))
            };
            writeln!(self.out, "{field}:{value}").map_err(werr)?;
        }
        writeln!(self.out, "\npayload:").map_err(werr)
    }

    /// Prints a .deb's control fields and control listing, once.
    fn deb_header(&mut self) -> Result<(), ArchiveError> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        match &self.control_text {
            Some(text) => {
                self.out.write_all(text).map_err(werr)?;
                if !text.ends_with(b"\n") {
                    writeln!(self.out).map_err(werr)?;
                }
            }
            None => writeln!(self.out, "(no control file)").map_err(werr)?,
        }
        for l in std::mem::take(&mut self.control_lines) {
            writeln!(self.out, "{l}").map_err(werr)?;
        }
        Ok(())
    }
}

impl Visit for Lister<'_> {
    fn entry(
        &mut self,
        section: Section,
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        match section {
            // debian-binary and other members show in the headings.
            Section::Members => return Ok(()),
            Section::Control => {
                let is_control = matches!(&meta.path[..], b"./control" | b"control");
                if is_control && meta.kind == EntryKind::File && meta.size <= CONTROL_MAX {
                    let mut text = Vec::new();
                    content
                        .read_to_end(&mut text)
                        .map_err(|e| ArchiveError::io("read", "control", e))?;
                    self.control_text = Some(text);
                }
                let line = self.line(meta);
                self.control_lines.push(line);
            }
            Section::Tar | Section::Data => {
                // A pacman package: its .PKGINFO fields first, as a .deb's control fields.
                if section == Section::Tar && self.count == 0 && meta.path == b".PKGINFO" {
                    let mut text = Vec::new();
                    content
                        .take(CONTROL_MAX)
                        .read_to_end(&mut text)
                        .map_err(|e| ArchiveError::io("read", ".PKGINFO", e))?;
                    for l in text.split(|b| *b == b'\n').filter(|l| !l.starts_with(b"#")) {
                        if !l.is_empty() {
                            writeln!(self.out, "{}", escape_name(l)).map_err(werr)?;
                        }
                    }
                    writeln!(self.out).map_err(werr)?;
                }
                let line = self.line(meta);
                writeln!(self.out, "{line}").map_err(werr)?;
            }
            Section::Header => {
                if let Some(field) = super::rpm::shown_field(&meta.path) {
                    let mut text = String::new();
                    content
                        .take(CONTROL_MAX)
                        .read_to_string(&mut text)
                        .map_err(|e| ArchiveError::io("read", "rpm header", e))?;
                    self.rpm_fields.push((field, text));
                }
                return Ok(());
            }
            Section::Payload => {
                if !self.header_done {
                    self.header_done = true;
                    self.rpm_header()?;
                }
                let line = self.line(meta);
                writeln!(self.out, "{line}").map_err(werr)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    fn member(&mut self, member: &ArMember) -> Result<(), ArchiveError> {
        let heading = format!("\n{}:", escape_name(&member.name));
        match member.tar_section() {
            Some(Section::Control) => {
                self.cols = Columns::new();
                self.control_lines.push(heading);
            }
            Some(_) => {
                self.deb_header()?;
                self.cols = Columns::new();
                writeln!(self.out, "{heading}").map_err(werr)?;
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string('-', 0o644), "-rw-r--r--");
        assert_eq!(mode_string('-', 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string('-', 0o4644), "-rwSr--r--");
        assert_eq!(mode_string('d', 0o2775), "drwxrwsr-x");
        assert_eq!(mode_string('d', 0o2765), "drwxrwSr-x");
        assert_eq!(mode_string('d', 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string('d', 0o1776), "drwxrwxrwT");
        assert_eq!(mode_string('l', 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string('c', 0), "c---------");
    }

    #[test]
    fn times_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_time(-1), "1969-12-31 23:59");
    }

    #[test]
    fn names_escape_like_gnu_tar() {
        assert_eq!(escape_name(b"./a b"), "./a b");
        assert_eq!(escape_name(b"./bad\xffname"), "./bad\\377name");
        assert_eq!(escape_name(b"./tab\there"), "./tab\\011here");
        assert_eq!(escape_name(b"./back\\slash"), "./back\\\\slash");
        assert_eq!(escape_name("./caf\u{e9}".as_bytes()), "./caf\u{e9}");
    }

    #[test]
    fn columns_widen_like_gnu_tar() {
        let mut c = Columns { ugswidth: 19 };
        assert_eq!(
            c.line("-rw-r--r--", "root/root", "5", "T", "./a"),
            "-rw-r--r-- root/root         5 T ./a"
        );
    }
}
