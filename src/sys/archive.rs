//! Signal handling for `nsroot pack`: turn SIGINT/SIGTERM/SIGHUP into a flag the walk checks,
//! so a partial output file is removed instead of left behind.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The signal that arrived while a guard was installed, or 0.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// How many guards are alive: only the outermost installs and restores handlers.
static DEPTH: AtomicUsize = AtomicUsize::new(0);
/// The dispositions the outermost guard replaced.
static SAVED: Mutex<Vec<(Signal, SigAction)>> = Mutex::new(Vec::new());

extern "C" fn on_signal(sig: libc::c_int) {
    // A second signal means the user insists: die now, as if no handler were installed.
    if PENDING.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: signal() and raise() are async-signal-safe (signal-safety(7)); resetting to
        // SIG_DFL and raising ends the process by the signal the user sent.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// While alive, SIGINT, SIGTERM and SIGHUP set a flag instead of killing the process (signals
/// that were ignored stay ignored). Dropping it restores the previous handlers.
pub struct InterruptGuard {
    _private: (),
}

impl InterruptGuard {
    /// Installs the handlers (once per process, however many guards are nested).
    pub fn install() -> io::Result<InterruptGuard> {
        if DEPTH.fetch_add(1, Ordering::SeqCst) == 0 {
            PENDING.store(0, Ordering::SeqCst);
            // No SA_RESTART: a read blocked on a slow file returns EINTR and the loop sees the
            // flag.
            let act = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::empty(),
                SigSet::empty(),
            );
            let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
            for sig in SIGNALS {
                // SAFETY: the handler only touches atomics and async-signal-safe libc calls.
                let old = unsafe { sigaction(sig, &act) }.map_err(io::Error::from)?;
                if old.handler() == SigHandler::SigIgn {
                    // SAFETY: restores the disposition sigaction just returned.
                    unsafe { sigaction(sig, &old) }.map_err(io::Error::from)?;
                } else {
                    saved.push((sig, old));
                }
            }
        }
        Ok(InterruptGuard { _private: () })
    }

    /// The signal that arrived since the outermost guard was installed, if any.
    pub fn interrupted(&self) -> Option<i32> {
        match PENDING.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        if DEPTH.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
            for (sig, old) in saved.drain(..) {
                // SAFETY: reinstalls the disposition that was in place before install().
                let _ = unsafe { sigaction(sig, &old) };
            }
        }
    }
}

/// Ends the process by `sig` with its default action (so the shell sees "killed by SIGINT"),
/// after the caller has cleaned up. Returns only if the signal does not end the process.
pub fn die_by_signal(sig: i32) {
    // SAFETY: resets one signal's disposition to the default; no handler code is involved.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
    if let Ok(sig) = Signal::try_from(sig) {
        let _ = nix::sys::signal::raise(sig);
    }
}
