//! Each state type and each input/output processing stage, independently of the corpus.

mod common;

use asl::{ExecutionStatus, TaskFailure};
use common::*;
use jiff::SignedDuration;
use serde_json::json;

#[tokio::test]
async fn pass_with_result_and_result_path_merges_the_result_into_the_input() {
    // given a Pass state with a Result placed at $.added
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.added", "End": true}}});
    // when it runs on {"a": 0}
    let exec = run(def, json!({"a": 0})).await;
    // then the output is the input plus the result
    assert_eq!(assert_succeeded(&exec), json!({"a": 0, "added": {"x": 1}}));
}

#[tokio::test]
async fn input_path_parameters_result_path_output_path_apply_in_order() {
    // given a Pass that narrows its input, builds parameters, stores them and filters the output
    let def = json!({"StartAt": "P", "States": {"P": {
        "Type": "Pass",
        "InputPath": "$.order",
        "Parameters": {"id.$": "$.id", "fixed": "yes"},
        "ResultPath": "$.built",
        "OutputPath": "$.built",
        "End": true}}});
    // when it runs
    let exec = run(def, json!({"order": {"id": 7}, "other": true})).await;
    // then each stage saw the previous one's value
    assert_eq!(assert_succeeded(&exec), json!({"id": 7, "fixed": "yes"}));
}

#[tokio::test]
async fn null_paths_discard_input_result_and_output() {
    // given InputPath null (effective input {}), ResultPath null (result discarded), OutputPath null ({})
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "InputPath": null, "Parameters": {"got.$": "$"}, "ResultPath": "$.r", "Next": "B"},
        "B": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "Next": "C"},
        "C": {"Type": "Pass", "OutputPath": null, "End": true}}});
    let exec = run(def.clone(), json!({"v": 1})).await;
    assert_eq!(assert_succeeded(&exec), json!({}));
    // and without the last state the discarded result leaves the input untouched
    let mut def2 = def;
    def2["States"]["B"] =
        json!({"Type": "Pass", "Result": "ignored", "ResultPath": null, "End": true});
    def2["States"].as_object_mut().expect("states").remove("C");
    let exec = run(def2, json!({"v": 1})).await;
    assert_eq!(assert_succeeded(&exec), json!({"v": 1, "r": {"got": {}}}));
}

#[tokio::test]
async fn task_result_selector_shapes_the_result_before_result_path() {
    // given a Lambda task whose result is reshaped by ResultSelector and stored at $.out
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "ResultSelector": {"n.$": "$.count"}, "ResultPath": "$.out", "End": true}}});
    let (exec, _, resolver) = run_with(def, json!({"in": 1}), |_, _| {
        Ok(json!({"count": 3, "noise": true}))
    })
    .await;
    // then only the selected field is stored, and the function got the effective input
    assert_eq!(assert_succeeded(&exec), json!({"in": 1, "out": {"n": 3}}));
    assert_eq!(resolver.calls()[0].1.input, json!({"in": 1}));
}

#[tokio::test]
async fn lambda_invoke_integration_wraps_the_payload_like_the_service() {
    // given arn:aws:states:::lambda:invoke with FunctionName and Payload
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "fn", "Payload": {"x.$": "$.x"}}, "End": true}}});
    let (exec, _, resolver) = run_with(def, json!({"x": 5}), |r, _| {
        Ok(json!({"echo": r.input.clone()}))
    })
    .await;
    // then the function gets the Payload and the result has the integration's shape
    let out = assert_succeeded(&exec);
    assert_eq!(out["Payload"], json!({"echo": {"x": 5}}));
    assert_eq!(out["StatusCode"], json!(200));
    assert_eq!(out["ExecutedVersion"], json!("$LATEST"));
    assert!(out["SdkHttpMetadata"]["HttpStatusCode"] == json!(200));
    assert!(out["SdkResponseMetadata"]["RequestId"].is_string());
    let req = &resolver.calls()[0].1;
    assert_eq!(req.parameters, json!({"FunctionName": "fn"}));
    assert!(
        matches!(&req.kind, asl::ResourceKind::LambdaInvoke { function_name } if function_name == "fn")
    );
}

#[tokio::test]
async fn choice_takes_the_first_matching_rule_else_default() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
            {"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Medium"}], "Default": "Small"},
        "Big": {"Type": "Pass", "Result": "big", "End": true},
        "Medium": {"Type": "Pass", "Result": "medium", "End": true},
        "Small": {"Type": "Pass", "Result": "small", "End": true}}});
    assert_eq!(
        assert_succeeded(&run(def.clone(), json!({"n": 20})).await),
        json!("big")
    );
    assert_eq!(
        assert_succeeded(&run(def.clone(), json!({"n": 7})).await),
        json!("medium")
    );
    assert_eq!(
        assert_succeeded(&run(def, json!({"n": 1})).await),
        json!("small")
    );
}

#[tokio::test]
async fn choice_without_match_or_default_fails_with_no_choice_matched() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]},
        "One": {"Type": "Succeed"}}});
    let exec = run(def, json!({"n": 2})).await;
    let (error, cause) = assert_failed(&exec);
    assert_eq!(error, "States.NoChoiceMatched");
    assert!(
        cause.starts_with(
            "An error occurred while executing the state 'C' (entered at the event id #2)."
        ),
        "{cause}"
    );
}

#[tokio::test]
async fn wait_seconds_advances_the_virtual_clock_without_sleeping() {
    // given a Wait of one day
    let def =
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "End": true}}});
    let wall = std::time::Instant::now();
    let (exec, clock, _) = run_with(def, json!({"k": 1}), |_, _| Ok(json!(null))).await;
    // then the execution finished a virtual day later, at once
    assert_eq!(assert_succeeded(&exec), json!({"k": 1}));
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_hours(24)
    );
    assert!(wall.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn wait_timestamp_path_waits_until_the_timestamp_and_rejects_bad_ones() {
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.at", "End": true}}});
    let (exec, clock, _) = run_with(
        def.clone(),
        json!({"at": "2024-01-02T00:00:00Z"}),
        |_, _| Ok(json!(null)),
    )
    .await;
    assert_succeeded(&exec);
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_hours(24)
    );
    let exec = run(def, json!({"at": "2024-01-02 00:00:00Z"})).await;
    let (error, cause) = assert_failed(&exec);
    assert_eq!(error, "States.Runtime");
    assert!(cause.ends_with("does not reference a valid ISO-8601 extended offset date-time format string: $.at == 2024-01-02 00:00:00Z"), "{cause}");
}

#[tokio::test]
async fn wait_seconds_path_rejects_negative_values() {
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    let (error, cause) = assert_failed(&run(def, json!({"s": -3})).await);
    assert_eq!(error, "States.Runtime");
    assert!(
        cause.ends_with("The SecondsPath parameter references a negative value: $.s == -3"),
        "{cause}"
    );
}

#[tokio::test]
async fn succeed_applies_input_and_output_paths() {
    let def = json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}});
    assert_eq!(
        assert_succeeded(&run(def, json!({"a": {"b": 2}})).await),
        json!(2)
    );
}

#[tokio::test]
async fn fail_reports_error_and_cause_literally_or_through_paths() {
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "because"}}});
    assert_eq!(
        assert_failed(&run(def, json!({})).await),
        ("Boom".into(), "because".into())
    );
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}});
    assert_eq!(
        assert_failed(&run(def, json!({"e": "E", "c": "C"})).await),
        ("E".into(), "C".into())
    );
}

#[tokio::test]
async fn parallel_returns_branch_outputs_in_branch_order() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 10, "Next": "A2"}, "A2": {"Type": "Pass", "Result": "a", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": true}}}]}}});
    let exec = run(def, json!({})).await;
    assert_eq!(assert_succeeded(&exec), json!(["a", "b"]));
    let mut entered = exec.states_entered().to_vec();
    entered.sort();
    assert_eq!(entered, vec!["A", "A2", "B", "P"]);
}

#[tokio::test]
async fn parallel_branch_failure_fails_the_parallel_state_with_the_branch_error() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Fail", "Error": "BranchBoom", "Cause": "c"}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]}}});
    assert_eq!(
        assert_failed(&run(def, json!({})).await),
        ("BranchBoom".into(), "c".into())
    );
}

#[tokio::test]
async fn map_applies_items_path_and_item_selector_with_the_map_context() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "tag.$": "$.tag"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}},
        "ResultPath": "$.out", "End": true}}});
    let exec = run(def, json!({"items": ["a", "b"], "tag": "t"})).await;
    assert_eq!(
        assert_succeeded(&exec)["out"],
        json!([{"v": "a", "i": 0, "tag": "t"}, {"v": "b", "i": 1, "tag": "t"}])
    );
}

#[tokio::test]
async fn map_legacy_iterator_and_parameters_still_work() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "Parameters": {"x.$": "$$.Map.Item.Value"},
        "Iterator": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}, "End": true}}});
    assert_eq!(
        assert_succeeded(&run(def, json!([1, 2])).await),
        json!([{"x": 1}, {"x": 2}])
    );
}

#[tokio::test]
async fn map_max_concurrency_bounds_iterations_in_flight() {
    // given 4 items that each wait 10 s, at most 2 at a time
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 2,
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}, "End": true}}});
    let (exec, clock, _) = run_with(def, json!([1, 2, 3, 4]), |_, _| Ok(json!(null))).await;
    // then it takes two rounds of 10 s
    assert_eq!(assert_succeeded(&exec), json!([1, 2, 3, 4]));
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_secs(20)
    );
}

#[tokio::test]
async fn map_without_concurrency_limit_runs_waiting_iterations_side_by_side() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}, "End": true}}});
    let (exec, clock, _) = run_with(def, json!([1, 2, 3, 4]), |_, _| Ok(json!(null))).await;
    assert_succeeded(&exec);
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_secs(10)
    );
}

#[tokio::test]
async fn map_tolerated_failure_count_tolerates_up_to_the_count() {
    let def = |count: u64| {
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ToleratedFailureCount": count,
        "ItemProcessor": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "Bad"}], "Default": "Good"},
            "Bad": {"Type": "Fail", "Error": "ItemError", "Cause": "zero"},
            "Good": {"Type": "Pass", "End": true}}}, "End": true}}})
    };
    // given two failing items out of four
    let exec = run(def(2), json!([0, 1, 0, 2])).await;
    // then a tolerance of 2 succeeds with the failures as error objects
    assert_eq!(
        assert_succeeded(&exec),
        json!([{"Error": "ItemError", "Cause": "zero"}, 1, {"Error": "ItemError", "Cause": "zero"}, 2])
    );
    // and a tolerance of 1 fails the Map
    let exec = run(def(1), json!([0, 1, 0, 2])).await;
    assert_eq!(
        assert_failed(&exec).0,
        "States.ExceedToleratedFailureThreshold"
    );
}

#[tokio::test]
async fn map_on_a_non_array_fails() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}, "End": true}}});
    let exec = run(def, json!({"not": "an array"})).await;
    assert_eq!(exec.status(), ExecutionStatus::Failed);
}

#[tokio::test]
async fn assign_sets_variables_after_output_path_and_inner_scopes_read_outer_ones() {
    // given a variable set at the top level and a Map reading it in its selector and iterations
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": {"n": 1, "list": [10, 20]}, "Assign": {"x.$": "$.n"}, "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.list", "ItemSelector": {"item.$": "$$.Map.Item.Value"},
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Parameters": {"outer.$": "$x", "item.$": "$.item"}, "End": true}}},
              "End": true}}});
    let exec = run(def, json!({})).await;
    assert_eq!(
        assert_succeeded(&exec),
        json!([{"outer": 1, "item": 10}, {"outer": 1, "item": 20}])
    );
}

#[tokio::test]
async fn a_task_without_mock_result_fails_with_the_resolver_error() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}}});
    let (exec, _, _) = run_with(def, json!({}), |_, _| {
        Err(TaskFailure::new("Custom", "cause text"))
    })
    .await;
    assert_eq!(assert_failed(&exec), ("Custom".into(), "cause text".into()));
}

#[tokio::test]
async fn execution_timeout_seconds_times_the_execution_out() {
    // given a state machine with TimeoutSeconds 5 that waits 10 s
    let def = json!({"TimeoutSeconds": 5, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}});
    let (exec, clock, _) = run_with(def, json!({}), |_, _| Ok(json!(null))).await;
    // then it times out at t+5
    assert_eq!(exec.status(), ExecutionStatus::TimedOut);
    assert_eq!(
        exec.failure().and_then(|f| f.error.clone()).as_deref(),
        Some("States.Timeout")
    );
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_secs(5)
    );
    assert_eq!(
        event_types(&exec).last().map(String::as_str),
        Some("ExecutionTimedOut")
    );
}

#[tokio::test]
async fn the_context_object_exposes_the_execution_input_and_state_name() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
        "Parameters": {"input.$": "$$.Execution.Input", "state.$": "$$.State.Name", "whole.$": "$$.Execution.Input.k"}, "End": true}}});
    assert_eq!(
        assert_succeeded(&run(def, json!({"k": 1})).await),
        json!({"input": {"k": 1}, "state": "P", "whole": 1})
    );
}
