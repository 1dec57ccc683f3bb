//! Reading batches in order with the next ones prepared on a helper thread: the epoch
//! order computed, the lines located in the index, and their reads started — prefetched
//! into the CPU cache when the corpus is in the page cache, requested from the disk ahead of
//! time when it is not (every line of the next batches for the global shuffle, the next
//! window's blocks for the block shuffle, whose finished windows are released).

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::batcher::{Batch, Batcher, Epoch, Located};
use crate::error::Result;
use crate::order::EpochOrder;
use crate::source::{Prefetcher, ResolvedIo};

/// A batch prepared by the read-ahead thread.
#[derive(Debug)]
pub struct Ready {
    /// Which batch.
    pub batch: Batch,
    /// Its lines, found.
    pub located: Located,
}

impl Ready {
    /// The batch as Arrow arrays with `columns` (see [`Batch::to_record_batch_with`]).
    pub fn to_record_batch(&self, columns: &[crate::Column]) -> Result<arrow::array::RecordBatch> {
        self.located.record_batch(self.batch.batcher(), self.batch.epoch(), self.batch.number(), columns)
    }
}

/// The outcome of waiting a while for the next batch.
#[derive(Debug)]
pub enum Wait {
    /// The next batch (or the error that ended the stream).
    Batch(Box<Result<Ready>>),
    /// The stream is over.
    Done,
    /// Not ready yet: wait again (after checking for interrupts, say).
    Pending,
}

/// Batches `(epoch, batch)` of a [`Batcher`], in the order given, prepared ahead.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
/// use mmap_batcher::{Batcher, BatchStream, IndexCache, Options};
/// let b = Batcher::open(f.path(), Options { batch_size: 4, index_cache: IndexCache::Off, ..Default::default() })?;
/// let stream = BatchStream::new(&b, (0..2).flat_map(|e| (0..2).map(move |batch| (e, batch))));
/// let mut rows = 0;
/// for ready in stream {
///     rows += ready?.located.raw_lines().count();
/// }
/// assert_eq!(rows, 16);
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchStream {
    rx: Option<Receiver<Result<Ready>>>,
    /// The helper thread, joined on drop so that no reads outlive the stream.
    helper: Option<std::thread::JoinHandle<()>>,
    /// The consumer reads the lines: they are cut at their newlines on its side.
    read_lines: bool,
}

impl BatchStream {
    /// Starts preparing `units` on a helper thread.
    pub fn new(batcher: &Batcher, units: impl Iterator<Item = (u64, u64)> + Send + 'static) -> Self {
        Self::with_filter(batcher, units, None, true)
    }

    /// Like [`new`](Self::new), keeping only the lines whose ids lie in `allowed` (sorted,
    /// disjoint ranges), and without reading any line bytes unless `read_lines`.
    pub fn with_filter(
        batcher: &Batcher,
        units: impl Iterator<Item = (u64, u64)> + Send + 'static,
        allowed: Option<Arc<[Range<u64>]>>,
        read_lines: bool,
    ) -> Self {
        let io = batcher.corpus().io();
        // In the page cache, one batch ahead hides the order, index and cache misses; from
        // disk, more batches in flight keep the device's queue full.
        let depth = if io == ResolvedIo::Cached { 1 } else { 4 };
        let (tx, rx) = sync_channel(depth);
        let mut ahead = ReadAhead { batcher: batcher.clone(), epoch: None, window: None, io, allowed, read_lines, prefetchers: Default::default() };
        let helper = std::thread::spawn(move || {
            for (e, b) in units {
                let ready = ahead.prepare(e, b);
                let failed = ready.is_err();
                // The receiver is gone when the consumer dropped the stream: stop early.
                if tx.send(ready).is_err() || failed {
                    return;
                }
            }
        });
        BatchStream { rx: Some(rx), helper: Some(helper), read_lines }
    }

    /// Waits up to `timeout` for the next batch.
    pub fn wait(&mut self, timeout: Duration) -> Wait {
        let Some(rx) = &self.rx else { return Wait::Done };
        match rx.recv_timeout(timeout) {
            Ok(ready) => Wait::Batch(Box::new(ready.and_then(|mut r| {
                r.located.check_unchanged()?;
                if self.read_lines {
                    r.located.resolve_gaps()?;
                }
                Ok(r)
            }))),
            Err(RecvTimeoutError::Timeout) => Wait::Pending,
            Err(RecvTimeoutError::Disconnected) => {
                self.rx = None;
                // The helper hung up: it finished, or it panicked (a bug) — never a
                // silent early end.
                match self.helper.take().map(std::thread::JoinHandle::join) {
                    Some(Err(_)) => Wait::Batch(Box::new(Err(crate::Error::Internal {
                        message: "the read-ahead thread panicked; batches after this one were not served".into(),
                    }))),
                    _ => Wait::Done,
                }
            }
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the channel first makes the helper's next `send` fail, so it stops after
        // the batch it is preparing (found by the IPC fuzz target: a helper left running
        // past the stream).
        self.rx = None;
        if let Some(helper) = self.helper.take() {
            // The consumer stopped reading: a panic here has no one left to report to.
            let _ = helper.join();
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Ready>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.wait(Duration::from_secs(3600)) {
                Wait::Batch(r) => return Some(*r),
                Wait::Done => return None,
                Wait::Pending => continue,
            }
        }
    }
}

/// A block-shuffle window whose blocks were requested: its epoch and number, and the byte
/// ranges `(file, bytes)` of its blocks, released when the next window starts.
struct Window {
    epoch: u64,
    number: u64,
    ranges: Vec<(usize, Range<usize>)>,
    /// Windows before this one are requested.
    requested: u64,
}

/// Block shuffle from disk: windows requested ahead of the one being served (two measured
/// slower: the page cache then drops the window being served before it is read).
const WINDOWS_AHEAD: u64 = 1;
/// Block shuffle from disk: blocks read at once.
const PREFETCH_THREADS: usize = 4;

/// The helper thread's state.
struct ReadAhead {
    batcher: Batcher,
    epoch: Option<Epoch>,
    window: Option<Window>,
    io: ResolvedIo,
    allowed: Option<Arc<[Range<u64>]>>,
    read_lines: bool,
    /// Block shuffle from disk: a sequential reader per file for the next window's blocks.
    prefetchers: std::collections::HashMap<usize, Prefetcher>,
}

/// True when `id` lies in one of the sorted, disjoint `ranges`.
pub(crate) fn allowed_contains(ranges: &[Range<u64>], id: u64) -> bool {
    let i = ranges.partition_point(|r| r.end <= id);
    ranges.get(i).is_some_and(|r| r.contains(&id))
}

impl ReadAhead {
    fn prepare(&mut self, e: u64, b: u64) -> Result<Ready> {
        let epoch = match &self.epoch {
            Some(ep) if ep.number() == e => ep.clone(),
            _ => self.epoch.insert(self.batcher.epoch(e)?).clone(),
        };
        let mut batch = epoch
            .batch(b)
            .ok_or_else(|| crate::Error::InvalidOption { message: format!("batch {b} out of range for {} batches", epoch.num_batches()) })?;
        if let Some(allowed) = &self.allowed {
            batch.retain(|&id| allowed_contains(allowed, id));
        }
        if let (EpochOrder::Block(order), ResolvedIo::DiskWindows, true) = (epoch.order(), self.io, self.read_lines) {
            let size = self.batcher.options().batch_size as u64;
            let w = order.window_of(b * size);
            self.request_windows(e, w, order)?;
        }
        // Nothing here loads from a map: the files are checked unchanged on the consumer's
        // side, before the first read (a load of a truncated file's page is `SIGBUS`). Lines
        // followed by skipped lines are cut at their newline there too, or once read with
        // `pread`; without the `line` column no end is needed at all.
        let mut located = self.batcher.locate_with(batch.line_ids())?;
        match self.io {
            _ if !self.read_lines => {}
            ResolvedIo::Cached => located.prefetch(),
            ResolvedIo::DiskLines => located.read_into_memory()?,
            // (Touching the lines here, to take the window's page-cache misses on this
            // thread, measured slower anyway: 8.3 s against 7.1 s, beyond-RAM block epoch.)
            ResolvedIo::DiskWindows | ResolvedIo::Sequential => {}
        }
        Ok(Ready { batch, located })
    }

    /// Entering window `w` of epoch `e`: keep [`WINDOWS_AHEAD`] windows after it
    /// requested, and release the window before it.
    fn request_windows(&mut self, e: u64, w: u64, order: &crate::order::BlockOrder) -> Result<()> {
        if self.window.as_ref().is_some_and(|win| (win.epoch, win.number) == (e, w)) {
            return Ok(());
        }
        let corpus = self.batcher.corpus();
        let mut next = w;
        if let Some(old) = self.window.take() {
            for (f, r) in old.ranges {
                corpus.file(f)?.source.release(r);
            }
            if old.epoch == e {
                next = old.requested.max(w);
            }
        }
        let last = (w + WINDOWS_AHEAD).min(order.num_windows().saturating_sub(1));
        for win in next..=last {
            for (f, range) in self.window_ranges(order, win)? {
                let file = corpus.file(f)?;
                let prefetcher = match self.prefetchers.entry(f) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        file.source.file().ok().and_then(|f| Prefetcher::new(f, 1024, PREFETCH_THREADS)).map(|p| v.insert(p))
                    }
                };
                if let Some(p) = prefetcher {
                    p.request(range.start as u64..range.end as u64);
                }
            }
        }
        let ranges = self.window_ranges(order, w)?;
        self.window = Some(Window { epoch: e, number: w, ranges, requested: last + 1 });
        Ok(())
    }

    /// The byte ranges `(file, bytes)` of window `w`'s blocks.
    fn window_ranges(&self, order: &crate::order::BlockOrder, w: u64) -> Result<Vec<(usize, Range<usize>)>> {
        let corpus = self.batcher.corpus();
        let mut out = Vec::new();
        if w >= order.num_windows() {
            return Ok(out);
        }
        for lines in order.window_blocks(w) {
            let (f, first) = corpus.locate(lines.start);
            let file = corpus.file(f)?;
            let last = first + (lines.end - lines.start);
            let start = file.index.start(first) as usize;
            let end = if last < file.index.len() { file.index.start(last) as usize } else { file.source.bytes().len() };
            out.push((f, start..end));
        }
        Ok(out)
    }
}
