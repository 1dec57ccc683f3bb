//! Fields of JSON Lines records, found without building the record.
//!
//! [`Fields::find`] walks one line once: it checks that the line is one JSON object (the
//! whole line, so a record cut short is a bad record, not a served prefix), and notes where
//! each wanted field's value lies, as a byte range of the line. Strings are crossed with
//! `memchr2` (their quote or their next backslash), so a record that is mostly one long
//! text costs little more than a memory scan. Nothing is allocated unless a key or a value
//! holds escapes: a string without escapes is served as its bytes in the line (a view into
//! the map); one with escapes is decoded by [`unescape`].
//!
//! What counts as JSON here: RFC 8259, with two tolerances that cost a parser time and
//! a user nothing: raw control characters inside strings are accepted (the line has no
//! `\n` in any case), and numbers are checked for their characters, not their grammar.
//! A key given twice: the last one counts, as Python's `json.loads` and `serde_json` do.

use std::ops::Range;

use crate::error::{Error, Result};

/// Objects and arrays nested deeper than this make a bad record (the walk recurses).
const MAX_DEPTH: usize = 128;

/// One step of a path: a key of an object, or a position in an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The value of this key.
    Key(String),
    /// The element at this position (0-based).
    Index(usize),
}

/// One field's path: dotted keys (`meta.lang`), or a JSON Pointer (`/meta/lang`, RFC 6901,
/// for keys holding dots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    steps: Vec<Step>,
}

impl FieldPath {
    /// Parses `text`: a JSON Pointer when it starts with `/`, else keys joined by dots.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidOption { message: format!("field {text:?}: {reason}") };
        let keys: Vec<String> = if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|k| {
                    let mut out = String::with_capacity(k.len());
                    let mut chars = k.chars();
                    while let Some(c) = chars.next() {
                        match c {
                            '~' => match chars.next() {
                                Some('0') => out.push('~'),
                                Some('1') => out.push('/'),
                                _ => return Err(invalid("in a JSON Pointer `~` must be followed by 0 or 1")),
                            },
                            c => out.push(c),
                        }
                    }
                    Ok(out)
                })
                .collect::<Result<_>>()?
        } else {
            if text.split('.').any(str::is_empty) {
                return Err(invalid("an empty key (for keys with dots or empty keys, write a JSON Pointer: \"/a.b\")"));
            }
            text.split('.').map(str::to_owned).collect()
        };
        Ok(FieldPath { steps: keys.into_iter().map(Step::Key).collect() })
    }

    /// A path of `steps` (keys and array positions), outermost first.
    pub fn of_steps(steps: Vec<Step>) -> Self {
        FieldPath { steps }
    }

    /// The steps, outermost first.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// Where a field's value lies in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Not in the record (or under a value that is not an object).
    Missing,
    /// JSON `null`.
    Null,
    /// A string: the bytes between its quotes, and whether they hold escapes.
    Str {
        /// Byte range of the string's contents in the line.
        raw: Range<usize>,
        /// True when the contents hold a backslash (then they must be decoded).
        escaped: bool,
    },
    /// Any other value (number, `true`, `false`, object, array): its JSON text.
    Other(Range<usize>),
}

impl Found {
    /// The contents of a string found in `line`, decoded where they hold escapes; `None`
    /// for any other value (or a range outside `line`).
    pub(crate) fn string<'a>(&self, line: &'a [u8]) -> Option<std::borrow::Cow<'a, [u8]>> {
        let Found::Str { raw, escaped } = self else { return None };
        let raw = line.get(raw.clone())?;
        if !escaped {
            return Some(std::borrow::Cow::Borrowed(raw));
        }
        let mut s = String::new();
        unescape(raw, &mut s);
        Some(std::borrow::Cow::Owned(s.into_bytes()))
    }
}

/// Why a line is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson {
    /// Byte offset in the line where the walk stopped.
    pub at: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// At most this many fields (one bit each in the walk).
pub const MAX_FIELDS: usize = 64;

/// The fields wanted of each record, and the walk that finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    paths: Vec<FieldPath>,
}

impl Fields {
    /// The fields `paths` (at most [`MAX_FIELDS`]), in the order [`find`](Self::find)
    /// reports them.
    pub fn new(paths: Vec<FieldPath>) -> Result<Self> {
        if paths.len() > MAX_FIELDS {
            return Err(Error::InvalidOption { message: format!("{} fields asked, at most {MAX_FIELDS} are served", paths.len()) });
        }
        Ok(Fields { paths })
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True without fields.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Walks `line` (without its terminator), writing field `k`'s place into `found[k]`.
    pub fn find(&self, line: &[u8], found: &mut [Found]) -> std::result::Result<(), NotJson> {
        found.iter_mut().for_each(|f| *f = Found::Missing);
        let mut walk = Walk { bytes: line, pos: 0, scratch: String::new() };
        walk.space();
        if walk.peek() != Some(b'{') {
            return Err(walk.fail(if walk.pos == line.len() { "an empty line" } else { "it does not start with `{`" }));
        }
        let all = if self.paths.len() == 64 { u64::MAX } else { (1u64 << self.paths.len()) - 1 };
        walk.object(&self.paths, all, 0, found)?;
        walk.space();
        if walk.pos != line.len() {
            return Err(walk.fail("more after the object"));
        }
        Ok(())
    }
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    scratch: String,
}

impl Walk<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn fail(&self, reason: &'static str) -> NotJson {
        NotJson { at: self.pos, reason }
    }

    #[inline]
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> std::result::Result<(), NotJson> {
        self.space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(reason))
        }
    }

    /// At an opening quote: crosses the string, returning its contents' range and whether
    /// they hold escapes. Escapes are checked for their form (`\uXXXX` included).
    fn string(&mut self) -> std::result::Result<(Range<usize>, bool), NotJson> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.pos..];
            let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
                self.pos = self.bytes.len();
                return Err(self.fail("a string without its closing quote"));
            };
            self.pos += i;
            if self.bytes[self.pos] == b'"' {
                let end = self.pos;
                self.pos += 1;
                return Ok((start..end, escaped));
            }
            escaped = true;
            match self.bytes.get(self.pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') if self.bytes.get(self.pos + 2..self.pos + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => self.pos += 6,
                _ => return Err(self.fail("an invalid escape in a string")),
            }
        }
    }

    /// Crosses one value, returning where it lies; `live` are the fields still matching at
    /// `depth` (used when the value is an object).
    fn value(&mut self, paths: &[FieldPath], live: u64, depth: usize, found: &mut [Found]) -> std::result::Result<Found, NotJson> {
        self.space();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                Ok(Found::Str { raw, escaped })
            }
            Some(b'{') => {
                self.object(paths, live, depth, found)?;
                Ok(Found::Other(start..self.pos))
            }
            Some(b'[') => {
                self.array(paths, live, depth, found)?;
                Ok(Found::Other(start..self.pos))
            }
            Some(b't') => self.literal(b"true", start),
            Some(b'f') => self.literal(b"false", start),
            Some(b'n') => self.literal(b"null", start).map(|_| Found::Null),
            Some(b'-' | b'0'..=b'9') => {
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
                    self.pos += 1;
                }
                Ok(Found::Other(start..self.pos))
            }
            None => Err(self.fail("the record ends where a value should be")),
            Some(_) => Err(self.fail("not a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], start: usize) -> std::result::Result<Found, NotJson> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(Found::Other(start..self.pos))
        } else {
            Err(self.fail("not a JSON value"))
        }
    }

    /// At `[`: crosses the array; element `i` is the value of the fields of `live` whose
    /// step at `depth` is position `i`.
    fn array(&mut self, paths: &[FieldPath], live: u64, depth: usize, found: &mut [Found]) -> std::result::Result<(), NotJson> {
        if self.opened(depth, b']')? {
            return Ok(());
        }
        let mut i = 0;
        loop {
            let matching = bits(live).filter(|&k| paths[k].steps.get(depth) == Some(&Step::Index(i))).fold(0, |m, k| m | 1 << k);
            self.element(paths, matching, depth, found)?;
            i += 1;
            if self.closed(b']', "an array without `,` or `]`")? {
                return Ok(());
            }
        }
    }

    /// At an opening bracket of nesting `depth`: crosses it, and `true` when `close`
    /// follows (an empty array or object, crossed too).
    fn opened(&mut self, depth: usize, close: u8) -> std::result::Result<bool, NotJson> {
        if depth >= MAX_DEPTH {
            return Err(self.fail("nested too deep"));
        }
        self.pos += 1;
        self.space();
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        Ok(empty)
    }

    /// After an element: `true` at the closing `close` (crossed), `false` at a `,`
    /// (crossed), an error otherwise.
    fn closed(&mut self, close: u8, reason: &'static str) -> std::result::Result<bool, NotJson> {
        self.space();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.fail(reason)),
        }
    }

    /// At `{`: crosses the object; for each key, the fields of `live` (a bit per field)
    /// whose key at `depth` it is either end here (their value noted) or go on into it.
    fn object(&mut self, paths: &[FieldPath], live: u64, depth: usize, found: &mut [Found]) -> std::result::Result<(), NotJson> {
        if self.opened(depth, b'}')? {
            return Ok(());
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.fail("an object key that is not a string"));
            }
            let (key, escaped) = self.string()?;
            let matching = if live == 0 { 0 } else { self.matching(paths, live, depth, key, escaped) };
            self.expect(b':', "an object key without `:`")?;
            self.element(paths, matching, depth, found)?;
            if self.closed(b'}', "an object without `,` or `}`")? {
                return Ok(());
            }
        }
    }

    /// Crosses the value of a key or an array element at `depth`: the fields of `matching`
    /// whose path ends there get it; the others go on into it.
    fn element(&mut self, paths: &[FieldPath], matching: u64, depth: usize, found: &mut [Found]) -> std::result::Result<(), NotJson> {
        let (mut ends, mut deeper) = (0u64, 0u64);
        for k in bits(matching) {
            if paths[k].steps.len() == depth + 1 {
                ends |= 1 << k;
            } else {
                deeper |= 1 << k;
            }
        }
        let value = self.value(paths, deeper, depth + 1, found)?;
        for k in bits(ends) {
            found[k] = value.clone();
        }
        Ok(())
    }

    /// The fields of `live` whose key at `depth` is the key at `key` of the line.
    fn matching(&mut self, paths: &[FieldPath], live: u64, depth: usize, key: Range<usize>, escaped: bool) -> u64 {
        let key: &[u8] = if escaped {
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            unescape(&self.bytes[key], &mut out);
            self.scratch = out;
            self.scratch.as_bytes()
        } else {
            &self.bytes[key]
        };
        bits(live).filter(|&k| matches!(paths[k].steps.get(depth), Some(Step::Key(want)) if want.as_bytes() == key)).fold(0, |m, k| m | 1 << k)
    }
}

/// The indices of the set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            k
        })
    })
}

/// Appends the decoded contents of a JSON string (as [`Fields::find`] checked them) to
/// `out`. A `\u` escape of a lone surrogate becomes U+FFFD, as in Python's
/// `json.loads(...).encode(errors="replace")` and in what Arrow strings can hold.
pub fn unescape(raw: &[u8], out: &mut String) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        // `raw` is a string's contents from a UTF-8 line, and `\` is ASCII: both halves
        // are UTF-8.
        out.push_str(std::str::from_utf8(&rest[..i]).unwrap_or("\u{fffd}"));
        let code = rest.get(i + 1).copied().unwrap_or(b'\\');
        let mut next = i + 2;
        match code {
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let unit = |at: usize| rest.get(at..at + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u16::from_str_radix(h, 16).ok());
                let first = unit(i + 2).unwrap_or(0xfffd);
                next = i + 6;
                let c = match first {
                    0xd800..=0xdbff => match (rest.get(next..next + 2), unit(next + 2)) {
                        (Some(b"\\u"), Some(low @ 0xdc00..=0xdfff)) => {
                            next += 6;
                            char::from_u32(0x10000 + ((first as u32 - 0xd800) << 10) + (low as u32 - 0xdc00))
                        }
                        _ => None,
                    },
                    unit => char::from_u32(unit as u32),
                };
                out.push(c.unwrap_or('\u{fffd}'));
            }
            other => out.push(other as char),
        }
        rest = rest.get(next..).unwrap_or_default();
    }
    out.push_str(std::str::from_utf8(rest).unwrap_or("\u{fffd}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(paths: &[&str]) -> Fields {
        Fields::new(paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect()).unwrap()
    }

    /// What `serde_json` says field `path` of `line` is, in our terms: the decoded string,
    /// or the value's JSON text re-serialised; `None` when missing or null.
    fn expected(line: &str, path: &FieldPath) -> Option<Result<String, String>> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let pointer: String = path
            .steps()
            .iter()
            .map(|s| match s {
                Step::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => format!("/{i}"),
            })
            .collect();
        match v.pointer(&pointer)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(Ok(s.clone())),
            other => Some(Err(other.to_string())),
        }
    }

    fn ours(line: &str, found: &Found) -> Option<Result<String, String>> {
        match found {
            Found::Missing | Found::Null => None,
            Found::Str { raw, .. } => {
                let mut s = String::new();
                unescape(&line.as_bytes()[raw.clone()], &mut s);
                Some(Ok(s))
            }
            Found::Other(r) => Some(Err(serde_json::from_str::<serde_json::Value>(&line[r.clone()]).unwrap().to_string())),
        }
    }

    #[test]
    fn finds_nested_fields_escapes_and_the_last_duplicate() {
        let f = fields(&["text", "meta.lang", "/a.b", "n", "meta"]);
        let line = r#" {"text": "caf\u00e9 \"quoted\" \ud83d\ude00", "meta": {"lang": "fr", "x": [1, {"y": null}]}, "a.b": 3, "n": 1, "n": -2.5e3} "#;
        let mut found = vec![Found::Missing; f.len()];
        f.find(line.as_bytes(), &mut found).unwrap();
        assert_eq!(ours(line, &found[0]), Some(Ok("café \"quoted\" 😀".to_string())));
        assert!(matches!(found[0], Found::Str { escaped: true, .. }));
        assert_eq!(found[1], Found::Str { raw: line.find("fr").unwrap()..line.find("fr").unwrap() + 2, escaped: false });
        assert_eq!(ours(line, &found[2]), Some(Err("3".into())));
        assert_eq!(ours(line, &found[3]), Some(Err("-2500.0".into())));
        assert_eq!(ours(line, &found[4]), expected(line, &FieldPath::parse("meta").unwrap()));
    }

    #[test]
    fn bad_records_say_where() {
        let f = fields(&["text"]);
        let mut found = vec![Found::Missing];
        for (line, reason) in [
            ("", "an empty line"),
            ("[1, 2]", "it does not start with `{`"),
            (r#"{"text": "cut"#, "a string without its closing quote"),
            (r#"{"text": "a"} x"#, "more after the object"),
            (r#"{"text": "a" "b": 1}"#, "an object without `,` or `}`"),
            (r#"{"text": "\x"}"#, "an invalid escape in a string"),
            (r#"{"text": tru}"#, "not a JSON value"),
            (r#"{text: 1}"#, "an object key that is not a string"),
        ] {
            assert_eq!(f.find(line.as_bytes(), &mut found).unwrap_err().reason, reason, "{line}");
        }
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(f.find(deep.as_bytes(), &mut found).unwrap_err().reason, "nested too deep");
    }

    #[test]
    fn pointers_and_dotted_paths() {
        let keys = |p: &str| FieldPath::parse(p).unwrap().steps().iter().map(|s| format!("{s:?}")).collect::<Vec<_>>();
        assert_eq!(keys("/a~1b/c~0d.e"), [r#"Key("a/b")"#, r#"Key("c~d.e")"#]);
        assert_eq!(keys("meta.lang"), [r#"Key("meta")"#, r#"Key("lang")"#]);
        assert!(FieldPath::parse("meta..lang").is_err());
        assert!(FieldPath::parse("/a~2").is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[a-z \\\\\"\u{e9}\u{1f600}\n\t\u{1}]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[abt]{1,2}", inner), 0..5).prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(record in prop::collection::vec(("[abt]{1,2}", json_value()), 0..6), pretty in any::<bool>()) {
            let v = serde_json::Value::Object(record.into_iter().collect());
            let line = if pretty { serde_json::to_string_pretty(&v).unwrap().replace('\n', " ") } else { v.to_string() };
            let key = |k: &str| Step::Key(k.into());
            let paths = vec![
                FieldPath::parse("a").unwrap(),
                FieldPath::parse("b").unwrap(),
                FieldPath::parse("t").unwrap(),
                FieldPath::parse("a.b").unwrap(),
                FieldPath::parse("t.a.t").unwrap(),
                FieldPath::parse("/b/t").unwrap(),
                FieldPath::of_steps(vec![key("a"), Step::Index(0)]),
                FieldPath::of_steps(vec![key("t"), Step::Index(1), key("b")]),
                FieldPath::of_steps(vec![key("b"), Step::Index(2), Step::Index(0)]),
            ];
            let f = Fields::new(paths.clone()).unwrap();
            let mut found = vec![Found::Missing; f.len()];
            f.find(line.as_bytes(), &mut found).unwrap();
            for (k, p) in paths.iter().enumerate() {
                prop_assert_eq!(ours(&line, &found[k]), expected(&line, p), "{:?} in {}", p, line);
            }
        }

        #[test]
        fn never_panics_on_any_bytes(line in prop::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\\'), Just(b':'), Just(b','), Just(b'['), Just(b'u'), any::<u8>()], 0..40)) {
            let f = fields(&["a", "a.b"]);
            let mut found = vec![Found::Missing; 2];
            if f.find(&line, &mut found).is_ok() {
                for x in &found {
                    if let Found::Str { raw, .. } | Found::Other(raw) = x {
                        prop_assert!(raw.end <= line.len());
                    }
                }
            }
        }
    }
}
