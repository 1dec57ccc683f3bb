//! Reading scattered byte ranges of a file with many `pread`s in flight: the global
//! shuffle's lines when the file is larger than memory. Each line is a random read, and a
//! disk serves random reads several times faster with a deep queue (here 74 k 4 KiB reads
//! per second at depth 32 against 19 k at depth 1, measured with `fio`) than one page
//! fault at a time. The bytes land in a buffer the batch then owns.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Reads in flight at once.
pub(crate) const DEPTH: usize = 32;

/// Reads `ranges` of `file` into one buffer, back to back, on up to [`DEPTH`] threads;
/// returns the buffer and each range's offset in it. A short read (the file shrank) is
/// an error.
pub(crate) fn read_ranges(file: &File, ranges: &[Range<u64>]) -> std::io::Result<(Vec<u8>, Vec<usize>)> {
    let mut offsets = Vec::with_capacity(ranges.len());
    let mut total = 0usize;
    for r in ranges {
        offsets.push(total);
        total += (r.end - r.start) as usize;
    }
    let mut buf = vec![0u8; total];
    let threads = DEPTH.min(ranges.len()).max(1);
    let per = ranges.len().div_ceil(threads).max(1);
    std::thread::scope(|s| -> std::io::Result<()> {
        let mut rest: &mut [u8] = &mut buf;
        let mut handles = Vec::new();
        for (chunk_index, chunk) in ranges.chunks(per).enumerate() {
            let len: usize = chunk.iter().map(|r| (r.end - r.start) as usize).sum();
            let (mine, tail) = rest.split_at_mut(len);
            rest = tail;
            let _ = chunk_index;
            handles.push(s.spawn(move || -> std::io::Result<()> {
                let mut at = 0;
                for r in chunk {
                    let n = (r.end - r.start) as usize;
                    file.read_exact_at(&mut mine[at..at + n], r.start)?;
                    at += n;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| std::io::Error::other("a read thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((buf, offsets))
}
