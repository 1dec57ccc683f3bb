//! `mmap_batcher._native`: the Rust core behind the Python package. This file only
//! registers; each area lives in its own module.
//!
//! Heavy work (indexing, building batches, waiting for the read-ahead) runs with the GIL
//! released, so threads of a data loader overlap.
//!
//! `unsafe` is denied here but in one place: reading a datafusion-python session's codec
//! capsule (`datafusion`), whose safety argument is at its block.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod arrow;
mod batcher;
#[allow(unsafe_code)]
mod datafusion;
mod epoch;
mod error;
mod iter;
mod lines;
mod options;

use pyo3::prelude::*;

/// mimalloc for the extension's own allocations (Python's stay Python's): batches are built
/// on builder threads and freed on the consumer's, which glibc's malloc serves under a lock
/// per arena (the benchmarks doc, "Read-ahead").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the ``mmap-batcher`` command line with ``argv`` (the program name first) and
/// returns its exit status: ``python -m mmap_batcher``.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| mmap_batcher::cli::run(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    m.add_class::<batcher::MmapBatcher>()?;
    m.add_class::<epoch::Epoch>()?;
    m.add_class::<arrow::ArrowBatch>()?;
    m.add_class::<iter::BatchIter>()?;
    m.add_class::<lines::Lines>()?;
    m.add_class::<datafusion::Table>()?;
    m.add_class::<datafusion::JsonFunction>()?;
    m.add_function(wrap_pyfunction!(datafusion::json_functions, m)?)?;
    m.add_function(wrap_pyfunction!(batcher::_restore_batcher, m)?)?;
    m.add_function(wrap_pyfunction!(arrow::_arrow_batch_from_ipc, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("MAX_LINE_LEN", mmap_batcher::MAX_LINE_LEN)?;
    m.add("COLUMNS", mmap_batcher::Column::ALL.iter().map(|c| c.name(&[])).collect::<Vec<_>>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
