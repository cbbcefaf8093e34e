//! Unit tests of packing through the library API, on small trees in temporary directories.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::ownership::Record;

/// Records `dev/null` as the character device 1,3 owned by 0:5, as mknod under nsroot would.
struct FakeRecords;

impl Lookup for FakeRecords {
    fn lookup(&self, path: &Path, _meta: &fs::Metadata) -> Option<Record> {
        if path.ends_with("dev/null") {
            Some(Record {
                uid: Some(0),
                gid: Some(5),
                mode: Some(0o020666),
                rdev: Some(libc::makedev(1, 3)),
                xattrs: vec![],
            })
        } else if path.ends_with("bin/ping") {
            Some(Record {
                uid: Some(1000),
                gid: None,
                mode: Some(0o104755),
                rdev: None,
                xattrs: vec![(OsString::from("security.capability"), vec![1, 2, 3])],
            })
        } else {
            None
        }
    }
}

struct Listed {
    path: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    size: u64,
    dev: (u32, u32),
    link: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn parse(bytes: &[u8]) -> Vec<Listed> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut xattrs = Vec::new();
            if let Some(pax) = e.pax_extensions().unwrap() {
                for x in pax {
                    let x = x.unwrap();
                    if let Some(n) = x.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((n.to_vec(), x.value_bytes().to_vec()));
                    }
                }
            }
            let h = e.header().clone();
            Listed {
                path: e.path_bytes().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                uname: h.username().unwrap().unwrap_or("").to_string(),
                size: e.size(),
                dev: (
                    h.device_major().unwrap().unwrap_or(0),
                    h.device_minor().unwrap().unwrap_or(0),
                ),
                link: e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default(),
                xattrs,
            }
        })
        .collect()
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    fs::create_dir_all(p.join("bin")).unwrap();
    fs::create_dir_all(p.join("dev")).unwrap();
    fs::create_dir_all(p.join("a")).unwrap();
    fs::write(p.join("a.txt"), "a").unwrap();
    fs::write(p.join("a/b"), "bb").unwrap();
    fs::write(p.join("bin/ping"), "ping").unwrap();
    fs::write(p.join("dev/null"), "").unwrap();
    fs::hard_link(p.join("a/b"), p.join("hard")).unwrap();
    symlink("/nowhere", p.join("dangling")).unwrap();
    fs::set_permissions(p.join("a/b"), fs::Permissions::from_mode(0o6750)).unwrap();
    t
}

fn pack_vec(dir: &Path, opts: &PackOptions, records: Option<&dyn Lookup>) -> Vec<u8> {
    pack_to_writer(dir, Vec::new(), opts, records).unwrap().1
}

#[test]
fn order_is_byte_order_of_the_path_with_dirs_first() {
    let t = tree();
    let got = parse(&pack_vec(t.path(), &PackOptions::new(Format::Tar), None));
    let paths: Vec<String> = got
        .iter()
        .map(|l| String::from_utf8_lossy(&l.path).into())
        .collect();
    assert_eq!(
        paths,
        [
            "./",
            "./a.txt",
            "./a/",
            "./a/b",
            "./bin/",
            "./bin/ping",
            "./dangling",
            "./dev/",
            "./dev/null",
            "./hard"
        ]
    );
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    let b = &got[3];
    assert_eq!(
        (b.mode, b.uid, b.gid, b.uname.as_str(), b.size),
        (0o6750, 0, 0, "root", 2)
    );
    let hard = &got[9];
    assert_eq!(hard.kind, tar::EntryType::Link);
    assert_eq!(hard.link, b"./a/b");
    assert_eq!(got[6].kind, tar::EntryType::Symlink);
    assert_eq!(got[6].link, b"/nowhere");
}

#[test]
fn fake_lookup_turns_a_file_into_a_char_device() {
    let t = tree();
    let mut opts = PackOptions::new(Format::Tar);
    opts.xattrs = true;
    let got = parse(&pack_vec(t.path(), &opts, Some(&FakeRecords)));
    let null = got.iter().find(|l| l.path == b"./dev/null").unwrap();
    assert_eq!(null.kind, tar::EntryType::Char);
    assert_eq!(
        (null.dev, null.mode, null.uid, null.gid, null.size),
        ((1, 3), 0o666, 0, 5, 0)
    );
    let ping = got.iter().find(|l| l.path == b"./bin/ping").unwrap();
    assert_eq!(ping.kind, tar::EntryType::Regular);
    // A recorded id is stored with the name the host's /etc/passwd gives it, if any.
    let name_1000 = Names::system()
        .name(Db::Passwd, 1000)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        (ping.mode, ping.uid, ping.uname.as_str(), ping.size),
        (0o4755, 1000, name_1000.as_str(), 4)
    );
    assert_eq!(
        ping.xattrs,
        vec![(b"security.capability".to_vec(), vec![1, 2, 3])]
    );
}

#[test]
fn mtimes_clamp_and_owner_options_apply() {
    let t = tree();
    let mut opts = PackOptions::new(Format::Tar);
    opts.mtime_clamp = Some(12345);
    opts.owner = Owner {
        name: "builder".into(),
        id: 1000,
    };
    opts.numeric_owner = false;
    let bytes = pack_vec(t.path(), &opts, None);
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 12345);
        assert_eq!(e.header().uid().unwrap(), 1000);
        assert_eq!(e.header().username().unwrap(), Some("builder"));
        assert_eq!(e.header().groupname().unwrap(), Some("root"));
    }
    opts.numeric_owner = true;
    let got = parse(&pack_vec(t.path(), &opts, None));
    assert!(got.iter().all(|l| l.uname.is_empty()));
}

#[test]
fn same_bytes_for_any_jobs_and_any_location() {
    let t1 = tree();
    let t2 = tree();
    // The trees were made at different moments: the clamp makes their mtimes equal.
    for format in [Format::TarGz, Format::TarZst, Format::TarXz] {
        let mut opts = PackOptions::new(format);
        opts.mtime_clamp = Some(0);
        let a = pack_vec(t1.path(), &opts, None);
        opts.jobs = 2;
        let b = pack_vec(t2.path(), &opts, None);
        assert!(a == b, "{format:?}");
    }
}

#[test]
fn pack_to_file_excludes_itself_and_leaves_nothing_on_error() {
    let t = tree();
    let out = t.path().join("self.tar");
    fs::write(&out, "old").unwrap();
    let opts = PackOptions::new(Format::Tar);
    let summary = pack(t.path(), &Output::Path(out.clone()), &opts, None).unwrap();
    let got = parse(&fs::read(&out).unwrap());
    assert!(got
        .iter()
        .all(|l| !l.path.starts_with(b"./self") && !l.path.starts_with(b"./.self")));
    assert_eq!(summary.entries, got.len() as u64);
    assert_eq!(summary.output_bytes, fs::metadata(&out).unwrap().len());

    // A file that is not regular and cannot be opened would be root's problem; a missing
    // output directory is the user's.
    let err = pack(
        t.path(),
        &Output::Path(t.path().join("no/such/x.tar")),
        &opts,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Input { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/x.tar"), "{err}");
    let err = pack(
        &t.path().join("missing"),
        &Output::Path(out.clone()),
        &opts,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Input { .. }), "{err:?}");
    let err = pack(t.path(), &Output::Path(t.path().join("a")), &opts, None).unwrap_err();
    assert!(matches!(err, ArchiveError::Input { .. }), "{err:?}");
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        fs::metadata(&out).unwrap().mode() & 0o777,
        0o666 & !current_umask()
    );
}

fn current_umask() -> u32 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

#[test]
fn negative_mtimes_are_kept_and_never_raised_by_the_clamp() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("old");
    fs::write(&f, "a").unwrap();
    filetime::set_file_mtime(&f, filetime::FileTime::from_unix_time(-5, 0)).unwrap();
    let mut opts = PackOptions::new(Format::Tar);
    opts.mtime_clamp = Some(1_700_000_000);
    let bytes = pack_vec(t.path(), &opts, None);
    struct Mtimes(Vec<(Vec<u8>, i64)>);
    impl Visit for Mtimes {
        fn entry(
            &mut self,
            _: Section,
            meta: &EntryMeta,
            _: &mut dyn io::Read,
        ) -> Result<(), ArchiveError> {
            self.0.push((meta.path.clone(), meta.mtime));
            Ok(())
        }
    }
    let mut seen = Mtimes(Vec::new());
    read::read_any(Box::new(&bytes[..]), "test", &mut seen).unwrap();
    assert_eq!(seen.0[1], (b"./old".to_vec(), -5));
}
