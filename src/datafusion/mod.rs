//! Epochs of batches as an Apache DataFusion table (cargo feature `datafusion`): the
//! provider ([`LinesTable`]), the filters it answers ([`pushdown`]) and its scan
//! ([`LinesExec`]).

mod exec;
mod pushdown;
mod table;

pub use exec::LinesExec;
pub use table::{LineBuffers, LinesTable};
