//! Recorded ownership (issue 5): the seccomp supervisor, the store and state files, tested
//! through `ownership::run_supervised` without a user namespace.
//!
//! When the suite runs as root, each session runs in a copy of this test binary started as
//! the unprivileged test user (`child_session`), so that the supervisor and the command are
//! both unprivileged, as under `nsroot`; the store travels through state files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use nsroot::ownership::{self, Lookup, Store};

use crate::util::{self, Scratch};

const CHILD_VAR: &str = "NSROOT_IT_CHILD_DIR";

/// This test binary, where the test user can run it.
fn test_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let me = std::env::current_exe().unwrap();
        let env = util::env();
        if env.drop_to.is_none() {
            return me;
        }
        let copy = env.root_dir.join("it-ownership");
        std::fs::copy(&me, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    })
    .clone()
}

/// The command that runs `script` as its own session: the supervisor and `sh -c script` run
/// in a fresh process of this test binary (see `child_session`). `io` is a directory for the
/// session's streams and state files.
fn session_command(dir: &Path, script: &str, io: &Path) -> Command {
    let mut c = util::env().command(test_exe());
    c.args([
        "--exact",
        "ownership::child_session",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_VAR, io)
    .env("NSROOT_IT_SCRIPT", script)
    .env("NSROOT_IT_CWD", dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// A session's result.
struct Session {
    status: i32,
    stdout: String,
    stderr: String,
    store: Store,
}

/// Runs `sh -c script` in `dir` under the supervisor, starting from `store`.
fn session(dir: &Path, script: &str, store: &Store) -> Session {
    let io = Scratch::new();
    store.save(&io.path().join("in")).unwrap();
    io.chown_all();
    let out = session_command(dir, script, io.path()).output().unwrap();
    let read = |n: &str| std::fs::read_to_string(io.path().join(n)).unwrap_or_default();
    let status = read("status").trim().parse().unwrap_or_else(|_| {
        panic!(
            "the session runner failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            util::stdout(&out),
            util::stderr(&out)
        )
    });
    let s = Session {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
        store: Store::load(&io.path().join("out")).unwrap(),
    };
    eprintln!(
        "script: {script}\nstatus {}\nstdout:\n{}stderr:\n{}",
        s.status, s.stdout, s.stderr
    );
    s
}

/// `session`, asserting success.
#[track_caller]
fn ok_session(dir: &Path, script: &str, store: &Store) -> Session {
    let s = session(dir, script, store);
    assert_eq!(
        s.status, 0,
        "script failed: {script}\nstderr:\n{}",
        s.stderr
    );
    s
}

/// The body of a session, run in a fresh process of this binary by `session` (ignored
/// otherwise). Streams, exit status and the final store go to files in $NSROOT_IT_CHILD_DIR.
#[test]
#[ignore = "helper process of the ownership tests"]
fn child_session() {
    let Some(io) = std::env::var_os(CHILD_VAR).map(PathBuf::from) else {
        return;
    };
    let script = std::env::var("NSROOT_IT_SCRIPT").unwrap();
    let cwd = std::env::var("NSROOT_IT_CWD").unwrap();
    let store = Store::load(&io.join("in")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(&cwd)
        .env_remove(CHILD_VAR)
        .env("NSROOT_IT_EXE", std::env::current_exe().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, store) = ownership::run_supervised(&mut cmd, store).unwrap();
    std::fs::write(io.join("stdout"), &out.stdout).unwrap();
    std::fs::write(io.join("stderr"), &out.stderr).unwrap();
    store.save(&io.join("out")).unwrap();
    std::fs::write(
        io.join("status"),
        out.status.code().unwrap_or(128).to_string(),
    )
    .unwrap();
}

fn ids() -> String {
    let env = util::env();
    format!("{}:{}", env.uid, env.gid)
}

#[test]
fn emulation_is_available() {
    ownership::emulation_available().unwrap();
}

#[test]
fn chown_then_stat_ls_find_show_recorded_owner() {
    let sc = Scratch::new();
    let s = ok_session(
        sc.path(),
        "touch f && chown 33:33 f && stat -c %u:%g f && ls -ln f | awk '{print $3\":\"$4}' \
         && find . -name f -printf '%U:%G\\n' && chgrp 44 f && stat -c %u:%g f",
        &Store::new(),
    );
    assert_eq!(s.stdout, "33:33\n33:33\n33:33\n33:44\n");
    // On disk the file stays the user's, who can always delete it.
    let m = std::fs::metadata(sc.path().join("f")).unwrap();
    assert_eq!(format!("{}:{}", m.uid(), m.gid()), ids());
    assert_eq!(s.store.len(), 1);
}
