//! The owner and group stored in every entry: `--owner`/`--group` parsing as in GNU tar.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::ArchiveError;

/// A name and numeric id stored in entries; an empty name means "numeric only".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub id: u32,
}

impl Owner {
    /// root (0), the default owner and group.
    pub fn root() -> Owner {
        Owner {
            name: "root".into(),
            id: 0,
        }
    }
}

/// Which database a bare name is looked up in.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Passwd,
    Group,
}

impl Db {
    fn file(self) -> &'static Path {
        match self {
            Db::Passwd => Path::new("/etc/passwd"),
            Db::Group => Path::new("/etc/group"),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Db::Passwd => "--owner",
            Db::Group => "--group",
        }
    }
}

/// Parses `NAME:ID`, `ID` or `NAME` (GNU tar's forms).
///
/// `ID` alone gets the name `/etc/passwd` or `/etc/group` gives it (0 is always root), as GNU
/// tar stores and as recorded ids get theirs ([`Names`]); none when the file has none. `NAME`
/// alone is looked up there too, with `root` always 0. Errors are input errors naming the
/// option.
pub fn parse_owner(spec: &str, db: Db) -> Result<Owner, ArchiveError> {
    let names = Names::system();
    parse_owner_with(
        spec,
        db,
        |name| {
            let text = std::fs::read_to_string(db.file()).unwrap_or_default();
            lookup_id(&text, name)
        },
        |id| names.name(db, id).map(str::to_string),
    )
}

fn parse_owner_with(
    spec: &str,
    db: Db,
    lookup: impl Fn(&str) -> Option<u32>,
    name_of: impl Fn(u32) -> Option<String>,
) -> Result<Owner, ArchiveError> {
    let bad = |msg: String| ArchiveError::input(format!("{} {spec:?}", db.flag()), msg);
    if let Some((name, id)) = spec.split_once(':') {
        let id = id
            .parse()
            .map_err(|_| bad(format!("{id:?} is not a numeric id")))?;
        if name.is_empty() || name.len() > 255 {
            return Err(bad("the name must be 1 to 255 bytes".into()));
        }
        return Ok(Owner {
            name: name.into(),
            id,
        });
    }
    if let Ok(id) = spec.parse::<u32>() {
        let name = if id == 0 {
            "root".into()
        } else {
            name_of(id).unwrap_or_default()
        };
        return Ok(Owner { name, id });
    }
    if spec == "root" {
        return Ok(Owner::root());
    }
    if spec.is_empty() {
        return Err(bad("empty owner".into()));
    }
    match lookup(spec) {
        Some(id) => Ok(Owner {
            name: spec.into(),
            id,
        }),
        None => Err(bad(format!(
            "no such name in {}; give the id too, as NAME:ID",
            db.file().display()
        ))),
    }
}

/// The id of `name` in passwd/group-format `text` (third field).
fn lookup_id(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Names of ids from `/etc/passwd` and `/etc/group`, each file read at most once.
///
/// fakeroot + GNU tar and dpkg-deb store the name the system gives a recorded id (`root/games`
/// for 0:60); we store the same. The files are read directly rather than through
/// getpwuid/getgrgid (NSS): the archive must not depend on what LDAP, sssd or systemd's
/// dynamic users answer at pack time, nor load NSS modules into nsroot. The ids packages
/// chown to are local system accounts, which live in these files, where NSS looks first.
#[derive(Debug)]
pub struct Names {
    passwd: PathBuf,
    group: PathBuf,
    users: OnceCell<HashMap<u32, String>>,
    groups: OnceCell<HashMap<u32, String>>,
}

impl Names {
    /// The host's `/etc/passwd` and `/etc/group`.
    pub fn system() -> Names {
        Names::from_files(Db::Passwd.file(), Db::Group.file())
    }

    /// Names from other files in the same formats (a missing file knows no names).
    pub fn from_files(passwd: &Path, group: &Path) -> Names {
        Names {
            passwd: passwd.to_path_buf(),
            group: group.to_path_buf(),
            users: OnceCell::new(),
            groups: OnceCell::new(),
        }
    }

    /// The name of `id` in `db`, if the file has one.
    pub fn name(&self, db: Db, id: u32) -> Option<&str> {
        let (cell, file) = match db {
            Db::Passwd => (&self.users, &self.passwd),
            Db::Group => (&self.groups, &self.group),
        };
        cell.get_or_init(|| parse_names(&std::fs::read_to_string(file).unwrap_or_default()))
            .get(&id)
            .map(String::as_str)
    }
}

/// id -> name from passwd/group-format `text`; the first line for an id wins, as getpwuid
/// reading the files answers. Comments, NIS `+`/`-` lines and malformed lines are skipped.
fn parse_names(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(id) = id.parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_string());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> Result<Owner, ArchiveError> {
        parse_owner_with(
            spec,
            Db::Passwd,
            |n| (n == "builder").then_some(1000),
            |id| (id == 1).then(|| "daemon".to_string()),
        )
    }

    #[test]
    fn forms() {
        assert_eq!(p("root").unwrap(), Owner::root());
        assert_eq!(p("0").unwrap(), Owner::root());
        assert_eq!(
            p("1").unwrap(),
            Owner {
                name: "daemon".into(),
                id: 1
            }
        );
        assert_eq!(
            p("42").unwrap(),
            Owner {
                name: String::new(),
                id: 42
            }
        );
        assert_eq!(
            p("daemon:1").unwrap(),
            Owner {
                name: "daemon".into(),
                id: 1
            }
        );
        assert_eq!(
            p("builder").unwrap(),
            Owner {
                name: "builder".into(),
                id: 1000
            }
        );
    }

    #[test]
    fn errors_are_input_errors_naming_the_option() {
        for spec in ["nosuchuser", "x:y", ":5", ""] {
            let e = p(spec).unwrap_err();
            assert!(matches!(e, ArchiveError::Input { .. }), "{spec}");
            assert!(e.to_string().starts_with("--owner"), "{e}");
        }
    }

    #[test]
    fn lookup_reads_the_third_field() {
        let text = "root:x:0:0:root:/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n";
        assert_eq!(lookup_id(text, "bob"), Some(1001));
        assert_eq!(lookup_id(text, "bo"), None);
    }

    #[test]
    fn names_first_line_wins_and_junk_is_skipped() {
        let text = "# comment\n+nis::0:0\nroot:x:0:0::/:/bin/sh\ngames:x:60:\n\
                    other:x:60:\nbad:x:notanid:\n:x:7:\n";
        let m = parse_names(text);
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&60).map(String::as_str), Some("games"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn names_come_from_the_given_files() {
        let dir = tempfile::tempdir().unwrap();
        let (p, g) = (dir.path().join("passwd"), dir.path().join("group"));
        std::fs::write(&p, "builder:x:1000:1000::/home/b:/bin/sh\n").unwrap();
        std::fs::write(&g, "games:x:60:\n").unwrap();
        let names = Names::from_files(&p, &g);
        assert_eq!(names.name(Db::Passwd, 1000), Some("builder"));
        assert_eq!(names.name(Db::Group, 60), Some("games"));
        assert_eq!(names.name(Db::Group, 1000), None);
        let none = Names::from_files(&dir.path().join("x"), &dir.path().join("y"));
        assert_eq!(none.name(Db::Passwd, 0), None);
    }
}
