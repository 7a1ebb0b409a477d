//! Engine benchmark (no harness): a 10,000-item inline Map and a 1,000-attempt retry loop under
//! the virtual clock. Prints timings; asserts nothing about them.
//!
//! Run: `cargo bench -p asl --bench engine`

use asl::{
    Execution, ExecutionStatus, HistoryDetail, ResourceResolver, StartOptions, StateMachine,
    TaskFailure, TaskRequest, VirtualClock,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Flaky {
    calls: AtomicU64,
    succeed_at: u64,
}

#[async_trait::async_trait]
impl ResourceResolver for Flaky {
    async fn invoke(&self, _request: TaskRequest) -> Result<Value, TaskFailure> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n + 1 >= self.succeed_at {
            Ok(json!({"attempts": n + 1}))
        } else {
            Err(TaskFailure::new("Flaky", "try again"))
        }
    }
}

fn machine(def: Value) -> StateMachine {
    match StateMachine::from_value(def) {
        Ok(m) => m,
        Err(e) => panic!("benchmark definition rejected: {e}"),
    }
}

async fn time_it(
    label: &str,
    m: &StateMachine,
    input: Value,
    resolver: &dyn ResourceResolver,
    history: HistoryDetail,
) {
    let clock = VirtualClock::starting_now();
    let options = StartOptions {
        history,
        ..StartOptions::default()
    };
    let started = Instant::now();
    let mut exec = Execution::start(m, input, options, &clock);
    let status = exec.run(resolver, &clock).await;
    let elapsed = started.elapsed();
    assert_eq!(
        status,
        ExecutionStatus::Succeeded,
        "{label}: {:?}",
        exec.failure()
    );
    println!(
        "{label:<58} {:>9.2} ms  ({} transitions, {} history events)",
        elapsed.as_secs_f64() * 1000.0,
        exec.state_transitions(),
        exec.history().len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let map = machine(
        json!({"StartAt": "Map", "States": {"Map": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Double", "States": {
            "Double": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.value, $.value)", "i.$": "$.index"}, "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}}},
        "ResultPath": "$.results", "End": true}}}),
    );
    let items: Vec<Value> = (0..10_000).map(Value::from).collect();
    let input = json!({"items": items});
    let no_tasks = Flaky {
        calls: AtomicU64::new(0),
        succeed_at: 0,
    };
    for (label, detail) in [
        ("full history", HistoryDetail::Full),
        ("no payloads in history", HistoryDetail::NoPayloads),
    ] {
        time_it(
            &format!("10,000-item inline Map, 2 states per item ({label})"),
            &map,
            input.clone(),
            &no_tasks,
            detail,
        )
        .await;
    }

    let retry = machine(
        json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:flaky",
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxDelaySeconds": 60,
                   "MaxAttempts": 1000, "JitterStrategy": "FULL"}], "End": true}}}),
    );
    for (label, detail) in [
        ("full history", HistoryDetail::Full),
        ("no payloads in history", HistoryDetail::NoPayloads),
    ] {
        let flaky = Flaky {
            calls: AtomicU64::new(0),
            succeed_at: 1001,
        };
        time_it(
            &format!("1,000-retry Task loop, backoff + jitter ({label})"),
            &retry,
            json!({"k": 1}),
            &flaky,
            detail,
        )
        .await;
    }
}
