//! Archive formats: choosing one from a file name, compressing a stream, and reading any
//! format back by sniffing its first bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use super::error::ArchiveError;
use super::pargz::ParGzWriter;

/// The archive formats nsroot writes (and reads). The command line's names for them
/// (`tar.gz`, alias `tgz`...) are given in `cli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Uncompressed tar
    Tar,
    /// gzip-compressed tar
    TarGz,
    /// zstd-compressed tar
    TarZst,
    /// xz-compressed tar
    TarXz,
}

/// The extensions `Format::from_path` knows, for error messages.
const KNOWN: &str = ".tar, .tar.gz, .tgz, .tar.zst, .tzst, .tar.xz, .txz";

impl Format {
    /// The format a file name asks for by its extension.
    ///
    /// Errors with an input error (exit 2) naming the path when the extension is unknown.
    pub fn from_path(path: &Path) -> Result<Format, ArchiveError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase());
        let name = name.as_deref().unwrap_or("");
        let table: [(&str, Format); 7] = [
            (".tar", Format::Tar),
            (".tar.gz", Format::TarGz),
            (".tgz", Format::TarGz),
            (".tar.zst", Format::TarZst),
            (".tzst", Format::TarZst),
            (".tar.xz", Format::TarXz),
            (".txz", Format::TarXz),
        ];
        table
            .iter()
            .find(|(ext, _)| name.ends_with(ext) && name.len() > ext.len())
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                ArchiveError::input(
                    format!("output {}", path.display()),
                    format!("unknown archive extension (use one of {KNOWN}, or --format)"),
                )
            })
    }

    /// The canonical extension, without the leading dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::TarXz => "tar.xz",
        }
    }

    /// The compression level used when none is given (the command-line tools' defaults).
    pub fn default_level(self) -> u32 {
        match self {
            Format::Tar => 0,
            Format::TarGz => 6,
            Format::TarZst => 3,
            Format::TarXz => 6,
        }
    }

    /// The levels this format accepts.
    pub fn level_range(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Format::Tar => 0..=0,
            Format::TarGz => 1..=9,
            Format::TarZst => 1..=19,
            Format::TarXz => 0..=9,
        }
    }
}

/// Compression applied to the tar stream before it reaches the output.
pub(crate) enum Compressor<W: Write> {
    Plain(W),
    Gz(ParGzWriter<W>),
    Zst(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> Compressor<W> {
    /// `jobs` threads compress for gzip and zstd; xz stays single-threaded (its multi-threaded
    /// output differs from the single-threaded one, and determinism comes first).
    pub(crate) fn new(out: W, format: Format, level: u32, jobs: usize) -> io::Result<Self> {
        Ok(match format {
            Format::Tar => Compressor::Plain(out),
            Format::TarGz => Compressor::Gz(ParGzWriter::new(out, level, jobs.max(1))),
            Format::TarZst => {
                let mut enc = zstd::stream::write::Encoder::new(out, level as i32)?;
                enc.include_checksum(true)?;
                // zstd's output is the same for any number of workers >= 1, but differs with
                // none: always use workers so `-j 1` and `-j 2` give the same bytes.
                enc.multithread(jobs.max(1) as u32)?;
                Compressor::Zst(enc)
            }
            Format::TarXz => Compressor::Xz(liblzma::write::XzEncoder::new(out, level)),
        })
    }

    /// Ends the compressed stream and returns the output. Must be called: dropping the
    /// compressor instead loses the stream's end and any error writing it.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Plain(w) => Ok(w),
            Compressor::Gz(w) => w.finish(),
            Compressor::Zst(w) => w.finish(),
            Compressor::Xz(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gz(w) => w.write(buf),
            Compressor::Zst(w) => w.write(buf),
            Compressor::Xz(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.write_all(buf),
            Compressor::Gz(w) => w.write_all(buf),
            Compressor::Zst(w) => w.write_all(buf),
            Compressor::Xz(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gz(w) => w.flush(),
            Compressor::Zst(w) => w.flush(),
            Compressor::Xz(w) => w.flush(),
        }
    }
}

/// Compression of a tar stream, recognised by its first bytes: for archives nsroot reads
/// (`list`, `diff`, recipe sources, a .deb's members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

impl Compression {
    /// Recognises the compression from a stream's first bytes; None for compressions nsroot
    /// cannot read (bzip2, lzip), which the caller reports. Anything else is taken as plain.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if head.starts_with(b"BZh") || head.starts_with(b"LZIP") {
            None
        } else {
            Some(Compression::None)
        }
    }

    /// Wraps `r` in the matching decoder (multi-member gzip and xz, as their tools read).
    pub fn reader<'a, R: BufRead + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        })
    }
}

/// The compression whose magic bytes start `head`, plain for what nsroot cannot decode (the
/// tar reader then says the stream is not an archive).
pub fn sniff(head: &[u8]) -> Compression {
    Compression::sniff(head).unwrap_or(Compression::None)
}

/// Wraps `input` in the decompressor its first bytes call for (gzip, zstd, xz or none).
///
/// `name` is used in error messages.
pub fn decompress<'a>(
    input: Box<dyn Read + 'a>,
    name: &Path,
) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let mut buf = BufReader::with_capacity(256 * 1024, input);
    // fill_buf may return fewer than 6 bytes from a pipe; the magic numbers are short enough
    // that the first read of any real archive holds them.
    let head = buf
        .fill_buf()
        .map_err(|e| ArchiveError::io("read", name, e))?;
    sniff(head)
        .reader(buf)
        .map_err(|e| ArchiveError::io("start the decoder for", name, e))
}

/// Opens an archive of any supported format, detected by content, as an uncompressed tar
/// stream.
///
/// Errors name the path: an input error (exit 2) when it does not exist.
pub fn open_archive(path: &Path) -> Result<Box<dyn Read>, ArchiveError> {
    decompress(Box::new(open_file(path)?), path)
}

/// Opens an archive file for reading; a missing path or a directory is an input error.
pub fn open_file(path: &Path) -> Result<File, ArchiveError> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            ArchiveError::input(format!("archive {}", path.display()), "no such file")
        } else {
            ArchiveError::io("open", path, e)
        }
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(ArchiveError::input(
            format!("archive {}", path.display()),
            "is a directory",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_path_knows_every_extension() {
        for (name, f) in [
            ("a.tar", Format::Tar),
            ("dir/a.tar.gz", Format::TarGz),
            ("A.TGZ", Format::TarGz),
            ("a.tar.zst", Format::TarZst),
            ("a.tzst", Format::TarZst),
            ("a.tar.xz", Format::TarXz),
            ("a.txz", Format::TarXz),
        ] {
            assert_eq!(Format::from_path(Path::new(name)).unwrap(), f, "{name}");
        }
    }

    #[test]
    fn from_path_rejects_unknown_as_input_error() {
        for name in ["a.zip", "a.gz", ".tar", "a", "a.tar.bz2"] {
            let err = Format::from_path(Path::new(name)).unwrap_err();
            assert!(matches!(err, ArchiveError::Input { .. }), "{name}: {err:?}");
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn sniff_recognises_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0rest"), Compression::Xz);
        assert_eq!(sniff(b"./\0\0\0"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }

    #[test]
    fn every_format_round_trips_through_decompress() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for f in [Format::Tar, Format::TarGz, Format::TarZst, Format::TarXz] {
            for jobs in [1, 3] {
                let mut c = Compressor::new(Vec::new(), f, f.default_level(), jobs).unwrap();
                c.write_all(&data).unwrap();
                let packed = c.finish().unwrap();
                let mut back = Vec::new();
                decompress(Box::new(io::Cursor::new(packed)), Path::new("x"))
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap();
                assert!(back == data, "{f:?} -j{jobs} did not round-trip");
            }
        }
    }
}
