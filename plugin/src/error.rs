//! The exception tree, mapped once: every library error is a `MmapBatcherError`, and also
//! the built-in exception a user would catch for it (`FileNotFoundError`, `ValueError`, …),
//! through multiple inheritance. Functions return [`PyResult`]`<T>` of this module, so `?`
//! maps a core [`Error`] and a Python error alike.

use mmap_batcher::Error;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIsADirectoryError, PyKeyboardInterrupt, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// Either kind of error a binding can fail with.
pub struct PyError(PyErr);

/// The result type of every binding.
pub type PyResult<T> = Result<T, PyError>;

impl From<PyErr> for PyError {
    fn from(e: PyErr) -> Self {
        PyError(e)
    }
}

impl From<Error> for PyError {
    fn from(e: Error) -> Self {
        PyError(Python::attach(|py| to_py_err(py, e)))
    }
}

impl From<std::convert::Infallible> for PyError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

impl From<PyError> for PyErr {
    fn from(e: PyError) -> Self {
        e.0
    }
}

impl From<arrow::error::ArrowError> for PyError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Arrow { context: "arrow".into(), source: e }.into()
    }
}

/// A JSON error by what was being read or written: a state handed in by the user is
/// `StateMismatchError`; our own serialisation (states handed out, pickles) failing is a bug.
pub fn state_json(e: serde_json::Error) -> PyError {
    Error::InvalidState { message: e.to_string() }.into()
}

/// See [`state_json`].
pub fn internal_json(what: &str) -> impl FnOnce(serde_json::Error) -> PyError + '_ {
    move |e| Error::Internal { message: format!("{what}: {e}") }.into()
}

/// `(name, built-in base, doc)` of each exception class, the base class first.
const CLASSES: [(&str, Base, &str); 16] = [
    ("MmapBatcherError", Base::Exception, "Base class of every mmap-batcher error."),
    ("MissingFileError", Base::FileNotFound, "The file does not exist."),
    ("NoInputError", Base::FileNotFound, "A glob matched no file, or the list of inputs is empty."),
    ("DirectoryError", Base::IsADirectory, "The path is a directory, not a file of lines."),
    ("AccessError", Base::Permission, "The process may not read the file."),
    ("SpecialFileError", Base::OS, "A device or socket, which cannot be served."),
    ("ReadError", Base::OS, "Mapping, reading or stat-ing a file failed."),
    ("CompressionError", Base::OS, "A compressed file is corrupt or truncated, or in a format not decoded (xz, bzip2, lz4)."),
    ("OptionError", Base::Value, "An argument is out of range or of the wrong kind."),
    ("DuplicateInputError", Base::Value, "The same file was given twice."),
    ("LineTooLongError", Base::Value, "A line is longer than one Arrow view buffer can address (2 GiB)."),
    ("InvalidUtf8Error", Base::Value, "A kept line is not valid UTF-8 (string/Arrow path only)."),
    ("BadRecordError", Base::Value, "A JSON Lines record is not a JSON object or lacks its string field (field=, on_bad_record=\"error\")."),
    ("FileChangedError", Base::Runtime, "The file changed since it was indexed; reopen it."),
    ("CorruptIndexError", Base::OS, "A persisted line index disagrees with its file."),
    ("StateMismatchError", Base::Value, "A resume state does not match this batcher (another file, other options), or is malformed."),
];

#[derive(Clone, Copy)]
enum Base {
    Exception,
    FileNotFound,
    IsADirectory,
    Permission,
    OS,
    Value,
    Runtime,
}

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    Ok(TYPES.get_or_try_init(py, || -> Result<Vec<Py<PyType>>, PyErr> {
        let type_ = py.get_type::<PyType>();
        let mut out: Vec<Py<PyType>> = Vec::new();
        for (name, base, doc) in CLASSES {
            let builtin = match base {
                Base::Exception => py.get_type::<PyException>(),
                Base::FileNotFound => py.get_type::<PyFileNotFoundError>(),
                Base::IsADirectory => py.get_type::<PyIsADirectoryError>(),
                Base::Permission => py.get_type::<PyPermissionError>(),
                Base::OS => py.get_type::<PyOSError>(),
                Base::Value => py.get_type::<PyValueError>(),
                Base::Runtime => py.get_type::<PyRuntimeError>(),
            };
            let bases = match out.first() {
                None => PyTuple::new(py, [builtin])?,
                Some(root) => PyTuple::new(py, [root.bind(py).clone(), builtin])?,
            };
            let dict = PyDict::new(py);
            dict.set_item("__doc__", doc)?;
            dict.set_item("__module__", "mmap_batcher")?;
            out.push(type_.call1((name, bases, dict))?.cast_into::<PyType>()?.unbind());
        }
        Ok(out)
    })?)
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let i = CLASSES.iter().position(|(n, _, _)| *n == name).unwrap_or(0);
    Ok(types(py)?[i].bind(py).clone())
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (i, (name, _, _)) in CLASSES.iter().enumerate() {
        m.add(*name, types(m.py())?[i].bind(m.py()))?;
    }
    Ok(())
}

/// The errno values the built-in exceptions carry (Linux's numbering, as `errno` has it).
mod errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EACCES: i32 = 13;
    pub const ENODEV: i32 = 19;
    pub const EISDIR: i32 = 21;
}

/// The one mapping of a core error to the Python exception a user would catch for it.
fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    let path = e.path().map(|p| p.display().to_string());
    let (name, errno): (&str, Option<i32>) = match &e {
        Error::NotFound { .. } => ("MissingFileError", Some(errno::ENOENT)),
        Error::NoInput { .. } => ("NoInputError", Some(errno::ENOENT)),
        Error::IsADirectory { .. } => ("DirectoryError", Some(errno::EISDIR)),
        Error::PermissionDenied { .. } => ("AccessError", Some(errno::EACCES)),
        Error::NotRegularFile { .. } => ("SpecialFileError", Some(errno::ENODEV)),
        Error::Io { source, .. } => ("ReadError", Some(source.raw_os_error().unwrap_or(errno::EIO))),
        Error::InvalidOption { .. } => ("OptionError", None),
        Error::DuplicateInput { .. } => ("DuplicateInputError", None),
        Error::LineTooLong { .. } => ("LineTooLongError", None),
        Error::InvalidUtf8 { .. } => ("InvalidUtf8Error", None),
        Error::BadRecord { .. } => ("BadRecordError", None),
        Error::FileChanged { .. } => ("FileChangedError", None),
        Error::CorruptIndex { .. } => ("CorruptIndexError", Some(errno::EIO)),
        Error::Compressed { .. } => ("CompressionError", None),
        Error::StateMismatch { .. } | Error::InvalidState { .. } => ("StateMismatchError", None),
        Error::Interrupted { .. } => return PyKeyboardInterrupt::new_err(message),
        Error::Arrow { .. } | Error::Internal { .. } => ("MmapBatcherError", None),
        _ => ("MmapBatcherError", None),
    };
    let build = || -> Result<PyErr, PyErr> {
        let cls = class(py, name)?;
        // OSError subclasses take (errno, strerror, filename), so `e.filename` works.
        let value = match errno {
            Some(n) => cls.call1((n, message.clone(), path.clone()))?,
            None => cls.call1((message.clone(),))?,
        };
        let _ = value.setattr("path", path.clone());
        match e {
            Error::LineTooLong { line_number, .. } => {
                value.setattr("line_number", line_number)?;
                value.setattr("byte_offset", py.None())?;
            }
            Error::InvalidUtf8 { line_number, byte_offset, .. } | Error::BadRecord { line_number, byte_offset, .. } => {
                value.setattr("line_number", line_number)?;
                value.setattr("byte_offset", byte_offset)?;
            }
            _ => {}
        }
        Ok(PyErr::from_value(value))
    };
    build().unwrap_or_else(|err| err)
}

/// A `ValueError`-kind error of this library about an argument.
pub fn option_error(message: impl Into<String>) -> PyError {
    Error::InvalidOption { message: message.into() }.into()
}
