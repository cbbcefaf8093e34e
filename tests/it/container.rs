//! nsroot where build farms run it (issue 17): the record a farm's collector takes from
//! `nsroot build --json` and the manifest, builds where /proc is masked as container engines
//! mask it, and nsroot inside a rootless podman container.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{self, assert_ok, env, stderr, stdout, Scratch};

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A copy of the bundled `scripts` recipe (nothing to compile: the container needs no
/// compiler) in `s`, readable by the test user.
fn scripts_recipe(s: &Scratch) -> PathBuf {
    let o = std::process::Command::new("cp")
        .arg("-r")
        .arg(util::repo().join("recipes/scripts"))
        .arg(s.path().join("scripts"))
        .output()
        .unwrap();
    assert_ok(&o);
    s.chown_all();
    s.path().join("scripts/recipe.toml")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The output files (name, sha256) of a `--json` record or a manifest.
fn outputs(record: &serde_json::Value) -> Vec<(String, String)> {
    record["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["file"].as_str().unwrap().to_string(),
                o["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn issue17_build_json_is_the_collectors_record() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    let recipe = scripts_recipe(&s);
    let o = s.nsroot(["build", "scripts/recipe.toml", "-o", "out", "--json"]);
    assert_ok(&o);
    let r = json(&o);
    assert_eq!(r["exit_reason"], "success", "{r}");
    assert_eq!(r["exit_status"], 0, "{r}");
    assert_eq!(r["recipe_sha256"], sha256(&recipe), "{r}");
    assert!(r["source_sha256"].as_str().unwrap().len() == 64, "{r}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(r["kernel"], release.trim(), "{r}");
    let version = env().nsroot().arg("--version").output().unwrap();
    assert_eq!(
        format!("nsroot {}\n", r["nsroot_version"].as_str().unwrap()),
        stdout(&version)
    );
    // Every output, with the sha256 of the file as written.
    let out = s.path().join("out");
    let files = outputs(&r);
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "sysinfo_2.1-1_all.tar.gz",
            "sysinfo_2.1-1_all.tar.zst",
            "sysinfo_2.1-1_all.deb"
        ]
    );
    for (file, sha) in &files {
        assert_eq!(*sha, sha256(&out.join(file)), "{file}");
    }
    // Durations: each phase within the whole.
    let d = &r["durations"];
    let (total, steps, pack) = (
        d["total_secs"].as_f64().unwrap(),
        d["steps_secs"].as_f64().unwrap(),
        d["pack_secs"].as_f64().unwrap(),
    );
    assert!(
        steps > 0.0 && pack > 0.0 && steps + pack <= total + 0.002,
        "{d}"
    );
    // The manifest beside the outputs says the same, and where the log is.
    let manifest_file = PathBuf::from(r["manifest_file"].as_str().unwrap());
    assert_eq!(manifest_file, out.join("sysinfo_2.1-1_all.manifest.json"));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_file).unwrap()).unwrap();
    assert_eq!(outputs(&m), files);
    for key in ["kernel", "exit_reason", "recipe_sha256", "source_sha256"] {
        assert_eq!(m[key], r[key], "{key}");
    }
    assert_eq!(m["durations"], r["durations"]);
    assert!(Path::new(r["log"].as_str().unwrap()).is_file(), "{r}");
}

#[test]
fn issue17_build_json_records_failed_builds_too() {
    if util::no_userns() {
        return;
    }
    let s = Scratch::new();
    s.write(
        "bad/recipe.toml",
        "[package]\nname = \"bad\"\nversion = \"1\"\nsummary = \"fails\"\nlicense = \"MIT\"\n\
         [build]\nsteps = ['echo before; exit 3']\n",
    );
    let o = s.nsroot(["build", "bad/recipe.toml", "-o", "out", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["exit_reason"], "step-failed", "{r}");
    assert_eq!(r["exit_status"], 1, "{r}");
    assert_eq!(
        r["recipe_sha256"],
        sha256(&s.path().join("bad/recipe.toml"))
    );
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("failed with exit code 3"),
        "{r}"
    );
    let log = r["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log).unwrap().contains("before"),
        "{r}"
    );
    assert_eq!(r["outputs"], serde_json::json!([]));
    assert!(r["kernel"].as_str().is_some_and(|k| !k.is_empty()), "{r}");
    // No manifest for a failed build: the record is on stdout only.
    assert!(!s.path().join("out/bad_1-1_amd64.manifest.json").exists());

    // Bad input: exit 2, said so.
    s.write("worse/recipe.toml", "[package]\nname = 5\n");
    let o = s.nsroot(["build", "worse/recipe.toml", "-o", "out2", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["exit_reason"], "bad-input", "{r}");
    assert_eq!(r["exit_status"], 2, "{r}");
    assert!(r["log"].is_null(), "{r}");
}

/// Builds the scripts recipe in `dir` into `out` with `nsroot build --json` run by
/// `sh -c PREFIX "$NSROOT" build ...` (PREFIX may enter a namespace first).
fn build_under(s: &Scratch, prefix: &str, out: &str) -> Output {
    env()
        .command("sh")
        .arg("-c")
        .arg(format!(
            "{prefix} \"$NSROOT\" build scripts/recipe.toml -o {out} --json"
        ))
        .env("NSROOT", &env().bin)
        .env("container", "podman")
        .current_dir(s.path())
        .output()
        .unwrap()
}

#[test]
fn issue17_build_where_proc_is_masked_matches_the_unmasked_build() {
    if util::no_userns() || util::missing_tool("unshare") {
        return;
    }
    let s = Scratch::new();
    scripts_recipe(&s);
    let plain = build_under(&s, "", "plain");
    assert_ok(&plain);
    // /proc masked as a container engine masks it: a fresh procfs is refused, and the
    // build binds this /proc read-only instead. Its nested user namespace's id maps used to
    // be written through that bind: EROFS on /proc/self/setgroups.
    let masked = build_under(
        &s,
        "unshare --user --map-root-user --mount sh -c 'mount -t tmpfs none /proc/fs && exec \"$0\" \"$@\"'",
        "masked",
    );
    assert_ok(&masked);
    let err = stderr(&masked);
    assert!(
        err.contains("warning: cannot mount a fresh /proc")
            && err.contains("(bound read-only)")
            && err.contains("--security-opt unmask=ALL"),
        "{err}"
    );
    let (a, b) = (json(&plain), json(&masked));
    assert_eq!(
        outputs(&a),
        outputs(&b),
        "outputs differ where /proc is masked"
    );
    assert!(
        b["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("cannot mount a fresh /proc")),
        "{b}"
    );
}
