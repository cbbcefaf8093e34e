//! `nsroot [run]` (and nsroot as `fakeroot`): a command as root in fresh namespaces, or in
//! the session it already runs in.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use crate::cli::{NetMode, RunArgs};
use crate::error::InputError;
use crate::ownership::{self, Store};
use crate::sandbox::plan::{IdMap, Plan};
use crate::sandbox::{idmap, run, Output, Spec, Step, SESSION_VAR};
use crate::sys;

/// `nsroot [run]`: runs the command as root in fresh namespaces, returns its exit status.
/// Inside a session that records ownership, the command joins it instead: it runs right here,
/// already root, under that session's supervisor, so its chowns are the outer session's
/// records (as under fakeroot's FAKEROOTKEY), and nothing is namespaced a second time.
pub fn run_command(args: &RunArgs) -> anyhow::Result<i32> {
    reject_fakeroot_only_options(args)?;
    let argv = if args.command.is_empty() {
        vec![std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into())]
    } else {
        args.command.clone()
    };
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != "NSROOT" && k != SESSION_VAR)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    env.push("NSROOT=1".into());
    let store = match session_store(args)? {
        SessionStore::Join(key) => {
            env.push(format!("{SESSION_VAR}={key}").into());
            if args.verbose {
                eprintln!("nsroot: joining the session {key} (its namespaces and records)");
            }
            return Ok(exec_in_place(&argv, &env));
        }
        SessionStore::New(store) => store,
    };
    env.push(format!("{SESSION_VAR}={}", std::process::id()).into());
    let (uid, gid) = sys::ids();
    let id_map = if args.map_auto {
        idmap::auto_map(uid, gid)?
    } else {
        IdMap::Single { uid, gid }
    };
    let plan = Plan::for_run(
        id_map,
        args.net == Some(NetMode::None),
        args.hostname.clone(),
    );
    if args.verbose {
        eprint!("{plan}");
    }
    let spec = Spec {
        emulation: store.clone(),
        plan,
        steps: vec![Step {
            name: sys::display_os(&argv[0]),
            argv,
            interactive: args.command.is_empty(),
        }],
        on_failure: None,
        env,
        cwd: None,
        umask: None,
        close_fds: false,
        stdin_null: false,
        output: Output::Inherit,
        sealed: false,
        watched_mounts: Vec::new(),
    };
    let outcome = run(spec)?;
    for w in &outcome.warnings {
        eprintln!("nsroot: warning: {w}");
    }
    if let (Some(path), Some(store)) = (&args.save_file, store) {
        store.lock().unwrap_or_else(|p| p.into_inner()).save(path)?;
    }
    Ok(outcome.code)
}

/// Replaces this process with `argv` (looked up on PATH) and `env`; returns only when that
/// fails, with a shell's status: 127 for a command not found, 126 for one that cannot run.
fn exec_in_place(argv: &[OsString], env: &[OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear();
    for kv in env {
        use std::os::unix::ffi::OsStrExt;
        let b = kv.as_bytes();
        if let Some(eq) = b.iter().position(|&c| c == b'=') {
            cmd.env(
                std::ffi::OsStr::from_bytes(&b[..eq]),
                std::ffi::OsStr::from_bytes(&b[eq + 1..]),
            );
        }
    }
    let err = cmd.exec();
    let name = sys::display_os(&argv[0]);
    if err.kind() == std::io::ErrorKind::NotFound {
        eprintln!("nsroot: {name}: command not found");
        127
    } else {
        eprintln!("nsroot: {name}: cannot execute: {err}");
        126
    }
}

/// Where a run-mode session's records go.
enum SessionStore {
    /// Into the store of the session we run in already, served by its supervisor (its key).
    Join(String),
    /// A session of our own: this store (loaded from `-i`, or empty), or none without
    /// emulation.
    New(Option<Arc<Mutex<Store>>>),
}

/// The store of a run-mode session: loaded from `-i`, or empty; none when emulation is off
/// (`--no-emulate`, `--map-auto` where chown is real); the outer session's inside another
/// session that records ownership, unless this call asks for namespaces of its own (`--net`,
/// `--hostname`), which then run under the outer supervisor.
fn session_store(args: &RunArgs) -> anyhow::Result<SessionStore> {
    let state = args.save_file.is_some() || args.load_file.is_some();
    if args.no_emulate || args.map_auto {
        if state {
            return Err(InputError::new(
                "-s/-i need ownership emulation, which --no-emulate and --map-auto turn off",
            )
            .into());
        }
        // No need to ask whether an outer supervisor is there (a round trip to it if so).
        return Ok(SessionStore::New(None));
    }
    if let Some(key) = ownership::session_key() {
        if state {
            return Err(InputError::new(
                "-s/-i: this nsroot runs inside another nsroot session, whose supervisor \
                 records ownership for both; give -s/-i to the outer nsroot",
            )
            .into());
        }
        if args.net.is_none() && args.hostname.is_none() {
            return Ok(SessionStore::Join(key));
        }
        return Ok(SessionStore::New(None));
    }
    if let Some(path) = &args.save_file {
        // Found only after the command ran, a bad path would lose the whole session's records.
        check_writable(path)?;
    }
    let store = match &args.load_file {
        // fakeroot -i on a missing file is an error too.
        Some(path) => Store::load(path)?,
        None => Store::new(),
    };
    Ok(SessionStore::New(Some(Arc::new(Mutex::new(store)))))
}

fn reject_fakeroot_only_options(args: &RunArgs) -> Result<(), InputError> {
    let unsupported = [
        (
            args.fakeroot_lib.is_some(),
            "-l/--lib",
            "nsroot preloads no library",
        ),
        (
            args.fakeroot_faked.is_some(),
            "--faked",
            "nsroot runs no faked daemon",
        ),
        (
            args.fakeroot_fd.is_some(),
            "-b",
            "nsroot runs no faked daemon to talk to",
        ),
    ];
    match unsupported.iter().find(|(given, ..)| *given) {
        Some((_, opt, why)) => Err(InputError::new(format!(
            "fakeroot option {opt} has no meaning for nsroot ({why}); drop it"
        ))),
        None => Ok(()),
    }
}

/// Refuses a `-s` path that cannot take the state file's atomic rename: a directory, a
/// device or FIFO (`/proc/self/fd/1`), a mount point, or in a missing, read-only or file-less
/// (`/proc`) directory ([`crate::fsutil::AtomicFile::check`]).
fn check_writable(path: &std::path::Path) -> Result<(), InputError> {
    crate::fsutil::AtomicFile::check(path).map_err(|e| {
        InputError::new(format!(
            "-s {}: {}",
            path.display(),
            crate::error::chain(&e)
        ))
    })
}
