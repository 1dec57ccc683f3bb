//! `Lines`: the kept lines of a batcher's corpus as a read-only sequence, the map-style
//! source (Grain's `MapDataset.source`) that the batcher itself must not be (a PyTorch
//! `DataLoader` would take it for one).

use mmap_batcher::Batcher;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::batcher::MmapBatcher;
use crate::error::PyResult;

/// Line `k` (negative counts from the end) of `core`'s kept lines, with its terminator.
pub fn line_at<'py>(py: Python<'py>, core: &Batcher, k: i64) -> PyResult<Bound<'py, PyBytes>> {
    let n = i64::try_from(core.num_lines()).unwrap_or(i64::MAX);
    let i = if k < 0 { k.saturating_add(n) } else { k };
    if i < 0 || i >= n {
        return Err(pyo3::exceptions::PyIndexError::new_err(format!("line {k} out of range for {n} lines")).into());
    }
    let bytes = py.detach(|| core.line_bytes(i as u64))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The kept lines of a batcher's corpus, in file order: ``len(lines)``, ``lines[k]``
/// (``bytes`` with the terminator). Pickles as its batcher does (paths and options).
#[pyclass(module = "mmap_batcher._native", frozen, sequence)]
pub struct Lines {
    batcher: Py<MmapBatcher>,
}

impl Lines {
    pub fn new(batcher: Py<MmapBatcher>) -> Self {
        Lines { batcher }
    }
}

#[pymethods]
impl Lines {
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(usize::try_from(self.batcher.bind(py).get().core()?.num_lines()).unwrap_or(usize::MAX))
    }

    fn __getitem__<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyBytes>> {
        line_at(py, &self.batcher.bind(py).get().core()?, k)
    }

    /// The batcher these lines belong to.
    #[getter]
    fn batcher(&self, py: Python<'_>) -> Py<MmapBatcher> {
        self.batcher.clone_ref(py)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let builtins = py.import(intern!(py, "builtins"))?;
        let getattr = builtins.getattr(intern!(py, "getattr"))?;
        Ok((getattr, (self.batcher.clone_ref(py), "lines").into_pyobject(py)?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Lines({} lines)", self.__len__(py)?))
    }
}
