//! The canonical request parser: JSON syntax, then types (with the path of the field at fault),
//! then the cross-field rules.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_path_to_error::Segment;

use super::error::RequestError;
use super::wire::shortened;
use super::{ServiceRequest, rules};

/// Parses a `POST /v1/requests` body into a [`ServiceRequest`], or names the first thing wrong
/// with it: malformed JSON or a body that is not an object (`invalid_json`, no field), then the
/// first field of the wrong type or value in the order the body is read, then the first broken
/// cross-field rule in document order (`invalid_field`, with the field's path).
pub fn parse_request(body: &[u8]) -> Result<ServiceRequest, RequestError> {
    check_json_object(body)?;
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: ServiceRequest =
        serde_path_to_error::deserialize(&mut json).map_err(describe_type_error)?;
    rules::check(&request)?;
    Ok(request)
}

/// A first pass over the whole body, so malformed JSON anywhere is `invalid_json` even when an
/// earlier field would fail its type check.
fn check_json_object(body: &[u8]) -> Result<(), RequestError> {
    match serde_json::from_slice::<TopLevel>(body) {
        Ok(TopLevel::Object) => Ok(()),
        Ok(TopLevel::Other(what)) => Err(RequestError::invalid_json(format!(
            "the body must be a JSON object, not {what}"
        ))),
        Err(e) => Err(RequestError::invalid_json(format!(
            "the body is not valid JSON: {}",
            without_position(&e)
        ))),
    }
}

/// What the body's top-level JSON value is, its content skipped.
enum TopLevel {
    Object,
    Other(&'static str),
}

impl<'de> de::Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("null"))
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// Turns serde's error at a path into the API's field path and plain words.
fn describe_type_error(err: serde_path_to_error::Error<serde_json::Error>) -> RequestError {
    let path = api_path(err.path());
    if !err.inner().is_data() {
        // The first pass proved the JSON well-formed: serde_json reports an enum given a
        // number or an array as a syntax error ("expected value").
        return field_error(path, "must be of the documented type");
    }
    let message = without_position(err.inner());

    if let Some(name) = between(&message, "missing field `", "`") {
        return RequestError::invalid_field(join(&path, name), "is required");
    }
    if let Some(name) = between(&message, "duplicate field `", "`") {
        return RequestError::invalid_field(join(&path, name), "appears more than once");
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let expected = rest
            .rfind("`, expected")
            .map(|i| backticked(&rest[i + 1..]));
        let message = match expected {
            Some(names) if !names.is_empty() => {
                format!(
                    "is not a known field (expected one of: {})",
                    names.join(", ")
                )
            }
            _ => "is not a known field".to_owned(),
        };
        return field_error(path, message);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((unexpected, expected)) = rest.split_once(", expected ")
    {
        return field_error(
            path,
            format!(
                "must be {}, not {}",
                plain_expected(expected),
                plain_unexpected(unexpected)
            ),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return field_error(path, format!("must be {}", plain_expected(expected)));
    }
    field_error(path, message)
}

fn field_error(path: String, message: impl Into<String>) -> RequestError {
    if path.is_empty() {
        RequestError::invalid_json(message)
    } else {
        RequestError::invalid_field(path, message)
    }
}

/// `order.lines[2].quantity` from serde_path_to_error's segments.
fn api_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join(&out, key),
            Segment::Enum { variant } => out = join(&out, variant),
            Segment::Unknown => out = join(&out, "?"),
        }
    }
    out
}

/// `parent.name`, quoting names that are not plain identifiers (`parent["odd name"]`).
fn join(parent: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain && parent.is_empty() {
        name.to_owned()
    } else if plain {
        format!("{parent}.{name}")
    } else {
        let quoted = serde_json::to_string(&shortened(name)).unwrap_or_default();
        format!("{parent}[{quoted}]")
    }
}

/// The text between `prefix` (at the start) and the next `end`.
fn between<'a>(text: &'a str, prefix: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?;
    rest.find(end).map(|i| &rest[..i])
}

/// Every `` `name` `` in serde's "expected one of `a`, `b`" lists.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// serde's description of what it found, without the value itself (it may be personal data).
fn plain_unexpected(unexpected: &str) -> &'static str {
    let kind = unexpected.split([' ', '`', '"']).next().unwrap_or_default();
    match kind {
        "string" | "char" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "a boolean",
        "null" | "unit" => "null",
        "map" => "an object",
        "sequence" => "an array",
        _ => "another type",
    }
}

/// serde's and our visitors' expectations in the storefront's terms.
fn plain_expected(expected: &str) -> String {
    if expected.starts_with("struct ") {
        return "an object".to_owned();
    }
    match expected {
        "a sequence" => "an array".to_owned(),
        "a boolean" => "true or false".to_owned(),
        other => other.to_owned(),
    }
}
