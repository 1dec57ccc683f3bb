//! Compressed input (`.gz`, `.zst`, as downloaded corpora come): recognised by its first
//! bytes, whatever its name, and decompressed in one streaming pass into a private
//! temporary file, which is then mapped and served like any file — in every shuffle mode,
//! the global one included, since the decompressed copy can be read at random. Formats we
//! do not decode (xz, bzip2, lz4) are refused by name rather than served as binary lines.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::spool::private_temp_file;
use super::Cancel;
use crate::error::{Error, Result};

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Gzip,
    Zstd,
    /// Recognised, not decoded: the name of the format and the command that decodes it.
    Unsupported(&'static str, &'static str),
}

/// The format `file` is compressed in, from its first bytes; `None` for anything else.
pub(super) fn detect(file: &File) -> std::io::Result<Option<Format>> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sniff(&head[..n]))
}

fn sniff(head: &[u8]) -> Option<Format> {
    // gzip: ID1 ID2 and CM = 8 (deflate), the only method defined (RFC 1952): three bytes
    // a text file cannot start with (0x8b is not a UTF-8 lead byte).
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Some(Format::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Format::Zstd);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some(Format::Unsupported("xz", "xz -d"));
    }
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        return Some(Format::Unsupported("bzip2", "bunzip2"));
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Some(Format::Unsupported("lz4", "lz4 -d"));
    }
    None
}

/// Decompresses all of `file`, in `format`, into a private temporary file (every member or
/// frame, as `zcat` and `zstdcat` do). Corrupt or truncated input is an error naming the
/// file, never a silently shorter corpus.
pub(super) fn decompress(path: &Path, file: &File, format: Format, cancel: &dyn Cancel) -> Result<File> {
    let compressed = |reason: String| Error::Compressed { path: path.to_path_buf(), format: name(format), reason };
    let mut from_start = file.try_clone().map_err(|e| Error::from_io(path, e))?;
    // A spool was just written: its offset (shared with the clone) is at its end.
    from_start.seek(std::io::SeekFrom::Start(0)).map_err(|e| Error::from_io(path, e))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, from_start);
    let mut decoder: Box<dyn Read> = match format {
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(|e| compressed(e.to_string()))?),
        Format::Unsupported(_, command) => {
            return Err(compressed(format!(
                "this format is not decoded; decompress it first (`{command}`) or pipe it in (`{command}c FILE | mmap-batcher … -`)"
            )))
        }
    };
    let mut out = private_temp_file().map_err(|e| Error::from_io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.cancelled() {
            return Err(Error::Interrupted { path: path.to_path_buf() });
        }
        match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.write_all(&buf[..n]).map_err(|e| Error::from_io(path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(compressed(e.to_string())),
        }
    }
    out.flush().map_err(|e| Error::from_io(path, e))?;
    Ok(out)
}

fn name(format: Format) -> &'static str {
    match format {
        Format::Gzip => "gzip",
        Format::Zstd => "zstd",
        Format::Unsupported(name, _) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats_and_leaves_text_alone() {
        assert_eq!(sniff(&[0x1f, 0x8b, 0x08, 0, 0, 0]), Some(Format::Gzip));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]), Some(Format::Zstd));
        assert!(matches!(sniff(b"\xfd7zXZ\x00"), Some(Format::Unsupported("xz", _))));
        assert!(matches!(sniff(b"BZh91AY"), Some(Format::Unsupported("bzip2", _))));
        assert_eq!(sniff(b"BZh is a line\n"), None);
        assert_eq!(sniff(b"hello\n"), None);
        assert_eq!(sniff(&[0x1f, 0x8b]), None, "two bytes are not a gzip header");
        assert_eq!(sniff(b""), None);
    }
}
