//! Definition validation (InvalidDefinition), history shape and state-transition counts.

mod common;

use asl::{ExecutionStatus, StateMachine, TaskFailure};
use common::*;
use serde_json::{Value, json};

fn rejected(def: Value) -> String {
    match StateMachine::from_value(def) {
        Ok(_) => panic!("definition was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_next_is_rejected_naming_the_state() {
    let msg =
        rejected(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}));
    assert!(msg.contains("MISSING_TRANSITION_TARGET"), "{msg}");
    assert!(msg.contains("at /States/A/Next"), "{msg}");
}

#[test]
fn unreachable_states_are_rejected() {
    let msg = rejected(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}),
    );
    assert!(msg.contains("State \"B\" is not reachable"), "{msg}");
    assert!(msg.contains("at /States/B"), "{msg}");
}

#[test]
fn missing_end_or_next_and_both_are_rejected() {
    let msg = rejected(json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}));
    assert!(
        msg.contains("SCHEMA_VALIDATION_FAILED") && msg.contains("/States/A"),
        "{msg}"
    );
    let msg = rejected(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Next": "A"}}}),
    );
    assert!(
        msg.contains("cannot be specified together: [Next, End]"),
        "{msg}"
    );
}

#[test]
fn unknown_type_and_fields_not_allowed_for_the_type_are_rejected() {
    let msg = rejected(json!({"StartAt": "A", "States": {"A": {"Type": "Sleep", "End": true}}}));
    assert!(msg.contains("/States/A/Type"), "{msg}");
    let msg = rejected(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Resource": "arn:x", "End": true}}}),
    );
    assert!(
        msg.contains(
            "The field \"Resource\" is not supported by Step Functions at /States/A/Resource"
        ),
        "{msg}"
    );
    let msg = rejected(json!({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Retry": []}}}));
    assert!(msg.contains("/States/A/Retry"), "{msg}");
}

#[test]
fn start_at_must_exist() {
    let msg = rejected(json!({"States": {"A": {"Type": "Succeed"}}}));
    assert!(
        msg.contains("These fields are required: [StartAt]"),
        "{msg}"
    );
    let msg = rejected(json!({"StartAt": "Z", "States": {"A": {"Type": "Succeed"}}}));
    assert!(msg.contains("/StartAt"), "{msg}");
}

#[test]
fn choice_without_choices_is_rejected() {
    let msg = rejected(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Default": "D"}, "D": {"Type": "Succeed"}}}),
    );
    assert!(msg.contains("/States/C/Choices"), "{msg}");
}

#[test]
fn states_all_must_be_alone_and_last() {
    let base = |retry: Value| json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Retry": retry, "End": true}}});
    let msg = rejected(base(
        json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}]),
    ));
    assert!(msg.contains("/States/T/Retry[0]/ErrorEquals"), "{msg}");
    let msg = rejected(base(json!([{"ErrorEquals": ["States.ALL", "E"]}])));
    assert!(msg.contains("must appear alone"), "{msg}");
    let msg = rejected(base(json!([{"ErrorEquals": ["E"], "BackoffRate": 0.5}])));
    assert!(msg.contains("/States/T/Retry[0]/BackoffRate"), "{msg}");
    let msg = rejected(base(json!([{"Interval": 1, "ErrorEquals": ["E"]}])));
    assert!(msg.contains("/States/T/Retry[0]/Interval"), "{msg}");
}

#[test]
fn malformed_catchers_are_rejected() {
    let msg = rejected(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f",
        "Catch": [{"ErrorEquals": ["E"]}], "End": true}}}),
    );
    assert!(msg.contains("/States/T/Catch[0]"), "{msg}");
}

#[test]
fn bad_paths_and_intrinsics_are_rejected_through_the_expression_layer() {
    let msg = rejected(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "not a path", "End": true}}}),
    );
    assert!(msg.contains("/States/A/InputPath"), "{msg}");
    let msg = rejected(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "States.Nope("}, "End": true}}}),
    );
    assert!(msg.contains("/States/A/Parameters"), "{msg}");
}

#[test]
fn nested_machines_are_validated_with_their_own_pointer() {
    let msg = rejected(
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}]}}}),
    );
    assert!(
        msg.contains("at /States/P/Branches[0]/States/X/Next"),
        "{msg}"
    );
}

#[test]
fn errors_read_like_invalid_definition() {
    let msg = rejected(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}));
    assert!(
        msg.starts_with("Invalid State Machine Definition: '"),
        "{msg}"
    );
}

#[tokio::test]
async fn history_ids_count_up_and_previous_ids_chain() {
    // given Pass -> Lambda Task
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}}});
    let (exec, _, _) = run_with(def, json!({"a": 1}), |_, _| Ok(json!({"b": 2}))).await;
    assert_eq!(exec.status(), ExecutionStatus::Succeeded);
    // then the events are the service's, numbered 1.. and each pointing at the previous one
    assert_eq!(
        event_types(&exec),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, e) in exec.history().iter().enumerate() {
        assert_eq!(e.id, i as u64 + 1);
        assert_eq!(e.previous_event_id, i as u64);
    }
    let entered = &exec.history()[1];
    assert_eq!(
        entered.details["stateEnteredEventDetails"],
        json!({"name": "P", "input": "{\"a\":1}", "inputDetails": {"truncated": false}})
    );
    let wire = exec.history()[0].to_aws_json();
    assert!(
        wire["timestamp"].is_f64()
            && wire["executionStartedEventDetails"]["input"] == json!("{\"a\":1}")
    );
}

#[tokio::test]
async fn map_iteration_events_point_back_into_their_iteration() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}}}});
    let exec = run(def, json!([1, 2])).await;
    let types = event_types(&exec);
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "PassStateEntered",
            "PassStateExited",
            "MapIterationSucceeded",
            "MapIterationStarted",
            "PassStateEntered",
            "PassStateExited",
            "MapIterationSucceeded",
            "MapStateSucceeded",
            "MapStateExited",
            "ExecutionSucceeded"
        ]
    );
    let h = exec.history();
    // the second iteration starts from MapStateStarted, and its first state follows it
    assert_eq!(h[7].previous_event_id, h[2].id);
    assert_eq!(h[8].previous_event_id, h[7].id);
    assert_eq!(
        h[7].details["mapIterationStartedEventDetails"],
        json!({"name": "M", "index": 1})
    );
}

#[tokio::test]
async fn state_transitions_count_every_state_entered_and_every_retry() {
    // given Pass -> Map of 3 items (1 state each) -> Task retried twice
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Next": "M"},
        "M": {"Type": "Map", "Next": "T", "ResultPath": null,
              "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}},
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true,
              "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 5}]}}});
    let (exec, _, _) = run_with(def, json!([1, 2, 3]), |_, n| {
        if n < 2 {
            Err(TaskFailure::new("E", "c"))
        } else {
            Ok(json!(1))
        }
    })
    .await;
    assert_eq!(exec.status(), ExecutionStatus::Succeeded);
    // then P + M + 3 x X + T + 2 retries = 8
    assert_eq!(exec.state_transitions(), 8);
}
