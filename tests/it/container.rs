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
            "sysinfo_2.1-1_all.deb",
            "sysinfo_2.1-1_all.rpm",
            "sysinfo_2.1-1_all.pkg.tar.zst"
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

// ---------------------------------------------------------------------------------------------
// nsroot inside a rootless podman container.

/// Where the Debian rootfs the podman test imports is cached between runs (`.ci/setup` makes
/// it; the test makes it itself, as root, when it is missing).
fn rootfs_cache() -> PathBuf {
    std::env::var_os("NSROOT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/nsroot-test"))
        .join("bookworm-apt.tar")
}

/// The Debian mirror to build the rootfs from: `$NSROOT_TEST_DEBIAN_MIRROR`, else the first
/// `deb.debian.org`-style URI of the machine's own apt sources, else deb.debian.org.
fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("NSROOT_TEST_DEBIAN_MIRROR") {
        return m;
    }
    let sources =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    sources
        .lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .flat_map(str::split_whitespace)
        .find(|u| u.ends_with("/debian"))
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}

/// The cached rootfs tarball, built with `mmdebstrap --variant=apt` when missing; Err(reason)
/// when it cannot be had (not root, no mmdebstrap, the mirror unreachable).
fn rootfs() -> Result<PathBuf, String> {
    let tar = rootfs_cache();
    if tar.is_file() {
        return Ok(tar);
    }
    if env().drop_to.is_none() {
        return Err(format!(
            "no cached rootfs at {} and the suite does not run as root to make it \
             (`sudo bash .ci/setup` makes it)",
            tar.display()
        ));
    }
    if !on_path("mmdebstrap") {
        return Err("mmdebstrap is not installed (.ci/setup installs it)".into());
    }
    let dir = tar.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let part = dir.join(format!("bookworm-apt.tar.{}.part", std::process::id()));
    let mirror = debian_mirror();
    let o = std::process::Command::new("mmdebstrap")
        .args([
            "--variant=apt",
            "--mode=root",
            "--format=tar",
            "--quiet",
            "bookworm",
        ])
        .arg(&part)
        .arg(&mirror)
        .output()
        .unwrap();
    if !o.status.success() {
        let _ = std::fs::remove_file(&part);
        return Err(format!(
            "mmdebstrap could not build a bookworm rootfs from {mirror} (is the mirror \
             reachable?): {}",
            stderr(&o)
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    std::fs::rename(&part, &tar).unwrap();
    Ok(tar)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Runs `podman ARGS` as the test user, with a clean environment (rootless podman keeps its
/// storage in the user's home).
fn podman(args: &[&str]) -> Output {
    let home = crate::isolation::home_of_test_user();
    let mut c = env().command("timeout");
    c.arg("300")
        .arg("podman")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &home)
        .current_dir("/");
    if let Some(user) = &env().drop_to {
        c.env("USER", user).env("LOGNAME", user);
    }
    c.output().unwrap()
}

/// What this machine needs for every container (found on 2026-12-02, podman 4.3.1, cgroup v1
/// hybrid; TESTING.md says why): runc, since crun refuses a cgroup v1 hybrid ("cgroups in
/// hybrid mode not supported"); cgroupfs, as there is no systemd user session; no network,
/// as slirp4netns cannot open /dev/net/tun here (and a build needs none).
const ENGINE_OPTS: &[&str] = &[
    "--runtime",
    "runc",
    "--cgroup-manager=cgroupfs",
    "--network",
    "none",
];

/// The script run in each container: `nsroot true`, a recorded chown in run mode, `nsroot
/// doctor`, a build of the scripts recipe (`--json`) and `nsroot repro`, each result between
/// markers.
const IN_CONTAINER: &str = r#"
cd /tmp
/w/nsroot true; echo "@@true=$?"
: > /tmp/f && echo "@@chown=$(/w/nsroot sh -c 'chown 5:6 /tmp/f && stat -c %u:%g /tmp/f')"
/w/nsroot doctor --json > /tmp/doctor.json; echo "@@doctor=$?"
echo "@@doctor-json"; cat /tmp/doctor.json; echo "@@end"
/w/nsroot build /w/scripts/recipe.toml -o /tmp/out --json > /tmp/build.json 2> /tmp/build.err
echo "@@build=$?"
echo "@@build-json"; cat /tmp/build.json; echo "@@end"
echo "@@build-err"; cat /tmp/build.err; echo "@@end"
if [ -s /tmp/out/sysinfo_2.1-1_all.tar.gz ]; then
    /w/nsroot repro /w/scripts/recipe.toml > /tmp/repro.out 2>&1; echo "@@repro=$?"
    echo "@@repro-out"; cat /tmp/repro.out; echo "@@end"
fi
"#;

/// One container's report, split at the script's markers.
struct Report {
    text: String,
}

impl Report {
    fn status(&self, what: &str) -> Option<i32> {
        let key = format!("@@{what}=");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
    }

    fn section(&self, what: &str) -> String {
        let start = format!("@@{what}\n");
        let Some(i) = self.text.find(&start) else {
            return String::new();
        };
        let rest = &self.text[i + start.len()..];
        rest[..rest.find("@@end").unwrap_or(rest.len())].to_string()
    }

    fn json(&self, what: &str) -> serde_json::Value {
        let text = self.section(what);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", self.text))
    }

    fn check<'a>(&self, list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .unwrap_or_else(|| panic!("no doctor line {name}: {}", self.text))
    }
}

#[test]
fn issue17_nsroot_in_a_rootless_podman_container() {
    if util::no_userns() || util::missing_tool("podman") || util::missing_tool("runc") {
        return;
    }
    let started = std::time::Instant::now();
    let tar = match rootfs() {
        Ok(t) => t,
        Err(why) => {
            util::skip(&why);
            return;
        }
    };
    // The image, named after the tarball's size and mtime: re-imported when the cache changes.
    let meta = std::fs::metadata(&tar).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let image = format!("localhost/nsroot-test-bookworm:{}-{mtime}", meta.len());
    if !podman(&["image", "exists", &image]).status.success() {
        let o = podman(&["import", "--quiet", tar.to_str().unwrap(), &image]);
        assert_ok(&o);
        // Images of earlier caches go: each is as large as the rootfs.
        let listed = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for old in stdout(&listed).lines() {
            if old.starts_with("localhost/nsroot-test-bookworm:") && old != image {
                let _ = podman(&["rmi", old]);
            }
        }
    }
    let imported = started.elapsed();

    // What the containers mount at /w: nsroot and the recipe, world-readable.
    let s = Scratch::new();
    scripts_recipe(&s);
    std::fs::copy(&env().bin, s.path().join("nsroot")).unwrap();
    // Profiles that refuse what nsroot cannot do without (podman reads them on the host).
    let profile = |name: &str, call: &str, errno: i32| {
        let p = s.path().join(name);
        let rule = format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["{call}"],"action":"SCMP_ACT_ERRNO","errnoRet":{errno}}}]}}"#
        );
        std::fs::write(&p, rule).unwrap();
        format!("seccomp={}", p.display())
    };
    let no_unshare = profile("no-unshare.json", "unshare", libc::EPERM);
    let no_seccomp = profile("no-seccomp.json", "seccomp", libc::ENOSYS);
    assert_ok(
        &std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(s.path())
            .output()
            .unwrap(),
    );
    // The same build on the host, the reference.
    let host = s.nsroot(["build", "scripts/recipe.toml", "-o", "host", "--json"]);
    assert_ok(&host);
    let host_outputs = outputs(&json(&host));

    let volume = format!("{}:/w:ro", s.path().display());
    let run_script = |opts: &[&str], script: &str| -> Report {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(ENGINE_OPTS);
        args.extend_from_slice(&["-v", &volume]);
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&image, "sh", "-c", script]);
        let o = podman(&args);
        assert_ok(&o);
        Report {
            text: format!("{}\n--- podman stderr:\n{}", stdout(&o), stderr(&o)),
        }
    };
    let run = |opts: &[&str]| run_script(opts, IN_CONTAINER);

    // 1. The profile and the masking lifted: everything works, nothing degraded.
    let open = run(&[
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "unmask=ALL",
    ]);
    assert_eq!(open.status("true"), Some(0), "{}", open.text);
    assert!(open.text.contains("\n@@chown=5:6\n"), "{}", open.text);
    assert_eq!(open.status("doctor"), Some(0), "{}", open.text);
    let doctor = open.json("doctor-json");
    let container = open.check(&doctor, "container")["detail"].as_str().unwrap();
    assert!(container.starts_with("podman ("), "{container}");
    for name in [
        "pid namespace with a fresh /proc",
        "uts namespace",
        "seccomp filter",
    ] {
        assert_eq!(
            open.check(&doctor, name)["status"],
            "works",
            "{name}: {}",
            open.text
        );
    }
    assert_eq!(open.status("build"), Some(0), "{}", open.text);
    assert_eq!(
        outputs(&open.json("build-json")),
        host_outputs,
        "the container's build differs from the host's"
    );
    assert_eq!(open.status("repro"), Some(0), "{}", open.text);
    let repro = open.section("repro-out");
    assert!(repro.contains("\nREPRODUCIBLE\n"), "{repro}");
    for (file, sha) in &host_outputs {
        assert!(repro.contains(&format!("{sha}  {file}")), "{file}: {repro}");
    }

    // 2. The engine's defaults: its seccomp profile refuses sethostname, /proc is masked.
    // `nsroot true` works (the container's /proc as it is, said on stderr); doctor names both
    // switches; a build fails at once in one line that names the blocker and the fix.
    let default = run(&[]);
    assert_eq!(default.status("true"), Some(0), "{}", default.text);
    assert!(default.text.contains("\n@@chown=5:6\n"), "{}", default.text);
    assert_eq!(default.status("doctor"), Some(1), "{}", default.text);
    let doctor = default.json("doctor-json");
    let seccomp = default.check(&doctor, "seccomp filter");
    assert_eq!(
        seccomp["status"], "works",
        "unshare is allowed: {}",
        default.text
    );
    let proc = default.check(&doctor, "pid namespace with a fresh /proc");
    assert_eq!(proc["status"], "degraded", "{}", default.text);
    assert_eq!(proc["fix"], "podman: `--security-opt unmask=ALL`");
    let uts = default.check(&doctor, "uts namespace");
    assert_eq!(uts["status"], "broken", "{}", default.text);
    let detail = uts["detail"].as_str().unwrap();
    assert!(
        detail.contains("--hostname nsroot")
            && detail.contains("--security-opt seccomp=unconfined"),
        "{detail}"
    );
    assert_eq!(default.status("build"), Some(1), "{}", default.text);
    let err = default.section("build-err");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("nsroot: sandbox setup failed: sethostname(\"nsroot\") => EPERM")
            && err.contains("--hostname nsroot"),
        "{err}"
    );
    assert_eq!(default.json("build-json")["exit_reason"], "sandbox");

    // 3. The defaults with the hostname the error asks for: the build works, on the
    // container's /proc bound read-only (said on stderr), byte-identical to the host's.
    let named = run(&["--hostname", "nsroot"]);
    assert_eq!(named.status("doctor"), Some(0), "{}", named.text);
    let doctor = named.json("doctor-json");
    assert_eq!(named.check(&doctor, "uts namespace")["status"], "degraded");
    assert_eq!(named.status("build"), Some(0), "{}", named.text);
    let err = named.section("build-err");
    assert!(
        err.contains("warning: cannot mount a fresh /proc")
            && err.contains("the container's /proc")
            && err.contains("--security-opt unmask=ALL"),
        "{err}"
    );
    assert_eq!(outputs(&named.json("build-json")), host_outputs);
    assert_eq!(named.status("repro"), Some(0), "{}", named.text);
    assert!(
        named.section("repro-out").contains("\nREPRODUCIBLE\n"),
        "{}",
        named.text
    );

    // 4. As an unprivileged user of the container, same defaults and hostname.
    let user = run(&["--hostname", "nsroot", "--user", "1000:1000"]);
    assert_eq!(user.status("true"), Some(0), "{}", user.text);
    assert!(user.text.contains("\n@@chown=5:6\n"), "{}", user.text);
    assert_eq!(user.status("build"), Some(0), "{}", user.text);
    assert_eq!(outputs(&user.json("build-json")), host_outputs);
    // 5. A profile that refuses unshare (as Docker's default does without CAP_SYS_ADMIN):
    // nothing can run, in one line naming the profile and its switch; doctor says it once.
    const SHORT: &str = r#"
/w/nsroot true 2> /tmp/true.err; echo "@@true=$?"
echo "@@true-err"; cat /tmp/true.err; echo "@@end"
/w/nsroot --no-emulate true; echo "@@no-emulate=$?"
/w/nsroot doctor --json > /tmp/doctor.json; echo "@@doctor=$?"
echo "@@doctor-json"; cat /tmp/doctor.json; echo "@@end"
"#;
    let blocked = run_script(&["--security-opt", &no_unshare], SHORT);
    assert_eq!(blocked.status("true"), Some(1), "{}", blocked.text);
    let err = blocked.section("true-err");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nsroot: cannot create a user namespace: unshare => EPERM")
            && err.contains("refuses unshare")
            && err.contains("--security-opt seccomp=unconfined"),
        "{err}"
    );
    assert_eq!(blocked.status("doctor"), Some(1), "{}", blocked.text);
    let doctor = blocked.json("doctor-json");
    let seccomp = blocked.check(&doctor, "seccomp filter");
    assert_eq!(seccomp["status"], "broken", "{}", blocked.text);
    assert_eq!(
        seccomp["fix"],
        "podman/docker: `--security-opt seccomp=unconfined`"
    );
    let mount = blocked.check(&doctor, "mount namespace");
    assert_eq!(
        mount["detail"],
        "not checked: it needs the user namespace (caller mapped to root) above"
    );

    // 6. A profile that refuses seccomp(2) (no user notification, as under gVisor): doctor's
    // emulation line is broken and names `--no-emulate`, which works.
    let no_notify = run_script(&["--security-opt", &no_seccomp], SHORT);
    assert_eq!(
        no_notify.status("no-emulate"),
        Some(0),
        "{}",
        no_notify.text
    );
    assert_eq!(no_notify.status("true"), Some(1), "{}", no_notify.text);
    assert!(
        no_notify
            .section("true-err")
            .contains("seccomp(SECCOMP_SET_MODE_FILTER"),
        "{}",
        no_notify.text
    );
    let doctor = no_notify.json("doctor-json");
    let emulation = no_notify.check(&doctor, "ownership emulation");
    assert_eq!(emulation["status"], "broken", "{}", no_notify.text);
    assert!(
        emulation["fix"]
            .as_str()
            .unwrap()
            .contains("`nsroot --no-emulate`"),
        "{emulation}"
    );
    eprintln!(
        "podman test: image ready after {:.1} s, done after {:.1} s",
        imported.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
