//! Load (issue 8): 20 builds of the bundled recipes at once, by two unprivileged users sharing
//! one sticky scratch directory: all succeed, outputs bit-identical to serial builds, no
//! scratch collisions, nothing left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::faults::{marker, names, sha256, wait_no_processes};
use crate::util::{self, env};

/// Builds started at once (recorded in TESTING.md).
pub(crate) const CONCURRENT_BUILDS: usize = 20;
/// The second unprivileged user (`.ci/setup` creates it).
const SECOND_USER: &str = "nsroot-test2";
const RECIPES: [&str; 4] = ["hello", "scripts", "suidtool", "tarball"];

/// A user the builds run as.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        c
    }
}

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let o = Command::new("id").arg(flag).arg(user).output().ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// The second user, or None (after `util::skip`) when the suite cannot switch to one.
fn second_user() -> Option<User> {
    if env().drop_to.is_none() {
        util::skip("load needs two users: run the suite as root (CI does)");
        return None;
    }
    match (id_of("-u", SECOND_USER), id_of("-g", SECOND_USER)) {
        (Some(uid), Some(gid)) => Some(User {
            name: SECOND_USER.into(),
            uid,
            gid,
        }),
        _ => {
            util::skip(&format!(
                "the second test user {SECOND_USER} does not exist (.ci/setup creates it)"
            ));
            None
        }
    }
}

/// A copy of recipes/ under `base/<dir>`, owned by `user`.
fn copy_recipes(base: &Path, dir: &str, user: &User) -> PathBuf {
    let to = base.join(dir);
    std::fs::create_dir_all(&to).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(util::repo().join("recipes"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&to)
        .status()
        .unwrap();
    assert!(st.success());
    to.join("recipes")
}

/// sha256 of every archive (not the log or manifest, which name the output dir) in `out`.
fn archive_sums(out: &Path) -> BTreeMap<String, String> {
    names(out)
        .into_iter()
        .filter(|n| n.contains(".tar") || n.ends_with(".deb"))
        .map(|n| {
            let sum = sha256(&out.join(&n));
            (n, sum)
        })
        .collect()
}

fn spawn(user: &User, recipe: &Path, out: &Path, tmp: &Path, err: &Path) -> Child {
    user.command(&env().bin)
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(err).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn load_twenty_builds_by_two_users_at_once_match_serial_builds() {
    if util::no_userns() {
        return;
    }
    let Some(second) = second_user() else {
        return;
    };
    let first = User {
        name: env().drop_to.clone().unwrap_or_default(),
        uid: env().uid,
        gid: env().gid,
    };
    // One directory both users can enter; each user's files in a subdirectory of their own.
    let mark = marker("load");
    let base = env().root_dir.join(&mark);
    std::fs::create_dir_all(&base).unwrap();
    let _cleanup = RemoveOnDrop(base.clone());
    // The shared scratch space, sticky and world-writable like /tmp.
    let tmp = base.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let users = [first, second];
    let recipes: Vec<PathBuf> = users
        .iter()
        .enumerate()
        .map(|(i, u)| copy_recipes(&base, &format!("user{i}"), u))
        .collect();

    // Serial reference builds, one recipe after the other.
    let mut reference = BTreeMap::new();
    for r in RECIPES {
        let out = base.join(format!("user0/serial-{r}"));
        let err = base.join(format!("user0/serial-{r}.err"));
        let mut c = spawn(
            &users[0],
            &recipes[0].join(r).join("recipe.toml"),
            &out,
            &tmp,
            &err,
        );
        let st = c.wait().unwrap();
        assert!(
            st.success(),
            "{r}: {}",
            std::fs::read_to_string(&err).unwrap()
        );
        let sums = archive_sums(&out);
        assert!(!sums.is_empty(), "{r}: no archive");
        reference.insert(r, sums);
    }

    // Watch the shared scratch space while the builds run: how many at once, and every name.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, tmp) = (Arc::clone(&stop), tmp.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut most = 0;
            while !stop.load(Ordering::SeqCst) {
                let now = names(&tmp);
                most = most.max(now.len());
                seen.extend(now);
                std::thread::sleep(Duration::from_millis(5));
            }
            (most, seen)
        })
    };
    let t0 = Instant::now();
    let mut running = Vec::new();
    for i in 0..CONCURRENT_BUILDS {
        let u = i % 2;
        let r = RECIPES[(i / 2) % RECIPES.len()];
        let out = base.join(format!("user{u}/out{i}"));
        let err = base.join(format!("user{u}/err{i}"));
        let child = spawn(
            &users[u],
            &recipes[u].join(r).join("recipe.toml"),
            &out,
            &tmp,
            &err,
        );
        running.push((i, r, out, err, child));
    }
    let deadline = t0 + Duration::from_secs(240);
    let mut failures = Vec::new();
    for (i, r, out, err, mut child) in running {
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        if !st.success() {
            failures.push(format!("build {i} ({r}) {st:?}: {text}"));
            continue;
        }
        // A live build's scratch taken for a dead one's would be reclaimed: never under load.
        if text.contains("reclaimed") {
            failures.push(format!("build {i} ({r}) reclaimed: {text}"));
        }
        let sums = archive_sums(&out);
        if sums != reference[r] {
            failures.push(format!(
                "build {i} ({r}) differs from the serial build: {sums:#?}"
            ));
        }
    }
    let took = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (most, seen) = watcher.join().unwrap();
    eprintln!(
        "{CONCURRENT_BUILDS} builds by 2 users in {took:?}, up to {most} at once, \
         {} scratch directories",
        seen.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        most >= 2,
        "the builds never overlapped (at most {most} at once)"
    );
    assert!(names(&tmp).is_empty(), "left behind: {:?}", names(&tmp));
    let left = wait_no_processes(&mark, Duration::from_secs(5));
    assert!(left.is_empty(), "still running: {left:?}");
}

/// Removes a directory tree (made by root and two users) when the test ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwX")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
