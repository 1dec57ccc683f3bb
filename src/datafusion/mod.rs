//! Epochs of batches as an Apache DataFusion table (cargo feature `datafusion`): the
//! provider ([`LinesTable`]), the filters it answers ([`pushdown`]) and its scan
//! ([`LinesExec`]); the JSON functions of SQL over JSON Lines ([`register_json_functions`]).

mod exec;
mod json;
mod pushdown;
mod table;

pub use exec::LinesExec;
pub use json::{json_functions, register_json_functions};
pub use table::{LineBuffers, LinesTable};
