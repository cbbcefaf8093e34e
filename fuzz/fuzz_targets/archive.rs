//! The archive reader behind `nsroot list` on arbitrary bytes: sniffing, gzip/zstd/xz
//! decompression and tar parsing.
//!
//! Invariant: listing ends (Ok or Err), never panics. Run with `-rss_limit_mb` to turn
//! unbounded memory into a crash.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.tar");
    let Ok(input) = nsroot::archive::decompress(Box::new(Cursor::new(data.to_vec())), name) else {
        return;
    };
    let _ = nsroot::archive::list(input, name, false, &mut std::io::sink());
});
