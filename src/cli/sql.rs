//! `mmap-batcher sql`: a query over the epochs of the files, streamed to the output.
//! Read-only unless `--allow-write`; the `table` format is bounded (rows and cell width),
//! as DuckDB's and DataFusion's own shells are.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use crate::LinesTable;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::ValueEnum;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use futures::StreamExt;

use crate::cli::args::{open_inputs, FileArgs};
use crate::cli::error::{CliError, CliResult};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table of at most --max-rows rows, cells cut at --max-width characters.
    Table,
    /// A header row, then one row per result row (every row).
    Csv,
    /// One JSON object per result row (every row).
    Json,
}

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher sql [OPTIONS] <FILE>... <QUERY>\n       mmap-batcher sql [OPTIONS] --source NAME=PATH... <QUERY>")]
#[command(after_help = "Read-only: DDL (CREATE …), DML (INSERT, COPY … TO) and statements (SET …) are refused \
unless --allow-write. Every line is served by default (the last partial batch of each epoch is kept).")]
pub struct Args {
    /// The line files (paths or globs; - for standard input), then the query, e.g.
    /// "SELECT count(*) FROM lines WHERE line LIKE '%abc%'" (only the query with --source).
    #[arg(required = true, num_args = 1.., value_names = ["FILE", "QUERY"])]
    args: Vec<String>,
    #[command(flatten)]
    files: FileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Rows the table format prints (the rest are counted).
    #[arg(long, default_value_t = 40)]
    max_rows: usize,
    /// Characters a table cell prints (longer values are cut with …).
    #[arg(long, default_value_t = 80)]
    max_width: usize,
    /// Bound DataFusion's memory pool to this many MiB (sorts and joins spill or fail past it).
    #[arg(long)]
    memory_limit_mib: Option<usize>,
    /// Allow DDL, DML (COPY … TO, INSERT) and statements.
    #[arg(long)]
    allow_write: bool,
}

pub fn run(a: Args) -> CliResult {
    let (query, inputs) = a.args.split_last().ok_or_else(|| CliError::Usage("a file and a query are needed".into()))?;
    if inputs.is_empty() && a.files.mixture.sources.is_empty() {
        return Err(CliError::Usage("a file (or --source NAME=PATH) and a query are needed".into()));
    }
    let epochs = a.files.epochs;
    if a.files.shard.is_some() || a.files.even_shards {
        return Err(CliError::Usage(
            "sql reads every batch of each epoch: --shard and --even-shards are for batches and ipc (filter on `batch` instead)".into(),
        ));
    }
    let batcher = open_inputs(inputs, &a.files.mixture, a.files.options(true)?)?;
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(mib) = a.memory_limit_mib {
        runtime = runtime.with_memory_limit(mib << 20, 1.0);
    }
    let mut ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime.build_arc()?);
    crate::register_json_functions(&mut ctx)?;
    ctx.register_table("lines", Arc::new(LinesTable::new(batcher, epochs)?))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    rt.block_on(async {
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(a.allow_write)
            .with_allow_dml(a.allow_write)
            .with_allow_statements(a.allow_write);
        // One statement only: a second one would run unchecked by the options above.
        if DFParser::parse_sql(query).map(|s| s.len()).unwrap_or(1) > 1 {
            return Err(CliError::Usage("one SQL statement at a time".into()));
        }
        let stream = ctx.sql_with_options(query, options).await?.execute_stream().await?;
        match a.format {
            Format::Table => write_table(stream, out, a.max_rows, a.max_width).await,
            Format::Csv => write_csv(stream, out).await,
            Format::Json => write_json(stream, out).await,
        }
    })
}

async fn write_csv(mut stream: SendableRecordBatchStream, out: impl Write) -> CliResult {
    let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(out);
    let mut wrote = false;
    while let Some(b) = stream.next().await {
        w.write(&b?)?;
        wrote = true;
    }
    if !wrote {
        let schema = stream.schema();
        w.write(&arrow::array::RecordBatch::new_empty(schema))?;
    }
    w.into_inner().flush()?;
    Ok(())
}

async fn write_json(mut stream: SendableRecordBatchStream, out: impl Write) -> CliResult {
    let mut w = arrow::json::LineDelimitedWriter::new(out);
    while let Some(b) = stream.next().await {
        w.write(&b?)?;
    }
    w.finish()?;
    w.into_inner().flush()?;
    Ok(())
}

/// Keeps the first `max_rows` rows as strings and counts the rest: memory is bounded by
/// the printed part, not by the result.
async fn write_table(mut stream: SendableRecordBatchStream, mut out: impl Write, max_rows: usize, max_width: usize) -> CliResult {
    let schema = stream.schema();
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut total = 0usize;
    let mut cut_cells = false;
    let options = FormatOptions::default().with_null("NULL");
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let take = max_rows.saturating_sub(rows.len()).min(batch.num_rows());
        if take > 0 {
            let formatters = batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
            for r in 0..take {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| {
                            let s = f.value(r).to_string().replace(['\n', '\r', '\t'], " ");
                            if s.chars().count() > max_width {
                                cut_cells = true;
                                s.chars().take(max_width.saturating_sub(1)).chain(['…']).collect()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        total += batch.num_rows();
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0)).collect();
    let rule: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+";
    let line = |cells: &[String]| -> String {
        cells.iter().zip(&widths).map(|(c, w)| format!("| {c}{} ", " ".repeat(w - c.chars().count()))).collect::<String>() + "|"
    };
    writeln!(out, "{rule}\n{}\n{rule}", line(&header))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    writeln!(out, "{rule}")?;
    if total > rows.len() || cut_cells {
        let mut note = Vec::new();
        if total > rows.len() {
            note.push(format!("{} of {total} rows shown (--max-rows, or --format csv|json for all)", rows.len()));
        }
        if cut_cells {
            note.push(format!("cells cut at {max_width} characters (--max-width)"));
        }
        writeln!(out, "{}", note.join("; "))?;
    }
    out.flush()?;
    Ok(())
}
