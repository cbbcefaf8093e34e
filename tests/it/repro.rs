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
fn repro_a_recipe_embedding_its_build_path_is_reproducible_because_the_path_is_fixed() {
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
    assert_ok(&o);
    assert!(stdout(&o).contains("REPRODUCIBLE"), "{}", stdout(&o));
    // The runs lived in different host directories; inside, the path was /build/src.
    let b = s.nsroot([
        "build".as_ref(),
        r.join("recipe.toml").as_os_str(),
        "-o".as_ref(),
        s.path().join("o").as_os_str(),
    ]);
    assert_ok(&b);
    let t = std::process::Command::new("tar")
        .arg("-xOzf")
        .arg(s.path().join("o/embeds-path_1.0-1_amd64.tar.gz"))
        .arg("./usr/share/embeds-path/built-in")
        .output()
        .unwrap();
    assert_eq!(stdout(&t), "/build/src\n/build/src/README\n");
}

#[test]
fn repro_output_dir_may_be_relative_and_is_not_reused_when_not_empty() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let r = copy_into(&s, &util::repo().join("tests/fixtures/repro/path"));
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
            out.join("embeds-path_1.0-1_amd64.tar.gz").is_file(),
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
