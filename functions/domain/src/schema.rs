//! JSON Schemas of the public API, generated from the types that parse it. The committed copies
//! under `docs/schema/` are tested to equal these.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;

use crate::request::ServiceRequest;

/// The JSON Schema (2020-12) of a `POST /v1/requests` body: `schema_for!(ServiceRequest)` with
/// doc-comment line wraps joined, so descriptions read as paragraphs.
pub fn request_schema() -> Schema {
    SchemaSettings::draft2020_12()
        .with_transform(RecursiveTransform(join_wrapped_lines))
        .into_generator()
        .into_root_schema_for::<ServiceRequest>()
}

/// A schema as committed: pretty-printed JSON with a final newline.
pub fn to_pretty_json(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

fn join_wrapped_lines(schema: &mut Schema) {
    if let Some(serde_json::Value::String(text)) = schema.get_mut("description") {
        *text = text
            .split("\n\n")
            .map(|paragraph| paragraph.split('\n').collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}
