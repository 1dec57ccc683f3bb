//! The datafusion-python table: `SessionContext().register_table("lines", mmb.table(3))`.
//!
//! datafusion-python takes any object with `__datafusion_table_provider__(session)`
//! returning a capsule of an `FFI_TableProvider` (the `datafusion-ffi` crate's stable
//! ABI). The provider is the core's [`LinesTable`] itself, so SQL from Python gets the
//! same pushdown (epoch, batch, line_number, file, limit, projection), the same zero-copy
//! batches and the same bounded-pool compaction as the CLI's `sql`.
//!
//! Built only with the cargo feature `datafusion` (it links DataFusion into the
//! extension); without it, `table()` raises an error that says so.

use mmap_batcher::Batcher;
use pyo3::prelude::*;

use crate::error::{option_error, PyResult};

/// The datafusion-python major this extension's `datafusion-ffi` speaks.
#[cfg(feature = "datafusion")]
const DATAFUSION_MAJOR: u64 = 55;

/// Epochs of a batcher as a table for datafusion-python (``SessionContext.register_table``).
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct Table {
    #[cfg_attr(not(feature = "datafusion"), allow(dead_code))]
    table: Option<TableInner>,
}

#[cfg_attr(not(feature = "datafusion"), allow(dead_code))]
struct TableInner {
    batcher: Batcher,
    epochs: u64,
}

impl Table {
    pub fn new(batcher: Batcher, epochs: u64) -> PyResult<Self> {
        if cfg!(feature = "datafusion") {
            Ok(Table { table: Some(TableInner { batcher, epochs }) })
        } else {
            Err(option_error("this build of mmap_batcher has no DataFusion support (build the extension with the cargo feature `datafusion`)"))
        }
    }
}

/// One of the JSON functions of SQL over JSON Lines, for datafusion-python's
/// ``SessionContext.register_udf(ScalarUDF.from_pycapsule(f))``
/// (``mmap_batcher.register_json_functions(ctx)`` registers them all).
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct JsonFunction {
    #[cfg(feature = "datafusion")]
    udf: std::sync::Arc<datafusion::logical_expr::ScalarUDF>,
}

/// The JSON functions (``json_get_str``, ``json_get_int``, ...) as datafusion-python
/// scalar UDFs.
#[pyfunction]
pub fn json_functions() -> PyResult<Vec<JsonFunction>> {
    #[cfg(feature = "datafusion")]
    return Ok(mmap_batcher::json_functions().into_iter().map(|udf| JsonFunction { udf }).collect());
    #[cfg(not(feature = "datafusion"))]
    Err(option_error("this build of mmap_batcher has no DataFusion support"))
}

#[cfg(feature = "datafusion")]
mod ffi {
    use std::sync::{Arc, OnceLock};

    use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
    use datafusion_ffi::table_provider::FFI_TableProvider;
    use mmap_batcher::LinesTable;
    use pyo3::intern;
    use pyo3::prelude::*;
    use pyo3::types::PyCapsule;

    use super::{Table, DATAFUSION_MAJOR};
    use crate::error::{option_error, PyResult};

    /// The runtime DataFusion's FFI layer runs our scans' futures on.
    fn runtime() -> PyResult<tokio::runtime::Handle> {
        static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
        RUNTIME
            .get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().ok())
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| option_error("could not start a tokio runtime for DataFusion"))
    }

    /// Fails with both versions when the installed datafusion-python is another major.
    fn check_version(py: Python<'_>) -> PyResult<()> {
        let version: String = py.import(intern!(py, "datafusion"))?.getattr(intern!(py, "__version__"))?.extract()?;
        let major = version.split('.').next().and_then(|m| m.parse::<u64>().ok());
        if major != Some(DATAFUSION_MAJOR) {
            return Err(option_error(format!(
                "datafusion-python {version} is installed; this mmap_batcher speaks DataFusion's FFI of major {DATAFUSION_MAJOR} \
                 (install datafusion=={DATAFUSION_MAJOR}.*)"
            )));
        }
        Ok(())
    }

    /// The session's logical extension codec (from its `__datafusion_logical_extension_codec__`).
    fn session_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
        let name = "__datafusion_logical_extension_codec__";
        let capsule = if session.hasattr(name)? { session.getattr(name)?.call0()? } else { session.clone() };
        let capsule = capsule.cast::<PyCapsule>().map_err(|_| option_error("expected a DataFusion session or its codec capsule"))?;
        let pointer = capsule.pointer_checked(Some(c"datafusion_logical_extension_codec"))?;
        // SAFETY: a capsule named `datafusion_logical_extension_codec` holds an
        // `FFI_LogicalExtensionCodec` (datafusion-python's contract, checked by name above);
        // it lives as long as the capsule, which `capsule` keeps alive while we clone it.
        let codec = unsafe { pointer.cast::<FFI_LogicalExtensionCodec>().as_ref() };
        Ok(codec.clone())
    }

    #[pymethods]
    impl super::JsonFunction {
        /// The function as a datafusion-python scalar UDF capsule.
        fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
            check_version(py)?;
            let udf = datafusion_ffi::udf::FFI_ScalarUDF::from(self.udf.clone());
            Ok(PyCapsule::new_with_value(py, udf, c"datafusion_scalar_udf")?)
        }

        /// The function's SQL name.
        #[getter]
        fn name(&self) -> String {
            self.udf.name().to_owned()
        }
    }

    #[pymethods]
    impl Table {
        /// The table as a datafusion-python provider capsule (called by datafusion-python).
        fn __datafusion_table_provider__<'py>(&self, py: Python<'py>, session: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyCapsule>> {
            check_version(py)?;
            let inner = self.table.as_ref().ok_or_else(|| option_error("no table"))?;
            let table = LinesTable::new(inner.batcher.clone(), inner.epochs)?;
            let codec = session_codec(&session)?;
            let provider = FFI_TableProvider::new_with_ffi_codec(Arc::new(table), true, Some(runtime()?), codec);
            Ok(PyCapsule::new_with_value(py, provider, c"datafusion_table_provider")?)
        }
    }
}

#[cfg(not(feature = "datafusion"))]
#[pymethods]
impl Table {
    /// The table as a datafusion-python provider capsule (called by datafusion-python).
    fn __datafusion_table_provider__(&self, _session: Bound<'_, PyAny>) -> PyResult<()> {
        Err(option_error("this build of mmap_batcher has no DataFusion support"))
    }
}
