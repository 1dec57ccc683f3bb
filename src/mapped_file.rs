//! The memory-mapped input file. Its `unsafe` code maps the file and lends windows of the
//! map to Arrow as buffers. (The only other `unsafe` is in `newline_scan`, calling AVX2
//! code after checking the CPU has it, and in `arrow_batch`, building view arrays whose
//! views were made from the map.)
//!
//! # Safety argument
//!
//! A read-only shared mapping is sound to read as long as nobody truncates or rewrites
//! the file underneath it. We cannot prevent that (advisory locks do not bind other
//! writers), so we narrow it: the file's size and modification time are recorded at open
//! time and compared at the start of every epoch ([`MappedFile::check_unchanged`]), which
//! turns the common case (a file replaced or appended to) into [`Error::FileChanged`]. A
//! file truncated *while* an epoch is being served can still raise `SIGBUS`, as with any
//! mmap reader (ripgrep, Polars, pyarrow); the README says so.
//!
//! Arrow buffers built by [`MappedFile::window`] hold an `Arc` of the map, so the map is
//! unmapped only when the last batch pointing into it is dropped, whatever happens to the
//! [`MappedFile`] or the batcher.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::SystemTime;

use arrow::buffer::Buffer;
use memmap2::Mmap;

use crate::error::{Error, Result};

/// A file mapped read-only, with the size and mtime it had when mapped.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    map: Arc<Mmap>,
    mtime: Option<SystemTime>,
}

impl MappedFile {
    /// Maps `path` read-only. Fails with a typed error for a missing file, a directory
    /// or a permission problem.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::from_io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::from_io(path, e))?;
        if meta.is_dir() {
            return Err(Error::IsADirectory { path: path.to_path_buf() });
        }
        // SAFETY: read-only mapping of a regular file; see the module's safety argument
        // for what happens if the file is changed while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::from_io(path, e))?;
        // Ask for 2 MiB pages: a file the kernel then reads into 2 MiB page-cache folios is
        // mapped with one TLB entry per 2 MiB, where 4 KiB pages made nearly every line of a
        // shuffled epoch miss the TLB (`cargo bench --bench core` shows both: "file read by
        // mmap-batcher" against "file just written"). Only a hint; pages already cached keep
        // the size they have.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(MappedFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
            mtime: meta.modified().ok(),
        })
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The address range of the mapping, for checking that buffers point into it.
    pub fn address_range(&self) -> std::ops::Range<usize> {
        let start = self.map.as_ptr() as usize;
        start..start + self.map.len()
    }

    /// Errors with [`Error::FileChanged`] when the file's size or mtime differ from
    /// when it was mapped.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::from_io(&self.path, e))?;
        let changed = |what: String| Error::FileChanged { path: self.path.clone(), what };
        if meta.len() != self.map.len() as u64 {
            return Err(changed(format!(
                "size was {} bytes, now {}",
                self.map.len(),
                meta.len()
            )));
        }
        if meta.modified().ok() != self.mtime {
            return Err(changed("modification time differs".to_string()));
        }
        Ok(())
    }

    /// An Arrow buffer over `range` of the map, without copying. The buffer keeps the map alive.
    ///
    /// # Panics
    /// If `range` is not inside the file (a bug in the caller, never bad input).
    pub fn window(&self, range: std::ops::Range<usize>) -> Buffer {
        let bytes = &self.map[range];
        let ptr = NonNull::new(bytes.as_ptr() as *mut u8).expect("a slice pointer is never null");
        let owner: Arc<dyn arrow::alloc::Allocation> = self.map.clone();
        // SAFETY: `ptr..ptr+len` lies inside the mapping (the slice above checked it),
        // the mapping is immutable through us, and `owner` keeps it mapped for as long
        // as the buffer or any clone of it lives.
        unsafe { Buffer::from_custom_allocation(ptr, bytes.len(), owner) }
    }
}
