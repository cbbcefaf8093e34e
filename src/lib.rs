//! nsroot: a rootless build sandbox for packaging and a drop-in replacement for fakeroot.
//!
//! The binary (`src/main.rs`) calls [`commands::main`]: the command layer (with `cli`, its
//! clap definitions) parses the command line, calls the modules below it and maps their
//! typed errors to exit statuses. Everything lives here so that integration tests and
//! benchmarks can call it.
//! ARCHITECTURE.md says which module owns what.

pub mod archive;
pub mod build;
pub mod cli;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod fsutil;
pub mod ownership;
pub mod package;
pub mod recipe;
pub mod repro;
pub mod sandbox;
pub mod sys;
