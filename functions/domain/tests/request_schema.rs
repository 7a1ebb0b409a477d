//! The published JSON Schema of `POST /v1/requests` (`docs/schema/request.schema.json`): it is
//! the schema of the types, it accepts the documented example, and it agrees with the parser on
//! every rule it can express.

use std::path::PathBuf;
use std::sync::OnceLock;

use aftersales_domain::parse_request;
use aftersales_domain::schema::{request_schema, to_pretty_json};
use serde_json::Value;

const REGENERATE: &str = "UPDATE_SCHEMA=1 cargo test -p aftersales-domain --test request_schema";

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/requests")
        .join(name)
}

const SCHEMA: &str = "docs/schema/request.schema.json";

/// With `UPDATE_SCHEMA=1`, writes the schema of the types over the committed one, once, before
/// any test reads it.
fn regenerate_if_asked() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
            let path = repo_file(SCHEMA);
            std::fs::write(&path, to_pretty_json(&request_schema()))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    });
}

fn committed_schema() -> Value {
    regenerate_if_asked();
    read_json(&repo_file(SCHEMA))
}

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&committed_schema())
        .expect("the committed schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_the_schema_of_the_types() {
    regenerate_if_asked();
    let path = repo_file(SCHEMA);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == to_pretty_json(&request_schema()),
        "{} is stale (the request types changed). Regenerate it with:\n    {REGENERATE}\n\
         and commit the result.",
        path.display()
    );
}

#[test]
fn the_committed_schema_is_a_valid_json_schema() {
    let schema = committed_schema();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "docs/schema/request.schema.json does not validate against its meta-schema"
    );
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn the_documented_example_satisfies_the_schema_and_parses() {
    let example = read_json(&repo_file("docs/examples/request.json"));
    let errors = schema_errors(&validator(), &example);
    assert!(errors.is_empty(), "docs/examples/request.json: {errors:?}");
    let bytes = std::fs::read(repo_file("docs/examples/request.json")).expect("readable");
    let request = parse_request(&bytes).expect("the example parses");
    assert_eq!(request.request_id.as_str(), "evt_8f2c");
}

#[test]
fn every_valid_fixture_satisfies_the_schema_and_parses() {
    let validator = validator();
    let dir = fixture_path("valid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/requests/valid") {
        let path = entry.expect("a directory entry").path();
        let errors = schema_errors(&validator, &read_json(&path));
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let bytes = std::fs::read(&path).expect("readable");
        if let Err(e) = parse_request(&bytes) {
            panic!("{}: {e}", path.display());
        }
        seen += 1;
    }
    assert!(seen > 0, "no valid fixtures in {}", dir.display());
}

/// Invalid fixtures: the file, the field the parser names, and whether the schema can see the
/// fault too (cross-field rules it cannot).
const INVALID: &[(&str, &str, bool)] = &[
    ("unknown_channel", "channel", true),
    ("missing_currency", "order.currency", true),
    ("unknown_line_field", "order.lines[1].colour", true),
    ("negative_unit_price", "order.lines[1].unit_price", true),
    ("fractional_paid", "order.payment.paid", true),
    ("empty_request_id", "request_id", true),
    ("padded_order_id", "order.id", true),
    ("zero_problem_quantity", "problem.lines[0].quantity", true),
    ("no_order_lines", "order.lines", true),
    ("no_problem_lines", "problem.lines", true),
    ("http_evidence_url", "problem.evidence[0].url", true),
    ("email_without_at", "customer.email", true),
    ("timestamp_without_offset", "submitted_at", true),
    ("unknown_locale", "customer.locale", true),
    (
        "problem_line_not_in_order",
        "problem.lines[1].line_id",
        false,
    ),
    ("quantity_above_ordered", "problem.lines[0].quantity", false),
    ("duplicate_problem_line", "problem.lines[1].line_id", false),
    ("duplicate_order_line_id", "order.lines[2].line_id", false),
    ("paid_above_total", "order.payment.paid", false),
    ("delivered_before_placed", "order.delivered_at", false),
    ("submitted_before_placed", "submitted_at", false),
];

#[test]
fn invalid_fixtures_are_rejected_by_the_parser_and_where_it_can_by_the_schema() {
    let validator = validator();
    for (name, field, schema_sees_it) in INVALID {
        let path = fixture_path(&format!("invalid/{name}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let err = match parse_request(&bytes) {
            Ok(_) => panic!("{name}: the parser accepted it"),
            Err(e) => e,
        };
        assert_eq!(err.field.as_deref(), Some(*field), "{name}: {err}");

        let errors = schema_errors(&validator, &read_json(&path));
        if *schema_sees_it {
            assert!(!errors.is_empty(), "{name}: the schema accepted it");
        } else {
            assert!(
                errors.is_empty(),
                "{name}: a cross-field rule the schema was thought unable to express: {errors:?}"
            );
        }
    }
}

#[test]
fn every_invalid_fixture_is_listed_in_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(fixture_path("invalid"))
        .expect("fixtures/requests/invalid")
        .map(|e| {
            let path = e.expect("a directory entry").path();
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = INVALID.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn the_schema_describes_the_cross_field_rules_it_cannot_express() {
    let schema = committed_schema();
    let description = schema["description"].as_str().unwrap_or_default();
    for rule in [
        "order.placed_at",
        "order.payment.paid",
        "problem.lines",
        "JSON Schema cannot",
    ] {
        assert!(
            description.contains(rule),
            "the top-level description should mention {rule:?}: {description}"
        );
    }
}
