//! Reading batches in order, the next ones prepared ahead by a pool of builders: the epoch
//! order computed, the lines located in the index, and their reads started — prefetched
//! into the CPU cache when the corpus is in the page cache, read with `pread` into the
//! batch's own buffer or requested from the disk ahead of time when it is not (every line
//! of the next batches for the global shuffle, the next window's blocks for the block
//! shuffle, whose finished windows are released).
//!
//! Each builder takes the next unit, prepares it, and hands it back tagged with its place;
//! the consumer puts them back in order. At most [`in_flight`] batches are taken and not yet
//! handed out, so memory stays bounded by that many batches' located lines (and, read from
//! disk, their bytes). A batch is a pure function of its `(epoch, batch)`, so the stream is
//! the same for any number of builders.
//!
//! A builder that assembles reads the maps under the `SIGBUS` guard (`source::truncation`),
//! after the check that comes with each read; every batch is checked once more when it is
//! handed out, for a file changed since it was built.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::arrow::Column;
use crate::batcher::{Batch, Batcher, Epoch, Located};
use crate::error::Result;
use crate::order::EpochOrder;
use crate::source::{Prefetcher, ResolvedIo};

/// A batch prepared by a builder.
#[derive(Debug)]
pub struct Ready {
    /// Which batch.
    pub batch: Batch,
    /// Its lines, found.
    pub located: Located,
    /// The batch as Arrow arrays with the stream's [`columns`](StreamOptions::columns),
    /// assembled by the builder.
    assembled: Option<(Arc<[Column]>, RecordBatch)>,
}

impl Ready {
    /// The batch as Arrow arrays with `columns` (see [`Batch::to_record_batch_with`]):
    /// assembled already when they are the stream's columns.
    pub fn to_record_batch(&self, columns: &[Column]) -> Result<RecordBatch> {
        match &self.assembled {
            Some((cols, rb)) if **cols == *columns => Ok(rb.clone()),
            _ => self.located.record_batch(self.batch.batcher(), self.batch.epoch(), self.batch.number(), columns),
        }
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

/// How a [`BatchStream`] reads.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Keep only the lines whose ids lie in these sorted, disjoint ranges.
    pub allowed: Option<Arc<[Range<u64>]>>,
    /// The consumer reads the lines (else no line byte is read: the columns it wants need
    /// only the index).
    pub read_lines: bool,
    /// Builder threads started for the stream, besides the consumer (which builds too in
    /// the page cache, so 0 is allowed there: it then builds every batch itself); `None`:
    /// one fewer than [`Options::build_threads`](crate::Options::build_threads) in the page
    /// cache, as many from disk.
    pub builders: Option<usize>,
    /// The builders assemble each batch as Arrow arrays with these columns (the consumer
    /// then only takes them: [`Ready::to_record_batch`]); `None`: the consumer assembles.
    pub columns: Option<Arc<[Column]>>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { allowed: None, read_lines: true, builders: None, columns: None }
    }
}

/// Batches `(epoch, batch)` of a [`Batcher`], in the order given, prepared ahead by
/// builder threads ([`Options::threads`](crate::Options::threads) in all, the consumer's
/// own included in the page cache).
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
    rx: Option<Receiver<(u64, Result<Ready>)>>,
    shared: Arc<Shared>,
    /// Batches that arrived before the one to hand out next, by place.
    arrived: BTreeMap<u64, Result<Ready>>,
    /// The place of the next batch to hand out.
    next: u64,
    /// The builders, joined on drop so that no reads outlive the stream.
    builders: Vec<std::thread::JoinHandle<()>>,
    /// The consumer reads the lines: they are cut at their newlines on its side.
    read_lines: bool,
    /// The consumer's own builder state: a consumer with no batch to hand out builds the
    /// next unit itself rather than sleeping until a builder wakes it (`None`: it never
    /// does, from disk, where the builders' reads are planned in order).
    helper: Option<Helper>,
}

/// A [`ReadAhead`] for the consumer's own builds.
struct Helper(ReadAhead);

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Helper")
    }
}

/// What the builders share: the units still to take, and the budget of batches in flight.
struct Shared {
    units: Mutex<Units>,
    /// Batches that may still be taken before the consumer hands one out.
    credits: Mutex<Credits>,
    credit_freed: Condvar,
    /// The consumer is gone, or a batch failed: take no more units.
    stop: AtomicBool,
    /// The epochs the builders work in (the last two: at an epoch's end some build its
    /// last batches while others start the next), each computed once for all of them.
    epochs: Mutex<Vec<Epoch>>,
}

impl Shared {
    /// The next unit and its place in the stream, if any is left.
    fn take_unit(&self) -> Option<(u64, (u64, u64))> {
        let mut units = lock(&self.units);
        let unit = units.iter.next()?;
        units.next += 1;
        Some((units.next - 1, unit))
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("stop", &self.stop).finish_non_exhaustive()
    }
}

struct Credits {
    left: usize,
    /// Builders waiting for one (a hand-out wakes one only then: a wake is a system call).
    waiting: usize,
}

struct Units {
    iter: Box<dyn Iterator<Item = (u64, u64)> + Send>,
    /// The place of the next unit taken.
    next: u64,
}

/// Batches a stream lets be taken and not yet handed out: two per building thread in the
/// page cache (the consumer's own included), where one batch ahead hides the order, index
/// and cache misses; four per builder from disk, so the device's queue stays full.
fn in_flight(io: ResolvedIo, builders: usize) -> usize {
    if io == ResolvedIo::Cached {
        (builders + 1) * 2
    } else {
        builders * 4
    }
}

/// The builder threads a stream starts to build on `threads` threads in all: in the page
/// cache the consumer builds too (whenever it has no finished batch to take), so one fewer
/// — a thread more than the cores only makes them take turns (on 2 cores, 1 builder and
/// the consumer served 1.65× one thread, 2 builders and the consumer 1.45×: see the
/// benchmarks doc); from disk the consumer never builds.
fn builder_threads(io: ResolvedIo, threads: usize) -> usize {
    if io == ResolvedIo::Cached {
        threads.saturating_sub(1)
    } else {
        threads.max(1)
    }
}

impl BatchStream {
    /// Starts preparing `units`.
    pub fn new(batcher: &Batcher, units: impl Iterator<Item = (u64, u64)> + Send + 'static) -> Self {
        Self::with_options(batcher, units, StreamOptions::default())
    }

    /// Like [`new`](Self::new), keeping only the lines whose ids lie in `allowed` (sorted,
    /// disjoint ranges), and without reading any line bytes unless `read_lines`.
    pub fn with_filter(
        batcher: &Batcher,
        units: impl Iterator<Item = (u64, u64)> + Send + 'static,
        allowed: Option<Arc<[Range<u64>]>>,
        read_lines: bool,
    ) -> Self {
        Self::with_options(batcher, units, StreamOptions { allowed, read_lines, ..Default::default() })
    }

    /// Starts preparing `units` as `options` say.
    pub fn with_options(batcher: &Batcher, units: impl Iterator<Item = (u64, u64)> + Send + 'static, options: StreamOptions) -> Self {
        crate::source::guard_map_reads();
        let io = batcher.corpus().io();
        let helps = io == ResolvedIo::Cached;
        let builders = options.builders.unwrap_or_else(|| builder_threads(io, batcher.options().build_threads()));
        // Someone has to build: without the consumer, at least one builder.
        let builders = if helps { builders } else { builders.max(1) };
        let shared = Arc::new(Shared {
            units: Mutex::new(Units { iter: Box::new(units), next: 0 }),
            credits: Mutex::new(Credits { left: in_flight(io, builders), waiting: 0 }),
            credit_freed: Condvar::new(),
            stop: AtomicBool::new(false),
            epochs: Mutex::new(Vec::new()),
        });
        let (tx, rx) = channel();
        let mut spawn_error = None;
        let windows = Arc::new(Mutex::new(WindowReads::default()));
        let read_ahead = || ReadAhead {
            batcher: batcher.clone(),
            windows: windows.clone(),
            io,
            allowed: options.allowed.clone(),
            read_lines: options.read_lines,
            columns: options.columns.clone(),
        };
        let handles: Vec<_> = (0..builders)
            .filter_map(|_| {
                let ahead = read_ahead();
                let (shared, tx) = (shared.clone(), tx.clone());
                let spawned = std::thread::Builder::new().name("mmb-builder".into()).spawn(move || build(ahead, &shared, &tx));
                spawned.map_err(|e| spawn_error = Some(e)).ok()
            })
            .collect();
        let mut arrived = BTreeMap::new();
        if let (true, Some(e)) = (handles.is_empty(), spawn_error) {
            // Fewer builders than asked for only slow the stream; none ends it.
            arrived.insert(0, Err(crate::Error::Internal { message: format!("could not start a batch builder thread: {e}") }));
        }
        let helper = helps.then(|| Helper(read_ahead()));
        BatchStream { rx: Some(rx), shared, arrived, next: 0, builders: handles, read_lines: options.read_lines, helper }
    }

    /// Waits up to `timeout` for the next batch.
    pub fn wait(&mut self, timeout: Duration) -> Wait {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(ready) = self.arrived.remove(&self.next) {
                return self.hand_out(ready);
            }
            let Some(rx) = &self.rx else {
                // Every builder hung up, none panicked: what is left arrived already, so a
                // batch missing before the others is one no one sent (never a silent gap).
                if self.arrived.is_empty() {
                    return Wait::Done;
                }
                self.arrived.clear();
                return Wait::Batch(Box::new(Err(crate::Error::Internal { message: "a batch of the stream was never built".into() })));
            };
            let got = match rx.try_recv() {
                Ok(x) => Ok(x),
                // No builder left (or none started): the consumer builds what is left.
                Err(std::sync::mpsc::TryRecvError::Disconnected) if self.help() => continue,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(()),
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    // Nothing ready: build the next unit here, if there is one to take.
                    if self.help() {
                        continue;
                    }
                    let Some(rx) = &self.rx else { continue };
                    match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                        Ok(x) => Ok(x),
                        Err(RecvTimeoutError::Timeout) => return Wait::Pending,
                        Err(RecvTimeoutError::Disconnected) => Err(()),
                    }
                }
            };
            match got {
                Ok((place, ready)) => {
                    self.arrived.insert(place, ready);
                }
                Err(()) => {
                    self.rx = None;
                    // Every builder hung up: the units ran out, or one panicked (a bug)
                    // and its batch never came — never a silent early end.
                    let panicked = self.builders.drain(..).map(std::thread::JoinHandle::join).any(|r| r.is_err());
                    if panicked {
                        self.arrived.clear();
                        return Wait::Batch(Box::new(Err(crate::Error::Internal {
                            message: "a batch builder panicked; batches after this one were not served".into(),
                        })));
                    }
                }
            }
        }
    }

    /// Hands out the next batch, checked and cut on this side, and frees its place.
    fn hand_out(&mut self, ready: Result<Ready>) -> Wait {
        self.next += 1;
        if ready.is_err() {
            // The stream ends at its first error: nothing after it is handed out.
            self.stop_builders();
        } else {
            let mut credits = lock(&self.shared.credits);
            credits.left += 1;
            if credits.waiting > 0 {
                self.shared.credit_freed.notify_one();
            }
        }
        Wait::Batch(Box::new(ready.and_then(|mut r| {
            r.located.check_unchanged()?;
            if self.read_lines {
                r.located.resolve_gaps()?;
            }
            Ok(r)
        })))
    }

    /// Builds the next unit on the consumer's thread, if one can be taken now (a credit
    /// free, a unit left), into `arrived`: true if it did. A consumer faster than the
    /// builders otherwise sleeps for each batch and is woken by the one that sends it (a
    /// system call and a context switch per batch, each on the cores the builders use).
    fn help(&mut self) -> bool {
        let Some(Helper(ahead)) = &mut self.helper else { return false };
        let shared = &self.shared;
        {
            let mut credits = lock(&shared.credits);
            if credits.left == 0 || shared.stop.load(Ordering::Relaxed) {
                return false;
            }
            credits.left -= 1;
        }
        let Some((place, (e, b))) = shared.take_unit() else {
            lock(&shared.credits).left += 1;
            self.helper = None;
            return false;
        };
        let ready = shared_epoch(shared, &ahead.batcher, e).and_then(|epoch| ahead.prepare(&epoch, b));
        self.arrived.insert(place, ready);
        true
    }

    fn stop_builders(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Under the lock, so that a builder about to wait sees `stop` first.
        drop(lock(&self.shared.credits));
        self.shared.credit_freed.notify_all();
        self.arrived.clear();
        self.rx = None;
    }
}

/// Locks a mutex, ignoring poisoning: a builder that panicked is reported by its join.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A builder's loop: take a credit, then the next unit, prepare it, send it back with its
/// place. (A credit before the unit: a builder holding a unit while it waits for a credit
/// could wait for its own batch.)
fn build(mut ahead: ReadAhead, shared: &Shared, tx: &Sender<(u64, Result<Ready>)>) {
    loop {
        {
            let mut credits = lock(&shared.credits);
            while credits.left == 0 && !shared.stop.load(Ordering::Relaxed) {
                credits.waiting += 1;
                credits = shared.credit_freed.wait(credits).unwrap_or_else(|p| p.into_inner());
                credits.waiting -= 1;
            }
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            credits.left -= 1;
        }
        let Some((place, (e, b))) = shared.take_unit() else { return };
        let ready = shared_epoch(shared, &ahead.batcher, e).and_then(|epoch| ahead.prepare(&epoch, b));
        let failed = ready.is_err();
        // The receiver is gone when the consumer dropped the stream: stop early.
        if tx.send((place, ready)).is_err() || failed {
            shared.stop.store(true, Ordering::Relaxed);
            drop(lock(&shared.credits));
            shared.credit_freed.notify_all();
            return;
        }
    }
}

/// Epoch `e`, computed by the first builder that needs it (its order and the sweep that
/// checks every file unchanged are once per epoch, not once per builder).
fn shared_epoch(shared: &Shared, batcher: &Batcher, e: u64) -> Result<Epoch> {
    let mut epochs = lock(&shared.epochs);
    if let Some(ep) = epochs.iter().find(|ep| ep.number() == e) {
        return Ok(ep.clone());
    }
    let ep = batcher.epoch(e)?;
    if epochs.len() == 2 {
        epochs.remove(0);
    }
    epochs.push(ep.clone());
    Ok(ep)
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Stopping the builders first makes each finish the batch it is preparing and take
        // no other (found by the IPC fuzz target: a helper left running past the stream).
        self.stop_builders();
        for builder in self.builders.drain(..) {
            // The consumer stopped reading: a panic here has no one left to report to.
            let _ = builder.join();
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
/// ranges `(file, bytes)` of its blocks, released when a later window starts.
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

/// The block shuffle's reads from disk, one per stream: every builder of the stream enters
/// windows through it, so the windows are requested ahead once, in order, whichever
/// builder gets to a window first.
#[derive(Default)]
struct WindowReads {
    /// The latest window a builder entered.
    window: Option<Window>,
    /// A reader per file for the next window's blocks.
    prefetchers: std::collections::HashMap<usize, Prefetcher>,
}

/// A builder's state.
struct ReadAhead {
    batcher: Batcher,
    windows: Arc<Mutex<WindowReads>>,
    io: ResolvedIo,
    allowed: Option<Arc<[Range<u64>]>>,
    read_lines: bool,
    columns: Option<Arc<[Column]>>,
}

/// True when `id` lies in one of the sorted, disjoint `ranges`.
pub(crate) fn allowed_contains(ranges: &[Range<u64>], id: u64) -> bool {
    let i = ranges.partition_point(|r| r.end <= id);
    ranges.get(i).is_some_and(|r| r.contains(&id))
}

impl ReadAhead {
    fn prepare(&mut self, epoch: &Epoch, b: u64) -> Result<Ready> {
        let e = epoch.number();
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
        // Lines followed by skipped lines are cut at their newline (in the map, checked
        // unchanged first), or once read with `pread`; without the `line` column no end is
        // needed at all. Every read of a map is guarded (`source::truncation`).
        let mut located = self.batcher.locate_with(batch.line_ids())?;
        match self.io {
            _ if !self.read_lines => {}
            // A builder that assembles reads the lines next, itself (`touch` overlaps
            // their misses); prefetching is for the consumer that will.
            ResolvedIo::Cached if self.columns.is_some() => {}
            ResolvedIo::Cached => located.prefetch(),
            ResolvedIo::DiskLines => located.read_into_memory()?,
            // (Touching the lines here, to take the window's page-cache misses on this
            // thread, measured slower anyway: 8.3 s against 7.1 s, beyond-RAM block epoch.)
            ResolvedIo::DiskWindows | ResolvedIo::Sequential => {}
        }
        let assembled = match &self.columns {
            Some(columns) => {
                // Each read of the map below checks the files first.
                if self.read_lines {
                    located.resolve_gaps()?;
                }
                let rb = located.record_batch(&self.batcher, e, b, columns)?;
                Some((columns.clone(), rb))
            }
            None => None,
        };
        Ok(Ready { batch, located, assembled })
    }

    /// Entering window `w` of epoch `e`: keep [`WINDOWS_AHEAD`] windows after it
    /// requested, and release the window before it. A builder still on an earlier window
    /// (the others have moved on: they are at most the batches in flight ahead) changes
    /// nothing.
    fn request_windows(&self, e: u64, w: u64, order: &crate::order::BlockOrder) -> Result<()> {
        let mut reads = lock(&self.windows);
        if reads.window.as_ref().is_some_and(|win| (win.epoch, win.number) >= (e, w)) {
            return Ok(());
        }
        let corpus = self.batcher.corpus();
        let mut next = w;
        if let Some(old) = reads.window.take() {
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
                let prefetcher = match reads.prefetchers.entry(f) {
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
        reads.window = Some(Window { epoch: e, number: w, ranges, requested: last + 1 });
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
