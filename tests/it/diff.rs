//! Tests of `nsroot diff` (issue 7) and of `nsroot list` on a .deb (issue 6), on hand-made
//! archive pairs built by the unprivileged test user with `nsroot pack`, GNU tar and dpkg-deb.

use std::process::{Output, Stdio};

use crate::util::{self, assert_ok, stderr, stdout, Scratch};

/// 2023-11-14 22:13:20 UTC.
const SDE: &str = "1700000000";

/// Builds `t1/` (and an identical `t2/`) as the test uid: a text file, a binary file, a
/// symlink and a directory, all dated SDE.
fn two_trees(s: &Scratch) {
    let script = format!(
        r#"
        set -e
        umask 022
        mkdir -p t1/etc t1/bin
        printf 'hello\nworld\n' > t1/etc/motd
        i=0; while [ $i -lt 4000 ]; do printf 'line %05d of binary-ish data\000\n' $i; i=$((i+1)); done > t1/bin/blob
        ln -s target-a t1/link
        find t1 -exec touch -h -d @{SDE} {{}} +
        cp -a t1 t2
        "#
    );
    assert_ok(&s.sh(&script));
}

/// `nsroot pack DIR -o OUT` with SOURCE_DATE_EPOCH set.
fn pack(s: &Scratch, dir: &str, out: &str) {
    let o = util::env()
        .nsroot()
        .args(["pack", dir, "-o", out])
        .env("SOURCE_DATE_EPOCH", SDE)
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
}

fn diff(s: &Scratch, args: &[&str]) -> Output {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    s.nsroot(all)
}

/// Runs `nsroot diff A B`, expects status 1, and returns the report's lines about entries
/// (`./...`, `control.tar...`, `data.tar...`; see [`report_lines`] for every line).
fn differences(s: &Scratch, a: &str, b: &str) -> (Vec<String>, String) {
    let (lines, text) = report_lines(s, a, b);
    let entries = lines
        .into_iter()
        .filter(|l| {
            l.starts_with("./") || l.starts_with("control.tar") || l.starts_with("data.tar")
        })
        .collect();
    (entries, text)
}

#[test]
fn identical_archives_exit_0_with_an_empty_report() {
    let s = Scratch::new();
    two_trees(&s);
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let o = diff(&s, &["a.tar", "b.tar"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
    let o = diff(&s, &["--json", "a.tar", "b.tar"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["differences"], serde_json::json!([]));
}

#[test]
fn different_compressions_of_the_same_tree_differ_only_in_compression() {
    let s = Scratch::new();
    two_trees(&s);
    for out in ["a.tar", "a.tar.gz", "a.tar.zst", "a.tar.xz"] {
        pack(&s, "t1", out);
    }
    // The files differ, so the status is 1; every entry is the same, so that is all it says.
    for (other, word) in [
        ("a.tar.gz", "gzip"),
        ("a.tar.zst", "zstd"),
        ("a.tar.xz", "xz"),
    ] {
        let o = diff(&s, &["a.tar", other]);
        assert_eq!(o.status.code(), Some(1), "{other}: {}", stdout(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "--- a.tar\n+++ {other}\n(archive): compression none -> {word}\n1 difference\n"
            )
        );
    }
}

#[test]
fn mode_change_is_reported_alone() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh("chmod 4755 t2/etc/motd"));
    pack(&s, "t1", "a.tar.gz");
    pack(&s, "t2", "b.tar.gz");
    let (lines, text) = differences(&s, "a.tar.gz", "b.tar.gz");
    assert_eq!(lines, ["./etc/motd: mode 0644 -> 4755"], "{text}");
    assert!(text.starts_with("--- a.tar.gz\n+++ b.tar.gz\n"), "{text}");
    assert!(text.ends_with("\n1 difference\n"), "{text}");
}

#[test]
fn owner_change_from_gnu_tar_is_reported_per_entry() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    let tar = |group: &str, out: &str| {
        assert_ok(&s.sh(&format!(
            "tar --sort=name --format=gnu --owner=root:0 --group={group} -C t1 -cf {out} ."
        )));
    };
    tar("root:0", "a.tar");
    tar("games:60", "b.tar");
    let (lines, text) = differences(&s, "a.tar", "b.tar");
    let paths = [
        "./",
        "./bin/",
        "./bin/blob",
        "./etc/",
        "./etc/motd",
        "./link",
    ];
    let want: Vec<String> = paths
        .iter()
        .map(|p| format!("{p}: owner root/root (0/0) -> root/games (0/60)"))
        .collect();
    assert_eq!(lines, want, "{text}");
}

#[test]
fn text_content_change_shows_offset_and_unified_diff() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh(&format!(
        "printf 'hello\\nWorld\\n' > t2/etc/motd && touch -d @{SDE} t2/etc/motd"
    )));
    pack(&s, "t1", "a.tar.zst");
    pack(&s, "t2", "b.tar.xz");
    let (lines, text) = differences(&s, "a.tar.zst", "b.tar.xz");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("./etc/motd: content differs at byte 6 (sha256 "),
        "{text}"
    );
    assert!(
        text.contains("@@ -1,2 +1,2 @@\n hello\n-world\n+World\n"),
        "{text}"
    );
}

#[test]
fn binary_content_change_shows_the_offset_only() {
    let s = Scratch::new();
    two_trees(&s);
    // Byte 100000 lies in the second 64 KiB chunk, past the first.
    assert_ok(&s.sh(&format!(
        "printf 'X' | dd of=t2/bin/blob bs=1 seek=100000 conv=notrunc 2>/dev/null && \
         touch -d @{SDE} t2/bin/blob"
    )));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let (lines, text) = differences(&s, "a.tar", "b.tar");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("./bin/blob: content differs at byte 100000 "),
        "{text}"
    );
    assert!(
        !text.contains("@@"),
        "no text diff for binary content: {text}"
    );
    let o = diff(&s, &["--json", "a.tar", "b.tar"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let d = &v["differences"][0];
    assert_eq!(d["path"], "./bin/blob");
    assert_eq!(d["field"], "content");
    assert_eq!(d["offset"], 100000);
    assert!(d["a"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn symlink_target_change_is_reported() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh(&format!(
        "ln -sfn target-b t2/link && touch -h -d @{SDE} t2/link"
    )));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let (lines, text) = differences(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["./link: link target target-a -> target-b"],
        "{text}"
    );
}

#[test]
fn entry_missing_on_one_side_is_reported_with_its_side() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh(&format!(
        "rm t1/link && echo x > t2/etc/extra && touch -d @{SDE} t2/etc/extra t2/etc t1"
    )));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let (lines, text) = differences(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        [
            "./etc/extra: only in b.tar (file)",
            "./link: only in b.tar (symlink)"
        ],
        "{text}"
    );
    let o = diff(&s, &["--json", "a.tar", "b.tar"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["differences"][0],
        serde_json::json!({"path": "./etc/extra", "field": "missing", "a": null, "b": "file"})
    );
}

#[test]
fn mtime_change_is_reported() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh("touch -d @1700000061 t2/etc/motd"));
    // No clamp: the stored mtimes are the files'.
    assert_ok(&s.nsroot(["pack", "t1", "-o", "a.tar", "--mtime", "@2000000000"]));
    assert_ok(&s.nsroot(["pack", "t2", "-o", "b.tar", "--mtime", "@2000000000"]));
    let (lines, text) = differences(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["./etc/motd: mtime 2023-11-14 22:13:20 (1700000000) -> 2023-11-14 22:14:21 (1700000061)"],
        "{text}"
    );
}

/// Builds `NAME.deb` from `pkg/` with dpkg-deb as the test user (root-owned entries).
fn dpkg_deb(s: &Scratch, name: &str, extra: &str) {
    assert_ok(&s.sh(&format!(
        "SOURCE_DATE_EPOCH={SDE} dpkg-deb {extra} --root-owner-group --build pkg {name}.deb >/dev/null"
    )));
}

fn make_pkg(s: &Scratch, version: &str, content: &str) {
    assert_ok(&s.sh(&format!(
        r#"
        set -e
        umask 022
        rm -rf pkg && mkdir -p pkg/DEBIAN pkg/usr/bin
        printf 'Package: hello\nVersion: {version}\nArchitecture: all\nMaintainer: A <a@example.org>\nDescription: greets\n' > pkg/DEBIAN/control
        printf '{content}\n' > pkg/usr/bin/hello && chmod 755 pkg/usr/bin/hello
        "#
    )));
}

#[test]
fn deb_pairs_report_control_field_and_data_file_changes() {
    if util::missing_tool("dpkg-deb") {
        return;
    }
    let s = Scratch::new();
    make_pkg(&s, "1.0", "hi");
    dpkg_deb(&s, "a", "");
    dpkg_deb(&s, "same", "");
    make_pkg(&s, "1.1", "ho");
    dpkg_deb(&s, "b", "");
    let o = diff(&s, &["a.deb", "same.deb"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let (lines, text) = differences(&s, "a.deb", "b.deb");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("control.tar:./control: content differs at byte 26 "),
        "{text}"
    );
    assert!(text.contains("-Version: 1.0\n+Version: 1.1\n"), "{text}");
    assert!(
        lines[1].starts_with("data.tar:./usr/bin/hello: content differs at byte 1 "),
        "{text}"
    );
    assert!(text.contains("-hi\n+ho\n"), "{text}");

    // The same package compressed otherwise: only the member names differ.
    make_pkg(&s, "1.0", "hi");
    dpkg_deb(&s, "gz", "-Zgzip");
    let (lines, text) = differences(&s, "a.deb", "gz.deb");
    assert_eq!(
        lines,
        [
            "control.tar.xz: member name control.tar.xz -> control.tar.gz",
            "data.tar.xz: member name data.tar.xz -> data.tar.gz"
        ],
        "{text}"
    );
}

#[test]
fn list_deb_shows_what_dpkg_deb_shows() {
    if util::missing_tool("dpkg-deb") || util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    make_pkg(&s, "1.0", "hi");
    dpkg_deb(&s, "a", "");
    let o = s.nsroot(["list", "a.deb"]);
    assert_ok(&o);
    let ours = stdout(&o);
    let field = s.sh("dpkg-deb --field a.deb");
    assert_ok(&field);
    let contents = s.sh("TZ=UTC dpkg-deb --contents a.deb");
    assert_ok(&contents);
    let control = s.sh("dpkg-deb --ctrl-tarfile a.deb | TZ=UTC tar -tvf -");
    assert_ok(&control);
    let want = format!(
        "{}\ncontrol.tar.xz:\n{}\ndata.tar.xz:\n{}",
        stdout(&field),
        stdout(&control),
        stdout(&contents)
    );
    assert_eq!(ours, want);
    // `inspect` is the same command under the name issue 6 gives it.
    let o = s.nsroot(["inspect", "a.deb"]);
    assert_ok(&o);
    assert_eq!(stdout(&o), want);
}

#[test]
fn corrupt_and_missing_inputs_exit_2_naming_the_file() {
    let s = Scratch::new();
    two_trees(&s);
    pack(&s, "t1", "a.tar.gz");
    pack(&s, "t1", "a.tar");
    let mut cases = vec![
        ("head -c 1000 a.tar.gz > cut.tar.gz", "cut.tar.gz"),
        ("head -c 10240 a.tar > cut.tar", "cut.tar"),
        ("head -c 1536 a.tar > noend.tar", "noend.tar"),
        ("echo 'not an archive' > junk.tar", "junk.tar"),
        (": > empty.tar", "empty.tar"),
        ("true", "missing.tar"),
    ];
    if !util::missing_tool("dpkg-deb") {
        make_pkg(&s, "1.0", "hi");
        dpkg_deb(&s, "a", "");
        cases.push(("head -c 600 a.deb > cut.deb", "cut.deb"));
        cases.push(("head -c 100 a.deb > cut2.deb", "cut2.deb"));
    }
    for (script, name) in cases {
        assert_ok(&s.sh(script));
        for args in [["a.tar", name], [name, "a.tar"]] {
            let o = diff(&s, &args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(name), "{args:?}: {}", stderr(&o));
        }
    }
}

#[test]
fn diffoscope_is_optional() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh("chmod 600 t2/etc/motd"));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let o = diff(&s, &["--diffoscope", "a.tar", "b.tar"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("./etc/motd: mode 0644 -> 0600"));
    let installed = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("diffoscope").is_file()));
    if !installed {
        assert!(
            stderr(&o).contains("diffoscope is not installed"),
            "{}",
            stderr(&o)
        );
    }
    // --json and --diffoscope do not mix: a usage error.
    let o = diff(&s, &["--json", "--diffoscope", "a.tar", "b.tar"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Runs `nsroot diff A B`, expects status 1, and returns every report line but the
/// `---`/`+++` header, unified diffs and the count (archive-level lines included).
fn report_lines(s: &Scratch, a: &str, b: &str) -> (Vec<String>, String) {
    let o = diff(s, &[a, b]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    let lines = text
        .lines()
        .filter(|l| {
            !["--- ", "+++ ", "@@", " ", "-", "+"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .filter(|l| {
            let count = l
                .trim_end_matches(" differences")
                .trim_end_matches(" difference");
            count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit())
        })
        .map(String::from)
        .collect();
    (lines, text)
}

/// GNU tar of `t1` with fixed owners and mtimes; `args` go before the member list.
fn gnu_tar(s: &Scratch, args: &str, out: &str, members: &str) {
    assert_ok(&s.sh(&format!(
        "tar --owner=root:0 --group=root:0 --mtime=@{SDE} {args} -C t1 -cf {out} {members}"
    )));
}

#[test]
fn entry_only_in_a_is_reported_with_its_side() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh(&format!("rm t2/etc/motd && touch -d @{SDE} t2/etc")));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(lines, ["./etc/motd: only in a.tar (file)"], "{text}");
    let o = diff(&s, &["--json", "a.tar", "b.tar"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["differences"],
        serde_json::json!([{"path": "./etc/motd", "field": "missing", "a": "file", "b": null}])
    );
}

#[test]
fn owner_change_on_uid_is_reported() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    let tar = |owner: &str, out: &str| {
        assert_ok(&s.sh(&format!(
            "tar --sort=name --format=gnu --owner={owner} --group=root:0 -C t1 -cf {out} ./etc/motd"
        )));
    };
    tar("root:0", "a.tar");
    tar("games:5", "b.tar");
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["./etc/motd: owner root/root (0/0) -> games/root (5/0)"],
        "{text}"
    );
}

#[test]
fn size_and_type_changes_are_reported() {
    let s = Scratch::new();
    two_trees(&s);
    assert_ok(&s.sh(&format!(
        "printf 'hello\\nworld!\\n' > t2/etc/motd && rm t2/link && mkdir t2/link && \
         chmod 777 t2/link && touch -h -d @{SDE} t2/etc/motd t2/link t2"
    )));
    pack(&s, "t1", "a.tar");
    pack(&s, "t2", "b.tar");
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "./etc/motd: size 12 -> 13", "{text}");
    assert!(
        lines[1].starts_with("./etc/motd: content differs at byte 11 "),
        "{text}"
    );
    // Only the type: a directory has no link target to compare, the mode is the same, and
    // its trailing `/` comes with the type.
    assert_eq!(lines[2], "./link: type symlink -> directory", "{text}");
}

#[test]
fn entry_order_is_reported_with_the_first_differing_position() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    let members = "./etc/motd ./bin/blob ./link";
    gnu_tar(&s, "--format=gnu --no-recursion", "a.tar", members);
    gnu_tar(
        &s,
        "--format=gnu --no-recursion",
        "b.tar",
        "./etc/motd ./link ./bin/blob",
    );
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["(archive): entry order differs: entry 2 is ./bin/blob -> entry 2 is ./link"],
        "{text}"
    );
    let o = diff(&s, &["--json", "a.tar", "b.tar"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["differences"],
        serde_json::json!([{"path": "(archive)", "field": "entry_order",
            "a": "entry 2 is ./bin/blob", "b": "entry 2 is ./link"}])
    );
}

#[test]
fn path_spelling_is_reported() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    gnu_tar(&s, "--format=gnu --no-recursion", "a.tar", "./etc/motd");
    gnu_tar(&s, "--format=gnu --no-recursion", "b.tar", "etc/motd");
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["./etc/motd: path spelling ./etc/motd -> etc/motd"],
        "{text}"
    );
}

#[test]
fn header_format_is_reported_per_entry() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    gnu_tar(
        &s,
        "--format=gnu --no-recursion",
        "a.tar",
        "./etc/motd ./link",
    );
    gnu_tar(
        &s,
        "--format=ustar --no-recursion",
        "b.tar",
        "./etc/motd ./link",
    );
    gnu_tar(
        &s,
        "--format=posix --no-recursion",
        "c.tar",
        "./etc/motd ./link",
    );
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        [
            "./etc/motd: header format gnu -> ustar",
            "./link: header format gnu -> ustar"
        ],
        "{text}"
    );
    // GNU tar's POSIX format adds atime and ctime records: the format and the records show,
    // and the PAX headers' room shortens the end-of-archive padding.
    let (lines, text) = report_lines(&s, "b.tar", "c.tar");
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], "./etc/motd: header format ustar -> pax", "{text}");
    assert!(
        lines[1].starts_with("./etc/motd: pax records (none) -> atime="),
        "{text}"
    );
    assert!(lines[1].contains(", ctime="), "{text}");
    assert_eq!(lines[2], "./link: header format ustar -> pax", "{text}");
    assert!(lines[4].starts_with("(archive): end of archive "), "{text}");
}

#[test]
fn end_of_archive_padding_is_reported() {
    if util::missing_tool("tar") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    gnu_tar(&s, "--format=gnu --no-recursion", "a.tar", "./etc/motd");
    gnu_tar(
        &s,
        "--format=gnu --no-recursion --blocking-factor=1",
        "b.tar",
        "./etc/motd",
    );
    let (lines, text) = report_lines(&s, "a.tar", "b.tar");
    assert_eq!(
        lines,
        ["(archive): end of archive 9216 zero bytes -> 1024 zero bytes"],
        "{text}"
    );
}

#[test]
fn compression_header_only_difference_is_reported() {
    if util::missing_tool("gzip") {
        return;
    }
    let s = Scratch::new();
    two_trees(&s);
    pack(&s, "t1", "a.tar");
    assert_ok(&s.sh(&format!(
        "touch -d @{SDE} a.tar && gzip -n -c a.tar > n.tar.gz && gzip -c a.tar > m.tar.gz && \
         gzip -4 -n -c a.tar > fast.tar.gz"
    )));
    let (lines, text) = report_lines(&s, "n.tar.gz", "m.tar.gz");
    assert_eq!(
        lines,
        ["(archive): compression gzip header mtime 0, name (none) -> gzip header mtime 1700000000, name a.tar"],
        "{text}"
    );
    // The same header, another level: the compressed stream itself differs.
    let (lines, text) = report_lines(&s, "n.tar.gz", "fast.tar.gz");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with(
            "(archive): compressed stream differs though the tar streams are the same (gzip"
        ),
        "{text}"
    );
    let o = diff(&s, &["--json", "n.tar.gz", "m.tar.gz"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["differences"][0]["field"], "compression");
}

#[test]
fn deb_bytes_no_field_explains_are_still_a_difference() {
    if util::missing_tool("dpkg-deb") {
        return;
    }
    let s = Scratch::new();
    make_pkg(&s, "1.0", "hi");
    dpkg_deb(&s, "a", "");
    // The debian-binary member's ar mode field: `100644` and `644` mean the same permissions.
    assert_ok(&s.sh(
        "cp a.deb b.deb && dd if=a.deb bs=1 skip=48 count=8 2>/dev/null | grep -q '^100644' && \
         printf '644     ' | dd of=b.deb bs=1 seek=48 conv=notrunc 2>/dev/null",
    ));
    let (lines, text) = report_lines(&s, "a.deb", "b.deb");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with(
            "(archive): archives differ in bytes not covered by the entry comparison ("
        ),
        "{text}"
    );
    let o = diff(&s, &["--json", "a.deb", "b.deb"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["differences"][0]["field"], "bytes");
}
