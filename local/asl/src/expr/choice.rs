//! Choice rules: parsed once when the state machine loads, evaluated per execution step.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use super::path::{JsonPath, Selected, compare_numbers};
use super::{Env, ExprError};

/// A parsed Choice rule: one element of `Choices`, or a rule nested in And/Or/Not.
#[derive(Debug, Clone)]
pub struct ChoiceRule {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Test { variable: Variable, test: Test },
}

#[derive(Debug, Clone)]
struct Variable {
    source: String,
    path: Arc<JsonPath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Rel {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Rel::Eq => o == Ordering::Equal,
            Rel::Lt => o == Ordering::Less,
            Rel::Gt => o == Ordering::Greater,
            Rel::Le => o != Ordering::Greater,
            Rel::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind2 {
    String,
    Numeric,
    Timestamp,
}

#[derive(Debug, Clone)]
enum Operand {
    String(String),
    Number(serde_json::Number),
    Timestamp(jiff::Timestamp),
    Path(Variable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone)]
enum Test {
    Compare {
        kind: Kind2,
        rel: Rel,
        operand: Operand,
    },
    BooleanEquals(Result<bool, Variable>),
    StringMatches(Vec<Glob>),
    Is(TypeTest, bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Glob {
    Literal(String),
    Star,
}

/// Fields of a Choice rule that belong to the engine, not to the condition.
const ENGINE_FIELDS: [&str; 4] = ["Next", "Assign", "Comment", "Output"];

fn comparison(op: &str) -> Option<(Kind2, Rel, bool)> {
    let (kind, rest) = if let Some(r) = op.strip_prefix("String") {
        (Kind2::String, r)
    } else if let Some(r) = op.strip_prefix("Numeric") {
        (Kind2::Numeric, r)
    } else if let Some(r) = op.strip_prefix("Timestamp") {
        (Kind2::Timestamp, r)
    } else {
        return None;
    };
    let (rel_name, is_path) = match rest.strip_suffix("Path") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let rel = match rel_name {
        "Equals" => Rel::Eq,
        "LessThan" => Rel::Lt,
        "GreaterThan" => Rel::Gt,
        "LessThanEquals" => Rel::Le,
        "GreaterThanEquals" => Rel::Ge,
        _ => return None,
    };
    Some((kind, rel, is_path))
}

fn type_test(op: &str) -> Option<TypeTest> {
    Some(match op {
        "IsNull" => TypeTest::Null,
        "IsPresent" => TypeTest::Present,
        "IsNumeric" => TypeTest::Numeric,
        "IsString" => TypeTest::String,
        "IsBoolean" => TypeTest::Boolean,
        "IsTimestamp" => TypeTest::Timestamp,
        _ => return None,
    })
}

fn parse_variable(field: &str, v: &Value) -> Result<Variable, String> {
    let source = v
        .as_str()
        .ok_or_else(|| format!("The value of '{field}' must be a JSONPath string"))?;
    let path = super::cached_path(source)
        .map_err(|e| format!("The value of '{field}' is not a valid JSONPath: {e}"))?;
    Ok(Variable {
        source: source.to_string(),
        path,
    })
}

impl ChoiceRule {
    /// Parses one element of a Choice state's `Choices`, or a nested rule of And/Or/Not.
    /// `Next`, `Assign`, `Comment` and `Output` are left to the engine.
    pub fn parse(rule: &Value) -> Result<ChoiceRule, String> {
        let Value::Object(map) = rule else {
            return Err("A choice rule must be a JSON object".to_string());
        };
        let mut kind: Option<Kind> = None;
        let mut variable: Option<&Value> = None;
        let mut test: Option<(String, &Value)> = None;
        for (key, value) in map {
            let key = key.as_str();
            if ENGINE_FIELDS.contains(&key) {
                continue;
            }
            let set_kind = |k: Kind, slot: &mut Option<Kind>| -> Result<(), String> {
                if slot.is_some() {
                    return Err("A choice rule may contain only one of And, Or, Not".to_string());
                }
                *slot = Some(k);
                Ok(())
            };
            match key {
                "Variable" => variable = Some(value),
                "And" | "Or" => {
                    let Value::Array(list) = value else {
                        return Err(format!(
                            "The value of '{key}' must be a non-empty array of choice rules"
                        ));
                    };
                    if list.is_empty() {
                        return Err(format!(
                            "The value of '{key}' must be a non-empty array of choice rules"
                        ));
                    }
                    let rules = list
                        .iter()
                        .map(ChoiceRule::parse)
                        .collect::<Result<Vec<_>, _>>()?;
                    set_kind(
                        if key == "And" {
                            Kind::And(rules)
                        } else {
                            Kind::Or(rules)
                        },
                        &mut kind,
                    )?;
                }
                "Not" => {
                    let inner = ChoiceRule::parse(value)?;
                    set_kind(Kind::Not(Box::new(inner)), &mut kind)?;
                }
                _ => {
                    let known = comparison(key).is_some()
                        || type_test(key).is_some()
                        || matches!(key, "BooleanEquals" | "BooleanEqualsPath" | "StringMatches");
                    if !known {
                        return Err(format!("Unknown field '{key}' in choice rule"));
                    }
                    if test.is_some() {
                        return Err(
                            "A choice rule may contain only one comparison operator".to_string()
                        );
                    }
                    test = Some((key.to_string(), value));
                }
            }
        }
        match (kind, variable, test) {
            (Some(k), None, None) => Ok(ChoiceRule { kind: k }),
            (Some(_), _, _) => Err(
                "A choice rule with And, Or or Not may not have Variable or a comparison"
                    .to_string(),
            ),
            (None, Some(var), Some((op, value))) => {
                let variable = parse_variable("Variable", var)?;
                let test = parse_test(&op, value)?;
                Ok(ChoiceRule {
                    kind: Kind::Test { variable, test },
                })
            }
            (None, None, Some((op, _))) => {
                Err(format!("The choice rule with '{op}' is missing 'Variable'"))
            }
            (None, _, None) => {
                Err("A choice rule must contain a comparison operator, And, Or or Not".to_string())
            }
        }
    }

    /// Evaluates the rule against the environment.
    pub fn evaluate(&self, env: Env) -> Result<bool, ExprError> {
        match &self.kind {
            Kind::And(rules) => {
                for r in rules {
                    if !r.evaluate(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Kind::Or(rules) => {
                for r in rules {
                    if r.evaluate(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Kind::Not(inner) => Ok(!inner.evaluate(env)?),
            Kind::Test { variable, test } => evaluate_test(variable, test, env),
        }
    }
}

fn parse_test(op: &str, value: &Value) -> Result<Test, String> {
    if let Some(t) = type_test(op) {
        let b = value
            .as_bool()
            .ok_or_else(|| format!("The value of '{op}' must be a boolean"))?;
        return Ok(Test::Is(t, b));
    }
    match op {
        "BooleanEquals" => {
            let b = value
                .as_bool()
                .ok_or_else(|| format!("The value of '{op}' must be a boolean"))?;
            return Ok(Test::BooleanEquals(Ok(b)));
        }
        "BooleanEqualsPath" => return Ok(Test::BooleanEquals(Err(parse_variable(op, value)?))),
        "StringMatches" => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("The value of '{op}' must be a string"))?;
            return Ok(Test::StringMatches(parse_glob(s)));
        }
        _ => {}
    }
    let (kind, rel, is_path) =
        comparison(op).ok_or_else(|| format!("Unknown field '{op}' in choice rule"))?;
    let operand = if is_path {
        Operand::Path(parse_variable(op, value)?)
    } else {
        match kind {
            Kind2::String => Operand::String(
                value
                    .as_str()
                    .ok_or_else(|| format!("The value of '{op}' must be a string"))?
                    .to_string(),
            ),
            Kind2::Numeric => match value {
                Value::Number(n) => Operand::Number(n.clone()),
                _ => return Err(format!("The value of '{op}' must be a number")),
            },
            Kind2::Timestamp => {
                let ts = value.as_str().and_then(parse_timestamp).ok_or_else(|| {
                    format!("The value of '{op}' must be a valid ISO-8601 timestamp")
                })?;
                Operand::Timestamp(ts)
            }
        }
    };
    Ok(Test::Compare { kind, rel, operand })
}

/// `*` matches any run of characters; `\*` is a literal star and `\\` a literal backslash.
fn parse_glob(pattern: &str) -> Vec<Glob> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*') | Some('\\')) => {
                if let Some(n) = chars.next() {
                    lit.push(n);
                }
            }
            '*' => {
                if !lit.is_empty() {
                    out.push(Glob::Literal(std::mem::take(&mut lit)));
                }
                if out.last() != Some(&Glob::Star) {
                    out.push(Glob::Star);
                }
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Glob::Literal(lit));
    }
    out
}

fn glob_matches(pattern: &[Glob], text: &str) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Glob::Literal(l), rest)) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| glob_matches(rest, t)),
        Some((Glob::Star, rest)) => {
            if rest.is_empty() {
                return true;
            }
            text.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .any(|i| glob_matches(rest, &text[i..]))
        }
    }
}

/// Parses an RFC 3339 timestamp the way Step Functions accepts them: `T` separator, explicit
/// offset (`Z` or `±hh:mm`), optional fractional seconds.
pub fn parse_timestamp(s: &str) -> Option<jiff::Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20
        || b.get(10) != Some(&b'T')
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
    {
        return None;
    }
    let offset_ok = s.ends_with('Z') || {
        let n = b.len();
        n >= 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':'
    };
    if !offset_ok {
        return None;
    }
    s.parse::<jiff::Timestamp>().ok()
}

/// The value a rule path selects, borrowed when the path is definite.
fn lookup<'a>(var: &Variable, env: Env<'a>) -> Option<Cow<'a, Value>> {
    match var.path.select(env.input, env.context, env.variables) {
        Ok(Selected::One(v)) => Some(Cow::Borrowed(v)),
        Ok(other) => Some(Cow::Owned(other.into_value())),
        Err(_) => None,
    }
}

fn invalid_path(var: &Variable) -> ExprError {
    ExprError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        var.source
    ))
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn evaluate_test(variable: &Variable, test: &Test, env: Env) -> Result<bool, ExprError> {
    let value = lookup(variable, env);
    if let Test::Is(TypeTest::Present, expect) = test {
        return Ok(value.is_some() == *expect);
    }
    let value = value.ok_or_else(|| invalid_path(variable))?;
    let value: &Value = &value;
    match test {
        Test::Is(t, expect) => {
            let actual = match t {
                TypeTest::Null => value.is_null(),
                TypeTest::Numeric => value.is_number(),
                TypeTest::String => value.is_string(),
                TypeTest::Boolean => value.is_boolean(),
                TypeTest::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
                TypeTest::Present => true,
            };
            Ok(actual == *expect)
        }
        Test::BooleanEquals(expected) => {
            let expected = match expected {
                Ok(b) => Cow::Owned(Value::Bool(*b)),
                Err(path) => lookup(path, env).ok_or_else(|| invalid_path(path))?,
            };
            Ok(matches!((value, expected.as_ref()), (Value::Bool(a), Value::Bool(b)) if a == b))
        }
        Test::StringMatches(glob) => Ok(value.as_str().is_some_and(|s| glob_matches(glob, s))),
        Test::Compare { kind, rel, operand } => {
            let resolved;
            let other: OperandRef = match operand {
                Operand::String(s) => OperandRef::Str(s),
                Operand::Number(n) => OperandRef::Num(n),
                Operand::Timestamp(t) => OperandRef::Ts(*t),
                Operand::Path(p) => {
                    resolved = lookup(p, env).ok_or_else(|| invalid_path(p))?;
                    OperandRef::Json(&resolved)
                }
            };
            let ord = match kind {
                Kind2::String => match (value, other) {
                    (Value::String(a), OperandRef::Str(b)) => Some(utf16_cmp(a, b)),
                    (Value::String(a), OperandRef::Json(Value::String(b))) => Some(utf16_cmp(a, b)),
                    _ => None,
                },
                Kind2::Numeric => match (value, other) {
                    (Value::Number(a), OperandRef::Num(b)) => compare_numbers(a, b),
                    (Value::Number(a), OperandRef::Json(Value::Number(b))) => compare_numbers(a, b),
                    _ => None,
                },
                Kind2::Timestamp => {
                    let a = value.as_str().and_then(parse_timestamp);
                    let b = match other {
                        OperandRef::Ts(t) => Some(t),
                        OperandRef::Json(Value::String(s)) => parse_timestamp(s),
                        _ => None,
                    };
                    match (a, b) {
                        (Some(a), Some(b)) => Some(a.cmp(&b)),
                        _ => None,
                    }
                }
            };
            Ok(ord.is_some_and(|o| rel.holds(o)))
        }
    }
}

#[derive(Clone, Copy)]
enum OperandRef<'a> {
    Str(&'a str),
    Num(&'a serde_json::Number),
    Ts(jiff::Timestamp),
    Json(&'a Value),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn eval(rule: Value, input: Value) -> Result<bool, ExprError> {
        let vars = Map::new();
        let env = Env {
            input: &input,
            context: &Value::Null,
            variables: &vars,
        };
        ChoiceRule::parse(&rule).unwrap().evaluate(env)
    }

    fn check(op: &str, operand: Value, variable: Value) -> bool {
        eval(
            json!({"Variable": "$.Variable", op: operand, "Next": "X"}),
            json!({ "Variable": variable }),
        )
        .unwrap()
    }

    fn check_path(op: &str, variable: Value, value: Value) -> bool {
        eval(
            json!({"Variable": "$.Variable", op: "$.Value", "Next": "X"}),
            json!({"Variable": variable, "Value": value}),
        )
        .unwrap()
    }

    #[test]
    fn boolean_equals_is_false_for_non_booleans() {
        assert!(!check(
            "BooleanEquals",
            json!(false),
            json!("2012-10-09T19:00:55")
        ));
        assert!(check("BooleanEquals", json!(true), json!(true)));
        assert!(check("BooleanEquals", json!(false), json!(false)));
        assert!(!check("BooleanEquals", json!(false), json!(0)));
        assert!(check_path("BooleanEqualsPath", json!(true), json!(true)));
        assert!(!check_path("BooleanEqualsPath", json!("x"), json!(false)));
    }

    #[test]
    fn type_tests_check_json_types() {
        assert!(check("IsBoolean", json!(false), json!(null)));
        assert!(check("IsBoolean", json!(true), json!(false)));
        assert!(check("IsNull", json!(true), json!(null)));
        assert!(!check("IsNull", json!(false), json!(null)));
        assert!(check("IsNull", json!(false), json!(0)));
        assert!(!check("IsNumeric", json!(true), json!(null)));
        assert!(check("IsNumeric", json!(true), json!(0)));
        assert!(check("IsString", json!(false), json!(null)));
        assert!(check("IsString", json!(true), json!("")));
        assert!(check(
            "IsTimestamp",
            json!(true),
            json!("2016-03-14T01:59:00Z")
        ));
        assert!(check(
            "IsTimestamp",
            json!(false),
            json!("2016-03-14 01:59:00Z")
        ));
    }

    #[test]
    fn is_present_reports_missing_variables_without_failing() {
        assert!(check("IsPresent", json!(true), json!(null)));
        assert!(!check("IsPresent", json!(false), json!(0)));
        let rule = json!({"Variable": "$.nope", "IsPresent": false, "Next": "X"});
        assert_eq!(eval(rule, json!({})), Ok(true));
        let rule = json!({"Variable": "$.nope", "IsPresent": true, "Next": "X"});
        assert_eq!(eval(rule, json!({})), Ok(false));
    }

    #[test]
    fn missing_variable_fails_other_operators_with_aws_text() {
        let rule = json!({"Variable": "$.value", "NumericEquals": 0, "Next": "X"});
        assert_eq!(
            eval(rule, json!({})),
            Err(ExprError::runtime(
                "Invalid path '$.value': The choice state's condition path references an invalid value.".to_string()
            ))
        );
        let rule = json!({"Variable": "$.a", "StringEqualsPath": "$.b", "Next": "X"});
        assert_eq!(
            eval(rule, json!({"a": "x"})),
            Err(ExprError::runtime(
                "Invalid path '$.b': The choice state's condition path references an invalid value.".to_string()
            ))
        );
    }

    #[test]
    fn numeric_comparisons_compare_ints_and_floats_by_value() {
        assert!(!check("NumericEquals", json!(0), json!(null)));
        assert!(check("NumericEquals", json!(0.0), json!(0)));
        assert!(!check("NumericEquals", json!(0.0), json!([])));
        assert!(!check("NumericGreaterThan", json!(0), json!(0.0)));
        assert!(check("NumericGreaterThanEquals", json!(1), json!(1)));
        assert!(check("NumericLessThan", json!(1), json!(0)));
        assert!(!check("NumericLessThan", json!(0), json!(0.0)));
        assert!(check("NumericLessThanEquals", json!(1), json!(0)));
        assert!(check_path("NumericEqualsPath", json!(0), json!(0.0)));
        assert!(check_path("NumericGreaterThanPath", json!(1), json!(0)));
        assert!(!check_path(
            "NumericGreaterThanEqualsPath",
            json!(0),
            json!(1)
        ));
        assert!(check_path("NumericLessThanPath", json!(0), json!(1)));
        assert!(check_path(
            "NumericLessThanEqualsPath",
            json!(0.0),
            json!(0)
        ));
        assert!(!check_path("NumericEqualsPath", json!("0"), json!(0)));
    }

    #[test]
    fn string_comparisons_are_lexicographic() {
        assert!(!check("StringGreaterThan", json!(""), json!("")));
        assert!(!check("StringGreaterThan", json!("A\t\n\r"), json!("A")));
        assert!(check("StringGreaterThanEquals", json!(""), json!("")));
        assert!(check("StringLessThan", json!("AB"), json!("A")));
        assert!(check("StringLessThanEquals", json!("A"), json!("A")));
        assert!(!check("StringEquals", json!("HelloWorld"), json!(null)));
        assert!(check("StringEquals", json!("Hello"), json!("Hello")));
        assert!(!check_path(
            "StringEqualsPath",
            json!("\t\n"),
            json!("\t\r\n")
        ));
        assert!(check_path(
            "StringGreaterThanEqualsPath",
            json!("AB"),
            json!("A")
        ));
        assert!(check_path("StringLessThanPath", json!("A"), json!("AB")));
        assert!(!check_path(
            "StringGreaterThanPath",
            json!("AB"),
            json!("ABC")
        ));
        assert!(check_path("StringLessThanEqualsPath", json!(""), json!("")));
    }

    #[test]
    fn string_matches_supports_wildcards_and_escapes() {
        assert!(check(
            "StringMatches",
            json!("log-*.txt"),
            json!("log-2024.txt")
        ));
        assert!(check("StringMatches", json!("*"), json!("")));
        assert!(!check(
            "StringMatches",
            json!("log-*.txt"),
            json!("log-2024.csv")
        ));
        assert!(check("StringMatches", json!("a\\*b"), json!("a*b")));
        assert!(!check("StringMatches", json!("a\\*b"), json!("axb")));
        assert!(check(
            "StringMatches",
            json!("a\\\\*"),
            json!("a\\anything")
        ));
        assert!(!check("StringMatches", json!("x*"), json!(1)));
    }

    #[test]
    fn timestamp_comparisons_compare_instants_across_offsets() {
        assert!(check(
            "TimestampEquals",
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T02:59:00+01:00")
        ));
        assert!(check(
            "TimestampLessThan",
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T01:58:59.999Z")
        ));
        assert!(check(
            "TimestampGreaterThan",
            json!("2016-03-14T01:59:00Z"),
            json!("2017-01-01T00:00:00Z")
        ));
        assert!(check(
            "TimestampGreaterThanEquals",
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T01:59:00Z")
        ));
        assert!(check(
            "TimestampLessThanEquals",
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T01:59:00Z")
        ));
        assert!(!check(
            "TimestampEquals",
            json!("2016-03-14T01:59:00Z"),
            json!("not a time")
        ));
        assert!(check_path(
            "TimestampEqualsPath",
            json!("2016-03-14T01:59:00Z"),
            json!("2016-03-14T01:59:00Z")
        ));
    }

    #[test]
    fn timestamps_need_t_and_an_offset() {
        assert!(parse_timestamp("2016-12-05T21:29:29Z").is_some());
        assert!(parse_timestamp("2016-12-05T21:29:29.123+02:00").is_some());
        for bad in [
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "2016-13-05T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "05-12-2016T21:29:29Z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn and_or_not_nest() {
        let rule = json!({
            "And": [
                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                {"Not": {"Variable": "$.type", "StringEquals": "Public"}},
                {"Or": [{"Variable": "$.value", "NumericLessThan": 30}, {"Variable": "$.x", "IsPresent": true}]}
            ],
            "Next": "X"
        });
        assert_eq!(
            eval(rule.clone(), json!({"type": "Private", "value": 22})),
            Ok(true)
        );
        assert_eq!(
            eval(rule, json!({"type": "Private", "value": 35})),
            Ok(false)
        );
    }

    #[test]
    fn variables_and_context_can_be_compared() {
        let mut vars = Map::new();
        vars.insert("guess".into(), json!("a"));
        vars.insert("answer".into(), json!("a"));
        let ctx = json!({"Execution": {"Input": {"input-value": 0}}});
        let env = Env {
            input: &Value::Null,
            context: &ctx,
            variables: &vars,
        };
        let r = ChoiceRule::parse(&json!({"Variable": "$guess", "StringEqualsPath": "$answer"}))
            .unwrap();
        assert_eq!(r.evaluate(env), Ok(true));
        let r = ChoiceRule::parse(
            &json!({"Variable": "$$.Execution.Input.input-value", "NumericLessThanEquals": 0}),
        )
        .unwrap();
        assert_eq!(r.evaluate(env), Ok(true));
    }

    #[test]
    fn choice_rules_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>(_: &T) {}
        let rule = ChoiceRule::parse(&json!({"Variable": "$.x", "IsNull": true})).unwrap();
        shareable(&rule);
        let handle = std::thread::spawn(move || {
            let vars = Map::new();
            let input = json!({"x": null});
            rule.evaluate(Env {
                input: &input,
                context: &Value::Null,
                variables: &vars,
            })
        });
        assert_eq!(handle.join().ok(), Some(Ok(true)));
    }

    #[test]
    fn parse_rejects_malformed_rules() {
        for bad in [
            json!({"Variable": "$.x", "Next": "X"}),
            json!({"NumericEquals": 1, "Next": "X"}),
            json!({"Variable": "$.x", "NumericEquals": "1"}),
            json!({"Variable": "$.x", "StringEquals": 1}),
            json!({"Variable": "$.x", "TimestampEquals": "2016-03-14"}),
            json!({"Variable": "$.x", "NumericEquals": 1, "StringEquals": "a"}),
            json!({"Variable": "x", "IsNull": true}),
            json!({"Variable": "$.x", "Bogus": true}),
            json!({"And": []}),
            json!({"And": [{"Variable": "$.x", "IsNull": true}], "Variable": "$.x"}),
            json!("rule"),
        ] {
            assert!(ChoiceRule::parse(&bad).is_err(), "{bad} should fail");
        }
    }
}
