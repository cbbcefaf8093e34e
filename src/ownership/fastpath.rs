//! The in-process fast path of a run-mode session: the preload library embedded in nsroot,
//! written out once where sessions can load it, the record table shared with it, and the
//! environment that makes each dynamically linked program of the session load it.
//!
//! How a call finds its way is in ARCHITECTURE.md ("Recorded ownership"): a dynamic
//! program's stat, chown and mknod calls are answered by the library from the shared table,
//! its real system calls made from a trampoline page the seccomp filter lets through; every
//! other call (static programs, `env -i` children, glibc's internal calls, i386 programs)
//! still reaches the supervisor, which reads and writes the same table.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nsroot_preload::table::STORE_FD;

use super::shared::SharedTable;
use super::store::Store;

/// The x86_64 library (empty where the fast path is not built: other architectures).
static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libnsroot-preload.so"));

/// The file name in each directory.
pub const LIB_NAME: &str = "libnsroot.so";

/// The directories the dynamic loader's `$LIB` can name for a 64-bit program (Debian's
/// multiarch name, Fedora's, Arch's), and the literal `$LIB`, which musl's loader, expanding
/// nothing, opens as it is (KF-PRELOAD-LOADERS).
const DIRS_64: &[&str] = &["lib/x86_64-linux-gnu", "lib64", "lib", "$LIB"];
/// Those of a 32-bit program (Debian's multiarch name and its `$LIB` for i386): they hold
/// an empty i386 library, so glibc finds something of the right class and says nothing
/// (a 64-bit library there would be "wrong ELF class" on stderr); i386 programs take the
/// seccomp path.
const DIRS_32: &[&str] = &["lib/i386-linux-gnu", "lib32"];

/// The variable that turns the fast path off for a session (`NSROOT_FASTPATH=0`), for
/// comparisons and as a way out.
pub const OFF_VAR: &str = "NSROOT_FASTPATH";

/// True when this nsroot has a fast path to offer.
pub fn available() -> bool {
    !LIBRARY.is_empty()
}

/// A minimal i386 shared object: an ELF header, a loadable segment, a dynamic section with
/// an empty symbol table and hash table, and a non-executable stack. It defines nothing.
pub fn i386_stub() -> Vec<u8> {
    const EHDR: usize = 52;
    const PHDR: usize = 32;
    const PHNUM: usize = 3;
    let dyn_off = EHDR + PHNUM * PHDR;
    let dyn_len = 6 * 8;
    let hash_off = dyn_off + dyn_len;
    let sym_off = hash_off + 16;
    let str_off = sym_off + 16;
    let total = str_off + 1;
    let mut b = Vec::with_capacity(total);
    let u16_ = |b: &mut Vec<u8>, v: u16| b.extend_from_slice(&v.to_le_bytes());
    let u32_ = |b: &mut Vec<u8>, v: usize| b.extend_from_slice(&(v as u32).to_le_bytes());
    // e_ident: ELFCLASS32, little-endian, version 1, System V ABI.
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    u16_(&mut b, 3); // ET_DYN
    u16_(&mut b, 3); // EM_386
    u32_(&mut b, 1); // EV_CURRENT
    u32_(&mut b, 0); // e_entry
    u32_(&mut b, EHDR); // e_phoff
    u32_(&mut b, 0); // e_shoff
    u32_(&mut b, 0); // e_flags
    u16_(&mut b, EHDR as u16);
    u16_(&mut b, PHDR as u16);
    u16_(&mut b, PHNUM as u16);
    u16_(&mut b, 40); // e_shentsize
    u16_(&mut b, 0); // e_shnum
    u16_(&mut b, 0); // e_shstrndx
    let rw = 6; // PF_R | PF_W
    for (kind, off, len, align) in [
        (1, 0, total, 0x1000),    // PT_LOAD
        (2, dyn_off, dyn_len, 4), // PT_DYNAMIC
        (0x6474_e551, 0, 0, 16),  // PT_GNU_STACK
    ] {
        for v in [kind, off, off, off, len, len, rw, align] {
            u32_(&mut b, v);
        }
    }
    for (tag, val) in [
        (4, hash_off), // DT_HASH
        (5, str_off),  // DT_STRTAB
        (6, sym_off),  // DT_SYMTAB
        (10, 1),       // DT_STRSZ
        (11, 16),      // DT_SYMENT
        (0, 0),        // DT_NULL
    ] {
        u32_(&mut b, tag);
        u32_(&mut b, val);
    }
    for v in [1, 1, 0, 0] {
        // nbucket, nchain, bucket[0], chain[0]
        u32_(&mut b, v);
    }
    b.extend_from_slice(&[0; 16]); // the null symbol
    b.push(0); // the string table: ""
    debug_assert_eq!(b.len(), total);
    b
}

/// The directory the library is written to: `$XDG_RUNTIME_DIR/nsroot`, else
/// `$TMPDIR/nsroot-<uid>`, the first that is ours alone (a directory we own, writable by
/// nobody else) on a filesystem that allows executables.
fn base_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if d.is_absolute() {
            v.push(d.join("nsroot"));
        }
    }
    v.push(std::env::temp_dir().join(format!("nsroot-{}", crate::sys::euid())));
    v
}

fn ours_alone(dir: &Path) -> bool {
    match std::fs::symlink_metadata(dir) {
        Ok(m) => m.is_dir() && m.uid() == crate::sys::euid() && m.mode() & 0o022 == 0,
        Err(_) => false,
    }
}

fn usable_base(dir: &Path) -> bool {
    if !ours_alone(dir) {
        let made = std::fs::DirBuilder::new().mode(0o700).create(dir).is_ok();
        if !made || !ours_alone(dir) {
            return false;
        }
    }
    !crate::sys::noexec(dir)
}

/// Writes the libraries under `dir` (new), each file through [`crate::fsutil::AtomicFile`].
fn write_tree(dir: &Path) -> std::io::Result<()> {
    let stub = i386_stub();
    for (dirs, bytes) in [(DIRS_64, LIBRARY), (DIRS_32, &stub[..])] {
        for d in dirs {
            let sub = dir.join(d);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&sub)?;
            let mut f = crate::fsutil::AtomicFile::create(&sub.join(LIB_NAME), 0o755)?;
            f.file_mut().write_all(bytes)?;
            f.commit()?;
        }
    }
    Ok(())
}

/// The directory holding the libraries (`<dir>/$LIB/libnsroot.so` names the right one for
/// any program), written once per content: a directory named by the library's hash (and
/// the i386 stub's version: bump it when [`i386_stub`] changes),
/// filled under a temporary name and renamed into place, so a directory that exists is
/// whole. None when no place works (the session then runs on the seccomp path alone).
pub fn install() -> Option<PathBuf> {
    if !available() {
        return None;
    }
    // The library's hash comes from build.rs; the stub's version from here.
    let hash = concat!(env!("NSROOT_PRELOAD_HASH"), "-i386v", "1");
    for base in base_dirs() {
        let dir = base.join(format!("preload-{hash}"));
        if ours_alone(&dir) {
            return Some(dir);
        }
        if !usable_base(&base) {
            continue;
        }
        let tmp = base.join(format!(".preload-{hash}.{}", std::process::id()));
        if tmp.symlink_metadata().is_ok() {
            crate::fsutil::remove_tree(&tmp);
        }
        let ok =
            std::fs::DirBuilder::new().mode(0o755).create(&tmp).is_ok() && write_tree(&tmp).is_ok();
        if ok && std::fs::rename(&tmp, &dir).is_ok() {
            return Some(dir);
        }
        // Another nsroot may have won the rename: its directory is as good.
        if tmp.symlink_metadata().is_ok() {
            crate::fsutil::remove_tree(&tmp);
        }
        if ours_alone(&dir) {
            return Some(dir);
        }
    }
    None
}

/// The library's directory for a session whose processes get `env` ([`install`]), or None
/// when the fast path is off for it (`NSROOT_FASTPATH=0` in `env`, or nothing to offer).
/// Call it before unshare(CLONE_NEWUSER): the directory is named by the real uid and must be
/// owned by it.
pub fn prepare(env: &[OsString]) -> Option<PathBuf> {
    let off = format!("{OFF_VAR}=0");
    if env.iter().any(|kv| kv.as_bytes() == off.as_bytes()) || !available() {
        return None;
    }
    install()
}

/// `LD_PRELOAD` with our library appended (after the user's own, which keep working and
/// come first), unless it is there already (a nested session).
fn add_preload(env: &mut Vec<OsString>, lib: &[u8]) {
    let prefix = b"LD_PRELOAD=";
    match env.iter_mut().find(|kv| kv.as_bytes().starts_with(prefix)) {
        Some(kv) => {
            let old = &kv.as_bytes()[prefix.len()..];
            if old.split(|&c| c == b':' || c == b' ').any(|p| p == lib) {
                return;
            }
            let mut v = kv.as_bytes().to_vec();
            if !old.iter().all(|c| c.is_ascii_whitespace() || *c == b':') {
                v.push(b':');
            }
            v.extend_from_slice(lib);
            *kv = OsString::from_vec(v);
        }
        None => {
            let mut v = prefix.to_vec();
            v.extend_from_slice(lib);
            env.push(OsString::from_vec(v));
        }
    }
}

/// AddressSanitizer aborts a program whose runtime is not the first library loaded, which
/// any `LD_PRELOAD` entry breaks ("ASan runtime does not come first"): the session's
/// `ASAN_OPTIONS` get `verify_asan_link_order=0`, unless they say otherwise already. The
/// check is all it turns off; ASan still runs (nsroot's stat and chown entry points then
/// come before ASan's own interceptors of them).
fn add_asan_option(env: &mut Vec<OsString>) {
    let prefix = b"ASAN_OPTIONS=";
    let opt = b"verify_asan_link_order=0";
    match env.iter_mut().find(|kv| kv.as_bytes().starts_with(prefix)) {
        Some(kv) => {
            if kv
                .as_bytes()
                .windows(22)
                .any(|w| w == b"verify_asan_link_order")
            {
                return;
            }
            let mut v = kv.as_bytes().to_vec();
            if v.len() > prefix.len() {
                v.push(b':');
            }
            v.extend_from_slice(opt);
            *kv = OsString::from_vec(v);
        }
        None => {
            let mut v = prefix.to_vec();
            v.extend_from_slice(opt);
            env.push(OsString::from_vec(v));
        }
    }
}

/// The fast path of one session: the store's records in a shared table on [`STORE_FD`],
/// the library in `LD_PRELOAD`. Dropping it (once no process of the session is left) closes
/// the descriptor and folds the table back into the store.
pub struct Session {
    store: Arc<Mutex<Store>>,
    _table: Arc<SharedTable>,
}

impl Session {
    /// Sets the fast path up for a session serving `store`, whose processes get `env`, with
    /// the library in `dir` ([`prepare`]); None (and nothing changed) where it cannot be: the
    /// descriptor number taken, no memfd. Call it in the outer process after the id map is
    /// written (the table carries the supervisor's euid) and before pid 1 is forked (which
    /// inherits the descriptor).
    pub fn start(
        store: &Arc<Mutex<Store>>,
        dir: PathBuf,
        env: &mut Vec<OsString>,
    ) -> Option<Session> {
        let overflow_uid = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65534);
        let table = {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            let table = s.share(crate::sys::euid(), overflow_uid).ok()?;
            if !table.memory().dup_to(STORE_FD) {
                s.unshare();
                return None;
            }
            table
        };
        let mut lib = dir.into_os_string().into_vec();
        lib.extend_from_slice(b"/$LIB/");
        lib.extend_from_slice(LIB_NAME.as_bytes());
        add_preload(env, &lib);
        add_asan_option(env);
        Some(Session {
            store: Arc::clone(store),
            _table: table,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        crate::sys::shm::close_raw(STORE_FD);
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unshare();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_preload_is_appended_once() {
        let mut env = vec![OsString::from("A=1")];
        add_preload(&mut env, b"/x/$LIB/libnsroot.so");
        assert_eq!(env[1], "LD_PRELOAD=/x/$LIB/libnsroot.so");
        let mut env = vec![OsString::from("LD_PRELOAD=/u/libmine.so")];
        add_preload(&mut env, b"/x/$LIB/libnsroot.so");
        add_preload(&mut env, b"/x/$LIB/libnsroot.so");
        assert_eq!(env[0], "LD_PRELOAD=/u/libmine.so:/x/$LIB/libnsroot.so");
        let mut env = vec![OsString::from("LD_PRELOAD=")];
        add_preload(&mut env, b"/x/l.so");
        assert_eq!(env[0], "LD_PRELOAD=/x/l.so");
    }

    #[test]
    fn asan_link_order_check_is_turned_off_once() {
        let mut env = vec![];
        add_asan_option(&mut env);
        assert_eq!(env, ["ASAN_OPTIONS=verify_asan_link_order=0"]);
        let mut env = vec![OsString::from("ASAN_OPTIONS=detect_leaks=0")];
        add_asan_option(&mut env);
        add_asan_option(&mut env);
        assert_eq!(
            env,
            ["ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0"]
        );
        let mut env = vec![OsString::from("ASAN_OPTIONS=verify_asan_link_order=1")];
        add_asan_option(&mut env);
        assert_eq!(
            env,
            ["ASAN_OPTIONS=verify_asan_link_order=1"],
            "the user's choice"
        );
    }

    #[test]
    fn the_stub_is_an_i386_shared_object() {
        let s = i386_stub();
        assert_eq!(&s[..6], &[0x7f, b'E', b'L', b'F', 1, 1]);
        assert_eq!(u16::from_le_bytes([s[16], s[17]]), 3, "ET_DYN");
        assert_eq!(u16::from_le_bytes([s[18], s[19]]), 3, "EM_386");
        assert_eq!(s.len(), 52 + 96 + 48 + 33);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_library_is_embedded() {
        assert!(available());
        assert_eq!(&LIBRARY[..5], &[0x7f, b'E', b'L', b'F', 2]);
    }
}
