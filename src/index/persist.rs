//! The index file: the records written once, mapped read-only by every later open, so
//! all processes share one copy through the page cache and a reopen costs a `stat`, a
//! 4 KiB read and two `mmap`s.
//!
//! # Format (version 3, native-endian `u64` words)
//! - a 4,096-byte header: magic, version, the data file's [`Identity`], the keep rules,
//!   the record layout, the halves' counts, the UTF-8 verdict, the sections' offsets and
//!   counts, the body's xxh3-64 checksum (word 26), whether the whole file is UTF-8
//!   (word 27), and an FNV-1a checksum of all of it;
//! - the records (kept lines and the sentinel), at offset 4,096;
//! - the head's and the tail's wrap lists, then the long-line ends (pairs).
//!
//! # Never trusted when stale, foreign or corrupt
//! An index is used only if its header checksum holds, its length is exactly what the
//! header implies, its identity and rules equal the data file's and the options', its
//! owner is this user (or root) with no write access for others, its body checksum holds
//! and its records pass the structural checks (`LineIndex::check_structure`: offsets
//! monotonic and inside the file, lines within the view window). Anything else is
//! rebuilt, with a notice.
//!
//! # Concurrency
//! The builder holds an exclusive `flock` on the data file while it builds and writes, so
//! processes opening a new file at once build it once: the others wait, then map the
//! result. The index is written to a temporary name, synced, and renamed into place, so no
//! reader — and no reader after a power loss — ever sees half of one. Where no lock can be taken, processes build in parallel and the
//! last rename wins (every copy is identical).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::record::Layout;
use super::store::Records;
use super::utf8::Utf8Verdict;
use super::{Half, IndexMeta, LineIndex};
use crate::options::{IndexCache, KeepRules};
use crate::source::{Cancel, Identity};

const MAGIC: u64 = u64::from_le_bytes(*b"mmbindex");
/// 2: the body's checksum (xxh3-64) in header word 26; 3: whether the whole file is
/// UTF-8 in word 27; 4: a 256-byte header (was 4 KiB: a corpus of small files paid more
/// for headers than for records).
const VERSION: u64 = 4;
/// The header: 32 words, the last its checksum. The records follow, 8-byte aligned in the
/// map (all a `&[u64]` over them needs).
pub(crate) const HEADER_LEN: usize = 256;
/// File name suffix of index files.
pub const SUFFIX: &str = crate::source::paths::INDEX_SUFFIX;

/// Why an index file was not used.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// There is none.
    Missing,
    /// It is for another version of the data file, or other rules.
    Stale(String),
    /// Unreadable, truncated, corrupt, foreign, or not to be trusted.
    Invalid(String),
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The header's fields, in file order.
struct Header {
    /// xxh3-64 of everything after the header (records and side lists).
    body_checksum: u64,
    records_count: u64,
    head_wraps: u64,
    tail_wraps: u64,
    long_ends: u64,
    identity: Identity,
    meta: IndexMeta,
}

impl Header {
    fn sections(&self) -> [(u64, u64); 3] {
        let records_end = HEADER_LEN as u64 + 8 * self.records_count;
        let tail_wraps_at = records_end + 8 * self.head_wraps;
        let long_ends_at = tail_wraps_at + 8 * self.tail_wraps;
        [(records_end, self.head_wraps), (tail_wraps_at, self.tail_wraps), (long_ends_at, 2 * self.long_ends)]
    }

    fn file_len(&self) -> u64 {
        let [_, _, (at, words)] = self.sections();
        at + 8 * words
    }

    fn encode(&self) -> Vec<u8> {
        let m = &self.meta;
        let (utf8_kind, utf8_line, utf8_offset) = match m.utf8 {
            Utf8Verdict::Valid => (0, 0, 0),
            Utf8Verdict::Invalid { line_id, offset } => (1, line_id, offset),
        };
        let words: [u64; 31] = [
            MAGIC,
            VERSION,
            HEADER_LEN as u64,
            self.records_count,
            self.head_wraps,
            self.tail_wraps,
            self.long_ends,
            self.identity.dev,
            self.identity.ino,
            self.identity.size,
            self.identity.mtime_ns as u64,
            self.identity.ctime_ns as u64,
            u64::from(m.rules.skip_blank_lines),
            m.rules.comment_char.map_or(0, |c| 0x100 | u64::from(c)),
            u64::from(m.layout.start_bits()),
            u64::from(m.layout.skip_bits()),
            m.head.kept,
            m.head.skipped,
            m.head.physical,
            m.tail.kept,
            m.tail.skipped,
            m.tail.physical,
            utf8_kind,
            utf8_line,
            utf8_offset,
            m.file_len,
            self.body_checksum,
            u64::from(m.file_utf8),
            m.rules.header_lines,
            0,
            0,
        ];
        let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        out.extend(fnv1a(&out).to_ne_bytes());
        out.resize(HEADER_LEN, 0);
        out
    }

    /// Decodes a header, checking everything it can on its own.
    fn decode(bytes: &[u8]) -> Result<Self, Unusable> {
        let invalid = |why: &str| Unusable::Invalid(why.to_string());
        if bytes.len() < HEADER_LEN {
            return Err(invalid("shorter than its header"));
        }
        let w = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        if w(0) != MAGIC {
            return Err(invalid("not an mmap-batcher index (or of another byte order)"));
        }
        if w(1) != VERSION {
            return Err(Unusable::Stale(format!("format version {} (this build reads {VERSION})", w(1))));
        }
        if w(31) != fnv1a(&bytes[..31 * 8]) {
            return Err(invalid("header checksum mismatch"));
        }
        if w(2) != HEADER_LEN as u64 {
            return Err(invalid("bad header length"));
        }
        let layout = Layout::from_parts(w(14) as u32, w(15) as u32).ok_or_else(|| invalid("bad record layout"))?;
        let comment = w(13);
        // Word 28 was 0 before header lines existed: an older index file reads as none.
        let rules =
            KeepRules { skip_blank_lines: w(12) == 1, comment_char: (comment & 0x100 != 0).then_some((comment & 0xff) as u8), header_lines: w(28) };
        let half = |at: usize| Half { kept: w(at), skipped: w(at + 1), physical: w(at + 2), wraps: Vec::new() };
        let (head, tail) = (half(16), half(19));
        let utf8 = match w(22) {
            0 => Utf8Verdict::Valid,
            1 => Utf8Verdict::Invalid { line_id: w(23), offset: w(24) },
            _ => return Err(invalid("bad UTF-8 verdict")),
        };
        let n = head.kept.checked_add(tail.kept).ok_or_else(|| invalid("bad line counts"))?;
        if w(3) != n.wrapping_add(1) || matches!(utf8, Utf8Verdict::Invalid { line_id, .. } if line_id >= n) {
            return Err(invalid("record count disagrees with line counts"));
        }
        let identity = Identity { dev: w(7), ino: w(8), size: w(9), mtime_ns: w(10) as i64, ctime_ns: w(11) as i64 };
        let file_utf8 = match w(27) {
            0 => false,
            1 => true,
            _ => return Err(invalid("bad UTF-8 verdict")),
        };
        let meta = IndexMeta { layout, head, tail, long_ends: Vec::new(), utf8, file_utf8, rules, file_len: w(25) };
        if meta.file_len != identity.size || 64 - meta.file_len.leading_zeros() > layout.start_bits() {
            return Err(invalid("layout does not fit the file size"));
        }
        // Counts are bounded by the data file's size (a line has at least one byte), so
        // the section arithmetic below cannot overflow.
        let bound = identity.size.saturating_add(1);
        if [w(3), w(4), w(5), w(6), meta.head.physical, meta.tail.physical].iter().any(|&c| c > bound) {
            return Err(invalid("counts larger than the data file allows"));
        }
        Ok(Header { body_checksum: w(26), records_count: w(3), head_wraps: w(4), tail_wraps: w(5), long_ends: w(6), identity, meta })
    }
}

/// Where the index of `data` under `rules` may live under `cache`, in the order they are
/// tried (none for `Off`).
pub(crate) fn locations(data: &Path, rules: KeepRules, cache: &IndexCache) -> Vec<PathBuf> {
    let env_dir = || std::env::var_os("MMAP_BATCHER_CACHE_DIR").filter(|v| !v.is_empty()).map(PathBuf::from);
    match cache {
        IndexCache::Off => Vec::new(),
        IndexCache::ReadOnly(inner) => locations(data, rules, inner),
        IndexCache::Path(p) => vec![p.to_path_buf()],
        IndexCache::Dir(dir) => vec![in_dir(dir, data, rules)],
        IndexCache::Auto => match env_dir() {
            // Asked for by name: the only place, even where the data's directory is writable.
            Some(dir) => vec![in_dir(&dir, data, rules)],
            None => {
                let mut file_name = data.file_name().map_or_else(|| std::ffi::OsString::from("stdin"), |n| n.to_os_string());
                // The name's own bytes, not a lossy rendering: two names that are not
                // UTF-8 must not share an index file.
                file_name.push(format!(".{}.{SUFFIX}", rules.tag()));
                let beside = data.parent().map_or_else(|| PathBuf::from(&file_name), |d| d.join(&file_name));
                std::iter::once(beside).chain(cache_dir().map(|dir| in_dir(&dir, data, rules))).collect()
            }
        },
    }
}

/// The index file of `data` in the directory `dir`: its name, a hash of its full path
/// (two `data.txt` in different directories do not meet) and the rules' tag.
fn in_dir(dir: &Path, data: &Path, rules: KeepRules) -> PathBuf {
    dir.join(format!("{}{}.{SUFFIX}", in_dir_prefix(data), rules.tag()))
}

/// The name of `data`'s index files in a directory, up to the rules' tag.
fn in_dir_prefix(data: &Path) -> String {
    let name = data.file_name().map_or_else(|| "stdin".into(), |n| n.to_string_lossy().into_owned());
    let hash = fnv1a(canonical(data).as_os_str().as_encoded_bytes());
    format!("{name}-{hash:016x}.")
}

/// `data` with every symbolic link resolved, as `realpath` gives it, with each directory
/// resolved once per process: `realpath` reads every component of the path (four `readlink`
/// calls for `/tmp/tree/d000/f.txt`), and a tree of 30,000 files asked that of the same
/// hundred directories over and over. Only the file itself is looked at each time (is it a
/// link?). A directory re-linked meanwhile can only give another index file name: what an
/// index file holds is checked against the data file's identity whatever its name.
fn canonical(data: &Path) -> PathBuf {
    static DIRS: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, PathBuf>>> = std::sync::Mutex::new(None);
    let resolve = || std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let (Some(dir), Some(name)) = (data.parent(), data.file_name()) else { return resolve() };
    let plain = data.is_absolute() && matches!(data.components().next_back(), Some(std::path::Component::Normal(_)));
    if !plain || std::fs::symlink_metadata(data).map_or(true, |m| m.file_type().is_symlink()) {
        return resolve();
    }
    let mut dirs = DIRS.lock().unwrap_or_else(|p| p.into_inner());
    let dirs = dirs.get_or_insert_with(Default::default);
    if dirs.len() >= 1 << 16 {
        dirs.clear();
    }
    if let Some(resolved) = dirs.get(dir) {
        return resolved.join(name);
    }
    let Ok(resolved) = std::fs::canonicalize(dir) else { return resolve() };
    dirs.insert(dir.to_path_buf(), resolved.clone());
    resolved.join(name)
}

/// Our index files of `data` under any keep rules: beside it, in `dir`, and in the cache
/// directories — each a regular file of this user that starts with our magic number
/// (what `index --clean` removes; nothing else is listed).
#[cfg(feature = "cli")]
pub(crate) fn index_files_of(data: &Path, dir: Option<&Path>) -> Vec<PathBuf> {
    let mut places: Vec<(PathBuf, std::ffi::OsString)> = Vec::new();
    if let (Some(parent), Some(name)) = (data.parent(), data.file_name()) {
        let mut prefix = name.to_os_string();
        prefix.push(".");
        places.push((if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() }, prefix));
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dirs = [
        dir.map(Path::to_path_buf),
        env("MMAP_BATCHER_CACHE_DIR"),
        env("XDG_CACHE_HOME").map(|d| d.join("mmap-batcher")),
        env("HOME").map(|d| d.join(".cache").join("mmap-batcher")),
    ];
    for d in dirs.into_iter().flatten() {
        places.push((d, in_dir_prefix(data).into()));
    }
    let me = rustix::process::geteuid().as_raw();
    let mut out = Vec::new();
    for (d, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let (n, pre) = (name.as_encoded_bytes(), prefix.as_encoded_bytes());
            if !n.starts_with(pre) || !n.ends_with(format!(".{SUFFIX}").as_bytes()) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
            if meta.is_file() && meta.uid() == me && starts_with_magic(&entry.path()) && !out.contains(&entry.path()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

#[cfg(feature = "cli")]
fn starts_with_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut word = [0u8; 8];
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    opened.and_then(|mut f| f.read_exact(&mut word)).is_ok() && u64::from_ne_bytes(word) == MAGIC
}

/// The per-user cache directory: `$MMAP_BATCHER_CACHE_DIR`, else `$XDG_CACHE_HOME/mmap-batcher`,
/// else `~/.cache/mmap-batcher`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("MMAP_BATCHER_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mmap-batcher")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("mmap-batcher")))
}

/// Index files up to this size are read into memory rather than mapped.
const READ_INDEX_BELOW: u64 = 64 << 10;

/// An index file's bytes: read (small files) or mapped.
enum IndexBody {
    /// Whole 8-byte words, so the records need no copy to be aligned.
    Read(Vec<u64>),
    Mapped(memmap2::Mmap),
}

impl IndexBody {
    fn load(file: &std::fs::File, len: u64) -> Result<Self, Unusable> {
        if len >= READ_INDEX_BELOW {
            return crate::source::map_index(file).map(IndexBody::Mapped).map_err(|e| Unusable::Invalid(format!("cannot map: {e}")));
        }
        let mut words = vec![0u64; (len as usize).div_ceil(8)];
        let buf = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, buf, 0).map_err(|e| Unusable::Invalid(format!("cannot read: {e}")))?;
        Ok(IndexBody::Read(words))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            IndexBody::Read(words) => bytemuck::cast_slice(words),
            IndexBody::Mapped(map) => map,
        }
    }
}

/// Loads the index at `path` (read or mapped, see [`IndexBody`]) if it is valid for the
/// data file with identity `identity` under `rules`.
pub(crate) fn load(path: &Path, identity: &Identity, rules: KeepRules) -> Result<LineIndex, Unusable> {
    // Not followed if a symlink, and never blocking (a FIFO planted at the index path would
    // otherwise hang the open); the type is checked on the open descriptor.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) => return Err(Unusable::Invalid(format!("cannot open: {e}"))),
    };
    let meta = file.metadata().map_err(|e| Unusable::Invalid(e.to_string()))?;
    if !meta.is_file() {
        return Err(Unusable::Invalid("not a regular file".into()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if (meta.uid() != euid && meta.uid() != 0) || meta.mode() & 0o022 != 0 {
        return Err(Unusable::Invalid("owned by another user or writable by others; not trusted".into()));
    }
    // A small index is read whole at once (one read a file of a tree, not a header and a
    // body); a large one's header first, then its body is mapped if it is still of use.
    let small = (meta.len() < READ_INDEX_BELOW).then(|| IndexBody::load(&file, meta.len())).transpose()?;
    let header = match &small {
        Some(body) => Header::decode(&body.bytes()[..HEADER_LEN.min(meta.len() as usize)])?,
        None => {
            let mut head = vec![0u8; HEADER_LEN];
            let read = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).map_err(|e| Unusable::Invalid(e.to_string()))?;
            head.truncate(read);
            Header::decode(&head)?
        }
    };
    if header.meta.rules != rules {
        return Err(Unusable::Stale("built under other keep rules".into()));
    }
    if let Some(what) = header.identity.difference(identity) {
        return Err(Unusable::Stale(what));
    }
    if meta.len() != header.file_len() {
        return Err(Unusable::Invalid(format!("{} bytes long, its header says {}", meta.len(), header.file_len())));
    }
    let body = match small {
        Some(body) => body,
        None => IndexBody::load(&file, meta.len())?,
    };
    let map = body.bytes();
    // A bit flipped on disk, or a body written over: caught here, before any record is used.
    if twox_hash::XxHash3_64::oneshot(&map[HEADER_LEN..]) != header.body_checksum {
        return Err(Unusable::Invalid("body checksum mismatch".into()));
    }
    let words = |(at, count): (u64, u64)| -> Vec<u64> {
        let bytes = &map[at as usize..(at + 8 * count) as usize];
        bytes.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))).collect()
    };
    let [hw, tw, le] = header.sections();
    let mut meta = header.meta;
    meta.head.wraps = words(hw);
    meta.tail.wraps = words(tw);
    meta.long_ends = words(le).chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let n = meta.head.kept + meta.tail.kept;
    let sorted = |v: &[u64], max: u64| v.windows(2).all(|p| p[0] <= p[1]) && v.iter().all(|&x| x <= max);
    if !sorted(&meta.head.wraps, meta.head.kept)
        || !sorted(&meta.tail.wraps, meta.tail.kept)
        || !meta.long_ends.windows(2).all(|p| p[0].0 < p[1].0)
        || meta.long_ends.iter().any(|&(k, end)| k >= n || end > meta.file_len)
    {
        return Err(Unusable::Invalid("side lists out of order or range".into()));
    }
    let bytes = HEADER_LEN..HEADER_LEN + 8 * header.records_count as usize;
    let records = match body {
        IndexBody::Mapped(map) => Records::Mapped { map, bytes, path: path.to_path_buf() },
        IndexBody::Read(words) => Records::Read(words[bytes.start / 8..bytes.end / 8].to_vec()),
    };
    let index = LineIndex::from_parts(records, meta);
    index.check_structure().map_err(Unusable::Invalid)?;
    Ok(index)
}

/// Writes `index` of the data file with `identity` to `path`: a temporary file in the
/// same directory, renamed into place.
/// The index file gets the data file's permission bits for reading (`mode`, never wider
/// than `0o644`): line offsets of a private file stay private.
pub(crate) fn write(path: &Path, index: &LineIndex, identity: &Identity, mode: u32) -> std::io::Result<()> {
    let meta = index.meta().clone();
    let body = body_bytes(index.raw_records(), &meta);
    let header = Header {
        body_checksum: twox_hash::XxHash3_64::oneshot(&body),
        records_count: index.raw_records().len() as u64,
        head_wraps: meta.head.wraps.len() as u64,
        tail_wraps: meta.tail.wraps.len() as u64,
        long_ends: meta.long_ends.len() as u64,
        identity: *identity,
        meta,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    refuse_to_replace(path, identity)?;
    let name = path.file_name().map_or_else(|| "index".into(), |n| n.to_string_lossy().into_owned());
    remove_stale_temporaries(dir);
    // A fresh, unpredictable name created with O_EXCL: nothing planted in the directory is
    // followed or overwritten. Renamed into place once whole.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode & 0o644))
        .tempfile_in(dir)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    out.write_all(&header.encode())?;
    out.write_all(&body)?;
    out.flush()?;
    drop(out);
    // On disk before it is renamed into place: after a power loss an index file is whole
    // or absent, never a valid header over records that never reached the disk.
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary index file untouched this long belongs to a writer that died (one is
/// written in seconds).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temporary index files that writers killed before their rename left in
/// `dir` (ours only: regular files of this user, named as [`write`] names them, untouched
/// for [`STALE_AFTER`]); once per directory and process, since a directory may hold many.
fn remove_stale_temporaries(dir: &Path) {
    static SWEPT: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
        if swept.iter().any(|d| d == dir) {
            return;
        }
        swept.push(dir.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let me = rustix::process::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_ours = name.to_str().is_some_and(crate::source::paths::is_index_temporary);
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > STALE_AFTER);
        if is_ours && meta.is_file() && meta.uid() == me && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The body of an index file: the records, then the side lists.
fn body_bytes(records: &[u64], m: &IndexMeta) -> Vec<u8> {
    let side = m.head.wraps.iter().chain(&m.tail.wraps).chain(m.long_ends.iter().flat_map(|(k, e)| [k, e]));
    let mut body: Vec<u8> = bytemuck::cast_slice(records).to_vec();
    body.extend(side.flat_map(|w| w.to_ne_bytes()));
    body
}

/// An index is written only where nothing is, or over an index file: never over the data
/// file itself or any other file (`--index-path` given a data file's name by mistake).
fn refuse_to_replace(path: &Path, data: &Identity) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    let refuse = |why: &str| Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{} {why}; not replaced", path.display())));
    if (meta.dev(), meta.ino()) == (data.dev, data.ino) {
        return refuse("is the data file itself");
    }
    if !meta.is_file() {
        return refuse("exists and is not a regular file");
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return refuse("belongs to another user");
    }
    let mut magic = [0u8; 8];
    let is_index =
        File::open(path).and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut magic, 0)).is_ok() && u64::from_ne_bytes(magic) == MAGIC;
    if !is_index {
        return refuse("exists and is not an index file");
    }
    Ok(())
}

/// An exclusive `flock` on the data file, held while one process builds and writes its
/// index: advisory, so it stops no reader or writer of the data, only other mmap-batcher
/// processes building the same index. No lock file is left behind.
pub(crate) struct BuildLock<'a> {
    /// `None`: the lock could not be had (unsupported, or held too long by another).
    file: Option<&'a File>,
}

impl<'a> BuildLock<'a> {
    /// Waits for the lock on `data`, asking `cancel` every 50 ms. `None` when cancelled.
    /// Where `flock` is unsupported (some network file systems) the lock is a no-op.
    /// The wait is bounded ([`LOCK_WAIT`]): anyone who can read the data file can hold a
    /// lock on it, so past that the build goes ahead unlocked (the rename makes a parallel
    /// build harmless: every copy is identical).
    pub(crate) fn acquire(data: &'a File, cancel: &dyn Cancel) -> Option<Self> {
        let start = std::time::Instant::now();
        loop {
            match rustix::fs::flock(data, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Some(BuildLock { file: Some(data) }),
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                    if cancel.cancelled() {
                        return None;
                    }
                    if start.elapsed() >= LOCK_WAIT {
                        return Some(BuildLock { file: None });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(_) => return Some(BuildLock { file: None }),
            }
        }
    }
}

/// How long an open waits for another process's build lock on a data file.
pub(crate) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Drop for BuildLock<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.file {
            let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_names_resolve_links_as_realpath_does() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f.txt"), "x\n").unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("dir-link")).unwrap();
        std::os::unix::fs::symlink(real.join("f.txt"), real.join("file-link")).unwrap();
        let cases = [real.join("f.txt"), tmp.path().join("dir-link/f.txt"), real.join("file-link"), real.join("../real/f.txt")];
        for _ in 0..2 {
            // The second round answers from the directories resolved in the first.
            for p in &cases {
                assert_eq!(super::canonical(p), std::fs::canonicalize(p).unwrap(), "{}", p.display());
            }
        }
        assert_eq!(super::canonical(&real.join("missing")), real.join("missing"));
    }
}
