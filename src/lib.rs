//! # mmap-batcher
//!
//! Serve a huge line-oriented file (a text corpus, JSONL, CSV, logs) as shuffled batches
//! of lines, epoch after epoch, without loading it into memory.
//!
//! The file is memory-mapped and indexed once (16 bytes per kept line). Each epoch's order
//! is a pure function of `(seed, epoch, line count)` ([`EpochOrder`]), and each batch is an
//! Arrow [`RecordBatch`](arrow::array::RecordBatch) whose `line` column is a
//! `Utf8View`/`BinaryView` array pointing into the map: line bytes are never copied.
//!
//! ```
//! # use std::io::Write;
//! # let mut f = tempfile::NamedTempFile::new().unwrap();
//! # for i in 0..10 { writeln!(f, "this is line number {i}").unwrap(); }
//! use mmap_batcher::{Batcher, Options};
//! let batcher = Batcher::open(f.path(), Options { batch_size: 4, seed: Some(7), ..Default::default() })?;
//! let epoch = batcher.epoch(0)?;
//! let batch = epoch.batch(0).unwrap().to_record_batch()?;
//! assert_eq!(batch.num_rows(), 4);
//! assert_eq!(batch.schema().field(0).name(), "line");
//! # Ok::<(), mmap_batcher::Error>(())
//! ```

mod arrow_batch;
mod batcher;
#[cfg(feature = "datafusion")]
mod datafusion_table;
pub mod corpus;
mod epoch_order;
mod error;
mod ipc;
mod line_index;
mod mapped_file;
mod newline_scan;
mod options;
mod record_store;
mod utf8_check;

pub use arrow_batch::{compact, schema, Column, BATCH, BYTE_OFFSET, EPOCH, LINE, LINE_NUMBER};
pub use batcher::{Batch, Batcher, Epoch, LocatedLines};
#[cfg(feature = "datafusion")]
pub use datafusion_table::{LineBuffers, LinesExec, LinesTable};
pub use epoch_order::EpochOrder;
pub use error::{Error, Result};
pub use ipc::{ipc_schema, write_ipc_stream, IpcLineType, IpcSummary};
pub use line_index::{LineIndex, LineRecord, MAX_LINE_LEN};
pub use options::{LineType, Options};
