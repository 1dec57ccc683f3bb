//! SQL and IPC benchmark on the corpus of `benches/core.rs`:
//! - `count(*) WHERE line LIKE '%abc%'` through the `lines` table against DataFusion's own
//!   CSV reader reading the same file as one text column;
//! - `SELECT count(*)` (answered from the index);
//! - sort, join and aggregation under a 256 MiB memory pool (the false "Resources
//!   exhausted" trap of zero-copy views);
//! - IPC stream write speed against `cat FILE > /dev/null`.
//!
//! Run: `cargo bench --bench sql` (`MMB_LINES`, `MMB_CORPUS` as in `core`; `MMB_BATCH` the
//! logical batch size, 8,192 by default).

mod support;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use mmap_batcher::{write_ipc_stream, Batcher, LineLayout, LinesTable, Options, Shuffle};
use support::{best_of, corpus, mib, warm};

fn count(batches: &[arrow::array::RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0)
}

async fn time_query(ctx: &SessionContext, sql: &str) -> (f64, Vec<arrow::array::RecordBatch>) {
    let mut best = f64::MAX;
    let mut out = vec![];
    for _ in 0..3 {
        let t = Instant::now();
        out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out)
}

#[tokio::main]
async fn main() {
    let path = corpus();
    let size = std::fs::metadata(&path).unwrap().len();
    warm(&path);
    println!("corpus {} ({:.0} MiB)", path.display(), mib(size));
    let like = "SELECT count(*) FROM lines WHERE line LIKE '%abc%'";

    // `MMB_BATCH=1024`: logical batches the table joins into engine-sized ones.
    let batch_size = std::env::var("MMB_BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(8192);
    println!("logical batches of {batch_size} lines");
    let open = |shuffle| Batcher::open(&path, Options { batch_size, shuffle, seed: Some(1), ignore_leftovers: false, ..Default::default() }).unwrap();
    let shuffled = open(Shuffle::Global);
    let ordered = open(Shuffle::None);
    shuffled.validate_utf8().unwrap();
    ordered.validate_utf8().unwrap();

    let ctx = SessionContext::new();
    ctx.register_table("lines", Arc::new(LinesTable::new(ordered.clone(), 1).unwrap())).unwrap();
    let (t_ordered, out) = time_query(&ctx, like).await;
    let n_ordered = count(&out);
    let ctx_s = SessionContext::new();
    ctx_s.register_table("lines", Arc::new(LinesTable::new(shuffled.clone(), 1).unwrap())).unwrap();
    let (t_shuffled, out) = time_query(&ctx_s, like).await;
    assert_eq!(count(&out), n_ordered);

    // DataFusion's CSV reader, one text column: a delimiter and quote that never occur.
    let csv = SessionContext::new();
    let schema = Schema::new(vec![Field::new("line", DataType::Utf8, true)]);
    let options = CsvReadOptions::new().has_header(false).delimiter(0x01).quote(0x02).schema(&schema).file_extension(".txt");
    csv.register_csv("lines", path.to_str().unwrap(), options).await.unwrap();
    let (t_csv, out) = time_query(&csv, like).await;
    println!(
        "LIKE '%abc%' count: lines table {:.3} s (file order), {:.3} s (shuffled)   DataFusion CSV reader {:.3} s   \
         ratio CSV/ours {:.2}x (file order), {:.2}x (shuffled)   [{} vs {} matches; CSV also counts comment lines]",
        t_ordered,
        t_shuffled,
        t_csv,
        t_csv / t_ordered,
        t_csv / t_shuffled,
        n_ordered,
        count(&out)
    );

    let (t_count, out) = time_query(&ctx_s, "SELECT count(*) FROM lines").await;
    println!("SELECT count(*): {:.6} s ({} rows, from the index's exact statistics)", t_count, count(&out));

    // Bounded pool: sort, join, aggregate with the default (pool-aware) line buffers.
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(256 << 20, 1.0).build_arc().unwrap();
    let bounded = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    bounded.register_table("lines", Arc::new(LinesTable::new(shuffled.clone(), 1).unwrap())).unwrap();
    for q in [
        "SELECT line_number, line FROM lines ORDER BY length(line) DESC, line_number LIMIT 10",
        "SELECT count(*) FROM (SELECT line FROM lines WHERE line LIKE '%abc%' ORDER BY line)",
        "SELECT count(*) FROM lines a JOIN lines b ON a.line_number = b.line_number + 1 WHERE a.line LIKE '%xyz%'",
        "SELECT substr(line, 1, 1) AS p, count(*), max(line) FROM lines GROUP BY p",
    ] {
        let t = Instant::now();
        let result = bounded.sql(q).await.unwrap().collect().await;
        println!("256 MiB pool: {:.3} s  {}  {}", t.elapsed().as_secs_f64(), if result.is_ok() { "ok    " } else { "FAILED" }, q);
        if let Err(e) = result {
            println!("    {e}");
        }
    }

    // IPC write against cat.
    let (t_cat, _) = best_of(3, || std::process::Command::new("sh").arg("-c").arg(format!("cat '{}' > /dev/null", path.display())).status().unwrap());
    for ipc_type in [LineLayout::Large, LineLayout::View] {
        let (t_ipc, written) = best_of(3, || {
            let mut sink = CountingSink(0);
            write_ipc_stream(&shuffled, 1, mmap_batcher::Shard::WHOLE, &shuffled.default_columns(), ipc_type, &mut sink).unwrap();
            sink.0
        });
        let epoch = shuffled.epoch(0).unwrap();
        let line_bytes: u64 = epoch.batches().map(|b| b.locate().unwrap().raw_lines().map(|l| l.len() as u64).sum::<u64>()).sum();
        println!(
            "IPC {:?}: {:.3} s = {:.0} MB/s of stream ({:.2}x the line bytes); cat > /dev/null {:.3} s = {:.0} MB/s; ratio ipc/cat time {:.2}x",
            ipc_type,
            t_ipc.as_secs_f64(),
            written as f64 / 1e6 / t_ipc.as_secs_f64(),
            written as f64 / line_bytes as f64,
            t_cat.as_secs_f64(),
            size as f64 / 1e6 / t_cat.as_secs_f64(),
            t_ipc.as_secs_f64() / t_cat.as_secs_f64()
        );
    }
}

/// A writer that only counts, so the measurement is the stream's production, not a disk.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
