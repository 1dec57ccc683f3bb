//! Input that cannot be mapped as it is — standard input, a pipe, a FIFO, a `/proc` file —
//! is read to its end into a private temporary file, which is then mapped like any file.
//! Reads wait with `poll` in short slices and ask [`Cancel`] in between, so Ctrl-C stops
//! a FIFO whose writer never comes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};

use super::Cancel;
use crate::error::{Error, Result};

/// Opens `path` for reading without blocking: opening a FIFO waits for a writer otherwise.
pub(super) fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(OFlags::NONBLOCK.bits() as i32).open(path)
}

/// Turns blocking reads back on (regular files ignore the flag; the spool loop polls).
pub(super) fn set_blocking(file: &File) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    rustix::fs::fcntl_setfl(file, flags - OFlags::NONBLOCK)?;
    Ok(())
}

/// A private temporary file: unnamed in the temporary directory (`O_TMPFILE`), or a
/// `memfd` where the directory's file system cannot make one.
pub(super) fn private_temp_file() -> std::io::Result<File> {
    let dir = std::env::temp_dir();
    let fd: OwnedFd = match rustix::fs::open(&dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from(0o600)) {
        Ok(fd) => fd,
        Err(_) => rustix::fs::memfd_create("mmap-batcher-spool", rustix::fs::MemfdFlags::CLOEXEC)?,
    };
    Ok(File::from(fd))
}

/// Copies everything `source` yields until its end into a private temporary file.
pub(super) fn spool<S: AsFd>(path: &Path, source: &S, cancel: &dyn Cancel) -> Result<File> {
    let io = |e: std::io::Error| Error::from_io(path, e);
    let mut out = private_temp_file().map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let slice = Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
    let mut reader = File::from(source.as_fd().try_clone_to_owned().map_err(io)?);
    loop {
        if cancel.cancelled() {
            return Err(Error::Interrupted { path: path.to_path_buf() });
        }
        let mut fds = [PollFd::new(&reader, PollFlags::IN)];
        match poll(&mut fds, Some(&slice)) {
            // Nothing yet (a FIFO with no writer so far reports nothing): ask again.
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io(e.into())),
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.write_all(&buf[..n]).map_err(io)?,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(io(e)),
        }
    }
    out.flush().map_err(io)?;
    Ok(out)
}
