//! The DataFusion table, through real queries over real files.
#![cfg(all(feature = "datafusion", feature = "synthetic"))]

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use common::{file_with, reference_lines, strip_terminator};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use mmap_batcher::{Batcher, IndexCache, LineBuffers, LinesTable, Options, Shuffle};

fn corpus_text(lines: u64) -> Vec<u8> {
    let mut text = Vec::new();
    mmap_batcher::synthetic::write_corpus(&mut text, lines, 7).unwrap();
    text
}

fn session(batcher: &Batcher, epochs: u64, partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    ctx.register_table("lines", Arc::new(LinesTable::new(batcher.clone(), epochs).unwrap())).unwrap();
    ctx
}

async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, Arc<dyn ExecutionPlan>) {
    let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await.unwrap();
    (batches, plan)
}

/// A scan counter of the plan's `LinesExec`, or `None` when the plan has no scan at all.
fn scan_metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> Option<usize> {
    if plan.name() == "LinesExec" {
        return Some(plan.metrics().unwrap().sum_by_name(name).map_or(0, |v| v.as_usize()));
    }
    plan.children().into_iter().find_map(|c| scan_metric(c, name))
}

fn single_i64(batches: &[RecordBatch]) -> i64 {
    let col = batches[0].column(0);
    match col.data_type() {
        arrow::datatypes::DataType::Int64 => col.as_primitive::<Int64Type>().value(0),
        arrow::datatypes::DataType::UInt64 => col.as_primitive::<UInt64Type>().value(0) as i64,
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn counts_filters_and_string_functions_match_an_independent_computation() {
    let text = corpus_text(20_000);
    let f = file_with(&text);
    let b = Batcher::open(
        f.path(),
        Options { batch_size: 64, ignore_leftovers: false, seed: Some(2), index_cache: IndexCache::Off, ..Default::default() },
    )
    .unwrap();
    let ctx = session(&b, 3, 2);
    let reference = reference_lines(&text, true, Some(b'#'));
    let lines: Vec<&str> = reference.iter().map(|r| std::str::from_utf8(strip_terminator(r.bytes)).unwrap()).collect();
    let n = lines.len() as i64;

    let (out, _) = run(&ctx, "SELECT count(*) FROM lines").await;
    assert_eq!(single_i64(&out), 3 * n);

    let like = lines.iter().filter(|l| l.contains("ab")).count() as i64;
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE line LIKE '%ab%'").await;
    assert_eq!(single_i64(&out), 3 * like);

    let chars: i64 = lines.iter().map(|l| l.chars().count() as i64).sum();
    let (out, _) = run(&ctx, "SELECT sum(length(line)) FROM lines WHERE epoch = 1").await;
    assert_eq!(single_i64(&out), chars);

    let starts_q = lines.iter().filter(|l| l.starts_with('q')).count() as i64;
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE regexp_like(line, '^q') AND epoch = 0").await;
    assert_eq!(single_i64(&out), starts_q);

    let first_words = lines.iter().filter(|l| l.split(' ').next().unwrap().len() == 5).count() as i64;
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE length(split_part(line, ' ', 1)) = 5 AND epoch = 2").await;
    assert_eq!(single_i64(&out), first_words);

    // substr and lower on one known line, found by its line number.
    let r = &reference[100];
    let (out, _) =
        run(&ctx, &format!("SELECT substr(line, 2, 4), lower(upper(line)) FROM lines WHERE line_number = {} AND epoch = 0", r.number)).await;
    let line = lines[100];
    assert_eq!(out[0].column(0).as_string_view().value(0), line.chars().skip(1).take(4).collect::<String>());
    assert_eq!(out[0].column(1).as_string_view().value(0), line.to_lowercase());
}

#[tokio::test]
async fn pushdown_skips_columns_batches_and_lines() {
    let text = corpus_text(5_000);
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 100, seed: Some(9), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let per_epoch = b.num_batches() as usize;
    let ctx = session(&b, 4, 2);

    // No `line`: the map is never read for views.
    let (out, plan) = run(&ctx, "SELECT max(line_number) FROM lines WHERE byte_offset > 10").await;
    assert!(single_i64(&out) > 0);
    assert_eq!(scan_metric(&plan, "lines_materialized"), Some(0));
    assert_eq!(scan_metric(&plan, "batches_read"), Some(4 * per_epoch));

    // count(*) comes from exact statistics: no scan runs at all, or one that reads nothing.
    let (out, plan) = run(&ctx, "SELECT count(*) FROM lines").await;
    assert_eq!(single_i64(&out) as u64, 4 * b.lines_per_epoch());
    assert!(scan_metric(&plan, "batches_read").unwrap_or(0) == 0);

    // epoch/batch filters visit only the batches asked for.
    let (out, plan) = run(&ctx, "SELECT count(line) FROM lines WHERE epoch = 2 AND batch BETWEEN 3 AND 5").await;
    assert_eq!(single_i64(&out), 300);
    assert_eq!(scan_metric(&plan, "batches_read"), Some(3));
    assert_eq!(scan_metric(&plan, "lines_materialized"), Some(300));

    // A line-number range builds views only for lines inside it.
    let expected: usize =
        b.epoch(1).unwrap().batches().map(|x| x.locate().unwrap().line_numbers().filter(|n| (1000..2000).contains(n)).count()).sum();
    let (out, plan) = run(&ctx, "SELECT count(line) FROM lines WHERE line_number >= 1000 AND line_number < 2000 AND epoch = 1").await;
    assert_eq!(single_i64(&out) as usize, expected);
    assert_eq!(scan_metric(&plan, "lines_materialized"), Some(expected));

    // LIMIT stops the scan early.
    let (out, plan) = run(&ctx, "SELECT line FROM lines LIMIT 150").await;
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 150);
    assert!(scan_metric(&plan, "batches_read").unwrap() <= 4, "{:?}", scan_metric(&plan, "batches_read"));
}

#[tokio::test]
async fn unshuffled_line_number_ranges_skip_whole_batches() {
    let text = corpus_text(5_000);
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 100, shuffle: Shuffle::None, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let ctx = session(&b, 1, 2);
    let (_, plan) = run(&ctx, "SELECT line FROM lines WHERE line_number BETWEEN 2000 AND 2100").await;
    assert!(scan_metric(&plan, "batches_read").unwrap() <= 3);
}

/// `ORDER BY epoch, batch` restores the serial order exactly, across partitions.
#[tokio::test]
async fn ordering_contract_restores_serial_order() {
    let text = corpus_text(3_000);
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 50, seed: Some(4), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let ctx = session(&b, 2, 2);
    let (out, _) = run(&ctx, "SELECT line_number, epoch, batch FROM lines ORDER BY epoch, batch").await;
    let got: Vec<u64> = out.iter().flat_map(|rb| rb.column(0).as_primitive::<UInt64Type>().values().to_vec()).collect();
    let serial: Vec<u64> = b
        .epochs(2)
        .flat_map(|e| e.unwrap().batches().flat_map(|x| x.locate().unwrap().line_numbers().collect::<Vec<_>>()).collect::<Vec<_>>())
        .collect();
    assert_eq!(got, serial);
}

/// Under a bounded pool, zero-copy batches weigh the whole map and a sort fails with a
/// false "Resources exhausted"; the default (`Auto`) compacts and runs sort, join and
/// aggregation with the same results as an unbounded session.
#[tokio::test]
async fn bounded_memory_pool_runs_sorts_joins_and_aggregates() {
    let text = corpus_text(400_000); // ~40 MB: the map window alone exceeds the 32 MiB pool
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 1024, seed: Some(5), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let bounded = |buffers: LineBuffers| {
        let runtime = RuntimeEnvBuilder::new().with_memory_limit(32 << 20, 1.0).build_arc().unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(2), runtime);
        ctx.register_table("lines", Arc::new(LinesTable::new(b.clone(), 1).unwrap().with_line_buffers(buffers))).unwrap();
        ctx
    };
    let queries = [
        "SELECT line_number, line FROM lines WHERE line LIKE '%abc%' ORDER BY line, line_number",
        "SELECT a.line_number, b.line FROM lines a JOIN lines b ON a.line_number = b.line_number + 1 \
         WHERE a.line LIKE '%xyz%' ORDER BY a.line_number",
        "SELECT substr(line, 1, 2) AS p, count(*) AS n, max(line) AS m FROM lines GROUP BY p ORDER BY p",
        // A top-k sort over every row: it keeps whole input batches alive.
        "SELECT line_number, line FROM lines ORDER BY length(line) DESC, line_number LIMIT 5",
    ];
    let unbounded = session(&b, 1, 2);
    let auto = bounded(LineBuffers::Auto);
    for q in queries {
        let (want, _) = run(&unbounded, q).await;
        let got = auto.sql(q).await.unwrap().collect().await.unwrap_or_else(|e| panic!("{q}: {e}"));
        let fmt = |b: &[RecordBatch]| arrow::util::pretty::pretty_format_batches(b).unwrap().to_string();
        assert_eq!(fmt(&got), fmt(&want), "{q}");
        assert!(want.iter().map(RecordBatch::num_rows).sum::<usize>() > 0, "{q} returned nothing");
    }
    // The trap is real: forced zero-copy under the same pool fails the sort over all rows.
    let zero = bounded(LineBuffers::ZeroCopy);
    let err = zero.sql(queries[3]).await.unwrap().collect().await.unwrap_err();
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
}

#[tokio::test]
async fn invalid_utf8_is_a_planning_error_naming_the_file_and_binary_mode_serves_it() {
    let f = file_with(b"fine\nbro\xffken\n");
    let b = Batcher::open(f.path(), Options { batch_size: 1, shuffle: Shuffle::None, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let ctx = session(&b, 1, 1);
    let err = ctx.sql("SELECT line FROM lines").await.unwrap().collect().await.unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains(&f.path().display().to_string()), "{err}");
    // Columns other than `line` still work on such a file.
    let (out, _) = run(&ctx, "SELECT count(line_number) FROM lines").await;
    assert_eq!(single_i64(&out), 2);
    let bin = Batcher::open(f.path(), Options { line_type: mmap_batcher::LineType::Binary, ..b.options().clone() }).unwrap();
    let (out, _) = run(&session(&bin, 1, 1), "SELECT line FROM lines WHERE line_number = 2").await;
    assert_eq!(out[0].column(0).as_binary_view().value(0), b"bro\xffken");
}

#[test]
fn ipc_stream_round_trips_compactly() {
    use mmap_batcher::{write_ipc_stream, LineLayout};
    let text = corpus_text(20_000);
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 1024, seed: Some(3), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let line_bytes: usize = b.epoch(0).unwrap().batches().flat_map(|x| x.locate().unwrap().lines(false).map(<[u8]>::len).collect::<Vec<_>>()).sum();
    for ipc_type in [LineLayout::Large, LineLayout::View] {
        let mut bytes = Vec::new();
        let summary = write_ipc_stream(&b, 1, mmap_batcher::Shard::WHOLE, &b.default_columns(), ipc_type, &mut bytes).unwrap();
        assert_eq!(summary.rows, b.lines_per_epoch());
        let ratio = bytes.len() as f64 / line_bytes as f64;
        assert!(ratio < 1.5, "{ipc_type:?}: stream is {ratio:.2}x the line bytes");
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let epoch = b.epoch(0).unwrap();
        for (rb, batch) in reader.zip(epoch.batches()) {
            let rb = rb.unwrap();
            let col = rb.column(0);
            let got: Vec<&str> = match ipc_type {
                LineLayout::Large => col.as_string::<i64>().iter().map(Option::unwrap).collect(),
                LineLayout::View => col.as_string_view().iter().map(Option::unwrap).collect(),
            };
            let located = batch.locate().unwrap();
            let want: Vec<&str> = located.lines(false).map(|l| std::str::from_utf8(l).unwrap()).collect();
            assert_eq!(got, want);
            assert_eq!(rb.column(3).as_primitive::<UInt64Type>().value(0), 0);
            assert_eq!(rb.column(4).as_primitive::<UInt64Type>().value(0), batch.number());
        }
    }
}

/// True when the plan filters rows above the scan (the scan did not answer the filter).
fn filters_above_scan(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.name() == "FilterExec" || plan.children().into_iter().any(filters_above_scan)
}

#[tokio::test]
async fn source_and_file_lists_are_answered_by_the_scan() {
    let files: Vec<_> = [(b'a', 40), (b'b', 30), (b'c', 20)]
        .iter()
        .map(|&(c, n)| file_with(&(0..n).flat_map(|i| format!("{} line {i}\n", c as char).into_bytes()).collect::<Vec<u8>>()))
        .collect();
    let sources: Vec<mmap_batcher::Source> = ["a", "b", "c"]
        .iter()
        .zip(&files)
        .map(|(name, f)| mmap_batcher::Source { name: name.to_string(), paths: vec![f.path().to_path_buf()], weight: None })
        .collect();
    let options = Options { batch_size: 9, ignore_leftovers: false, seed: Some(4), index_cache: IndexCache::Off, ..Default::default() };
    let b = Batcher::open_sources(&sources, options).unwrap();
    let ctx = session(&b, 2, 2);
    let (out, plan) = run(&ctx, "SELECT count(line) FROM lines WHERE source IN ('a', 'c')").await;
    assert_eq!(single_i64(&out), 2 * 60);
    assert!(!filters_above_scan(&plan));
    assert_eq!(scan_metric(&plan, "lines_materialized"), Some(2 * 60));
    let paths = format!("'{}', '{}'", files[1].path().display(), files[2].path().display());
    let (out, plan) = run(&ctx, &format!("SELECT count(line) FROM lines WHERE file IN ({paths}) AND epoch = 1")).await;
    assert_eq!(single_i64(&out), 50);
    assert!(!filters_above_scan(&plan));
    // A list with a non-literal is left to DataFusion, and still right.
    let (out, plan) = run(&ctx, "SELECT count(*) FROM lines WHERE source IN ('a', substr(line, 1, 1))").await;
    assert_eq!(single_i64(&out), 2 * 90);
    assert!(filters_above_scan(&plan));
}

#[tokio::test]
async fn json_functions_and_skipped_records_in_sql() {
    let mut text = Vec::new();
    for i in 0..500u64 {
        if i % 50 == 7 {
            text.extend_from_slice(b"{\"cut\": \n");
        } else {
            let lang = ["en", "fr"][(i % 2) as usize];
            text.extend_from_slice(
                format!("{{\"id\": {i}, \"text\": \"doc {i}\", \"meta\": {{\"lang\": \"{lang}\", \"tags\": [\"t{}\"]}}}}\n", i % 3).as_bytes(),
            );
        }
    }
    let f = file_with(&text);
    let options = Options {
        batch_size: 64,
        ignore_leftovers: false,
        seed: Some(1),
        index_cache: IndexCache::Off,
        field: Some("text".into()),
        fields: vec!["meta.lang".into()],
        on_bad_record: mmap_batcher::RecordPolicy::Skip,
        ..Default::default()
    };
    let b = Batcher::open(f.path(), options).unwrap();
    let mut ctx = session(&b, 1, 2);
    mmap_batcher::register_json_functions(&mut ctx).unwrap();
    // count(*) reads the records: a skipped one is not counted, and no exact statistic says otherwise.
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines").await;
    assert_eq!(single_i64(&out), 490);
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE \"meta.lang\" = 'fr' AND line LIKE 'doc %'").await;
    assert_eq!(single_i64(&out), (0..500).filter(|i| i % 50 != 7 && i % 2 == 1).count() as i64);
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines LIMIT 1").await;
    assert_eq!(single_i64(&out), 490);
    let (out, _) = run(&ctx, "SELECT line FROM lines LIMIT 100").await;
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);

    // The functions over raw lines: nested keys, array positions, numbers, and NULL for a bad line.
    let raw = Batcher::open(
        f.path(),
        Options { batch_size: 64, ignore_leftovers: false, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() },
    )
    .unwrap();
    let mut ctx = session(&raw, 1, 2);
    mmap_batcher::register_json_functions(&mut ctx).unwrap();
    let (out, _) = run(&ctx, "SELECT sum(json_get_int(line, 'id')) FROM lines WHERE json_get_str(line, 'meta', 'tags', 0) = 't1'").await;
    assert_eq!(single_i64(&out), (0..500i64).filter(|i| i % 50 != 7 && i % 3 == 1).sum::<i64>());
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE json_get_json(line, 'meta') IS NULL").await;
    assert_eq!(single_i64(&out), 10);
    let (out, _) = run(&ctx, "SELECT count(*) FROM lines WHERE (line->'meta'->>'lang') = 'en' AND json_contains(line, 'text')").await;
    assert_eq!(single_i64(&out), (0..500).filter(|i| i % 50 != 7 && i % 2 == 0).count() as i64);
}
