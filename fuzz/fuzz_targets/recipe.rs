//! The recipe parser on arbitrary bytes. `Recipe::load` is the only public entry (it takes a
//! path), so each input is written to `recipe.toml` in a directory made once.
//!
//! Invariant: loading returns (an error is fine), never panics, and an error is one line.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn recipe_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // Something for `path = "src"` and `archive = "src.tar"` to find.
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src.tar"), [0u8; 1024]).unwrap();
        let path = dir.path().join("recipe.toml");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let path = recipe_path();
    std::fs::write(path, data).unwrap();
    if let Err(e) = nsroot::recipe::Recipe::load(path) {
        let msg = format!("{:#}", anyhow_chain(&e));
        assert!(!msg.contains('\n'), "multi-line error: {msg}");
    }
});

/// The `{:#}` chain as nsroot's main prints it, without depending on anyhow here.
fn anyhow_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
