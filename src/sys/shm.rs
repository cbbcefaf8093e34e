//! The shared memory of the fast path: a sealed memfd mapped `MAP_SHARED`, seen as a slice
//! of atomic words (the record table of `nsroot_preload::table`), and the descriptor number
//! the session's processes find it on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

use super::{err, SysResult};
use nix::errno::Errno;

/// A memfd of a fixed size, sealed against shrinking and growing (so no process that maps
/// it can be faulted by a truncation), mapped read-write and shared.
#[derive(Debug)]
pub struct SharedWords {
    fd: OwnedFd,
    addr: usize,
    words: usize,
}

// SAFETY: the mapping is only ever accessed through `&[AtomicU64]`, which is Sync; the
// struct owns it and unmaps it once.
unsafe impl Send for SharedWords {}
// SAFETY: as above: every access is atomic.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// A new zero-filled memfd of `words` 64-bit words (`memfd_create`, `ftruncate`,
    /// `F_ADD_SEALS`, `mmap`), close-on-exec; see [`SharedWords::dup_to`] for the copy the
    /// session's processes inherit. Pages cost memory only once written.
    ///
    /// Errors: the failing call and errno.
    pub fn create(name: &std::ffi::CStr, words: usize) -> SysResult<SharedWords> {
        let len = words
            .checked_mul(8)
            .ok_or(Errno::EINVAL)
            .map_err(err("memfd size"))?;
        // SAFETY: a NUL-terminated name and flags; returns a new descriptor or -1.
        let fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(err("memfd_create(MFD_ALLOW_SEALING)")(Errno::last()));
        }
        // SAFETY: the descriptor was just created and is ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate and fcntl with integer arguments on our descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(err(format!("ftruncate(memfd, {len})"))(Errno::last()));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(err("fcntl(memfd, F_ADD_SEALS)")(Errno::last()));
        }
        // SAFETY: a new shared mapping of the whole file; the kernel picks the address.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(err(format!("mmap(memfd, {len})"))(Errno::last()));
        }
        Ok(SharedWords {
            fd,
            addr: addr as usize,
            words,
        })
    }

    /// The words, shared with every process that maps the memfd.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `addr` is our live mapping of `words` * 8 bytes, page-aligned (so aligned
        // for AtomicU64), unmapped only in Drop; the file is sealed, so it stays backed.
        // Other processes write it concurrently, which atomics allow.
        unsafe { std::slice::from_raw_parts(self.addr as *const AtomicU64, self.words) }
    }

    /// A copy of the memfd's descriptor on number `fd`, not close-on-exec (the session's
    /// processes inherit it), but only when that number is free: a descriptor the caller
    /// passed on is never replaced. Returns false when it is taken or cannot be made.
    pub fn dup_to(&self, fd: RawFd) -> bool {
        // SAFETY: F_GETFD only asks whether `fd` is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            return false;
        }
        // SAFETY: dup3 onto a number that is not open, from our own descriptor; the copy is
        // deliberately left open (and leaked) for the children.
        unsafe { libc::dup3(self.fd.as_raw_fd(), fd, 0) == fd }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: our mapping, made in `create`, of this length; no slice from `words`
        // outlives `self`.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.words * 8) };
    }
}

/// Closes descriptor `fd` (the session's copy of the memfd, once the session is over).
pub fn close_raw(fd: RawFd) {
    // SAFETY: closing a number we opened with dup_to and own nothing else on.
    unsafe { libc::close(fd) };
}
