//! Reading byte ranges of a file into the page cache ahead of their use, on a helper
//! thread, with `sendfile` to `/dev/null`: the kernel's own read path (large folios, its
//! read-ahead window) and no copy to user space.
//!
//! `MADV_WILLNEED` / `posix_fadvise(WILLNEED)` would be simpler, but they read 4 KiB pages
//! one by one, each charged to the memory cgroup and later reclaimed alone: indexing an
//! 8 GB file inside a 3 GiB cgroup took 7.7 s that way against 2.6 s for `cat` (see the
//! README's beyond-RAM benchmark). They stay the tool for scattered single pages (the
//! global shuffle's lines).

use std::fs::File;
use std::ops::Range;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Helper threads reading requested ranges, in the order requested.
#[derive(Debug)]
pub(crate) struct Prefetcher {
    tx: Option<SyncSender<Range<u64>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    /// A prefetcher for `file` with room for `queue` pending requests, read by `threads`
    /// threads (each a read in flight: one for a sequential stream, several for scattered
    /// blocks); `None` if it cannot start (the reads then happen when the data is used).
    pub(crate) fn new(file: &File, queue: usize, threads: usize) -> Option<Self> {
        // A full queue makes the requester wait, which bounds how far ahead (and how much
        // page cache) the reads run.
        let (tx, rx) = sync_channel::<Range<u64>>(queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut handles = Vec::new();
        for _ in 0..threads.max(1) {
            let source = file.try_clone().ok()?;
            let sink = std::fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name("mmap-batcher-prefetch".into())
                .spawn(move || loop {
                    let next = rx.lock().map(|r| r.recv());
                    let Ok(Ok(range)) = next else { return };
                    let mut offset = range.start;
                    while offset < range.end {
                        let count = (range.end - offset).min(1 << 30) as usize;
                        match rustix::fs::sendfile(&sink, &source, Some(&mut offset), count) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .ok()?;
            handles.push(handle);
        }
        Some(Prefetcher { tx: Some(tx), threads: handles })
    }

    /// Queues `range` for reading (waits while the queue is full).
    pub(crate) fn request(&self, range: Range<u64>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(range);
        }
    }
}

/// Reads all of `file` into the page cache on a detached thread (an index about to be
/// read at random).
pub(crate) fn read_all_detached(file: &File) {
    let (Ok(source), Ok(sink)) = (file.try_clone(), std::fs::OpenOptions::new().write(true).open("/dev/null")) else { return };
    let _ = std::thread::Builder::new().name("mmap-batcher-index-read".into()).spawn(move || {
        let mut offset = 0u64;
        while let Ok(n) = rustix::fs::sendfile(&sink, &source, Some(&mut offset), 1 << 30) {
            if n == 0 {
                break;
            }
        }
    });
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current read.
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
