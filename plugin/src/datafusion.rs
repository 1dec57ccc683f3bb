//! The DataFusion table for datafusion-python (cargo feature `datafusion`), filled in below.

use mmap_batcher::Batcher;
use pyo3::prelude::*;

use crate::error::PyResult;

/// Epochs of a batcher as a table for datafusion-python.
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct Table {
    #[allow(dead_code)]
    batcher: Batcher,
    #[allow(dead_code)]
    epochs: u64,
}

impl Table {
    pub fn new(batcher: Batcher, epochs: u64) -> PyResult<Self> {
        Ok(Table { batcher, epochs })
    }
}
