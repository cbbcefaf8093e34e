//! The only place with unsafe code, libc and raw nix calls: one wrapper per call.

pub mod archive;
