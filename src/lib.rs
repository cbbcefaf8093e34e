//! nsroot: a rootless build sandbox for packaging and a drop-in replacement for fakeroot.
//!
//! The binary (`src/main.rs`) only parses the command line and maps errors to exit statuses;
//! everything else lives here so that integration tests and benchmarks can call it.
//! ARCHITECTURE.md says which module owns what.

pub mod archive;
pub mod build;
pub mod cli;
pub mod docs;
pub mod doctor;
pub mod error;
pub mod fakeroot;
pub mod fsutil;
pub mod ownership;
pub mod package;
pub mod recipe;
pub mod repro;
pub mod sandbox;
pub mod sys;
