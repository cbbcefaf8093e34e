//! nsroot's in-process fast path. As a library (nsroot's dependency) this crate is the
//! record table a session shares between the supervisor and the preloaded library
//! ([`table`]). Built by nsroot's build.rs with `--cfg nsroot_interpose`, it is that preload
//! library: no C library of its own (raw system calls, `#![no_std]`, panic = abort), the
//! stat, chown and mknod families of glibc and musl interposed (`interpose`), every `unsafe`
//! in one module (`sys`).
#![no_std]

pub mod layout;
pub mod table;

#[cfg(all(nsroot_interpose, target_arch = "x86_64"))]
mod interpose;
#[cfg(all(nsroot_interpose, target_arch = "x86_64"))]
mod sys;

#[cfg(all(nsroot_interpose, target_arch = "x86_64", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Nothing may reach stderr: die as abort(3) does, without a message.
    sys::abort()
}

/// core's precompiled unwind tables name a personality routine; with panic = abort nothing
/// unwinds, so it is never called. Defined here (and kept local by the version script) so
/// the library has no undefined symbol beyond what every C library exports.
#[cfg(all(nsroot_interpose, not(test)))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
