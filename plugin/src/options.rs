//! Python arguments turned into the core's [`Options`] and inputs. Only conversions live
//! here (a `str` comment character to a byte, `shuffle=True` to a mode); every range
//! check is `Options::validate`'s, in the core.

use std::path::PathBuf;

use mmap_batcher::{Choice, FilePolicy, IndexCache, IoPolicy, LineType, Options, RecordPolicy, Shard, Shuffle, ShuffleMode};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString};
use pyo3::BoundObject;

use crate::error::{option_error, PyError, PyResult};

/// A keyword argument that may be missing (then its default applies) — unlike
/// `Option`, an explicit `None` is kept as given (`comment_char=None` turns comments off).
pub enum Arg<'py> {
    /// Not passed.
    Missing,
    /// Passed, possibly as `None`.
    Given(Bound<'py, PyAny>),
}

impl<'py> FromPyObject<'_, 'py> for Arg<'py> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'_, 'py, PyAny>) -> Result<Self, Self::Error> {
        Ok(Arg::Given(obj.to_owned()))
    }
}

impl<'py> Arg<'py> {
    /// The value passed, or `default` converted.
    pub fn or(self, py: Python<'py>, default: impl IntoPyObject<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Arg::Given(v) => Ok(v),
            Arg::Missing => Ok(default.into_pyobject(py).map_err(Into::into)?.into_any().into_bound()),
        }
    }
}

/// An integer argument: a Python `int` (not a `bool`) that fits, else a `ValueError`-kind
/// error naming the argument.
pub fn int_arg(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(option_error(format!("{name} must be an integer, got {}", v.repr().map_or_else(|_| "?".into(), |r| r.to_string()))));
    }
    v.extract::<u64>().map_err(|_| option_error(format!("{name} must be an integer in [0, 2**64), got {v}")))
}

/// One path: `str`, `bytes` or `os.PathLike`.
fn path_arg(v: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(b) = v.cast::<PyBytes>() {
        use std::os::unix::ffi::OsStrExt;
        return Ok(PathBuf::from(std::ffi::OsStr::from_bytes(b.as_bytes())));
    }
    let p: PathBuf = v.extract().map_err(|_| {
        option_error(format!("a path must be str, bytes or os.PathLike, got {}", v.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())))
    })?;
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(option_error(format!("a path cannot contain a NUL byte: {p:?}")));
    }
    Ok(p)
}

/// The inputs: a path, a glob, or a sequence of them, expanded into files; and whether
/// they name a corpus (a glob or a sequence: then the `file` column is always there).
pub fn inputs(v: &Bound<'_, PyAny>) -> PyResult<(Vec<PathBuf>, bool)> {
    let single = v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() || v.hasattr("__fspath__")?;
    let items: Vec<PathBuf> = if single {
        vec![path_arg(v)?]
    } else {
        let iter = v.try_iter().map_err(|_| option_error("paths must be a path, a glob or a sequence of them"))?;
        iter.map(|item| path_arg(&item?)).collect::<PyResult<_>>()?
    };
    let corpus = !single || mmap_batcher::inputs_name_a_corpus(&items);
    Ok((mmap_batcher::expand_inputs(&items)?, corpus))
}

/// The sources of a mixture: `paths` a dict of name → path, glob or sequence of them, and
/// `weights` `None` or a dict of name → positive number, every name a source's.
pub fn sources(paths: &Bound<'_, PyDict>, weights: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<mmap_batcher::Source>> {
    let weights: Option<Vec<(String, f64)>> = match weights {
        None => None,
        Some(w) if w.is_none() => None,
        Some(w) => {
            let w = w.cast::<PyDict>().map_err(|_| option_error(format!("weights must be a dict of source name to weight, got {}", repr(w))))?;
            Some(
                w.iter()
                    .map(|(k, v)| {
                        Ok((
                            source_name(&k)?,
                            v.extract::<f64>().map_err(|_| option_error(format!("the weight of {k} must be a number, got {}", repr(&v))))?,
                        ))
                    })
                    .collect::<PyResult<_>>()?,
            )
        }
    };
    let mut out = Vec::new();
    for (name, value) in paths.iter() {
        let name = source_name(&name)?;
        let (paths, _) = inputs(&value)?;
        let weight = weights.as_ref().and_then(|w| w.iter().find(|(n, _)| *n == name).map(|&(_, x)| x));
        out.push(mmap_batcher::Source { name, paths, weight });
    }
    if let Some(w) = &weights {
        if let Some((unknown, _)) = w.iter().find(|(n, _)| !out.iter().any(|s| s.name == *n)) {
            let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
            return Err(option_error(format!("weights names {unknown:?}, which is not a source (sources: {})", names.join(", "))));
        }
    }
    Ok(out)
}

fn source_name(k: &Bound<'_, PyAny>) -> PyResult<String> {
    k.extract::<String>().map_err(|_| option_error(format!("a source's name must be a str, got {}", repr(k))))
}

/// The comment character: one ASCII `str` character, one byte, or `None`.
pub fn comment_byte(v: &Bound<'_, PyAny>) -> PyResult<Option<u8>> {
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(s) = v.extract::<String>() {
        let mut chars = s.chars();
        return match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(Some(Options::comment_byte(c)?)),
            _ => Err(option_error(format!("comment_char must be one ASCII character or None, got {s:?}"))),
        };
    }
    match v.cast::<PyBytes>() {
        Ok(b) if b.as_bytes().len() == 1 => Ok(Some(b.as_bytes()[0])),
        _ => Err(option_error(format!("comment_char must be one ASCII character or None, got {v}"))),
    }
}

/// A word option (`io="disk"`, `layout="large"`), spelled as the core's [`Choice`] says.
pub struct Word<T>(pub T);

impl<'py, T: Choice> FromPyObject<'_, 'py> for Word<T> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'_, 'py, PyAny>) -> Result<Self, Self::Error> {
        let word: String = obj.extract().map_err(|_| PyErr::from(option_error(format!("{} must be a string, got {}", T::OPTION, repr(&obj)))))?;
        Ok(Word(T::parse(&word).map_err(PyError::from)?))
    }
}

fn repr(v: &Bound<'_, PyAny>) -> String {
    v.repr().map_or_else(|_| "?".into(), |r| r.to_string())
}

/// The value of a renamed keyword: the new one, or the old one with a `DeprecationWarning`
/// (both given is an error).
pub fn deprecated<T>(py: Python<'_>, old: &str, old_value: Option<T>, new: &str, new_value: Option<T>) -> PyResult<Option<T>> {
    match (old_value, new_value) {
        (Some(_), Some(_)) => Err(option_error(format!("{old} is the deprecated spelling of {new}: pass only {new}"))),
        (Some(v), None) => {
            warn_deprecated(py, format!("{old}= is deprecated, use {new}="))?;
            Ok(Some(v))
        }
        (None, v) => Ok(v),
    }
}

/// A `DeprecationWarning` pointing at the caller's line.
pub fn warn_deprecated(py: Python<'_>, message: String) -> PyResult<()> {
    let category = py.get_type::<pyo3::exceptions::PyDeprecationWarning>();
    py.import(pyo3::intern!(py, "warnings"))?.call_method1(pyo3::intern!(py, "warn"), (message, category, 2))?;
    Ok(())
}

/// `shuffle`: `True`/`False` or a [`ShuffleMode`] word.
pub fn shuffle(v: &Bound<'_, PyAny>, block: u64, window: u64) -> PyResult<Shuffle> {
    let mode = match v.cast::<PyBool>() {
        Ok(b) => Some(if b.is_true() { ShuffleMode::Global } else { ShuffleMode::None }),
        Err(_) => v.extract::<String>().ok().and_then(|word| ShuffleMode::parse(&word).ok()),
    };
    let mode = mode.ok_or_else(|| option_error(format!("shuffle must be True, False, 'global', 'block' or 'none', got {}", repr(v))))?;
    Ok(Shuffle::of(mode, block, window))
}

/// A count that may be `None` (`max_open_files`, `threads`).
fn optional_count(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if value.is_none() {
        return Ok(None);
    }
    Ok(Some(usize::try_from(int_arg(name, value)?).map_err(|_| option_error(format!("{name} is too large")))?))
}

/// Every keyword of the constructor, as the core's options and the shard.
pub struct Args<'py> {
    pub batch_size: Bound<'py, PyAny>,
    pub shuffle: Bound<'py, PyAny>,
    pub ignore_leftovers: bool,
    pub skip_blank_lines: bool,
    pub comment_char: Bound<'py, PyAny>,
    pub seed: Option<Bound<'py, PyAny>>,
    pub keep_terminator: bool,
    pub binary: bool,
    pub shuffle_block: Bound<'py, PyAny>,
    pub shuffle_window: Bound<'py, PyAny>,
    pub even_shards: bool,
    pub index_cache: bool,
    pub index_path: Option<Bound<'py, PyAny>>,
    pub index_dir: Option<Bound<'py, PyAny>>,
    pub io: IoPolicy,
    pub max_open_files: Bound<'py, PyAny>,
    pub threads: Bound<'py, PyAny>,
    pub trust_files: bool,
    pub header_lines: Bound<'py, PyAny>,
    pub on_bad_file: FilePolicy,
    pub on_duplicate_file: FilePolicy,
    pub worker_id: Bound<'py, PyAny>,
    pub num_workers: Bound<'py, PyAny>,
    pub rank: Bound<'py, PyAny>,
    pub world_size: Bound<'py, PyAny>,
    pub lines_per_epoch: Bound<'py, PyAny>,
    pub field: Option<String>,
    pub fields: Vec<String>,
    pub on_bad_record: RecordPolicy,
}

impl Args<'_> {
    pub fn options(&self) -> PyResult<Options> {
        let block = int_arg("shuffle_block", &self.shuffle_block)?;
        let window = int_arg("shuffle_window", &self.shuffle_window)?;
        let options = Options {
            batch_size: usize::try_from(int_arg("batch_size", &self.batch_size)?).map_err(|_| option_error("batch_size is too large"))?,
            shuffle: shuffle(&self.shuffle, block, window)?,
            ignore_leftovers: self.ignore_leftovers,
            even_shards: self.even_shards,
            skip_blank_lines: self.skip_blank_lines,
            comment_char: comment_byte(&self.comment_char)?,
            header_lines: int_arg("header_lines", &self.header_lines)?,
            on_bad_file: self.on_bad_file,
            on_duplicate_file: self.on_duplicate_file,
            // Decided from the inputs, by the constructor.
            file_column: false,
            seed: self.seed.as_ref().map(|s| int_arg("seed", s)).transpose()?,
            keep_terminator: self.keep_terminator,
            line_type: if self.binary { LineType::Binary } else { LineType::Utf8 },
            index_cache: match (&self.index_path, &self.index_dir, self.index_cache) {
                (Some(_), Some(_), _) => return Err(option_error("index_path and index_dir exclude each other")),
                (Some(p), None, _) => IndexCache::Path(path_arg(p)?),
                (None, Some(d), _) => IndexCache::Dir(path_arg(d)?),
                (None, None, true) => IndexCache::Auto,
                (None, None, false) => IndexCache::Off,
            },
            io: self.io,
            max_open_files: optional_count("max_open_files", &self.max_open_files)?,
            threads: optional_count("threads", &self.threads)?,
            trust_files: self.trust_files,
            lines_per_epoch: if self.lines_per_epoch.is_none() { None } else { Some(int_arg("lines_per_epoch", &self.lines_per_epoch)?) },
            field: self.field.clone(),
            fields: self.fields.clone(),
            on_bad_record: self.on_bad_record,
        };
        options.validate()?;
        Ok(options)
    }

    pub fn shard(&self) -> PyResult<Shard> {
        Ok(Shard::of(
            int_arg("rank", &self.rank)?,
            int_arg("world_size", &self.world_size)?,
            int_arg("worker_id", &self.worker_id)?,
            int_arg("num_workers", &self.num_workers)?,
        )?)
    }
}
