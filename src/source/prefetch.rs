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
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Helper threads reading requested ranges, in the order requested.
#[derive(Debug)]
pub(crate) struct Prefetcher {
    tx: Option<SyncSender<Range<u64>>>,
    threads: Vec<JoinHandle<()>>,
    /// Requests made so far.
    requested: u64,
    /// Requests whose read has ended (read, or given up on), and the wake-up of a waiter.
    done: Arc<(Mutex<u64>, Condvar)>,
}

impl Prefetcher {
    /// A prefetcher for `file` with room for `queue` pending requests, read by `threads`
    /// threads (each a read in flight: one for a sequential stream, several for scattered
    /// blocks); `None` if it cannot start (the reads then happen when the data is used).
    pub(crate) fn new(file: &File, queue: usize, threads: usize) -> Option<Self> {
        // A full queue makes the requester wait, which bounds how far ahead (and how much
        // page cache) the reads run.
        let (tx, rx) = sync_channel::<Range<u64>>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new((Mutex::new(0u64), Condvar::new()));
        let mut handles = Vec::new();
        for _ in 0..threads.max(1) {
            let source = file.try_clone().ok()?;
            let sink = std::fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
            let (rx, done) = (rx.clone(), done.clone());
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
                    let (count, ended) = &*done;
                    *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    ended.notify_all();
                })
                .ok()?;
            handles.push(handle);
        }
        Some(Prefetcher { tx: Some(tx), threads: handles, requested: 0, done })
    }

    /// Queues `range` for reading (waits while the queue is full), and returns its number
    /// (the first request is 1) for [`wait_for`](Self::wait_for).
    pub(crate) fn request(&mut self, range: Range<u64>) -> u64 {
        if let Some(tx) = &self.tx {
            if tx.send(range).is_ok() {
                self.requested += 1;
            }
        }
        self.requested
    }

    /// Waits until request `n` and those before it have been read (given up on included),
    /// or `stop` says to stop: for one reading thread, which takes them in order. A reader
    /// of a map that waits here takes no page fault for what it reads next, where one that
    /// runs ahead of the reads faults on each page, and the fault reads it on its own (each
    /// a small synchronous read beside the large ones requested).
    pub(crate) fn wait_for(&self, n: u64, stop: impl Fn() -> bool) {
        let (count, ended) = &*self.done;
        let mut done = count.lock().unwrap_or_else(|p| p.into_inner());
        while *done < n.min(self.requested) && !stop() {
            done = ended.wait_timeout(done, std::time::Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Whether much of `file`'s first `len` bytes is not in the page cache: a one-byte
/// `RWF_NOWAIT` read (which never waits for the disk) at each of 32 places, and more than
/// 3 of them not cached. `false` where such reads are not supported.
pub(crate) fn mostly_uncached(file: &File, len: u64) -> bool {
    const PLACES: u64 = 32;
    let mut uncached = 0;
    for k in 0..PLACES.min(len) {
        let mut byte = [0u8; 1];
        let mut slice = [std::io::IoSliceMut::new(&mut byte)];
        match rustix::io::preadv2(file, &mut slice, len / PLACES * k, rustix::io::ReadWriteFlags::NOWAIT) {
            Err(rustix::io::Errno::AGAIN) => uncached += 1,
            Err(_) => return false,
            Ok(_) => {}
        }
    }
    uncached > 3
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
