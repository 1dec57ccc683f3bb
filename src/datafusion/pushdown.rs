//! Which filters a scan answers exactly, and how they narrow it: comparisons of `epoch`,
//! `batch` and `line_number` with integer literals, `file = 'path'` and `source = 'name'`. Decided per filter
//! ([`filter_range`] is `Some` exactly for the filters the table reports as `Exact`); what
//! they allow narrows the core's [`RowFilter`], which the Polars scan shares.

use std::ops::Range;

use datafusion::common::ScalarValue;
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
    /// Lines of the file with this path.
    File(String),
    /// Lines of the source with this name.
    Source(String),
}

impl Allowed {
    /// `filter` narrowed to what this allows.
    pub(crate) fn narrow(self, filter: RowFilter) -> RowFilter {
        match self {
            Allowed::Epochs(r) => filter.epochs(r),
            Allowed::Batches(r) => filter.batches(r),
            Allowed::LineNumbers(r) => filter.line_numbers(r),
            Allowed::File(path) => filter.files([path]),
            Allowed::Source(name) => filter.sources([name]),
        }
    }
}

/// `Some` when `expr` is a filter answered exactly from the index.
pub(crate) fn filter_range(expr: &Expr) -> Option<Allowed> {
    match expr {
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
    let literal = match lit {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v,
            _ => return None,
        },
        _ => return None,
    };
    let s = match literal {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Dictionary(_, v) => match v.as_ref() {
            ScalarValue::Utf8(Some(s)) => s.clone(),
            _ => return None,
        },
        _ => return None,
    };
    Some(if column == Some(Column::Source) { Allowed::Source(s) } else { Allowed::File(s) })
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
