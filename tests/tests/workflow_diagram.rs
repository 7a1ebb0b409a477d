//! The Mermaid diagram in docs/workflow.md is generated from workflows/after-sales.asl.json.
//! Regenerate it with `UPDATE_DIAGRAM=1 cargo test -p aftersales-tests --test workflow_diagram`.

use aftersales_tests::workflow::{after_sales_source, mermaid, repo_root, with_diagram};
use serde_json::Value;

#[test]
fn the_committed_diagram_matches_the_definition() {
    let definition: Value =
        serde_json::from_str(&after_sales_source()).expect("the definition is JSON");
    let path = repo_root().join("docs").join("workflow.md");
    let doc = std::fs::read_to_string(&path).expect("docs/workflow.md");
    let fresh = with_diagram(&doc, &mermaid(&definition)).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("UPDATE_DIAGRAM").is_some() {
        if fresh != doc {
            std::fs::write(&path, &fresh).expect("write docs/workflow.md");
        }
        return;
    }
    assert!(
        fresh == doc,
        "docs/workflow.md's diagram is stale; regenerate it with\n  \
         UPDATE_DIAGRAM=1 cargo test -p aftersales-tests --test workflow_diagram"
    );
}

#[test]
fn the_diagram_draws_every_state() {
    let definition: Value =
        serde_json::from_str(&after_sales_source()).expect("the definition is JSON");
    let diagram = mermaid(&definition);
    for name in definition["States"].as_object().expect("States").keys() {
        assert!(
            diagram.contains(&format!("    {name} -->")),
            "{name} has no arrow in the diagram"
        );
    }
}
