//! `mmap_batcher._native`: the Rust core behind the Python package. This file only
//! registers; each area lives in its own module.
//!
//! Heavy work (indexing, building batches, waiting for the read-ahead) runs with the GIL
//! released, so threads of a data loader overlap.

mod arrow;
mod batcher;
mod datafusion;
mod epoch;
mod error;
mod iter;
mod options;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_class::<batcher::MmapBatcher>()?;
    m.add_class::<epoch::Epoch>()?;
    m.add_class::<arrow::ArrowBatch>()?;
    m.add_class::<iter::BatchIter>()?;
    m.add_class::<datafusion::Table>()?;
    m.add_function(wrap_pyfunction!(batcher::_restore_batcher, m)?)?;
    m.add_function(wrap_pyfunction!(arrow::_arrow_batch_from_ipc, m)?)?;
    m.add("MAX_LINE_LEN", mmap_batcher::MAX_LINE_LEN)?;
    m.add("COLUMNS", mmap_batcher::Column::ALL.iter().map(|c| c.name()).collect::<Vec<_>>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
