//! The table provider.
//!
//! The table has the batcher's default columns ([`Column::defaults`]). A scan
//! - builds only the projected columns: without `line` the map is never read, and
//!   `SELECT count(*)` is answered from exact statistics without a scan at all;
//! - answers `epoch`, `batch`, `line_number` comparisons and `file = '…'` exactly, from the
//!   index (see [`pushdown`](super::pushdown));
//! - stops each partition after a pushed-down `LIMIT`;
//! - splits the `(epoch, batch)` units of the scan into contiguous runs, one per target
//!   partition. Each partition emits its units in serial order and declares the ordering
//!   `epoch, batch`, so `ORDER BY epoch, batch` is a merge that restores the serial order
//!   exactly (rows inside a batch keep their served order).
//!
//! # Memory accounting
//!
//! DataFusion reserves memory for buffered batches by the size of their buffers. A
//! zero-copy batch's `line` buffers are windows of the map, so a 1,024-row batch "weighs"
//! the whole file, and a sort, join or repartition under a bounded memory pool fails with a
//! false "Resources exhausted". The scan therefore looks at the session's pool:
//! [`LineBuffers::Auto`] (the default) keeps batches zero-copy when the pool is unbounded
//! (nothing can be refused) and [compacts](crate::compact) each batch (copies only the bytes
//! its rows reference, once) when the pool is bounded or of unknown kind, so every
//! reservation is the batch's true size.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::datasource::TableType;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::exec::{LinesExec, ScanRequest};
use super::pushdown::filter_range;
use crate::arrow::{schema, Column};
use crate::batcher::Batcher;
use crate::error::{Error, Result};
use crate::options::LineType;
use crate::select::RowFilter;

/// Whether scans hand out zero-copy `line` views or compact copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineBuffers {
    /// Zero-copy under an unbounded memory pool, compact under any other (see the module docs).
    #[default]
    Auto,
    /// Always zero-copy, even where a bounded pool will count the map's windows.
    ZeroCopy,
    /// Always copy each batch's referenced line bytes into a buffer of its own.
    Compact,
}

/// A [`Batcher`]'s epochs as a DataFusion table.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..100 { writeln!(f, "row {i}").unwrap(); }
/// use std::sync::Arc;
/// use datafusion::prelude::SessionContext;
/// use mmap_batcher::{Batcher, IndexCache, LinesTable, Options};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let opts = Options { batch_size: 10, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() };
/// let batcher = Batcher::open(f.path(), opts)?;
/// let ctx = SessionContext::new();
/// ctx.register_table("lines", Arc::new(LinesTable::new(batcher, 2)?))?;
/// let df = ctx.sql("SELECT epoch, count(*) AS n FROM lines WHERE line LIKE 'row 1%' GROUP BY epoch ORDER BY epoch").await?;
/// let out = df.collect().await?;
/// assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 2); // 11 matching rows in each of 2 epochs
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LinesTable {
    batcher: Batcher,
    epochs: u64,
    buffers: LineBuffers,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl LinesTable {
    /// Epochs `0..epochs` of `batcher`. An error when the table would have more rows than
    /// a `count(*)` can hold (`i64::MAX`).
    pub fn new(batcher: Batcher, epochs: u64) -> Result<Self> {
        let rows = u128::from(batcher.lines_per_epoch()) * u128::from(epochs);
        if rows > i64::MAX as u128 {
            return Err(Error::InvalidOption {
                message: format!("{epochs} epochs of {} lines is more rows than a count can hold", batcher.lines_per_epoch()),
            });
        }
        let columns = batcher.default_columns();
        let schema = schema(&columns, batcher.options());
        Ok(LinesTable { batcher, epochs, buffers: LineBuffers::Auto, columns, schema })
    }

    /// Chooses zero-copy or compact `line` buffers instead of deciding per session.
    pub fn with_line_buffers(mut self, buffers: LineBuffers) -> Self {
        self.buffers = buffers;
        self
    }

    /// The batcher read.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// Number of epochs.
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// Builds the scan of `projection` under `filters` (those [`filter_range`] answers)
    /// and `limit`, in `partitions` partitions, compact or not.
    pub(crate) fn plan(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        compact: bool,
        partitions: usize,
    ) -> Result<LinesExec> {
        let columns: Vec<Column> = match projection {
            Some(p) => p.iter().filter_map(|&i| self.columns.get(i).copied()).collect(),
            None => self.columns.clone(),
        };
        if self.batcher.reads_lines(&columns) && self.batcher.options().line_type == LineType::Utf8 {
            // Fail at planning time with the file's own message rather than mid-stream.
            self.batcher.validate_utf8()?;
        }
        let filter = filters.iter().filter_map(filter_range).fold(RowFilter::default(), |f, allowed| allowed.narrow(f));
        LinesExec::new(ScanRequest { batcher: self.batcher.clone(), epochs: self.epochs, filter, columns, limit, compact, partitions })
    }
}

#[async_trait]
impl TableProvider for LinesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match filter_range(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let compact = match self.buffers {
            LineBuffers::Auto => !matches!(state.runtime_env().memory_pool.memory_limit(), MemoryLimit::Infinite),
            LineBuffers::ZeroCopy => false,
            LineBuffers::Compact => true,
        };
        let partitions = state.config().target_partitions().max(1);
        let exec = self.plan(projection, filters, limit, compact, partitions).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Arc::new(exec))
    }

    fn statistics(&self) -> Option<Statistics> {
        let rows = self.batcher.lines_per_epoch() * self.epochs;
        Some(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows as usize)))
    }
}
