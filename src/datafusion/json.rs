//! JSON functions for SQL over JSON Lines, on the walk that serves `field=`
//! ([`Fields::find`]): `json_get_str(line, 'meta', 'lang')`, `json_get_int`,
//! `json_get_float`, `json_get_bool`, `json_get_json`, `json_as_text`, `json_contains`, and
//! the operators `->` (the value's JSON text) and `->>` (its text).
//!
//! The names and arguments are those of `datafusion-functions-json`, which cannot be a
//! dependency here: its parser (`jiter`) has an optional `pyo3` 0.29 dependency, and Cargo
//! resolves `links` for optional dependencies too (cargo#6231), so it conflicts with the
//! extension's `pyo3` 0.30. Path arguments are constants: keys (strings) and array
//! positions (integers). A line that is not one JSON object, a missing path or a value of
//! another type gives `NULL`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::json::{FieldPath, Fields, Found, Step};

/// What a function returns of the value it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A string, decoded.
    Str,
    /// An integer.
    Int,
    /// A number.
    Float,
    /// `true` or `false`.
    Bool,
    /// Any value's JSON text.
    Json,
    /// A string decoded, any other value's JSON text.
    AsText,
    /// Whether the path is there.
    Contains,
}

const FUNCTIONS: [(&str, Kind); 7] = [
    ("json_get_str", Kind::Str),
    ("json_get_int", Kind::Int),
    ("json_get_float", Kind::Float),
    ("json_get_bool", Kind::Bool),
    ("json_get_json", Kind::Json),
    ("json_as_text", Kind::AsText),
    ("json_contains", Kind::Contains),
];

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

fn udf(name: &'static str, kind: Kind) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(JsonFunction { name, kind, signature: Signature::variadic_any(Volatility::Immutable) }))
}

fn udf_of(kind: Kind) -> Arc<ScalarUDF> {
    let (name, _) = FUNCTIONS.iter().find(|(_, k)| *k == kind).copied().unwrap_or(("json_get_json", Kind::Json));
    udf(name, kind)
}

/// The one value of `array`, when every row holds it: how a constant arrives through
/// `datafusion-ffi`, which hands a UDF every argument as an array.
fn constant(array: &ArrayRef) -> Result<Option<ScalarValue>> {
    if array.is_empty() {
        return Ok(None);
    }
    let same = match array.data_type() {
        // Strings compared in place, without a `ScalarValue` a row.
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let first = text_at(array.as_ref(), 0);
            first.is_some() && (1..array.len()).all(|row| text_at(array.as_ref(), row) == first)
        }
        _ => {
            let first = ScalarValue::try_from_array(array, 0)?;
            (1..array.len()).map(|row| ScalarValue::try_from_array(array, row)).all(|v| v.is_ok_and(|v| v == first))
        }
    };
    if same {
        ScalarValue::try_from_array(array, 0).map(Some)
    } else {
        Ok(None)
    }
}

/// The path of a call's arguments after the first: each a constant key or position.
fn path_of(name: &str, args: &[ColumnarValue]) -> Result<FieldPath> {
    let steps = args
        .iter()
        .map(|a| {
            let s = match a {
                ColumnarValue::Scalar(s) => s.clone(),
                ColumnarValue::Array(array) => match constant(array)? {
                    Some(s) => s,
                    None if array.is_empty() => ScalarValue::Utf8(Some(String::new())),
                    None => return Err(DataFusionError::Plan(format!("{name}: the path arguments must be constants (keys or positions)"))),
                },
            };
            step_of(name, &s)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FieldPath::of_steps(steps))
}

/// One step of a path: a key (a string) or an array position (an integer from 0).
fn step_of(name: &str, s: &ScalarValue) -> Result<Step> {
    match s {
        ScalarValue::Utf8(Some(k)) | ScalarValue::Utf8View(Some(k)) | ScalarValue::LargeUtf8(Some(k)) => Ok(Step::Key(k.clone())),
        ScalarValue::Dictionary(_, v) => step_of(name, v),
        s if s.data_type().is_integer() && !s.is_null() => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(i)) if i >= 0 => Ok(Step::Index(i as usize)),
            _ => Err(DataFusionError::Plan(format!("{name}: an array position must be 0 or more, got {s}"))),
        },
        s => Err(DataFusionError::Plan(format!("{name}: a path argument must be a string key or an integer position, got {s}"))),
    }
}

/// Line `row` of a string array of any layout; `None` for a null.
fn text_at(array: &dyn Array, row: usize) -> Option<&str> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        _ => None,
    }
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.len() < 2 {
            return Err(DataFusionError::Plan(format!("{}: give the JSON text and a path (keys, positions)", self.name)));
        }
        if !matches!(args.first(), Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null)) {
            return Err(DataFusionError::Plan(format!("{}: the first argument must be a string (JSON text), got {:?}", self.name, args.first())));
        }
        Ok(match self.kind {
            Kind::Str | Kind::Json | Kind::AsText => DataType::Utf8,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool | Kind::Contains => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let fields = Fields::new(vec![path_of(self.name, &args.args[1..])?]).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let input = args.args[0].to_array(args.number_rows)?;
        let mut found = [Found::Missing];
        // Row `row`'s line and where the value is in it; `None` for a null or a line that is
        // not one JSON object.
        let mut at = |row: usize| -> Option<(&str, Found)> {
            let line = text_at(input.as_ref(), row)?;
            fields.find(line.as_bytes(), &mut found).ok()?;
            Some((line, found[0].clone()))
        };
        let n = input.len();
        let array: ArrayRef = match self.kind {
            Kind::Str | Kind::Json | Kind::AsText => {
                let mut b = StringBuilder::new();
                let mut decoded = String::new();
                for row in 0..n {
                    match (self.kind, at(row)) {
                        (Kind::Str | Kind::AsText, Some((line, Found::Str { raw, .. }))) => {
                            decoded.clear();
                            crate::json::unescape(&line.as_bytes()[raw], &mut decoded);
                            b.append_value(&decoded);
                        }
                        (Kind::Json, Some((line, Found::Str { raw, .. }))) => b.append_value(&line[raw.start - 1..raw.end + 1]),
                        (Kind::Json, Some((_, Found::Null))) => b.append_value("null"),
                        (Kind::Json | Kind::AsText, Some((line, Found::Other(r)))) => b.append_value(&line[r]),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Int => {
                Arc::new((0..n).map(|row| at(row).and_then(|(l, f)| number(l, &f)?.parse::<i64>().ok())).collect::<arrow::array::Int64Array>())
            }
            Kind::Float => {
                Arc::new((0..n).map(|row| at(row).and_then(|(l, f)| number(l, &f)?.parse::<f64>().ok())).collect::<arrow::array::Float64Array>())
            }
            Kind::Bool => Arc::new(
                (0..n)
                    .map(|row| match at(row) {
                        Some((line, Found::Other(r))) => match &line[r] {
                            "true" => Some(true),
                            "false" => Some(false),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect::<arrow::array::BooleanArray>(),
            ),
            Kind::Contains => Arc::new((0..n).map(|row| at(row).map(|(_, f)| f != Found::Missing)).collect::<arrow::array::BooleanArray>()),
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// The JSON text of a number value.
fn number<'a>(line: &'a str, found: &Found) -> Option<&'a str> {
    match found {
        Found::Other(r) if matches!(line.as_bytes().get(r.start), Some(b'-' | b'0'..=b'9')) => line.get(r.clone()),
        _ => None,
    }
}

/// `->` and `->>` as calls of the functions above.
#[derive(Debug)]
struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(&self, expr: RawBinaryExpr, _schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        let kind = match expr.op {
            BinaryOperator::Arrow => Kind::Json,
            BinaryOperator::LongArrow => Kind::AsText,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        // Named as written (`line -> 'meta'`), not as the call it becomes.
        let name = format!("{} {} {}", expr.left, expr.op, expr.right);
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(udf_of(kind), vec![expr.left, expr.right]));
        Ok(PlannerResult::Planned(call.alias(name)))
    }
}

/// Registers the JSON functions and operators on `ctx`, as the CLI's `sql` does: DataFusion
/// ships none.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..10 { writeln!(f, "{{\"n\": {i}, \"meta\": {{\"lang\": \"en\"}}}}").unwrap(); }
/// use datafusion::prelude::SessionContext;
/// use mmap_batcher::{Batcher, IndexCache, LinesTable, Options};
/// let b = Batcher::open(f.path(), Options { batch_size: 5, index_cache: IndexCache::Off, ..Default::default() })?;
/// let mut ctx = SessionContext::new();
/// mmap_batcher::register_json_functions(&mut ctx)?;
/// ctx.register_table("lines", std::sync::Arc::new(LinesTable::new(b, 1)?))?;
/// let rt = tokio::runtime::Runtime::new()?;
/// let rows = rt.block_on(async {
///     let df = ctx.sql("SELECT sum(json_get_int(line, 'n')) AS s FROM lines WHERE (line->'meta'->>'lang') = 'en'").await?;
///     df.collect().await
/// })?;
/// let text = arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
/// assert!(text.contains("| 45 |"), "{text}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register_json_functions(ctx: &mut SessionContext) -> Result<()> {
    for f in json_functions() {
        ctx.register_udf(f)?;
    }
    ctx.register_expr_planner(Arc::new(JsonOperators))
}

/// The JSON functions, without the operators: for a session registered through another
/// API (datafusion-python's `register_udf`, over `datafusion-ffi`).
pub fn json_functions() -> Vec<Arc<ScalarUDF>> {
    FUNCTIONS.iter().map(|&(name, kind)| udf(name, kind)).collect()
}
