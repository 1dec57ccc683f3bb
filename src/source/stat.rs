//! `stat`s of many paths with each directory resolved once: the check at each epoch's start
//! that every path still names the file indexed. The files of a tree share a few hundred
//! directories, and walking each file's whole path again was an eighth of a global epoch
//! over 30,000 files (`perf`: path lookups under `statx`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};

use super::Identity;

/// The directory last opened, kept for the paths that follow in it.
#[derive(Default)]
pub(crate) struct PathStats {
    dir: Option<(PathBuf, OwnedFd)>,
}

impl PathStats {
    /// The identity of the file `path` names now (symbolic links followed, as `stat`).
    pub(crate) fn identity(&mut self, path: &Path) -> std::io::Result<Identity> {
        let (Some(parent), Some(name)) = (path.parent().filter(|p| !p.as_os_str().is_empty()), path.file_name()) else {
            return std::fs::metadata(path).map(|m| Identity::of(&m));
        };
        let fd = match self.dir.take() {
            // (Bytes compared, not components: the same spelling is the same directory here.)
            Some((dir, fd)) if dir.as_os_str() == parent.as_os_str() => self.dir.insert((dir, fd)),
            _ => match rustix::fs::open(parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => self.dir.insert((parent.to_path_buf(), fd)),
                // A directory that cannot be opened: the path's own `stat` says why.
                Err(_) => return std::fs::metadata(path).map(|m| Identity::of(&m)),
            },
        };
        let s = rustix::fs::statx(&fd.1, name, AtFlags::empty(), StatxFlags::BASIC_STATS)?;
        let ns = |t: rustix::fs::StatxTimestamp| t.tv_sec.saturating_mul(1_000_000_000).saturating_add(i64::from(t.tv_nsec));
        Ok(Identity {
            // As `std` makes `st_dev` of `statx`, so identities from either compare equal.
            dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            size: s.stx_size,
            mtime_ns: ns(s.stx_mtime),
            ctime_ns: ns(s.stx_ctime),
        })
    }
}

/// The directory `path` is in, as spelled (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The device and inode of each of some directories, `None` for one that could not be
/// looked at.
pub(crate) type DirIdentities = Vec<Option<(u64, u64)>>;

/// The [`DirIdentities`] of `dirs` now (links followed).
pub(crate) fn dir_identities(dirs: &[PathBuf]) -> DirIdentities {
    use std::os::unix::fs::MetadataExt;
    dirs.iter().map(|d| std::fs::metadata(d).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))).collect()
}

/// Threads for `count` `stat`s: one costs microseconds, so threads pay off from a few
/// thousand.
pub(crate) fn stat_threads(count: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get()).min(count / 2048).max(1)
}

/// `std::fs::metadata` of each of `paths` (links followed), on every core when there are
/// thousands: the open of a tree `stat`s every path before it opens any (a glob's matches,
/// to leave directories out; every input, to serve a file reached twice once), and those
/// were the serial part of a reopen whose files are opened on every core.
pub(crate) fn metadata_all(paths: &[PathBuf]) -> Vec<std::io::Result<std::fs::Metadata>> {
    let threads = stat_threads(paths.len());
    if threads == 1 {
        return paths.iter().map(std::fs::metadata).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> =
            paths.chunks(paths.len().div_ceil(threads)).map(|part| s.spawn(move || part.iter().map(std::fs::metadata).collect::<Vec<_>>())).collect();
        parts
            .into_iter()
            .zip(paths.chunks(paths.len().div_ceil(threads)))
            .flat_map(|(h, part)| h.join().unwrap_or_else(|_| part.iter().map(std::fs::metadata).collect()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_std_metadata_through_links_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, "x\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let b = dir.path().join("sub/b.txt");
        std::fs::write(&b, "yy\n").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&b, &link).unwrap();
        let mut stats = PathStats::default();
        for p in [&a, &b, &link, &a] {
            assert_eq!(stats.identity(p).unwrap(), Identity::of(&std::fs::metadata(p).unwrap()), "{}", p.display());
        }
        let missing = stats.identity(&dir.path().join("gone.txt")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let no_dir = stats.identity(&dir.path().join("nodir/x.txt")).unwrap_err();
        assert_eq!(no_dir.kind(), std::io::ErrorKind::NotFound);
        assert!(stats.identity(Path::new("Cargo.toml")).is_ok(), "a path without a directory");
    }

    #[test]
    fn metadata_of_many_paths_in_order_on_every_core() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5000).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, p) in paths.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
            std::fs::write(p, vec![b'x'; i]).unwrap();
        }
        let metas = metadata_all(&paths);
        assert_eq!(metas.len(), paths.len());
        for (i, m) in metas.iter().enumerate() {
            match m {
                Ok(m) => assert_eq!((i % 3 != 0, m.len()), (true, i as u64)),
                Err(e) => assert_eq!((i % 3, e.kind()), (0, std::io::ErrorKind::NotFound)),
            }
        }
    }
}
