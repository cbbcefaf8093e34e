//! `nsroot list`: a `tar -tv`-style listing of any archive nsroot reads.

use std::io::{self, Read, Write};
use std::path::Path;

use super::error::ArchiveError;

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
    fn line(&mut self, mode: &str, owner: &str, size: &str, time: &str, rest: &str) -> String {
        let pad = owner.len() + 1 + size.len();
        self.ugswidth = self.ugswidth.max(pad);
        let width = self.ugswidth - pad + size.len();
        format!("{mode} {owner} {size:>width$} {time} {rest}")
    }
}

/// Writes one line per entry of the tar stream `input` to `out`.
///
/// `name` is used in errors; a malformed archive is an input error (exit 2).
pub fn list(
    input: Box<dyn Read>,
    name: &Path,
    numeric_owner: bool,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let bad = |e: io::Error| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::Other => {
            ArchiveError::input(
                format!("archive {}", name.display()),
                format!("not a valid archive: {e}"),
            )
        }
        _ => ArchiveError::io("read", name, e),
    };
    let werr = |e: io::Error| ArchiveError::Write {
        dest: "stdout".into(),
        source: e,
    };
    let mut archive = tar::Archive::new(input);
    let mut cols = Columns { ugswidth: 19 };
    let mut count = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let mut uid = entry.header().uid().map_err(bad)?;
        let mut gid = entry.header().gid().map_err(bad)?;
        let mut mtime = entry.header().mtime().map_err(bad)? as i64;
        let mut uname = entry
            .header()
            .username_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut gname = entry
            .header()
            .groupname_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        // tar-rs applies PAX path, linkpath and size itself; the rest is ours to apply.
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax {
                let ext = ext.map_err(bad)?;
                let num = || {
                    std::str::from_utf8(ext.value_bytes())
                        .ok()?
                        .split('.')
                        .next()?
                        .parse()
                        .ok()
                };
                match ext.key_bytes() {
                    b"uid" => uid = num().unwrap_or(uid),
                    b"gid" => gid = num().unwrap_or(gid),
                    b"mtime" => mtime = num().map(|v: u64| v as i64).unwrap_or(mtime),
                    b"uname" => uname = ext.value_bytes().to_vec(),
                    b"gname" => gname = ext.value_bytes().to_vec(),
                    _ => {}
                }
            }
        }
        let header = entry.header();
        let mode = header.mode().map_err(bad)?;
        let kind = header.entry_type();
        let type_char = match kind {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            tar::EntryType::Continuous => 'C',
            _ => '-',
        };
        let size = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let major = header.device_major().map_err(bad)?.unwrap_or(0);
            let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
            format!("{major},{minor}")
        } else {
            entry.size().to_string()
        };
        let who = |name: &[u8], id: u64| {
            if numeric_owner || name.is_empty() {
                id.to_string()
            } else {
                escape_name(name)
            }
        };
        let owner = format!("{}/{}", who(&uname, uid), who(&gname, gid));
        let mut rest = escape_name(&entry.path_bytes());
        let link = entry.link_name_bytes().map(|l| escape_name(&l));
        match (kind, link) {
            (tar::EntryType::Symlink, Some(l)) => rest = format!("{rest} -> {l}"),
            (tar::EntryType::Link, Some(l)) => rest = format!("{rest} link to {l}"),
            _ => {}
        }
        let line = cols.line(
            &mode_string(type_char, mode),
            &owner,
            &size,
            &format_time(mtime),
            &rest,
        );
        writeln!(out, "{line}").map_err(werr)?;
        count += 1;
        // Skip the content by reading it: the stream may be compressed or a pipe.
        io::copy(&mut entry, &mut io::sink()).map_err(bad)?;
    }
    out.flush().map_err(werr)?;
    Ok(count)
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
