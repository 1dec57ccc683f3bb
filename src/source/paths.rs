//! Turning what a user typed — a path, several paths, globs — into the list of files of
//! one corpus, in a stable order.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Expands `inputs` in order: an input naming an existing path is taken as it is; one
/// with glob characters (`*`, `?`, `[`) that names no file is expanded, its matches
/// sorted. A glob matching nothing or an empty list is an error. A file reached twice is
/// listed twice: the open serves it once (see `Options::on_duplicate_file`).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # for n in ["b.txt", "a.txt", "c.log"] { std::fs::write(dir.path().join(n), "x\n").unwrap(); }
/// let glob = format!("{}/*.txt", dir.path().display());
/// let files = mmap_batcher::expand_inputs(&[glob.as_str()])?;
/// assert_eq!(files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
pub fn expand_inputs<S: AsRef<std::ffi::OsStr>>(inputs: &[S]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let input = input.as_ref();
        let path = PathBuf::from(input);
        let text = input.to_string_lossy();
        if !is_glob(input) {
            files.push(path);
            continue;
        }
        let bad = |message: String| Error::InvalidOption { message };
        let mut unreadable = None;
        let matched: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| bad(format!("bad glob pattern {text:?}: {e}")))?
            .filter_map(|m| m.map_err(|e| unreadable.get_or_insert(e).path().to_path_buf()).ok())
            .filter(|p| !is_ours(p))
            .collect();
        // Directories left out (as `Path::is_dir` says: links followed, an error is not one).
        let stats = super::metadata_all(&matched);
        let mut matches: Vec<PathBuf> =
            matched.into_iter().zip(stats).filter(|(_, m)| !m.as_ref().is_ok_and(|m| m.is_dir())).map(|(p, _)| p).collect();
        if matches.is_empty() {
            // A directory the glob could not read is the reason, not an empty match.
            if let Some(e) = unreadable {
                let path = e.path().to_path_buf();
                return Err(Error::from_io(&path, std::io::Error::from(e)));
            }
            return Err(Error::NoInput { pattern: text.into_owned() });
        }
        matches.sort();
        files.extend(matches);
    }
    if files.is_empty() {
        return Err(Error::NoInput { pattern: "(empty list of inputs)".into() });
    }
    Ok(files)
}

/// True when `input` is expanded as a glob: it has glob characters (`*`, `?`, `[`) and
/// names no existing path (nor is `-`).
fn is_glob(input: &std::ffi::OsStr) -> bool {
    input != "-" && input.to_string_lossy().contains(['*', '?', '[']) && !std::path::Path::new(input).exists()
}

/// True when `inputs` name a corpus rather than one file: several inputs, or a glob
/// (whatever it matches). Such a corpus carries the `file` column (`Options::file_column`).
pub fn inputs_name_a_corpus<S: AsRef<std::ffi::OsStr>>(inputs: &[S]) -> bool {
    inputs.len() != 1 || inputs.iter().any(|i| is_glob(i.as_ref()))
}

/// The file name suffix of our index files (`index::persist` names them).
pub(crate) const INDEX_SUFFIX: &str = "mmbi";

/// Our own index files and their temporary files, which a glob over a directory of data
/// must not serve (nor index).
fn is_ours(path: &std::path::Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.ends_with(&format!(".{INDEX_SUFFIX}")) || is_index_temporary(&name)
}

/// A temporary index file's name (`.NAME.mmbi.RANDOM.tmp`, see `index::persist::write`).
pub(crate) fn is_index_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(&format!(".{INDEX_SUFFIX}.")) && name.ends_with(".tmp")
}
