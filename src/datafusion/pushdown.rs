//! Which filters a scan answers exactly, and how they narrow it: comparisons of `epoch`,
//! `batch` and `line_number` with integer literals, `file = 'path'` and `source = 'name'`
//! (or `IN` a list of them, or `OR`s of them). Decided per filter
//! ([`filter_range`] is `Some` exactly for the filters the table reports as `Exact`); what
//! they allow narrows the core's [`RowFilter`], which the Polars scan shares.

use std::ops::Range;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::arrow::Column;
use crate::select::RowFilter;

/// What one pushed-down filter allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// Epochs in this half-open range.
    Epochs(Range<u64>),
    /// Batches in this half-open range.
    Batches(Range<u64>),
    /// Physical line numbers (per file) in this half-open range.
    LineNumbers(Range<u64>),
    /// Lines of the files with these paths.
    Files(Vec<String>),
    /// Lines of the sources with these names.
    Sources(Vec<String>),
}

impl Allowed {
    /// `filter` narrowed to what this allows.
    pub(crate) fn narrow(self, filter: RowFilter) -> RowFilter {
        match self {
            Allowed::Epochs(r) => filter.epochs(r),
            Allowed::Batches(r) => filter.batches(r),
            Allowed::LineNumbers(r) => filter.line_numbers(r),
            Allowed::Files(paths) => filter.files(paths),
            Allowed::Sources(names) => filter.sources(names),
        }
    }
}

/// `Some` when `expr` is a filter answered exactly from the index.
pub(crate) fn filter_range(expr: &Expr) -> Option<Allowed> {
    match expr {
        // DataFusion turns a short `IN` list into `=`s joined by `OR`.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => match (filter_range(left)?, filter_range(right)?) {
            (Allowed::Files(mut a), Allowed::Files(b)) => {
                a.extend(b);
                Some(Allowed::Files(a))
            }
            (Allowed::Sources(mut a), Allowed::Sources(b)) => {
                a.extend(b);
                Some(Allowed::Sources(a))
            }
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if let Some(allowed) = file_equals(left, *op, right).or_else(|| file_equals(right, *op, left)) {
                return Some(allowed);
            }
            if let (Some(col), Some(v)) = (range_column(left), int_literal(right)) {
                Some(allowed(col, op_range(*op, v)?))
            } else if let (Some(v), Some(col)) = (int_literal(left), range_column(right)) {
                Some(allowed(col, op_range(op.swap()?, v)?))
            } else {
                None
            }
        }
        Expr::InList(InList { expr, list, negated: false }) => {
            let column = column_of(expr).filter(|c| matches!(c, Column::File | Column::Source))?;
            let names = list.iter().map(string_literal).collect::<Option<Vec<_>>>()?;
            Some(names_allowed(column, names))
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            let col = range_column(expr)?;
            let (lo, hi) = (int_literal(low)?, int_literal(high)?);
            Some(allowed(col, clamp(lo)..clamp(hi.saturating_add(1))))
        }
        _ => None,
    }
}

fn allowed(col: Column, r: Range<u64>) -> Allowed {
    match col {
        Column::Epoch => Allowed::Epochs(r),
        Column::Batch => Allowed::Batches(r),
        _ => Allowed::LineNumbers(r),
    }
}

fn column_of(expr: &Expr) -> Option<Column> {
    match expr {
        Expr::Column(c) => Column::from_name(c.name.as_str(), &[]),
        // Casting an unsigned column to a wider or signed integer keeps its order; casting
        // the file dictionary to a string keeps its values.
        Expr::Cast(c) if c.field.data_type().is_integer() || c.field.data_type().is_string() => column_of(&c.expr),
        _ => None,
    }
}

fn range_column(expr: &Expr) -> Option<Column> {
    column_of(expr).filter(|c| matches!(c, Column::Epoch | Column::Batch | Column::LineNumber))
}

fn file_equals(col: &Expr, op: Operator, lit: &Expr) -> Option<Allowed> {
    let column = column_of(col).filter(|c| matches!(c, Column::File | Column::Source));
    if op != Operator::Eq || column.is_none() {
        return None;
    }
    Some(names_allowed(column?, vec![string_literal(lit)?]))
}

fn names_allowed(column: Column, names: Vec<String>) -> Allowed {
    if column == Column::Source {
        Allowed::Sources(names)
    } else {
        Allowed::Files(names)
    }
}

/// The string of a string literal (or of a cast of one).
fn string_literal(lit: &Expr) -> Option<String> {
    let literal = match lit {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v,
            _ => return None,
        },
        _ => return None,
    };
    match literal {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, v) => match v.as_ref() {
            ScalarValue::Utf8(Some(s)) => Some(s.clone()),
            _ => None,
        },
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
