//! `.waitForTaskToken`: parking, serialising, resuming, failing, timeouts and heartbeats.

mod common;

use asl::{ApiError, Clock, Execution, ExecutionStatus, StartOptions, TaskFailure, VirtualClock};
use common::*;
use jiff::SignedDuration;
use serde_json::{Value, json};
use std::sync::Arc;

fn callback_machine(extra: Value) -> Value {
    let mut task = json!({"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}},
        "ResultPath": "$.reply", "Next": "Done"});
    if let (Some(t), Some(e)) = (task.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
    let mut def =
        json!({"StartAt": "Ask", "States": {"Ask": task, "Done": {"Type": "Pass", "End": true}}});
    if extra.get("Catch").is_some() {
        def["States"]["Handled"] = json!({"Type": "Pass", "End": true});
    }
    def
}

async fn park(extra: Value) -> (Execution, Arc<VirtualClock>, FnResolver, String) {
    let clock = Arc::new(VirtualClock::new(t0()));
    let resolver = FnResolver::new(clock.clone(), |_, _| Ok(json!({"MessageId": "m-1"})));
    let m = machine(callback_machine(extra));
    let mut exec = Execution::start(
        &m,
        json!({"order": 42}),
        StartOptions::default(),
        clock.as_ref(),
    );
    // advance (not run): only what is due now, so timers stay pending
    let status = exec.advance(&resolver, clock.as_ref()).await;
    assert_eq!(status, ExecutionStatus::Running);
    let calls = resolver.calls();
    let token = calls[0].1.task_token.clone().expect("a task token");
    (exec, clock, resolver, token)
}

#[tokio::test]
async fn wait_for_task_token_parks_and_hands_the_token_to_the_resource() {
    let (exec, _, resolver, token) = park(json!({})).await;
    // the message body got the same token through $$.Task.Token
    assert_eq!(
        resolver.calls()[0].1.input["MessageBody"],
        json!({"token": token, "order": 42})
    );
    assert_eq!(exec.pending_task_tokens(), vec![token]);
    assert_eq!(exec.next_wakeup(), None);
    assert!(event_types(&exec).ends_with(&[
        "TaskScheduled".into(),
        "TaskStarted".into(),
        "TaskSubmitted".into()
    ]));
}

#[tokio::test]
async fn a_parked_execution_survives_serialisation_and_resumes_on_task_success() {
    // given a parked execution written to JSON (as a durable store would) and dropped
    let (exec, clock, resolver, token) = park(json!({})).await;
    let snapshot = exec.to_json().expect("serialise");
    drop(exec);
    // when it is read back and the task succeeds
    let mut exec = Execution::from_json(&snapshot).expect("deserialise");
    exec.send_task_success(&token, json!({"approved": true}))
        .expect("token accepted");
    let status = exec.run(&resolver, clock.as_ref()).await;
    // then it completes with the callback output placed by ResultPath
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(
        exec.output(),
        Some(&json!({"order": 42, "reply": {"approved": true}}))
    );
    assert_eq!(exec.states_entered(), ["Ask", "Done"]);
    assert!(event_types(&exec).contains(&"TaskSucceeded".to_string()));
}

#[tokio::test]
async fn task_failure_callback_is_caught_by_catch() {
    let (mut exec, clock, resolver, token) = park(
        json!({"Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Handled"}]}),
    )
    .await;
    exec.send_task_failure(&token, Some("Rejected".into()), Some("no stock".into()))
        .expect("token accepted");
    exec.run(&resolver, clock.as_ref()).await;
    assert_eq!(
        assert_succeeded(&exec),
        json!({"order": 42, "why": {"Error": "Rejected", "Cause": "no stock"}})
    );
    assert_eq!(exec.states_entered(), ["Ask", "Handled"]);
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_rejected() {
    let (mut exec, _, _, token) = park(json!({})).await;
    let other = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        exec.send_task_success(&other, json!(1)),
        Err(ApiError::TaskDoesNotExist(other.clone()))
    );
    assert_eq!(
        exec.send_task_success("not a token", json!(1)),
        Err(ApiError::InvalidToken("not a token".into()))
    );
    // a token can be used once
    exec.send_task_success(&token, json!(1)).expect("first use");
    assert!(matches!(
        exec.send_task_success(&token, json!(2)),
        Err(ApiError::TaskDoesNotExist(_))
    ));
}

#[tokio::test]
async fn timeout_seconds_fires_when_the_clock_passes_it_even_after_a_restart() {
    // given a parked task with TimeoutSeconds 60
    let (exec, clock, resolver, _) = park(json!({"TimeoutSeconds": 60})).await;
    assert_eq!(
        exec.next_wakeup(),
        Some(t0() + SignedDuration::from_secs(60))
    );
    let snapshot = exec.to_json().expect("serialise");
    let mut exec = Execution::from_json(&snapshot).expect("deserialise");
    // when advanced before the deadline nothing happens
    clock.advance(SignedDuration::from_secs(59));
    assert_eq!(
        exec.advance(&resolver, clock.as_ref()).await,
        ExecutionStatus::Running
    );
    // and past it the task times out
    clock.advance(SignedDuration::from_secs(1));
    assert_eq!(
        exec.advance(&resolver, clock.as_ref()).await,
        ExecutionStatus::Failed
    );
    assert_eq!(
        exec.failure().and_then(|f| f.error.clone()).as_deref(),
        Some("States.Timeout")
    );
    assert!(event_types(&exec).contains(&"TaskTimedOut".to_string()));
}

#[tokio::test]
async fn heartbeats_push_the_heartbeat_deadline_and_a_missed_one_is_a_heartbeat_timeout() {
    let (mut exec, clock, resolver, token) =
        park(json!({"HeartbeatSeconds": 10, "TimeoutSeconds": 100,
        "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Handled"}]}))
        .await;
    assert_eq!(
        exec.next_wakeup(),
        Some(t0() + SignedDuration::from_secs(10))
    );
    // a heartbeat at t+8 moves the deadline to t+18
    clock.advance(SignedDuration::from_secs(8));
    exec.send_task_heartbeat(&token, clock.as_ref())
        .expect("heartbeat");
    assert_eq!(
        exec.next_wakeup(),
        Some(t0() + SignedDuration::from_secs(18))
    );
    clock.advance(SignedDuration::from_secs(9));
    assert_eq!(
        exec.advance(&resolver, clock.as_ref()).await,
        ExecutionStatus::Running
    );
    // missing the next one times the task out, caught as States.HeartbeatTimeout
    exec.run(&resolver, clock.as_ref()).await;
    assert_eq!(exec.states_entered(), ["Ask", "Handled"]);
    assert_eq!(clock.now(), t0() + SignedDuration::from_secs(18));
}

#[tokio::test]
async fn callbacks_inside_map_iterations_resume_each_iteration() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "f", "Payload": {"t.$": "$$.Task.Token"}}, "End": true}}}}}});
    let clock = Arc::new(VirtualClock::new(t0()));
    let resolver = FnResolver::new(clock.clone(), |_, _| Ok(json!(null)));
    let mut exec = Execution::start(
        &machine(def),
        json!([1, 2, 3]),
        StartOptions::default(),
        clock.as_ref(),
    );
    exec.run(&resolver, clock.as_ref()).await;
    let tokens = exec.pending_task_tokens();
    assert_eq!(tokens.len(), 3);
    for (i, t) in tokens.iter().enumerate().rev() {
        exec.send_task_success(t, json!(i)).expect("token");
        exec.run(&resolver, clock.as_ref()).await;
    }
    assert_eq!(assert_succeeded(&exec), json!([0, 1, 2]));
}

#[tokio::test]
async fn stopping_an_execution_aborts_it() {
    let (mut exec, clock, _, token) = park(json!({})).await;
    exec.stop(Some("Stopped".into()), None, clock.as_ref())
        .expect("stop");
    assert_eq!(exec.status(), ExecutionStatus::Aborted);
    assert!(exec.send_task_success(&token, json!(1)).is_err());
    assert_eq!(
        event_types(&exec).last().map(String::as_str),
        Some("ExecutionAborted")
    );
}

#[tokio::test]
async fn failing_resource_of_a_callback_task_fails_without_parking() {
    let clock = Arc::new(VirtualClock::new(t0()));
    let resolver = FnResolver::new(clock.clone(), |_, _| {
        Err(TaskFailure::new("SQS.QueueDoesNotExist", "no queue"))
    });
    let mut exec = Execution::start(
        &machine(callback_machine(json!({}))),
        json!({"order": 1}),
        StartOptions::default(),
        clock.as_ref(),
    );
    exec.run(&resolver, clock.as_ref()).await;
    assert_eq!(
        assert_failed(&exec),
        ("SQS.QueueDoesNotExist".into(), "no queue".into())
    );
}

#[tokio::test]
async fn history_read_mid_execution_stays_current_through_a_snapshot() {
    // given a parked execution whose history was read once
    let (mut exec, clock, resolver, token) = park(json!({})).await;
    let parked = exec.history().to_vec();
    assert_eq!(
        parked.last().map(|e| e.event_type.as_str()),
        Some("TaskSubmitted")
    );
    let entered = &parked[1].details["stateEnteredEventDetails"];
    assert_eq!(entered["input"], json!("{\"order\":42}"));
    // when it is serialised, read back and resumed
    let snapshot = exec.to_json().expect("snapshot");
    let mut back = Execution::from_json(&snapshot).expect("read back");
    assert_eq!(back.history(), parked.as_slice());
    back.send_task_success(&token, json!({"ok": true}))
        .expect("callback");
    exec.send_task_success(&token, json!({"ok": true}))
        .expect("callback");
    back.advance(&resolver, clock.as_ref()).await;
    exec.advance(&resolver, clock.as_ref()).await;
    // then both histories grew past the parked part, identically, payloads included
    assert_eq!(back.status(), ExecutionStatus::Succeeded);
    assert_eq!(back.history(), exec.history());
    assert_eq!(&back.history()[..parked.len()], parked.as_slice());
    let last = exec.history().last().expect("events");
    assert_eq!(last.event_type, "ExecutionSucceeded");
    assert_eq!(
        last.details["executionSucceededEventDetails"]["output"],
        json!("{\"order\":42,\"reply\":{\"ok\":true}}")
    );
    assert_eq!(exec.to_json().ok(), back.to_json().ok());
}
