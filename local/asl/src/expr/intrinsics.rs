//! Intrinsic functions (`States.Format(...)` and friends): parsed once into a call tree, then
//! evaluated with AWS's argument rules and failure texts.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use super::path::{self, JsonPath, Selected};
use super::{Env, ExprError};

/// Deepest nesting of calls AWS accepts in one field.
const MAX_NESTING: usize = 10;
/// Largest array `States.ArrayRange` may produce.
const MAX_RANGE_ITEMS: i64 = 1000;
/// Longest input `States.Hash`, `States.Base64Encode` and `States.Base64Decode` accept.
const MAX_INPUT_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "Format" => Func::Format,
            "StringToJson" => Func::StringToJson,
            "JsonToString" => Func::JsonToString,
            "Array" => Func::Array,
            "ArrayPartition" => Func::ArrayPartition,
            "ArrayContains" => Func::ArrayContains,
            "ArrayRange" => Func::ArrayRange,
            "ArrayGetItem" => Func::ArrayGetItem,
            "ArrayLength" => Func::ArrayLength,
            "ArrayUnique" => Func::ArrayUnique,
            "Base64Encode" => Func::Base64Encode,
            "Base64Decode" => Func::Base64Decode,
            "Hash" => Func::Hash,
            "JsonMerge" => Func::JsonMerge,
            "MathRandom" => Func::MathRandom,
            "MathAdd" => Func::MathAdd,
            "StringSplit" => Func::StringSplit,
            "UUID" => Func::Uuid,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Format => "States.Format",
            Func::StringToJson => "States.StringToJson",
            Func::JsonToString => "States.JsonToString",
            Func::Array => "States.Array",
            Func::ArrayPartition => "States.ArrayPartition",
            Func::ArrayContains => "States.ArrayContains",
            Func::ArrayRange => "States.ArrayRange",
            Func::ArrayGetItem => "States.ArrayGetItem",
            Func::ArrayLength => "States.ArrayLength",
            Func::ArrayUnique => "States.ArrayUnique",
            Func::Base64Encode => "States.Base64Encode",
            Func::Base64Decode => "States.Base64Decode",
            Func::Hash => "States.Hash",
            Func::JsonMerge => "States.JsonMerge",
            Func::MathRandom => "States.MathRandom",
            Func::MathAdd => "States.MathAdd",
            Func::StringSplit => "States.StringSplit",
            Func::Uuid => "States.UUID",
        }
    }

    /// Accepted argument counts (min, max).
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Format => (1, usize::MAX),
            Func::Array => (0, usize::MAX),
            Func::Uuid => (0, 0),
            Func::StringToJson
            | Func::JsonToString
            | Func::ArrayLength
            | Func::ArrayUnique
            | Func::Base64Encode
            | Func::Base64Decode => (1, 1),
            Func::ArrayPartition
            | Func::ArrayContains
            | Func::ArrayGetItem
            | Func::Hash
            | Func::MathAdd
            | Func::StringSplit => (2, 2),
            Func::ArrayRange | Func::JsonMerge => (3, 3),
            Func::MathRandom => (2, 3),
        }
    }
}

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// A quoted literal: `raw` keeps the backslash escapes (States.Format needs them),
    /// `text` has them resolved.
    Str {
        raw: String,
        text: String,
    },
    Literal(Value),
    Path {
        source: String,
        path: Arc<JsonPath>,
    },
    Call(Call),
}

/// A parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub func: Func,
    pub args: Vec<Arg>,
}

/// True when a `.$` value is an intrinsic call rather than a path.
pub(crate) fn looks_like_call(expr: &str) -> bool {
    expr.trim_start().starts_with("States.")
}

/// Parses a whole intrinsic expression.
pub(crate) fn parse(expr: &str) -> Result<Call, String> {
    let mut p = Parser {
        src: expr,
        pos: 0,
        depth: 0,
    };
    p.ws();
    let call = p.call()?;
    p.ws();
    if p.pos != expr.len() {
        return Err(format!(
            "unexpected '{}' after the intrinsic function call in '{expr}'",
            p.rest()
        ));
    }
    Ok(call)
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    /// Calls currently open, bounded by [`MAX_NESTING`] while parsing.
    depth: usize,
}

impl<'s> Parser<'s> {
    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
    }

    fn call(&mut self) -> Result<Call, String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "more than {MAX_NESTING} nested intrinsic functions in '{}'",
                self.src
            ));
        }
        let result = self.call_body();
        self.depth -= 1;
        result
    }

    fn call_body(&mut self) -> Result<Call, String> {
        let rest = self.rest();
        let Some(after) = rest.strip_prefix("States.") else {
            return Err(format!(
                "expected an intrinsic function at '{rest}' in '{}'",
                self.src
            ));
        };
        let name_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let func = Func::from_name(name).ok_or_else(|| {
            format!(
                "unknown intrinsic function 'States.{name}' in '{}'",
                self.src
            )
        })?;
        self.pos += "States.".len() + name_len;
        self.ws();
        if self.peek() != Some('(') {
            return Err(format!(
                "expected '(' after {} in '{}'",
                func.name(),
                self.src
            ));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                args.push(self.arg()?);
                self.ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => {
                        return Err(format!(
                            "expected ',' or ')' in the arguments of {} in '{}'",
                            func.name(),
                            self.src
                        ));
                    }
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(format!(
                "{} takes {} but {} given in '{}'",
                func.name(),
                match (min, max) {
                    (a, b) if a == b => format!("{a} argument(s)"),
                    (a, usize::MAX) => format!("at least {a} argument(s)"),
                    (a, b) => format!("{a} to {b} arguments"),
                },
                args.len(),
                self.src
            ));
        }
        Ok(Call { func, args })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        let rest = self.rest();
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => {
                let len = path_extent(rest);
                let source = rest[..len].trim_end().to_string();
                let path = super::cached_path(&source)?;
                self.pos += len;
                Ok(Arg::Path { source, path })
            }
            Some('S') if rest.starts_with("States.") => Ok(Arg::Call(self.call()?)),
            _ => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if let Some(after) = rest.strip_prefix(word)
                        && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.pos += word.len();
                        return Ok(Arg::Literal(v));
                    }
                }
                let len = rest
                    .find(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                    })
                    .unwrap_or(rest.len());
                let text = &rest[..len];
                match serde_json::from_str::<serde_json::Number>(text) {
                    Ok(n) if !text.is_empty() => {
                        self.pos += len;
                        Ok(Arg::Literal(normalize_number(Value::Number(n))))
                    }
                    _ => Err(format!("invalid argument '{rest}' in '{}'", self.src)),
                }
            }
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1; // opening quote
        let mut raw = String::new();
        let mut text = String::new();
        let mut chars = self.rest().chars();
        loop {
            let Some(c) = chars.next() else {
                return Err(format!("unterminated string literal in '{}'", self.src));
            };
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    let Some(n) = chars.next() else {
                        return Err(format!("unterminated string literal in '{}'", self.src));
                    };
                    self.pos += n.len_utf8();
                    raw.push('\\');
                    raw.push(n);
                    text.push(n);
                }
                '\'' => return Ok(Arg::Str { raw, text }),
                _ => {
                    raw.push(c);
                    text.push(c);
                }
            }
        }
    }
}

/// Length of a path argument: up to the first `,` or `)` outside brackets and quotes.
fn path_extent(s: &str) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' if depth > 0 => quote = Some(c),
            '[' | '(' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ')' if depth > 0 => depth -= 1,
            ')' | ',' if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// `-0.0` becomes `0`; other numbers are kept.
fn normalize_number(v: Value) -> Value {
    if let Value::Number(n) = &v
        && n.as_f64() == Some(0.0)
        && !n.is_i64()
        && !n.is_u64()
        && n.to_string().starts_with('-')
    {
        return Value::from(0);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Evaluates a parsed call. `expr` is the whole field text, quoted by AWS's failure messages.
pub(crate) fn evaluate(call: &Call, expr: &str, env: Env) -> Result<Value, ExprError> {
    let args = call
        .args
        .iter()
        .map(|a| eval_arg(a, expr, env))
        .collect::<Result<Vec<_>, _>>()?;
    apply(call.func, call, args)
}

fn eval_arg<'a>(arg: &Arg, expr: &str, env: Env<'a>) -> Result<Cow<'a, Value>, ExprError> {
    match arg {
        Arg::Str { text, .. } => Ok(Cow::Owned(Value::String(text.clone()))),
        Arg::Literal(v) => Ok(Cow::Owned(v.clone())),
        Arg::Call(c) => evaluate(c, expr, env).map(Cow::Owned),
        Arg::Path { source, path } => match path.select(env.input, env.context, env.variables) {
            Ok(Selected::One(v)) => Ok(Cow::Borrowed(v)),
            Ok(other) => Ok(Cow::Owned(other.into_value())),
            Err(_) => {
                let doc = match path.root {
                    path::Root::Context => env.context,
                    _ => env.input,
                };
                Err(ExprError::runtime(format!(
                    "The function '{expr}' had the following error: The JsonPath argument for the field '{source}' could not be found in the input '{}'",
                    super::to_compact(doc)
                )))
            }
        },
    }
}

fn invalid(func: Func) -> ExprError {
    ExprError::runtime(format!("Invalid arguments in {}", func.name()))
}

/// Java's `Math.round`: half up, towards positive infinity.
fn java_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

/// An integer argument: integers as they are, other numbers truncated, anything else rejected.
fn int_arg(v: &Value, func: Func) -> Result<i64, ExprError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                let f = n.as_f64().ok_or_else(|| invalid(func))?;
                if f.is_finite() && f.abs() < 9.0e15 {
                    // Truncation is exact for values in this range.
                    Ok(f.trunc() as i64)
                } else {
                    Err(invalid(func))
                }
            }
        }
        _ => Err(invalid(func)),
    }
}

fn rounded_arg(v: &Value, func: Func) -> Result<i64, ExprError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            let f = n.as_f64().ok_or_else(|| invalid(func))?;
            if f.is_finite() && f.abs() < 9.0e15 {
                Ok(java_round(f) as i64)
            } else {
                Err(invalid(func))
            }
        }
        _ => Err(invalid(func)),
    }
}

fn str_arg(v: &Value, func: Func) -> Result<&str, ExprError> {
    v.as_str().ok_or_else(|| invalid(func))
}

fn apply(func: Func, call: &Call, args: Vec<Cow<'_, Value>>) -> Result<Value, ExprError> {
    let arity = func.arity();
    if args.len() < arity.0 || args.len() > arity.1 {
        return Err(invalid(func));
    }
    match func {
        Func::Format => format(call, &args),
        Func::StringToJson => {
            let s = str_arg(&args[0], func)?;
            let t = s.trim();
            if t.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str::<Value>(t)
                .map(normalize_number)
                .map_err(|_| invalid(func))
        }
        Func::JsonToString => Ok(Value::String(super::to_compact(&args[0]))),
        Func::Array => Ok(Value::Array(
            args.into_iter().map(Cow::into_owned).collect(),
        )),
        Func::ArrayPartition => {
            let items = args[0].as_array().ok_or_else(|| invalid(func))?;
            let size = int_arg(&args[1], func)?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| invalid(func))?;
            Ok(Value::Array(
                items
                    .chunks(size)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        Func::ArrayContains => {
            let items = args[0].as_array().ok_or_else(|| invalid(func))?;
            Ok(Value::Bool(items.contains(&args[1])))
        }
        Func::ArrayRange => {
            let start = int_arg(&args[0], func)?;
            let end = int_arg(&args[1], func)?;
            let step = int_arg(&args[2], func)?;
            if step == 0 {
                return Err(invalid(func));
            }
            let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                0
            } else {
                (end.abs_diff(start) / step.unsigned_abs()).saturating_add(1)
            };
            if count > MAX_RANGE_ITEMS as u64 {
                return Err(invalid(func));
            }
            let mut out = Vec::new();
            let mut k = start;
            for _ in 0..count {
                out.push(Value::from(k));
                k = k.saturating_add(step);
            }
            Ok(Value::Array(out))
        }
        Func::ArrayGetItem => {
            let items = args[0].as_array().ok_or_else(|| invalid(func))?;
            let idx = int_arg(&args[1], func)?;
            usize::try_from(idx)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| invalid(func))
        }
        Func::ArrayLength => {
            let items = args[0].as_array().ok_or_else(|| invalid(func))?;
            Ok(Value::from(items.len()))
        }
        Func::ArrayUnique => {
            let items = args[0].as_array().ok_or_else(|| invalid(func))?;
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for v in items {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        Func::Base64Encode => {
            let s = str_arg(&args[0], func)?;
            if s.chars().count() > MAX_INPUT_CHARS {
                return Err(invalid(func));
            }
            Ok(Value::String(BASE64.encode(s.as_bytes())))
        }
        Func::Base64Decode => {
            let s = str_arg(&args[0], func)?;
            if s.chars().count() > MAX_INPUT_CHARS {
                return Err(invalid(func));
            }
            let bytes = BASE64.decode(s.as_bytes()).map_err(|_| invalid(func))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| invalid(func))
        }
        Func::Hash => {
            let data = str_arg(&args[0], func)?;
            let algorithm = str_arg(&args[1], func)?;
            if data.chars().count() > MAX_INPUT_CHARS {
                return Err(invalid(func));
            }
            hash(data, algorithm)
                .map(Value::String)
                .ok_or_else(|| invalid(func))
        }
        Func::JsonMerge => {
            let (Value::Object(a), Value::Object(b)) = (args[0].as_ref(), args[1].as_ref()) else {
                return Err(invalid(func));
            };
            if args[2].as_ref() != &Value::Bool(false) {
                return Err(invalid(func));
            }
            let mut merged: Map<String, Value> = a.clone();
            for (k, v) in b {
                merged.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(merged))
        }
        Func::MathRandom => {
            let start = int_arg(&args[0], func)?;
            let end = int_arg(&args[1], func)?;
            if start >= end {
                return Err(invalid(func));
            }
            let value = match args.get(2) {
                Some(seed) => {
                    let seed = int_arg(seed, func)?;
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed as u64);
                    rng.random_range(start..end)
                }
                None => rand::rng().random_range(start..end),
            };
            Ok(Value::from(value))
        }
        Func::MathAdd => {
            let a = rounded_arg(&args[0], func)?;
            let b = rounded_arg(&args[1], func)?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| invalid(func))
        }
        Func::StringSplit => {
            let s = str_arg(&args[0], func)?;
            let delims = str_arg(&args[1], func)?;
            let parts = s
                .split(|c: char| delims.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        Func::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
    }
}

fn hash(data: &str, algorithm: &str) -> Option<String> {
    use md5::Digest as _;
    let bytes = data.as_bytes();
    Some(match algorithm {
        "MD5" => hex::encode(md5::Md5::digest(bytes)),
        "SHA-1" => hex::encode(sha1::Sha1::digest(bytes)),
        "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
        _ => return None,
    })
}

/// A piece of a States.Format template.
enum Piece<'t> {
    Text(Cow<'t, str>),
    Slot,
}

/// Splits a template into text and `{}` slots; `\{`, `\}`, `\'` and `\\` are literal characters.
fn template_pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => text.push(n),
                None => text.push('\\'),
            },
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push(Piece::Text(Cow::Owned(std::mem::take(&mut text))));
                out.push(Piece::Slot);
            }
            _ => text.push(c),
        }
    }
    out.push(Piece::Text(Cow::Owned(text)));
    out
}

fn format(call: &Call, args: &[Cow<'_, Value>]) -> Result<Value, ExprError> {
    let func = Func::Format;
    let template: Cow<'_, str> = match call.args.first() {
        Some(Arg::Str { raw, .. }) => Cow::Borrowed(raw.as_str()),
        _ => Cow::Borrowed(str_arg(&args[0], func)?),
    };
    let pieces = template_pieces(&template);
    let slots = pieces.iter().filter(|p| matches!(p, Piece::Slot)).count();
    let values = &args[1..];
    if slots != values.len() {
        return Err(invalid(func));
    }
    let mut out = String::new();
    let mut next = values.iter();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Slot => match next.next().map(AsRef::as_ref) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v) => out.push_str(&super::to_compact(v)),
                None => return Err(invalid(func)),
            },
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_with(expr: &str, input: Value, vars: Map<String, Value>) -> Result<Value, ExprError> {
        let ctx = json!({"Execution": {"Input": input.clone()}});
        let env = Env {
            input: &input,
            context: &ctx,
            variables: &vars,
        };
        let call = parse(expr).map_err(ExprError::runtime)?;
        evaluate(&call, expr, env)
    }

    fn run(expr: &str, input: Value) -> Result<Value, ExprError> {
        run_with(expr, input, Map::new())
    }

    fn invalid_args(name: &str) -> Result<Value, ExprError> {
        Err(ExprError::runtime(format!("Invalid arguments in {name}")))
    }

    #[test]
    fn array_collects_arguments_of_any_type() {
        let input = json!({"fst": {"Arg1": 1, "Arg2": []}, "snd": null});
        assert_eq!(
            run("States.Array($.fst, $.snd, 'x', 1, 1.5, true)", input),
            Ok(json!([{"Arg1": 1, "Arg2": []}, null, "x", 1, 1.5, true]))
        );
        assert_eq!(run("States.Array()", json!({})), Ok(json!([])));
    }

    #[test]
    fn array_partition_splits_into_chunks_with_a_short_last_chunk() {
        assert_eq!(
            run("States.ArrayPartition($.a, 2)", json!({"a": [0, 1, 2]})),
            Ok(json!([[0, 1], [2]]))
        );
        assert_eq!(
            run("States.ArrayPartition($.a, 5)", json!({"a": [0, 1]})),
            Ok(json!([[0, 1]]))
        );
        assert_eq!(
            run("States.ArrayPartition($.a, 1)", json!({"a": []})),
            Ok(json!([]))
        );
        assert_eq!(
            run(
                "States.ArrayPartition($.a, 2.6)",
                json!({"a": [1, 2, 3, 4, 5]})
            ),
            Ok(json!([[1, 2], [3, 4], [5]]))
        );
    }

    #[test]
    fn array_partition_rejects_zero_chunk_size() {
        let input = json!({"a": [1, 2, 3]});
        assert_eq!(
            run("States.ArrayPartition($.a, 0)", input.clone()),
            invalid_args("States.ArrayPartition")
        );
        assert_eq!(
            run("States.ArrayPartition($.a, 0.49)", input.clone()),
            invalid_args("States.ArrayPartition")
        );
        assert_eq!(
            run("States.ArrayPartition($.a, -1)", input.clone()),
            invalid_args("States.ArrayPartition")
        );
        assert_eq!(
            run("States.ArrayPartition($.a, '2')", input),
            invalid_args("States.ArrayPartition")
        );
        assert_eq!(
            run("States.ArrayPartition('x', 2)", json!({})),
            invalid_args("States.ArrayPartition")
        );
    }

    #[test]
    fn array_contains_compares_whole_values() {
        assert_eq!(
            run(
                "States.ArrayContains($.a, $.v)",
                json!({"a": [true, false], "v": false})
            ),
            Ok(json!(true))
        );
        assert_eq!(
            run(
                "States.ArrayContains($.a, $.v)",
                json!({"a": [[1, 2, 3], 2], "v": null})
            ),
            Ok(json!(false))
        );
        assert_eq!(
            run(
                "States.ArrayContains($.a, $.v)",
                json!({"a": [{"1": 2, "2": []}], "v": []})
            ),
            Ok(json!(false))
        );
        assert_eq!(
            run(
                "States.ArrayContains($.a, $.v)",
                json!({"a": [{"k": [1]}], "v": {"k": [1]}})
            ),
            Ok(json!(true))
        );
    }

    #[test]
    fn array_range_includes_the_end_when_the_step_lands_on_it() {
        assert_eq!(
            run("States.ArrayRange(0, 9, 3)", json!({})),
            Ok(json!([0, 3, 6, 9]))
        );
        assert_eq!(
            run("States.ArrayRange(0, 10, 3)", json!({})),
            Ok(json!([0, 3, 6, 9]))
        );
        assert_eq!(run("States.ArrayRange(1, 9, 9)", json!({})), Ok(json!([1])));
        assert_eq!(
            run("States.ArrayRange(1, 9, 2)", json!({})),
            Ok(json!([1, 3, 5, 7, 9]))
        );
        assert_eq!(
            run("States.ArrayRange(5, 1, -2)", json!({})),
            Ok(json!([5, 3, 1]))
        );
    }

    #[test]
    fn array_range_rejects_zero_step_and_more_than_1000_items() {
        assert_eq!(
            run("States.ArrayRange(0, 9, 0)", json!({})),
            invalid_args("States.ArrayRange")
        );
        assert_eq!(
            run("States.ArrayRange(0, 1000, 1)", json!({})),
            invalid_args("States.ArrayRange")
        );
        assert_eq!(
            run("States.ArrayRange(1, 1000, 1)", json!({})).map(|v| v.as_array().map(Vec::len)),
            Ok(Some(1000))
        );
        assert_eq!(
            run("States.ArrayRange('a', 5, 1)", json!({})),
            invalid_args("States.ArrayRange")
        );
    }

    #[test]
    fn array_get_item_returns_the_indexed_element_or_fails_out_of_range() {
        let input = json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9], "i": 5});
        assert_eq!(
            run("States.ArrayGetItem($.a, $.i)", input.clone()),
            Ok(json!(6))
        );
        assert_eq!(
            run("States.ArrayGetItem($.a, 9)", input.clone()),
            invalid_args("States.ArrayGetItem")
        );
        assert_eq!(
            run("States.ArrayGetItem($.a, -1)", input),
            invalid_args("States.ArrayGetItem")
        );
    }

    #[test]
    fn array_length_and_unique() {
        let input = json!({"a": [null, null, true, true, 1, 1, 1.1, 0, "x", "x", [], [], {"a": 1}, {"a": 1}, {"a": 2}]});
        assert_eq!(run("States.ArrayLength($.a)", input.clone()), Ok(json!(15)));
        assert_eq!(
            run("States.ArrayUnique($.a)", input),
            Ok(json!([null, true, 1, 1.1, 0, "x", [], {"a": 1}, {"a": 2}]))
        );
        assert_eq!(
            run("States.ArrayLength($.a)", json!({"a": "str"})),
            invalid_args("States.ArrayLength")
        );
    }

    #[test]
    fn base64_round_trips_text() {
        assert_eq!(
            run("States.Base64Encode($.s)", json!({"s": "Data to encode"})),
            Ok(json!("RGF0YSB0byBlbmNvZGU="))
        );
        assert_eq!(
            run("States.Base64Encode($.s)", json!({"s": ""})),
            Ok(json!(""))
        );
        assert_eq!(
            run(
                "States.Base64Decode($.s)",
                json!({"s": "RGF0YSB0byBlbmNvZGU="})
            ),
            Ok(json!("Data to encode"))
        );
        assert_eq!(
            run("States.Base64Decode('***')", json!({})),
            invalid_args("States.Base64Decode")
        );
        assert_eq!(
            run("States.Base64Encode(1)", json!({})),
            invalid_args("States.Base64Encode")
        );
    }

    #[test]
    fn hash_supports_every_documented_algorithm() {
        let h = |alg: &str| run(&format!("States.Hash('input data', '{alg}')"), json!({}));
        assert_eq!(h("MD5"), Ok(json!("812f45842bc6d66ee14572ce20db8e86")));
        assert_eq!(
            h("SHA-1"),
            Ok(json!("aaff4a450a104cd177d28d18d74485e8cae074b7"))
        );
        assert_eq!(
            h("SHA-384"),
            Ok(json!(
                "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"
            ))
        );
        assert_eq!(
            h("SHA-512"),
            Ok(json!(
                "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"
            ))
        );
        assert_eq!(h("SHA-256").map(|v| v.as_str().map(str::len)), Ok(Some(64)));
        assert_eq!(h("CRC32"), invalid_args("States.Hash"));
    }

    #[test]
    fn string_to_json_parses_and_treats_blank_as_null() {
        let s = |text: &str| run("States.StringToJson($.s)", json!({ "s": text }));
        assert_eq!(s(" "), Ok(Value::Null));
        assert_eq!(s("null"), Ok(Value::Null));
        assert_eq!(s("-0"), Ok(json!(0)));
        assert_eq!(s("1.1"), Ok(json!(1.1)));
        assert_eq!(s("\"HelloWorld\""), Ok(json!("HelloWorld")));
        assert_eq!(
            s("{\"Arg1\": 1, \"Arg2\": []}"),
            Ok(json!({"Arg1": 1, "Arg2": []}))
        );
        assert_eq!(s("{bad"), invalid_args("States.StringToJson"));
    }

    #[test]
    fn json_to_string_serialises_compactly() {
        assert_eq!(
            run(
                "States.JsonToString($.v)",
                json!({"v": [1, 2, "HelloWorld"]})
            ),
            Ok(json!("[1,2,\"HelloWorld\"]"))
        );
        assert_eq!(
            run("States.JsonToString($.v)", json!({"v": null})),
            Ok(json!("null"))
        );
        assert_eq!(
            run("States.JsonToString($.v)", json!({"v": 1.1})),
            Ok(json!("1.1"))
        );
    }

    #[test]
    fn json_merge_is_shallow_and_requires_false() {
        let input = json!({"a": {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}, "b": {"a": {"a3": 1, "a4": 2}, "c": 3, "d": 4}});
        assert_eq!(
            run("States.JsonMerge($.a, $.b, false)", input.clone()),
            Ok(json!({"a": {"a3": 1, "a4": 2}, "b": 2, "d": 4, "c": 3}))
        );
        assert_eq!(
            run("States.JsonMerge($.a, $.b, true)", input),
            invalid_args("States.JsonMerge")
        );
    }

    #[test]
    fn math_add_rounds_half_up_like_java() {
        let add = |a: f64, b: f64| run("States.MathAdd($.a, $.b)", json!({"a": a, "b": b}));
        assert_eq!(add(1.5, 1.51), Ok(json!(4)));
        assert_eq!(add(-1.49, -1.5), Ok(json!(-2)));
        assert_eq!(add(-1.5, -1.51), Ok(json!(-3)));
        assert_eq!(add(-0.5, 0.0), Ok(json!(0)));
        assert_eq!(add(-2.5, 0.0), Ok(json!(-2)));
        assert_eq!(run("States.MathAdd(1, -3)", json!({})), Ok(json!(-2)));
        assert_eq!(
            run("States.MathAdd(1, 'x')", json!({})),
            invalid_args("States.MathAdd")
        );
    }

    #[test]
    fn math_random_stays_in_range_and_is_deterministic_with_a_seed() {
        for _ in 0..50 {
            let v = run("States.MathRandom(1, 3)", json!({}))
                .unwrap()
                .as_i64()
                .unwrap();
            assert!((1..3).contains(&v));
        }
        let a = run("States.MathRandom(1, 1000, 42)", json!({}));
        assert_eq!(a, run("States.MathRandom(1, 1000, 42)", json!({})));
        assert_eq!(
            run("States.MathRandom(1, 1)", json!({})),
            invalid_args("States.MathRandom")
        );
        assert_eq!(
            run("States.MathRandom(1.4, 1.6)", json!({})),
            invalid_args("States.MathRandom")
        );
        assert_eq!(
            run("States.MathRandom(1, 10, 'seed')", json!({})),
            invalid_args("States.MathRandom")
        );
    }

    #[test]
    fn string_split_splits_on_any_delimiter_character_and_drops_empties() {
        let split = |s: &str, d: &str| run("States.StringSplit($.s, $.d)", json!({"s": s, "d": d}));
        assert_eq!(split(", , ,", ","), Ok(json!([" ", " "])));
        assert_eq!(split(",,,,", ","), Ok(json!([])));
        assert_eq!(split("1,2,3", ","), Ok(json!(["1", "2", "3"])));
        assert_eq!(
            split("split on T and \nnew line", "T\n"),
            Ok(json!(["split on ", " and ", "new line"]))
        );
    }

    #[test]
    fn uuid_is_a_version_4_uuid() {
        let v = run("States.UUID()", json!({})).unwrap();
        let u = uuid::Uuid::parse_str(v.as_str().unwrap()).unwrap();
        assert_eq!(u.get_version_num(), 4);
    }

    #[test]
    fn format_replaces_placeholders_in_order() {
        let input = json!({"fst": "a", "snd": 1.1, "t": null, "o": {"k": [1]}});
        assert_eq!(
            run(
                "States.Format('fst={} and snd={}.', $.fst, $.snd)",
                input.clone()
            ),
            Ok(json!("fst=a and snd=1.1."))
        );
        assert_eq!(
            run("States.Format('{} {}', $.t, $.o)", input),
            Ok(json!("null {\"k\":[1]}"))
        );
    }

    #[test]
    fn format_honours_escapes_in_the_template() {
        assert_eq!(
            run(r"States.Format('\{\} \'{}\' \\ done', 'x')", json!({})),
            Ok(json!(r"{} 'x' \ done"))
        );
    }

    #[test]
    fn format_reads_its_template_from_a_variable() {
        let mut vars = Map::new();
        vars.insert("T".into(), json!("It's {}!"));
        assert_eq!(
            run_with("States.Format($T, $.v)", json!({"v": "Pikachu"}), vars),
            Ok(json!("It's Pikachu!"))
        );
    }

    #[test]
    fn format_rejects_a_placeholder_count_mismatch() {
        assert_eq!(
            run("States.Format('{} {}', 'a')", json!({})),
            invalid_args("States.Format")
        );
        assert_eq!(
            run("States.Format('{}', 'a', 'b')", json!({})),
            invalid_args("States.Format")
        );
    }

    #[test]
    fn nested_calls_and_context_paths_evaluate_inside_out() {
        let input = json!({"arn": "a-b-c"});
        assert_eq!(
            run(
                "States.ArrayGetItem(States.StringSplit($$.Execution.Input.arn, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($.arn, '-')), -1))",
                input
            ),
            Ok(json!("c"))
        );
    }

    #[test]
    fn missing_path_argument_names_the_function_and_the_input() {
        let expr = "States.Array($.missing)";
        assert_eq!(
            run(expr, json!({"a": 1})),
            Err(ExprError::runtime(
                "The function 'States.Array($.missing)' had the following error: The JsonPath argument for the field '$.missing' could not be found in the input '{\"a\":1}'"
                    .to_string()
            ))
        );
    }

    #[test]
    fn parser_rejects_malformed_calls() {
        for bad in [
            "States.Nope(1)",
            "States.Format('a'",
            "States.Array(1,)",
            "States.Format()",
            "States.UUID(1)",
            "States.MathAdd(1)",
            "States.Array('unterminated)",
            "States.Array(1) x",
            "States.Array(abc)",
            "States.Array($.a b)",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn parser_limits_nesting_to_ten_calls() {
        let mut nine = String::from("1");
        for _ in 0..10 {
            nine = format!("States.Array({nine})");
        }
        assert!(parse(&nine).is_ok());
        assert!(parse(&format!("States.Array({nine})")).is_err());
    }

    #[test]
    fn hostile_nesting_is_rejected_without_overflowing() {
        let deep = format!(
            "{}1{}",
            "States.Array(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(parse(&deep).unwrap_err().contains("more than 10 nested"));
    }

    #[test]
    fn path_arguments_may_contain_commas_and_parentheses_inside_brackets() {
        let input = json!({"a,b": "x", "l": [{"v": 1}, {"v": 2}]});
        assert_eq!(
            run("States.Array($['a,b'], $.l[?(@.v == 2)].v)", input),
            Ok(json!(["x", [2]]))
        );
    }
}
