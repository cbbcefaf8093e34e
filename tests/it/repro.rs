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
    for dir in ["hello", "scripts", "suidtool", "tarball"] {
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
        out.contains("./usr/share/embeds-date/built-at: content differs"),
        "{out}"
    );
    // Only that file differs.
    assert!(out.contains("1 difference"), "{out}");
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
