//! The change check of many mapped files at the price of one: an inotify watch on each file
//! whose descriptor was released, drained once per batch.
//!
//! A batch drawn at random from 30,000 files touches nearly as many files as it has lines,
//! and a `stat` of each one's path cost more than building the batch (a global epoch over
//! a tree of 30,000 files spent 40% of its time in path lookups). With a watch, a file
//! with no event since it was mapped is unchanged without a system call; a file with an
//! event (written, truncated, its times or links changed, moved) is checked by `stat` as
//! before, so the error says what changed.
//!
//! What a watch cannot see falls back to `stat`: a file the watch could not be added for
//! (the per-user limit `fs.inotify.max_user_watches`), every file after the event queue
//! overflowed, and every file in a child process (after `fork` the inotify descriptor is
//! shared, and the parent may drain events the child needed). Writes through another
//! process's writable map of the file raise no inotify event; they change the file's
//! modification time, which the `stat` of every file at an epoch's start sees — made
//! until one watch that watches every file of the corpus has seen nothing since the open,
//! when a `stat` of each directory stands for it (see `Corpus::check_paths_unchanged`):
//! the reader's own files are the only ones such a write can reach (others' are never
//! served from a map), and the reader trusts itself.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rustix::fs::inotify;

/// One inotify instance for the files of a corpus.
#[derive(Debug)]
pub(crate) struct ChangeWatch {
    fd: OwnedFd,
    /// The process that made the instance.
    pid: rustix::process::Pid,
    /// Watches that reported an event: their files are checked by `stat`.
    touched: Mutex<HashSet<i32>>,
    /// True once `touched` is not empty: until then no file asks the lock.
    any_touched: AtomicBool,
    /// Set when events may have been lost: every file is checked by `stat`.
    blind: AtomicBool,
}

/// A file's watch: the instance and the file's watch descriptor.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    watch: std::sync::Arc<ChangeWatch>,
    wd: i32,
}

impl ChangeWatch {
    /// A new instance, or `None` where inotify is unavailable (the per-user instance limit,
    /// `fs.inotify.max_user_instances`, or a kernel without it): then files are checked
    /// by `stat`.
    pub(crate) fn new() -> Option<std::sync::Arc<Self>> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        let watch = ChangeWatch {
            fd,
            pid: rustix::process::getpid(),
            touched: Mutex::new(HashSet::new()),
            any_touched: AtomicBool::new(false),
            blind: AtomicBool::new(false),
        };
        Some(std::sync::Arc::new(watch))
    }

    /// Watches the file `path` names now, or `None` if it cannot be watched. The caller
    /// checks afterwards that `path` still names the file it mapped: a change before the
    /// watch was added is seen by that check, one after it by the watch.
    pub(crate) fn add(self: &std::sync::Arc<Self>, path: &Path) -> Option<Watched> {
        let flags = inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::ATTRIB
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVE_SELF
            | inotify::WatchFlags::DELETE_SELF;
        let wd = inotify::add_watch(&self.fd, path, flags).ok()?;
        Some(Watched { watch: self.clone(), wd })
    }

    /// Reads every pending event. Called once per batch, before its files are asked
    /// [`Watched::quiet`].
    pub(crate) fn poll(&self) {
        if rustix::process::getpid() != self.pid {
            self.blind.store(true, Ordering::Relaxed);
            return;
        }
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        let mut touched = Vec::new();
        loop {
            match reader.next() {
                Ok(event) if event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW) => {
                    self.blind.store(true, Ordering::Relaxed);
                }
                Ok(event) => touched.push(event.wd()),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                // Anything else: trust no watch from now on.
                Err(_) => {
                    self.blind.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        if !touched.is_empty() {
            self.touched.lock().unwrap_or_else(|p| p.into_inner()).extend(touched);
            self.any_touched.store(true, Ordering::Release);
        }
    }
}

impl ChangeWatch {
    /// True when no watched file had an event up to the last [`poll`](Self::poll), none was
    /// lost: every file watched here is unchanged, as [`Watched::quiet`] says of each.
    pub(crate) fn all_quiet(&self) -> bool {
        !self.blind.load(Ordering::Relaxed) && !self.any_touched.load(Ordering::Acquire)
    }
}

impl Watched {
    /// The instance, to [`poll`](ChangeWatch::poll) once for many files.
    pub(crate) fn watch(&self) -> &std::sync::Arc<ChangeWatch> {
        &self.watch
    }

    /// True when the file certainly had no event up to the last poll: it is unchanged.
    pub(crate) fn quiet(&self) -> bool {
        let w = &self.watch;
        !w.blind.load(Ordering::Relaxed)
            && (!w.any_touched.load(Ordering::Acquire) || !w.touched.lock().unwrap_or_else(|p| p.into_inner()).contains(&self.wd))
    }
}
