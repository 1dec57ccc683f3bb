//! Epochs of shuffled batches as an Apache DataFusion table (cargo feature `datafusion`).
//!
//! The table has the five columns of [`Column::ALL`]. A scan
//! - builds only the projected columns: without `line` the map is never touched, and
//!   `SELECT count(*)` is answered from exact statistics without a scan at all;
//! - answers `epoch`, `batch` and `line_number` comparisons (`=`, `<`, `<=`, `>`, `>=`,
//!   `BETWEEN`, against integer literals) exactly, from the index: whole epochs and
//!   batches are skipped, and line-number ranges become kept-line ranges by binary search;
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

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use crate::arrow_batch::{schema, Column};
use crate::batcher::{Batch, Batcher, Epoch};
use crate::options::LineType;

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
/// use mmap_batcher::{Batcher, LinesTable, Options};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let batcher = Batcher::open(f.path(), Options { batch_size: 10, seed: Some(1), ..Default::default() })?;
/// let ctx = SessionContext::new();
/// ctx.register_table("lines", Arc::new(LinesTable::new(batcher, 2)))?;
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
    schema: SchemaRef,
}

impl LinesTable {
    /// Epochs `0..epochs` of `batcher`.
    pub fn new(batcher: Batcher, epochs: u64) -> Self {
        let schema = schema(&Column::ALL, batcher.options().line_type);
        LinesTable { batcher, epochs, buffers: LineBuffers::Auto, schema }
    }

    /// Chooses zero-copy or compact `line` buffers instead of deciding per session.
    pub fn with_line_buffers(mut self, buffers: LineBuffers) -> Self {
        self.buffers = buffers;
        self
    }
}

/// The part of the table a scan reads, narrowed by pushed-down filters. Half-open ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScanRange {
    epochs: Range<u64>,
    batches: Range<u64>,
    /// Physical line numbers; `lines.end == u64::MAX` means no upper bound.
    lines: Range<u64>,
}

/// A column a filter can be answered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeColumn {
    Epoch,
    Batch,
    LineNumber,
}

/// `Some((column, range))` when `expr` is a comparison we answer exactly.
fn filter_range(expr: &Expr) -> Option<(RangeColumn, Range<u64>)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if let (Some(col), Some(v)) = (range_column(left), int_literal(right)) {
                Some((col, op_range(*op, v)?))
            } else if let (Some(v), Some(col)) = (int_literal(left), range_column(right)) {
                Some((col, op_range(op.swap()?, v)?))
            } else {
                None
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            let col = range_column(expr)?;
            let (lo, hi) = (int_literal(low)?, int_literal(high)?);
            Some((col, clamp(lo)..clamp(hi.saturating_add(1))))
        }
        _ => None,
    }
}

fn range_column(expr: &Expr) -> Option<RangeColumn> {
    match expr {
        Expr::Column(c) => match c.name.as_str() {
            crate::EPOCH => Some(RangeColumn::Epoch),
            crate::BATCH => Some(RangeColumn::Batch),
            crate::LINE_NUMBER => Some(RangeColumn::LineNumber),
            _ => None,
        },
        // Casting an unsigned column to a wider or signed integer keeps its order.
        Expr::Cast(c) if c.field.data_type().is_integer() => range_column(&c.expr),
        _ => None,
    }
}

fn int_literal(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int8(Some(x)) => Some(*x as i128),
            ScalarValue::Int16(Some(x)) => Some(*x as i128),
            ScalarValue::Int32(Some(x)) => Some(*x as i128),
            ScalarValue::Int64(Some(x)) => Some(*x as i128),
            ScalarValue::UInt8(Some(x)) => Some(*x as i128),
            ScalarValue::UInt16(Some(x)) => Some(*x as i128),
            ScalarValue::UInt32(Some(x)) => Some(*x as i128),
            ScalarValue::UInt64(Some(x)) => Some(*x as i128),
            _ => None,
        },
        Expr::Cast(c) => int_literal(&c.expr),
        _ => None,
    }
}

fn clamp(v: i128) -> u64 {
    v.clamp(0, u64::MAX as i128) as u64
}

/// The values `x` with `x op v`, as a half-open range of u64.
fn op_range(op: Operator, v: i128) -> Option<Range<u64>> {
    // Clamping makes every range of a negative bound come out right (`= -1` is empty).
    Some(match op {
        Operator::Eq => clamp(v)..clamp(v + 1),
        Operator::Lt => 0..clamp(v),
        Operator::LtEq => 0..clamp(v + 1),
        Operator::Gt => clamp(v + 1)..u64::MAX,
        Operator::GtEq => clamp(v)..u64::MAX,
        _ => return None,
    })
}

fn intersect(a: &Range<u64>, b: &Range<u64>) -> Range<u64> {
    let start = a.start.max(b.start);
    start..a.end.min(b.end).max(start)
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
        let mut range =
            ScanRange { epochs: 0..self.epochs, batches: 0..self.batcher.num_batches(), lines: 0..u64::MAX };
        for (col, r) in filters.iter().filter_map(filter_range) {
            match col {
                RangeColumn::Epoch => range.epochs = intersect(&range.epochs, &r),
                RangeColumn::Batch => range.batches = intersect(&range.batches, &r),
                RangeColumn::LineNumber => range.lines = intersect(&range.lines, &r),
            }
        }
        let columns: Vec<Column> = match projection {
            Some(p) => p.iter().map(|&i| Column::ALL[i]).collect(),
            None => Column::ALL.to_vec(),
        };
        if columns.contains(&Column::Line) && self.batcher.options().line_type == LineType::Utf8 {
            // Fail at planning time with the file's own message rather than mid-stream.
            self.batcher.validate_utf8().map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        let compact = match self.buffers {
            LineBuffers::Auto => !matches!(state.runtime_env().memory_pool.memory_limit(), MemoryLimit::Infinite),
            LineBuffers::ZeroCopy => false,
            LineBuffers::Compact => true,
        };
        let partitions = state.config().target_partitions().max(1);
        Ok(Arc::new(LinesExec::new(self.batcher.clone(), range, columns, limit, compact, partitions)))
    }

    fn statistics(&self) -> Option<Statistics> {
        let rows = self.batcher.lines_per_epoch() * self.epochs;
        Some(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows as usize)))
    }
}

/// What every partition of a scan shares: the file, the narrowed ranges, the columns.
#[derive(Debug)]
struct ScanPlan {
    batcher: Batcher,
    range: ScanRange,
    /// Kept-line indices allowed by the line-number filter.
    kept: Range<u64>,
    columns: Vec<Column>,
    compact: bool,
}

impl ScanPlan {
    fn batches_per_epoch(&self) -> u64 {
        self.range.batches.end - self.range.batches.start
    }

    fn units(&self) -> u64 {
        (self.range.epochs.end - self.range.epochs.start) * self.batches_per_epoch()
    }

    /// The `(epoch, batch)` of unit `u`: units run through the batches of each epoch in turn.
    fn unit(&self, u: u64) -> (u64, u64) {
        let per_epoch = self.batches_per_epoch();
        (self.range.epochs.start + u / per_epoch, self.range.batches.start + u % per_epoch)
    }

    /// Rows of batch `b` of an epoch before any line-number filter.
    fn rows_in_batch(&self, b: u64) -> u64 {
        let size = self.batcher.options().batch_size as u64;
        size.min(self.batcher.num_lines().saturating_sub(b * size))
    }

    fn line_filtered(&self) -> bool {
        self.kept != (0..self.batcher.num_lines())
    }
}

/// The scan of a [`LinesTable`].
#[derive(Debug)]
pub struct LinesExec {
    plan: Arc<ScanPlan>,
    limit: Option<usize>,
    /// Unit indices of each partition: contiguous runs of the serial order.
    splits: Vec<Range<u64>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl LinesExec {
    fn new(
        batcher: Batcher,
        mut range: ScanRange,
        columns: Vec<Column>,
        limit: Option<usize>,
        compact: bool,
        partitions: usize,
    ) -> Self {
        let index = batcher.index();
        let kept_end =
            if range.lines.end == u64::MAX { index.len() } else { index.first_kept_at_or_after_line(range.lines.end) };
        let kept = index.first_kept_at_or_after_line(range.lines.start)..kept_end;
        if !batcher.options().shuffle {
            // File order: kept line k sits in batch k / batch_size, so skip whole batches.
            let size = batcher.options().batch_size as u64;
            range.batches = intersect(&range.batches, &(kept.start / size..kept.end.div_ceil(size)));
        }
        let schema = schema(&columns, batcher.options().line_type);
        let plan = Arc::new(ScanPlan { batcher, range, kept, columns, compact });
        let units = plan.units();
        let parts = (partitions as u64).clamp(1, units.max(1));
        let splits: Vec<Range<u64>> = (0..parts).map(|p| units * p / parts..units * (p + 1) / parts).collect();
        let properties = Arc::new(Self::properties_for(&schema, &plan.columns, splits.len()));
        LinesExec { plan, limit, splits, schema, properties, metrics: Default::default() }
    }

    /// Declares the `epoch, batch` ordering of each partition when both columns are projected.
    fn properties_for(schema: &SchemaRef, columns: &[Column], partitions: usize) -> PlanProperties {
        let position = |c: Column| columns.iter().position(|&x| x == c);
        let eq = match (position(Column::Epoch), position(Column::Batch)) {
            (Some(e), Some(b)) => {
                let sort = |name: &str, i: usize| {
                    PhysicalSortExpr::new_default(Arc::new(datafusion::physical_expr::expressions::Column::new(name, i)))
                };
                EquivalenceProperties::new_with_orderings(schema.clone(), [[sort(crate::EPOCH, e), sort(crate::BATCH, b)]])
            }
            _ => EquivalenceProperties::new(schema.clone()),
        };
        PlanProperties::new(eq, Partitioning::UnknownPartitioning(partitions), EmissionType::Incremental, Boundedness::Bounded)
    }
}

impl DisplayAs for LinesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LinesExec: file={}, epochs={:?}, batches={:?}, kept_lines={:?}, columns={:?}, limit={:?}, compact={}",
            self.plan.batcher.path().display(),
            self.plan.range.epochs,
            self.plan.range.batches,
            self.plan.kept,
            self.plan.columns,
            self.limit,
            self.plan.compact
        )
    }
}

/// Counters a test or `EXPLAIN ANALYZE` reads to see what a scan really did.
struct ScanMetrics {
    baseline: BaselineMetrics,
    /// `(epoch, batch)` units visited.
    batches_read: Count,
    /// Rows whose `line` view was built (0 when `line` is not projected).
    lines_materialized: Count,
}

impl ExecutionPlan for LinesExec {
    fn name(&self) -> &str {
        "LinesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::common::Result<TreeNodeRecursion>,
    ) -> datafusion::common::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> datafusion::common::Result<Arc<Statistics>> {
        let units = match partition {
            Some(p) => self.splits[p].clone(),
            None => 0..self.splits.last().map_or(0, |r| r.end),
        };
        let rows: u64 = units.map(|u| self.plan.rows_in_batch(self.plan.unit(u).1)).sum();
        let exact = !self.plan.line_filtered() && self.limit.is_none();
        let rows = if exact { Precision::Exact(rows as usize) } else { Precision::Inexact(rows as usize) };
        Ok(Arc::new(Statistics::new_unknown(&self.schema).with_num_rows(rows)))
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> datafusion::common::Result<SendableRecordBatchStream> {
        let metrics = ScanMetrics {
            baseline: BaselineMetrics::new(&self.metrics, partition),
            batches_read: MetricBuilder::new(&self.metrics).counter("batches_read", partition),
            lines_materialized: MetricBuilder::new(&self.metrics).counter("lines_materialized", partition),
        };
        let scan = PartitionScan {
            plan: self.plan.clone(),
            units: self.splits[partition].clone(),
            epoch: None,
            rows_left: self.limit.unwrap_or(usize::MAX),
            metrics,
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(scan))))
    }
}

/// The batches of one partition, built on demand.
struct PartitionScan {
    plan: Arc<ScanPlan>,
    units: Range<u64>,
    epoch: Option<Epoch>,
    rows_left: usize,
    metrics: ScanMetrics,
}

impl PartitionScan {
    /// The next non-empty batch of this partition's units, cut by filters and the limit.
    fn next_batch(&mut self) -> crate::Result<Option<Batch>> {
        while self.rows_left > 0 {
            let Some(u) = self.units.next() else { return Ok(None) };
            let (e, b) = self.plan.unit(u);
            if self.epoch.as_ref().is_none_or(|ep| ep.index() != e) {
                self.epoch = Some(self.plan.batcher.epoch(e)?);
            }
            let Some(mut batch) = self.epoch.as_ref().and_then(|ep| ep.batch(b)) else { continue };
            self.metrics.batches_read.add(1);
            if self.plan.line_filtered() {
                let kept = self.plan.kept.clone();
                batch.retain(|k| kept.contains(k));
            }
            batch.truncate(self.rows_left);
            if !batch.is_empty() {
                self.rows_left -= batch.len();
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    fn build(&self, batch: &Batch) -> crate::Result<RecordBatch> {
        let rb = batch.to_record_batch_with(&self.plan.columns)?;
        if self.plan.columns.contains(&Column::Line) {
            self.metrics.lines_materialized.add(batch.len());
            if self.plan.compact {
                return Ok(crate::compact(&rb));
            }
        }
        Ok(rb)
    }
}

impl Iterator for PartitionScan {
    type Item = datafusion::common::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let elapsed = self.metrics.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let out = match self.next_batch() {
            Ok(None) => None,
            Ok(Some(batch)) => Some(self.build(&batch)),
            Err(e) => Some(Err(e)),
        };
        timer.done();
        match out {
            None => {
                self.metrics.baseline.done();
                None
            }
            Some(Ok(rb)) => {
                self.metrics.baseline.record_output(rb.num_rows());
                Some(Ok(rb))
            }
            Some(Err(e)) => Some(Err(DataFusionError::External(Box::new(e)))),
        }
    }
}
