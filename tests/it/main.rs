//! nsroot's integration tests: one binary, one module per capability, a shared harness.
//!
//! Namespace tests run nsroot as an unprivileged uid even when the suite runs as root (as in
//! CI): see `util::Env`. Where the kernel lacks user namespaces or an optional host tool is
//! missing a test skips with a printed reason, unless NSROOT_TEST_STRICT=1, where it fails.

mod util;

mod abi;
mod bounded;
mod build;
mod container;
mod deb;
mod diff;
mod docs;
mod doctor;
mod dpkg;
mod dropin;
mod escape;
mod fastpath;
mod faults;
mod hardening;
mod isolation;
mod load;
mod modules;
mod ownership;
mod pack;
mod pacman;
mod recipe;
mod repro;
mod rpm;
mod run;
mod setgid;
