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
        if self.dir.as_ref().is_none_or(|(dir, _)| dir != parent) {
            // A directory that cannot be opened: the path's own `stat` says why.
            let Ok(fd) = rustix::fs::open(parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) else {
                self.dir = None;
                return std::fs::metadata(path).map(|m| Identity::of(&m));
            };
            self.dir = Some((parent.to_path_buf(), fd));
        }
        let Some((_, fd)) = &self.dir else { return std::fs::metadata(path).map(|m| Identity::of(&m)) };
        let s = rustix::fs::statx(fd, name, AtFlags::empty(), StatxFlags::BASIC_STATS)?;
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
}
