//! The state-file reader (`nsroot -i`, `nsroot pack -i`) on arbitrary bytes.
//!
//! Invariants: loading never panics; whatever loads saves to bytes that load back equal.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nsroot::ownership::Store;

fn state_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let path = state_path();
    std::fs::write(path, data).unwrap();
    if let Ok(store) = Store::load(path) {
        let bytes = store.to_bytes();
        std::fs::write(path, &bytes).unwrap();
        let back = Store::load(path).expect("a saved store must load");
        assert_eq!(back, store, "round trip changed the records");
        assert_eq!(back.to_bytes(), bytes, "saving is not deterministic");
    }
});
