//! Parallel gzip in the manner of pigz: one gzip member whose deflate stream is cut into
//! fixed-size blocks compressed on worker threads, each primed with the 32 KiB before it.
//!
//! Blocks end with a sync flush (byte-aligned, not final), so their concatenation is one valid
//! deflate stream any `gzip -d` reads. Block boundaries depend only on the input, never on the
//! number of threads: `-j 1` and `-j 8` write the same bytes.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Input bytes per block: large enough that the per-block flush and dictionary priming cost
/// well under 0.1%, small enough that two threads share even a small archive.
const BLOCK: usize = 256 * 1024;
/// Deflate's window: each block is primed with this much of the input before it.
const WINDOW: usize = 32 * 1024;

/// The deflate engine's levels behind each of gzip's: zlib-rs (zlib-ng's algorithms) does not
/// compress as gzip does at the same number (its level 1 is far larger than gzip -1's, its 9
/// larger than its own 8 on some text), so `-L N` means "no larger than `gzip -N`". Where two
/// engine levels are given, each block is compressed with both and the smaller kept (blocks
/// are independent, so the choice is the block's own and the bytes stay deterministic).
/// Chosen on three corpora (text, 20,000 small binary fragments, a tree of programs and
/// libraries: `archive::tests`' gzip size test and BENCHMARKS.md's table).
fn engine_levels(level: u32) -> &'static [u32] {
    match level {
        0 | 1 => &[2],
        2 | 3 => &[3],
        4 => &[6, 7],
        _ => &[8, 9],
    }
}

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A `Write` that gzips what it is given on `jobs` worker threads. Call [`finish`]; dropping it
/// loses the end of the stream.
///
/// [`finish`]: ParGzWriter::finish
pub struct ParGzWriter<W: Write> {
    inner: W,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    header_written: bool,
    /// Results in stream order; at most `max_pending` blocks are in flight.
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    pool: Pool,
}

impl<W: Write> ParGzWriter<W> {
    /// A gzip writer at `level` (1-9) on `jobs` threads (at least one).
    pub fn new(inner: W, level: u32, jobs: usize) -> Self {
        let jobs = jobs.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(jobs);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..jobs)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || worker(rx, level))
            })
            .collect();
        ParGzWriter {
            inner,
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_written: false,
            pending: VecDeque::new(),
            // Two blocks per thread keep every worker busy while the writer waits on the
            // oldest; memory stays a few MiB.
            max_pending: 2 * jobs,
            pool: Pool {
                tx: Some(tx),
                workers,
            },
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // RFC 1952: no name, mtime 0 (reproducible), XFL as gzip sets it, OS = Unix.
            let xfl = match self.level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker thread died"))??;
            self.inner.write_all(&out)?;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job {
            dict,
            data,
            last,
            reply,
        };
        let tx = self
            .pool
            .tx
            .as_ref()
            .expect("the job channel lives as long as the writer");
        tx.send(job)
            .map_err(|_| io::Error::other("gzip worker threads died"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32 (RFC 1952).
        self.inner.write_all(&(self.total as u32).to_le_bytes())?;
        // Workers end when the pool drops; `inner` moves out since ParGzWriter has no Drop.
        Ok(self.inner)
    }
}

/// The worker threads. Dropping it closes the job channel and joins them, on success and on
/// error alike, so no thread outlives the writer.
struct Pool {
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.total += n as u64;
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A flush must not cut a block early: that would make the output depend on where the
        // caller flushed. Only what is already compressed is passed on.
        self.inner.flush()
    }
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>, level: u32) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let out = compress_block(level, &job.dict, &job.data, job.last);
        // The writer may have given up (an error elsewhere): nobody to tell.
        let _ = job.reply.send(out);
    }
}

/// One block at gzip level `level`: the smallest of its [`engine_levels`]' outputs.
fn compress_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut best: Option<Vec<u8>> = None;
    for &engine in engine_levels(level) {
        // A fresh compressor per block: zlib-rs's reset() leaves state behind that makes the
        // output depend on which blocks a worker compressed before (seen as `-j 2` differing
        // from `-j 1`). Setting one up costs far less than compressing 256 KiB.
        let mut c = Compress::new(Compression::new(engine), false);
        let out = deflate_block(&mut c, dict, data, last)?;
        if best.as_ref().is_none_or(|b| out.len() < b.len()) {
            best = Some(out);
        }
    }
    Ok(best.unwrap_or_default())
}

/// Raw deflate of one block, primed with `dict`; sync-flushed, or finished when `last`.
fn deflate_block(c: &mut Compress, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        // zlib's rule: a flush is complete once a call leaves output space unused.
        let done = if last {
            status == Status::StreamEnd
        } else {
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], jobs: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 6, jobs);
        for c in data.chunks(chunk.max(1)) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 12345u32;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b"the quick brown fox "[i % 20]
                }
            })
            .collect()
    }

    #[test]
    fn output_is_one_gzip_member_that_decodes() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let data = sample(len);
            let packed = gz(&data, 3, 10_000);
            let mut back = Vec::new();
            // GzDecoder (not MultiGzDecoder) stops after one member: all data must be in it.
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "len {len}");
            assert_eq!(&packed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        }
    }

    /// Each block deflated by a compressor that has seen nothing else: what any thread
    /// count must give.
    fn reference(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
        for (i, block) in blocks.iter().enumerate() {
            let dict = if i == 0 {
                &[][..]
            } else {
                &blocks[i - 1][BLOCK - WINDOW..]
            };
            // The writer always ends with a (possibly empty) final block.
            out.extend(compress_block(6, dict, block, false).unwrap());
        }
        let dict = blocks
            .last()
            .map_or(&[][..], |b| &b[b.len().saturating_sub(WINDOW)..]);
        out.extend(compress_block(6, dict, &[], true).unwrap());
        out.extend(crc32fast::hash(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn blocks_do_not_leak_state_into_each_other() {
        // Machine code (this test binary) made zlib-rs's reset() carry state between blocks.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // All of it: the first few MiB did not show the leak.
        let data = &exe[..exe.len() / BLOCK * BLOCK];
        let want = reference(data);
        for jobs in [1, 2, 3] {
            assert!(
                gz(data, jobs, 65536) == want,
                "-j {jobs} differs from per-block compression"
            );
        }
    }

    #[test]
    fn bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * BLOCK + 999);
        let one = gz(&data, 1, 4096);
        assert_eq!(one, gz(&data, 4, 4096));
        assert_eq!(one, gz(&data, 2, 1_000_003));
    }
}
