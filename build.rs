//! Builds the preload library that nsroot embeds (`preload/`, the in-process fast path of
//! recorded ownership) as a dynamic library for the target, whatever nsroot itself is linked
//! as: nsroot is static-pie (`.cargo/config.toml` sets `+crt-static` for the whole build,
//! under which rustc makes no `cdylib`), so the library is compiled here by a direct rustc
//! call with its own flags. It needs no C library (`#![no_std]`, `-nostdlib`, raw system
//! calls) and no crate, so it builds offline with the toolchain that builds nsroot.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let lib = out.join("libnsroot-preload.so");
    println!("cargo:rerun-if-changed=preload/src");
    println!("cargo:rerun-if-changed=preload/exports.map");
    println!("cargo:rerun-if-changed=build.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        // The library's system calls are x86_64's; elsewhere the fast path is off and every
        // call goes to the supervisor.
        std::fs::write(&lib, b"").expect("write the empty preload library");
        println!("cargo:rustc-env=NSROOT_PRELOAD_HASH=none");
        return;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("TARGET");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let map = manifest.join("preload/exports.map");
    let mut cmd = Command::new(rustc);
    cmd.args(["--edition", "2021", "--crate-type", "cdylib"])
        .args([
            "--crate-name",
            "nsroot_preload",
            "--cfg",
            "nsroot_interpose",
        ])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "strip=symbols", "-C", "target-feature=-crt-static"])
        .args([
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-Wl,--hash-style=both",
        ])
        .arg("-C")
        .arg(format!("link-arg=-Wl,--version-script={}", map.display()))
        .args(["--target", &target])
        .arg("-o")
        .arg(&lib)
        .arg(manifest.join("preload/src/lib.rs"))
        // Cargo's flags for nsroot (+crt-static) must not reach the library.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if let Some(linker) = env::var_os(&linker_var).or_else(|| env::var_os("RUSTC_LINKER")) {
        cmd.arg("-C").arg({
            let mut a = std::ffi::OsString::from("linker=");
            a.push(linker);
            a
        });
    }
    let status = cmd.status().expect("run rustc for the preload library");
    assert!(
        status.success(),
        "building the preload library failed: {status}"
    );
    // Its content's name (FNV-1a, 64 bits): the directory sessions load it from is named by
    // it, so nsroot need not hash the library at every start.
    let bytes = std::fs::read(&lib).expect("read the preload library");
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    println!("cargo:rustc-env=NSROOT_PRELOAD_HASH={hash:016x}");
}
