//! # mmap-batcher
//!
//! Serve huge line-oriented files (text corpora, JSONL, CSV, logs) as seeded, shuffled
//! batches of lines, epoch after epoch, without loading them into memory.
//!
//! Data flows one way: **file → index → order → plan → batch → adapter**.
//! - [`source`](SourceFile): the files, mapped read-only and checked against the identity
//!   they had when indexed; pipes and special files are spooled first.
//! - [`index`](LineIndex): 8 bytes per kept line, built once per file in one pass (newlines
//!   and UTF-8) and kept in an index file that later opens map in microseconds.
//! - [`order`](EpochOrder): each epoch's order, a pure function of the seed and the epoch
//!   with random access by position — file order, a global shuffle, or a block shuffle
//!   that streams files larger than memory.
//! - [`plan`](ShardPlan): which batches a worker, a rank, a resumed run or a query reads.
//! - [`Batch`] → Arrow [`RecordBatch`](arrow::array::RecordBatch) whose `line` column is a
//!   `Utf8View`/`BinaryView` array pointing into the map: line bytes are never copied.
//! - Adapters: [`BatchStream`] (read-ahead), [`write_ipc_stream`], the DataFusion
//!   [`LinesTable`], the CLI and the Python extension.
//!
//! ```
//! # use std::io::Write;
//! # let mut f = tempfile::NamedTempFile::new().unwrap();
//! # for i in 0..10 { writeln!(f, "this is line number {i}").unwrap(); }
//! use mmap_batcher::{Batcher, IndexCache, Options};
//! let opts = Options { batch_size: 4, seed: Some(7), index_cache: IndexCache::Off, ..Default::default() };
//! let batcher = Batcher::open(f.path(), opts)?;
//! let epoch = batcher.epoch(0)?;
//! let batch = epoch.batch(0).unwrap().to_record_batch()?;
//! assert_eq!(batch.num_rows(), 4);
//! assert_eq!(batch.schema().field(0).name(), "line");
//! # Ok::<(), mmap_batcher::Error>(())
//! ```
//!
//! # Where `unsafe` lives
//! The crate denies `unsafe_code` everywhere but in these five modules, each with its
//! safety argument in its docs; every `unsafe` block carries a `SAFETY:` comment
//! (`clippy::undocumented_unsafe_blocks` is denied):
//!
//! | module | what is unsafe |
//! | --- | --- |
//! | `source::map` | mapping files read-only; lending windows of a map to Arrow; `MADV_DONTNEED` on a read-only file map |
//! | `source::truncation` | the `SIGBUS` handler that turns a truncation under a guarded read of a map into zeros and an error (`sigaction`, `mmap(MAP_FIXED)` of one page) |
//! | `arrow::views` | building `Utf8View`/`BinaryView` arrays without Arrow's validation (the UTF-8 proof token; JSON fields as substrings of lines) |
//! | `index::scan` | calling the AVX2 newline scan, once the CPU check is made |
//! | `order::feistel` | calling the AVX-512 Feistel rounds, once the CPU check is made |
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod arrow;
mod batcher;
#[cfg(feature = "cli")]
#[allow(missing_docs)] // an application: its one public item, `main`, is documented
pub mod cli;
mod corpus;
#[cfg(feature = "datafusion")]
mod datafusion;
mod error;
mod file_starts;
mod index;
mod ipc;
mod json;
mod options;
mod order;
mod plan;
mod select;
mod source;
mod sources;
pub mod state;
mod stream;
#[cfg(feature = "synthetic")]
pub mod synthetic;

pub use crate::arrow::{coalesce, compact, large_schema, layout_schema, schema, to_large, with_layout, Column};
#[cfg(feature = "datafusion")]
pub use crate::datafusion::{json_functions, register_json_functions, LineBuffers, LinesExec, LinesTable};
pub use batcher::{Batch, Batcher, Epoch, Located, Value};
pub use error::{Error, Result};
pub use index::{IndexStatus, Utf8Verdict, MAX_LINE_LEN};
pub use ipc::{ipc_schema, write_ipc_file, write_ipc_stream, IpcSummary};
pub use json::{FieldPath, Fields, Found, NotJson, Step};
pub use options::{
    Choice, FilePolicy, IndexCache, IoPolicy, KeepRules, LineLayout, LineType, Options, RecordPolicy, Shuffle, ShuffleMode, SkipReason,
};
pub use order::{BlockLayout, BlockOrder, EpochOrder, MixSource, MixedOrder, Mixture, Permutation};
pub use plan::{Served, Shard, ShardPlan, Units};
pub use select::{RowFilter, Selection};
pub use source::paths::{expand_inputs, inputs_name_a_corpus};
pub use source::{read_guarded, Cancel, Identity, NeverCancel};
pub use sources::{Source, SourceIdentity, SourceInfo};
pub use stream::{BatchStream, Ready, StreamOptions, Wait};
