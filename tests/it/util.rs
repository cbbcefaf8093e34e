//! The test harness: the unprivileged runner, scratch directories and skip rules.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The user the tests drop to when the suite runs as root.
pub const TEST_USER_VAR: &str = "NSROOT_TEST_USER";
/// Default name of that user (`.ci/run` creates it).
pub const DEFAULT_TEST_USER: &str = "nsroot-test";

/// Facts about the test run, computed once.
pub struct Env {
    /// nsroot binary, copied to a world-readable place when the suite runs as root.
    pub bin: PathBuf,
    /// The uid nsroot runs as in namespace tests: never 0.
    pub uid: u32,
    pub gid: u32,
    /// Some(name) when the suite runs as root and drops to this user.
    pub drop_to: Option<String>,
    /// Why namespace tests cannot run here, if they cannot.
    pub userns_unavailable: Option<String>,
    /// A world-readable directory that lives as long as the test run.
    pub root_dir: PathBuf,
}

/// True when NSROOT_TEST_STRICT=1: every skip becomes a failure.
pub fn strict() -> bool {
    std::env::var("NSROOT_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// Skips (returns true after printing why) or, in strict mode, fails the test.
pub fn skip(reason: &str) -> bool {
    if strict() {
        panic!("NSROOT_TEST_STRICT=1 and this test would skip: {reason}");
    }
    eprintln!("SKIP: {reason}");
    true
}

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(user).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The shared test environment.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let root_dir = std::env::temp_dir().join(format!("nsroot-it-{}", std::process::id()));
        std::fs::create_dir_all(&root_dir).unwrap();
        std::fs::set_permissions(&root_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let built = PathBuf::from(env!("CARGO_BIN_EXE_nsroot"));
        let (bin, uid, gid, drop_to) = if euid == 0 {
            let user =
                std::env::var(TEST_USER_VAR).unwrap_or_else(|_| DEFAULT_TEST_USER.to_string());
            let (Some(uid), Some(gid)) = (id_of("-u", &user), id_of("-g", &user)) else {
                let reason = format!(
                    "the suite runs as root and the unprivileged test user {user:?} does not \
                     exist (create it with `useradd -m {user}` or set {TEST_USER_VAR})"
                );
                return Env {
                    bin: built,
                    uid: 0,
                    gid: 0,
                    drop_to: None,
                    userns_unavailable: Some(reason),
                    root_dir,
                };
            };
            // The checkout may sit under a directory the test user cannot enter.
            let bin = root_dir.join("nsroot");
            std::fs::copy(&built, &bin).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            (bin, uid, gid, Some(user))
        } else {
            // SAFETY: geteuid/getegid have no preconditions and cannot fail.
            (built, euid, unsafe { libc::getegid() }, None)
        };
        let mut env = Env {
            bin,
            uid,
            gid,
            drop_to,
            userns_unavailable: None,
            root_dir,
        };
        env.userns_unavailable = probe_userns(&env);
        env
    })
}

fn probe_userns(env: &Env) -> Option<String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Some("user namespaces are off (/proc/sys/user/max_user_namespaces = 0)".into());
    }
    let out = env
        .command("unshare")
        .args(["--user", "--map-root-user", "true"])
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "unprivileged user namespaces do not work here: unshare says {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare to probe user namespaces: {e}")),
    }
}

impl Env {
    /// A command that runs `program` as the unprivileged test uid.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.drop_to {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", self.uid))
                    .arg(format!("--regid={}", self.gid))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(program);
                c.env("USER", user).env("LOGNAME", user);
                c
            }
            None => Command::new(program),
        }
    }

    /// A command that runs nsroot as the unprivileged test uid.
    pub fn nsroot(&self) -> Command {
        self.command(&self.bin)
    }
}

/// Returns true (after printing why, or panicking in strict mode) when namespace tests must
/// skip. Use as `if util::no_userns() { return; }`.
pub fn no_userns() -> bool {
    match &env().userns_unavailable {
        Some(reason) => skip(reason),
        None => false,
    }
}

/// Returns true (after printing why) when `tool` is not on PATH and the test must skip.
pub fn missing_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        false
    } else {
        skip(&format!("host tool {tool} is not installed"))
    }
}

/// Builds the C program `source` (written to `src` in the scratch dir once) as `name` with
/// `cc -O1 -Wall -Werror` and `flags`; false (after a skip) when `cc` is missing or cannot
/// build it here (no `-static` libc, no multilib).
pub fn build_c(
    sc: &Scratch,
    src: &str,
    source: &str,
    cc: &str,
    flags: &[&str],
    name: &str,
) -> bool {
    if missing_tool(cc) {
        return false;
    }
    let path = sc.path().join(src);
    if !path.exists() {
        sc.write(src, source);
    }
    let out = Command::new(cc)
        .args(["-O1", "-Wall", "-Werror"])
        .args(flags)
        .arg("-o")
        .arg(sc.path().join(name))
        .arg(&path)
        .output()
        .unwrap();
    if !out.status.success() {
        skip(&format!(
            "{cc} {flags:?} cannot build {src} here: {}",
            stderr(&out).lines().next().unwrap_or_default()
        ));
        return false;
    }
    sc.chown_all();
    true
}

/// A scratch directory owned by the test uid, removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let env = env();
        let dir = tempfile::Builder::new()
            .prefix("scratch-")
            .tempdir_in(&env.root_dir)
            .unwrap();
        if env.drop_to.is_some() {
            chown(dir.path(), env.uid, env.gid);
        }
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (as the test uid's) with `contents`.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        self.chown_all();
        p
    }

    /// Gives everything under the scratch dir to the test uid (after the suite, as root, wrote
    /// fixtures into it).
    pub fn chown_all(&self) {
        let env = env();
        if env.drop_to.is_some() {
            for e in walkdir::WalkDir::new(self.path()) {
                chown(e.unwrap().path(), env.uid, env.gid);
            }
        }
    }

    /// Runs `sh -c script` as the test uid in this directory.
    pub fn sh(&self, script: &str) -> Output {
        env()
            .command("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.path())
            .output()
            .unwrap()
    }

    /// Runs nsroot with `args` as the test uid in this directory.
    pub fn nsroot<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        env()
            .nsroot()
            .args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Files made inside a namespace may be read-only directories: make them removable.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwX")
            .arg(self.path())
            .status();
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// stdout as a String.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a String.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams when it fails.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The repository root (for fixtures under tests/ and recipes/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shell snippet for a [`Terminal`] command line: prints `foreground-is-back` when the
/// shell running the line holds the terminal's foreground again (after an nsroot that gave it
/// to an interactive shell of its own has ended).
pub const FG_CHECK: &str = r#"[ "$(ps -o tpgid= -p $$ | tr -d ' ')" = "$(ps -o pgid= -p $$ | tr -d ' ')" ] && echo foreground-is-back"#;

/// A shell command line run on a pseudo-terminal (util-linux `script -q -e`) as the test user,
/// its output collected as it comes: for what only a terminal does (Ctrl-C, Ctrl-Z, job
/// control, an interactive shell).
///
/// util-linux `script` sometimes drops input that arrives while its child starts up, so the
/// typing methods repeat their input, as a user would, until the expected answer shows up.
pub struct Terminal {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    /// Starts `command` (a `sh -c` line) on a terminal in `dir`, with `envs` added.
    pub fn start(command: &str, dir: &Path, envs: &[(&str, &OsStr)]) -> Terminal {
        let mut cmd = env().command("script");
        cmd.args(["-q", "-e", "-c", command, "/dev/null"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let mut pipe = child.stdout.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&out);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            child,
            stdin,
            out,
            reader: Some(reader),
        }
    }

    /// Everything the terminal showed so far.
    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Types `input` once.
    pub fn type_once(&mut self, input: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = std::io::Write::write_all(stdin, input);
            let _ = std::io::Write::flush(stdin);
        }
    }

    /// Waits up to `secs` seconds for `marker` to show up; panics with the output if not.
    pub fn wait_for(&self, marker: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.text().contains(marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {marker:?} on the terminal: {:?}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Types `input`, again every 400 ms, until `marker` shows up (at most 20 s). Choose a
    /// marker the terminal's echo of `input` cannot contain (e.g. computed by `$((40+2))`).
    pub fn type_until(&mut self, input: &[u8], marker: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.text().contains(marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {marker:?} on the terminal: {:?}",
                self.text()
            );
            self.type_once(input);
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }

    /// Presses `key` every 300 ms until the command line has ended, for at most `secs`
    /// seconds; returns how long that took.
    pub fn press_until_exit(&mut self, key: &[u8], secs: u64) -> std::time::Duration {
        let start = std::time::Instant::now();
        while self.child.try_wait().unwrap().is_none()
            && start.elapsed() < std::time::Duration::from_secs(secs)
        {
            self.type_once(key);
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        start.elapsed()
    }

    /// Closes the input, waits for the end, and returns the exit status and the whole output.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.text())
    }
}
