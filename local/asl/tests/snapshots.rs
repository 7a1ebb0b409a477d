//! Execution snapshots that name their definition by fingerprint instead of holding it, as a
//! store that keeps each definition once writes them; and the self-contained snapshots they
//! sit beside.

mod common;

use asl::{ApiError, Clock, Execution, ExecutionStatus, StartOptions, StateMachine, VirtualClock};
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;

/// A machine that parks on a callback, then (once answered) waits and finishes: a run that is
/// stored part way and resumed.
fn definition() -> Value {
    json!({
        "Comment": "park, answer, wait, finish",
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.reply", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }
    })
}

async fn parked() -> (Execution, Arc<VirtualClock>, FnResolver, String) {
    let clock = Arc::new(VirtualClock::new(t0()));
    let resolver = FnResolver::new(clock.clone(), |_, _| Ok(json!({"MessageId": "m-1"})));
    let mut exec = Execution::start(
        &machine(definition()),
        json!({"order": 7}),
        StartOptions::default(),
        clock.as_ref(),
    );
    assert_eq!(
        exec.advance(&resolver, clock.as_ref()).await,
        ExecutionStatus::Running
    );
    let token = exec.pending_task_tokens().pop().expect("a task token");
    (exec, clock, resolver, token)
}

fn snapshot_error(result: Result<Execution, ApiError>) -> String {
    match result {
        Err(ApiError::InvalidSnapshot(why)) => why,
        Err(other) => panic!("expected InvalidSnapshot, got {other}"),
        Ok(_) => panic!("expected InvalidSnapshot, got an execution"),
    }
}

#[test]
fn the_fingerprint_names_the_definition_not_its_layout() {
    let m = machine(definition());
    assert!(m.fingerprint().starts_with("sha256:"));
    assert_eq!(m.fingerprint().len(), "sha256:".len() + 64);
    // the same definition, read from its compact text or from pretty-printed text
    let compact = StateMachine::from_json_str(&m.to_json()).unwrap();
    let pretty =
        StateMachine::from_json_str(&serde_json::to_string_pretty(&definition()).unwrap()).unwrap();
    assert_eq!(compact.fingerprint(), m.fingerprint());
    assert_eq!(pretty.fingerprint(), m.fingerprint());
    // one character changed is another definition
    let mut other = definition();
    other["States"]["Pause"]["Seconds"] = json!(6);
    assert_ne!(machine(other).fingerprint(), m.fingerprint());
}

#[tokio::test]
async fn a_snapshot_by_reference_leaves_the_definition_out_and_resumes_like_a_whole_one() {
    let (exec, clock, _, token) = parked().await;
    let whole = exec.to_json().unwrap();
    let by_reference = exec.to_json_by_reference().unwrap();
    let fingerprint = exec.machine().fingerprint().to_owned();
    // the definition is named, not copied
    let written: Value = serde_json::from_str(&by_reference).unwrap();
    assert_eq!(written["definition"], json!(fingerprint));
    assert!(written.get("machine").is_none());
    assert!(!by_reference.contains("park, answer, wait, finish"));
    assert!(whole.contains("park, answer, wait, finish"));
    assert!(by_reference.len() < whole.len());

    // read back with the machine it names, the run goes on exactly as the whole snapshot does
    let m = exec.machine().clone();
    let mut asked = Vec::new();
    let mut from_reference = Execution::from_json_resolving(&by_reference, |f| {
        asked.push(f.to_owned());
        Ok(m)
    })
    .unwrap();
    assert_eq!(asked, [fingerprint]);
    let mut from_whole = Execution::from_json(&whole).unwrap();
    let paused_at = clock.now();
    for exec in [&mut from_reference, &mut from_whole] {
        // each from the same moment, on a clock of its own
        let clock = Arc::new(VirtualClock::new(paused_at));
        let resolver = FnResolver::new(clock.clone(), |_, _| Ok(json!({"MessageId": "m-1"})));
        exec.send_task_success(&token, json!({"ok": true})).unwrap();
        assert_eq!(
            exec.run(&resolver, clock.as_ref()).await,
            ExecutionStatus::Succeeded
        );
    }
    assert_eq!(
        from_reference.to_json().unwrap(),
        from_whole.to_json().unwrap()
    );
    assert_eq!(from_reference.states_entered(), ["Ask", "Pause", "Done"]);
}

#[tokio::test]
async fn a_whole_snapshot_is_read_without_asking_for_its_definition() {
    let (exec, ..) = parked().await;
    let whole = exec.to_json().unwrap();
    let back = Execution::from_json_resolving(&whole, |f| {
        panic!("asked for {f} although the snapshot holds its definition")
    })
    .unwrap();
    assert_eq!(back.to_json().unwrap(), whole);
    assert_eq!(back.machine().fingerprint(), exec.machine().fingerprint());
}

#[tokio::test]
async fn a_snapshot_by_reference_is_refused_without_its_definition_or_with_another() {
    let (exec, ..) = parked().await;
    let by_reference = exec.to_json_by_reference().unwrap();
    let fingerprint = exec.machine().fingerprint().to_owned();

    // plain from_json cannot read it, and says why
    let why = snapshot_error(Execution::from_json(&by_reference));
    assert!(why.contains(&fingerprint), "{why}");

    // the resolver's own refusal comes through
    let why = snapshot_error(Execution::from_json_resolving(&by_reference, |f| {
        Err(format!("definition {f} is not in the store"))
    }));
    assert_eq!(why, format!("definition {fingerprint} is not in the store"));

    // a machine other than the one named is refused: the snapshot's positions are its own's
    let mut changed = definition();
    changed["States"]["Pause"]["Seconds"] = json!(9);
    let other = machine(changed);
    let other_fingerprint = other.fingerprint().to_owned();
    let why = snapshot_error(Execution::from_json_resolving(&by_reference, |_| Ok(other)));
    assert!(
        why.contains(&fingerprint) && why.contains(&other_fingerprint),
        "{why}"
    );

    // and a snapshot with neither
    let mut neither: Value = serde_json::from_str(&by_reference).unwrap();
    neither.as_object_mut().unwrap().remove("definition");
    let why = snapshot_error(Execution::from_json_resolving(&neither.to_string(), |_| {
        unreachable!("nothing to resolve")
    }));
    assert!(why.contains("neither"), "{why}");
}
