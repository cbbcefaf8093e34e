//! Tests of `nsroot repro` (issue 7).

use crate::util::{self, assert_ok, stderr, stdout, Scratch};

fn copy_into(s: &Scratch, from: &std::path::Path) -> std::path::PathBuf {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(s.path())
        .status()
        .unwrap();
    assert!(st.success());
    s.chown_all();
    s.path().join(from.file_name().unwrap())
}

#[test]
fn repro_every_bundled_recipe_is_reproducible() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipes = copy_into(&s, &util::repo().join("recipes"));
    // Every recipes/*/recipe.toml, so a new recipe is checked without editing this test.
    let mut dirs: Vec<String> = std::fs::read_dir(&recipes)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("recipe.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no recipes/*/recipe.toml found");
    for dir in &dirs {
        let o = s.nsroot([
            "repro".as_ref(),
            recipes.join(dir).join("recipe.toml").as_os_str(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{dir}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let out = stdout(&o);
        assert!(out.lines().any(|l| l == "REPRODUCIBLE"), "{dir}: {out}");
        // Both runs really varied place, umask and jobs.
        assert!(
            out.contains("umask 022") && out.contains("umask 077"),
            "{out}"
        );
        assert!(out.contains("a/much/deeper/place"), "{out}");
        // ... and the path the sources were built at, inside.
        assert!(
            out.contains("built in /build/src,") && out.contains("built in /build/run2/src,"),
            "{out}"
        );
    }
}

#[test]
fn repro_catches_a_recipe_that_embeds_the_date() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/date"));
    let o = s.nsroot(["repro".as_ref(), r.join("recipe.toml").as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("NOT REPRODUCIBLE"), "{out}");
    assert!(
        out.contains("./usr/share/embeds-date/built-at: content differs at byte "),
        "{out}"
    );
    // Only that file differs.
    assert!(out.contains("\n1 difference\n"), "{out}");
    // The difference itself: `date` output of each run, as a unified diff of the file.
    assert!(
        out.contains("/out1/embeds-date_1.0-1_amd64.tar.gz:./usr/share/embeds-date/built-at\n"),
        "{out}"
    );
    let removed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    let added: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert_eq!((removed.len(), added.len()), (1, 1), "{out}");
    assert_ne!(removed[0][1..], added[0][1..], "{out}");
    // `date` prints the year: both lines are dates.
    for l in [removed[0], added[0]] {
        assert!(l.contains(" 20") || l.contains(" 19"), "{l}: {out}");
    }
}

#[test]
fn repro_catches_a_recipe_that_embeds_the_job_count_and_reports_json() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/jobs"));
    let o = s.nsroot([
        "repro".as_ref(),
        r.join("recipe.toml").as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\"reproducible\": false"), "{out}");
    assert!(out.contains("./etc/embeds-jobs.conf"), "{out}");
    assert!(out.contains("jobs=1"), "{out}");
}

#[test]
fn repro_catches_a_recipe_that_embeds_its_build_path() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/path"));
    let o = s.nsroot([
        "repro".as_ref(),
        r.join("recipe.toml").as_os_str(),
        "--runs".as_ref(),
        "3".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("NOT REPRODUCIBLE"), "{out}");
    // The file, and the two paths it holds in run 1 and in run 2 (then run 3).
    assert!(
        out.contains("./usr/share/embeds-path/built-in: content differs at byte "),
        "{out}"
    );
    for line in [
        "-/build/src",
        "-/build/src/README",
        "+/build/run2/src",
        "+/build/run2/src/README",
        "+/build/run3/src",
    ] {
        assert!(out.lines().any(|l| l == line), "no line {line:?}: {out}");
    }
    // `nsroot build` itself always builds at /build/src: wherever the recipe lives, its own
    // output does not depend on the path.
    let mut sums = Vec::new();
    for (i, place) in ["one", "a/much/deeper/two"].iter().enumerate() {
        let dir = s.path().join(place);
        assert_ok(&s.sh(&format!(
            "mkdir -p {place} && cp -a {} {place}/",
            r.display()
        )));
        let b = s.nsroot([
            "build".as_ref(),
            dir.join("path/recipe.toml").as_os_str(),
            "-o".as_ref(),
            s.path().join(format!("o{i}")).as_os_str(),
        ]);
        assert_ok(&b);
        let archive = s
            .path()
            .join(format!("o{i}/embeds-path_1.0-1_amd64.tar.gz"));
        let t = std::process::Command::new("tar")
            .arg("-xOzf")
            .arg(&archive)
            .arg("./usr/share/embeds-path/built-in")
            .output()
            .unwrap();
        assert_eq!(stdout(&t), "/build/src\n/build/src/README\n");
        sums.push(std::fs::read(&archive).unwrap());
    }
    assert!(sums[0] == sums[1], "two builds from two places differ");
}

#[test]
fn repro_output_dir_may_be_relative_and_is_not_reused_when_not_empty() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("recipes/scripts"));
    let recipe = r.join("recipe.toml");
    let o = s.nsroot([
        "repro".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        "rel/dir".as_ref(),
    ]);
    assert_ok(&o);
    assert!(stdout(&o).contains("REPRODUCIBLE"), "{}", stdout(&o));
    for run in ["out1", "out2"] {
        let out = s.path().join("rel/dir").join(run);
        assert!(
            out.join("sysinfo_2.1-1_all.tar.gz").is_file(),
            "{}: {}",
            out.display(),
            stdout(&o)
        );
    }
    // Used again: refused before anything is built, naming the directory.
    let o = s.nsroot([
        "repro".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        "rel/dir".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("rel/dir") && stderr(&o).contains("not empty"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("File exists"), "{}", stderr(&o));
    // An empty existing directory is used.
    assert_ok(&s.sh("mkdir empty"));
    let o = s.nsroot([
        "repro".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        "empty".as_ref(),
    ]);
    assert_ok(&o);
    assert!(s.path().join("empty/out2").is_dir());
}

#[test]
fn repro_bad_recipes_exit_2_and_failed_builds_exit_3() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    // A parse error.
    s.write("bad/recipe.toml", "[package\n");
    let o = s.nsroot(["repro", "bad/recipe.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("bad/recipe.toml"), "{}", stderr(&o));

    // A sha256 mismatch, found by the first build: still bad input, said once.
    let t = copy_into(&s, &util::repo().join("recipes/tarball"));
    assert_ok(&s.sh(r#"sed -i 's/^sha256 = "./sha256 = "0/' tarball/recipe.toml"#));
    let o = s.nsroot(["repro".as_ref(), t.join("recipe.toml").as_os_str()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}{err}", stdout(&o));
    assert!(err.contains("run 1 of 2: the build failed: "), "{err}");
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert_eq!(err.matches("nsroot:").count(), 1, "{err}");
    assert!(!stdout(&o).contains("REPRODUCIBLE"), "{}", stdout(&o));

    // A failing step: neither REPRODUCIBLE (0) nor NOT REPRODUCIBLE (1).
    let f = copy_into(&s, &util::repo().join("tests/fixtures/repro/fails"));
    assert_ok(&s.sh("mkdir tmp"));
    let o = util::env()
        .nsroot()
        .arg("repro")
        .arg(f.join("recipe.toml"))
        .env("TMPDIR", s.path().join("tmp"))
        .current_dir(s.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{}{err}", stdout(&o));
    assert!(
        err.starts_with("nsroot: run 1 of 2: the build failed: "),
        "{err}"
    );
    assert!(err.contains("failed with exit code 3"), "{err}");
    assert!(err.contains("this build step fails on purpose"), "{err}");
    assert_eq!(err.matches("nsroot:").count(), 1, "{err}");
    assert!(!stdout(&o).contains("REPRODUCIBLE"), "{}", stdout(&o));
    // The runs are kept, so the log the message names is there to read.
    let log = err
        .lines()
        .find_map(|l| l.strip_prefix("--- full log: "))
        .unwrap_or_else(|| panic!("no log named: {err}"));
    assert!(
        log.starts_with(&s.path().join("tmp").display().to_string()),
        "{err}"
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("this build step fails on purpose"), "{log}");
}

/// Whole days of the host's CLOCK_BOOTTIME, as this process sees it.
fn uptime_days() -> u64 {
    let up = std::fs::read_to_string("/proc/uptime").unwrap();
    let secs: u64 = up.split('.').next().unwrap().parse().unwrap();
    secs / 86400
}

/// The days the `uptime` fixture wrote (`up N days`), from a diff line or the file itself.
fn days_in(line: &str) -> u64 {
    line.trim_start_matches(['-', '+'])
        .trim()
        .strip_prefix("up ")
        .and_then(|l| l.strip_suffix(" days"))
        .unwrap_or_else(|| panic!("not an uptime line: {line:?}"))
        .parse()
        .unwrap()
}

/// One file out of a .tar.gz.
fn extract(archive: &std::path::Path, member: &str) -> String {
    let t = std::process::Command::new("tar")
        .arg("-xOzf")
        .arg(archive)
        .arg(member)
        .output()
        .unwrap();
    assert_ok(&t);
    stdout(&t)
}

/// The changed lines of the one unified diff in a repro report: (removed, added).
fn changed_lines(out: &str) -> (Vec<&str>, Vec<&str>) {
    let removed = out
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    let added = out
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    (removed, added)
}

#[test]
fn repro_shifts_the_monotonic_and_boot_clocks_of_each_run() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/uptime"));
    let o = s.nsroot(["repro".as_ref(), r.join("recipe.toml").as_os_str()]);
    let out = stdout(&o);
    assert!(
        !stderr(&o).contains("clocks could not be shifted"),
        "the kernel refused a time namespace: {}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("NOT REPRODUCIBLE"), "{out}");
    assert!(
        out.contains("./usr/share/embeds-uptime/uptime: content differs at byte "),
        "{out}"
    );
    assert!(out.contains("\n1 difference\n"), "{out}");
    // Each run says how far its clocks were shifted: 3 days, 1 hour, 1 minute, 1 second more
    // from one run to the next.
    assert!(out.contains("clocks +262861 s"), "{out}");
    assert!(out.contains("clocks +525722 s"), "{out}");
    let (removed, added) = changed_lines(&out);
    assert_eq!((removed.len(), added.len()), (1, 1), "{out}");
    let (one, two) = (days_in(removed[0]), days_in(added[0]));
    // 3 days and 3661 s apart: 3 whole days more, or 4 when the extra hour crosses a day.
    assert!((3..=4).contains(&(two - one)), "{one} then {two}: {out}");
}

#[test]
fn repro_clock_offset_is_repro_only_a_plain_build_sees_the_host_clocks() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/uptime"));
    let before = uptime_days();
    let mut seen = Vec::new();
    for o in ["o1", "o2"] {
        let b = s.nsroot([
            "build".as_ref(),
            r.join("recipe.toml").as_os_str(),
            "-o".as_ref(),
            s.path().join(o).as_os_str(),
        ]);
        assert_ok(&b);
        let archive = s.path().join(o).join("embeds-uptime_1.0-1_amd64.tar.gz");
        let days = days_in(extract(&archive, "./usr/share/embeds-uptime/uptime").trim());
        seen.push((days, std::fs::read(&archive).unwrap()));
    }
    let after = uptime_days();
    for (days, _) in &seen {
        assert!(
            (before..=after).contains(days),
            "a plain build saw {days} days of uptime, the host {before}..{after}"
        );
    }
    // The same bytes, unless the host's uptime itself passed a whole day meanwhile.
    if before == after {
        assert!(seen[0] == seen[1], "two plain builds differ");
    }
}

/// Whether `dir`'s filesystem lists a directory's entries in an order that follows the order
/// they were created in (tmpfs), checked as the test uid sees it.
fn lists_in_creation_order(dir: &std::path::Path) -> bool {
    let probe = tempfile::Builder::new()
        .prefix("order-probe-")
        .tempdir_in(dir)
        .unwrap();
    let mut listings = Vec::new();
    for (sub, names) in [("up", ["a", "b", "c", "d"]), ("down", ["d", "c", "b", "a"])] {
        let d = probe.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        for n in names {
            std::fs::write(d.join(n), n).unwrap();
        }
        let listed: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        listings.push(listed);
    }
    listings[0] != listings[1]
}

/// A directory for repro's runs, owned by the test uid, on a filesystem that lists entries in
/// creation order: /dev/shm (tmpfs on most systems), else the scratch directory's own.
fn creation_ordered_dir(s: &Scratch) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    for base in [std::path::Path::new("/dev/shm"), s.path()] {
        let Ok(d) = tempfile::Builder::new()
            .prefix("nsroot-it-order-")
            .tempdir_in(base)
        else {
            continue;
        };
        if lists_in_creation_order(d.path()) {
            let env = util::env();
            if env.drop_to.is_some() {
                std::os::unix::fs::chown(d.path(), Some(env.uid), Some(env.gid)).unwrap();
            }
            let runs = d.path().join("runs");
            return Some((d, runs));
        }
    }
    None
}

#[test]
fn repro_varies_directory_listing_order_where_the_filesystem_allows() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/listing"));
    let recipe = r.join("recipe.toml");
    let listing = "./usr/share/embeds-listing/listing";

    // In the scratch directory: caught where its filesystem lists in creation order; where it
    // imposes its own order (ext4), reproducible, and the report says the order was not varied.
    let o = s.nsroot([
        "repro".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        "here".as_ref(),
    ]);
    let out = stdout(&o);
    let scratch_ordered = lists_in_creation_order(s.path());
    if scratch_ordered {
        assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
        assert!(
            out.contains(&format!("{listing}: content differs")),
            "{out}"
        );
    } else {
        assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
        assert!(
            out.lines().any(|l| l.starts_with("not varied: ")
                && l.contains("directory listing order: ")
                && l.contains("an order of its own")),
            "{out}"
        );
    }
    assert!(
        out.contains("entries copied ascending") && out.contains("entries copied descending"),
        "{out}"
    );
    if scratch_ordered {
        return;
    }

    let Some((_keep, runs)) = creation_ordered_dir(&s) else {
        util::skip(
            "neither /dev/shm nor the scratch directory lists a directory's entries in \
             creation order (both hash or sort them), so nsroot cannot vary the order here",
        );
        return;
    };
    let o = s.nsroot([
        "repro".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        runs.as_os_str(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("NOT REPRODUCIBLE"), "{out}");
    assert!(
        out.contains(&format!("{listing}: content differs")),
        "{out}"
    );
    assert!(out.contains("\n1 difference\n"), "{out}");
    assert!(!out.contains("directory listing order"), "{out}");
    // Both runs listed the same names, in opposite orders.
    let read = |run: &str| {
        extract(
            &runs.join(run).join("embeds-listing_1.0-1_amd64.tar.gz"),
            listing,
        )
    };
    let (one, two) = (read("out1"), read("out2"));
    let names = |l: &str| {
        let mut v: Vec<String> = l
            .lines()
            .filter(|n| !n.starts_with('.'))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&one),
        ["alpha", "bravo", "charlie", "delta", "echo"],
        "{one}"
    );
    assert_eq!(names(&one), names(&two));
    let order = |l: &str| -> Vec<String> {
        l.lines()
            .filter(|n| !n.starts_with('.'))
            .map(String::from)
            .collect()
    };
    let mut reversed = order(&two);
    reversed.reverse();
    assert_eq!(order(&one), reversed, "{one}---\n{two}");
}

#[test]
fn repro_without_time_namespaces_warns_once_and_goes_on() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("recipes/scripts"));
    // A user namespace whose limit of time namespaces is 0: the kernel refuses them (ENOSPC)
    // to everything inside, nsroot's builds included.
    let script = r#"echo 0 > /proc/sys/user/max_time_namespaces || exit 99; exec "$0" repro "$1""#;
    let o = util::env()
        .command("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", script])
        .arg(&util::env().bin)
        .arg(r.join("recipe.toml"))
        .current_dir(s.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if o.status.code() == Some(99) {
        util::skip(&format!(
            "cannot limit time namespaces in a user namespace here: {}",
            stderr(&o)
        ));
        return;
    }
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l == "REPRODUCIBLE"), "{out}");
    assert_eq!(
        err.matches("the clocks could not be shifted").count(),
        1,
        "warned once: {err}"
    );
    assert!(err.contains("max_time_namespaces"), "{err}");
    assert_eq!(out.matches("clocks not shifted").count(), 2, "{out}");
    assert!(
        out.contains("not varied: ") && out.contains("the monotonic and boot-time clocks: "),
        "{out}"
    );
}
