//! JSONPath as Step Functions evaluates it (Jayway semantics): parsing to an AST once, then
//! evaluating against borrowed documents without cloning them.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Where a path starts reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Root {
    /// `$`: the state's effective input.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// `.name` or `['name']`.
    Child(String),
    /// `['a','b']`.
    Children(Vec<String>),
    /// `[3]`, `[-1]`.
    Index(i64),
    /// `[0,2]`.
    Indexes(Vec<i64>),
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `.*` or `[*]`.
    Wildcard,
    /// `..x`: the inner segment applied at every level of the tree.
    Descendant(Box<Segment>),
    /// `[?(...)]`.
    Filter(Box<Filter>),
}

impl Segment {
    fn is_definite(&self) -> bool {
        matches!(self, Segment::Child(_) | Segment::Index(_))
    }

    /// Jayway's normalised rendering of the segment (`['a']`, `[0]`, `[*]` ...).
    fn render(&self, out: &mut String) {
        match self {
            Segment::Child(name) => {
                let _ = write!(out, "['{name}']");
            }
            Segment::Children(names) => {
                out.push('[');
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "'{name}'");
                }
                out.push(']');
            }
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::Indexes(list) => {
                out.push('[');
                for (i, idx) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{idx}");
                }
                out.push(']');
            }
            Segment::Slice(a, b, c) => {
                out.push('[');
                if let Some(a) = a {
                    let _ = write!(out, "{a}");
                }
                out.push(':');
                if let Some(b) = b {
                    let _ = write!(out, "{b}");
                }
                if let Some(c) = c {
                    let _ = write!(out, ":{c}");
                }
                out.push(']');
            }
            Segment::Wildcard => out.push_str("[*]"),
            Segment::Descendant(inner) => {
                out.push_str("..");
                inner.render(out);
            }
            Segment::Filter(_) => out.push_str("[?]"),
        }
    }
}

/// A filter expression inside `[?( )]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `@.x` alone: the property exists.
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Nin,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// `@...`: relative to the current item.
    Current(Vec<Segment>),
    /// `$...`: relative to the document root.
    Root(Vec<Segment>),
    Literal(Value),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath {
    pub root: Root,
    pub segments: Vec<Segment>,
    /// A trailing Jayway function such as `.length()`, applied to what the segments select.
    pub function: Option<PathFunction>,
}

/// The Jayway path functions supported at the end of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathFunction {
    /// `length()` / `size()`: elements of an array, keys of an object, characters of a string.
    Length,
}

impl PathFunction {
    fn apply(self, v: &Value) -> Option<Value> {
        match self {
            PathFunction::Length => match v {
                Value::Array(items) => Some(Value::from(items.len())),
                Value::Object(map) => Some(Value::from(map.len())),
                Value::String(s) => Some(Value::from(s.chars().count())),
                _ => None,
            },
        }
    }
}

/// Why a definite path selected nothing (Jayway's PathNotFoundException texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// A leaf, or an out-of-range index, selected nothing: "No results for path: $['a']['b']".
    NoResults(String),
    /// An intermediate property is missing: "Missing property in path $['a']".
    MissingProperty(String),
    /// The variable is not defined.
    UndefinedVariable(String),
}

impl Miss {
    pub(crate) fn detail(&self) -> String {
        match self {
            Miss::NoResults(p) => format!("No results for path: {p}"),
            Miss::MissingProperty(p) => format!("Missing property in path {p}"),
            Miss::UndefinedVariable(name) => format!("The variable '{name}' is not defined"),
        }
    }
}

/// What a path evaluation produced, borrowing from the documents.
pub(crate) enum Selected<'a> {
    One(&'a Value),
    Many(Vec<&'a Value>),
    /// A value computed by a path function.
    Computed(Value),
}

impl Selected<'_> {
    pub(crate) fn into_value(self) -> Value {
        match self {
            Selected::One(v) => v.clone(),
            Selected::Many(list) => Value::Array(list.into_iter().cloned().collect()),
            Selected::Computed(v) => v,
        }
    }
}

impl JsonPath {
    /// True when the path selects at most one value (no wildcard, slice, filter, descent).
    pub(crate) fn is_definite(&self) -> bool {
        self.segments.iter().all(Segment::is_definite)
    }

    fn normalized(segments: &[Segment]) -> String {
        let mut out = String::from("$");
        for s in segments {
            s.render(&mut out);
        }
        out
    }

    /// Evaluates the path. Definite paths that select nothing report a [`Miss`]; indefinite
    /// paths return every match (possibly none).
    pub(crate) fn select<'a>(
        &self,
        input: &'a Value,
        context: &'a Value,
        variables: &'a Map<String, Value>,
    ) -> Result<Selected<'a>, Miss> {
        let start = match &self.root {
            Root::Input => input,
            Root::Context => context,
            Root::Variable(name) => match variables.get(name) {
                Some(v) => v,
                None => return Err(Miss::UndefinedVariable(name.clone())),
            },
        };
        let selected = if self.is_definite() {
            select_definite(start, &self.segments).map(Selected::One)?
        } else {
            let mut out = Vec::new();
            select_many(start, start, &self.segments, &mut out);
            Selected::Many(out)
        };
        let Some(function) = self.function else {
            return Ok(selected);
        };
        let computed = match &selected {
            Selected::One(v) => function.apply(v),
            Selected::Many(list) => Some(Value::from(list.len())),
            Selected::Computed(v) => function.apply(v),
        };
        computed
            .map(Selected::Computed)
            .ok_or_else(|| Miss::NoResults(JsonPath::normalized(&self.segments)))
    }
}

fn select_definite<'a>(start: &'a Value, segments: &[Segment]) -> Result<&'a Value, Miss> {
    let mut cur = start;
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let next = match seg {
            Segment::Child(name) => match cur {
                Value::Object(map) => map.get(name),
                _ => None,
            },
            Segment::Index(idx) => match cur {
                Value::Array(items) => index_of(items.len(), *idx).and_then(|k| items.get(k)),
                _ => None,
            },
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => {
                let is_property = matches!(seg, Segment::Child(_));
                return Err(if i == last || !is_property {
                    Miss::NoResults(JsonPath::normalized(segments))
                } else {
                    Miss::MissingProperty(JsonPath::normalized(&segments[..=i]))
                });
            }
        }
    }
    Ok(cur)
}

fn index_of(len: usize, idx: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let k = if idx < 0 { len + idx } else { idx };
    if (0..len).contains(&k) {
        usize::try_from(k).ok()
    } else {
        None
    }
}

fn select_many<'a>(
    root: &'a Value,
    cur: &'a Value,
    segments: &[Segment],
    out: &mut Vec<&'a Value>,
) {
    let Some((seg, rest)) = segments.split_first() else {
        out.push(cur);
        return;
    };
    let mut step = Vec::new();
    apply_segment(root, cur, seg, &mut step);
    for v in step {
        select_many(root, v, rest, out);
    }
}

fn apply_segment<'a>(root: &'a Value, cur: &'a Value, seg: &Segment, out: &mut Vec<&'a Value>) {
    match seg {
        Segment::Child(name) => {
            if let Some(v) = cur.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Segment::Children(names) => {
            if let Value::Object(map) = cur {
                out.extend(names.iter().filter_map(|n| map.get(n)));
            }
        }
        Segment::Index(idx) => {
            if let Value::Array(items) = cur
                && let Some(v) = index_of(items.len(), *idx).and_then(|k| items.get(k))
            {
                out.push(v);
            }
        }
        Segment::Indexes(list) => {
            if let Value::Array(items) = cur {
                for idx in list {
                    if let Some(v) = index_of(items.len(), *idx).and_then(|k| items.get(k)) {
                        out.push(v);
                    }
                }
            }
        }
        Segment::Slice(a, b, c) => {
            if let Value::Array(items) = cur {
                for k in slice_indices(items.len(), *a, *b, *c) {
                    if let Some(v) = items.get(k) {
                        out.push(v);
                    }
                }
            }
        }
        Segment::Wildcard => match cur {
            Value::Object(map) => out.extend(map.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Segment::Descendant(inner) => descend(root, cur, inner, out),
        Segment::Filter(filter) => match cur {
            Value::Array(items) => {
                out.extend(
                    items
                        .iter()
                        .filter(|item| filter_matches(root, item, filter)),
                );
            }
            Value::Object(_) if filter_matches(root, cur, filter) => out.push(cur),
            _ => {}
        },
    }
}

fn descend<'a>(root: &'a Value, cur: &'a Value, inner: &Segment, out: &mut Vec<&'a Value>) {
    apply_segment(root, cur, inner, out);
    match cur {
        Value::Object(map) => {
            for v in map.values() {
                if v.is_object() || v.is_array() {
                    descend(root, v, inner, out);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                if v.is_object() || v.is_array() {
                    descend(root, v, inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Python-style slice indices, clamped to the array.
fn slice_indices(
    len: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> Vec<usize> {
    let Ok(n) = i64::try_from(len) else {
        return Vec::new();
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Vec::new();
    }
    let norm = |v: i64| if v < 0 { (n + v).max(-1) } else { v.min(n) };
    let mut out = Vec::new();
    if step > 0 {
        let s = start.map_or(0, norm).max(0);
        let e = end.map_or(n, norm).max(0);
        let mut k = s;
        while k < e {
            out.push(k);
            k = k.saturating_add(step);
        }
    } else {
        let s = start.map_or(n - 1, |v| norm(v).min(n - 1));
        let e = end.map_or(-1, norm);
        let mut k = s;
        while k > e && k >= 0 {
            out.push(k);
            k = k.saturating_add(step);
        }
    }
    out.into_iter()
        .filter_map(|k| usize::try_from(k).ok())
        .collect()
}

fn operand_value<'a>(root: &'a Value, item: &'a Value, op: &Operand) -> Option<OperandValue<'a>> {
    match op {
        Operand::Literal(v) => Some(OperandValue::Literal(v.clone())),
        Operand::Current(segs) => resolve_relative(item, segs).map(OperandValue::Ref),
        Operand::Root(segs) => resolve_relative(root, segs).map(OperandValue::Ref),
    }
}

enum OperandValue<'a> {
    Ref(&'a Value),
    Literal(Value),
}

impl OperandValue<'_> {
    fn get(&self) -> &Value {
        match self {
            OperandValue::Ref(v) => v,
            OperandValue::Literal(v) => v,
        }
    }
}

fn resolve_relative<'a>(start: &'a Value, segs: &[Segment]) -> Option<&'a Value> {
    if segs.iter().all(Segment::is_definite) {
        select_definite(start, segs).ok()
    } else {
        None
    }
}

fn filter_matches(root: &Value, item: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::Or(a, b) => filter_matches(root, item, a) || filter_matches(root, item, b),
        Filter::And(a, b) => filter_matches(root, item, a) && filter_matches(root, item, b),
        Filter::Not(inner) => !filter_matches(root, item, inner),
        Filter::Exists(op) => match op {
            Operand::Literal(v) => !matches!(v, Value::Null | Value::Bool(false)),
            _ => operand_value(root, item, op).is_some(),
        },
        Filter::Compare(l, op, r) => {
            let lv = operand_value(root, item, l);
            let rv = operand_value(root, item, r);
            match (lv, rv) {
                (Some(a), Some(b)) => compare_values(a.get(), *op, b.get()),
                _ => *op == CmpOp::Ne || *op == CmpOp::Nin,
            }
        }
    }
}

fn compare_values(a: &Value, op: CmpOp, b: &Value) -> bool {
    match op {
        CmpOp::Eq => json_equal(a, b),
        CmpOp::Ne => !json_equal(a, b),
        CmpOp::In => b
            .as_array()
            .is_some_and(|list| list.iter().any(|x| json_equal(a, x))),
        CmpOp::Nin => b
            .as_array()
            .is_some_and(|list| !list.iter().any(|x| json_equal(a, x))),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let ord = match (a, b) {
                (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => None,
            };
            match ord {
                Some(o) => match op {
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
                None => false,
            }
        }
    }
}

/// Numeric comparison: exact for integers, by value otherwise.
pub(crate) fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// JSON equality with numbers compared by value (1 == 1.0), as filters compare them.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses a path starting with `$`, `$$` or `$name`.
pub(crate) fn parse(path: &str) -> Result<JsonPath, String> {
    let mut p = Parser {
        s: path.as_bytes(),
        src: path,
        pos: 0,
        depth: 0,
    };
    let root = p.root()?;
    let mut segments = p.segments(false)?;
    let mut function = None;
    if let Some(Segment::Child(name)) = segments.last() {
        let f = match name.as_str() {
            "length()" | "size()" => Some(PathFunction::Length),
            _ if name.ends_with(')') => {
                return Err(format!("unsupported function '{name}' in path '{path}'"));
            }
            _ => None,
        };
        if f.is_some() {
            segments.pop();
            function = f;
        }
    }
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected '{}' at position {} in path '{path}'",
            p.rest(),
            p.pos
        ));
    }
    Ok(JsonPath {
        root,
        segments,
        function,
    })
}

struct Parser<'s> {
    s: &'s [u8],
    src: &'s str,
    pos: usize,
    /// Current nesting of filter terms, bounded so hostile input cannot exhaust the stack.
    depth: usize,
}

/// Deepest nesting of `!`, parentheses and nested filters accepted in one path.
const MAX_FILTER_DEPTH: usize = 32;

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos + k).copied()
    }

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ' || c == b'\t') {
            self.pos += 1;
        }
    }

    fn root(&mut self) -> Result<Root, String> {
        if self.peek() != Some(b'$') {
            return Err(format!("path '{}' must start with '$'", self.src));
        }
        self.pos += 1;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            return Ok(Root::Context);
        }
        if self.peek().is_some_and(is_ident_start) {
            let start = self.pos;
            while self.peek().is_some_and(is_ident_char) {
                self.pos += 1;
            }
            let name = self.src.get(start..self.pos).unwrap_or("").to_string();
            return Ok(Root::Variable(name));
        }
        Ok(Root::Input)
    }

    /// Parses segments until the end, or (inside a filter) until a character that cannot
    /// continue a path.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'.') => {
                    if self.peek_at(1) == Some(b'.') {
                        self.pos += 2;
                        let inner = if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            self.dot_name(in_filter)?
                        };
                        out.push(Segment::Descendant(Box::new(inner)));
                    } else {
                        self.pos += 1;
                        if in_filter && self.rest().starts_with("length()") {
                            return Err("functions are not supported in filter paths".into());
                        }
                        out.push(self.dot_name(in_filter)?);
                    }
                }
                Some(b'[') => out.push(self.bracket()?),
                Some(_) if in_filter => break,
                Some(_) => {
                    return Err(format!(
                        "unexpected '{}' at position {} in path '{}'",
                        self.rest(),
                        self.pos,
                        self.src
                    ));
                }
            }
        }
        Ok(out)
    }

    fn dot_name(&mut self, in_filter: bool) -> Result<Segment, String> {
        if self.peek() == Some(b'*') {
            self.pos += 1;
            return Ok(Segment::Wildcard);
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            let stop = c == b'.'
                || c == b'['
                || (in_filter
                    && matches!(
                        c,
                        b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b','
                    ));
            if stop {
                break;
            }
            self.pos += 1;
        }
        let name = self.src.get(start..self.pos).unwrap_or("");
        if name.is_empty() {
            return Err(format!("empty property name in path '{}'", self.src));
        }
        if name.contains(' ') && !in_filter {
            return Err(format!(
                "invalid property name '{name}' in path '{}'",
                self.src
            ));
        }
        Ok(Segment::Child(name.to_string()))
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        // at '['
        self.pos += 1;
        self.skip_ws();
        let seg = match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some(b'?') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() != Some(b'(') {
                    return Err(format!("expected '(' after '?' in path '{}'", self.src));
                }
                self.pos += 1;
                let f = self.filter_or()?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(format!("unterminated filter in path '{}'", self.src));
                }
                self.pos += 1;
                Segment::Filter(Box::new(f))
            }
            Some(b'(') => {
                // `[(@.length-N)]`: the N-th element from the end.
                let rest = self.rest();
                let close = rest
                    .find(')')
                    .ok_or_else(|| format!("unterminated script in path '{}'", self.src))?;
                let body: String = rest[1..close]
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let n = body
                    .strip_prefix("@.length-")
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!(
                            "unsupported script expression '({body})' in path '{}'",
                            self.src
                        )
                    })?;
                self.pos += close + 1;
                Segment::Index(-n)
            }
            Some(b'\'') | Some(b'"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                        self.skip_ws();
                        names.push(self.quoted()?);
                    } else {
                        break;
                    }
                }
                if names.len() == 1 {
                    Segment::Child(names.remove(0))
                } else {
                    Segment::Children(names)
                }
            }
            _ => self.index_or_slice()?,
        };
        self.skip_ws();
        if self.peek() != Some(b']') {
            return Err(format!(
                "expected ']' at position {} in path '{}'",
                self.pos, self.src
            ));
        }
        self.pos += 1;
        Ok(seg)
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self
            .peek()
            .ok_or_else(|| format!("unterminated quote in path '{}'", self.src))?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let mut chars = rest.chars();
            let Some(c) = chars.next() else {
                return Err(format!("unterminated quote in path '{}'", self.src));
            };
            self.pos += c.len_utf8();
            if c == '\\' {
                let Some(n) = chars.next() else {
                    return Err(format!("unterminated quote in path '{}'", self.src));
                };
                self.pos += n.len_utf8();
                // Only the delimiter is escaped; any other backslash is part of the name
                // (AWS reads `$['a\"b']` as the key `a\"b`).
                if n as u32 != u32::from(quote) {
                    out.push('\\');
                }
                out.push(n);
            } else if c as u32 == u32::from(quote) {
                return Ok(out);
            } else {
                out.push(c);
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if text.is_empty() {
            return Ok(None);
        }
        let v = text
            .parse::<i64>()
            .map_err(|_| format!("invalid index '{text}' in path '{}'", self.src))?;
        self.skip_ws();
        Ok(Some(v))
    }

    fn index_or_slice(&mut self) -> Result<Segment, String> {
        let first = self.int()?;
        if self.peek() == Some(b':') {
            self.pos += 1;
            let end = self.int()?;
            let step = if self.peek() == Some(b':') {
                self.pos += 1;
                self.int()?
            } else {
                None
            };
            return Ok(Segment::Slice(first, end, step));
        }
        let Some(first) = first else {
            return Err(format!(
                "invalid bracket expression at position {} in path '{}'",
                self.pos, self.src
            ));
        };
        let mut list = vec![first];
        while self.peek() == Some(b',') {
            self.pos += 1;
            match self.int()? {
                Some(v) => list.push(v),
                None => return Err(format!("invalid index list in path '{}'", self.src)),
            }
        }
        Ok(if list.len() == 1 {
            Segment::Index(first)
        } else {
            Segment::Indexes(list)
        })
    }

    fn filter_or(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.rest().starts_with("||") {
                self.pos += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<Filter, String> {
        let mut left = self.filter_unary()?;
        loop {
            self.skip_ws();
            if self.rest().starts_with("&&") {
                self.pos += 2;
                let right = self.filter_unary()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!("filter nested too deeply in path '{}'", self.src));
        }
        let result = self.filter_term();
        self.depth -= 1;
        result
    }

    fn filter_term(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if self.peek() == Some(b'!') && self.peek_at(1) != Some(b'=') {
            self.pos += 1;
            let inner = self.filter_unary()?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(b'(') {
            self.pos += 1;
            let inner = self.filter_or()?;
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(format!(
                    "unbalanced parenthesis in filter of path '{}'",
                    self.src
                ));
            }
            self.pos += 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let rest = self.rest();
        let ops: [(&str, CmpOp); 8] = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
            ("nin ", CmpOp::Nin),
            ("in ", CmpOp::In),
        ];
        for (text, op) in ops {
            if rest.starts_with(text) {
                self.pos += text.len();
                let right = self.operand()?;
                return Ok(Filter::Compare(left, op, right));
            }
        }
        Ok(Filter::Exists(left))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.pos += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some(b'$') => {
                self.pos += 1;
                Ok(Operand::Root(self.segments(true)?))
            }
            Some(b'\'') | Some(b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(b'[') => {
                // A JSON array literal for `in` / `nin`.
                let rest = self.rest();
                let mut depth = 0usize;
                let mut end = None;
                let mut in_str: Option<char> = None;
                let mut escaped = false;
                for (i, c) in rest.char_indices() {
                    if let Some(q) = in_str {
                        if escaped {
                            escaped = false;
                        } else if c == '\\' {
                            escaped = true;
                        } else if c == q {
                            in_str = None;
                        }
                        continue;
                    }
                    match c {
                        '\'' | '"' => in_str = Some(c),
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end
                    .ok_or_else(|| format!("unterminated array literal in path '{}'", self.src))?;
                let text = rest[..=end].replace('\'', "\"");
                let v: Value = serde_json::from_str(&text)
                    .map_err(|_| format!("invalid array literal in path '{}'", self.src))?;
                self.pos += end + 1;
                Ok(Operand::Literal(v))
            }
            _ => {
                let rest = self.rest();
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return Ok(Operand::Literal(v));
                    }
                }
                let len = rest
                    .find(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                    })
                    .unwrap_or(rest.len());
                let text = &rest[..len];
                let n: serde_json::Number = serde_json::from_str(text).map_err(|_| {
                    format!("invalid filter operand '{}' in path '{}'", rest, self.src)
                })?;
                self.pos += len;
                Ok(Operand::Literal(Value::Number(n)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference paths (ResultPath)
// ---------------------------------------------------------------------------------------------

/// Parses a reference path: `$`, or `$` followed by only `.name`, `['name']` and `[n]` steps.
pub(crate) fn parse_reference(path: &str) -> Result<Vec<Segment>, String> {
    let parsed = parse(path)?;
    check_reference(&parsed, path)?;
    Ok(parsed.segments)
}

/// Whether a parsed path is a reference path (see [`parse_reference`]).
pub(crate) fn check_reference(parsed: &JsonPath, path: &str) -> Result<(), String> {
    if parsed.root != Root::Input || parsed.function.is_some() {
        return Err(format!(
            "reference path '{path}' must start with '$.' or be '$'"
        ));
    }
    for seg in &parsed.segments {
        match seg {
            Segment::Child(_) => {}
            Segment::Index(i) if *i >= 0 => {}
            _ => {
                return Err(format!(
                    "reference path '{path}' may only contain property names and non-negative indexes"
                ));
            }
        }
    }
    Ok(())
}

/// Whether [`set_at`] would succeed on `doc` (it may create objects before it fails).
pub(crate) fn can_set(doc: &Value, segments: &[Segment]) -> bool {
    let Some((seg, rest)) = segments.split_first() else {
        return true;
    };
    match seg {
        Segment::Child(name) => {
            let Value::Object(map) = doc else {
                return false;
            };
            match map.get(name) {
                _ if rest.is_empty() => true,
                Some(child) => can_set(child, rest),
                // a missing member becomes an empty object
                None => can_set(&Value::Object(Map::new()), rest),
            }
        }
        Segment::Index(i) => {
            let Value::Array(items) = doc else {
                return false;
            };
            usize::try_from(*i)
                .ok()
                .and_then(|k| items.get(k))
                .is_some_and(|slot| can_set(slot, rest))
        }
        _ => false,
    }
}

/// Sets `value` at `segments` inside `doc`, creating missing objects. Fails when a step meets a
/// value that is not an object (or array for an index) or an index is out of range.
pub(crate) fn set_at(doc: &mut Value, segments: &[Segment], value: Value) -> Result<(), ()> {
    let Some((seg, rest)) = segments.split_first() else {
        *doc = value;
        return Ok(());
    };
    match seg {
        Segment::Child(name) => {
            let Value::Object(map) = doc else {
                return Err(());
            };
            if rest.is_empty() {
                map.insert(name.clone(), value);
                return Ok(());
            }
            let entry = map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            set_at(entry, rest, value)
        }
        Segment::Index(i) => {
            let Value::Array(items) = doc else {
                return Err(());
            };
            let slot = usize::try_from(*i)
                .ok()
                .and_then(|k| items.get_mut(k))
                .ok_or(())?;
            set_at(slot, rest, value)
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, input: &Value) -> Result<Value, Miss> {
        let empty = Map::new();
        parse(path)
            .unwrap()
            .select(input, &Value::Null, &empty)
            .map(Selected::into_value)
    }

    #[test]
    fn dot_and_bracket_notation_select_the_same_property() {
        let doc = json!({"a": {"b c": 1, "b": 2}});
        assert_eq!(sel("$.a.b", &doc), Ok(json!(2)));
        assert_eq!(sel("$['a']['b c']", &doc), Ok(json!(1)));
        assert_eq!(sel("$[\"a\"].b", &doc), Ok(json!(2)));
    }

    #[test]
    fn negative_index_counts_from_the_end() {
        let doc = json!({"a": [1, 2, 3]});
        assert_eq!(sel("$.a[-1]", &doc), Ok(json!(3)));
        assert_eq!(sel("$.a[(@.length-2)]", &doc), Ok(json!(2)));
    }

    #[test]
    fn slices_follow_python_rules() {
        let doc = json!({"a": [0, 1, 2, 3, 4]});
        assert_eq!(sel("$.a[1:3]", &doc), Ok(json!([1, 2])));
        assert_eq!(sel("$.a[-2:]", &doc), Ok(json!([3, 4])));
        assert_eq!(sel("$.a[:2]", &doc), Ok(json!([0, 1])));
        assert_eq!(sel("$.a[::2]", &doc), Ok(json!([0, 2, 4])));
        assert_eq!(sel("$.a[::-1]", &doc), Ok(json!([4, 3, 2, 1, 0])));
        assert_eq!(sel("$.a[10:]", &doc), Ok(json!([])));
    }

    #[test]
    fn wildcard_on_missing_input_selects_an_empty_array() {
        assert_eq!(sel("$[*]", &json!({})), Ok(json!([])));
        assert_eq!(sel("$.items[1:].itemValue", &json!({})), Ok(json!([])));
        assert_eq!(sel("$.item.items[*]", &json!({})), Ok(json!([])));
    }

    #[test]
    fn recursive_descent_visits_in_document_order() {
        let doc = json!({"a": {"x": 1, "b": {"x": 2}}, "c": [{"x": 3}]});
        assert_eq!(sel("$..x", &doc), Ok(json!([1, 2, 3])));
    }

    #[test]
    fn filters_compare_numbers_strings_and_existence() {
        let doc = json!({"users": [
            {"year": 1997, "status": 0, "name": "a", "flag": false},
            {"year": 1998, "status": 1, "name": "b"}
        ]});
        assert_eq!(
            sel("$.users[?(@.status == 0)].year", &doc),
            Ok(json!([1997]))
        );
        assert_eq!(
            sel("$.users[?(@.name == 'b')].year", &doc),
            Ok(json!([1998]))
        );
        assert_eq!(
            sel("$.users[?(@.year < 1998)].name", &doc),
            Ok(json!(["a"]))
        );
        assert_eq!(sel("$.users[?(@.flag)].name", &doc), Ok(json!(["a"])));
        assert_eq!(sel("$.users[?(!@.flag)].name", &doc), Ok(json!(["b"])));
        assert_eq!(
            sel("$.users[?(@.year >= 1997 && @.status != 0)].name", &doc),
            Ok(json!(["b"]))
        );
        assert_eq!(
            sel("$.users[?(@.status in [1, 2])].name", &doc),
            Ok(json!(["b"]))
        );
    }

    #[test]
    fn missing_leaf_reports_no_results_with_normalised_path() {
        assert_eq!(
            sel("$.a.b", &json!({"a": {}})),
            Err(Miss::NoResults("$['a']['b']".into()))
        );
        assert_eq!(
            Miss::NoResults("$['x']".into()).detail(),
            "No results for path: $['x']"
        );
    }

    #[test]
    fn missing_intermediate_reports_missing_property() {
        let e = sel("$.no.such.result.path", &json!({})).unwrap_err();
        assert_eq!(e.detail(), "Missing property in path $['no']");
    }

    #[test]
    fn out_of_range_index_reports_no_results() {
        let e = sel("$.a[5].b", &json!({"a": [1]})).unwrap_err();
        assert_eq!(e.detail(), "No results for path: $['a'][5]['b']");
    }

    #[test]
    fn quoted_names_accept_escaped_quotes() {
        // The key is `Test\""Name"`: the backslash before `"` is part of the name.
        let doc = json!({"Test\\\"\"Name\"": "Value\"\\"});
        assert_eq!(sel(r#"$['Test\""Name"']"#, &doc), Ok(json!("Value\"\\")));
        assert_eq!(sel(r"$['it\'s']", &json!({"it's": 1})), Ok(json!(1)));
    }

    #[test]
    fn roots_distinguish_input_context_and_variables() {
        assert_eq!(parse("$").unwrap().root, Root::Input);
        assert_eq!(parse("$$.Execution").unwrap().root, Root::Context);
        assert_eq!(
            parse("$answer.x").unwrap().root,
            Root::Variable("answer".into())
        );
        assert!(parse("$$").unwrap().segments.is_empty());
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for bad in ["", "a.b", "$.a[", "$.a[?(@.x == 1]", "$.a..", "$.", "$.a b"] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn deeply_nested_filters_are_rejected_without_overflowing() {
        let deep = format!("$.a[?({}@.x{})]", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        let nots = format!("$.a[?({}@.x)]", "!".repeat(100_000));
        assert!(parse(&nots).is_err());
        let ok = format!("$.a[?({}@.x{})]", "(".repeat(10), ")".repeat(10));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn length_function_counts_arrays_objects_strings_and_matches() {
        let doc = json!({"a": [1, 2, 3], "o": {"x": 1}, "s": "héllo", "n": 1});
        assert_eq!(sel("$.a.length()", &doc), Ok(json!(3)));
        assert_eq!(sel("$.o.length()", &doc), Ok(json!(1)));
        assert_eq!(sel("$.s.length()", &doc), Ok(json!(5)));
        assert_eq!(sel("$.a[?(@ > 1)].length()", &doc), Ok(json!(2)));
        assert_eq!(
            sel("$.n.length()", &doc),
            Err(Miss::NoResults("$['n']".into()))
        );
        assert!(parse("$.a.avg()").is_err());
        assert!(parse_reference("$.a.length()").is_err());
    }

    #[test]
    fn reference_paths_reject_wildcards_filters_and_roots_other_than_input() {
        assert!(parse_reference("$.a[0].b").is_ok());
        assert!(parse_reference("$.a[*]").is_err());
        assert!(parse_reference("$..a").is_err());
        assert!(parse_reference("$.a[?(@.x)]").is_err());
        assert!(parse_reference("$$.Execution").is_err());
        assert!(parse_reference("$var.x").is_err());
    }

    #[test]
    fn set_at_creates_missing_objects_and_rejects_non_objects() {
        let mut doc = json!({"a": 1});
        set_at(&mut doc, &parse_reference("$.b.c").unwrap(), json!(2)).unwrap();
        assert_eq!(doc, json!({"a": 1, "b": {"c": 2}}));
        assert!(set_at(&mut doc, &parse_reference("$.a.x").unwrap(), json!(2)).is_err());
        let mut arr = json!({"l": [1, 2]});
        set_at(&mut arr, &parse_reference("$.l[1]").unwrap(), json!(9)).unwrap();
        assert_eq!(arr, json!({"l": [1, 9]}));
        assert!(set_at(&mut arr, &parse_reference("$.l[5]").unwrap(), json!(9)).is_err());
    }
}
