//! The input files: opened, classified, spooled when they cannot be mapped (pipes, FIFOs,
//! `/proc` files) or are compressed (gzip, zstd), mapped read-only, and checked against the
//! identity they had when they were indexed.

mod decompress;
#[allow(unsafe_code)]
mod map;
pub(crate) mod paths;
mod pread;
mod prefetch;
mod spool;
mod stat;
#[allow(unsafe_code)]
mod truncation;
mod watch;

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::buffer::Buffer;
use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::options::IoPolicy;

pub(crate) use map::{prefetch, prefetch_value, Pack, Slot};
pub(crate) use pread::read_ranges;
pub(crate) use prefetch::{mostly_uncached, read_all_detached, Prefetcher};
pub(crate) use stat::{dir_identities, metadata_all, parent_dir, stat_threads, DirIdentities, PathStats};
pub(crate) use truncation::{guarded, install as guard_map_reads, unguarded, Truncated};

/// Runs `read`, which reads batches' line views (to copy them, say), under the `SIGBUS`
/// guard of mmap-batcher's own map reads: a mapped file truncated under it is
/// [`Error::FileChanged`] instead of the end of the process, and what `read` made of the
/// zeros it then read is dropped. Views read outside such a call are not guarded.
pub fn read_guarded<T>(read: impl FnOnce() -> T) -> Result<T> {
    guarded(read)
        .map_err(|Truncated| Error::FileChanged { path: PathBuf::from("(a mapped file)"), what: "truncated while a batch's lines were read".into() })
}
pub(crate) use watch::ChangeWatch;

/// Maps an index file read-only (see [`map`] for the safety argument).
pub(crate) fn map_index(file: &File) -> std::io::Result<Mmap> {
    map::map_file(file)
}

/// What identifies one version of a file: equal identities mean the same bytes, as far as
/// the kernel lets us tell. The change time (`ctime`) cannot be set back by `touch` or
/// `utime`, so an in-place rewrite that restores the modification time is still caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Device of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl Identity {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
        }
    }

    /// What differs between `self` (as indexed) and `now`, in words; `None` if nothing.
    pub fn difference(&self, now: &Identity) -> Option<String> {
        if self.dev != now.dev || self.ino != now.ino {
            Some("it was replaced by another file".into())
        } else if self.size != now.size {
            Some(format!("size was {} bytes, now {}", self.size, now.size))
        } else if self.mtime_ns != now.mtime_ns {
            Some("modification time differs".into())
        } else if self.ctime_ns != now.ctime_ns {
            Some("it was rewritten (change time differs)".into())
        } else {
            None
        }
    }
}

/// Asks a long operation (indexing, reading a pipe) whether to stop: Python answers from
/// its pending signals, so Ctrl-C interrupts.
pub trait Cancel: Sync {
    /// True when the operation should stop with [`Error::Interrupted`].
    fn cancelled(&self) -> bool;
}

/// A [`Cancel`] asked with the `SIGBUS` guard lifted (see [`unguarded`]): its answer may
/// run code that is not ours.
pub(crate) struct UnguardedCancel<'a>(pub &'a dyn Cancel);

impl Cancel for UnguardedCancel<'_> {
    fn cancelled(&self) -> bool {
        unguarded(|| self.0.cancelled())
    }
}

/// Never cancels.
pub struct NeverCancel;

impl Cancel for NeverCancel {
    fn cancelled(&self) -> bool {
        false
    }
}

/// One input file, mapped.
#[derive(Debug)]
pub struct SourceFile {
    path: PathBuf,
    /// The open file, until [`release_descriptor`](Self::release_descriptor): then the
    /// map alone keeps the bytes, and the change check is a `stat` of the path.
    file: Option<File>,
    map: map::Map,
    identity: Identity,
    /// Someone other than this user may write it (see [`others_can_write`]): from the same
    /// `stat` as `identity`, so a change of owner or mode since is a change of identity
    /// (its `ctime`), seen by the next check.
    others_can_write: bool,
    /// Standard input, data copied from a pipe, FIFO or special file, or decompressed,
    /// into a private temporary file: it has no lasting name to keep an index under.
    anonymous: bool,
    /// A second open file description for scattered `pread`s, told not to read ahead
    /// (made on first use).
    random_reader: std::sync::OnceLock<Option<File>>,
    /// The file's inotify watch, once its descriptor is released (see [`watch`]).
    watched: Option<watch::Watched>,
}

impl SourceFile {
    /// Opens `path` (`-` is standard input). Regular files are mapped; pipes, FIFOs and
    /// files that cannot be mapped (`/proc`) are read to the end into a private temporary
    /// file first; devices and sockets are refused.
    /// A regular file is mapped at `slot` when it fits there (see [`Pack`]), on its own
    /// otherwise.
    pub(crate) fn open(path: &Path, cancel: &dyn Cancel, slot: Option<Slot>) -> Result<Self> {
        if path.as_os_str() == "-" {
            let stdin = std::io::stdin().lock();
            let meta = rustix::fs::fstat(&stdin).map_err(|e| Error::from_io(path, e.into()))?;
            if rustix::fs::FileType::from_raw_mode(meta.st_mode) == rustix::fs::FileType::RegularFile && meta.st_size > 0 {
                // `< file`: map it where it is.
                let fd = std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned().map_err(|e| Error::from_io(path, e))?;
                return Self::from_spool(path, File::from(fd), cancel);
            }
            let file = spool::spool(path, &stdin, cancel)?;
            return Self::from_spool(path, file, cancel);
        }
        let file = spool::open_nonblocking(path).map_err(|e| {
            // A socket cannot be opened at all (ENXIO): say what it is.
            let socket = std::fs::metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
            if socket {
                Error::NotRegularFile { path: path.to_path_buf(), kind: "socket" }
            } else {
                Error::from_io(path, e)
            }
        })?;
        let meta = file.metadata().map_err(|e| Error::from_io(path, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            return Err(Error::IsADirectory { path: path.to_path_buf() });
        }
        if kind.is_fifo() {
            let file = spool::spool(path, &file, cancel)?;
            return Self::from_spool(path, file, cancel);
        }
        if !kind.is_file() {
            let kind = if kind.is_char_device() {
                "character device"
            } else if kind.is_block_device() {
                "block device"
            } else if kind.is_socket() {
                "socket"
            } else {
                "special file"
            };
            return Err(Error::NotRegularFile { path: path.to_path_buf(), kind });
        }
        spool::set_blocking(&file).map_err(|e| Error::from_io(path, e))?;
        if meta.len() == 0 {
            // `/proc` and `/sys` files report size 0 and still have content: read it.
            let file = spool::spool(path, &file, cancel)?;
            return Self::from_spool(path, file, cancel);
        }
        if let Some(format) = decompress::detect(&file).map_err(|e| Error::from_io(path, e))? {
            let file = decompress::decompress(path, &file, format, cancel)?;
            return Self::from_private(path, file);
        }
        let mapped = match slot.map(|slot| map::place(&file, meta.len(), slot)) {
            Some(Ok(Ok(placed))) => Ok(map::Map::Placed(placed)),
            Some(Err(e)) => Err(e),
            Some(Ok(Err(_))) | None => map::map_file_of_len(&file, meta.len()).map(|m| map::Map::Own(Arc::new(m))),
        };
        match mapped {
            Ok(map) => Ok(SourceFile {
                path: path.to_path_buf(),
                identity: Identity::of(&meta),
                others_can_write: others_can_write(&meta),
                file: Some(file),
                map,
                anonymous: false,
                random_reader: Default::default(),
                watched: None,
            }),
            // A file system that cannot map (ENODEV): read it instead.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {
                let file = spool::spool(path, &file, cancel)?;
                Self::from_spool(path, file, cancel)
            }
            Err(e) => Err(Error::from_io(path, e)),
        }
    }

    /// Serves a private copy `file` of `path`'s bytes (decompressed first if they are
    /// compressed: `zcat F | mmap-batcher … -` and `F.gz` give the same corpus).
    fn from_spool(path: &Path, file: File, cancel: &dyn Cancel) -> Result<Self> {
        let file = match decompress::detect(&file).map_err(|e| Error::from_io(path, e))? {
            Some(format) => decompress::decompress(path, &file, format, cancel)?,
            None => file,
        };
        Self::from_private(path, file)
    }

    /// Serves `file`, a private copy of `path`'s bytes.
    fn from_private(path: &Path, file: File) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::from_io(path, e))?;
        let map = map::map_file(&file).map_err(|e| Error::from_io(path, e))?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            identity: Identity::of(&meta),
            others_can_write: false,
            file: Some(file),
            map: map::Map::Own(Arc::new(map)),
            anonymous: true,
            random_reader: Default::default(),
            watched: None,
        })
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// The open file (for the index build's advisory lock and its reads ahead).
    pub(crate) fn file(&self) -> Result<&File> {
        self.file.as_ref().ok_or_else(|| Error::Internal { message: format!("{}: its descriptor was released", self.path.display()) })
    }

    /// Closes the file, keeping the map: a tree of 30,000 files then stays mapped under
    /// any `ulimit -n`. The change check becomes a `stat` of the path, which also catches
    /// a rename over it. Spooled input keeps its descriptor: its path names nothing.
    pub(crate) fn release_descriptor(&mut self) {
        if !self.anonymous {
            self.file = None;
        }
    }

    /// Watches the file with `watch` (its descriptor released), then checks it as each
    /// batch does. The watch is added by path: should the path have been replaced since
    /// the file was opened, it watches the new file, and the `stat` of every path at the
    /// first epoch's start (always made: see `Corpus::check_paths_unchanged`) reports it.
    pub(crate) fn watch_with(&mut self, watch: &std::sync::Arc<ChangeWatch>) -> Result<()> {
        if self.file.is_none() {
            self.watched = watch.add(&self.path);
        }
        self.check_polled()
    }

    /// True when `watch` watches this file (its descriptor released): a quiet watch then
    /// says it is unchanged.
    pub(crate) fn is_watched_by(&self, watch: &std::sync::Arc<ChangeWatch>) -> bool {
        self.watched.as_ref().is_some_and(|w| std::sync::Arc::ptr_eq(w.watch(), watch))
    }

    /// The file's status now: from the descriptor, or from the path once it is released.
    fn status(&self) -> Result<std::fs::Metadata> {
        match &self.file {
            Some(file) => file.metadata(),
            None => std::fs::metadata(&self.path),
        }
        .map_err(|e| Error::from_io(&self.path, e))
    }

    /// A file handle for scattered reads: the same file, with the kernel's read-ahead off
    /// (a 100-byte line read at random should read its page, not 16 KiB or more around it).
    /// The error of a failed read of this file: [`Error::FileChanged`] when it changed
    /// since it was mapped (a short read of a truncated file), else the I/O error.
    pub(crate) fn read_error(&self, e: std::io::Error) -> Error {
        match self.check_unchanged() {
            Err(changed) => changed,
            Ok(()) => Error::from_io(&self.path, e),
        }
    }

    /// See [`others_can_write`]; `false` for spooled input (our own file).
    pub(crate) fn others_can_write(&self) -> bool {
        self.others_can_write
    }

    pub(crate) fn random_reader(&self) -> Result<&File> {
        let reader = self.random_reader.get_or_init(|| {
            let again = match &self.file {
                Some(file) => File::open(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file))),
                None => File::open(&self.path),
            }
            .ok()?;
            // The same file (not a new one at that path): else keep using ours.
            let same = again.metadata().ok().map(|m| Identity::of(&m)) == Some(self.identity);
            if !same {
                return None;
            }
            let _ = rustix::fs::fadvise(&again, 0, None, rustix::fs::Advice::Random);
            Some(again)
        });
        match reader {
            Some(reader) => Ok(reader),
            None => self.file.as_ref().ok_or_else(|| match self.check_unchanged() {
                Err(changed) => changed,
                Ok(()) => Error::FileChanged { path: self.path.clone(), what: "it cannot be opened again".into() },
            }),
        }
    }

    /// The identity the file had when it was mapped.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// True for standard input, pipes, special files and compressed files, copied to a
    /// private temporary file: such input has no index file.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The address range of the mapping, for checking that buffers point into it.
    pub fn address_range(&self) -> Range<usize> {
        let bytes = self.map.bytes();
        let start = bytes.as_ptr() as usize;
        start..start + bytes.len()
    }

    /// [`Error::FileChanged`] when the file's size, modification or change time differs
    /// from when it was mapped: one `fstat` (a `stat` of the path once the descriptor is
    /// released), cheap enough for every batch.
    pub(crate) fn check_unchanged(&self) -> Result<()> {
        if let Some(w) = &self.watched {
            w.watch().poll();
        }
        self.check_polled()
    }

    /// [`check_unchanged`](Self::check_unchanged) without draining the watch first (see
    /// [`check_all_unchanged`]): no system call for a watched file without events.
    fn check_polled(&self) -> Result<()> {
        if self.watched.as_ref().is_some_and(|w| w.quiet()) {
            return Ok(());
        }
        match self.status() {
            Ok(meta) => self.compare(&Identity::of(&meta)),
            // Deleted or renamed away: the path no longer names the file that was mapped.
            Err(Error::NotFound { .. }) if self.file.is_none() => {
                Err(Error::FileChanged { path: self.path.clone(), what: "it was removed or renamed".into() })
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`check_unchanged`](Self::check_unchanged), and also that the path still
    /// names the same file (not replaced by a rename): one `stat`, at each epoch.
    pub(crate) fn check_path_unchanged(&self, stats: &mut PathStats) -> Result<()> {
        if self.anonymous {
            return self.check_unchanged();
        }
        // A released file is checked by its path anyway, and always by `stat` here: this
        // is what sees a change no watch reports (see [`watch`]).
        let now = stats.identity(&self.path).map_err(|e| Error::from_io(&self.path, e))?;
        self.compare(&now)?;
        match self.file {
            Some(_) => self.check_unchanged(),
            None => Ok(()),
        }
    }

    fn compare(&self, now: &Identity) -> Result<()> {
        match self.identity.difference(now) {
            None => Ok(()),
            Some(what) => Err(Error::FileChanged { path: self.path.clone(), what }),
        }
    }

    /// An Arrow buffer over `range` of the map, without copying; `None` outside the map.
    pub(crate) fn window(&self, range: Range<usize>) -> Option<Buffer> {
        self.map.window(range)
    }

    /// For a file mapped side by side with others (see [`Pack`]): the buffer over all of
    /// them, and where this file starts in it.
    pub(crate) fn placed(&self) -> Option<(&Buffer, usize)> {
        self.map.placed()
    }

    /// Tells the kernel how this map will be read (see [`IoPolicy`]); only hints.
    pub(crate) fn advise(&self, policy: ResolvedIo) {
        #[cfg(target_os = "linux")]
        {
            let advice = match policy {
                // 2 MiB pages: a shuffled epoch reads lines at random, and with 4 KiB pages
                // nearly every line also missed the TLB (`cargo bench --bench core`).
                ResolvedIo::Cached => memmap2::Advice::HugePage,
                // Lines are read with `pread`; a fault through the map (a consumer reading
                // a view late) should read its page, not 4 MiB around it.
                ResolvedIo::DiskLines => memmap2::Advice::Random,
                // Windows are read ahead explicitly (into large page-cache folios), then
                // read at random like a cached file: 2 MiB mappings save a fault and a TLB
                // miss per 4 KiB page of each window.
                ResolvedIo::DiskWindows => memmap2::Advice::HugePage,
                ResolvedIo::Sequential => memmap2::Advice::Sequential,
            };
            self.map.advise(advice);
        }
    }

    /// See [`map::release`].
    pub(crate) fn release(&self, range: Range<usize>) {
        self.map.release(range)
    }
}

/// [`SourceFile::check_unchanged`] for each of `sources`, draining each watch once (the
/// files of a corpus share one) rather than once per file.
pub(crate) fn check_all_unchanged<'a>(sources: impl IntoIterator<Item = &'a SourceFile>) -> Result<()> {
    let mut polled: Option<*const ChangeWatch> = None;
    for source in sources {
        if let Some(w) = &source.watched {
            let this = std::sync::Arc::as_ptr(w.watch());
            if polled != Some(this) {
                w.watch().poll();
                polled = Some(this);
            }
        }
        source.check_polled()?;
    }
    Ok(())
}

/// True when someone other than this process's user may write the file (it belongs to
/// another user, or group or others have write permission): then its bytes can change under
/// a map without changing its size or times, and no view into the map may be trusted.
pub(crate) fn others_can_write(meta: &std::fs::Metadata) -> bool {
    meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0
}

/// An [`IoPolicy`] decided for one corpus and shuffle mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResolvedIo {
    /// The files are expected in the page cache.
    Cached,
    /// Global shuffle from disk: each line is a random read; a batch's lines are read
    /// with many `pread`s in flight.
    DiskLines,
    /// Block shuffle from disk: the next window's blocks are read ahead sequentially.
    DiskWindows,
    /// File order from disk: the kernel's sequential read-ahead.
    Sequential,
}

impl ResolvedIo {
    /// True when the files are read with `pread` or read ahead with `sendfile`, which
    /// need each file open; else the maps alone serve the lines.
    pub(crate) fn reads_with_descriptor(self) -> bool {
        matches!(self, ResolvedIo::DiskLines | ResolvedIo::DiskWindows)
    }

    /// Decides `policy` for `total_bytes` of input served in `shuffle` order.
    pub(crate) fn resolve(policy: IoPolicy, total_bytes: u64, shuffle: crate::options::Shuffle) -> Self {
        let disk = match policy {
            IoPolicy::Copy => return ResolvedIo::DiskLines,
            IoPolicy::Cached => false,
            IoPolicy::Disk => true,
            IoPolicy::Auto => total_bytes > memory_budget() / 2,
        };
        match (disk, shuffle) {
            (false, _) => ResolvedIo::Cached,
            (true, crate::options::Shuffle::Global) => ResolvedIo::DiskLines,
            (true, crate::options::Shuffle::Block { .. }) => ResolvedIo::DiskWindows,
            (true, crate::options::Shuffle::None) => ResolvedIo::Sequential,
        }
    }
}

/// The memory this process may use: the smaller of physical memory and every memory
/// cgroup limit on its path (cgroup v1 and v2).
pub fn memory_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib * 1024);
    total.min(cgroup_limit().unwrap_or(u64::MAX))
}

fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut limit = u64::MAX;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        let (root, file) = if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else {
            continue;
        };
        // Every ancestor's limit binds too.
        let mut dir = PathBuf::from(root).join(rel.trim_start_matches('/'));
        loop {
            if let Some(v) = std::fs::read_to_string(dir.join(file)).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                limit = limit.min(v);
            }
            if dir.as_os_str().len() <= root.len() || !dir.pop() {
                break;
            }
        }
    }
    (limit != u64::MAX).then_some(limit)
}
