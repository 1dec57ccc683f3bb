//! The scan: `(epoch, batch)` units cut into contiguous runs, one per partition, each read
//! through a [`BatchStream`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream};

use crate::arrow::{schema, Column};
use crate::batcher::Batcher;
use crate::error::Result;
use crate::plan::Units;
use crate::select::{RowFilter, Selection};
use crate::stream::{BatchStream, StreamOptions};

/// What a scan was asked for.
pub(crate) struct ScanRequest {
    pub batcher: Batcher,
    pub epochs: u64,
    pub filter: RowFilter,
    pub columns: Vec<Column>,
    pub limit: Option<usize>,
    pub compact: bool,
    pub partitions: usize,
}

/// What every partition of a scan shares.
#[derive(Debug)]
struct ScanPlan {
    batcher: Batcher,
    units: Units,
    /// Line ids the filters allow (sorted, disjoint); `None`: every line.
    allowed: Option<Arc<[Range<u64>]>>,
    columns: Vec<Column>,
    compact: bool,
}

impl ScanPlan {
    /// Rows of the batches `batches` of one epoch, before line filters.
    fn rows_in_batches(&self, batches: Range<u64>) -> u64 {
        let b = &self.batcher;
        let size = b.options().batch_size as u64;
        let end = batches.end.min(b.num_batches());
        if batches.start >= end {
            return 0;
        }
        (end - batches.start - 1) * size + b.batch_len(end - 1)
    }

    /// Rows of units `units`, before line filters, in O(1).
    fn rows_in_units(&self, units: Range<u64>) -> u64 {
        if units.start >= units.end {
            return 0;
        }
        let (e0, b0) = self.units.get(units.start);
        let (e1, b1) = self.units.get(units.end - 1);
        if e0 == e1 {
            return self.rows_in_batches(b0..b1 + 1);
        }
        // A partial first epoch, full epochs, a partial last epoch.
        let full = e1 - e0 - 1;
        self.rows_in_batches(b0..self.units.batches.end)
            .saturating_add(full.saturating_mul(self.rows_in_batches(self.units.batches.clone())))
            .saturating_add(self.rows_in_batches(self.units.batches.start..b1 + 1))
    }
}

/// The scan of a [`LinesTable`](super::LinesTable).
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
    pub(crate) fn new(req: ScanRequest) -> Result<Self> {
        let b = &req.batcher;
        let Selection { units, lines: allowed } = req.filter.select(b, req.epochs)?;
        let schema = schema(&req.columns, b.options());
        let splits = units.split(req.partitions);
        let properties = Arc::new(Self::properties_for(&schema, &req.columns, splits.len()));
        let plan = Arc::new(ScanPlan { batcher: req.batcher, units, allowed, columns: req.columns, compact: req.compact });
        Ok(LinesExec { plan, limit: req.limit, splits, schema, properties, metrics: Default::default() })
    }

    /// Declares the `epoch, batch` ordering of each partition when both columns are projected.
    fn properties_for(schema: &SchemaRef, columns: &[Column], partitions: usize) -> PlanProperties {
        let position = |c: Column| columns.iter().position(|&x| x == c);
        let eq = match (position(Column::Epoch), position(Column::Batch)) {
            (Some(e), Some(b)) => {
                let sort =
                    |name: &str, i: usize| PhysicalSortExpr::new_default(Arc::new(datafusion::physical_expr::expressions::Column::new(name, i)));
                EquivalenceProperties::new_with_orderings(schema.clone(), [[sort(Column::Epoch.name(&[]), e), sort(Column::Batch.name(&[]), b)]])
            }
            _ => EquivalenceProperties::new(schema.clone()),
        };
        PlanProperties::new(eq, Partitioning::UnknownPartitioning(partitions), EmissionType::Incremental, Boundedness::Bounded)
    }
}

impl DisplayAs for LinesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let p = &self.plan;
        write!(
            f,
            "LinesExec: files={}, epochs={:?}, batches={:?}, line_filter={}, columns={:?}, limit={:?}, compact={}",
            p.batcher.num_files(),
            p.units.epochs,
            p.units.batches,
            p.allowed.as_ref().map_or_else(|| "none".to_string(), |r| format!("{} ranges", r.len())),
            p.columns.iter().map(|c| c.name(&p.batcher.options().fields)).collect::<Vec<_>>(),
            self.limit,
            p.compact
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
            Some(p) => self.splits.get(p).cloned().unwrap_or(0..0),
            None => 0..self.splits.last().map_or(0, |r| r.end),
        };
        let rows = self.plan.rows_in_units(units);
        let exact = self.plan.allowed.is_none() && self.limit.is_none() && self.plan.batcher.row_counts_exact();
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        let rows = if exact { Precision::Exact(rows) } else { Precision::Inexact(rows) };
        Ok(Arc::new(Statistics::new_unknown(&self.schema).with_num_rows(rows)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> datafusion::common::Result<SendableRecordBatchStream> {
        let metrics = ScanMetrics {
            baseline: BaselineMetrics::new(&self.metrics, partition),
            batches_read: MetricBuilder::new(&self.metrics).counter("batches_read", partition),
            lines_materialized: MetricBuilder::new(&self.metrics).counter("lines_materialized", partition),
        };
        let split = self.splits.get(partition).cloned().unwrap_or(0..0);
        let units = self.plan.units.clone();
        let reads_lines = self.plan.batcher.reads_lines(&self.plan.columns);
        let options = StreamOptions {
            allowed: self.plan.allowed.clone(),
            read_lines: reads_lines,
            builders: Some(partition_builders(self.plan.batcher.options().build_threads(), self.splits.len())),
            columns: Some(self.plan.columns.as_slice().into()),
        };
        let stream = BatchStream::with_options(&self.plan.batcher, split.map(move |u| units.get(u)), options);
        let target_rows = context.session_config().batch_size().max(1);
        let scan = PartitionScan { plan: self.plan.clone(), stream, rows_left: self.limit.unwrap_or(usize::MAX), target_rows, metrics };
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(scan))))
    }
}

/// Builder threads of each partition's stream, when `partitions` run at once on `threads`
/// threads: the partitions' own threads build their batches (in the page cache; from disk
/// each stream keeps one builder), and the threads left over are shared out. On 2 cores and
/// 2 partitions none: a builder per partition made 4 threads take turns on 2 cores and moved
/// each batch's lines to the other core's cache (datafusion-python over `table()` 0.98–1.11 s
/// with one, 0.72–0.84 s without: the benchmarks doc, "Engines").
fn partition_builders(threads: usize, partitions: usize) -> usize {
    threads.saturating_sub(partitions) / partitions.max(1)
}

/// The batches of one partition, built on demand.
struct PartitionScan {
    plan: Arc<ScanPlan>,
    stream: BatchStream,
    rows_left: usize,
    /// Rows per output batch (the session's `batch_size`): logical batches are joined
    /// until they hold this many, since an engine pays per batch.
    target_rows: usize,
    metrics: ScanMetrics,
}

impl PartitionScan {
    /// The next logical batch of this partition, cut by filters and the limit.
    fn next_logical(&mut self) -> Result<Option<RecordBatch>> {
        while self.rows_left > 0 {
            let Some(ready) = self.stream.next() else { return Ok(None) };
            let ready = ready?;
            self.metrics.batches_read.add(1);
            if ready.located.is_empty() {
                continue;
            }
            let rb = ready.to_record_batch(&self.plan.columns)?;
            let rows = rb.num_rows().min(self.rows_left);
            let rb = if rows < rb.num_rows() { rb.slice(0, rows) } else { rb };
            self.rows_left -= rows;
            if self.plan.columns.contains(&Column::Line) {
                self.metrics.lines_materialized.add(rows);
            }
            return Ok(Some(rb));
        }
        Ok(None)
    }

    /// The next output batch: logical batches joined up to `target_rows` (zero-copy views;
    /// the `batch` column still names each row's own), compacted if the plan asks.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut parts = Vec::new();
        let mut rows = 0;
        while rows < self.target_rows {
            let Some(rb) = self.next_logical()? else { break };
            rows += rb.num_rows();
            parts.push(rb);
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let rb = crate::coalesce(&parts).map_err(|source| crate::Error::Arrow { context: "joining batches".into(), source })?;
        if self.plan.compact && self.plan.columns.contains(&Column::Line) {
            return crate::read_guarded(|| crate::compact(&rb)).map(Some);
        }
        Ok(Some(rb))
    }
}

impl Iterator for PartitionScan {
    type Item = datafusion::common::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let elapsed = self.metrics.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let out = self.next_batch();
        timer.done();
        match out {
            Ok(None) => {
                self.metrics.baseline.done();
                None
            }
            Ok(Some(rb)) => {
                self.metrics.baseline.record_output(rb.num_rows());
                Some(Ok(rb))
            }
            Err(e) => Some(Err(DataFusionError::External(Box::new(e)))),
        }
    }
}
