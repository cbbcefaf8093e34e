//! The sandbox: namespaces, id maps and the process tree.
//!
//! Three processes (ARCHITECTURE.md draws them): the **outer** process (nsroot itself) unshares
//! the namespaces, writes the id maps, forks **pid 1** of the new pid namespace and then only
//! forwards signals and waits; pid 1 performs the mount plan, runs each step's **command** in
//! turn, reaps orphans and forwards signals. When pid 1 exits the kernel kills whatever is left
//! in the namespace, and pid 1 dies with the outer process (PR_SET_PDEATHSIG).

pub mod channel;
pub mod diagnose;
pub mod idmap;
mod init;
pub mod mounts;
pub mod plan;

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use channel::InitMsg;
use plan::{IdMap, Plan};

use crate::ownership::{self, Store};
use crate::sys::{self, CloneFlags, SigSet, Signal};

/// Signals the outer process and pid 1 pass on to the command when a process (not the
/// terminal, which already signals the whole foreground process group) sends them.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The signals that ask a build to stop, which [`run_in_child`] hands back to its caller.
pub(crate) const INTERRUPTING: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// [`FORWARDED`] and SIGCHLD: what the outer processes block and read from a signalfd.
fn forwarded_mask() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    mask
}

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// Unprivileged user namespaces are unavailable: the message says which knob and the fix.
    #[error("cannot create a user namespace: {0}")]
    NoUserns(String),
    /// `--map-auto` cannot be honoured.
    #[error("--map-auto: {0}")]
    MapAuto(String),
    /// The sandbox's process (see [`run_in_child`]) failed; the message is its whole chain.
    #[error("{0}")]
    Child(String),
    /// pid 1 failed to set the sandbox up.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The channel to pid 1 broke.
    #[error("channel to pid 1")]
    Channel(#[from] std::io::Error),
    /// Ownership emulation failed.
    #[error("ownership emulation")]
    Ownership(#[from] ownership::OwnershipError),
}

/// Where a command's output goes.
#[derive(Debug)]
pub enum Output {
    /// nsroot's own stdout and stderr.
    Inherit,
    /// Both streams to this descriptor (a log pipe or file).
    To(OwnedFd),
}

/// One command pid 1 runs.
#[derive(Debug, Clone)]
pub struct Step {
    /// A name for messages (`step 2 of [build]`).
    pub name: String,
    /// argv; argv[0] is looked up in PATH.
    pub argv: Vec<OsString>,
    /// An interactive shell: the caller's stdio as is, and, when nsroot runs in the
    /// foreground of a terminal, the terminal's foreground process group of its own.
    pub interactive: bool,
}

/// What to run and how: the plan plus the commands and their process environment.
#[derive(Debug)]
pub struct Spec {
    pub plan: Plan,
    /// Commands run in order by pid 1; the first failure stops the sequence.
    pub steps: Vec<Step>,
    /// Run after a failed step, with the terminal (`--shell-on-failure`).
    pub on_failure: Option<Step>,
    /// The full environment of each command (`NAME=value`).
    pub env: Vec<OsString>,
    /// Working directory of each command (after the mount plan); None keeps the caller's.
    pub cwd: Option<PathBuf>,
    /// umask of each command; None keeps the caller's.
    pub umask: Option<u32>,
    /// Close every descriptor above 2 before exec (build mode); run mode keeps them, as make's
    /// jobserver needs.
    pub close_fds: bool,
    /// Give each command /dev/null as stdin.
    pub stdin_null: bool,
    /// Where output goes.
    pub output: Output,
    /// Build mode's seal on the steps: each starts in a new session with no controlling
    /// terminal; pid 1 joins a fresh session keyring before the first (the caller's keys stay
    /// out of reach, and what a step adds dies with the sandbox); every process left in the
    /// namespace is killed after each step; and an interrupting signal (SIGINT, SIGTERM,
    /// SIGHUP), from the terminal or a process, kills every step and ends the sequence. The
    /// interactive shell of `on_failure` alone keeps the caller's terminal. Run mode is
    /// fakeroot's: the caller's session, terminal and keyring.
    pub sealed: bool,
    /// tmpfs mounts whose filling up explains a failed step: pid 1 reports each one found full
    /// after a failure (see [`Outcome::full`]).
    pub watched_mounts: Vec<PathBuf>,
    /// Record chown/mknod/xattr calls into this store and answer stat from it (seccomp user
    /// notification); None runs without emulation.
    pub emulation: Option<Arc<Mutex<Store>>>,
}

/// How a sandbox run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Exit status of each step that ran, in order (128+N for signal N).
    pub steps: Vec<i32>,
    /// The status nsroot should exit with.
    pub code: i32,
    /// Warnings pid 1 sent.
    pub warnings: Vec<String>,
    /// Watched mounts found full after a step failed ([`Spec::watched_mounts`]).
    pub full: Vec<PathBuf>,
    /// The sequence was stopped by an interrupting signal (sealed mode).
    pub interrupted: bool,
    /// Why the kernel refused the plan's clock offset ([`Plan::time_offset_secs`]), when it
    /// did: the steps then ran with the host's clocks.
    pub clocks_refused: Option<String>,
}

/// The variable that names the session a process runs in, as fakeroot's does: scripts test it
/// (makepkg, abuild), and a nested nsroot or `fakeroot` joins the session it names. Its value
/// is the pid of the nsroot that serves the session (fixed in build mode, see build.rs).
pub const SESSION_VAR: &str = "FAKEROOTKEY";

/// Runs `spec`: creates the namespaces, runs the steps, returns how they ended.
///
/// Must be called while the process is single-threaded (unshare(CLONE_NEWUSER) refuses
/// multi-threaded callers). Returns with [`FORWARDED`] still blocked: the caller is left in the
/// sandbox's user namespace and should only report and exit, and a terminal signal that comes
/// in late (a second Ctrl-C after the command ended, which already reached the command's group)
/// must not kill it between the command's exit and its own, turning status 130 into a death
/// by SIGINT.
pub fn run(mut spec: Spec) -> Result<Outcome, SandboxError> {
    let (uid, gid) = match spec.plan.id_map {
        IdMap::Single { uid, gid } | IdMap::Auto { uid, gid, .. } => (uid, gid),
    };
    // --map-auto: newuidmap must run from the parent user namespace, so a helper is forked
    // before we unshare and told when to map us (as util-linux unshare --map-auto does).
    let map_helper = match &spec.plan.id_map {
        IdMap::Auto { .. } => Some(spawn_map_helper(&spec.plan.id_map)?),
        IdMap::Single { .. } => None,
    };

    // Run mode (the host's files, descriptors kept) with emulation: the preload library's
    // fast path (ownership::fastpath), written out while we are still the caller's uid.
    let preload_dir = match &spec.emulation {
        Some(_) if !spec.sealed && !spec.close_fds => ownership::fastpath::prepare(&spec.env),
        _ => None,
    };

    // The user namespace first, alone: unshare(CLONE_NEWUSER) refuses multi-threaded callers,
    // and after unshare(CLONE_NEWPID) a process can no longer create threads, so the
    // supervisor thread must start in between.
    if let Err(e) = sys::unshare(CloneFlags::CLONE_NEWUSER) {
        return Err(SandboxError::NoUserns(diagnose::unshare_failure(e.errno)));
    }
    match map_helper {
        Some(MapHelper {
            mut go,
            mut done,
            pid,
        }) => {
            go.send(&())?;
            let answer = done.recv();
            let st = sys::wait(pid)?;
            match answer? {
                Some(Ok(())) => {}
                Some(Err(why)) => return Err(SandboxError::MapAuto(why)),
                None => return Err(SandboxError::MapAuto(format!("the helper died ({st:?})"))),
            }
        }
        None => idmap::write_self_map(uid, gid).map_err(|e| match e {
            SandboxError::Sys(e) => SandboxError::NoUserns(diagnose::map_failure(&e)),
            other => other,
        })?,
    }

    // The clock offset: a time namespace for our children, its offsets written now, before
    // pid 1 (the first process in it) is forked, as the kernel requires (time_namespaces(7)).
    // It is a variation, not isolation: where the kernel refuses it (before 5.6, or a
    // container's seccomp policy), the sandbox runs with the host's clocks and says so.
    let mut warnings = Vec::new();
    let mut clocks_refused = None;
    if let Some(secs) = spec.plan.time_offset_secs {
        if let Err(e) = sys::unshare_time().and_then(|()| sys::set_time_offsets(secs)) {
            let why = match e.errno {
                sys::Errno::EINVAL => "time namespaces need Linux 5.6 with CONFIG_TIME_NS",
                sys::Errno::ENOSPC => "raise /proc/sys/user/max_time_namespaces",
                sys::Errno::EPERM | sys::Errno::EACCES => "a security policy forbids them",
                _ => "the kernel refused",
            };
            let refused = format!("{e}: {why}");
            warnings.push(format!(
                "the clocks could not be shifted by {secs} s ({refused}); CLOCK_MONOTONIC \
                 and CLOCK_BOOTTIME are the host's"
            ));
            clocks_refused = Some(refused);
        }
    }

    // An interactive step gets the terminal's foreground (its own process group, which its
    // shell can name: the caller's group is outside the new pid namespace, and dash says
    // "Cannot set tty process group" when it cannot give the terminal back on exit). Only
    // when we hold the foreground ourselves; we take it back when the sandbox ends.
    let tty_fg = spec
        .steps
        .iter()
        .chain(&spec.on_failure)
        .any(|s| s.interactive)
        && sys::foreground_of_terminal(0);
    // Block the signals we forward (and SIGCHLD) before any thread or fork, so none is lost
    // and none lands on the supervisor thread; pid 1 inherits the mask and the command gets a
    // clean one.
    let mask = forwarded_mask();
    sys::block_signals(&mask)?;
    let sigfd = sys::signalfd(&mask)?;
    let (tx, mut rx) = channel::pair::<InitMsg>()?;

    // Ownership emulation: pid 1 installs the seccomp filter on itself after the mounts and
    // sends the listener over `theirs`; this thread receives it and serves it. It opens /proc
    // now, while it is the host's: the notifications' pids are in our pid namespace.
    // The fast path's shared table, on the same records; dropped at the end, which folds
    // them back into the store.
    let fast_path = match (&spec.emulation, preload_dir) {
        (Some(store), Some(dir)) => ownership::fastpath::Session::start(store, dir, &mut spec.env),
        _ => None,
    };
    let (supervisor, listener_sock) = match &spec.emulation {
        Some(store) => {
            let (ours, theirs) = UnixStream::pair()?;
            let proc = ownership::open_proc()?;
            let store = Arc::clone(store);
            let handle = std::thread::Builder::new()
                .name("nsroot-supervisor".into())
                .spawn(move || match ownership::recv_fd(ours.as_fd()) {
                    Ok(listener) => ownership::Supervisor::serve(listener, proc, store).map(Some),
                    // pid 1 failed before installing the filter; the channel says why.
                    Err(_) => Ok(None),
                })?;
            (Some(handle), Some(theirs))
        }
        None => (None, None),
    };

    // The mount namespace is pid 1's own (it unshares it first thing): pivot_root moves the
    // root of every process in a mount namespace, and the outer process keeps the host's view.
    let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC;
    if spec.plan.own_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if spec.plan.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    sys::unshare(flags)?;
    if spec.plan.own_network {
        sys::loopback_up()?;
    }
    if let Some(h) = &spec.plan.hostname {
        // A new UTS namespace starts with the old one's name: where a seccomp profile refuses
        // sethostname and the container already has the name asked for, nothing differs.
        if let Err(e) = sys::sethostname(h) {
            if e.errno != sys::Errno::EPERM || sys::hostname() != *h {
                return Err(SandboxError::Setup(diagnose::sethostname_failure(&e, h)));
            }
        }
    }

    // SAFETY: the supervisor thread is blocked in recvmsg and holds no lock; pid 1 ends in
    // `_exit` (init::main never returns).
    let pid1 = match unsafe { sys::fork() }? {
        sys::Forked::Child => {
            drop(rx);
            drop(sigfd);
            init::main(spec, tx, &mask, listener_sock, tty_fg)
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(tx);
    drop(spec.output);
    drop(listener_sock);

    let mut outcome = Outcome {
        steps: Vec::new(),
        code: 1,
        warnings,
        full: Vec::new(),
        interrupted: false,
        clocks_refused,
    };
    let mut failure: Option<String> = None;
    let handle = |msg: InitMsg, outcome: &mut Outcome, failure: &mut Option<String>| match msg {
        InitMsg::Ready => {}
        InitMsg::Warning(w) => outcome.warnings.push(w),
        InitMsg::StepExited {
            code, exec_error, ..
        } => {
            if let Some(e) = exec_error {
                eprintln!("nsroot: {e}");
            }
            outcome.steps.push(code);
        }
        InitMsg::Failed { message, .. } => *failure = Some(message),
        InitMsg::Full(mount) => outcome.full.push(mount),
        InitMsg::Interrupted => outcome.interrupted = true,
    };
    let (status, _) = wait_forwarding(&sigfd, pid1, &mut rx, |rx| match rx.recv()? {
        Some(msg) => {
            handle(msg, &mut outcome, &mut failure);
            Ok(true)
        }
        None => Ok(false),
    })?;
    if tty_fg {
        // A shell that ended leaves the terminal to a group that no longer exists.
        sys::take_terminal_foreground(0);
    }
    if let Some(handle) = supervisor {
        // Returns once no process is left under the filter: pid 1 is gone, so are they all.
        handle
            .join()
            .map_err(|_| ownership::OwnershipError::Panicked)??;
    }
    drop(fast_path);
    if let Some(message) = failure {
        return Err(SandboxError::Setup(message));
    }
    outcome.code = status;
    Ok(outcome)
}

/// Runs `spec` in a forked child and returns its outcome and, with emulation, the records it
/// made, leaving the calling process in the host's namespaces.
///
/// After [`run`] a process is inside the sandbox's user namespace and can neither start
/// threads nor fork (its pid namespace for children is dead); callers that go on working
/// afterwards (a build packs its output on several threads) use this instead. Signals that a
/// process (not the terminal) sends to the caller meanwhile are passed on to the child.
pub fn run_in_child(spec: Spec) -> Result<(Outcome, Option<Store>), SandboxError> {
    let mask = forwarded_mask();
    let old_mask = sys::block_signals(&mask)?;
    let sigfd = sys::signalfd(&mask)?;
    let (mut tx, mut rx) = channel::pair::<Result<Outcome, String>>()?;
    let parent = sys::getpid();
    // SAFETY: the caller's other threads (a build's log copier) hold no lock the child needs
    // (it blocks in read); the child ends in `exit_now`.
    let child = match unsafe { sys::fork() }? {
        sys::Forked::Child => {
            drop(rx);
            drop(sigfd);
            // Die with the caller (and pid 1, and so the whole sandbox, with us): a build
            // killed by SIGKILL must not leave its steps running. If the caller is already
            // gone, the prctl came too late: leave.
            if sys::set_parent_death_signal(Signal::SIGKILL).is_err() || sys::getppid() != parent {
                sys::exit_now(1);
            }
            let store = spec.emulation.clone();
            let result = run(spec).map_err(|e| crate::error::chain(&e));
            // The outcome, then the records as a state file (empty without emulation).
            let records = store
                .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).to_bytes())
                .unwrap_or_default();
            let sent = tx.send(&result).and_then(|()| tx.send_bytes(&records));
            sys::exit_now(if sent.is_ok() { 0 } else { 1 })
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(tx);
    let mut report: Option<(Result<Outcome, String>, Vec<u8>)> = None;
    let waited = wait_forwarding(&sigfd, child, &mut rx, |rx| match rx.recv()? {
        Some(result) => {
            let records = rx.recv_bytes()?.unwrap_or_default();
            report = Some((result, records));
            Ok(true)
        }
        None => Ok(false),
    });
    sys::set_signal_mask(&old_mask)?;
    let (status, interrupt) = waited?;
    if let Some(sig) = interrupt {
        // The first interrupting signal, from a process or the terminal: the steps got it, and
        // now that the mask is restored the caller gets it too (a build's InterruptGuard, or
        // the default action), so that a build stops there instead of reporting "step failed
        // with exit code 130".
        let _ = sys::kill(sys::getpid(), sig);
    }
    let Some((result, records)) = report else {
        return Err(SandboxError::Setup(format!(
            "the sandbox process died without a result (status {status})"
        )));
    };
    let outcome = result.map_err(SandboxError::Child)?;
    let store = if records.is_empty() {
        None
    } else {
        Some(Store::from_bytes(
            &records,
            std::path::Path::new("<sandbox records>"),
        )?)
    };
    Ok((outcome, store))
}

/// Waits for `child` to exit while serving `chan`: `on_readable` reads what is there (false
/// once the peer has closed it), and every signal a process (not the terminal, which already
/// signalled the whole foreground process group, `child`'s included) sends us is passed on to
/// `child`. Once it has exited, reads the channel to its end. Returns its status (128+N for
/// signal N) and the first interrupting signal (SIGINT, SIGTERM, SIGHUP) seen from anyone.
fn wait_forwarding<T>(
    sigfd: &sys::SignalFd,
    child: sys::Pid,
    chan: &mut channel::Receiver<T>,
    mut on_readable: impl FnMut(&mut channel::Receiver<T>) -> std::io::Result<bool>,
) -> Result<(i32, Option<i32>), SandboxError> {
    let mut open = true;
    let mut interrupt = None;
    let status = loop {
        let ready = if open {
            sys::poll_readable(&[sigfd.as_fd(), chan.fd()], -1)?
        } else {
            sys::poll_readable(&[sigfd.as_fd()], -1)?
        };
        if open && ready[1] {
            open = on_readable(chan)?;
        }
        if ready[0] {
            let mut exited = None;
            while let Some(si) = sys::read_signal(sigfd)? {
                if si.signo == Signal::SIGCHLD as i32 {
                    if let Some(st) = sys::try_wait(Some(child))? {
                        exited = sys::exit_code(&st);
                    }
                    continue;
                }
                if INTERRUPTING.iter().any(|s| *s as i32 == si.signo) {
                    interrupt.get_or_insert(si.signo);
                }
                if !si.from_kernel {
                    let _ = sys::kill(child, si.signo);
                }
            }
            if let Some(code) = exited {
                break code;
            }
        }
    };
    while open {
        open = on_readable(chan)?;
    }
    Ok((status, interrupt))
}

/// The process that runs newuidmap/newgidmap for us once we have unshared: told to go, it
/// answers how that went.
struct MapHelper {
    go: channel::Sender<()>,
    done: channel::Receiver<Result<(), String>>,
    pid: sys::Pid,
}

/// Forks the [`MapHelper`] (it stays in the parent user namespace, from where the maps must be
/// written).
fn spawn_map_helper(map: &IdMap) -> Result<MapHelper, SandboxError> {
    let parent = sys::getpid();
    let (go, mut wait_go) = channel::pair::<()>()?;
    let (mut tell, done) = channel::pair::<Result<(), String>>()?;
    // SAFETY: called before the sandbox starts any thread; the child ends in `exit_now`.
    match unsafe { sys::fork() }? {
        sys::Forked::Child => {
            drop((go, done));
            let code = match wait_go.recv() {
                Ok(Some(())) => {
                    let result = idmap::run_map_helpers(parent, map).map_err(|e| e.to_string());
                    i32::from(result.is_err() || tell.send(&result).is_err())
                }
                _ => 1,
            };
            sys::exit_now(code)
        }
        sys::Forked::Parent(pid) => {
            // The child's ends: a helper that dies must show as the channel's end.
            drop((wait_go, tell));
            Ok(MapHelper { go, done, pid })
        }
    }
}
