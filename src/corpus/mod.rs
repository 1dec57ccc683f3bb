//! The files served together as one corpus: each with its own index, numbered into one
//! space of line ids (file after file, in the order given), mapped lazily and unmapped
//! least-recently-used first when more than `max_open_files` are open. A single file is
//! the one-element case and stays open.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::arrow::Windows;
use crate::error::{Error, Result};
use crate::index::{open_index, IndexRequest, IndexStatus, LineIndex, LineSpan, Utf8Verdict};
use crate::options::{FilePolicy, LineType, Options, Shuffle};
use crate::order::BlockLayout;
use crate::source::{Cancel, ChangeWatch, Identity, ResolvedIo, SourceFile};

pub(crate) mod packed;
pub(crate) use packed::PackedLines;

/// A file of the corpus, mapped and indexed.
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub source: SourceFile,
    pub index: LineIndex,
    pub windows: Windows,
    pub index_status: IndexStatus,
}

impl OpenFile {
    /// The span of local line `k`.
    #[inline]
    pub fn span(&self, k: u64) -> LineSpan {
        self.index.span(k, self.source.bytes())
    }
}

/// The files of one batch, kept mapped while it lives, indexed by the batch's slots.
pub(crate) enum BatchFiles {
    /// Each held by a count of its own (one file, or a corpus that maps files on demand).
    Held(Vec<Arc<OpenFile>>),
    /// Files of a corpus that keeps every file mapped: one count holds them all. A batch
    /// drawn from a tree touches a thousand files, and a lock and a count on each, in
    /// cache lines no other batch had touched lately, were a tenth of its time.
    Pinned { all: Arc<Pinned>, ids: Vec<usize> },
    /// Every file of a corpus whose lines are served from its [`PackedLines`], a batch's
    /// slots being the files' numbers in the corpus: finding a batch's lines then looks at
    /// no file.
    Packed(Arc<Pinned>),
}

/// Every file of a corpus that keeps them all mapped, and what is known of all of them at
/// once: fixed when the corpus is opened, from these very files, and never changed.
#[derive(Debug)]
pub(crate) struct Pinned {
    files: Box<[Arc<OpenFile>]>,
    /// The watch that watches every one of the files (each descriptor released), if one does.
    watch: Option<Arc<ChangeWatch>>,
    /// Every file's index found every kept line UTF-8.
    utf8: bool,
    /// The lines of every file as one array: built at the first batch.
    packed: std::sync::OnceLock<Option<PackedLines>>,
    /// The views the packed lines are checked for: their line type, and whether they keep
    /// terminators (`None`: never built, for a corpus read from disk or with a file of
    /// several windows).
    packable: Option<(LineType, bool)>,
}

impl Pinned {
    fn new(files: Box<[Arc<OpenFile>]>, watch: Option<&Arc<ChangeWatch>>, options: &Options, io: ResolvedIo) -> Self {
        let watch = watch.filter(|w| files.iter().all(|f| f.source.is_watched_by(w))).cloned();
        let utf8 = files.iter().all(|f| f.index.utf8() == Utf8Verdict::Valid);
        // (A file without lines, such as an empty one, needs no buffer.)
        let one_buffer = |f: &OpenFile| f.windows.one_buffer().is_some() || f.index.len() == 0;
        let packable = (files.len() > 1 && io == ResolvedIo::Cached && files.iter().all(|f| one_buffer(f)))
            .then_some((options.line_type, options.keep_terminator));
        Pinned { files, watch, utf8, packed: std::sync::OnceLock::new(), packable }
    }

    /// The packed lines of every file, built now if this is the first ask (`None` if they
    /// cannot be: see [`PackedLines::build`]).
    pub(crate) fn packed(&self) -> Option<&PackedLines> {
        let (line_type, keep_terminator) = self.packable?;
        // At most an eighth of the memory there is, as for an index built from a copy.
        self.packed.get_or_init(|| PackedLines::build(&self.files, line_type, keep_terminator, crate::source::memory_budget() / 8)).as_ref()
    }
}

impl BatchFiles {
    /// True when every file of the batch is known unchanged without a look at each: they
    /// are all watched by one watch that, drained now, reports no event. `false` only means
    /// that each file must be checked.
    pub(crate) fn all_unchanged_at_once(&self) -> bool {
        match self {
            BatchFiles::Pinned { all, .. } | BatchFiles::Packed(all) => all.watch.as_ref().is_some_and(|w| {
                w.poll();
                w.all_quiet()
            }),
            BatchFiles::Held(_) => false,
        }
    }

    /// True when every file of the batch is known, from the open, to hold only UTF-8 kept
    /// lines (`false`: ask each file's index).
    fn all_utf8(&self) -> bool {
        matches!(self, BatchFiles::Pinned { all, .. } | BatchFiles::Packed(all) if all.utf8)
    }

    /// True when what [`Utf8Checked::check`](crate::arrow::Utf8Checked::check) would find
    /// of each file of the batch is known of all at once: [`all_utf8`](Self::all_utf8) and
    /// [`all_unchanged_at_once`](Self::all_unchanged_at_once).
    pub(crate) fn utf8_known(&self) -> bool {
        self.all_utf8() && self.all_unchanged_at_once()
    }

    /// The packed lines the batch was found in, if it was (see [`BatchFiles::Packed`]).
    pub(crate) fn packed(&self) -> Option<&PackedLines> {
        match self {
            BatchFiles::Packed(all) => all.packed(),
            _ => None,
        }
    }
}

impl BatchFiles {
    pub(crate) fn len(&self) -> usize {
        match self {
            BatchFiles::Held(files) => files.len(),
            BatchFiles::Pinned { ids, .. } => ids.len(),
            BatchFiles::Packed(all) => all.files.len(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &OpenFile> + '_ {
        (0..self.len()).map(move |slot| &self[slot])
    }

    pub(crate) fn first(&self) -> Option<&OpenFile> {
        (self.len() > 0).then(|| &self[0])
    }
}

impl std::fmt::Debug for BatchFiles {
    /// The batch's files only (not the whole corpus a pinned batch holds).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let BatchFiles::Packed(all) = self {
            return write!(f, "the packed lines of {} files", all.files.len());
        }
        f.debug_list().entries(self.iter().map(|file| file.source.path())).finish()
    }
}

impl std::ops::Index<usize> for BatchFiles {
    type Output = OpenFile;

    #[inline]
    fn index(&self, slot: usize) -> &OpenFile {
        match self {
            BatchFiles::Held(files) => &files[slot],
            BatchFiles::Pinned { all, ids } => &all.files[ids[slot]],
            BatchFiles::Packed(all) => &all.files[slot],
        }
    }
}

/// What the corpus keeps of each file, open or not.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    identity: Identity,
    physical_lines: u64,
    status: IndexStatus,
    utf8: Utf8Verdict,
    /// `None` while unmapped (many-file corpora only).
    open: Mutex<Option<Arc<OpenFile>>>,
    last_used: AtomicU64,
}

/// One file as its parallel open hands it back.
struct Opened {
    entry: Entry,
    lines: u64,
    /// Block cut points, as local line ids.
    cuts: Vec<u64>,
    notices: Vec<String>,
}

/// The files of a corpus and their line-id ranges.
#[derive(Debug)]
pub(crate) struct Corpus {
    entries: Vec<Entry>,
    /// Every file, when all stay mapped for the corpus's life (none is ever unmapped).
    pinned: Option<Arc<Pinned>>,
    /// Where each file's line ids start.
    starts: crate::file_starts::FileStarts,
    /// The options of the open, for re-opening an unmapped file the same way.
    options: Options,
    io: ResolvedIo,
    /// Files kept mapped at most (`max_open_files`, or its default for `io`).
    max_open: usize,
    /// The change check of files mapped without a descriptor (none in the disk modes,
    /// or where inotify is unavailable).
    watch: Option<Arc<ChangeWatch>>,
    open_count: AtomicUsize,
    clock: AtomicU64,
    blocks: BlockLayout,
    /// Notices of the open (stale indexes rebuilt, indexes kept in memory, files skipped).
    notices: Vec<String>,
    /// Files left out under `on_bad_file = Skip`, with why.
    skipped: Vec<(PathBuf, String)>,
    /// The files in the order of their directories, and the directories (for the paths'
    /// check at each epoch).
    by_dir: std::sync::OnceLock<(Vec<u32>, Vec<PathBuf>)>,
    /// What each of those directories was (device, inode) when every file last passed the
    /// paths' check (see [`check_paths_unchanged`](Self::check_paths_unchanged)).
    dirs_passed: Mutex<Option<crate::source::DirIdentities>>,
}

impl Corpus {
    /// Opens and indexes every file of `paths`, on all cores for many files.
    pub(crate) fn open(paths: &[PathBuf], options: &Options, progress: &(dyn Fn(u64) + Sync), cancel: &dyn Cancel) -> Result<Self> {
        let mut notices = Vec::new();
        let (unique, metas) = served_once(paths, options.on_duplicate_file, &mut notices)?;
        let paths = &unique[..];
        // Decided before any file is mapped: the index build's reads already come in the
        // page sizes the epochs want (the kernel keeps cached pages at the size read).
        let total_bytes: u64 = metas.iter().flatten().map(|m| m.len()).sum();
        let untrusted = if options.trust_files { 0 } else { metas.iter().flatten().filter(|m| crate::source::others_can_write(m)).count() };
        let io = if untrusted > 0 {
            // Views into a map that someone else can change without a trace are unsound:
            // read every line into the batch's own buffer, validated there.
            ResolvedIo::DiskLines
        } else {
            ResolvedIo::resolve(options.io, total_bytes, options.shuffle)
        };
        let max_open = options.max_open_files.unwrap_or_else(|| Options::default_max_open_files(io.reads_with_descriptor()));
        let keep_open = paths.len() <= max_open;
        let watch = if io.reads_with_descriptor() { None } else { ChangeWatch::new() };
        let block_bytes = match options.shuffle {
            Shuffle::Block { block_bytes, .. } => Some(block_bytes),
            _ => None,
        };
        // What the corpus keeps of each file opened: the file itself only if it stays
        // mapped (a corpus of more files than `max_open_files` maps them on demand, so the
        // open must not hold a descriptor per file either).
        let slots = pack_slots(&metas, io, keep_open);
        let open_one = |i: usize| -> Result<Opened> {
            let path = &paths[i];
            let mut notices = Vec::new();
            let slot = lock(&slots[i]).take();
            let file = open_file(path, options, Serving { io, watch: watch.as_ref() }, progress, cancel, &mut notices, Opening::First(slot))?;
            if let (Utf8Verdict::Invalid { line_id, offset }, FilePolicy::Skip, LineType::Utf8) =
                (file.index.utf8(), options.on_bad_file, options.line_type)
            {
                // Skipped now rather than failing its first batch later.
                return Err(Error::InvalidUtf8 { path: path.to_path_buf(), line_number: file.index.line_number(line_id), byte_offset: offset });
            }
            let cuts = block_bytes.map_or_else(Vec::new, |b| block_cuts(&file.index, file.source.bytes().len() as u64, b));
            let status = file.index_status.clone();
            let entry = Entry {
                path: path.to_path_buf(),
                identity: *file.source.identity(),
                physical_lines: file.index.physical_lines(),
                utf8: file.index.utf8(),
                open: Mutex::new(None),
                last_used: AtomicU64::new(0),
                status,
            };
            // Files indexed in memory only stay mapped: re-indexing them would cost a build.
            let stays_open = keep_open || entry.status.path().is_none();
            let lines = file.index.len();
            *lock(&entry.open) = stays_open.then(|| Arc::new(file));
            Ok(Opened { entry, lines, cuts, notices })
        };
        let mut results: Vec<Option<Result<Opened>>> = (0..paths.len()).map(|_| None).collect();
        if paths.len() == 1 {
            results[0] = Some(open_one(0));
        } else {
            // Many files: one file per thread at a time (each build is itself parallel
            // only for files over 2 MiB).
            let next = AtomicUsize::new(0);
            let slots: Vec<Mutex<Option<Result<Opened>>>> = (0..paths.len()).map(|_| Mutex::new(None)).collect();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(paths.len());
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= paths.len() {
                            break;
                        }
                        let r = open_one(i);
                        let skip = options.on_bad_file == FilePolicy::Skip;
                        let failed = r.as_ref().is_err_and(|e| !(skip && e.is_bad_file()));
                        *lock(&slots[i]) = Some(r);
                        if failed {
                            // Stop the others early: the first error in path order wins below.
                            next.store(paths.len(), Ordering::Relaxed);
                        }
                    });
                }
            });
            for (i, slot) in slots.into_iter().enumerate() {
                results[i] = slot.into_inner().unwrap_or_else(|p| p.into_inner());
            }
        }
        let mut entries = Vec::with_capacity(paths.len());
        let mut first = vec![0u64];
        let mut all_cuts = vec![0u64];
        let mut skipped: Vec<(PathBuf, String)> = Vec::new();
        let mut first_bad: Option<Error> = None;
        if untrusted > 0 {
            notices.push(format!(
                "{untrusted} of the files can be written by another user: their lines are read into memory and \
                 validated, not served zero-copy from the map (trust_files=True / --trust-files to map them)"
            ));
        }
        for result in results {
            // A file not reached because an earlier one failed: report that earlier error.
            let Some(result) = result else { continue };
            let mut opened = match result {
                Err(e) if options.on_bad_file == FilePolicy::Skip && e.is_bad_file() => {
                    skipped.push((e.path().map(Path::to_path_buf).unwrap_or_default(), e.to_string()));
                    first_bad.get_or_insert(e);
                    continue;
                }
                r => r?,
            };
            notices.append(&mut opened.notices);
            let base = *first.last().unwrap_or(&0);
            all_cuts.extend(opened.cuts.iter().map(|c| base + c));
            all_cuts.push(base + opened.lines);
            first.push(base + opened.lines);
            entries.push(opened.entry);
        }
        if entries.is_empty() {
            // Every file was bad: the first one's error says why.
            return Err(first_bad.unwrap_or(Error::NoInput { pattern: "(inputs)".into() }));
        }
        if entries.len() + skipped.len() != paths.len() {
            return Err(Error::Internal { message: "a file of the corpus was neither opened nor skipped".into() });
        }
        if !skipped.is_empty() {
            notices.push(skipped_notice(&skipped));
        }
        let open_count = entries.iter().filter(|e| lock(&e.open).is_some()).count();
        let n = *first.last().unwrap_or(&0);
        // Files are unmapped only to stay within `max_open`: with every file mapped and
        // within it, none ever is.
        let pinned = (open_count == entries.len() && open_count <= max_open)
            .then(|| Arc::new(Pinned::new(entries.iter().filter_map(|e| lock(&e.open).clone()).collect(), watch.as_ref(), options, io)));
        let corpus = Corpus {
            pinned,
            entries,
            starts: crate::file_starts::FileStarts::new(first),
            options: options.clone(),
            io,
            max_open,
            watch,
            open_count: AtomicUsize::new(open_count),
            clock: AtomicU64::new(0),
            blocks: if block_bytes.is_some() { BlockLayout::from_starts(all_cuts) } else { BlockLayout::single(n) },
            notices,
            skipped,
            by_dir: std::sync::OnceLock::new(),
            dirs_passed: Mutex::new(None),
        };
        Ok(corpus)
    }

    pub(crate) fn num_files(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn num_lines(&self) -> u64 {
        self.starts.total()
    }

    pub(crate) fn physical_lines(&self) -> u64 {
        self.entries.iter().map(|e| e.physical_lines).sum()
    }

    pub(crate) fn physical_lines_of(&self, f: usize) -> u64 {
        self.entries[f].physical_lines
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(|e| e.path.as_path())
    }

    pub(crate) fn path(&self, f: usize) -> &Path {
        &self.entries[f].path
    }

    pub(crate) fn identity(&self, f: usize) -> &Identity {
        &self.entries[f].identity
    }

    pub(crate) fn index_status(&self, f: usize) -> &IndexStatus {
        &self.entries[f].status
    }

    pub(crate) fn utf8(&self, f: usize) -> Utf8Verdict {
        self.entries[f].utf8
    }

    pub(crate) fn io(&self) -> ResolvedIo {
        self.io
    }

    pub(crate) fn blocks(&self) -> &BlockLayout {
        &self.blocks
    }

    pub(crate) fn notices(&self) -> &[String] {
        &self.notices
    }

    pub(crate) fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// The line-id range of file `f`.
    pub(crate) fn file_lines(&self, f: usize) -> std::ops::Range<u64> {
        self.starts.lines_of(f)
    }

    /// The file holding line `id`, and the line's id within it.
    #[inline]
    pub(crate) fn locate(&self, id: u64) -> (usize, u64) {
        if self.entries.len() == 1 {
            return (0, id);
        }
        self.starts.locate(id)
    }

    /// Every file, when the corpus keeps them all mapped, with their lines as one array
    /// (built at the first ask; see [`PackedLines`]).
    pub(crate) fn packed(&self) -> Option<(&Arc<Pinned>, &PackedLines)> {
        let all = self.pinned.as_ref()?;
        Some((all, all.packed()?))
    }

    /// Files `fs`, each as [`file`](Self::file) gives it. A batch drawn at random from a
    /// tree touches thousands of files whose entries are cold: a miss on each entry's lock
    /// and another on its file's count, one after another, were a tenth of a global epoch
    /// over 30,000 files; asked for all at once first, they overlap.
    pub(crate) fn files(&self, fs: &[usize]) -> Result<BatchFiles> {
        if let Some(all) = &self.pinned {
            for &f in fs {
                crate::source::prefetch_value(&*all.files[f]);
            }
            return Ok(BatchFiles::Pinned { all: all.clone(), ids: fs.to_vec() });
        }
        for &f in fs {
            crate::source::prefetch_value(&self.entries[f].open);
        }
        for &f in fs {
            if let Some(file) = lock(&self.entries[f].open).as_ref() {
                crate::source::prefetch_value(&**file);
            }
        }
        Ok(BatchFiles::Held(fs.iter().map(|&f| self.file(f)).collect::<Result<_>>()?))
    }

    /// File `f`, mapped (re-mapping it if it was unmapped, and checking it is the same
    /// file the corpus indexed).
    pub(crate) fn file(&self, f: usize) -> Result<Arc<OpenFile>> {
        if let Some(all) = &self.pinned {
            return Ok(all.files[f].clone());
        }
        let entry = &self.entries[f];
        if self.entries.len() > self.max_open {
            // Only an evicting corpus needs the order of use: the shared clock is a cache
            // line both batch threads write (10% of a global epoch over 30,000 files).
            entry.last_used.store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        }
        {
            let guard = lock(&entry.open);
            if let Some(file) = guard.as_ref() {
                return Ok(file.clone());
            }
        }
        let mut notices = Vec::new();
        // The same keep rules, I/O and trust as at the open; the index file found then.
        let file = open_file(
            &entry.path,
            &self.options,
            Serving { io: self.io, watch: self.watch.as_ref() },
            &|_| {},
            &crate::source::NeverCancel,
            &mut notices,
            Opening::Again(entry.status.path()),
        )
        .map_err(|e| self.explain_exhaustion(e))?;
        if let Some(what) = entry.identity.difference(file.source.identity()) {
            return Err(Error::FileChanged { path: entry.path.clone(), what });
        }
        let file = Arc::new(file);
        let mut guard = lock(&entry.open);
        if let Some(existing) = guard.as_ref() {
            return Ok(existing.clone());
        }
        *guard = Some(file.clone());
        drop(guard);
        if self.open_count.fetch_add(1, Ordering::Relaxed) + 1 > self.max_open {
            self.evict_some(f);
        }
        Ok(file)
    }

    /// Checks by `stat` that every path still names the file indexed, unchanged, without
    /// mapping the files not mapped now: on every core for many files, the files of each
    /// directory one after another so that each directory is resolved once. The first file
    /// in corpus order that changed is the error.
    ///
    /// When one watch watches every file and has reported nothing since the open, a `stat`
    /// of each directory stands for those of the files: each directory still the one it
    /// was when every file last passed this check, no file's name in it can name another
    /// file now, since renaming over a watched file, removing it or moving it are events of
    /// its watch (its link count or its name changes), and the watch says the files are
    /// unchanged. (What only a file's own `stat` would see: a write through another
    /// process's writable map of it, which the reader's own files alone allow.) The first
    /// check after the open is always the files' own: it also sees a path replaced before
    /// its watch was added (by path), which then watches the new file.
    pub(crate) fn check_paths_unchanged(&self) -> Result<()> {
        let (by_dir, dirs) = self.by_dir.get_or_init(|| {
            let parent = |f: u32| crate::source::parent_dir(&self.entries[f as usize].path);
            let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
            order.sort_by(|&a, &b| parent(a).cmp(parent(b)));
            let mut dirs: Vec<PathBuf> = order.iter().map(|&f| parent(f).to_path_buf()).collect();
            dirs.dedup();
            (order, dirs)
        });
        let watched = self.pinned.as_ref().and_then(|p| p.watch.as_ref()).is_some_and(|w| {
            w.poll();
            w.all_quiet()
        });
        let now = watched.then(|| crate::source::dir_identities(dirs));
        if let Some(now) = &now {
            if now.iter().all(Option::is_some) && lock(&self.dirs_passed).as_ref() == Some(now) {
                return Ok(());
            }
        }
        self.check_each_path(by_dir)?;
        // The directories were looked at before the files: what they were when all passed.
        *lock(&self.dirs_passed) = now;
        Ok(())
    }

    /// [`check_paths_unchanged`](Self::check_paths_unchanged) of each file, by `stat`.
    fn check_each_path(&self, by_dir: &[u32]) -> Result<()> {
        // The earliest file (in corpus order) of `files` that changed, and why.
        let check = |files: &[u32]| -> Option<(u32, Error)> {
            let mut stats = crate::source::PathStats::default();
            let mut first: Option<(u32, Error)> = None;
            for &f in files {
                if first.as_ref().is_some_and(|(g, _)| *g < f) {
                    continue;
                }
                if let Err(e) = self.check_path_unchanged(f as usize, &mut stats) {
                    first = Some((f, e));
                }
            }
            first
        };
        let n = by_dir.len();
        let threads = crate::source::stat_threads(n);
        let failed = if threads == 1 {
            check(by_dir).into_iter().collect::<Vec<_>>()
        } else {
            std::thread::scope(|s| {
                let parts: Vec<_> = by_dir.chunks(n.div_ceil(threads)).map(|part| s.spawn(move || check(part))).collect();
                parts
                    .into_iter()
                    .filter_map(|h| h.join().unwrap_or_else(|_| Some((0, Error::Internal { message: "a path check panicked".into() }))))
                    .collect()
            })
        };
        match failed.into_iter().min_by_key(|(f, _)| *f) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// [`check_paths_unchanged`](Self::check_paths_unchanged) for file `f`.
    fn check_path_unchanged(&self, f: usize, stats: &mut crate::source::PathStats) -> Result<()> {
        if let Some(all) = &self.pinned {
            return all.files[f].source.check_path_unchanged(stats);
        }
        let entry = &self.entries[f];
        let open = lock(&entry.open).clone();
        match open {
            Some(file) => file.source.check_path_unchanged(stats),
            None => {
                let now = stats.identity(&entry.path).map_err(|e| Error::from_io(&entry.path, e))?;
                match entry.identity.difference(&now) {
                    Some(what) => Err(Error::FileChanged { path: entry.path.clone(), what }),
                    None => Ok(()),
                }
            }
        }
    }

    /// Out of descriptors or maps while mapping a file again: the files the batches in
    /// flight hold stay mapped whatever `max_open_files` says, so say what helps.
    fn explain_exhaustion(&self, e: Error) -> Error {
        let limit = match &e {
            Error::Io { source, .. } if source.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) => "descriptor limit (`ulimit -n`)",
            Error::Io { source, .. } if source.raw_os_error() == Some(rustix::io::Errno::NOMEM.raw_os_error()) => {
                "kernel's maps per process (`vm.max_map_count`)"
            }
            _ => return e,
        };
        let Error::Io { path, source } = e else { return e };
        Error::Io {
            source: std::io::Error::new(
                source.kind(),
                format!(
                    "{source}: the files mapped (max_open_files={}, and those the batches in flight hold) \
                     exceed the {limit}: lower --max-open-files / max_open_files, or serve smaller batches",
                    self.max_open
                ),
            ),
            path,
        }
    }

    /// Unmaps the least recently used eighth of the budget, `keep` excepted: one scan of
    /// the files per many unmaps, not one per map (a scan of 30,000 entries at every miss
    /// made a shuffled epoch over 30,000 files 380× slower than over all of them mapped).
    fn evict_some(&self, keep: usize) {
        let mut open: Vec<(u64, usize)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(i, e)| *i != keep && e.status.path().is_some())
            .filter(|(_, e)| lock(&e.open).is_some())
            .map(|(i, e)| (e.last_used.load(Ordering::Relaxed), i))
            .collect();
        let over = self.open_count.load(Ordering::Relaxed).saturating_sub(self.max_open);
        let count = (over + self.max_open / 8).max(1).min(open.len());
        if count == 0 {
            return;
        }
        open.select_nth_unstable(count - 1);
        for &(_, v) in &open[..count] {
            if lock(&self.entries[v].open).take().is_some() {
                self.open_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `paths` with every file reached a second time (same device and inode: a symlink, a
/// hard link, overlapping globs; `-` twice) left out and named in a notice, or an error;
/// and the metadata of each file kept (one `stat` each, for the open's I/O decisions;
/// `None` for standard input and paths that could not be read).
fn served_once(paths: &[PathBuf], policy: FilePolicy, notices: &mut Vec<String>) -> Result<(Vec<PathBuf>, Vec<Option<std::fs::Metadata>>)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: std::collections::HashMap<(u64, u64), &PathBuf> = std::collections::HashMap::new();
    let mut stdin: Option<&PathBuf> = None;
    let mut unique = Vec::with_capacity(paths.len());
    let mut metas = Vec::with_capacity(paths.len());
    let mut twice: Vec<(&PathBuf, &PathBuf)> = Vec::new();
    for (p, stat) in paths.iter().zip(crate::source::metadata_all(paths)) {
        let mut meta = None;
        let first = if p.as_os_str() == "-" {
            stdin.replace(p)
        } else {
            // A missing file is reported when opened, with the usual error.
            match stat {
                Ok(m) => match seen.entry((m.dev(), m.ino())) {
                    std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(p);
                        meta = Some(m);
                        None
                    }
                },
                Err(_) => None,
            }
        };
        match first {
            Some(first) if policy == FilePolicy::Error => {
                return Err(Error::DuplicateInput { path: p.clone(), first: first.clone(), second: p.clone() });
            }
            Some(first) => twice.push((p, first)),
            None => {
                unique.push(p.clone());
                metas.push(meta);
            }
        }
    }
    if !twice.is_empty() {
        let shown: Vec<String> = twice.iter().take(5).map(|(p, first)| format!("{} (= {})", p.display(), first.display())).collect();
        let more = if twice.len() > 5 { format!(", and {} more", twice.len() - 5) } else { String::new() };
        notices.push(format!(
            "{} file(s) reached twice served once: {}{more} (on_duplicate_file=\"error\" / --error-on-duplicate-files to refuse)",
            twice.len(),
            shown.join(", ")
        ));
    }
    Ok((unique, metas))
}

/// The notice of files left out under `on_bad_file = Skip`: how many, and the first few.
fn skipped_notice(skipped: &[(PathBuf, String)]) -> String {
    let shown: Vec<&str> = skipped.iter().take(3).map(|(_, why)| why.as_str()).collect();
    let more = if skipped.len() > 3 { format!("; and {} more", skipped.len() - 3) } else { String::new() };
    format!("{} file(s) skipped (on_bad_file=\"skip\" / --skip-bad-files): {}{more}", skipped.len(), shown.join("; "))
}

/// How the files of a corpus are served: the I/O decided at the open, and the watch of
/// the files mapped without a descriptor.
#[derive(Clone, Copy)]
struct Serving<'a> {
    io: ResolvedIo,
    watch: Option<&'a Arc<ChangeWatch>>,
}

/// Which open of a file: the corpus's first (with the file's place in a pack, if it has
/// one), or a re-open of a file unmapped since, with the index file found the first time.
enum Opening<'a> {
    First(Option<crate::source::Slot>),
    Again(Option<&'a Path>),
}

/// Opens, indexes and checks one file.
fn open_file(
    path: &Path,
    options: &Options,
    Serving { io, watch }: Serving<'_>,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &dyn Cancel,
    notices: &mut Vec<String>,
    opening: Opening<'_>,
) -> Result<OpenFile> {
    let (slot, index_path) = match opening {
        Opening::First(slot) => (slot, None),
        Opening::Again(index_path) => (None, index_path),
    };
    let mut source = SourceFile::open(path, cancel, slot)?;
    // The build reads the file in order (requesting reads ahead when it comes from disk),
    // in 2 MiB pages either way; the epochs' advice comes after it.
    source.advise(ResolvedIo::Cached);
    let cache = match index_path {
        Some(p) => crate::options::IndexCache::Path(p.to_path_buf()),
        None => options.index_cache.clone(),
    };
    let req = IndexRequest { rules: options.keep_rules(), cache: &cache, progress, cancel, from_disk: io != ResolvedIo::Cached, from_copy: false };
    let copy = options.io == crate::IoPolicy::Copy || (!options.trust_files && source.others_can_write());
    // From a copy when it fits, so that bytes changed during the build cannot reach the
    // index; a larger file is indexed through the map (a truncation then is an error of the
    // guarded build), its lines still read with `pread` and validated when served.
    let req = if copy && (source.bytes().len() as u64) <= crate::source::memory_budget() / 8 { IndexRequest { from_copy: true, ..req } } else { req };
    let (index, status) = open_index(&source, &req, notices)?;
    // The file may have changed while it was read: then the index describes no version of it.
    source.check_unchanged()?;
    if io != ResolvedIo::Cached {
        source.advise(io);
    }
    if io == ResolvedIo::DiskLines {
        // Random reads of the records would each be a disk read: read them all now.
        index.will_need();
    }
    if !io.reads_with_descriptor() {
        source.release_descriptor();
        if let Some(watch) = watch {
            source.watch_with(watch)?;
        }
    }
    let windows = Windows::new(&source, &index);
    Ok(OpenFile { source, index, windows, index_status: status })
}

/// Files of at most this size are mapped side by side in packs (see `source::Pack`).
const PACKED_FILE_MAX: u64 = 1 << 20;

/// The place in a pack of each small file, for a corpus of many files all of which stay
/// mapped and are served from the page cache (files never unmapped alone: a pack is
/// unmapped whole): a batch drawn from them then names one data buffer per pack, not one
/// per file. Each pack at most `MAX_LINE_LEN` bytes, the most one view buffer addresses.
fn pack_slots(metas: &[Option<std::fs::Metadata>], io: ResolvedIo, keep_open: bool) -> Vec<Mutex<Option<crate::source::Slot>>> {
    let packs = metas.len() > 1 && keep_open && io == ResolvedIo::Cached;
    let sizes: Vec<Option<u64>> = metas.iter().map(|m| m.as_ref().filter(|m| packs && m.is_file()).map(|m| m.len())).collect();
    crate::source::Pack::slots(&sizes, PACKED_FILE_MAX, crate::index::MAX_LINE_LEN).into_iter().map(Mutex::new).collect()
}

/// The block cut points of one file: the first line at or after every multiple of
/// `block_bytes`, as local line ids (0 and the line count excluded).
fn block_cuts(index: &LineIndex, file_len: u64, block_bytes: u64) -> Vec<u64> {
    let mut cuts = Vec::new();
    let mut offset = block_bytes;
    while offset < file_len {
        let k = index.first_at_or_after_offset(offset);
        if k > 0 && k < index.len() && cuts.last() != Some(&k) {
            cuts.push(k);
        }
        offset = offset.saturating_add(block_bytes);
    }
    cuts
}
