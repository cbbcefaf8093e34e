//! pid 1 of the sandbox's pid namespace: performs the mount plan, runs each step's command,
//! reaps orphans and forwards signals. It never returns: it ends in `_exit`, after telling the
//! outer process how things went over the channel.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::channel::{InitMsg, Sender};
use super::{mounts, Output, Spec, Step};
use crate::ownership;
use crate::sys::{self, CloneFlags, Errno, SigSet, Signal};

/// pid 1's body. `mask` is the blocked signal set inherited from the outer process.
/// `tty_fg`: the outer process holds the terminal's foreground (on fd 0), so an interactive
/// step may be given it.
pub fn main(
    spec: Spec,
    mut tx: Sender<InitMsg>,
    mask: &SigSet,
    listener_sock: Option<UnixStream>,
    tty_fg: bool,
) -> ! {
    // Die with the outer process (the kernel then kills the whole namespace). If it died
    // before the prctl took effect, its end of the channel is already closed: leave now.
    if sys::set_parent_death_signal(Signal::SIGKILL).is_err()
        || sys::poll_readable(&[tx.fd()], 0)
            .map(|r| r[0])
            .unwrap_or(true)
    {
        sys::exit_now(1);
    }
    // Nothing the outer process holds may stay within a step's reach through /proc/1/fd: the
    // host's /proc (the supervisor's), the supervisor's socket, lock files, the caller's
    // files. Kept: stdio, the channel, the listener's socket, the log. Run mode keeps what the
    // caller passed on (the descriptors not marked close-on-exec: a jobserver, say), which the
    // command inherits by design.
    let mut keep = vec![0, 1, 2, tx.fd().as_raw_fd()];
    keep.extend(listener_sock.as_ref().map(|s| s.as_raw_fd()));
    if let Output::To(fd) = &spec.output {
        keep.push(fd.as_raw_fd());
    }
    // SAFETY: pid 1 holds no owner of a descriptor outside `keep` that it uses afterwards, and
    // leaves through `_exit`, so none is ever dropped.
    if let Err(e) = unsafe { sys::close_fds_except(&keep, !spec.close_fds) } {
        fail(&mut tx, crate::error::chain(&e));
    }
    let sigfd = match sys::signalfd(mask) {
        Ok(fd) => fd,
        Err(e) => fail(&mut tx, crate::error::chain(&e)),
    };
    if let Err(e) = sys::unshare(CloneFlags::CLONE_NEWNS) {
        fail(&mut tx, crate::error::chain(&e));
    }
    match mounts::execute(&spec.plan.mounts) {
        Ok(warnings) => {
            for w in warnings {
                tx.tell(&InitMsg::Warning(w));
            }
        }
        Err(e) => fail(&mut tx, crate::error::chain(&e)),
    }
    // Not dumpable: our /proc files (fd, environ, mem, root, cwd) then belong to the host's
    // root, the user namespace our memory was created in, where the steps have no
    // CAP_SYS_PTRACE. After the mounts: a locking user namespace needs us to write our own
    // id maps first. Each step's exec makes it dumpable again.
    if let Err(e) = sys::set_dumpable(false) {
        fail(&mut tx, crate::error::chain(&e));
    }
    // What every command inherits from us, set once: the umask, the working directory (a
    // failure there is each step's "cannot execute"), and in build mode nothing above 2
    // (marked close-on-exec: we keep using ours).
    if let Some(mask) = spec.umask {
        sys::set_umask(mask);
    }
    // A fresh session keyring: the caller's keys are not the build's to read, and what a step
    // adds dies with the sandbox. Where a seccomp policy forbids keyctl (ENOSYS), it forbids
    // it the steps too.
    if spec.sealed {
        if let Err(e) = sys::join_new_session_keyring() {
            if e.errno != Errno::ENOSYS {
                fail(&mut tx, crate::error::chain(&e));
            }
        }
    }
    let mut setup_error = spec
        .cwd
        .as_ref()
        .and_then(|dir| sys::chdir(dir).err().map(|e| e.errno));
    if spec.close_fds {
        if let Err(e) = sys::cloexec_fds_from(3) {
            fail(&mut tx, crate::error::chain(&e));
        }
    }
    let env = match spec
        .env
        .iter()
        .map(|v| sys::cstring(v))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(env) => env,
        Err(e) => {
            setup_error.get_or_insert(e);
            Vec::new()
        }
    };
    // Look every command up on PATH now (relative entries from the working directory, as a
    // shell would), before the filter: each stat after it would be a round trip to the
    // supervisor.
    let paths: Vec<Option<OsString>> = spec
        .steps
        .iter()
        .map(|s| resolve(&s.argv[0], &spec.env))
        .collect();
    let shell_path = spec
        .on_failure
        .as_ref()
        .and_then(|s| resolve(&s.argv[0], &spec.env));
    let launch = Launch {
        spec: &spec,
        env: &env,
        setup_error,
        sigfd: &sigfd,
        tty_fg,
    };
    // Ownership emulation covers pid 1 and so every step: the filter goes on last, after the
    // mounts, and its listener to the outer process's supervisor.
    if let Some(sock) = listener_sock {
        match ownership::install_filter() {
            Ok(listener) => {
                if let Err(e) = ownership::send_fd(sock.as_fd(), &listener) {
                    fail(
                        &mut tx,
                        format!("send the seccomp listener: {}", crate::error::chain(&e)),
                    );
                }
            }
            Err(e) => fail(&mut tx, crate::error::chain(&e)),
        }
    }
    tx.tell(&InitMsg::Ready);

    let mut code = 0;
    for (index, step) in spec.steps.iter().enumerate() {
        if let Output::To(fd) = &spec.output {
            // A header per step, so the log says which output came from where.
            let _ = sys::write_fd(fd.as_fd(), format!("==> {}\n", step.name).as_bytes());
        }
        let ran = launch.run_step(step, paths[index].as_deref());
        code = ran.code;
        tx.tell(&InitMsg::StepExited {
            index,
            code,
            exec_error: ran.exec_error,
        });
        if spec.sealed {
            kill_all_but_me();
        }
        if ran.interrupted {
            tx.tell(&InitMsg::Interrupted);
            break;
        }
        if code != 0 {
            for mount in &spec.watched_mounts {
                if sys::filesystem_full(mount) {
                    tx.tell(&InitMsg::Full(mount.clone()));
                }
            }
            if let Some(shell) = &spec.on_failure {
                let _ = launch.run_step(shell, shell_path.as_deref());
            }
            break;
        }
    }
    sys::exit_now(code)
}

/// How one step ended.
struct Ran {
    /// Its status (128+N for signal N; 127/126 when it could not be executed).
    code: i32,
    /// Why it never started.
    exec_error: Option<String>,
    /// An interrupting signal came while it ran (sealed mode), and every step was killed.
    interrupted: bool,
}

fn fail(tx: &mut Sender<InitMsg>, message: String) -> ! {
    tx.tell(&InitMsg::Failed { message, code: 1 });
    sys::exit_now(1)
}

/// Kills every other process of the namespace (`kill(-1)` from pid 1 reaches all of them) and
/// reaps them.
fn kill_all_but_me() {
    // SIGKILL cannot be caught: nothing started by a step survives into the next one.
    let _ = sys::kill(sys::Pid::from_raw(-1), Signal::SIGKILL as i32);
    while let Ok(Some(_)) = sys::try_wait(None) {}
}

/// What pid 1 starts every step with.
struct Launch<'a> {
    spec: &'a Spec,
    /// The environment, as C strings, built once.
    env: &'a [CString],
    /// Why no step can start (the working directory is missing, say), as an exec error.
    setup_error: Option<Errno>,
    sigfd: &'a sys::SignalFd,
    /// We are in the terminal's foreground process group (on fd 0).
    tty_fg: bool,
}

impl Launch<'_> {
    /// Starts one step, then supervises it: forwards signals a process sent us, reaps every
    /// orphan, and returns the step's status once it exits (128+N for signal N), with a message
    /// when it could not be executed at all (status 127 when not found, 126 otherwise).
    fn run_step(&self, step: &Step, path: Option<&OsStr>) -> Ran {
        let child = match self.start(step, path) {
            Ok(pid) => pid,
            Err(errno) => {
                let name = sys::display_os(step.argv[0].as_os_str());
                let (code, exec_error) = match errno {
                    Errno::ENOENT => (127, format!("{name}: command not found")),
                    e => (126, format!("{name}: cannot execute: {}", e.desc())),
                };
                return Ran {
                    code,
                    exec_error: Some(exec_error),
                    interrupted: false,
                };
            }
        };
        // Sealed steps are in sessions of their own, out of the terminal's reach: a Ctrl-C, or
        // SIGINT/SIGTERM/SIGHUP from a process (a CI runner's cancel), comes to us alone and
        // stops the build. A shell waiting for its foreground child would ignore SIGINT, so
        // nothing is asked: every process of the namespace is killed.
        let sealed_step = self.spec.sealed && !step.interactive;
        let mut interrupted = false;
        loop {
            if sys::poll_readable(&[self.sigfd.as_fd()], -1).is_err() {
                continue;
            }
            let mut status = None;
            while let Ok(Some(si)) = sys::read_signal(self.sigfd) {
                if si.signo == Signal::SIGCHLD as i32 {
                    // Reap everything: orphans of the namespace are re-parented to us.
                    while let Ok(Some(st)) = sys::try_wait(None) {
                        if st.pid() == Some(child) {
                            status = sys::exit_code(&st);
                        }
                    }
                } else if sealed_step && super::INTERRUPTING.iter().any(|s| *s as i32 == si.signo) {
                    interrupted = true;
                    let _ = sys::kill(sys::Pid::from_raw(-1), Signal::SIGKILL as i32);
                } else if !si.from_kernel || sealed_step {
                    let _ = sys::kill(child, si.signo);
                }
            }
            if let Some(code) = status {
                return Ran {
                    code,
                    exec_error: None,
                    interrupted,
                };
            }
        }
    }

    /// Spawns the step's command (the resolved `path`, showing its own name as argv[0]), with
    /// stdin and output redirected unless it is the interactive shell.
    fn start(&self, step: &Step, path: Option<&OsStr>) -> Result<sys::Pid, Errno> {
        if let Some(e) = self.setup_error {
            return Err(e);
        }
        let prog = sys::cstring(path.ok_or(Errno::ENOENT)?)?;
        let argv = step
            .argv
            .iter()
            .map(|a| sys::cstring(a))
            .collect::<Result<Vec<_>, _>>()?;
        let interactive = step.interactive;
        let setup = sys::SpawnSetup {
            stdin_null: self.spec.stdin_null && !interactive,
            output: match &self.spec.output {
                Output::To(fd) if !interactive => Some(fd.as_fd()),
                _ => None,
            },
            own_group: interactive && self.tty_fg,
            new_session: self.spec.sealed && !interactive,
        };
        let pid = sys::spawn(&prog, &argv, self.env, &setup)?;
        if setup.own_group {
            // The shell may have looked before this and stopped itself (SIGTTIN) to wait for
            // the foreground: give it the terminal, then let it go on.
            sys::give_terminal_foreground(0, pid);
            let _ = sys::kill(pid, Signal::SIGCONT as i32);
        }
        Ok(pid)
    }
}

/// Finds `name` the way a shell does: a name with a slash is used as is; otherwise
/// [`crate::fsutil::find_on_path`] over the steps' PATH.
fn resolve(name: &OsStr, env: &[OsString]) -> Option<OsString> {
    if name.as_bytes().contains(&b'/') {
        return Some(name.to_owned());
    }
    let path = env
        .iter()
        .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH=").map(OsStr::from_bytes))
        .unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    crate::fsutil::find_on_path(name, path).map(PathBuf::into_os_string)
}
