//! Retry (backoff, MaxDelaySeconds, jitter) and Catch (precedence, wildcards, terminal errors).

mod common;

use asl::TaskFailure;
use common::*;
use jiff::SignedDuration;
use serde_json::{Value, json};

/// A Lambda task with the given retriers and catchers; `Caught`/`Other` exist when a catcher
/// targets them (unreachable states are invalid).
fn task(retry: Value, catch: Value) -> Value {
    let targets = catch.to_string();
    let mut def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
              "Retry": retry, "Catch": catch, "End": true}}});
    for name in ["Caught", "Other"] {
        if targets.contains(&format!("\"{name}\"")) {
            def["States"][name] = json!({"Type": "Pass", "End": true});
        }
    }
    def
}

/// Seconds between consecutive invocations.
fn gaps(resolver: &FnResolver) -> Vec<i64> {
    let calls = resolver.calls();
    calls
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs())
        .collect()
}

#[tokio::test]
async fn retry_waits_interval_times_backoff_rate_between_attempts() {
    // given a retrier with IntervalSeconds 2, BackoffRate 3, MaxAttempts 3 and a task that always fails
    let def = task(
        json!([{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}]),
        json!([]),
    );
    let (exec, _, resolver) = run_with(def, json!({}), |_, _| {
        Err(TaskFailure::new("Flaky", "again"))
    })
    .await;
    // then it was tried 4 times, 2 s, 6 s and 18 s apart, and the last error fails the execution
    assert_eq!(gaps(&resolver), vec![2, 6, 18]);
    assert_eq!(assert_failed(&exec), ("Flaky".into(), "again".into()));
}

#[tokio::test]
async fn retry_succeeds_when_a_later_attempt_succeeds_and_sees_the_retry_count() {
    let mut def = task(
        json!([{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 5}]),
        json!([]),
    );
    def["States"]["T"]["ResultSelector"] =
        json!({"value.$": "$", "retries.$": "$$.State.RetryCount"});
    let (exec, _, resolver) = run_with(def, json!({}), |_, n| {
        if n < 2 {
            Err(TaskFailure::new("E", "c"))
        } else {
            Ok(json!("ok"))
        }
    })
    .await;
    assert_eq!(
        assert_succeeded(&exec),
        json!({"value": "ok", "retries": 2})
    );
    assert_eq!(
        resolver
            .calls()
            .iter()
            .map(|c| c.1.retry_count)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

#[tokio::test]
async fn max_delay_seconds_caps_the_backoff() {
    let def = task(
        json!([{"ErrorEquals": ["E"], "IntervalSeconds": 3, "BackoffRate": 2, "MaxAttempts": 4, "MaxDelaySeconds": 5}]),
        json!([]),
    );
    let (_, _, resolver) = run_with(def, json!({}), |_, _| Err(TaskFailure::new("E", "c"))).await;
    assert_eq!(gaps(&resolver), vec![3, 5, 5, 5]);
}

#[tokio::test]
async fn full_jitter_keeps_each_delay_between_zero_and_the_backoff() {
    let def = task(
        json!([{"ErrorEquals": ["E"], "IntervalSeconds": 10, "BackoffRate": 2, "MaxAttempts": 6, "MaxDelaySeconds": 50, "JitterStrategy": "FULL"}]),
        json!([]),
    );
    let (_, _, resolver) = run_with(def, json!({}), |_, _| Err(TaskFailure::new("E", "c"))).await;
    let calls = resolver.calls();
    let ms: Vec<i64> = calls
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_millis() as i64)
        .collect();
    let caps = [10_000, 20_000, 40_000, 50_000, 50_000, 50_000];
    assert_eq!(ms.len(), caps.len());
    for (d, cap) in ms.iter().zip(caps) {
        assert!((0..=cap).contains(d), "delay {d} ms outside [0, {cap}]");
    }
    // with six draws it is (overwhelmingly) not the un-jittered sequence
    assert_ne!(ms, caps.to_vec());
}

#[tokio::test]
async fn max_attempts_zero_never_retries() {
    let def = task(json!([{"ErrorEquals": ["E"], "MaxAttempts": 0}]), json!([]));
    let (exec, _, resolver) =
        run_with(def, json!({}), |_, _| Err(TaskFailure::new("E", "c"))).await;
    assert_eq!(resolver.calls().len(), 1);
    assert_failed(&exec);
}

#[tokio::test]
async fn only_the_first_matching_retrier_applies() {
    // given a first retrier matching with 1 attempt and a second one (also matching) with 5
    let def = task(
        json!([{"ErrorEquals": ["E"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]),
        json!([]),
    );
    let (_, _, resolver) = run_with(def, json!({}), |_, _| Err(TaskFailure::new("E", "c"))).await;
    // then only the first one's budget is used
    assert_eq!(resolver.calls().len(), 2);
}

#[tokio::test]
async fn catch_uses_the_first_matching_catcher_and_result_path() {
    let def = task(
        json!([]),
        json!([
            {"ErrorEquals": ["Nope"], "Next": "Other"},
            {"ErrorEquals": ["E"], "ResultPath": "$.err", "Next": "Caught"},
            {"ErrorEquals": ["States.ALL"], "Next": "Other"}]),
    );
    let (exec, _, _) = run_with(def, json!({"in": 1}), |_, _| {
        Err(TaskFailure::new("E", "why"))
    })
    .await;
    assert_eq!(
        assert_succeeded(&exec),
        json!({"in": 1, "err": {"Error": "E", "Cause": "why"}})
    );
    assert_eq!(exec.states_entered(), ["T", "Caught"]);
}

#[tokio::test]
async fn retries_are_exhausted_before_catching() {
    let def = task(
        json!([{"ErrorEquals": ["E"], "MaxAttempts": 2}]),
        json!([{"ErrorEquals": ["E"], "Next": "Caught"}]),
    );
    let (exec, _, resolver) =
        run_with(def, json!({}), |_, _| Err(TaskFailure::new("E", "c"))).await;
    assert_eq!(resolver.calls().len(), 3);
    assert_eq!(assert_succeeded(&exec), json!({"Error": "E", "Cause": "c"}));
}

#[tokio::test]
async fn task_failed_matches_everything_but_timeouts() {
    let def = |error: &str| {
        let mut d = task(
            json!([]),
            json!([{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]),
        );
        d["States"]["T"]["Comment"] = json!(error);
        d
    };
    let (exec, _, _) = run_with(def("custom"), json!({}), |_, _| {
        Err(TaskFailure::new("Custom.Error", "c"))
    })
    .await;
    assert_eq!(exec.states_entered(), ["T", "Caught"]);
    let (exec, _, _) = run_with(def("timeout"), json!({}), |_, _| {
        Err(TaskFailure::new("States.Timeout", "c"))
    })
    .await;
    assert_eq!(assert_failed(&exec).0, "States.Timeout");
}

#[tokio::test]
async fn states_all_catches_timeouts_but_never_states_runtime() {
    // given a catcher for States.ALL and a task whose OutputPath cannot be applied (States.Runtime)
    let mut def = task(
        json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}]),
        json!([{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]),
    );
    def["States"]["T"]["OutputPath"] = json!("$.missing.field");
    let (exec, _, resolver) = run_with(def, json!({}), |_, _| Ok(json!({}))).await;
    // then neither Retry nor Catch applies
    let (error, cause) = assert_failed(&exec);
    assert_eq!(error, "States.Runtime");
    assert!(
        cause.starts_with(
            "An error occurred while executing the state 'T' (entered at the event id #2)."
        ),
        "{cause}"
    );
    assert_eq!(resolver.calls().len(), 1);
    // while a timeout is caught by States.ALL
    let def = task(
        json!([]),
        json!([{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]),
    );
    let (exec, _, _) = run_with(def, json!({}), |_, _| {
        Err(TaskFailure::new("States.Timeout", "slow"))
    })
    .await;
    assert_eq!(exec.states_entered(), ["T", "Caught"]);
}

#[tokio::test]
async fn an_explicit_states_runtime_catcher_does_not_catch_runtime_errors() {
    let mut def = task(
        json!([]),
        json!([{"ErrorEquals": ["States.Runtime"], "Next": "Caught"}]),
    );
    def["States"]["T"]["OutputPath"] = json!("$.no.such");
    let (exec, _, _) = run_with(def, json!({}), |_, _| Ok(json!({}))).await;
    assert_eq!(assert_failed(&exec).0, "States.Runtime");
}

#[tokio::test]
async fn parallel_and_map_states_retry_their_whole_body() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel",
        "Retry": [{"ErrorEquals": ["B"], "MaxAttempts": 2, "IntervalSeconds": 1}],
        "Catch": [{"ErrorEquals": ["B"], "Next": "Caught"}],
        "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "B", "Cause": "b"}}}], "End": true},
        "Caught": {"Type": "Pass", "End": true}}});
    let (exec, clock, _) = run_with(def, json!({}), |_, _| Ok(json!(null))).await;
    assert_eq!(exec.states_entered(), ["P", "F", "F", "F", "Caught"]);
    assert_eq!(
        asl::Clock::now(clock.as_ref()),
        t0() + SignedDuration::from_secs(3)
    );
}

#[tokio::test]
async fn a_lambda_invoke_result_selector_missing_path_quotes_the_whole_response() {
    // given a lambda:invoke task whose ResultSelector reads a member the payload lacks
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f", "Payload": {"a": 1}},
        "ResultSelector": {"x.$": "$.Payload.missing"}, "End": true}}});
    let (exec, _, _) = run_with(def, json!({}), |_, _| Ok(json!({"present": true}))).await;
    // then the failure quotes the service's whole response, SdkHttpMetadata included
    let (error, cause) = assert_failed(&exec);
    assert_eq!(error, "States.Runtime");
    assert!(
        cause.contains("could not be found in the input '{\"ExecutedVersion\":\"$LATEST\",\"Payload\":{\"present\":true},\"SdkHttpMetadata\":"),
        "{cause}"
    );
    // and the history shows the whole response too
    let succeeded = exec
        .history()
        .iter()
        .find(|e| e.event_type == "TaskSucceeded")
        .expect("TaskSucceeded");
    let output = succeeded.details["taskSucceededEventDetails"]["output"]
        .as_str()
        .expect("output text");
    let response: Value = serde_json::from_str(output).expect("json");
    assert_eq!(response["Payload"], json!({"present": true}));
    assert_eq!(response["StatusCode"], json!(200));
    let id = &response["SdkResponseMetadata"]["RequestId"];
    assert_eq!(
        &response["SdkHttpMetadata"]["HttpHeaders"]["x-amzn-RequestId"],
        id
    );
    assert!(cause.contains(id.as_str().expect("request id")), "{cause}");
}

#[tokio::test]
async fn a_lambda_invoke_result_selector_reading_payload_sees_the_function_result() {
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f", "Payload.$": "$"},
        "ResultSelector": {"r.$": "$.Payload.route", "all.$": "$.Payload", "n": 1},
        "ResultPath": "$.out", "End": true}}});
    let (exec, _, _) = run_with(def, json!({"k": 2}), |_, _| Ok(json!({"route": "x"}))).await;
    assert_eq!(
        assert_succeeded(&exec),
        json!({"k": 2, "out": {"r": "x", "all": {"route": "x"}, "n": 1}})
    );
}
